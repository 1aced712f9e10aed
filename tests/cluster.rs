//! Cluster mode (SPEC section 5): runner binds `listen` addresses and hands them over with
//! systemd's socket-activation protocol; `runner reload` replaces instances one at a time
//! without refusing a connection, and a failed reload leaves the old instances serving.
mod common;

use common::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A client hammering 127.0.0.1:port with one HTTP request per connection until stopped
/// (or 90 s, or 100 000 requests at most).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<Mutex<u64>>,
    failures: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<BTreeSet<String>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(Mutex::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(BTreeSet::new()));
        let (s, o, f, b) = (stop.clone(), ok.clone(), failures.clone(), bodies.clone());
        let handle = thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(90);
            for _ in 0..100_000 {
                if s.load(Ordering::SeqCst) || Instant::now() >= end {
                    break;
                }
                match http_get(port, "/") {
                    Ok(text) => {
                        *o.lock().unwrap() += 1;
                        if let Some((_, body)) = text.split_once("\r\n\r\n") {
                            b.lock().unwrap().insert(body.trim().to_string());
                        }
                    }
                    Err(e) => f.lock().unwrap().push(format!("{:?}: {e}", Instant::now())),
                }
                thread::sleep(Duration::from_millis(5));
            }
        });
        Load {
            stop,
            ok,
            failures,
            bodies,
            handle: Some(handle),
        }
    }

    fn ok(&self) -> u64 {
        *self.ok.lock().unwrap()
    }

    /// Stops the client; returns (successes, failures, distinct bodies).
    fn finish(mut self) -> (u64, Vec<String>, BTreeSet<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        (
            self.ok(),
            self.failures.lock().unwrap().clone(),
            self.bodies.lock().unwrap().clone(),
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Waits until the load client has had `n` more successes than now (bounded).
fn wait_more_ok(load: &Load, n: u64) {
    let base = load.ok();
    wait_for(
        &format!("{n} more successful requests"),
        Duration::from_secs(20),
        || load.ok() >= base + n,
    );
}

#[test]
fn instances_get_listen_fds_and_a_listening_fd_3() {
    let d = TestDir::new("listen-fds");
    let port = free_port();
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "sock"
script = "{fdinfo}"
args = ["{out}"]
instances = 2
listen = ["127.0.0.1:{port}"]
"#,
        fdinfo = app("fdinfo.py"),
        out = d.p("info"),
    ));
    let r = runner_eco(&d, &[]);
    let rows = wait_app_status(&d, "sock", 2, "online", DEADLINE);
    for i in 0..2 {
        let info = parse_env(&d.wait_file(&format!("info.{i}")));
        let row = rows
            .iter()
            .find(|r| r.i("instance") == i)
            .unwrap_or_else(|| panic!("{rows:?}"));
        assert_eq!(row.s("mode"), "cluster", "{row:?}");
        assert_eq!(info["LISTEN_FDS"], "1", "{info:?}");
        assert_eq!(
            info["LISTEN_PID"], info["PID"],
            "LISTEN_PID is not the instance's pid: {info:?}"
        );
        assert_eq!(
            info["PID"],
            row.i("pid").to_string(),
            "pid in list: {row:?}"
        );
        assert_eq!(
            info["FD3_ADDR"],
            format!("127.0.0.1:{port}"),
            "{info:?}\n{}",
            r.dump()
        );
        assert_eq!(
            info["FD3_LISTENING"], "1",
            "fd 3 is not listening: {info:?}"
        );
        assert_eq!(info["FD3_TYPE"], "stream", "{info:?}");
        assert!(
            !info["LISTEN_FDNAMES"].is_empty(),
            "no LISTEN_FDNAMES: {info:?}"
        );
    }
    // The port accepts connections (the kernel queues them on the shared socket).
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the shared socket");
}

fn api_ecosystem(d: &TestDir, port: u16, flag: &str) {
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "api"
script = "{http}"
args = ["{flag}"]
instances = 2
listen = ["127.0.0.1:{port}"]
wait_ready = true
listen_timeout = 10000
kill_timeout = 5000
"#,
        http = app("fd3http.py"),
    ));
}

