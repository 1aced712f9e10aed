//! Reaping (SPEC section 4): runner as PID 1 of a PID namespace (`unshare --pid --fork
//! --mount-proc`), and as a child subreaper when it is not PID 1.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Whether this machine lets us create a PID namespace (root, or user namespaces).
fn namespaces_available() -> bool {
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("note: `unshare --pid --fork --mount-proc` is not permitted here; skipping");
    }
    ok
}

/// `unshare --pid --fork --mount-proc RUNNER ARGS...` in `dir`.
fn in_namespace(d: &TestDir, args: &[&str]) -> Proc {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", RUNNER])
        .args(args)
        .current_dir(d.path())
        .env_remove("RUNNER_LOG")
        .env("RUNNER_SOCKET", d.path().join("runner.sock"));
    Proc::spawn(cmd)
}

/// The host pid of runner: the child of the unshare process.
fn runner_in(unshare: &Proc) -> i32 {
    let mut pid = 0;
    wait_for(
        "runner to start in the namespace",
        DEADLINE,
        || match children(unshare.pid()).into_iter().find(|c| c.state != 'Z') {
            Some(c) if c.comm == "runner" => {
                pid = c.pid;
                true
            }
            _ => false,
        },
    );
    pid
}

#[test]
fn orphans_are_reaped_when_runner_is_pid_1() {
    if !namespaces_available() {
        return;
    }
    let d = TestDir::new("pid1reap");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"orphans\"\nscript = {}\nargs = [{}, \"20\"]\nautorestart = false\n",
        q(&app("orphans.py")),
        q(&d.p("result"))
    ));
    let mut p = in_namespace(&d, &[&d.p("ecosystem.toml")]);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let result = d.read("result");
    let field = |k: &str| -> usize {
        result
            .split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {result:?}\n{}", p.dump()))
            .parse()
            .unwrap()
    };
    assert!(
        field("orphans") > 0,
        "grandchildren were re-parented to PID 1 (runner): {result}"
    );
    assert_eq!(
        field("zombies"),
        0,
        "no zombie survives in the namespace: {result}"
    );
}

#[test]
fn no_zombie_children_linger_under_runner_as_pid_1() {
    // Seen from outside: a steady stream of orphans that exit, and runner's children
    // (host view) never keep a zombie for long.
    if !namespaces_available() {
        return;
    }
    let d = TestDir::new("pid1zombies");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"spawner\"\nscript = {}\n",
        q(&format!(
            "i=0; while [ $i -lt 40 ]; do sh -c 'sleep 0.05 &'; i=$((i+1)); done; touch {}; exec sleep 1000",
            d.p("done")
        ))
    ));
    let mut p = in_namespace(&d, &[&d.p("ecosystem.toml")]);
    let runner = runner_in(&p);
    wait_for("the orphans to be created", DEADLINE, || d.exists("done"));
    // Every orphan sleeps 50 ms; once they are all over, runner has no zombie child.
    wait_for("runner's zombie children to be reaped", DEADLINE, || {
        zombie_children(runner).is_empty()
    });
    // And they stay reaped (a zombie present in two samples 200 ms apart would be a leak).
    for _ in 0..5 {
        let z1 = zombie_children(runner);
        std::thread::sleep(Duration::from_millis(200));
        let z2 = zombie_children(runner);
        let lingering: Vec<_> = z1.iter().filter(|z| z2.contains(z)).collect();
        assert!(lingering.is_empty(), "zombies not reaped: {lingering:?}");
    }
    send_signal(runner, "TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
}

#[test]
fn sigterm_to_runner_as_pid_1_stops_apps_gracefully() {
    if !namespaces_available() {
        return;
    }
    let d = TestDir::new("pid1term");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"rec\"\nscript = {}\ninstances = 2\n",
        q(&format!(
            "exec python3 {} {}.$NODE_APP_INSTANCE",
            app("sigrec.py"),
            d.p("rec")
        ))
    ));
    let mut p = in_namespace(&d, &[&d.p("ecosystem.toml")]);
    let runner = runner_in(&p);
    d.wait_file("rec.0.ready");
    d.wait_file("rec.1.ready");
    send_signal(runner, "TERM");
    assert_eq!(
        p.code(T),
        0,
        "unshare returns runner's status: {}",
        p.dump()
    );
    for f in ["rec.0", "rec.1"] {
        // The SIGCONT that follows every stop signal (for a stopped process) may reach
        // Python's handlers before its exit or not: which is the scheduler's call.
        let lines: Vec<String> = d.lines(f).into_iter().filter(|l| l != "SIGCONT").collect();
        assert_eq!(lines, ["SIGINT"], "every instance stopped with SIGINT once");
    }
}

