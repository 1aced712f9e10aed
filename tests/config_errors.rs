//! Ecosystem-file and command-line errors (SPEC sections 1 and 2): exit 2, a message that
//! names the file, line:column and key, and nothing started.

mod common;

use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// A valid app that would leave a marker file if it ever ran.
fn marker_app(d: &TestDir) -> String {
    d.write_exec(
        "mark.sh",
        &format!("#!/bin/sh\ntouch '{}'\nexec sleep 1000\n", d.p("marker")),
    );
    "[[apps]]\nname = \"marker\"\nscript = \"mark.sh\"\ninterpreter = \"none\"\n".to_string()
}

/// Writes `marker app + body` (the marker app takes lines 1-4, then a blank line, so
/// `body` starts at line 6), runs runner on it and expects exit 2 with nothing started.
/// Returns stderr.
fn expect_error(d: &TestDir, body: &str) -> String {
    let text = format!("{}\n{}", marker_app(d), body);
    d.ecosystem(&text);
    let (code, out, err) = run_to_end(d, &[d.p("ecosystem.toml")]);
    assert_eq!(
        code, 2,
        "expected exit 2 for:\n{text}\nstdout: {out}\nstderr: {err}"
    );
    assert!(!err.contains("started pid"), "nothing may start: {err}");
    assert!(
        !d.exists("marker"),
        "the marker app must not have run: {err}"
    );
    // `check` agrees.
    let (code, _, cerr) = run_to_end(d, &["check", &d.p("ecosystem.toml")]);
    assert_eq!(code, 2, "check: {cerr}");
    err
}

/// Asserts that `err` contains `ecosystem.toml:LINE:COL` for some column.
fn assert_at_line(err: &str, line: usize) {
    let needle = format!("ecosystem.toml:{line}:");
    let ok = err.match_indices(&needle).any(|(i, _)| {
        err[i + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    });
    assert!(
        ok,
        "expected a position at line {line} (file:line:column) in: {err}"
    );
}

#[test]
fn malformed_toml_is_reported_with_line_and_column() {
    let d = TestDir::new("badtoml");
    let err = expect_error(&d, "[[apps]\nname = \"x\"\n");
    assert_at_line(&err, 6);
}

#[test]
fn malformed_toml_value_is_reported_with_its_line() {
    let d = TestDir::new("badtoml2");
    let err = expect_error(&d, "[[apps]]\nname = \"x\"\nscript = \"sleep 1\nargs = 3\n");
    assert_at_line(&err, 8);
}

#[test]
fn unknown_key_names_the_key_its_position_and_the_closest_key() {
    let d = TestDir::new("unknownkey");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\ninstnces = 3\n",
    );
    assert!(err.contains("ecosystem.toml:9:1"), "{err}");
    assert!(err.contains("instnces"), "{err}");
    assert!(err.contains("instances"), "suggestion: {err}");
}

#[test]
fn unknown_key_in_the_runner_table_is_an_error() {
    let d = TestDir::new("unknownrunner");
    let err = expect_error(&d, "[runner]\nsockett = \"/tmp/x.sock\"\n");
    assert!(err.contains("sockett"), "{err}");
    assert!(
        err.contains("socket`") || err.contains("'socket'") || err.contains(" socket"),
        "{err}"
    );
    assert_at_line(&err, 7);
}

#[test]
fn wrong_type_names_the_key_and_its_line() {
    let d = TestDir::new("wrongtype");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\ninstances = \"three\"\n",
    );
    assert!(err.contains("instances"), "{err}");
    assert_at_line(&err, 9);
}

#[test]
fn wrong_type_for_a_bool_is_an_error() {
    let d = TestDir::new("wrongbool");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\nautorestart = \"yes\"\n",
    );
    assert!(err.contains("autorestart"), "{err}");
    assert_at_line(&err, 9);
}

#[test]
fn duplicate_app_names_are_an_error() {
    let d = TestDir::new("dup");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\n\n[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\n",
    );
    assert!(err.contains("duplicate"), "{err}");
    assert!(err.contains('x'), "{err}");
    assert_at_line(&err, 11);
}

#[test]
fn depends_on_an_unknown_app_is_an_error() {
    let d = TestDir::new("depunknown");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\ndepends_on = [\"ghost\"]\n",
    );
    assert!(err.contains("ghost"), "{err}");
    assert_at_line(&err, 9);
}

#[test]
fn depends_on_cycle_is_an_error() {
    let d = TestDir::new("depcycle");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"a\"\nscript = \"sleep 1000\"\ndepends_on = [\"b\"]\n\n\
         [[apps]]\nname = \"b\"\nscript = \"sleep 1000\"\ndepends_on = [\"c\"]\n\n\
         [[apps]]\nname = \"c\"\nscript = \"sleep 1000\"\ndepends_on = [\"a\"]\n",
    );
    assert!(err.to_lowercase().contains("cycl"), "{err}");
    for n in ["`a`", "`b`", "`c`"] {
        let bare = n.trim_matches('`');
        assert!(err.contains(n) || err.contains(bare), "{err}");
    }
}

#[test]
fn depends_on_itself_is_an_error() {
    let d = TestDir::new("depself");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"a\"\nscript = \"sleep 1000\"\ndepends_on = [\"a\"]\n",
    );
    assert!(err.contains('a'), "{err}");
}