#[test]
fn reload_three_times_under_load_fails_no_request_and_replaces_every_pid() {
    let d = TestDir::new("reload-load");
    let port = free_port();
    api_ecosystem(&d, port, &d.p("no-such-flag"));
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "api", 2, "online", DEADLINE);
    let first = pids_of(&d, "api");
    assert_eq!(first.len(), 2);

    let load = Load::start(port);
    wait_more_ok(&load, 10);
    let mut seen: BTreeSet<i64> = first.iter().copied().collect();
    for round in 1..=3 {
        let before = pids_of(&d, "api");
        let (code, out, err) = client(&d, &["reload", "api"], Duration::from_secs(60));
        assert_eq!(code, 0, "reload {round} failed: {out}\n{err}\n{}", r.dump());
        let after = wait_app_status(&d, "api", 2, "online", DEADLINE);
        let after: Vec<i64> = after.iter().map(|r| r.i("pid")).collect();
        for p in &after {
            assert!(
                !before.contains(p),
                "round {round}: pid {p} was not replaced ({before:?} -> {after:?})"
            );
            assert!(!seen.contains(p), "round {round}: pid {p} seen before");
            seen.insert(*p);
        }
        wait_more_ok(&load, 10);
    }
    // Which waiting process wins an accept on the shared socket is the kernel's choice, so
    // a handful of requests can all land on one replacement: keep the load on until each
    // new pid has answered (bounded).
    let last = pids_of(&d, "api");
    let served = |p: &i64| load.bodies.lock().unwrap().contains(&p.to_string());
    let until = Instant::now() + Duration::from_secs(30);
    while !last.iter().all(served) && Instant::now() < until {
        thread::sleep(Duration::from_millis(50));
    }
    let (ok, failures, bodies) = load.finish();
    assert!(
        failures.is_empty(),
        "{} failed of {}: {failures:?}\n{}",
        failures.len(),
        ok + failures.len() as u64,
        r.dump()
    );
    assert!(ok >= 40, "only {ok} requests");
    assert!(
        last.iter().all(|p| bodies.contains(&p.to_string())),
        "the new instances {last:?} served nothing: {bodies:?}"
    );
    let rows = list(&d);
    assert!(rows_of(&rows, "api").iter().all(|r| r.i("restarts") >= 0));
}

#[test]
fn a_failing_reload_exits_1_and_the_old_instances_keep_serving() {
    let d = TestDir::new("reload-fail");
    let port = free_port();
    let flag = d.p("broken");
    api_ecosystem(&d, port, &flag);
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "api", 2, "online", DEADLINE);
    let before = pids_of(&d, "api");

    let load = Load::start(port);
    wait_more_ok(&load, 10);
    std::fs::write(&flag, "").unwrap();
    let (code, out, err) = client(&d, &["reload", "api"], Duration::from_secs(60));
    assert_eq!(
        code,
        1,
        "a failing reload did not exit 1: {out}\n{err}\n{}",
        r.dump()
    );
    assert!(!err.trim().is_empty(), "no error message on stderr: {out}");
    wait_more_ok(&load, 20);
    let rows = wait_app_status(&d, "api", 2, "online", DEADLINE);
    let mut after: Vec<i64> = rows.iter().map(|r| r.i("pid")).collect();
    after.sort();
    assert_eq!(before, after, "the old instances were replaced");
    assert!(before.iter().all(|p| alive(*p as i32)));
    let (ok, failures, bodies) = load.finish();
    assert!(
        failures.is_empty(),
        "{} failed of {ok}: {failures:?}",
        failures.len()
    );
    assert!(
        bodies
            .iter()
            .all(|b| before.iter().any(|p| p.to_string() == *b)),
        "a request was served by another process than {before:?}: {bodies:?}"
    );
}

fn gunicorn_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import gunicorn"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        && have("gunicorn")
}

