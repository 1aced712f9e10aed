//! Graceful stop (SPEC section 4): kill_signal, kill_timeout, second signal, treekill,
//! stopped apps, parallel stops, runner's exit code after a requested stop.

mod common;

use common::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A sigrec.py app: `sigrec.py DIR/OUT EXIT_ON` plus extra lines.
fn rec_app(d: &TestDir, name: &str, out: &str, exit_on: &str, extra: &str) -> String {
    format!(
        "[[apps]]\nname = {}\nscript = {}\nargs = [{}, {}]\n{extra}\n",
        q(name),
        q(&app("sigrec.py")),
        q(&d.p(out)),
        q(exit_on)
    )
}

fn count(d: &TestDir, file: &str, sig: &str) -> usize {
    d.lines(file).iter().filter(|l| *l == sig).count()
}

fn ready_pid(d: &TestDir, file: &str) -> i32 {
    d.wait_file(&format!("{file}.ready"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn sigterm_stops_every_app_with_sigint_by_default_and_runner_exits_0() {
    let d = TestDir::new("stopall");
    let mut toml = rec_app(&d, "one", "one", "SIGTERM,SIGINT", "");
    toml += &rec_app(&d, "two", "two", "SIGTERM,SIGINT", "");
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    let pids = [ready_pid(&d, "one"), ready_pid(&d, "two")];
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    for f in ["one", "two"] {
        assert_eq!(count(&d, f, "SIGINT"), 1, "{f}: {:?}", d.lines(f));
        assert_eq!(count(&d, f, "SIGTERM"), 0, "{f}: {:?}", d.lines(f));
    }
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived");
    }
}

#[test]
fn sigint_to_runner_stops_every_app() {
    let d = TestDir::new("stopint");
    d.ecosystem(&rec_app(
        &d,
        "one",
        "one",
        "SIGTERM,SIGINT",
        "instances = 2",
    ));
    let mut p = runner_eco(&d, &[]);
    d.wait_file("one.ready");
    wait_for("both instances", DEADLINE, || {
        started_pids(&p.stderr(), "one").len() == 2
    });
    let pids = started_pids(&p.stderr(), "one");
    for pid in &pids {
        wait_for("instance ready", DEADLINE, || {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .map_or(true, |c| c.contains("sigrec"))
        });
    }
    p.signal("INT");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived");
    }
}

#[test]
fn sigquit_to_runner_stops_every_app() {
    let d = TestDir::new("stopquit");
    d.ecosystem(&rec_app(&d, "one", "one", "SIGTERM,SIGINT", ""));
    let mut p = runner_eco(&d, &[]);
    let pid = ready_pid(&d, "one");
    p.signal("QUIT");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    assert_eq!(count(&d, "one", "SIGINT"), 1, "{:?}", d.lines("one"));
    assert!(!alive(pid));
}

#[test]
fn kill_signal_is_configurable_per_app() {
    let d = TestDir::new("killsig");
    let mut toml = rec_app(&d, "term", "term", "SIGTERM", "kill_signal = \"SIGTERM\"");
    toml += &rec_app(&d, "usr2", "usr2", "SIGUSR2", "kill_signal = \"SIGUSR2\"");
    toml += &rec_app(&d, "bare", "bare", "SIGHUP", "kill_signal = \"HUP\"");
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    for f in ["term", "usr2", "bare"] {
        ready_pid(&d, f);
    }
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    assert_eq!(count(&d, "term", "SIGTERM"), 1, "{:?}", d.lines("term"));
    assert_eq!(count(&d, "usr2", "SIGUSR2"), 1, "{:?}", d.lines("usr2"));
    assert_eq!(count(&d, "bare", "SIGHUP"), 1, "{:?}", d.lines("bare"));
    for f in ["term", "usr2", "bare"] {
        assert_eq!(count(&d, f, "SIGINT"), 0, "{f}: {:?}", d.lines(f));
    }
}

#[test]
fn app_ignoring_its_kill_signal_is_sigkilled_after_kill_timeout() {
    let d = TestDir::new("killtimeout");
    d.ecosystem(&rec_app(
        &d,
        "stubborn",
        "rec",
        "none",
        "kill_timeout = 500",
    ));
    let mut p = runner_eco(&d, &[]);
    let pid = ready_pid(&d, "rec");
    let sent = Instant::now();
    p.signal("TERM");
    let code = p.code(T);
    let took = sent.elapsed();
    assert_eq!(code, 0, "stopped by request: {}", p.dump());
    assert_eq!(
        count(&d, "rec", "SIGINT"),
        1,
        "graceful signal first: {:?}",
        d.lines("rec")
    );
    assert!(!alive(pid), "the app was killed");
    assert!(
        took >= Duration::from_millis(450),
        "SIGKILL only after kill_timeout, took {took:?}"
    );
}

#[test]
fn second_sigterm_during_the_stop_kills_at_once() {
    let d = TestDir::new("secondterm");
    d.ecosystem(&rec_app(
        &d,
        "stubborn",
        "rec",
        "none",
        "kill_timeout = 60000",
    ));
    let mut p = runner_eco(&d, &[]);
    let pid = ready_pid(&d, "rec");
    let sent = Instant::now();
    p.signal("TERM");
    wait_for("the graceful signal to arrive", DEADLINE, || {
        count(&d, "rec", "SIGINT") == 1
    });
    assert!(
        !p.has_exited(),
        "runner waits for kill_timeout: {}",
        p.dump()
    );
    // A copy within a second is the same request (see tests/progress.rs); this is a new one.
    std::thread::sleep(Duration::from_millis(1500));
    p.signal("TERM");
    let code = p.code(Duration::from_secs(20));
    assert!(
        sent.elapsed() < Duration::from_secs(30),
        "well under kill_timeout"
    );
    assert!(!alive(pid), "the app was killed");
    // A forced stop is still a stop by request.
    assert_eq!(code, 0, "{}", p.dump());
}

#[test]
fn sigint_after_sigterm_also_forces_the_stop() {
    let d = TestDir::new("secondint");
    d.ecosystem(&rec_app(
        &d,
        "stubborn",
        "rec",
        "none",
        "kill_timeout = 60000",
    ));
    let mut p = runner_eco(&d, &[]);
    let pid = ready_pid(&d, "rec");
    p.signal("TERM");
    wait_for("the graceful signal to arrive", DEADLINE, || {
        count(&d, "rec", "SIGINT") == 1
    });
    std::thread::sleep(Duration::from_millis(1500));
    p.signal("INT");
    p.wait(Duration::from_secs(20));
    assert!(!alive(pid));
}

#[test]
fn a_stopped_app_is_continued_so_it_can_stop_gracefully() {
    let d = TestDir::new("sigstop");
    d.ecosystem(&rec_app(
        &d,
        "frozen",
        "rec",
        "SIGINT",
        "kill_timeout = 10000",
    ));
    let mut p = runner_eco(&d, &[]);
    let pid = ready_pid(&d, "rec");
    send_signal(pid, "STOP");
    wait_for("the app to be stopped", DEADLINE, || {
        stat(pid).is_some_and(|s| s.state == 'T')
    });
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    // Handled SIGINT (recorded), not a SIGKILL after kill_timeout.
    assert_eq!(count(&d, "rec", "SIGINT"), 1, "{:?}", d.lines("rec"));
}

#[test]
fn independent_apps_are_stopped_in_parallel() {
    let d = TestDir::new("parallel");
    let log = d.p("log");
    d.write(
        "slowstop.py",
        "import signal, sys, time\nlabel, out = sys.argv[1], sys.argv[2]\n\
         def log(w):\n    open(out, 'a').write(label + ' ' + w + '\\n')\n\
         def stop(n, f):\n    log('got-signal')\n    time.sleep(1.0)\n    log('stopped')\n    sys.exit(0)\n\
         signal.signal(signal.SIGINT, stop)\nlog('start')\nwhile True:\n    signal.pause()\n",
    );
    let mut toml = String::new();
    for n in ["a", "b", "c"] {
        toml += &format!(
            "[[apps]]\nname = {}\nscript = \"slowstop.py\"\nargs = [{}, {}]\n\n",
            q(n),
            q(n),
            q(&log)
        );
    }
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    d.wait_lines("log", 3);
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let lines = d.lines("log");
    let first_stopped = lines.iter().position(|l| l.ends_with("stopped")).unwrap();
    let got = lines
        .iter()
        .take(first_stopped)
        .filter(|l| l.ends_with("got-signal"))
        .count();
    assert_eq!(
        got, 3,
        "every app got its signal before any finished stopping: {lines:?}"
    );
}

#[test]
fn runner_exits_0_after_a_requested_stop_even_if_apps_exit_nonzero() {
    let d = TestDir::new("stopcode");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"grumpy\"\nscript = {}\nargs = [{}, \"SIGINT\", \"3\"]\n",
        q(&app("sigrec.py")),
        q(&d.p("rec"))
    ));
    let mut p = runner_eco(&d, &[]);
    ready_pid(&d, "rec");
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "every app ended by request: {}", p.dump());
    assert_eq!(count(&d, "rec", "SIGINT"), 1);
}

