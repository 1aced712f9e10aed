//! The control socket and the client commands (SPEC section 6, section 1's client
//! commands): list and list --json, status, start/stop/restart/delete/scale/signal/apply,
//! TARGET forms, errors, the socket's mode, garbage on the socket, a second runner.
mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn ok(d: &TestDir, args: &[&str]) -> String {
    let (code, out, err) = client(d, args, T);
    assert_eq!(code, 0, "runner {args:?} failed: {out}\n{err}");
    out
}

fn sleeper(name: &str, extra: &str) -> String {
    format!(
        r#"
[[apps]]
name = "{name}"
script = "sleep"
args = ["1000"]
kill_signal = "SIGTERM"
{extra}
"#
    )
}

fn row(d: &TestDir, name: &str) -> Json {
    rows_of(&list(d), name)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {name} in list: {:?}", list(d)))
}

#[test]
fn list_and_list_json_show_every_instance_with_typed_fields() {
    let d = TestDir::new("list");
    d.ecosystem(&format!(
        "{}{}",
        sleeper("solo", ""),
        sleeper("pair", "instances = 2\nnamespace = \"backend\"")
    ));
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "pair", 2, "online", DEADLINE);
    wait_app_status(&d, "solo", 1, "online", DEADLINE);
    std::thread::sleep(Duration::from_millis(1200)); // uptime and a metrics sample
    let rows = list(&d);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let mut ids = Vec::new();
    for row in &rows {
        for key in ["id", "pid", "restarts", "uptime_ms", "memory", "instance"] {
            let v = row
                .get(key)
                .unwrap_or_else(|| panic!("no {key} in {row:?}"));
            assert!(
                v.as_i64().is_some_and(|n| n >= 0),
                "{key} is not a non-negative integer: {row:?}"
            );
        }
        for key in ["name", "namespace", "mode", "status"] {
            assert!(
                row.get(key).and_then(Json::as_str).is_some(),
                "{key} is not a string: {row:?}"
            );
        }
        assert!(
            row.get("cpu")
                .and_then(Json::as_f64)
                .is_some_and(|c| c >= 0.0),
            "cpu: {row:?}"
        );
        assert_eq!(row.s("mode"), "fork");
        assert_eq!(row.s("status"), "online");
        assert!(row.i("pid") > 0 && alive(row.i("pid") as i32), "{row:?}");
        assert!(row.i("uptime_ms") >= 1000, "uptime: {row:?}");
        assert!(row.i("memory") > 0, "memory: {row:?}");
        ids.push(row.i("id"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "ids are not unique: {rows:?}");
    let pair = rows_of(&rows, "pair");
    assert!(pair.iter().all(|r| r.s("namespace") == "backend"));
    let mut inst: Vec<i64> = pair.iter().map(|r| r.i("instance")).collect();
    inst.sort();
    assert_eq!(inst, [0, 1]);
    assert_eq!(rows_of(&rows, "solo")[0].s("namespace"), "default");

    // The table: a header with the columns, one row per instance.
    let table = ok(&d, &["list"]);
    let lines: Vec<&str> = table.lines().filter(|l| !l.trim().is_empty()).collect();
    let header = lines[0].to_lowercase();
    for col in ["id", "name", "namespace", "mode", "pid", "status"] {
        assert!(header.contains(col), "no {col} column: {table}");
    }
    assert_eq!(lines.len(), 4, "{table}");
    for row in &rows {
        let pid = row.i("pid").to_string();
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&pid) && l.contains(&row.s("name")) && l.contains("online")),
            "no table row for {row:?}:\n{table}"
        );
    }
    drop(r);
}

#[test]
fn status_is_0_only_when_everything_that_should_run_is_online() {
    let d = TestDir::new("status");
    d.ecosystem(&format!("{}{}", sleeper("a", ""), sleeper("b", "")));
    let _r = runner_eco(&d, &[]);
    wait_app_status(&d, "b", 1, "online", DEADLINE);
    wait_app_status(&d, "a", 1, "online", DEADLINE);
    assert_eq!(client(&d, &["status"], T).0, 0);
    // An app stopped by request is not one that should run (SPEC: "every app that should
    // run"; runner's core counts only wanted instances).
    ok(&d, &["stop", "b"]);
    assert_eq!(row(&d, "b").s("status"), "stopped");
    assert_eq!(
        client(&d, &["status"], T).0,
        0,
        "status with an app stopped by request"
    );
    ok(&d, &["start", "b"]);
    wait_app_status(&d, "b", 1, "online", DEADLINE);
    assert_eq!(client(&d, &["status"], T).0, 0);
}

