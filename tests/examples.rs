//! The examples in `examples/` work as their comments say: every ecosystem file passes
//! `runner check`, and the runnable ones are run and exercised over loopback.
//!
//! The bundled example, node-cluster and python-cluster listen on fixed ports (8080,
//! 8090): those tests take `FIXED_PORTS` so they never overlap, and skip with a
//! note when a port is taken by something else. web-and-db is run from a copy whose
//! data dir and ports are the test's own.

mod common;

use common::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Serialises the tests that bind the examples' fixed ports.
static FIXED_PORTS: Mutex<()> = Mutex::new(());

fn fixed_ports() -> MutexGuard<'static, ()> {
    FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Whether `addr` can be bound right now (the example's port is free).
fn can_bind(addr: &str) -> bool {
    TcpListener::bind(addr).is_ok()
}

/// Skips (returns false, with a note) unless every address can be bound.
fn ports_free(test: &str, addrs: &[&str]) -> bool {
    for a in addrs {
        if !can_bind(a) {
            eprintln!("SKIP {test}: {a} is in use by another program");
            return false;
        }
    }
    true
}

/// Starts runner on an example's ecosystem file; the control socket lives in `dir`.
fn run_example(dir: &TestDir, file: &Path) -> Proc {
    runner(dir, &[file.to_string_lossy().into_owned()])
}

/// GETs `/` on `port` until it answers 200 (or the deadline passes); returns the body.
fn get_eventually(p: &mut Proc, port: u16, deadline: Duration) -> String {
    let mut last = String::new();
    let ok = poll_until(deadline, || match http_get(port, "/") {
        Ok(t) => {
            last = t;
            true
        }
        Err(e) => {
            last = e.to_string();
            false
        }
    });
    assert!(ok, "127.0.0.1:{port} never answered: {last}\n{}", p.dump());
    assert!(!p.has_exited(), "runner exited early\n{}", p.dump());
    body(&last)
}

fn body(response: &str) -> String {
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The pid in "... pid N ..." of a response body.
fn pid_in(body: &str) -> Option<i64> {
    let rest = body.split("pid ").nth(1)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// SIGTERM to runner; it must exit 0 within `deadline`.
fn term_exits_zero(p: &mut Proc, deadline: Duration) {
    p.signal("TERM");
    let code = p.code(deadline);
    assert_eq!(code, 0, "runner exited {code} after SIGTERM\n{}", p.dump());
}

/// Index of the first line of `text` containing every one of `parts`.
fn line_index(text: &str, parts: &[&str]) -> Option<usize> {
    text.lines()
        .position(|l| parts.iter().all(|p| l.contains(p)))
}

// ---------------------------------------------------------------------------------------

#[test]
fn every_example_ecosystem_file_passes_check() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().is_some_and(|n| n == "ecosystem.toml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&examples_dir(), &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(examples_dir())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for expected in [
        "ecosystem.toml",
        "node-cluster/ecosystem.toml",
        "python-cluster/ecosystem.toml",
        "systemd/ecosystem.toml",
        "kubernetes/ecosystem.toml",
        "web-and-db/ecosystem.toml",
        "migrate-then-serve/ecosystem.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "examples/{expected} not found; found {names:?}"
        );
    }
    let dir = TestDir::new("ex-check");
    let mut failed = Vec::new();
    for (f, name) in files.iter().zip(&names) {
        let (code, out, err) = run_to_end(
            &dir,
            &["check".to_string(), f.to_string_lossy().into_owned()],
        );
        if code != 0 {
            failed.push(format!("examples/{name}: exit {code}\n{out}\n{err}"));
        }
    }
    assert!(
        failed.is_empty(),
        "runner check failed:\n{}",
        failed.join("\n")
    );
    eprintln!(
        "runner check passed on {} example files: {names:?}",
        files.len()
    );
}

#[test]
fn kubernetes_example_has_liveness_checks_and_a_scrape_annotation() {
    let k = examples_dir().join("kubernetes");
    let deployment = std::fs::read_to_string(k.join("deployment.yaml")).unwrap();
    let eco = std::fs::read_to_string(k.join("ecosystem.toml")).unwrap();
    for needle in [
        "prometheus.io/scrape: \"true\"",
        "prometheus.io/port: \"9100\"",
        "livenessProbe:",
        "path: /metrics",
        "metrics = \"0.0.0.0:9100\"",
        "health_check = \"http://127.0.0.1:8080/\"",
    ] {
        assert!(
            deployment.contains(needle),
            "deployment.yaml lacks {needle}"
        );
    }
    // The ConfigMap carries the same file as ecosystem.toml (but for the script path).
    for line in eco
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        if line.starts_with("script") {
            continue;
        }
        assert!(
            deployment.contains(&format!("    {line}")),
            "deployment.yaml's ConfigMap lacks `{line}`"
        );
    }
}

