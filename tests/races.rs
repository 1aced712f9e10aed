//! Two operator actions (or signals) close together, while the first is still under way.
//!
//! Each pair runs against a fresh runner supervising a cluster app that says ready by
//! sd_notify and a fork-mode worker. Whatever the outcome of each command (some are
//! refused, some fail because the other one won), every command must answer, runner
//! must keep answering `list`, and a SIGTERM must end runner with 0 and leave nothing
//! behind. Two bugs this found: a SIGTERM during a reload left runner waiting forever
//! for a replacement that had been stopped, and `stop` then `reload` before the stop had
//! finished waited forever for an instance nobody would start.

mod common;

use common::*;
use std::time::Duration;

/// A step of a pair: a client command, or a signal to runner.
#[derive(Debug, Clone, Copy)]
enum Step {
    Cmd(&'static [&'static str]),
    Signal(&'static str),
}

use Step::{Cmd, Signal};

const PAIRS: &[(Step, Step)] = &[
    (Cmd(&["stop", "api"]), Cmd(&["reload", "api"])),
    (Cmd(&["stop", "api"]), Cmd(&["start", "api"])),
    (Cmd(&["stop", "worker"]), Cmd(&["restart", "worker"])),
    (Cmd(&["reload", "api"]), Signal("TERM")),
    (Cmd(&["reload", "api"]), Cmd(&["stop", "api"])),
    (Cmd(&["reload", "api"]), Cmd(&["delete", "api"])),
    (Cmd(&["reload", "api"]), Cmd(&["scale", "api", "3"])),
    (Cmd(&["reload", "api"]), Cmd(&["restart", "api"])),
    (Cmd(&["reload", "all"]), Cmd(&["stop", "all"])),
    (Cmd(&["reload", "worker"]), Cmd(&["stop", "worker"])),
    (Cmd(&["scale", "api", "3"]), Cmd(&["scale", "api", "1"])),
    (Cmd(&["restart", "all"]), Cmd(&["reload", "all"])),
    (Cmd(&["apply"]), Signal("TERM")),
    (Cmd(&["delete", "worker"]), Cmd(&["apply"])),
    (Signal("HUP"), Cmd(&["reload", "api"])),
    (Signal("HUP"), Signal("TERM")),
];

fn ecosystem(d: &TestDir, port: u16) {
    d.write(
        "worker.sh",
        "trap 'exit 0' INT TERM\nwhile :; do sleep 0.2 & wait $!; done\n",
    );
    d.ecosystem(&format!(
        r#"
[runner]
on_sighup = "reload"

[[apps]]
name = "api"
script = "{http}"
instances = 2
listen = ["127.0.0.1:{port}"]
wait_ready = true
listen_timeout = 10000
kill_timeout = 5000

[[apps]]
name = "worker"
script = "worker.sh"
depends_on = ["api"]
kill_timeout = 5000
"#,
        http = app("fd3http.py"),
    ));
}

#[test]
fn two_actions_close_together_always_end_and_runner_still_stops() {
    let mut problems = Vec::new();
    for (i, (first, second)) in PAIRS.iter().enumerate() {
        let d = TestDir::new(&format!("race{i}"));
        let port = free_port();
        ecosystem(&d, port);
        let mut r = runner_eco(&d, &[]);
        wait_app_status(&d, "api", 2, "online", DEADLINE);
        wait_app_status(&d, "worker", 1, "online", DEADLINE);

        let mut clients = Vec::new();
        for step in [first, second] {
            match step {
                Cmd(args) => clients.push((args, Proc::spawn(runner_cmd(d.path(), args)))),
                Signal(sig) => r.signal(sig),
            }
            // The second step lands while the first is under way.
            std::thread::sleep(Duration::from_millis(20));
        }
        let what = format!("{first:?} then {second:?}");
        for (args, c) in &mut clients {
            if !poll_until(Duration::from_secs(30), || c.has_exited()) {
                problems.push(format!(
                    "{what}: `runner {}` never answered",
                    args.join(" ")
                ));
            }
        }
        if !r.has_exited() {
            let listed = try_list(&d).is_some();
            // A `stop all` may end runner's last app just now, and runner then exits: a
            // list that fails is a problem only if runner is still there after it.
            if !r.has_exited() {
                if !listed {
                    problems.push(format!("{what}: list does not answer"));
                }
                r.signal("TERM");
            }
        }
        let pids: Vec<i32> = children(r.pid()).iter().map(|c| c.pid).collect();
        if !poll_until(Duration::from_secs(30), || r.has_exited()) {
            let rows = try_list(&d);
            problems.push(format!(
                "{what}: runner did not exit after SIGTERM; list: {rows:?}"
            ));
            r.signal("KILL");
            continue;
        }
        let code = r.code(Duration::from_secs(1));
        if code != 0 {
            problems.push(format!("{what}: runner exited {code}\n{}", r.dump()));
        }
        let left: Vec<i32> = pids.into_iter().filter(|p| alive(*p)).collect();
        if !left.is_empty() {
            problems.push(format!("{what}: processes outlived runner: {left:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
