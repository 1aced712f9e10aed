//! Ecosystem mode (SPEC sections 2 and 4): apps, instances, environment, arguments,
//! interpreters, `cwd`, `check`, `--env`, `--only`, signal forwarding, `depends_on`.

mod common;

use common::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// A TOML basic string.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Environments written by envdump.sh, keyed by file name `env.APP.ID`.
fn envs(d: &TestDir) -> HashMap<String, HashMap<String, String>> {
    std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n.starts_with("env.") && !n.ends_with(".tmp"))
                .then(|| (n.clone(), parse_env(&d.read(&n))))
        })
        .collect()
}

fn envs_of(d: &TestDir, app: &str) -> Vec<HashMap<String, String>> {
    let mut v: Vec<_> = envs(d)
        .into_values()
        .filter(|e| e.get("RUNNER_APP").map(String::as_str) == Some(app))
        .collect();
    v.sort_by_key(|e| e.get("NODE_APP_INSTANCE").cloned());
    v
}

fn wait_envs(d: &TestDir, n: usize) {
    wait_for(
        &format!("{n} instances to write their environment"),
        DEADLINE,
        || envs(d).len() >= n,
    );
}

fn stop(p: &mut Proc) -> i32 {
    p.signal("TERM");
    p.code(T)
}

#[test]
fn several_apps_and_three_instances_all_run_with_their_environment() {
    let d = TestDir::new("instances");
    d.write(
        "vars.env",
        "# a comment\nSHARED=from-file\nONLY_FILE=\"quoted value\"\n",
    );
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "web"
script = {script}
args = [{dir}]
instances = 3
increment_var = "PORT"
env_file = "vars.env"
env = {{ PORT = "8000", SHARED = "from-env", MODE = "dev" }}

[[apps]]
name = "worker"
script = {script}
args = [{dir}]
"#,
        script = q(&app("envdump.sh")),
        dir = q(&d.p("")),
    ));
    let mut p = runner_eco(&d, &[]);
    wait_envs(&d, 4);

    let web = envs_of(&d, "web");
    assert_eq!(web.len(), 3, "{}", p.dump());
    let mut ids = HashSet::new();
    for (i, e) in web.iter().enumerate() {
        assert_eq!(e["NODE_APP_INSTANCE"], i.to_string());
        assert_eq!(
            e["PORT"],
            (8000 + i).to_string(),
            "increment_var grows per instance"
        );
        assert_eq!(e["SHARED"], "from-env", "env wins over env_file");
        assert_eq!(
            e["ONLY_FILE"], "quoted value",
            "env_file values, quotes removed"
        );
        assert_eq!(e["MODE"], "dev");
        assert!(
            ids.insert(e["RUNNER_INSTANCE_ID"].clone()),
            "instance ids are distinct"
        );
    }
    let worker = envs_of(&d, "worker");
    assert_eq!(worker.len(), 1);
    assert_eq!(worker[0]["NODE_APP_INSTANCE"], "0");
    assert!(!worker[0].contains_key("PORT") || worker[0]["PORT"] != "8000");
    assert!(
        ids.insert(worker[0]["RUNNER_INSTANCE_ID"].clone()),
        "instance ids are distinct across apps"
    );
    // Runner's own environment is passed on.
    assert_eq!(worker[0].get("PATH"), std::env::var("PATH").ok().as_ref());

    assert_eq!(stop(&mut p), 0, "{}", p.dump());
}

#[test]
fn instance_var_renames_the_instance_number_variable() {
    let d = TestDir::new("instvar");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "w"
script = {script}
args = [{dir}]
instances = 2
instance_var = "WORKER_NO"
"#,
        script = q(&app("envdump.sh")),
        dir = q(&d.p("")),
    ));
    let mut p = runner_eco(&d, &[]);
    wait_envs(&d, 2);
    let mut nos: Vec<String> = envs(&d).values().map(|e| e["WORKER_NO"].clone()).collect();
    nos.sort();
    assert_eq!(nos, ["0", "1"]);
    assert_eq!(stop(&mut p), 0, "{}", p.dump());
}

