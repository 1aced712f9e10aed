//! `[runner] metrics`: `GET /metrics` read by a real Prometheus text parser (Python's
//! `prometheus_client`), values that follow restarts and reloads, and a hostile scraper
//! that never slows supervision down.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn have_parser() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "note: python3 prometheus_client missing (pip install prometheus_client); skipped"
        );
    }
    ok
}

/// One sample: (name, labels sorted, value).
type Sample = (String, Vec<(String, String)>, f64);

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    print(json.dumps({"family": fam.name, "type": fam.type, "help": fam.documentation}))
    for s in fam.samples:
        print(json.dumps({"name": s.name, "labels": s.labels, "value": s.value}))
"#;

/// The body of GET /metrics, parsed by prometheus_client: (families with type, samples).
fn scrape(port: u16) -> (Vec<(String, String)>, Vec<Sample>) {
    let text = http_get(port, "/metrics").expect("GET /metrics");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let mut py = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    py.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut families = Vec::new();
    let mut samples = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let j = Json::parse(line).unwrap();
        if j.has("family") {
            families.push((j.s("family"), j.s("type")));
            continue;
        }
        let mut labels: Vec<(String, String)> = match j.get("labels") {
            Some(Json::Obj(kv)) => kv
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect(),
            _ => Vec::new(),
        };
        labels.sort();
        samples.push((
            j.s("name"),
            labels,
            j.get("value").and_then(Json::as_f64).unwrap(),
        ));
    }
    (families, samples)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| *v)
}

#[test]
fn metrics_parse_as_prometheus_text_and_follow_restarts_and_reloads() {
    if !have_parser() {
        return;
    }
    let dir = TestDir::new("metrics");
    let port = free_port();
    dir.ecosystem(&format!(
        r#"
[runner]
metrics = "127.0.0.1:{port}"

[[apps]]
name = "web"
namespace = "front"
script = "sleep"
args = "100000"
instances = 2
kill_signal = "SIGTERM"
health_check = "exec:exit 1"
health_interval = "200ms"
health_failures = 1000000

[[apps]]
name = "flaky"
script = "sleep 0.3; exit 3"
min_uptime = 100
"#
    ));
    let mut r = runner_eco(&dir, &[]);
    let mut s = Vec::new();
    wait_for(
        "a first scrape with flaky's exit and failed checks",
        DEADLINE,
        || {
            let Ok(_) = http_get(port, "/metrics") else {
                return false;
            };
            s = scrape(port).1;
            value(
                &s,
                "runner_instance_last_exit_code",
                &[
                    ("app", "flaky"),
                    ("instance", "0"),
                    ("namespace", "default"),
                ],
            )
            .is_some()
                && value(
                    &s,
                    "runner_instance_health_check_failures_total",
                    &[("app", "web"), ("instance", "1"), ("namespace", "front")],
                )
                .unwrap_or(0.0)
                    >= 1.0
        },
    );
    let (families, _) = scrape(port);
    for (fam, kind) in [
        ("runner_instance_up", "gauge"),
        ("runner_instance_ready", "gauge"),
        ("runner_instance_restarts", "counter"),
        ("runner_instance_memory_bytes", "gauge"),
        ("runner_instance_cpu_seconds", "counter"),
        ("runner_instance_start_time_seconds", "gauge"),
        ("runner_instance_last_exit_code", "gauge"),
        ("runner_instance_health_check_failures", "counter"),
        ("runner_app_reloads", "counter"),
        ("runner_app_reload_failures", "counter"),
        ("runner_build_info", "gauge"),
        ("runner_open_fds", "gauge"),
        ("runner_resident_memory_bytes", "gauge"),
    ] {
        assert!(
            families.iter().any(|(f, k)| f == fam && k == kind),
            "{fam} ({kind}) missing from {families:?}"
        );
    }
    let web = |i: &'static str| [("app", "web"), ("instance", i), ("namespace", "front")];
    for i in ["0", "1"] {
        let l = web(i);
        assert_eq!(value(&s, "runner_instance_up", &l), Some(1.0));
        assert_eq!(value(&s, "runner_instance_ready", &l), Some(1.0));
        assert_eq!(value(&s, "runner_instance_restarts_total", &l), Some(0.0));
        assert!(value(&s, "runner_instance_memory_bytes", &l).unwrap() > 0.0);
        assert!(value(&s, "runner_instance_cpu_seconds_total", &l).is_some());
        let start = value(&s, "runner_instance_start_time_seconds", &l).unwrap();
        let now = now_ms() as f64 / 1000.0;
        assert!(
            start <= now + 1.0 && start > now - 120.0,
            "start {start} now {now}"
        );
    }
    let flaky = [
        ("app", "flaky"),
        ("instance", "0"),
        ("namespace", "default"),
    ];
    assert_eq!(
        value(&s, "runner_instance_last_exit_code", &flaky),
        Some(3.0)
    );
    let app = [("app", "web"), ("namespace", "front")];
    assert_eq!(value(&s, "runner_app_reloads_total", &app), Some(0.0));
    assert_eq!(
        value(&s, "runner_app_reload_failures_total", &app),
        Some(0.0)
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&s, "runner_build_info", &[("version", version)]),
        Some(1.0)
    );
    assert!(value(&s, "runner_open_fds", &[]).unwrap() >= 3.0);
    assert!(value(&s, "runner_resident_memory_bytes", &[]).unwrap() > 0.0);

    // A reload restarts both web instances (fork mode): the values follow.
    let before = s.clone();
    let (code, out, err) = client(&dir, &["reload", "web"], Duration::from_secs(30));
    assert_eq!(code, 0, "{out}{err}");
    let (_, after) = scrape(port);
    for i in ["0", "1"] {
        let l = web(i);
        assert_eq!(
            value(&after, "runner_instance_restarts_total", &l),
            Some(1.0)
        );
        assert_eq!(
            value(&after, "runner_instance_last_exit_code", &l),
            Some(143.0)
        );
        assert!(
            value(&after, "runner_instance_start_time_seconds", &l)
                > value(&before, "runner_instance_start_time_seconds", &l)
        );
        assert!(
            value(&after, "runner_instance_health_check_failures_total", &l)
                >= value(&before, "runner_instance_health_check_failures_total", &l)
        );
    }
    assert_eq!(value(&after, "runner_app_reloads_total", &app), Some(1.0));
    assert!(
        value(&after, "runner_instance_restarts_total", &flaky)
            > value(&before, "runner_instance_restarts_total", &flaky)
    );
    r.signal("TERM");
    assert_eq!(r.code(DEADLINE), 0);
}

