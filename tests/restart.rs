//! Restart policy (SPEC sections 2 and 4): autorestart, stop_exit_codes, min_uptime,
//! max_restarts, restart_delay, exp_backoff_restart_delay, critical, runner's exit code.

mod common;

use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An app running `stamp.sh FILE CODE [SECONDS]` plus extra TOML lines.
fn stamp_app(
    d: &TestDir,
    name: &str,
    file: &str,
    code: i32,
    secs: Option<&str>,
    extra: &str,
) -> String {
    let mut args = vec![q(&d.p(file)), q(&code.to_string())];
    if let Some(s) = secs {
        args.push(q(s));
    }
    format!(
        "[[apps]]\nname = {}\nscript = {}\nargs = [{}]\n{extra}\n",
        q(name),
        q(&app("stamp.sh")),
        args.join(", ")
    )
}

fn gaps(d: &TestDir, file: &str) -> Vec<u64> {
    let s = stamps(&d.lines(file));
    s.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn autorestart_restarts_a_crashing_app() {
    let d = TestDir::new("autorestart");
    d.ecosystem(&stamp_app(&d, "crash", "starts", 1, Some("0.1"), ""));
    let mut p = runner_eco(&d, &[]);
    d.wait_lines("starts", 3);
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "stopped by request: {}", p.dump());
}

#[test]
fn stop_exit_code_is_not_restarted_and_runner_exits_0() {
    let d = TestDir::new("stopcodes");
    d.ecosystem(&stamp_app(
        &d,
        "done",
        "starts",
        0,
        None,
        "stop_exit_codes = [0]",
    ));
    let mut p = runner_eco(&d, &[]);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    assert_eq!(d.lines("starts").len(), 1, "not restarted");
}

#[test]
fn nonzero_stop_exit_code_is_not_restarted_and_runner_exits_0() {
    let d = TestDir::new("stopcodes3");
    d.ecosystem(&stamp_app(
        &d,
        "done",
        "starts",
        3,
        None,
        "stop_exit_codes = [0, 3]",
    ));
    let mut p = runner_eco(&d, &[]);
    assert_eq!(
        p.code(T),
        0,
        "an exit code in stop_exit_codes is a success: {}",
        p.dump()
    );
    assert_eq!(d.lines("starts").len(), 1, "not restarted");
}

#[test]
fn autorestart_false_exit_5_makes_runner_exit_5() {
    let d = TestDir::new("noautorestart");
    d.ecosystem(&stamp_app(
        &d,
        "once",
        "starts",
        5,
        None,
        "autorestart = false",
    ));
    let mut p = runner_eco(&d, &[]);
    assert_eq!(p.code(T), 5, "{}", p.dump());
    assert_eq!(d.lines("starts").len(), 1, "not restarted");
}

