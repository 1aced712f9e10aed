//! `cron_restart` and `watch` (SPEC section 2): scheduled and file-change restarts of real
//! processes, observed through the files the apps write.

mod common;

use common::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const T: Duration = Duration::from_secs(30);

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A long-running app that logs "start <ms> <pid>" when it starts and "term <ms>" when
/// SIGTERM reaches it, to `log`.
fn lifelog(d: &TestDir, log: &str) -> String {
    let script = format!(
        "#!/bin/sh\ntrap 'echo \"term $(date +%s%3N) $$\" >> {log}; exit 0' TERM\necho \"start $(date +%s%3N) $$\" >> {log}\nwhile :; do sleep 0.1; done\n",
        log = q(&d.p(log))
    );
    d.write_exec("lifelog.sh", &script);
    d.p("lifelog.sh")
}

fn starts(d: &TestDir, log: &str) -> Vec<u64> {
    d.lines(log)
        .iter()
        .filter(|l| l.starts_with("start "))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn terms(d: &TestDir, log: &str) -> usize {
    d.lines(log)
        .iter()
        .filter(|l| l.starts_with("term "))
        .count()
}

#[test]
fn a_six_field_cron_every_3s_restarts_a_running_app_gracefully_at_least_twice_in_10s() {
    let d = TestDir::new("cron-running");
    let script = lifelog(&d, "life.log");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"tick\"\nscript = {}\nkill_signal = \"SIGTERM\"\ncron_restart = \"*/3 * * * * *\"\n",
        q(&script)
    ));
    let mut r = runner_eco(&d, &[]);
    wait_for("three starts of the app", T, || {
        starts(&d, "life.log").len() >= 3
    });
    let s = starts(&d, "life.log");
    // Two runs of a 3-second schedule fall within 10 s of the first start, always.
    assert!(s[2] - s[0] <= 10_000, "starts at {s:?}\n{}", r.dump());
    // Each restart was graceful: the old process got its kill_signal and ended by itself.
    wait_for("the kill_signal to reach the old processes", T, || {
        terms(&d, "life.log") >= 2
    });
    assert!(r
        .stderr()
        .contains("tick: cron_restart `*/3 * * * * *`: restarting"));
    assert!(!r.stderr().contains("SIGKILL"), "{}", r.dump());
    r.signal("TERM");
    assert_eq!(r.code(T), 0, "{}", r.dump());
}

#[test]
fn cron_starts_an_exited_autorestart_false_job_again_and_runner_stays_up() {
    let d = TestDir::new("cron-job");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"job\"\nscript = {}\nargs = [{}, \"0\"]\nautorestart = false\ncron_restart = \"*/3 * * * * *\"\n",
        q(&app("stamp.sh")),
        q(&d.p("runs.log"))
    ));
    let mut r = runner_eco(&d, &[]);
    // Runs once at start, exits 0, and is started again by each match.
    d.wait_lines("runs.log", 3);
    assert!(
        !r.has_exited(),
        "runner must wait for the next run\n{}",
        r.dump()
    );
    r.signal("TERM");
    assert_eq!(r.code(T), 0, "{}", r.dump());
}

#[test]
fn a_bad_cron_expression_is_a_load_error_with_place_and_reason() {
    let d = TestDir::new("cron-bad");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"job\"\nscript = {}\ncron_restart = \"0 25 * * *\"\n",
        q(&app("stamp.sh"))
    ));
    for args in [vec!["check".to_string()], vec![]] {
        let mut all = args.clone();
        all.push(d.p("ecosystem.toml"));
        let (code, _out, err) = run_to_end(&d, &all);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(
                "ecosystem.toml:4:16: `cron_restart`: `0 25 * * *`: hour field: 25 is out of range 0-23"
            ),
            "{err}"
        );
    }
}

#[test]
fn check_prints_the_next_run_of_each_cron_app() {
    let d = TestDir::new("cron-check");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"nightly\"\nscript = {}\ncron_restart = \"0 3 * * *\"\n",
        q(&app("stamp.sh"))
    ));
    let mut cmd = runner_cmd(d.path(), &["check", &d.p("ecosystem.toml")]);
    cmd.env("TZ", "UTC");
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("cron_restart"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("0 3 * * *, next run "), "{line}");
    assert!(line.contains(" 03:00:00 +00 (UTC)"), "{line}");
}

/// A watched app whose cwd is `site/` (the control socket stays outside it).
fn watched(d: &TestDir, extra: &str) -> Proc {
    std::fs::create_dir_all(d.path().join("site/node_modules/pkg")).unwrap();
    std::fs::create_dir_all(d.path().join("site/.git")).unwrap();
    std::fs::create_dir_all(d.path().join("site/src")).unwrap();
    let script = lifelog(d, "life.log");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"web\"\nscript = {}\ncwd = \"site\"\nkill_signal = \"SIGTERM\"\nwatch = true\n{extra}\n",
        q(&script)
    ));
    let r = runner_eco(d, &[]);
    wait_for("the app to start", T, || starts(d, "life.log").len() == 1);
    r
}

/// Long enough for a restart that a change would have caused to have shown.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn watch_restarts_on_a_change_in_cwd_within_3s_but_not_in_node_modules_or_ignored_globs() {
    let d = TestDir::new("watch");
    let mut r = watched(&d, "ignore_watch = [\"*.tmp\"]");
    d.write("site/node_modules/pkg/index.js", "x");
    d.write("site/.git/HEAD", "x");
    d.write("site/scratch.tmp", "x");
    d.write("site/src/cache.tmp", "x");
    settle();
    assert_eq!(starts(&d, "life.log").len(), 1, "{}", r.dump());

    let changed_at = now_ms();
    d.write("site/src/app.js", "v2");
    wait_for("a restart after the change", T, || {
        starts(&d, "life.log").len() >= 2
    });
    let s = starts(&d, "life.log");
    assert!(
        s[1].saturating_sub(changed_at) < 3000,
        "restarted {} ms after the change\n{}",
        s[1] - changed_at,
        r.dump()
    );
    assert!(terms(&d, "life.log") >= 1, "the restart is graceful");
    r.signal("TERM");
    assert_eq!(r.code(T), 0, "{}", r.dump());
}

#[test]
fn a_burst_of_changes_restarts_once() {
    let d = TestDir::new("watch-burst");
    let mut r = watched(&d, "watch_delay = 300");
    for i in 0..20 {
        d.write(&format!("site/src/f{i}.js"), "x");
    }
    wait_for("a restart after the burst", T, || {
        starts(&d, "life.log").len() >= 2
    });
    settle();
    assert_eq!(starts(&d, "life.log").len(), 2, "{}", r.dump());
    r.signal("TERM");
    assert_eq!(r.code(T), 0, "{}", r.dump());
}

#[test]
fn a_folder_created_after_start_is_watched() {
    let d = TestDir::new("watch-newdir");
    let mut r = watched(&d, "");
    std::fs::create_dir_all(d.path().join("site/later/deeper")).unwrap();
    // Creating the folders is itself a change.
    wait_for("a restart for the new folder", T, || {
        starts(&d, "life.log").len() >= 2
    });
    settle();
    let before = starts(&d, "life.log").len();
    d.write("site/later/deeper/new.js", "x");
    wait_for("a restart for a file in the new folder", T, || {
        starts(&d, "life.log").len() > before
    });
    r.signal("TERM");
    assert_eq!(r.code(T), 0, "{}", r.dump());
}