#[test]
fn env_profile_is_merged_over_env() {
    let d = TestDir::new("profile");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "api"
script = {script}
args = [{dir}]
env = {{ NODE_ENV = "development", KEEP = "kept" }}
env_production = {{ NODE_ENV = "production", PORT = "8081" }}
"#,
        script = q(&app("envdump.sh")),
        dir = q(&d.p("")),
    ));
    let mut p = runner_eco(&d, &["--env", "production"]);
    wait_envs(&d, 1);
    let e = &envs_of(&d, "api")[0];
    assert_eq!(e["NODE_ENV"], "production");
    assert_eq!(e["PORT"], "8081");
    assert_eq!(e["KEEP"], "kept");
    assert_eq!(stop(&mut p), 0, "{}", p.dump());
}

#[test]
fn without_env_flag_the_profile_is_not_applied() {
    let d = TestDir::new("noprofile");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "api"
script = {script}
args = [{dir}]
env = {{ NODE_ENV = "development" }}
env_production = {{ NODE_ENV = "production", PORT = "8081" }}
"#,
        script = q(&app("envdump.sh")),
        dir = q(&d.p("")),
    ));
    let mut p = runner_eco(&d, &[]);
    wait_envs(&d, 1);
    let e = &envs_of(&d, "api")[0];
    assert_eq!(e["NODE_ENV"], "development");
    assert_ne!(e.get("PORT").map(String::as_str), Some("8081"));
    assert_eq!(stop(&mut p), 0, "{}", p.dump());
}

fn three_apps(d: &TestDir, c_depends_on_b: bool) {
    let mut s = String::new();
    for name in ["a", "b", "c"] {
        s += &format!(
            "[[apps]]\nname = {}\nscript = {}\nargs = [{}]\n",
            q(name),
            q(&app("envdump.sh")),
            q(&d.p(""))
        );
        if name == "c" && c_depends_on_b {
            s += "depends_on = [\"b\"]\n";
        }
        s += "\n";
    }
    d.ecosystem(&s);
}

#[test]
fn only_supervises_the_named_apps() {
    let d = TestDir::new("only");
    three_apps(&d, false);
    let mut p = runner_eco(&d, &["--only", "a,c"]);
    wait_envs(&d, 2);
    assert_eq!(envs_of(&d, "a").len(), 1);
    assert_eq!(envs_of(&d, "c").len(), 1);
    assert_eq!(stop(&mut p), 0, "{}", p.dump());
    assert!(
        envs_of(&d, "b").is_empty(),
        "b was not asked for: {}",
        p.dump()
    );
}

#[test]
fn only_also_supervises_what_the_named_apps_depend_on() {
    let d = TestDir::new("onlydeps");
    three_apps(&d, true);
    let mut p = runner_eco(&d, &["--only", "c"]);
    wait_envs(&d, 2);
    assert_eq!(envs_of(&d, "b").len(), 1, "c depends on b");
    assert_eq!(envs_of(&d, "c").len(), 1);
    assert_eq!(stop(&mut p), 0, "{}", p.dump());
    assert!(
        envs_of(&d, "a").is_empty(),
        "a was not asked for: {}",
        p.dump()
    );
}

#[test]
fn args_string_is_split_like_a_shell_without_running_a_shell() {
    let d = TestDir::new("args");
    let out = d.p("argv");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "argv"
script = {script}
args = {args}
autorestart = false
"#,
        script = q(&app("argv.py")),
        args = q(&format!(r#"{out} 'a b' "c d" e\ f plain $HOME '*' ;"#)),
    ));
    let (code, _, err) = run_to_end(&d, &[d.p("ecosystem.toml")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        d.lines("argv"),
        ["a b", "c d", "e f", "plain", "$HOME", "*", ";"],
        "{err}"
    );
}

#[test]
fn args_array_is_passed_verbatim() {
    let d = TestDir::new("argsarr");
    let out = d.p("argv");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "argv"
script = {script}
args = [{out}, "a b", "'quoted'", "$HOME"]
autorestart = false
"#,
        script = q(&app("argv.sh")),
        out = q(&out),
    ));
    let (code, _, err) = run_to_end(&d, &[d.p("ecosystem.toml")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d.lines("argv"), ["a b", "'quoted'", "$HOME"], "{err}");
}