#[test]
fn bundled_example_serves_one_port_from_both_instances_and_runs_the_worker() {
    let _g = fixed_ports();
    if !ports_free("bundled example", &["127.0.0.1:8080"]) {
        return;
    }
    let dir = TestDir::new("ex-bundled");
    let mut p = run_example(&dir, &examples_dir().join("ecosystem.toml"));

    // Cluster mode: both instances accept on the one socket runner bound.
    let web = wait_app_status(&dir, "web", 2, "online", DEADLINE);
    assert!(
        web.iter().all(|r| r.s("mode") == "cluster"),
        "web rows: {web:?}"
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut last = String::new();
    let both = poll_until(DEADLINE, || {
        if let Ok(r) = http_get(8080, "/") {
            last = body(&r);
            if let Some(i) = last.strip_prefix("hello from instance ") {
                seen.insert(i.chars().next().unwrap_or('?'));
            }
        }
        seen.len() == 2
    });
    assert!(
        both,
        "8080 was not served by both instances (seen {seen:?}, last {last:?})\n{}",
        p.dump()
    );

    // The worker starts only once web is online, and does a job every 2 s.
    let rows = wait_app_status(&dir, "worker", 1, "online", DEADLINE);
    assert!(rows[0].i("pid") > 0, "worker has no pid: {rows:?}");
    wait_for("the worker's first job", DEADLINE, || {
        p.stdout().contains("worker[0] job 1 done")
    });
    let out = p.stdout();
    let listening = line_index(&out, &["web[", "listening on"]).unwrap_or(usize::MAX);
    let job = line_index(&out, &["worker[0] job 1 done"]).unwrap_or(0);
    assert!(
        listening < job,
        "the worker ran before web was ready\n{}",
        p.dump()
    );

    term_exits_zero(&mut p, Duration::from_secs(20));
    let out = p.stdout();
    assert!(
        out.contains("worker[0] stopping after"),
        "worker did not stop gracefully\n{}",
        p.dump()
    );
    assert!(
        out.contains("web[0] got signal") && out.contains("web[1] got signal"),
        "web did not stop gracefully\n{}",
        p.dump()
    );
}

#[test]
fn node_cluster_pm2_file_and_toml_are_the_same_app() {
    if !have("node") {
        eprintln!("SKIP node-cluster: node is not installed");
        return;
    }
    let dir = TestDir::new("ex-node-same");
    let resolved = |file: &str| {
        let path = examples_dir().join("node-cluster").join(file);
        let (code, out, err) = run_to_end(&dir, &["check".to_string(), path.display().to_string()]);
        assert_eq!(code, 0, "{file}: {out}\n{err}");
        // The first line names the file.
        out.lines().skip(1).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(resolved("ecosystem.config.js"), resolved("ecosystem.toml"));
}

#[test]
fn node_cluster_reload_drops_no_request() {
    if !have("node") {
        eprintln!("SKIP node-cluster: node is not installed");
        return;
    }
    let _g = fixed_ports();
    if !ports_free("node-cluster", &["127.0.0.1:8080"]) {
        return;
    }
    let dir = TestDir::new("ex-node");
    // The PM2 file run directly, as `pm2-runtime ecosystem.config.js` would be; the TOML
    // beside it resolves to the same app (see the test below).
    let mut p = run_example(
        &dir,
        &examples_dir()
            .join("node-cluster")
            .join("ecosystem.config.js"),
    );
    let rows = wait_app_status(&dir, "api", 2, "online", DEADLINE);
    assert_eq!(rows.len(), 2, "api rows: {rows:?}");
    let b = get_eventually(&mut p, 8080, DEADLINE);
    assert!(b.starts_with("hello from pid"), "8080 answered {b:?}");
    let old = pids_of(&dir, "api");
    assert_eq!(old.len(), 2, "api pids: {old:?}");

    // A client sends requests one after another for the whole reload.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(90);
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                match http_get(8080, "/") {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => failures.lock().unwrap().push(e.to_string()),
                }
            }
        })
    };
    wait_for("the client's first requests", DEADLINE, || {
        ok.load(Ordering::SeqCst) >= 5
    });
    let before = ok.load(Ordering::SeqCst);
    let (code, out, err) = client(&dir, &["reload", "api"], Duration::from_secs(60));
    // Keep the load on a little after the reload, against the new instances only.
    let after_reload = ok.load(Ordering::SeqCst);
    wait_for("requests after the reload", DEADLINE, || {
        ok.load(Ordering::SeqCst) >= after_reload + 5
    });
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    assert_eq!(
        code,
        0,
        "runner reload api failed: {out}\n{err}\n{}",
        p.dump()
    );

    let failures = failures.lock().unwrap().clone();
    let total = ok.load(Ordering::SeqCst);
    eprintln!(
        "node-cluster: {total} requests answered ({} during the reload), {} failed",
        after_reload - before,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "requests failed during the reload: {failures:?}"
    );
    assert!(
        after_reload > before,
        "no request was answered during the reload"
    );

    let rows = wait_app_status(&dir, "api", 2, "online", DEADLINE);
    assert_eq!(rows.len(), 2, "api rows after reload: {rows:?}");
    let new = pids_of(&dir, "api");
    assert_eq!(new.len(), 2, "api pids after reload: {new:?}");
    assert!(
        new.iter().all(|p| !old.contains(p)),
        "pids not replaced: before {old:?}, after {new:?}"
    );
    let b = get_eventually(&mut p, 8080, DEADLINE);
    let pid = pid_in(&b).unwrap_or(-1);
    assert!(
        new.contains(&pid),
        "answered by pid {pid}, not one of {new:?}"
    );

    term_exits_zero(&mut p, Duration::from_secs(20));
}

