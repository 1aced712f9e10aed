//! `health_check` (liveness) with real processes: a hung HTTP app is restarted after
//! `health_failures` failed checks and not before; a hung `exec:` check is killed with
//! its whole process group at `health_timeout`.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn starts(dir: &TestDir) -> Vec<(i32, u64)> {
    if !dir.exists("starts") {
        return Vec::new();
    }
    dir.lines("starts")
        .iter()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn an_http_app_that_stops_answering_is_restarted_after_health_failures_checks() {
    let dir = TestDir::new("health-http");
    let port = free_port();
    dir.ecosystem(&format!(
        r#"
[[apps]]
name = "web"
script = "{app}"
args = ["{port}"]
health_check = "http://127.0.0.1:{port}/health"
health_interval = "1s"
health_timeout = "500ms"
health_failures = 3
"#,
        app = app("hang_http.py")
    ));
    let mut r = runner_eco(&dir, &[]);
    wait_for("the app to answer", DEADLINE, || {
        http_get(port, "/").is_ok()
    });
    let first = starts(&dir)[0].0;
    // Healthy checks do not restart it.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(starts(&dir).len(), 1, "{}", r.dump());

    dir.write("hang", "");
    let hung_at = Instant::now();
    wait_for("a restart", Duration::from_secs(40), || {
        starts(&dir).len() >= 2
    });
    let took = hung_at.elapsed();
    // 3 checks that each time out after 0.5 s, 1 s apart: about 3.5-5 s. Not before
    // the third failure (loosely: 2.5 s), and not much later (generously).
    assert!(
        took >= Duration::from_millis(2500),
        "restarted after only {took:?}"
    );
    assert!(
        took <= Duration::from_secs(30),
        "restarted only after {took:?}"
    );
    wait_for("the hung process to be gone", DEADLINE, || !alive(first));
    assert!(
        r.stderr().contains(&format!(
            "web[0]: health_check http://127.0.0.1:{port}/health failed 3 times in a row (last: no answer within health_timeout (500ms)); restarting it"
        )),
        "{}",
        r.dump()
    );
    // The new process answers again and is counted as one restart.
    wait_for("the new process to answer", DEADLINE, || {
        http_get(port, "/").is_ok()
    });
    let rows = list(&dir);
    assert_eq!(rows_of(&rows, "web")[0].i("restarts"), 1, "{}", r.dump());
    r.signal("TERM");
    assert_eq!(r.code(DEADLINE), 0);
}

#[test]
fn a_hung_exec_check_is_killed_with_its_group_at_health_timeout() {
    let dir = TestDir::new("health-exec");
    let checks = dir.p("checks");
    dir.ecosystem(&format!(
        r#"
[[apps]]
name = "svc"
script = "sleep"
args = "100000"
health_check = "exec:echo $$ >> {checks}; sleep 100000 & echo $! >> {checks}; wait"
health_interval = "300ms"
health_timeout = "700ms"
health_failures = 1000
"#
    ));
    let mut r = runner_eco(&dir, &[]);
    // Each check writes its shell's pid, then its child's.
    wait_for("two checks", Duration::from_secs(30), || {
        dir.exists("checks") && dir.lines("checks").len() >= 4
    });
    let pids: Vec<i32> = dir
        .lines("checks")
        .iter()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let (sh, kid) = (pids[0], pids[1]);
    wait_for(
        "the first check's shell and child to be killed",
        DEADLINE,
        || !alive(sh) && !alive(kid),
    );
    // Never two checks of one instance at once: at most one check shell is alive.
    for _ in 0..10 {
        let pids: Vec<i32> = dir
            .lines("checks")
            .iter()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let shells = pids.iter().step_by(2).filter(|p| alive(**p)).count();
        assert!(shells <= 1, "{shells} checks at once");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        r.stderr().contains("svc[0]: health_check exec:echo $$"),
        "{}",
        r.dump()
    );
    assert!(r
        .stderr()
        .contains("no answer within health_timeout (700ms)"));
    // The instance itself was never restarted (failures below the threshold).
    assert_eq!(rows_of(&list(&dir), "svc")[0].i("restarts"), 0);
    r.signal("TERM");
    assert_eq!(r.code(DEADLINE), 0);
    // Nothing of any check outlives runner.
    let pids: Vec<i32> = dir
        .lines("checks")
        .iter()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    wait_for("every check process to be gone", DEADLINE, || {
        pids.iter().all(|p| !alive(*p))
    });
}

#[test]
fn health_keys_are_checked_when_the_file_is_loaded() {
    let dir = TestDir::new("health-config");
    dir.ecosystem(
        r#"
[[apps]]
name = "a"
script = "sleep"
args = "1"
health_interval = "1s"

[[apps]]
name = "b"
script = "sleep"
args = "1"
health_check = "http://no-such-host.invalid:80/"

[[apps]]
name = "c"
script = "sleep"
args = "1"
health_check = "tcp://127.0.0.1:1"
health_failures = 0
"#,
    );
    let (code, _, err) = run_to_end(&dir, &["check", &dir.p("ecosystem.toml")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`health_interval` needs a `health_check`"),
        "{err}"
    );
    assert!(
        err.contains("cannot resolve `no-such-host.invalid`"),
        "{err}"
    );
    assert!(err.contains("`health_failures` must be between 1"), "{err}");
}