#[test]
fn script_with_whitespace_runs_through_sh() {
    let d = TestDir::new("shc");
    let out = d.p("out");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "inline"
script = {script}
autorestart = false
"#,
        script = q(&format!("echo shell-ran $((40 + 2)) > {out}")),
    ));
    let (code, _, err) = run_to_end(&d, &[d.p("ecosystem.toml")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d.read("out").trim(), "shell-ran 42", "{err}");
}

#[test]
fn interpreter_is_chosen_by_extension() {
    // Neither script is executable nor has a shebang line: only the interpreter picked
    // from the extension can run them.
    let d = TestDir::new("interp");
    d.write(
        "hello.py",
        "import sys\nopen(sys.argv[1], 'w').write('py %d' % (6 * 7))\n",
    );
    d.write("hello.sh", "echo \"sh $((6 * 7))\" > \"$1\"\n");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "py"
script = "hello.py"
args = [{py}]
autorestart = false

[[apps]]
name = "sh"
script = "hello.sh"
args = [{sh}]
autorestart = false
"#,
        py = q(&d.p("py.out")),
        sh = q(&d.p("sh.out")),
    ));
    let (code, _, err) = run_to_end(&d, &[d.p("ecosystem.toml")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d.read("py.out").trim(), "py 42", "{err}");
    assert_eq!(d.read("sh.out").trim(), "sh 42", "{err}");
}

#[test]
fn interpreter_none_runs_an_executable_script_directly() {
    let d = TestDir::new("interpnone");
    d.write_exec("tool.sh", "#!/bin/sh\necho \"direct $0\" > \"$1\"\n");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "tool"
script = "tool.sh"
interpreter = "none"
args = [{out}]
autorestart = false
"#,
        out = q(&d.p("out")),
    ));
    let (code, _, err) = run_to_end(&d, &[d.p("ecosystem.toml")]);
    assert_eq!(code, 0, "{err}");
    assert!(d.read("out").starts_with("direct "), "{err}");
}

#[test]
fn cwd_defaults_to_the_ecosystem_directory_and_can_be_set() {
    let d = TestDir::new("cwd");
    std::fs::create_dir_all(d.path().join("sub")).unwrap();
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "here"
script = {script}
args = [{dir}]

[[apps]]
name = "there"
script = {script}
args = [{dir}]
cwd = "sub"
"#,
        script = q(&app("envdump.sh")),
        dir = q(&d.p("")),
    ));
    // runner itself runs from / : relative paths are resolved against the file's directory.
    let mut cmd = runner_cmd(std::path::Path::new("/"), &[d.p("ecosystem.toml")]);
    cmd.env("RUNNER_SOCKET", d.path().join("runner.sock"));
    let mut p = Proc::spawn(cmd);
    wait_envs(&d, 2);
    let root = d.path().canonicalize().unwrap();
    assert_eq!(envs_of(&d, "here")[0]["CWD"], root.to_string_lossy());
    assert_eq!(
        envs_of(&d, "there")[0]["CWD"],
        root.join("sub").to_string_lossy()
    );
    assert_eq!(stop(&mut p), 0, "{}", p.dump());
}

#[test]
fn check_prints_the_resolved_apps_and_starts_nothing() {
    let d = TestDir::new("check");
    let marker = d.p("marker");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "alpha"
script = {script}
instances = 2

[[apps]]
name = "beta"
script = {script}
"#,
        script = q(&format!("touch {marker}")),
    ));
    let (code, out, err) = run_to_end(&d, &["check", &d.p("ecosystem.toml")]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("alpha"), "{out}");
    assert!(out.contains("beta"), "{out}");
    assert!(out.contains('2'), "instances shown: {out}");
    assert!(!d.exists("marker"), "check must not start anything");
}

