//! `max_memory_restart` (SPEC section 4): the resident memory of an instance's whole
//! process tree is measured at least once a second; over the limit, a graceful restart.
mod common;

use common::*;
use std::time::Duration;

fn memhog(name: &str, mode: &str, limit: &str, d: &TestDir) -> String {
    format!(
        r#"
[[apps]]
name = "{name}"
script = "{hog}"
args = ["{mode}", "{stamp}"]
max_memory_restart = "{limit}"
kill_signal = "SIGTERM"
"#,
        hog = app("memhog.py"),
        stamp = d.p(&format!("{name}.log")),
    )
}

/// Waits until `name` has been restarted at least once and runs under a new pid; returns
/// the pids the app wrote at each start.
fn wait_memory_restart(d: &TestDir, name: &str, r: &Proc) -> Vec<u64> {
    wait_listening(d);
    let first = d.wait_lines(&format!("{name}.log"), 1);
    let first_pid = first[0].split_whitespace().nth(1).unwrap().to_string();
    let mut last = Vec::new();
    let restarted = poll_until(Duration::from_secs(40), || {
        last = rows_of(&list(d), name);
        last.first().is_some_and(|row| {
            row.i("restarts") >= 1 && row.i("pid") > 0 && row.i("pid").to_string() != first_pid
        })
    });
    assert!(
        restarted,
        "{name} was not restarted for its memory: {last:?}\n{}",
        r.dump()
    );
    let pids: Vec<u64> = d
        .wait_lines(&format!("{name}.log"), 2)
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(pids.len() >= 2, "{name} did not start again: {pids:?}");
    pids
}

#[test]
fn a_growing_app_is_restarted_and_one_under_the_limit_is_not() {
    let d = TestDir::new("mem-grow");
    d.ecosystem(&format!(
        "{}{}",
        memhog("grow", "grow", "40M", &d),
        memhog("steady", "steady", "100M", &d)
    ));
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "steady", 1, "online", DEADLINE);
    let steady_pid = rows_of(&list(&d), "steady")[0].i("pid");
    wait_memory_restart(&d, "grow", &r);
    // And again: the check keeps running.
    let restarted_twice = poll_until(Duration::from_secs(40), || {
        rows_of(&list(&d), "grow")[0].i("restarts") >= 2
    });
    assert!(
        restarted_twice,
        "grow was restarted only once: {:?}",
        list(&d)
    );
    // Several more measurements of the steady app (at least one per second).
    let end = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < end {
        let row = rows_of(&list(&d), "steady")[0].clone();
        assert_eq!(
            row.i("restarts"),
            0,
            "steady was restarted: {row:?}\n{}",
            r.dump()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let steady = rows_of(&list(&d), "steady")[0].clone();
    assert_eq!(
        steady.i("restarts"),
        0,
        "steady was restarted: {steady:?}\n{}",
        r.dump()
    );
    assert_eq!(steady.i("pid"), steady_pid);
    assert!(
        steady.i("memory") > 10 << 20,
        "list reports {} bytes for an app holding 10 MB",
        steady.i("memory")
    );
}

#[test]
fn memory_of_a_child_process_counts_too() {
    let d = TestDir::new("mem-child");
    d.ecosystem(&memhog("parent", "child", "40M", &d));
    let r = runner_eco(&d, &[]);
    wait_memory_restart(&d, "parent", &r);
}
