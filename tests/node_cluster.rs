//! Node.js apps in cluster mode, unmodified (SPEC section 5): runner is their Node cluster
//! primary, so an app that simply calls `listen(PORT)` shares one socket runner binds
//! once, across every instance, restarts and reloads. Real node, real sockets.
mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The app of issue 14, as a PM2 user writes it.
const ISSUE_APP: &str =
    "require('http').createServer((q, s) => s.end(String(process.pid))).listen(process.env.PORT)\n";

fn node_missing() -> bool {
    if have("node") {
        return false;
    }
    eprintln!("SKIP: node is not installed");
    true
}

fn issue_toml(d: &TestDir, port: u16, extra: &str) {
    d.write("app.js", ISSUE_APP);
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "api"
script = "app.js"
exec_mode = "cluster"
instances = 2
env = {{ PORT = "{port}" }}
{extra}
"#
    ));
}

/// `n` requests, one connection each; returns the bodies (pids) and the failures.
fn requests(port: u16, n: usize) -> (BTreeSet<String>, Vec<String>) {
    let mut bodies = BTreeSet::new();
    let mut failures = Vec::new();
    for _ in 0..n {
        match http_get(port, "/") {
            Ok(text) => {
                if let Some((_, body)) = text.split_once("\r\n\r\n") {
                    bodies.insert(body.trim().to_string());
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    (bodies, failures)
}

/// At least `min` requests, then more (up to 20x) until `want` distinct pids answered:
/// the kernel, not runner, picks the worker, and under a loaded machine one worker may
/// take a long run of connections.
fn requests_until(port: u16, min: usize, want: usize) -> (BTreeSet<String>, Vec<String>) {
    let (mut bodies, mut failures) = requests(port, min);
    let mut extra = 0;
    while bodies.len() < want && extra < 20 * min && failures.is_empty() {
        let (b, f) = requests(port, 50);
        bodies.extend(b);
        failures.extend(f);
        extra += 50;
    }
    (bodies, failures)
}

/// Two online instances that both answer over 200 requests and never restart.
fn two_workers_share_the_port(d: &TestDir, r: &Proc, port: u16) {
    wait_app_status(d, "api", 2, "online", DEADLINE);
    let pids: BTreeSet<String> = pids_of(d, "api").iter().map(|p| p.to_string()).collect();
    assert_eq!(pids.len(), 2, "{pids:?}\n{}", r.dump());
    // The instances may still be starting their servers: connections wait in the
    // shared socket's queue, so even the first request succeeds.
    let (bodies, failures) = requests_until(port, 200, 2);
    assert!(failures.is_empty(), "{failures:?}\n{}", r.dump());
    assert_eq!(bodies, pids, "both pids answer\n{}", r.dump());
    let rows = wait_app_status(d, "api", 2, "online", DEADLINE);
    for row in &rows {
        assert_eq!(row.i("restarts"), 0, "{row:?}\n{}", r.dump());
        assert_eq!(row.s("mode"), "cluster", "{row:?}");
    }
    let after: BTreeSet<String> = pids_of(d, "api").iter().map(|p| p.to_string()).collect();
    assert_eq!(after, pids, "instances were replaced\n{}", r.dump());
    assert!(
        !r.stderr().contains("EADDRINUSE"),
        "a worker's listen failed\n{}",
        r.dump()
    );
}

#[test]
fn the_issue_app_from_toml_without_listen_runs_two_workers_on_one_port() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-toml");
    let port = free_port();
    issue_toml(&d, port, "");
    let r = runner_eco(&d, &[]);
    two_workers_share_the_port(&d, &r, port);
}

#[test]
fn the_issue_app_from_its_pm2_file_run_directly_runs_two_workers_on_one_port() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-pm2");
    let port = free_port();
    d.write("app.js", ISSUE_APP);
    d.write(
        "ecosystem.config.js",
        &format!(
            "module.exports = {{ apps: [{{ name: 'api', script: './app.js', exec_mode: 'cluster',\n\
             instances: 2, env: {{ PORT: '{port}' }} }}] }}\n"
        ),
    );
    let r = runner(&d, &[d.p("ecosystem.config.js")]);
    two_workers_share_the_port(&d, &r, port);
    // The import no longer invents a `listen` key or asks for an edit.
    let (code, out, err) = run_to_end(&d, &["import", &d.p("ecosystem.config.js")]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("listen"), "{out}");
}

#[test]
fn instances_are_cluster_workers_with_pm2s_environment() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-env");
    d.write(
        "info.js",
        &format!(
            "const cluster = require('cluster'); const fs = require('fs');\n\
             const e = process.env;\n\
             fs.writeFileSync('{out}.' + e.NODE_APP_INSTANCE, JSON.stringify({{\n\
               isWorker: cluster.isWorker, id: cluster.worker && cluster.worker.id,\n\
               pm_id: e.pm_id, rid: e.RUNNER_INSTANCE_ID, name: e.name, exec_mode: e.exec_mode,\n\
               instances: e.instances, unique: e.NODE_UNIQUE_ID === undefined }}) + '\\n');\n\
             setInterval(() => {{}}, 1000);\n",
            out = d.p("info")
        ),
    );
    d.ecosystem(
        r#"
[[apps]]
name = "w"
script = "info.js"
exec_mode = "cluster"
instances = 2
"#,
    );
    let r = runner_eco(&d, &[]);
    let mut ids = BTreeSet::new();
    for i in 0..2 {
        let text = d.wait_file(&format!("info.{i}"));
        let j = Json::parse(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(j.get("isWorker"), Some(&Json::Bool(true)), "{text}");
        assert_eq!(j.s("pm_id"), j.s("rid"), "{text}");
        assert_eq!(j.s("name"), "w", "{text}");
        assert_eq!(j.s("exec_mode"), "cluster_mode", "{text}");
        assert_eq!(j.s("instances"), "2", "{text}");
        assert_eq!(
            j.get("unique"),
            Some(&Json::Bool(true)),
            "Node removes NODE_UNIQUE_ID: {text}"
        );
        assert!(j.i("id") >= 1, "{text}\n{}", r.dump());
        ids.insert(j.i("id"));
    }
    assert_eq!(ids.len(), 2, "worker ids are unique");
}

/// An app that writes what its server(s) listen on to `out.N` and answers with its pid.
fn servers_app(d: &TestDir, listens: &str) {
    d.write(
        "multi.js",
        &format!(
            "const http = require('http'); const fs = require('fs');\n\
             const h = (q, s) => s.end(String(process.pid));\n\
             const got = [];\n\
             const targets = {listens};\n\
             for (const t of targets) {{\n\
               const srv = http.createServer(h);\n\
               srv.on('error', (e) => {{ fs.writeFileSync('{out}.' + process.env.NODE_APP_INSTANCE, 'error ' + e.code); process.exit(3); }});\n\
               srv.listen(...t, () => {{\n\
                 const a = srv.address(); got.push(typeof a === 'string' ? a : a.address + ' ' + a.port);\n\
                 if (got.length === targets.length) fs.writeFileSync('{out}.' + process.env.NODE_APP_INSTANCE, got.join('\\n') + '\\n');\n\
               }});\n\
             }}\n",
            out = d.p("out")
        ),
    );
}

#[test]
fn listen_zero_gives_every_instance_the_same_port() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-zero");
    servers_app(&d, "[[0, '127.0.0.1']]");
    d.ecosystem(
        r#"
[[apps]]
name = "api"
script = "multi.js"
exec_mode = "cluster"
instances = 2
"#,
    );
    let r = runner_eco(&d, &[]);
    let a = d.wait_file("out.0");
    let b = d.wait_file("out.1");
    assert_eq!(a, b, "{}", r.dump());
    let port: u16 = a
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{a}"));
    assert_ne!(port, 0);
    wait_app_status(&d, "api", 2, "online", DEADLINE);
    let (bodies, failures) = requests_until(port, 200, 2);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(bodies.len(), 2, "{bodies:?}\n{}", r.dump());
}

#[test]
fn an_app_on_two_ports_a_host_ipv6_and_a_unix_path_is_served_everywhere() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-multi");
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let sock = d.p("http.sock");
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let mut targets = format!("[[{p1}], [{p2}, '127.0.0.1'], ['{sock}']");
    if v6 {
        targets.push_str(&format!(", [{p3}, '::1']"));
    }
    targets.push(']');
    servers_app(&d, &targets);
    d.ecosystem(
        r#"
[[apps]]
name = "api"
script = "multi.js"
exec_mode = "cluster"
instances = 2
"#,
    );
    let r = runner_eco(&d, &[]);
    d.wait_file("out.0");
    d.wait_file("out.1");
    wait_app_status(&d, "api", 2, "online", DEADLINE);
    // Which worker accepts is the kernel's choice (on a busy machine one may take every
    // connection for a while); that both hold each socket is checked below.
    for port in [p1, p2] {
        let (bodies, failures) = requests_until(port, 200, 2);
        assert!(
            failures.is_empty(),
            "port {port}: {failures:?}\n{}",
            r.dump()
        );
        assert!(!bodies.is_empty(), "port {port}: no answer\n{}", r.dump());
    }
    let mut unix_bodies = BTreeSet::new();
    for i in 0..4000 {
        if i >= 200 && unix_bodies.len() >= 2 {
            break;
        }
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("unix connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
        unix_bodies.insert(body.unwrap_or_default());
    }
    // Which worker accepts a Unix connection is the kernel's choice (on an idle machine
    // it may always be the same one); what runner owes is one socket that both hold.
    assert!(!unix_bodies.is_empty(), "unix: no answer\n{}", r.dump());
    let sockets = |pid: i64| -> BTreeSet<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|l| l.to_string_lossy().into_owned())
                    .filter(|l| l.starts_with("socket:"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let pids = pids_of(&d, "api");
    assert_eq!(pids.len(), 2, "{}", r.dump());
    let shared = sockets(pids[0]).intersection(&sockets(pids[1])).count();
    let wanted = if v6 { 4 } else { 3 };
    assert!(
        shared >= wanted,
        "both workers hold the {wanted} listening sockets: {shared} shared\n{}",
        r.dump()
    );
    if v6 {
        let mut v6_bodies = BTreeSet::new();
        for i in 0..4000 {
            if i >= 200 && v6_bodies.len() >= 2 {
                break;
            }
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("::1", p3)).expect("connect ::1");
            s.write_all(b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            v6_bodies.insert(text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()));
        }
        // As for the Unix path: the socket both workers hold (checked above) answers;
        // which of them accepts is the kernel's choice.
        assert!(
            v6_bodies
                .iter()
                .any(|b| b.as_deref().is_some_and(|b| !b.is_empty())),
            "ipv6: {v6_bodies:?}\n{}",
            r.dump()
        );
    }
}

/// A client sending one request per connection until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<Mutex<u64>>,
    failures: Arc<Mutex<Vec<(ErrorKind, String)>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(Mutex::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failures.clone());
        let handle = thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::SeqCst) && Instant::now() < end {
                match http_get(port, "/") {
                    Ok(_) => *o.lock().unwrap() += 1,
                    Err(e) => f.lock().unwrap().push((e.kind(), e.to_string())),
                }
            }
        });
        Load {
            stop,
            ok,
            failures,
            handle: Some(handle),
        }
    }

    fn ok(&self) -> u64 {
        *self.ok.lock().unwrap()
    }

    fn wait_more(&self, n: u64) {
        let base = self.ok();
        wait_for(
            &format!("{n} more requests"),
            Duration::from_secs(30),
            || self.ok() >= base + n,
        );
    }

    fn finish(mut self) -> (u64, Vec<(ErrorKind, String)>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        (self.ok(), self.failures.lock().unwrap().clone())
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

/// PM2's documented graceful shutdown: on SIGINT, stop accepting and exit once the
/// requests in hand are answered.
const GRACEFUL_APP: &str = "const server = require('http').createServer((q, s) => s.end(String(process.pid))).listen(process.env.PORT);\n\
process.on('SIGINT', () => server.close(() => process.exit(0)));\n";

/// Three reloads under a request loop; returns (successes, failures) and checks that
/// every round replaced both pids.
fn reload_three_times(d: &TestDir, r: &Proc, port: u16) -> (u64, Vec<(ErrorKind, String)>) {
    let load = Load::start(port);
    load.wait_more(20);
    let mut seen: BTreeSet<i64> = pids_of(d, "api").into_iter().collect();
    for round in 1..=3 {
        let before = pids_of(d, "api");
        let (code, out, err) = client(d, &["reload", "api"], Duration::from_secs(60));
        assert_eq!(code, 0, "reload {round}: {out}\n{err}\n{}", r.dump());
        let after = pids_of(d, "api");
        assert_eq!(after.len(), 2, "{after:?}");
        for p in &after {
            assert!(
                !before.contains(p),
                "round {round}: {before:?} -> {after:?}"
            );
            assert!(seen.insert(*p), "round {round}: pid {p} seen before");
        }
        load.wait_more(20);
    }
    load.finish()
}

#[test]
fn reload_under_a_request_loop_fails_no_request_and_replaces_the_pids() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-reload");
    let port = free_port();
    d.write("graceful.js", GRACEFUL_APP);
    d.ecosystem(&format!(
        "[[apps]]\nname = \"api\"\nscript = \"graceful.js\"\nexec_mode = \"cluster\"\ninstances = 2\n\
         env = {{ PORT = \"{port}\" }}\n"
    ));
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "api", 2, "online", DEADLINE);
    let (ok, failures) = reload_three_times(&d, &r, port);
    eprintln!(
        "reloads under load: {ok} requests, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} failed: {failures:?}\n{}",
        failures.len(),
        ok + failures.len() as u64,
        r.dump()
    );
}