#[test]
fn sigterm_to_runner_as_pid_1_in_single_mode_propagates_the_exit_code() {
    if !namespaces_available() {
        return;
    }
    let d = TestDir::new("pid1single");
    let rec = d.p("rec");
    let mut p = in_namespace(
        &d,
        &["--", "python3", &app("sigrec.py"), &rec, "SIGTERM", "3"],
    );
    let runner = runner_in(&p);
    d.wait_file("rec.ready");
    send_signal(runner, "TERM");
    assert_eq!(p.code(T), 3, "{}", p.dump());
    assert_eq!(d.lines("rec"), ["SIGTERM"]);
}

#[test]
fn single_program_mode_as_pid_1_passes_the_exit_code_through() {
    if !namespaces_available() {
        return;
    }
    let d = TestDir::new("pid1exit");
    // The program's parent is runner, and runner is PID 1.
    let mut p = in_namespace(&d, &["--", "sh", "-c", "echo ppid=$PPID; exit 7"]);
    assert_eq!(p.code(T), 7, "{}", p.dump());
    assert!(p.stdout().contains("ppid=1"), "{}", p.dump());
}

#[test]
fn single_program_killed_by_a_signal_as_pid_1_exits_128_plus_n() {
    if !namespaces_available() {
        return;
    }
    let d = TestDir::new("pid1kill");
    let mut p = in_namespace(&d, &["--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(p.code(T), 137, "{}", p.dump());
}

#[test]
fn double_forked_daemon_is_reaped_by_runner_as_subreaper() {
    let d = TestDir::new("subreaper");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"daemonizer\"\nscript = {}\nargs = [{}, \"1.0\"]\n",
        q(&app("daemon.py")),
        q(&d.p("daemon"))
    ));
    let mut p = runner_eco(&d, &[]);
    let pid: i32 = d.wait_file("daemon").trim().parse().unwrap();
    let daemon = ProcId::of(pid);
    assert_eq!(
        stat(pid).unwrap().ppid,
        p.pid(),
        "the daemon was re-parented to runner (subreaper)"
    );
    // It exits after a second; runner reaps it: it does not stay a zombie.
    wait_for("the daemon to exit and be reaped", DEADLINE, || {
        !daemon.exists()
    });
    assert!(
        zombie_children(p.pid()).is_empty(),
        "{:?}",
        zombie_children(p.pid())
    );
    assert!(!p.has_exited(), "the app itself still runs: {}", p.dump());
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
}

#[test]
fn orphans_of_a_single_program_are_reaped_by_runner_as_subreaper() {
    let d = TestDir::new("subreaper1");
    // The program orphans a short-lived grandchild and keeps running.
    let mut p = runner(
        &d,
        &[
            "--",
            "sh",
            "-c",
            &format!(
                "sh -c 'sleep 0.3 & echo $! > {}'; exec sleep 1000",
                d.p("gc")
            ),
        ],
    );
    let pid: i32 = d.wait_file("gc").trim().parse().unwrap();
    if let Some(s) = stat(pid) {
        if s.state != 'Z' {
            assert_eq!(s.ppid, p.pid(), "the orphan was re-parented to runner");
        }
    }
    wait_for("the orphan to be reaped", DEADLINE, || {
        stat(pid).is_none_or(|s| s.ppid != p.pid())
    });
    assert!(zombie_children(p.pid()).is_empty());
    p.signal("TERM");
    assert_eq!(
        p.code(T),
        143,
        "sleep killed by the forwarded SIGTERM: {}",
        p.dump()
    );
}