#[test]
fn anything_but_get_metrics_is_refused_and_a_taken_port_stops_the_start() {
    let dir = TestDir::new("metrics-routes");
    let port = free_port();
    dir.ecosystem(&format!(
        "[runner]\nmetrics = \"127.0.0.1:{port}\"\n[[apps]]\nname = \"s\"\nscript = \"sleep\"\nargs = \"100000\"\n"
    ));
    let mut r = runner_eco(&dir, &[]);
    wait_for("metrics", DEADLINE, || http_get(port, "/metrics").is_ok());
    let ask = |req: &str| {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    };
    assert!(ask("GET / HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(ask("POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(ask("DELETE /metrics HTTP/1.1\r\n\r\n").contains("Allow: GET"));

    // A second runner on the same port: a clear error, nothing started.
    let other = TestDir::new("metrics-taken");
    other.ecosystem(&format!(
        "[runner]\nmetrics = \"127.0.0.1:{port}\"\n[[apps]]\nname = \"s\"\nscript = \"sleep\"\nargs = \"100000\"\n"
    ));
    let (code, _, err) = run_to_end(&other, &[other.p("ecosystem.toml")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("cannot serve metrics on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("nothing was started"), "{err}");
    r.signal("TERM");
    assert_eq!(r.code(DEADLINE), 0);
}

#[test]
fn a_hostile_scraper_never_delays_status_or_reaping() {
    let dir = TestDir::new("metrics-hostile");
    let port = free_port();
    let beats = dir.p("beats");
    dir.ecosystem(&format!(
        r#"
[runner]
metrics = "127.0.0.1:{port}"

[[apps]]
name = "beat"
script = "date +%s%3N >> {beats}; sleep 0.2"
min_uptime = 50
"#
    ));
    let mut r = runner_eco(&dir, &[]);
    wait_for("metrics", DEADLINE, || http_get(port, "/metrics").is_ok());
    wait_for("beats", DEADLINE, || {
        dir.exists("beats") && dir.lines("beats").len() >= 3
    });

    let attack_start = now_ms();
    // 1000 connections that send nothing.
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    // Slowloris: 20 connections that send one byte of a request every 300 ms.
    let slow = std::thread::spawn(move || {
        let mut conns: Vec<TcpStream> = (0..20)
            .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
            .collect();
        let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in req.iter().cycle().take(40) {
            for c in &mut conns {
                let _ = c.write_all(&[*b]);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        conns
    });
    // A 1 MiB header: answered 431 or cut off, promptly.
    let huge = std::thread::spawn(move || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        let started = Instant::now();
        let mut req = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
        req.resize(1 << 20, b'a');
        let _ = c.write_all(&req);
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        (
            String::from_utf8_lossy(&out).into_owned(),
            started.elapsed(),
        )
    });

    // Meanwhile: `runner status` answers promptly, every time.
    let mut worst = Duration::ZERO;
    for _ in 0..16 {
        let t = Instant::now();
        let (code, _, err) = client(&dir, &["status"], Duration::from_secs(20));
        assert!(code == 0 || code == 1, "status failed: {err}");
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(500));
    }
    let (answer, took) = huge.join().unwrap();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert!(
        took < Duration::from_secs(15),
        "1 MiB request took {took:?}"
    );
    let slow_conns = slow.join().unwrap();
    let attack_end = now_ms();
    assert!(
        worst < Duration::from_secs(5),
        "runner status took {worst:?}"
    );
    eprintln!("attack: slowest runner status {worst:?}, 1 MiB request ended after {took:?}");

    // Reaping went on: the app was restarted all along, without a long gap.
    let stamps = stamps(&dir.lines("beats"));
    let during: Vec<u64> = stamps
        .iter()
        .copied()
        .filter(|s| *s >= attack_start && *s <= attack_end)
        .collect();
    assert!(
        during.len() >= 5,
        "only {} restarts during the attack",
        during.len()
    );
    let gap = during.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(gap < 4000, "no restart for {gap} ms during the attack");
    eprintln!("attack: {} restarts, longest gap {gap} ms", during.len());

    // Held connections are closed by runner at its per-connection deadline.
    for mut c in slow_conns.into_iter().take(3) {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 64];
        let t = Instant::now();
        let n = c.read(&mut buf);
        let timed_out = matches!(&n, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
        assert!(!timed_out, "the connection stayed open");
        assert!(
            t.elapsed() < Duration::from_secs(19),
            "held open for {:?}",
            t.elapsed()
        );
    }
    drop(idle);
    // And the endpoint serves again once the attackers are gone.
    wait_for("a scrape after the attack", Duration::from_secs(30), || {
        http_get(port, "/metrics").is_ok()
    });
    r.signal("TERM");
    assert_eq!(r.code(DEADLINE), 0);
}