/// An app without a SIGINT handler ends at once on SIGINT, as under PM2: a request it
/// had accepted is cut, but the shared socket stays open, so no connection is refused.
#[test]
fn reloading_an_app_without_a_sigint_handler_never_refuses_a_connection() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-reload-plain");
    let port = free_port();
    issue_toml(&d, port, "");
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "api", 2, "online", DEADLINE);
    let (ok, failures) = reload_three_times(&d, &r, port);
    assert_none_refused("reloads of a plain app", ok, &failures, &r);
}

/// A request the stopped process had already accepted dies with it (a reset); a new
/// connection is never refused: the socket stays open in runner.
fn assert_none_refused(what: &str, ok: u64, failures: &[(ErrorKind, String)], r: &Proc) {
    let refused: Vec<_> = failures
        .iter()
        .filter(|(k, _)| *k == ErrorKind::ConnectionRefused)
        .collect();
    eprintln!(
        "{what} under load: {ok} requests, {} cut, {} refused",
        failures.len(),
        refused.len()
    );
    assert!(refused.is_empty(), "{refused:?}\n{}", r.dump());
}

/// SPEC section 4: a graceful stop starts with `kill_signal`, for cluster workers too, so
/// the app's own handler runs. A handler that only closes its server leaves Node's IPC
/// channel open; runner then asks the worker to disconnect, and it ends by itself long
/// before `kill_timeout`.
#[test]
fn a_workers_own_signal_handler_runs_on_stop_and_a_server_close_is_enough() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-handler");
    let port = free_port();
    let log = d.p("signals");
    d.write(
        "h.js",
        &format!(
            "const server = require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT);\n\
             process.on('SIGTERM', () => {{ require('fs').appendFileSync('{log}', process.pid + ' SIGTERM\\n'); server.close(); }});\n"
        ),
    );
    d.ecosystem(&format!(
        "[[apps]]\nname = \"api\"\nscript = \"h.js\"\nexec_mode = \"cluster\"\ninstances = 2\n\
         kill_signal = \"SIGTERM\"\nkill_timeout = 60000\nenv = {{ PORT = \"{port}\" }}\n"
    ));
    let mut r = runner_eco(&d, &[]);
    wait_app_status(&d, "api", 2, "online", DEADLINE);
    let pids = pids_of(&d, "api");
    let started = Instant::now();
    r.signal("TERM");
    let status = r.wait(Duration::from_secs(90));
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "{}", r.dump());
    let got = std::fs::read_to_string(&log).unwrap_or_default();
    for p in &pids {
        assert!(
            got.contains(&format!("{p} SIGTERM")),
            "pid {p} never saw its kill_signal: {got:?}\n{}",
            r.dump()
        );
    }
    assert!(
        took < Duration::from_secs(55),
        "the workers waited for the SIGKILL at kill_timeout ({took:?})\n{}",
        r.dump()
    );
    assert!(!r.stderr().contains("SIGKILL"), "{}", r.dump());
}