#[test]
fn status_is_1_while_an_instance_waits_for_its_restart() {
    let d = TestDir::new("status-restart");
    d.ecosystem(&format!(
        "{}{}",
        sleeper("a", ""),
        sleeper("b", "restart_delay = 60000")
    ));
    let _r = runner_eco(&d, &[]);
    wait_app_status(&d, "a", 1, "online", DEADLINE);
    let b = wait_app_status(&d, "b", 1, "online", DEADLINE)[0].i("pid");
    assert_eq!(client(&d, &["status"], T).0, 0);
    send_signal(b as i32, "KILL");
    wait_app_status(&d, "b", 1, "waiting restart", DEADLINE);
    let (code, out, _) = client(&d, &["status"], T);
    assert_eq!(code, 1, "status while b waits for its restart: {out}");
}

#[test]
fn status_is_1_when_an_app_failed_for_good() {
    let d = TestDir::new("status-failed");
    d.ecosystem(&format!(
        "{}\n[[apps]]\nname = \"b\"\nscript = \"/bin/sh\"\nargs = [\"-c\", \"exit 1\"]\nautorestart = false\n",
        sleeper("a", "")
    ));
    let _r = runner_eco(&d, &[]);
    wait_app_status(&d, "a", 1, "online", DEADLINE);
    wait_for("b to end", DEADLINE, || {
        row(&d, "b").get("pid").is_some_and(Json::is_null)
    });
    let (code, out, _) = client(&d, &["status"], T);
    assert_eq!(
        code,
        1,
        "status with an app that failed for good: {out}\n{:?}",
        list(&d)
    );
}

#[test]
fn status_is_1_while_an_app_is_launching_or_errored() {
    let d = TestDir::new("status-bad");
    d.ecosystem(&format!(
        r#"{}
[[apps]]
name = "waiting"
script = "{notify}"
wait_ready = true
listen_timeout = 60000

[[apps]]
name = "crash"
script = "/bin/sh"
args = ["-c", "exit 3"]
max_restarts = 1
"#,
        sleeper("fine", ""),
        notify = app("notify.py"),
    ));
    let _r = runner_eco(&d, &[]);
    wait_app_status(&d, "waiting", 1, "launching", DEADLINE);
    wait_app_status(&d, "crash", 1, "errored", DEADLINE);
    let (code, out, _) = client(&d, &["status"], T);
    assert_eq!(code, 1, "{out}");
    ok(&d, &["delete", "crash"]);
    let (code, out, _) = client(&d, &["status"], T);
    assert_eq!(code, 1, "status with a launching app: {out}");
    ok(&d, &["delete", "waiting"]);
    assert_eq!(client(&d, &["status"], T).0, 0);
}

#[test]
fn start_stop_restart_delete_do_what_they_say() {
    let d = TestDir::new("actions");
    d.ecosystem(&format!("{}{}", sleeper("a", ""), sleeper("b", "")));
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "a", 1, "online", DEADLINE);
    let a0 = ProcId::of(row(&d, "a").i("pid") as i32);

    ok(&d, &["stop", "a"]);
    let a = row(&d, "a");
    assert_eq!(a.s("status"), "stopped", "{a:?}");
    assert!(
        a.get("pid").is_some_and(Json::is_null),
        "pid of a stopped app: {a:?}"
    );
    assert!(!a0.alive(), "the process survived runner stop");
    assert_eq!(row(&d, "b").s("status"), "online");

    ok(&d, &["start", "a"]);
    let a1 = wait_app_status(&d, "a", 1, "online", DEADLINE)[0].i("pid");
    assert!(a1 > 0 && a1 != a0.pid as i64);

    let p1 = ProcId::of(a1 as i32);
    ok(&d, &["restart", "a"]);
    let a2 = wait_app_status(&d, "a", 1, "online", DEADLINE)[0].i("pid");
    assert_ne!(a2, a1, "restart kept the pid");
    assert!(!p1.alive());

    let p2 = ProcId::of(a2 as i32);
    ok(&d, &["delete", "a"]);
    let rows = list(&d);
    assert!(
        rows_of(&rows, "a").is_empty(),
        "deleted app still listed: {rows:?}"
    );
    assert!(!p2.alive(), "the deleted app's process is still running");
    assert_eq!(rows_of(&rows, "b").len(), 1);
    drop(r);
}