#[test]
fn hup_usr1_usr2_winch_reach_every_instance_main_process_exactly_once() {
    let d = TestDir::new("fwd");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "rec0"
script = {script}
args = [{o0}]

[[apps]]
name = "rec1"
script = {script}
args = [{o1}]

[[apps]]
name = "rec2"
script = {script}
args = [{o2}]
"#,
        script = q(&app("sigrec.py")),
        o0 = q(&d.p("sig0")),
        o1 = q(&d.p("sig1")),
        o2 = q(&d.p("sig2")),
    ));
    let files = ["sig0", "sig1", "sig2"];
    let mut p = runner_eco(&d, &[]);
    for f in files {
        d.wait_file(&format!("{f}.ready"));
    }
    let count = |f: &str, name: &str| d.lines(f).iter().filter(|l| *l == name).count();
    for (sig, name) in [
        ("HUP", "SIGHUP"),
        ("USR1", "SIGUSR1"),
        ("USR2", "SIGUSR2"),
        ("WINCH", "SIGWINCH"),
    ] {
        p.signal(sig);
        wait_for(&format!("{name} to reach every instance"), DEADLINE, || {
            files.iter().all(|f| count(f, name) >= 1)
        });
    }
    // Nothing more arrives later (a duplicate would come within a few event-loop turns;
    // a generous grace period, not an assertion on timing).
    std::thread::sleep(Duration::from_millis(300));
    for f in files {
        for name in ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"] {
            assert_eq!(count(f, name), 1, "{f}: {:?}", d.lines(f));
        }
        assert!(
            !d.lines(f).iter().any(|l| l == "SIGINT" || l == "SIGTERM"),
            "{f}: {:?}",
            d.lines(f)
        );
    }
    assert_eq!(stop(&mut p), 0, "{}", p.dump());
}

#[test]
fn forwarded_signal_reaches_every_instance_of_a_multi_instance_app() {
    let d = TestDir::new("fwdinst");
    // sigrec.py writes to its argv[1]; sh -c gives each instance its own file.
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "rec"
script = {script}
instances = 3
"#,
        script = q(&format!(
            "exec python3 {} {}.$NODE_APP_INSTANCE",
            app("sigrec.py"),
            d.p("sig")
        )),
    ));
    let files = ["sig.0", "sig.1", "sig.2"];
    let mut p = runner_eco(&d, &[]);
    for f in files {
        d.wait_file(&format!("{f}.ready"));
    }
    p.signal("USR1");
    wait_for("SIGUSR1 at every instance", DEADLINE, || {
        files
            .iter()
            .all(|f| d.lines(f).iter().any(|l| l == "SIGUSR1"))
    });
    std::thread::sleep(Duration::from_millis(300));
    for f in files {
        assert_eq!(
            d.lines(f).iter().filter(|l| *l == "SIGUSR1").count(),
            1,
            "{f}: {:?}",
            d.lines(f)
        );
    }
    assert_eq!(stop(&mut p), 0, "{}", p.dump());
}

#[test]
fn depends_on_starts_the_dependency_first_and_stops_it_last() {
    let d = TestDir::new("deps");
    let order = d.p("order");
    // Listed dependent-first, so file order alone would get it wrong.
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "A"
script = {script}
args = ["A", {order}]
depends_on = ["B"]

[[apps]]
name = "B"
script = {script}
args = ["B", {order}]
"#,
        script = q(&app("life.py")),
        order = q(&order),
    ));
    let mut p = runner_eco(&d, &[]);
    d.wait_lines("order", 2);
    // B was started before A: runner's log of the starts is the order of the spawns.
    let err = p.stderr();
    let b = err
        .find("B[0]: started pid")
        .unwrap_or_else(|| panic!("{err}"));
    let a = err
        .find("A[0]: started pid")
        .unwrap_or_else(|| panic!("{err}"));
    assert!(b < a, "B must start before A:\n{err}");
    assert_eq!(stop(&mut p), 0, "{}", p.dump());
    let lines = d.lines("order");
    let a_stop = lines
        .iter()
        .position(|l| l == "A stop")
        .unwrap_or_else(|| panic!("{lines:?}"));
    let b_stop = lines
        .iter()
        .position(|l| l == "B stop")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        a_stop < b_stop,
        "A (the dependent) stops before B: {lines:?}"
    );
}