#[test]
fn a_new_version_that_fails_keeps_the_old_ones_serving() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-bad-reload");
    let port = free_port();
    let flag = d.p("broken");
    d.write(
        "app.js",
        &format!(
            "if (require('fs').existsSync('{flag}')) throw new Error('broken deploy');\n{ISSUE_APP}"
        ),
    );
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "api"
script = "app.js"
exec_mode = "cluster"
instances = 2
env = {{ PORT = "{port}" }}
"#
    ));
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "api", 2, "online", DEADLINE);
    let old = pids_of(&d, "api");
    d.write("broken", "1");
    let load = Load::start(port);
    load.wait_more(10);
    let (code, out, err) = client(&d, &["reload", "api"], Duration::from_secs(60));
    assert_ne!(
        code, 0,
        "the reload of a broken version succeeded: {out}\n{err}"
    );
    load.wait_more(20);
    let (_, failures) = load.finish();
    assert!(failures.is_empty(), "{failures:?}\n{}", r.dump());
    assert_eq!(pids_of(&d, "api"), old, "{}", r.dump());
    let (bodies, failures) = requests(port, 100);
    assert!(failures.is_empty(), "{failures:?}");
    let old: BTreeSet<String> = old.iter().map(|p| p.to_string()).collect();
    assert_eq!(bodies, old, "the old instances serve\n{}", r.dump());
}