#[test]
fn python_cluster_shares_the_socket_between_three_instances() {
    let _g = fixed_ports();
    // The example listens on every interface; the test only connects over loopback.
    if !ports_free("python-cluster", &["0.0.0.0:8090"]) {
        return;
    }
    let dir = TestDir::new("ex-python");
    let mut p = run_example(
        &dir,
        &examples_dir().join("python-cluster").join("ecosystem.toml"),
    );
    let rows = wait_app_status(&dir, "web", 3, "online", DEADLINE);
    assert_eq!(rows.len(), 3, "web rows: {rows:?}");
    let pids = pids_of(&dir, "web");
    assert_eq!(pids.len(), 3, "web pids: {pids:?}");

    get_eventually(&mut p, 8090, DEADLINE);
    let mut seen = std::collections::BTreeSet::new();
    let n = 60;
    for i in 0..n {
        let r = http_get(8090, "/")
            .unwrap_or_else(|e| panic!("request {i} of {n} failed: {e}\n{}", p.dump()));
        let b = body(&r);
        let pid = pid_in(&b).unwrap_or_else(|| panic!("no pid in {b:?}"));
        assert!(
            pids.contains(&pid),
            "answered by pid {pid}, not one of {pids:?}"
        );
        seen.insert(pid);
    }
    eprintln!(
        "python-cluster: {n} requests answered by {} distinct pid(s) of 3: {seen:?}",
        seen.len()
    );
    assert!(!seen.is_empty());

    term_exits_zero(&mut p, Duration::from_secs(20));
}