#[test]
fn scale_changes_the_number_of_instances() {
    let d = TestDir::new("scale");
    d.ecosystem(&sleeper("w", ""));
    let _r = runner_eco(&d, &[]);
    wait_app_status(&d, "w", 1, "online", DEADLINE);
    let said = ok(&d, &["scale", "w", "3"]);
    assert!(
        said.contains("w to 3") && said.contains("2 instance(s) started"),
        "{said}"
    );
    let rows = wait_app_status(&d, "w", 3, "online", DEADLINE);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let pids: Vec<i64> = rows.iter().map(|r| r.i("pid")).collect();
    let said = ok(&d, &["scale", "w", "1"]);
    assert!(
        said.contains("w to 1") && said.contains("2 instance(s) stopped"),
        "{said}"
    );
    wait_for("1 instance of w", DEADLINE, || {
        rows_of(&list(&d), "w").len() == 1
    });
    wait_for("the extra instances to end", DEADLINE, || {
        pids.iter().filter(|p| alive(**p as i32)).count() == 1
    });
    let (code, _, err) = client(&d, &["scale", "w", "0"], T);
    assert_eq!(code, 1, "scale 0 is refused: {err}");
    assert!(!err.trim().is_empty());
}

#[test]
fn signal_sends_a_signal_by_name_or_number() {
    let d = TestDir::new("signal");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "rec"
script = "{sigrec}"
args = ["{out}"]

[[apps]]
name = "other"
script = "{sigrec}"
args = ["{other}"]
"#,
        sigrec = app("sigrec.py"),
        out = d.p("rec.log"),
        other = d.p("other.log"),
    ));
    let _r = runner_eco(&d, &[]);
    d.wait_file("rec.log.ready");
    d.wait_file("other.log.ready");
    wait_app_status(&d, "rec", 1, "online", DEADLINE);
    ok(&d, &["signal", "SIGUSR2", "rec"]);
    d.wait_lines("rec.log", 1);
    ok(&d, &["signal", "10", "rec"]);
    let lines = d.wait_lines("rec.log", 2);
    assert_eq!(lines, ["SIGUSR2", "SIGUSR1"]);
    ok(&d, &["signal", "HUP", "rec"]);
    assert_eq!(d.wait_lines("rec.log", 3)[2], "SIGHUP");
    assert!(
        d.lines("other.log").is_empty(),
        "another app got the signal"
    );
    let (code, _, err) = client(&d, &["signal", "SIGNOPE", "rec"], T);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn targets_by_id_namespace_and_all() {
    let d = TestDir::new("targets");
    d.ecosystem(&format!(
        "{}{}{}",
        sleeper("front", "namespace = \"web\""),
        sleeper("api", "namespace = \"web\"\ninstances = 2"),
        sleeper("db", "")
    ));
    let mut r = runner_eco(&d, &[]);
    wait_app_status(&d, "api", 2, "online", DEADLINE);
    wait_app_status(&d, "front", 1, "online", DEADLINE);
    wait_app_status(&d, "db", 1, "online", DEADLINE);
    let rows = list(&d);
    let api1 = rows_of(&rows, "api")
        .into_iter()
        .find(|r| r.i("instance") == 1)
        .unwrap();
    let id = api1.i("id").to_string();

    ok(&d, &["stop", &id]);
    let rows = list(&d);
    for row in &rows {
        let want = if row.i("id").to_string() == id {
            "stopped"
        } else {
            "online"
        };
        assert_eq!(row.s("status"), want, "after stop {id}: {rows:?}");
    }
    ok(&d, &["start", &id]);
    wait_app_status(&d, "api", 2, "online", DEADLINE);

    let db_pid = row(&d, "db").i("pid");
    ok(&d, &["stop", "web"]);
    let rows = list(&d);
    for row in &rows {
        let want = if row.s("namespace") == "web" {
            "stopped"
        } else {
            "online"
        };
        assert_eq!(row.s("status"), want, "after stop web: {rows:?}");
    }
    assert_eq!(row(&d, "db").i("pid"), db_pid);

    let (code, _, err) = client(&d, &["restart", "nosuchthing"], T);
    assert_eq!(code, 1);
    assert!(
        err.contains("nosuchthing"),
        "the message does not name the target: {err}"
    );
    let (code, _, err) = client(&d, &["stop", "9999"], T);
    assert_eq!(code, 1, "{err}");

    ok(&d, &["stop", "all"]);
    assert_eq!(
        r.code(Duration::from_secs(20)),
        0,
        "runner stop all: {}",
        r.dump()
    );
}