#[test]
fn killing_an_instance_never_refuses_a_connection() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-kill");
    let port = free_port();
    issue_toml(&d, port, "");
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "api", 2, "online", DEADLINE);
    let load = Load::start(port);
    load.wait_more(20);
    for _ in 0..3 {
        let pids = pids_of(&d, "api");
        send_signal(pids[0] as i32, "KILL");
        wait_for("the killed instance to be replaced", DEADLINE, || {
            let now = pids_of(&d, "api");
            now.len() == 2 && !now.contains(&pids[0])
        });
        load.wait_more(20);
    }
    let (ok, failures) = load.finish();
    assert_none_refused("kills", ok, &failures, &r);
}

#[test]
fn a_port_held_by_another_process_gives_the_worker_eaddrinuse_and_runner_says_so() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-taken");
    let port = free_port();
    let _holder = std::net::TcpListener::bind(("0.0.0.0", port)).expect("hold the port");
    servers_app(&d, &format!("[[{port}]]"));
    d.ecosystem(
        r#"
[[apps]]
name = "api"
script = "multi.js"
exec_mode = "cluster"
instances = 1
max_restarts = 1
"#,
    );
    let mut r = runner_eco(&d, &[]);
    let got = d.wait_file("out.0");
    assert_eq!(got.trim(), "error EADDRINUSE", "{}", r.dump());
    let code = r.code(Duration::from_secs(30));
    assert_ne!(code, 0);
    let err = r.stderr();
    assert!(
        err.contains(&format!(
            "api[0]: cannot listen on port {port} (any address)"
        )) && err.contains("EADDRINUSE"),
        "{err}"
    );
}

