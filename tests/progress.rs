//! Runner moves on by itself: probes, deadlines and stop requests progress without any
//! client connecting to the control socket. Nothing here talks to runner while it waits
//! (a client's connection wakes the loop and would hide a stall): progress is observed
//! through files the apps write. Stop signals delivered twice count as one request.

mod common;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::*;

/// A dependent that records when it started: it starts only once its dependency is online.
fn witness(name: &str, dep: &str, file: &str) -> String {
    format!(
        r#"
[[apps]]
name = "{name}"
script = "/bin/sh"
args = ["-c", "echo up > {file}; exec sleep 1000"]
depends_on = ["{dep}"]
"#
    )
}

#[test]
fn exec_tcp_and_http_probes_make_instances_online_without_any_client() {
    let d = TestDir::new("probe-progress");
    let (tcp, http) = (free_port(), free_port());
    let mut toml = format!(
        r#"
[[apps]]
name = "exec"
script = "sleep"
args = "1000"
ready_check = "exec:true"
listen_timeout = 60000

[[apps]]
name = "tcp"
script = "python3"
args = ["-m", "http.server", "{tcp}", "--bind", "127.0.0.1"]
ready_check = "tcp://127.0.0.1:{tcp}"
listen_timeout = 60000

[[apps]]
name = "http"
script = "python3"
args = ["-m", "http.server", "{http}", "--bind", "127.0.0.1"]
ready_check = "http://127.0.0.1:{http}/"
listen_timeout = 60000
"#
    );
    for probe in ["exec", "tcp", "http"] {
        toml.push_str(&witness(
            &format!("after-{probe}"),
            probe,
            &d.p(&format!("{probe}.started")),
        ));
    }
    d.ecosystem(&toml);
    let r = runner_eco(&d, &[]);
    // listen_timeout is a minute: only the probes can bring the dependents up sooner.
    for probe in ["exec", "tcp", "http"] {
        let file = format!("{probe}.started");
        let started = poll_until(Duration::from_secs(20), || d.exists(&file));
        assert!(started, "{probe}: dependent never started\n{}", r.dump());
    }
    assert!(!r.stderr().contains("listen_timeout"), "{}", r.dump());
}

#[test]
fn reload_with_a_ready_check_finishes_without_waiting_for_listen_timeout() {
    let d = TestDir::new("probe-reload");
    let mut toml = String::from(
        r#"
[[apps]]
name = "s"
script = "sleep"
args = "1000"
instances = 2
ready_check = "exec:true"
listen_timeout = 20000
"#,
    );
    toml.push_str(&witness("w", "s", &d.p("s.online")));
    d.ecosystem(&toml);
    let r = runner_eco(&d, &[]);
    d.wait_file_within("s.online", Duration::from_secs(15));
    // The client's request is the only traffic; while the reload runs its connection is
    // silent, so each replacement must come online through its probe alone. Two
    // replacements at listen_timeout would take 40 s.
    let mut reload = Proc::spawn(runner_cmd(d.path(), &["reload", "s"]));
    let code = reload.code(Duration::from_secs(15));
    assert_eq!(code, 0, "reload: {}\nrunner: {}", reload.dump(), r.dump());
    assert!(!r.stderr().contains("listen_timeout"), "{}", r.dump());
}

#[test]
fn fork_reload_whose_new_process_never_passes_its_probe_fails_and_leaves_it_running() {
    let d = TestDir::new("probe-reload-fail");
    let broken = d.p("broken");
    let toml = format!(
        r#"
[[apps]]
name = "s"
script = "/bin/sh"
args = ["-c", "echo $$ >> {pids}; exec sleep 1000"]
ready_check = "exec:test ! -f {broken}"
listen_timeout = 1500
"#,
        pids = d.p("pids"),
    ) + &witness("w", "s", &d.p("s.online"));
    d.ecosystem(&toml);
    let r = runner_eco(&d, &[]);
    d.wait_file_within("s.online", Duration::from_secs(15));
    d.write("broken", "");
    let mut reload = Proc::spawn(runner_cmd(d.path(), &["reload", "s"]));
    let code = reload.code(Duration::from_secs(20));
    assert_eq!(code, 1, "reload: {}\nrunner: {}", reload.dump(), r.dump());
    assert!(
        reload.stderr().contains("not ready within listen_timeout"),
        "{}",
        reload.dump()
    );
    // Fork mode replaces in place: the new process is the instance and keeps running.
    let pids = d.lines("pids");
    assert_eq!(pids.len(), 2, "one start and one replacement: {pids:?}");
    let new: i32 = pids[1].trim().parse().unwrap();
    assert!(alive(new), "the instance is gone\n{}", r.dump());
}