#[test]
fn apply_adds_removes_and_reloads_changed_apps_and_rejects_a_bad_file() {
    let d = TestDir::new("apply");
    let envdump = app("envdump.sh");
    let dir = d.p("");
    let eco = |apps: &[(&str, &str)]| {
        apps.iter()
            .map(|(name, version)| {
                format!(
                    "[[apps]]\nname = \"{name}\"\nscript = \"{envdump}\"\nargs = [\"{dir}\"]\nkill_signal = \"SIGTERM\"\nenv = {{ VERSION = \"{version}\" }}\n\n"
                )
            })
            .collect::<String>()
    };
    d.ecosystem(&eco(&[("keep", "1"), ("change", "1"), ("gone", "1")]));
    let r = runner_eco(&d, &[]);
    for name in ["keep", "change", "gone"] {
        wait_app_status(&d, name, 1, "online", DEADLINE);
    }
    let keep = ProcId::of(row(&d, "keep").i("pid") as i32);
    let change_row = row(&d, "change");
    let change = ProcId::of(change_row.i("pid") as i32);
    let gone = ProcId::of(row(&d, "gone").i("pid") as i32);
    let change_env = format!("env.change.{}", change_row.i("id"));
    assert_eq!(parse_env(&d.wait_file(&change_env))["VERSION"], "1");

    d.ecosystem(&eco(&[("keep", "1"), ("change", "2"), ("added", "1")]));
    let (code, out, err) = client(&d, &["apply"], T);
    assert_eq!(code, 0, "apply: {out}\n{err}\n{}", r.dump());
    assert!(
        out.contains("added: added; reloaded: change; removed: gone"),
        "apply said: {out}"
    );
    // Like the other actions, apply answers when its work is done.
    let rows = list(&d);
    let status = |name: &str| -> Vec<String> {
        rows_of(&rows, name).iter().map(|r| r.s("status")).collect()
    };
    assert_eq!(status("added"), ["online"], "right after apply: {rows:?}");
    assert_eq!(status("change"), ["online"], "right after apply: {rows:?}");
    assert!(status("gone").is_empty(), "right after apply: {rows:?}");
    assert_ne!(row(&d, "change").i("pid"), change.pid as i64);
    wait_for("gone's process to end", DEADLINE, || !gone.alive());
    let new_change = wait_app_status(&d, "change", 1, "online", DEADLINE)[0].clone();
    assert_ne!(
        new_change.i("pid"),
        change.pid as i64,
        "change was not reloaded"
    );
    assert!(!change.alive());
    wait_for("change's new env", DEADLINE, || {
        parse_env(&d.read(&format!("env.change.{}", new_change.i("id"))))
            .get("VERSION")
            .map(String::as_str)
            == Some("2")
    });
    assert!(keep.alive(), "an unchanged app was restarted");
    assert_eq!(row(&d, "keep").i("pid"), keep.pid as i64);

    // An invalid file: apply fails, says why, changes nothing.
    let before: Vec<(String, i64)> = list(&d).iter().map(|r| (r.s("name"), r.i("pid"))).collect();
    d.ecosystem("[[apps]]\nname = \"broken\"\nscrpt = \"sleep\"\n");
    let (code, out, err) = client(&d, &["apply"], T);
    assert_ne!(code, 0, "apply accepted an invalid file: {out}");
    assert!(
        err.contains("scrpt"),
        "the message does not say what is wrong: {err}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let after: Vec<(String, i64)> = list(&d).iter().map(|r| (r.s("name"), r.i("pid"))).collect();
    assert_eq!(before, after, "an invalid apply changed something");
}

#[test]
fn a_client_with_no_runner_exits_1_with_a_clear_message() {
    let d = TestDir::new("no-runner");
    for args in [&["list"][..], &["status"], &["stop", "all"]] {
        let (code, out, err) = client(&d, args, T);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains("no runner is listening"), "{args:?}: {err}");
    }
}