/// Removes the PostgreSQL data dir (owned by postgres; the test runs as root).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uid_of(user: &str) -> Option<u32> {
    let out = Command::new("id").args(["-u", user]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[test]
fn web_and_db_web_waits_for_postgres() {
    let src = examples_dir().join("web-and-db");
    let postgres = Path::new("/usr/lib/postgresql/15/bin/postgres");
    if !postgres.exists() {
        eprintln!("SKIP web-and-db: {} is missing", postgres.display());
        return;
    }
    if !have("pg_isready") || !have("python3") {
        eprintln!("SKIP web-and-db: pg_isready or python3 is missing");
        return;
    }
    let Some(pg_uid) = uid_of("postgres") else {
        eprintln!("SKIP web-and-db: no postgres user");
        return;
    };
    if uid_of("root") != Some(0)
        || status_field(std::process::id() as i32, "Uid")
            .and_then(|u| u.split_whitespace().next().map(String::from))
            != Some("0".into())
    {
        eprintln!("SKIP web-and-db: needs root (db runs with uid = \"postgres\")");
        return;
    }

    // A copy of the example with a data dir and ports of this test's own.
    let dir = TestDir::new("ex-webdb");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let pgdata = PathBuf::from(format!(
        "/tmp/runner-test-pgdata-{}-{nanos}",
        std::process::id()
    ));
    let _cleanup = RemoveOnDrop(pgdata.clone());
    let pgport = free_port();
    let web_port = free_port();
    let toml = std::fs::read_to_string(src.join("ecosystem.toml")).unwrap();
    for literal in ["\"/tmp/runner-example-pgdata\"", "\"5433\"", "\"8092\""] {
        assert!(
            toml.contains(literal),
            "examples/web-and-db/ecosystem.toml no longer sets {literal}"
        );
    }
    let toml = toml
        .replace(
            "\"/tmp/runner-example-pgdata\"",
            &format!("\"{}\"", pgdata.display()),
        )
        .replace("\"5433\"", &format!("\"{pgport}\""))
        .replace("\"8092\"", &format!("\"{web_port}\""))
        .replace("127.0.0.1:8092", &format!("127.0.0.1:{web_port}"));
    let eco = dir.ecosystem(&toml);
    dir.write_exec(
        "db.sh",
        &std::fs::read_to_string(src.join("db.sh")).unwrap(),
    );
    dir.write(
        "web.py",
        &std::fs::read_to_string(src.join("web.py")).unwrap(),
    );

    let mut p = run_example(&dir, &eco);

    // initdb takes a few seconds on the first start.
    let slow = Duration::from_secs(60);
    let mut last = (0, String::new(), String::new());
    let healthy = poll_until(slow, || {
        last = client(&dir, &["status"], Duration::from_secs(10));
        last.0 == 0
    });
    assert!(
        healthy,
        "runner status never exited 0: {last:?}\n{}",
        p.dump()
    );
    // web's ready_check: once status says online, the page works at once.
    let page = http_get(web_port, "/")
        .map(|r| body(&r))
        .unwrap_or_else(|e| panic!("GET after status 0: {e}\n{}", p.dump()));
    assert_eq!(page.trim(), "db ok", "web's page\n{}", p.dump());

    // Whenever web has a pid, db is online.
    let rows = list(&dir);
    let web = rows_of(&rows, "web");
    let db = rows_of(&rows, "db");
    assert!(web.len() == 1 && web[0].i("pid") > 0, "web rows: {web:?}");
    assert!(
        db.len() == 1 && db[0].s("status") == "online",
        "db rows while web runs: {db:?}"
    );
    let db_pid = db[0].i("pid") as i32;
    let uid = status_field(db_pid, "Uid").unwrap_or_default();
    assert_eq!(
        uid.split_whitespace().next(),
        Some(pg_uid.to_string().as_str()),
        "db (pid {db_pid}) does not run as postgres: Uid {uid:?}"
    );
    assert!(
        pgdata.join("PG_VERSION").exists(),
        "db.sh did not initialise {}",
        pgdata.display()
    );

    // Runner's log: db online, then web started.
    let err = p.stderr();
    let db_online = line_index(&err, &["runner: db[0]: pid", "online"]);
    let web_started = line_index(&err, &["runner: web[0]: started pid"]);
    assert!(
        matches!((db_online, web_started), (Some(a), Some(b)) if a < b),
        "web started before db was online ({db_online:?}, {web_started:?})\n{err}"
    );

    term_exits_zero(&mut p, Duration::from_secs(30));
    let err = p.stderr();
    let web_stopped = line_index(&err, &["runner: web[0]: pid", "stopped"]);
    let db_stopped = line_index(&err, &["runner: db[0]: pid", "stopped"]);
    assert!(
        matches!((web_stopped, db_stopped), (Some(a), Some(b)) if a < b),
        "web was not stopped before db ({web_stopped:?}, {db_stopped:?})\n{}",
        p.dump()
    );
    assert!(
        err.contains("received fast shutdown request"),
        "postgres did not get SIGINT (fast shutdown)\n{}",
        p.dump()
    );
    assert!(
        !alive(db_pid),
        "postgres {db_pid} still alive after runner exited"
    );
}

/// A copy of examples/migrate-then-serve whose port is the test's own.
fn migrate_then_serve_copy(dir: &TestDir, port: u16, fail: bool) {
    let src = examples_dir().join("migrate-then-serve");
    for name in [
        "ecosystem.toml",
        "process-compose.yaml",
        "migrate.sh",
        "serve.py",
    ] {
        let text = std::fs::read_to_string(src.join(name)).unwrap();
        let mut text = text.replace("8095", &port.to_string());
        if fail && name == "migrate.sh" {
            text = text.replace("${MIGRATE_FAIL:-0}", "1");
        }
        if name.ends_with(".sh") {
            dir.write_exec(name, &text);
        } else {
            dir.write(name, &text);
        }
    }
}

#[test]
fn migrate_then_serve_runs_the_migration_before_the_server_in_both_formats() {
    if !have("python3") {
        eprintln!("SKIP migrate-then-serve: python3 is missing");
        return;
    }
    for file in ["ecosystem.toml", "process-compose.yaml"] {
        let dir = TestDir::new("ex-migrate");
        let port = free_port();
        migrate_then_serve_copy(&dir, port, false);
        let mut p = runner(&dir, &[dir.p(file)]);
        let body = get_eventually(&mut p, port, Duration::from_secs(30));
        assert!(body.contains("serving with schema 42"), "{file}: {body}");
        term_exits_zero(&mut p, Duration::from_secs(20));
        let err = p.stderr();
        let migrated = line_index(&err, &["migrate[0]", "exited (exit code 0)"]);
        let web = line_index(&err, &["web[0]: started"]);
        assert!(migrated < web && web.is_some(), "{file}: order in\n{err}");
    }
}

#[test]
fn migrate_then_serve_never_starts_the_server_when_the_migration_fails() {
    let dir = TestDir::new("ex-migrate-fail");
    migrate_then_serve_copy(&dir, free_port(), true);
    let (code, _, err) = run_to_end(&dir, &[dir.p("ecosystem.toml")]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("web[0]: started"), "{err}");
    assert!(err.contains("web: not starting"), "{err}");
}