/// An app that drains for a moment on SIGINT/SIGTERM and writes what happened.
fn draining_app(name: &str, log: &str) -> String {
    format!(
        r#"
[[apps]]
name = "{name}"
script = "/bin/sh"
args = ["-c", "trap 'echo stopping >> {log}; kill $!; sleep 0.3; echo drained >> {log}; exit 0' INT TERM; echo up >> {log}; while :; do sleep 1000 & wait $!; done"]
kill_timeout = 20000
"#
    )
}

fn runner_in_own_group(d: &TestDir) -> Proc {
    let mut cmd = runner_cmd(d.path(), &[d.p("ecosystem.toml")]);
    cmd.process_group(0);
    Proc::spawn(cmd)
}

#[test]
fn sigterm_to_runner_and_its_process_group_at_once_is_one_graceful_stop() {
    let d = TestDir::new("double-term");
    d.ecosystem(&(draining_app("a", &d.p("a.log")) + &draining_app("b", &d.p("b.log"))));
    let mut r = runner_in_own_group(&d);
    for f in ["a.log", "b.log"] {
        d.wait_file_within(f, Duration::from_secs(15));
    }
    // What coreutils' `timeout` does: the pid, then the whole group (runner included).
    let pid = r.pid();
    send_signal(pid, "TERM");
    let group = std::process::Command::new("kill")
        .args(["-s", "TERM", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(group.success());
    let code = r.code(Duration::from_secs(20));
    assert_eq!(code, 0, "{}", r.dump());
    for f in ["a.log", "b.log"] {
        let lines = d.lines(f);
        assert!(
            lines.iter().any(|l| l == "drained"),
            "{f}: {lines:?}\n{}",
            r.dump()
        );
    }
    assert!(!r.stderr().contains("SIGKILL"), "{}", r.dump());
    assert!(!r.stderr().contains("second stop request"), "{}", r.dump());
}

#[test]
fn a_second_sigterm_seconds_later_still_kills_what_is_left() {
    let d = TestDir::new("second-term");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "stubborn"
script = "{sigrec}"
args = ["{out}", "none"]
kill_timeout = 60000
"#,
        sigrec = app("sigrec.py"),
        out = d.p("signals"),
    ));
    let mut r = runner_in_own_group(&d);
    d.wait_file_within("signals.ready", Duration::from_secs(15));
    send_signal(r.pid(), "TERM");
    wait_for("the stop signal to reach the app", DEADLINE, || {
        d.exists("signals") && d.read("signals").contains("SIGINT")
    });
    // Past the window in which a copy of the same request is ignored.
    std::thread::sleep(Duration::from_secs(2));
    send_signal(r.pid(), "TERM");
    // kill_timeout is a minute: only the second request can end it this soon.
    r.code(Duration::from_secs(20));
    assert!(r.stderr().contains("second stop request"), "{}", r.dump());
}

#[test]
fn restart_delay_watchdog_and_kill_deadlines_fire_without_any_client() {
    let d = TestDir::new("deadlines");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "delayed"
script = "{stamp}"
args = ["{starts}", "1"]
restart_delay = 500
min_uptime = 0

[[apps]]
name = "silent-watchdog"
script = "/bin/sh"
args = ["-c", "echo $$ >> {wd}; exec sleep 1000"]
watchdog = 500

[[apps]]
name = "stubborn"
script = "/bin/sh"
args = ["-c", "trap '' INT TERM; echo up > {up}; while :; do sleep 1000 & wait $!; done"]
kill_timeout = 1000
"#,
        up = d.p("stubborn.up"),
        stamp = app("stamp.sh"),
        starts = d.p("starts"),
        wd = d.p("watchdog"),
    ));
    let mut r = runner_in_own_group(&d);
    // Restarts after restart_delay, and watchdog misses, each need a deadline to fire.
    wait_for("three delayed restarts", Duration::from_secs(20), || {
        d.lines("starts").len() >= 3
    });
    wait_for("a watchdog restart", Duration::from_secs(20), || {
        d.lines("watchdog").len() >= 2
    });
    // An app that ignores its kill_signal is SIGKILLed at kill_timeout.
    d.wait_file("stubborn.up");
    r.signal("TERM");
    r.code(Duration::from_secs(20));
    assert!(r.stderr().contains("sending SIGKILL"), "{}", r.dump());
}