/// `dgram` `bind()` in a worker is routed through the primary as `listen()` is: both
/// workers hold the one UDP socket runner bound, and it answers.
#[test]
fn a_udp_bind_in_every_worker_shares_one_socket() {
    if node_missing() {
        return;
    }
    let d = TestDir::new("nc-udp");
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("probe a free UDP port");
        probe.local_addr().expect("local addr").port()
    };
    d.write(
        "u.js",
        "const s = require('dgram').createSocket('udp4');\n\
         s.on('message', (m, r) => s.send(String(process.pid), r.port, r.address));\n\
         s.bind(Number(process.env.PORT), '127.0.0.1');\n",
    );
    d.ecosystem(&format!(
        "[[apps]]\nname = \"u\"\nscript = \"u.js\"\nexec_mode = \"cluster\"\ninstances = 2\n\
         env = {{ PORT = \"{port}\" }}\n"
    ));
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "u", 2, "online", DEADLINE);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("client socket");
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let pids: BTreeSet<String> = pids_of(&d, "u").iter().map(|p| p.to_string()).collect();
    let mut answers = BTreeSet::new();
    let until = Instant::now() + DEADLINE;
    while answers.is_empty() && Instant::now() < until {
        let _ = client.send_to(b"x", ("127.0.0.1", port));
        let mut buf = [0u8; 64];
        if let Ok((n, _)) = client.recv_from(&mut buf) {
            answers.insert(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(
        !answers.is_empty() && answers.is_subset(&pids),
        "answers {answers:?} from workers {pids:?}\n{}",
        r.dump()
    );
    let udp_inodes = |pid: &String| -> BTreeSet<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|l| l.to_string_lossy().into_owned())
                    .filter(|l| l.starts_with("socket:"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let all: Vec<BTreeSet<String>> = pids.iter().map(udp_inodes).collect();
    assert!(
        all[0].intersection(&all[1]).count() >= 1,
        "the workers share no socket: {all:?}\n{}",
        r.dump()
    );
    assert!(
        r.stderr()
            .contains(&format!("listening on udp 127.0.0.1:{port}")),
        "{}",
        r.dump()
    );
}