#[test]
fn missing_script_file_is_an_error() {
    let d = TestDir::new("missingscript");
    let err = expect_error(&d, "[[apps]]\nname = \"x\"\nscript = \"not-there.sh\"\n");
    assert!(err.contains("not-there.sh"), "{err}");
    assert_at_line(&err, 8);
}

#[test]
fn missing_program_in_path_is_an_error() {
    let d = TestDir::new("missingprog");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"runner-test-no-such-command-xyz\"\n",
    );
    assert!(err.contains("runner-test-no-such-command-xyz"), "{err}");
}

#[test]
fn non_executable_script_with_interpreter_none_is_an_error() {
    let d = TestDir::new("noexec");
    d.write("plain.sh", "#!/bin/sh\nexit 0\n");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"plain.sh\"\ninterpreter = \"none\"\n",
    );
    assert!(err.contains("plain.sh"), "{err}");
    assert!(err.contains("execut"), "{err}");
}

#[test]
fn bad_signal_name_is_an_error() {
    let d = TestDir::new("badsig");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\nkill_signal = \"SIGFOO\"\n",
    );
    assert!(err.contains("kill_signal"), "{err}");
    assert!(err.contains("SIGFOO"), "{err}");
    assert_at_line(&err, 9);
}

#[test]
fn bad_duration_is_an_error() {
    let d = TestDir::new("baddur");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\nkill_timeout = \"5 parsecs\"\n",
    );
    assert!(err.contains("kill_timeout"), "{err}");
    assert_at_line(&err, 9);
}

#[test]
fn negative_duration_is_an_error() {
    let d = TestDir::new("negdur");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\nrestart_delay = -5\n",
    );
    assert!(err.contains("restart_delay"), "{err}");
    assert_at_line(&err, 9);
}

#[test]
fn bad_size_is_an_error() {
    let d = TestDir::new("badsize");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\nmax_memory_restart = \"12Q\"\n",
    );
    assert!(err.contains("max_memory_restart"), "{err}");
    assert_at_line(&err, 9);
}

#[test]
fn bad_listen_address_is_an_error() {
    let d = TestDir::new("badlisten");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\nlisten = [\"nope:xx\"]\n",
    );
    assert!(err.contains("listen"), "{err}");
    assert!(err.contains("nope:xx"), "{err}");
    assert_at_line(&err, 9);
}

#[test]
fn every_error_is_reported_before_anything_starts() {
    let d = TestDir::new("allerrors");
    let err = expect_error(
        &d,
        "[[apps]]\nname = \"x\"\nscript = \"sleep 1000\"\nkill_signal = \"SIGFOO\"\nmax_memory_restart = \"12Q\"\ndepends_on = [\"ghost\"]\n",
    );
    for needle in ["SIGFOO", "12Q", "ghost"] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
    assert_at_line(&err, 9);
    assert_at_line(&err, 10);
    assert_at_line(&err, 11);
}

#[test]
fn unimplemented_pm2_key_is_only_a_warning() {
    let d = TestDir::new("pm2warn");
    let text = format!("{}vizion = false\npid_file = \"app.pid\"\n", marker_app(&d));
    d.ecosystem(&text);
    let mut p = runner_eco(&d, &[]);
    wait_for("the marker", DEADLINE, || d.exists("marker"));
    let err = p.stderr();
    assert!(err.contains("vizion"), "a warning names the key: {err}");
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
}

#[test]
fn missing_ecosystem_file_exits_2_with_a_clear_message() {
    let d = TestDir::new("nofile");
    let (code, _, err) = run_to_end(&d, &[d.p("nope.toml")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.toml"), "{err}");
}

#[test]
fn default_ecosystem_file_is_read_from_the_current_directory() {
    let d = TestDir::new("defaultfile");
    let (code, _, err) = run_to_end(&d, &[] as &[&str]);
    assert_eq!(code, 2, "no ecosystem.toml here: {err}");
    assert!(err.contains("ecosystem.toml"), "{err}");
    let text = marker_app(&d);
    d.ecosystem(&text);
    let mut p = runner(&d, &[] as &[&str]);
    wait_for("the marker app to start", DEADLINE, || d.exists("marker"));
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
}

#[test]
fn wrong_option_exits_2_with_a_usage_line() {
    let d = TestDir::new("badopt");
    let (code, _, err) = run_to_end(&d, &["--bogus"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.to_lowercase().contains("usage"), "{err}");
}

#[test]
fn missing_option_value_exits_2_with_a_usage_line() {
    let d = TestDir::new("novalue");
    let (code, _, err) = run_to_end(&d, &["--env"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.to_lowercase().contains("usage"), "{err}");
}

#[test]
fn missing_program_after_double_dash_exits_2() {
    let d = TestDir::new("noprog");
    let (code, _, err) = run_to_end(&d, &["--"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.to_lowercase().contains("usage"), "{err}");
}

#[test]
fn help_exits_0() {
    let d = TestDir::new("help");
    let (code, out, err) = run_to_end(&d, &["--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.to_lowercase().contains("usage"), "{out}");
}

#[test]
fn version_exits_0_and_prints_the_version() {
    let d = TestDir::new("version");
    let (code, out, err) = run_to_end(&d, &["--version"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("runner"), "{out}");
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn unknown_only_name_is_an_error() {
    let d = TestDir::new("onlyunknown");
    let text = marker_app(&d);
    d.ecosystem(&text);
    let (code, _, err) = run_to_end(&d, &["--only", "ghost", &d.p("ecosystem.toml")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ghost"), "{err}");
    assert!(!d.exists("marker"), "{err}");
}