#[test]
fn gunicorn_takes_the_socket_and_reloads_without_failures() {
    if !gunicorn_available() {
        eprintln!("SKIPPED: gunicorn is not installed (pip install gunicorn; CI installs it)");
        return;
    }
    let d = TestDir::new("gunicorn");
    let port = free_port();
    d.write(
        "wsgiapp.py",
        "import os\n\
         def application(environ, start_response):\n\
         \x20   body = str(os.getppid()).encode()\n\
         \x20   start_response('200 OK', [('Content-Length', str(len(body)))])\n\
         \x20   return [body]\n",
    );
    // gunicorn's arbiter adopts LISTEN_FDS when LISTEN_PID is its pid (gunicorn/systemd.py),
    // ignoring --bind then, and sends READY=1 to NOTIFY_SOCKET once it listens. SIGTERM is
    // its graceful stop (SIGINT would be a quick one).
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "gunicorn"
script = "gunicorn"
args = ["--workers", "1", "--graceful-timeout", "5", "wsgiapp:application"]
instances = 2
listen = ["127.0.0.1:{port}"]
wait_ready = true
listen_timeout = 20000
kill_signal = "SIGTERM"
kill_timeout = 8000
"#
    ));
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "gunicorn", 2, "online", Duration::from_secs(30));
    assert!(
        !r.stderr().contains("listen_timeout"),
        "gunicorn did not say READY=1: {}",
        r.dump()
    );
    let first = pids_of(&d, "gunicorn");
    let load = Load::start(port);
    wait_more_ok(&load, 10);
    // The master pids (parents of the workers) serve.
    let bodies = load.bodies.lock().unwrap().clone();
    assert!(
        bodies
            .iter()
            .all(|b| first.iter().any(|p| p.to_string() == *b)),
        "requests answered by others than {first:?}: {bodies:?}"
    );
    for round in 1..=2 {
        let (code, out, err) = client(&d, &["reload", "gunicorn"], Duration::from_secs(90));
        assert_eq!(code, 0, "reload {round}: {out}\n{err}\n{}", r.dump());
        wait_more_ok(&load, 10);
    }
    let last = pids_of(&d, "gunicorn");
    assert!(
        last.iter().all(|p| !first.contains(p)),
        "{first:?} -> {last:?}"
    );
    let (ok, failures, _) = load.finish();
    assert!(
        failures.is_empty(),
        "{} failed of {ok}: {failures:?}\n{}",
        failures.len(),
        r.dump()
    );
}

#[test]
fn a_taken_listen_address_exits_2_naming_it_and_starts_nothing() {
    let d = TestDir::new("taken");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "other"
script = "{stamp}"
args = ["{other}", "0", "100"]

[[apps]]
name = "web"
script = "{stamp}"
args = ["{web}", "0", "100"]
listen = ["127.0.0.1:{port}"]
"#,
        stamp = app("stamp.sh"),
        other = d.p("other.log"),
        web = d.p("web.log"),
    ));
    let mut r = runner_eco(&d, &[]);
    let code = r.code(Duration::from_secs(20));
    assert_eq!(code, 2, "{}", r.dump());
    assert!(
        r.stderr().contains(&format!("127.0.0.1:{port}")),
        "the message does not name the address: {}",
        r.dump()
    );
    assert!(
        !d.exists("other.log") && !d.exists("web.log"),
        "something was started"
    );
    drop(taken);
}

/// A stop request while a reload waits for its replacement ends both: the replacement is
/// stopped with the rest, the reload command fails, and runner exits (it used to wait
/// for the replacement forever).
#[test]
fn sigterm_during_a_reload_stops_everything_and_runner_exits() {
    let d = TestDir::new("reload-term");
    let port = free_port();
    // Ready at once, unless the file `hold` exists: then it never says so.
    d.write(
        "slow.py",
        &format!(
            r#"import os, socket, time
if os.path.exists({hold:?}):
    open({held:?} + str(os.getpid()), "w").close()
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
time.sleep(1000)
"#,
            hold = d.p("hold"),
            held = d.p("held."),
        ),
    );
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "api"
script = "slow.py"
instances = 2
listen = ["127.0.0.1:{port}"]
wait_ready = true
listen_timeout = 60000
kill_timeout = 5000
"#
    ));
    let mut r = runner_eco(&d, &[]);
    wait_app_status(&d, "api", 2, "online", DEADLINE);
    let old = pids_of(&d, "api");
    d.write("hold", "");
    let mut reload = Proc::spawn(runner_cmd(d.path(), &["reload", "api"]));
    let mut held = 0;
    wait_for("the replacement to start", DEADLINE, || {
        held = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_prefix("held.").and_then(|p| p.parse().ok())
            })
            .next()
            .unwrap_or(0);
        held > 0
    });
    r.signal("TERM");
    let code = r.code(Duration::from_secs(30));
    assert_eq!(code, 0, "runner exited {code}\n{}", r.dump());
    let st = reload.wait(Duration::from_secs(10));
    assert_eq!(st.code(), Some(1), "reload: {}", reload.dump());
    assert!(
        reload.stderr().contains("stopping"),
        "reload said: {}",
        reload.dump()
    );
    for pid in old.iter().map(|p| *p as i32).chain([held]) {
        assert!(!alive(pid), "pid {pid} outlived runner");
    }
}