/// Pids written by tree.py: main, group, session, orphan.
fn tree_pids(d: &TestDir, file: &str) -> Vec<(String, ProcId)> {
    d.wait_file(file);
    d.lines(file)
        .iter()
        .map(|l| {
            let (role, pid) = l.split_once(' ').unwrap();
            (role.to_string(), ProcId::of(pid.parse().unwrap()))
        })
        .collect()
}

#[test]
fn treekill_stops_descendants_that_left_the_group_or_were_orphaned() {
    let d = TestDir::new("treekill");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"tree\"\nscript = {}\nargs = [{}]\n",
        q(&app("tree.py")),
        q(&d.p("pids"))
    ));
    let mut p = runner_eco(&d, &[]);
    let pids = tree_pids(&d, "pids");
    assert_eq!(pids.len(), 4);
    for (role, id) in &pids {
        assert!(id.alive(), "{role} should be alive before the stop");
    }
    // The orphan was re-parented to runner (a subreaper).
    let orphan = pids.iter().find(|(r, _)| r == "orphan").unwrap().1;
    assert_eq!(
        stat(orphan.pid).unwrap().ppid,
        p.pid(),
        "orphans are re-parented to runner"
    );
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    // Nothing may survive runner (and nothing is left as a zombie for init either).
    for (role, id) in &pids {
        wait_for(
            &format!("{role} ({}) to be gone", id.pid),
            Duration::from_secs(5),
            || !id.exists(),
        );
    }
}