#[test]
fn the_socket_is_owner_only_and_a_second_runner_refuses_to_start() {
    use std::os::unix::fs::PermissionsExt;
    let d = TestDir::new("socket");
    d.ecosystem(&sleeper("a", ""));
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "a", 1, "online", DEADLINE);
    let meta = std::fs::metadata(d.path().join("runner.sock")).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "socket mode {:o}",
        meta.permissions().mode()
    );

    let pid = row(&d, "a").i("pid");
    let mut second = runner_eco(&d, &[]);
    assert_eq!(second.code(Duration::from_secs(20)), 1, "{}", second.dump());
    assert!(!second.stderr().trim().is_empty());
    assert_eq!(row(&d, "a").i("pid"), pid, "the first runner's app changed");
    assert_eq!(row(&d, "a").s("status"), "online");
    assert_eq!(client(&d, &["status"], T).0, 0);
    drop(r);
}

/// A small deterministic pseudo-random byte source.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn garbage_on_the_socket_leaves_runner_answering_and_apps_running() {
    let d = TestDir::new("garbage");
    d.ecosystem(&sleeper("a", ""));
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "a", 1, "online", DEADLINE);
    let app_proc = ProcId::of(row(&d, "a").i("pid") as i32);
    let sock = d.path().join("runner.sock");
    let connect = || {
        let s = UnixStream::connect(&sock).expect("connect to the control socket");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };

    // Malformed lines get an error reply.
    for bad in [
        "not json\n",
        "{\"cmd\":\"fly\"}\n",
        "{\"cmd\":\"stop\"}\n",
        "[1,2,3]\n",
    ] {
        let s = connect();
        (&s).write_all(bad.as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        let reply = Json::parse(line.trim()).unwrap_or_else(|e| panic!("{bad:?} -> {line:?}: {e}"));
        assert_eq!(
            reply.get("ok"),
            Some(&Json::Bool(false)),
            "{bad:?} -> {line}"
        );
        assert!(!reply.s("error").is_empty(), "{bad:?} -> {line}");
    }

    // Random bytes, with and without newlines.
    for seed in 1..=20u64 {
        let s = connect();
        let _ = (&s).write_all(&noise(seed, 4096 * seed as usize));
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = (&s).take(1 << 20).read_to_end(&mut sink);
    }

    // A 1 MiB line without a newline.
    {
        let s = connect();
        let big = vec![b'x'; 1 << 20];
        let _ = (&s).write_all(&big); // runner may close the connection midway
        let mut sink = Vec::new();
        let _ = (&s).take(1 << 20).read_to_end(&mut sink);
    }

    // 200 idle connections held open while clients keep working.
    let idle: Vec<UnixStream> = (0..200).map(|_| connect()).collect();
    let half = UnixStream::connect(&sock).unwrap();
    (&half).write_all(b"{\"cmd\":\"li").unwrap(); // a request cut short
    let end = Instant::now() + Duration::from_secs(30);
    let (code, out, err) = client(&d, &["list", "--json"], Duration::from_secs(15));
    assert!(Instant::now() < end);
    assert_eq!(
        code,
        0,
        "runner stopped answering with idle connections: {out}\n{err}\n{}",
        r.dump()
    );
    assert_eq!(client(&d, &["status"], T).0, 0);
    drop(idle);
    drop(half);

    let rows = list(&d);
    assert_eq!(rows_of(&rows, "a")[0].i("pid"), app_proc.pid as i64);
    assert!(app_proc.alive(), "the app died");
    assert_eq!(rows_of(&rows, "a")[0].i("restarts"), 0);
    assert!(!r.stderr().contains("panicked"), "{}", r.dump());
}