#[test]
fn runner_waits_for_the_other_apps_before_exiting_with_the_failed_code() {
    // A fails for good at once; B keeps running until runner is asked to stop. runner
    // stays up for B, then exits with A's code (the first app that failed for good).
    let d = TestDir::new("firstfailed");
    let mut toml = stamp_app(&d, "A", "a", 3, None, "autorestart = false");
    toml += &format!(
        "[[apps]]\nname = \"B\"\nscript = {}\nargs = [{}]\n",
        q(&app("sigrec.py")),
        q(&d.p("b"))
    );
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    d.wait_file("b.ready");
    d.wait_lines("a", 1);
    // A is gone for good; runner must keep running for B.
    let a_pid: i32 = d.lines("a")[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    wait_for("A to be reaped", DEADLINE, || stat(a_pid).is_none());
    assert!(
        !p.has_exited(),
        "runner must keep running while B runs: {}",
        p.dump()
    );
    p.signal("TERM");
    assert_eq!(p.code(T), 3, "{}", p.dump());
    assert!(
        d.lines("b").iter().any(|l| l == "SIGINT"),
        "B was stopped with its kill_signal"
    );
}

#[test]
fn crash_loop_ends_errored_after_17_starts_with_little_cpu() {
    let d = TestDir::new("crashloop");
    d.ecosystem(&stamp_app(
        &d,
        "loop",
        "starts",
        1,
        None,
        "restart_delay = 0",
    ));
    let mut p = runner_eco(&d, &[]);
    let pid = p.pid();
    // Read runner's CPU time while it is a zombie: after it exited, before it is reaped.
    let mut cpu_ticks = None;
    wait_for("runner to exit", T, || match stat(pid) {
        Some(s) if s.state == 'Z' => {
            cpu_ticks = Some(s.utime + s.stime);
            true
        }
        Some(_) => {
            if let Some(s) = stat(pid) {
                cpu_ticks = Some(s.utime + s.stime);
            }
            false
        }
        None => true,
    });
    assert_eq!(p.code(T), 1, "the errored app's code: {}", p.dump());
    assert_eq!(
        d.lines("starts").len(),
        17,
        "max_restarts (16) + 1 starts: {}",
        p.dump()
    );
    let cpu = cpu_ticks.expect("runner's CPU time");
    assert!(
        cpu < 2 * CLK_TCK,
        "runner used {cpu} ticks of CPU during a crash loop"
    );
}

#[test]
fn max_restarts_counts_consecutive_unstable_starts() {
    let d = TestDir::new("maxrestarts");
    d.ecosystem(&stamp_app(
        &d,
        "loop",
        "starts",
        7,
        None,
        "max_restarts = 2",
    ));
    let mut p = runner_eco(&d, &[]);
    assert_eq!(p.code(T), 7, "{}", p.dump());
    assert_eq!(d.lines("starts").len(), 3, "max_restarts (2) + 1 starts");
}

#[test]
fn restart_delay_waits_between_restarts() {
    let d = TestDir::new("restartdelay");
    d.ecosystem(&stamp_app(
        &d,
        "slow",
        "starts",
        1,
        None,
        "restart_delay = 300",
    ));
    let mut p = runner_eco(&d, &[]);
    d.wait_lines("starts", 4);
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let g = gaps(&d, "starts");
    assert!(g.len() >= 3, "{g:?}");
    for gap in &g {
        assert!(*gap >= 290, "restarts at least 300 ms apart, gaps {g:?}");
    }
}

#[test]
fn restart_delay_accepts_a_duration_string() {
    let d = TestDir::new("restartdelaystr");
    d.ecosystem(&stamp_app(
        &d,
        "slow",
        "starts",
        1,
        None,
        "restart_delay = \"0.3s\"",
    ));
    let mut p = runner_eco(&d, &[]);
    d.wait_lines("starts", 3);
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    for gap in gaps(&d, "starts") {
        assert!(gap >= 290, "gap {gap}");
    }
}

#[test]
fn exp_backoff_restart_delay_grows() {
    let d = TestDir::new("backoff");
    d.ecosystem(&stamp_app(
        &d,
        "backoff",
        "starts",
        1,
        None,
        "exp_backoff_restart_delay = 100",
    ));
    let mut p = runner_eco(&d, &[]);
    d.wait_lines("starts", 5);
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let g = gaps(&d, "starts");
    assert!(g.len() >= 4, "{g:?}");
    // Waits of 100, 150, 225, 337 ms: each gap is at least its wait.
    let mut expected = 100.0_f64;
    for gap in g.iter().take(4) {
        assert!(
            *gap as f64 >= expected - 10.0,
            "gaps {g:?} should grow x1.5 from 100 ms"
        );
        expected *= 1.5;
    }
    assert!(g[3] > g[0], "gaps grow: {g:?}");
}

#[test]
fn critical_app_exit_stops_the_others_and_runner_exits_with_its_code() {
    let d = TestDir::new("critical");
    let ready = d.p("other.ready");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "other"
script = {rec}
args = [{out}]

[[apps]]
name = "essential"
script = {crit}
critical = true
autorestart = false
"#,
        rec = q(&app("sigrec.py")),
        out = q(&d.p("other")),
        crit = q(&format!(
            "while [ ! -e {ready} ]; do sleep 0.05; done; exit 4"
        )),
    ));
    let mut p = runner_eco(&d, &[]);
    assert_eq!(p.code(T), 4, "{}", p.dump());
    assert!(
        d.lines("other").iter().any(|l| l == "SIGINT"),
        "the other app was stopped gracefully with its kill_signal: {:?}\n{}",
        d.lines("other"),
        p.dump()
    );
}