#[test]
fn treekill_sigkills_a_tree_that_ignores_the_kill_signal() {
    let d = TestDir::new("treekill9");
    // tree.py with SIGINT ignored (inherited by every process of its tree).
    d.ecosystem(&format!(
        "[[apps]]\nname = \"tree\"\nscript = {}\nkill_timeout = 500\n",
        q(&format!(
            "exec python3 -c 'import signal,sys,runpy; signal.signal(signal.SIGINT, signal.SIG_IGN); sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name=\"__main__\")' {} {}",
            app("tree.py"),
            d.p("pids")
        )),
    ));
    let mut p = runner_eco(&d, &[]);
    let pids = tree_pids(&d, "pids");
    assert_eq!(pids.len(), 4, "{:?}", d.lines("pids"));
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    for (role, id) in &pids {
        wait_for(
            &format!("{role} ({}) to be gone", id.pid),
            Duration::from_secs(5),
            || !id.exists(),
        );
    }
}

#[test]
fn kill_signal_reaches_each_member_of_the_process_group_exactly_once() {
    let d = TestDir::new("groupsig");
    // The main process starts a recorder in its own process group, then becomes a recorder.
    d.ecosystem(&format!(
        "[[apps]]\nname = \"pair\"\nscript = {}\n",
        q(&format!(
            "python3 {rec} {child} & exec python3 {rec} {main}",
            rec = app("sigrec.py"),
            child = d.p("child"),
            main = d.p("main")
        )),
    ));
    let mut p = runner_eco(&d, &[]);
    let child = ready_pid(&d, "child");
    let main = ready_pid(&d, "main");
    assert_eq!(stat(child).unwrap().pgid, main, "same process group");
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    assert_eq!(
        count(&d, "main", "SIGINT"),
        1,
        "main: {:?}",
        d.lines("main")
    );
    assert_eq!(
        count(&d, "child", "SIGINT"),
        1,
        "group member: {:?}",
        d.lines("child")
    );
}