#[test]
fn depends_on_waits_for_a_slow_dependency_to_be_stopped_last() {
    // B takes a while to stop; A must be gone before B even gets its signal, and B's
    // stop must not begin before A's has ended.
    let d = TestDir::new("deps2");
    let order = d.p("order");
    d.write(
        "slowstop.py",
        "import signal, sys, time\nlabel, out = sys.argv[1], sys.argv[2]\n\
         def log(w):\n    open(out, 'a').write(label + ' ' + w + '\\n')\n\
         def stop(n, f):\n    log('got-signal')\n    time.sleep(0.4)\n    log('stopped')\n    sys.exit(0)\n\
         signal.signal(signal.SIGINT, stop)\nlog('start')\nwhile True:\n    signal.pause()\n",
    );
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "B"
script = "slowstop.py"
args = ["B", {order}]

[[apps]]
name = "A"
script = "slowstop.py"
args = ["A", {order}]
depends_on = ["B"]

[[apps]]
name = "C"
script = "slowstop.py"
args = ["C", {order}]
depends_on = ["A"]
"#,
        order = q(&order),
    ));
    let mut p = runner_eco(&d, &[]);
    d.wait_lines("order", 3);
    assert_eq!(stop(&mut p), 0, "{}", p.dump());
    let lines = d.lines("order");
    let pos = |l: &str| {
        lines
            .iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("no {l}: {lines:?}"))
    };
    assert!(pos("C stopped") < pos("A got-signal"), "{lines:?}");
    assert!(pos("A stopped") < pos("B got-signal"), "{lines:?}");
}

#[test]
fn each_instance_runs_in_its_own_process_group() {
    let d = TestDir::new("ecopgid");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"rec\"\nscript = {}\ninstances = 2\n",
        q(&format!(
            "exec python3 {} {}.$NODE_APP_INSTANCE",
            app("sigrec.py"),
            d.p("rec")
        ))
    ));
    let mut p = runner_eco(&d, &[]);
    let runner_pgid = stat(p.pid()).unwrap().pgid;
    let mut groups = HashSet::new();
    for f in ["rec.0.ready", "rec.1.ready"] {
        let pid: i32 = d.wait_file(f).trim().parse().unwrap();
        let s = stat(pid).unwrap();
        assert_eq!(s.ppid, p.pid(), "an instance is runner's child");
        assert_eq!(s.pgid, pid, "pgid == pid");
        assert_ne!(s.pgid, runner_pgid, "not in runner's (terminal's) group");
        groups.insert(s.pgid);
    }
    assert_eq!(groups.len(), 2);
    assert_eq!(stop(&mut p), 0, "{}", p.dump());
}

#[test]
fn instances_get_only_fds_0_1_2_and_stdin_is_not_runners() {
    let d = TestDir::new("ecofds");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"fds\"\nscript = {}\nautorestart = false\n",
        // Output goes to runner's stdout (no redirection: the shell would open fds).
        q("ls /proc/$$/fd; readlink /proc/$$/fd/0")
    ));
    // runner inherits an extra fd 7 and a stdin that is not /dev/null.
    let script = format!(
        "exec 7</etc/hostname; exec '{RUNNER}' '{}' < /etc/hostname",
        d.p("ecosystem.toml")
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(d.path())
        .env("RUNNER_SOCKET", d.path().join("runner.sock"));
    let mut p = Proc::spawn(cmd);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let out = p.stdout();
    let mut fds: Vec<&str> = out
        .split_whitespace()
        .filter(|l| !l.contains('/'))
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "{}", p.dump());
    let stdin = out
        .split_whitespace()
        .find(|l| l.contains('/'))
        .unwrap_or("");
    assert_ne!(
        stdin,
        "/etc/hostname",
        "instances don't share runner's stdin: {}",
        p.dump()
    );
}