#[test]
fn critical_app_out_of_restarts_stops_the_others() {
    let d = TestDir::new("criticalerr");
    let mut toml = format!(
        "[[apps]]\nname = \"other\"\nscript = {}\nargs = [{}]\n\n",
        q(&app("sigrec.py")),
        q(&d.p("other"))
    );
    // Crashes only once the other app's handlers are in place.
    toml += &format!(
        "[[apps]]\nname = \"essential\"\nscript = {}\ncritical = true\nmax_restarts = 2\n",
        q(&format!(
            "while [ ! -e {ready} ]; do sleep 0.02; done; echo x >> {starts}; exit 9",
            ready = d.p("other.ready"),
            starts = d.p("starts")
        ))
    );
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    assert_eq!(p.code(T), 9, "{}", p.dump());
    assert_eq!(d.lines("starts").len(), 3);
    assert!(
        d.lines("other").iter().any(|l| l == "SIGINT"),
        "{:?}",
        d.lines("other")
    );
}

#[test]
fn non_critical_app_out_of_restarts_leaves_the_others_running() {
    let d = TestDir::new("noncritical");
    let mut toml = format!(
        "[[apps]]\nname = \"other\"\nscript = {}\nargs = [{}]\n\n",
        q(&app("sigrec.py")),
        q(&d.p("other"))
    );
    toml += &stamp_app(&d, "flaky", "starts", 9, None, "max_restarts = 2");
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    d.wait_file("other.ready");
    d.wait_lines("starts", 3);
    let last: i32 = d.lines("starts")[2]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    wait_for("the last start to be reaped", DEADLINE, || {
        stat(last).is_none()
    });
    assert!(!p.has_exited(), "{}", p.dump());
    assert!(
        d.lines("other").is_empty(),
        "the other app is untouched: {:?}",
        d.lines("other")
    );
    p.signal("TERM");
    assert_eq!(
        p.code(T),
        9,
        "the first app that failed for good: {}",
        p.dump()
    );
    assert_eq!(d.lines("starts").len(), 3, "errored stays down");
}

#[test]
fn runs_longer_than_min_uptime_are_restarted_indefinitely() {
    let d = TestDir::new("minuptime");
    d.ecosystem(&stamp_app(
        &d,
        "steady",
        "starts",
        1,
        Some("0.3"),
        "min_uptime = 100\nmax_restarts = 1",
    ));
    let mut p = runner_eco(&d, &[]);
    d.wait_lines("starts", 5);
    assert!(
        !p.has_exited(),
        "stable runs never make the app errored: {}",
        p.dump()
    );
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
}

#[test]
fn exit_0_is_restarted_by_default() {
    // PM2 semantics: autorestart restarts whatever the exit code, unless stop_exit_codes.
    let d = TestDir::new("exit0restart");
    d.ecosystem(&stamp_app(&d, "zero", "starts", 0, Some("0.05"), ""));
    let mut p = runner_eco(&d, &[]);
    d.wait_lines("starts", 3);
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
}

#[test]
fn idle_runner_does_not_wake_up() {
    let d = TestDir::new("idle");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"rec\"\nscript = {}\nargs = [{}]\n",
        q(&app("sigrec.py")),
        q(&d.p("rec"))
    ));
    let mut p = runner_eco(&d, &[]);
    d.wait_file("rec.ready");
    let switches = |pid: i32| -> u64 {
        ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
            .iter()
            .map(|k| status_field(pid, k).unwrap().parse::<u64>().unwrap())
            .sum()
    };
    // Let start-up settle, then watch runner's main thread for a while.
    std::thread::sleep(Duration::from_millis(500));
    let before = switches(p.pid());
    std::thread::sleep(Duration::from_millis(1500));
    let after = switches(p.pid());
    assert!(
        after - before <= 2,
        "runner woke up {} times while idle",
        after - before
    );
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
}