#[test]
fn treekill_stops_a_process_that_joined_the_group_from_outside_the_tree() {
    let d = TestDir::new("groupjoin");
    d.ecosystem(&rec_app(&d, "leader", "rec", "SIGINT", ""));
    let mut p = runner_eco(&d, &[]);
    let leader = ready_pid(&d, "rec");
    // A process of this test (same session as runner) joins the app's process group.
    let mut joiner = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import os, signal, sys\nos.setpgid(0, {leader})\nopen(sys.argv[1], 'w').write('x')\nsignal.pause()\n"
        ))
        .arg(d.p("joined"))
        .spawn()
        .unwrap();
    d.wait_file("joined");
    assert_eq!(stat(joiner.id() as i32).unwrap().pgid, leader);
    p.signal("TERM");
    // The joiner dies of the group's SIGINT (default action: KeyboardInterrupt, exit).
    wait_for("the group member to die", T, || {
        matches!(joiner.try_wait(), Ok(Some(_)))
    });
    assert_eq!(p.code(T), 0, "{}", p.dump());
}

#[test]
fn treekill_false_signals_only_the_main_process() {
    let d = TestDir::new("notreekill");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"pair\"\nscript = {}\ntreekill = false\n",
        q(&format!(
            "python3 {rec} {child} SIGTERM & exec python3 {rec} {main}",
            rec = app("sigrec.py"),
            child = d.p("child"),
            main = d.p("main")
        )),
    ));
    let mut p = runner_eco(&d, &[]);
    let child = ready_pid(&d, "child");
    ready_pid(&d, "main");
    p.signal("TERM");
    let code = p.code(T);
    assert_eq!(
        count(&d, "main", "SIGINT"),
        1,
        "main: {:?}",
        d.lines("main")
    );
    assert_eq!(
        count(&d, "child", "SIGINT"),
        0,
        "child must not get the kill_signal: {:?}",
        d.lines("child")
    );
    assert_eq!(code, 0, "{}", p.dump());
    if alive(child) {
        send_signal(child, "KILL");
    }
}

#[test]
fn runner_answers_and_reaps_while_it_waits_for_leftovers_before_exiting() {
    // Two daemons outlive their treekill = false app; once the app has stopped, runner's
    // last sweep sends them SIGTERM. One exits, the other ignores it and asks runner for
    // `list` meanwhile: the wait for it is a deadline of the loop, not a sleep, so the
    // list is answered and the other daemon reaped before its SIGKILL.
    let d = TestDir::new("sweep");
    let sock = d.p("runner.sock");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"left\"\nscript = {}\nargs = [{}, {}, {}]\n\
         treekill = false\nautorestart = false\n",
        q(&app("leftovers.py")),
        q(&d.p("")),
        q(RUNNER),
        q(&sock)
    ));
    let mut p = runner_eco(&d, &["--socket", &sock]);
    let quitter: i32 = d.wait_file("quitter.pid").trim().parse().unwrap();
    let stubborn: i32 = d.wait_file("stubborn.pid").trim().parse().unwrap();
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let list = d.read("list");
    let (code, json) = list.split_once('\n').unwrap_or((&list, ""));
    assert_eq!(
        code,
        "0",
        "list during the sweep failed: {list}\n{}",
        p.dump()
    );
    assert!(json.contains("\"left\""), "{list}");
    assert!(
        d.exists("reaped"),
        "the quitter was not reaped during the sweep"
    );
    assert!(
        p.stderr().contains("stopping 2 leftover process(es)"),
        "{}",
        p.dump()
    );
    assert!(
        !alive(quitter) && !alive(stubborn),
        "a leftover survived runner"
    );
}

#[test]
fn a_storm_of_forwarded_signals_delays_no_restart_and_no_stop() {
    // A wake-up that brought only signals runner passes on skips the rest of its turn
    // (issue 18): the deadlines it had must still fall due while such signals keep coming.
    let d = TestDir::new("fwdstorm");
    let starts = d.p("starts");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"crashy\"\nscript = \"/bin/sh\"\nargs = [\"-c\", {}]\n\
         restart_delay = \"300ms\"\nmin_uptime = 10\nmax_restarts = 1000\n",
        q(&format!(
            "trap '' USR1; echo $$ >> {}; sleep 0.2; exit 1",
            q(&starts)
        ))
    ));
    let mut p = runner_eco(&d, &[]);
    d.wait_file("starts");
    let storm_until = Instant::now() + T;
    while d.lines("starts").len() < 4 && Instant::now() < storm_until {
        p.signal("USR1");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        d.lines("starts").len() >= 4,
        "{:?}\n{}",
        d.lines("starts"),
        p.dump()
    );
    for _ in 0..20 {
        p.signal("USR1");
    }
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
}