/// The children are started sharing runner's fd table and leave it for one holding only
/// the low fds (spawn.rs): instances started while runner holds hundreds of pipes still
/// get exactly 0, 1 and 2.
#[test]
fn instances_started_while_runner_holds_many_fds_get_only_0_1_2() {
    let d = TestDir::new("ecomanyfds");
    let n = 150;
    d.ecosystem(&format!(
        "[[apps]]\nname = \"fds\"\ninstances = {n}\nscript = {}\nautorestart = false\n",
        q("ls /proc/$$/fd")
    ));
    let mut p = runner_eco(&d, &[]);
    assert_only_0_1_2(&mut p, n);
}

/// Each of `n` instances listed exactly fds 0, 1 and 2 (`ls /proc/$$/fd`) on runner's stdout.
fn assert_only_0_1_2(p: &mut Proc, n: i32) {
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let mut counts = std::collections::BTreeMap::new();
    for fd in p.stdout().split_whitespace() {
        *counts.entry(fd.to_string()).or_insert(0) += 1;
    }
    let want: std::collections::BTreeMap<String, i32> = [
        ("0".to_string(), n),
        ("1".to_string(), n),
        ("2".to_string(), n),
    ]
    .into();
    assert_eq!(counts, want, "{}", p.dump());
}

/// `RUNNER_SPAWN=fork` (for valgrind, and the path taken where a sandbox refuses
/// clone(CLONE_VM)) starts the same children: only fds 0, 1 and 2, every instance.
#[test]
fn fork_spawning_starts_every_instance_with_only_0_1_2() {
    let d = TestDir::new("ecofork");
    let n = 20;
    d.ecosystem(&format!(
        "[[apps]]\nname = \"fds\"\ninstances = {n}\nscript = {}\nautorestart = false\n",
        q("ls /proc/$$/fd")
    ));
    let mut cmd = std::process::Command::new(RUNNER);
    cmd.arg(d.p("ecosystem.toml"))
        .current_dir(d.path())
        .env("RUNNER_SOCKET", d.path().join("runner.sock"))
        .env("RUNNER_SPAWN", "fork");
    let mut p = Proc::spawn(cmd);
    assert_only_0_1_2(&mut p, n);
}

#[test]
fn instances_start_with_empty_mask_and_default_dispositions() {
    let d = TestDir::new("ecomask");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"mask\"\nscript = {}\nautorestart = false\n",
        // The output goes to runner's stdout; grep reads its own status.
        q("exec grep Sig /proc/self/status")
    ));
    // runner itself starts with SIGINT and SIGHUP ignored.
    let script = format!(
        "trap '' INT HUP; exec '{RUNNER}' '{}'",
        d.p("ecosystem.toml")
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(d.path())
        .env("RUNNER_SOCKET", d.path().join("runner.sock"));
    let mut p = Proc::spawn(cmd);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let text = p.stdout();
    let field = |k: &str| -> u64 {
        let v = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .unwrap_or_else(|| panic!("{k} in {text}"));
        u64::from_str_radix(v.trim(), 16).unwrap()
    };
    // Signals 32 and 33 (glibc-internal) are left out here; see single.rs.
    let glibc_internal: u64 = (1 << 31) | (1 << 32);
    assert_eq!(field("SigBlk"), 0, "{text}");
    assert_eq!(field("SigIgn") & !glibc_internal, 0, "{text}");
}

/// Instances are forked without waiting for each exec (issue 18): an exec that fails is
/// still a failed start with its message and 126, not a program that ran and exited.
#[test]
fn an_exec_failure_in_ecosystem_mode_is_a_failed_start_with_code_126() {
    let d = TestDir::new("execfail");
    // Executable but no shebang and no ELF header: execve fails with ENOEXEC.
    let bad = d.write_exec("bad", "\u{7f}XYZ not a program\n");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"bad\"\nscript = \"{}\"\ninterpreter = \"none\"\nautorestart = false\n\
         instances = 3\n",
        bad.display()
    ));
    let mut p = runner_eco(&d, &[]);
    assert_eq!(p.code(Duration::from_secs(20)), 126, "{}", p.dump());
    let err = p.stderr();
    assert_eq!(err.matches("cannot start: executing").count(), 3, "{err}");
    assert!(!err.contains("started pid"), "{err}");
    assert!(!err.contains("exited (126)"), "{err}");
}
