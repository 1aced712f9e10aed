//! Readiness (SPEC section 3): sd_notify READY=1 from an instance or its descendants, the
//! Node IPC `'ready'` message, `ready_check` probes, `listen_timeout`, `depends_on`
//! ordering, the watchdog, and runner's own sd_notify to a systemd-like parent.
mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Polls `list --json` until every instance of `name` is online. Each answer that shows
/// it online is checked against `stamp_file`'s `<ms> WHAT` line: that line must have been
/// written before the answer arrived (the instance cannot be online before it is ready).
/// Returns whether `launching` was seen on the way.
fn wait_online_not_before(d: &TestDir, name: &str, stamp_file: &str, what: &str) -> bool {
    let mut saw_launching = false;
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < end,
            "{name} never became online: {:?}",
            try_list(d)
        );
        let rows = try_list(d).map(|r| rows_of(&r, name)).unwrap_or_default();
        let answered_at = now_ms();
        if !rows.is_empty() {
            let st = rows[0].s("status");
            if st == "launching" {
                saw_launching = true;
            }
            if st == "online" {
                let stamp = d
                    .lines(stamp_file)
                    .iter()
                    .find(|l| l.split_whitespace().nth(1) == Some(what))
                    .map(|l| l.split_whitespace().next().unwrap().parse::<u64>().unwrap());
                match stamp {
                    Some(t) => assert!(
                        t <= answered_at,
                        "{name} online at {answered_at} before it was {what} at {t}"
                    ),
                    None => panic!(
                        "{name} is online but never was {what}: {:?}",
                        d.read(stamp_file)
                    ),
                }
                return saw_launching;
            }
            assert_eq!(st, "launching", "unexpected status of {name}: {rows:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first `<ms> WHAT` stamp in FILE (lines as `<ms> WHAT [label]`).
fn stamp_of(d: &TestDir, file: &str, what: &str, label: Option<&str>) -> Option<u64> {
    d.lines(file).iter().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.get(1) == Some(&what) && (label.is_none() || w.get(2).copied() == label) {
            w[0].parse().ok()
        } else {
            None
        }
    })
}

#[test]
fn node_process_send_ready_makes_it_online_and_dependents_start_after() {
    let d = TestDir::new("node-ready");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "web"
script = "{ready}"
args = ["{stamp}", "2000"]
wait_ready = true
listen_timeout = 60000

[[apps]]
name = "after"
script = "{stampsh}"
args = ["{after}", "0", "100"]
depends_on = ["web"]
"#,
        ready = app("ready.js"),
        stamp = d.p("web.log"),
        stampsh = app("stamp.sh"),
        after = d.p("after.log"),
    ));
    let r = runner_eco(&d, &[]);
    wait_listening(&d);
    let saw_launching = wait_online_not_before(&d, "web", "web.log", "ready");
    assert!(saw_launching, "web was never seen launching:\n{}", r.dump());
    assert!(
        !d.read("web.log").contains("no-ipc"),
        "node got no IPC channel (process.send undefined)"
    );
    d.wait_file("after.log");
    let ready = stamp_of(&d, "web.log", "ready", None).unwrap();
    let after = stamps(&d.lines("after.log"))[0];
    assert!(
        after >= ready,
        "the dependent started at {after}, before web was ready at {ready}"
    );
    wait_app_status(&d, "after", 1, "online", DEADLINE);
}

#[test]
fn systemd_notify_from_a_child_shell_makes_it_online_with_status_text() {
    let d = TestDir::new("notify-child");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "shell"
script = "/bin/sh"
args = ["-c", "sleep 1; echo \"$(date +%s%3N) ready\" >> {log}; sh -c 'systemd-notify --ready --status=\"warmed up 42\"; true'; exec sleep 100"]
wait_ready = true
listen_timeout = 60000
"#,
        log = d.p("shell.log"),
    ));
    let r = runner_eco(&d, &[]);
    wait_listening(&d);
    wait_online_not_before(&d, "shell", "shell.log", "ready");
    let rows = list(&d);
    let row = &rows_of(&rows, "shell")[0];
    assert_eq!(
        row.s("status_text"),
        "warmed up 42",
        "row: {row:?}\n{}",
        r.dump()
    );
}

#[test]
fn a_ready_message_from_a_foreign_process_changes_nothing() {
    let d = TestDir::new("notify-foreign");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "quiet"
script = "{notify}"
args = ["--env-file", "{env}"]
wait_ready = true
listen_timeout = 60000
"#,
        notify = app("notify.py"),
        env = d.p("env.txt"),
    ));
    let r = runner_eco(&d, &[]);
    let env = parse_env(&d.wait_file("env.txt"));
    let path = env.get("NOTIFY_SOCKET").cloned().unwrap_or_default();
    assert!(!path.is_empty(), "the app got no NOTIFY_SOCKET: {env:?}");
    wait_app_status(&d, "quiet", 1, "launching", DEADLINE);

    // The test process is no part of any instance.
    let sock = UnixDatagram::unbound().unwrap();
    let sent = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        sock.send_to_addr(b"READY=1\nSTATUS=forged", &addr)
    } else {
        sock.send_to(b"READY=1\nSTATUS=forged", &path)
    };
    sent.unwrap_or_else(|e| panic!("cannot send to the app's NOTIFY_SOCKET {path}: {e}"));
    let pid = env["PID"].clone();
    let forged = format!("READY=1\nSTATUS=forged MAINPID={pid}");
    let _ = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        sock.send_to_addr(forged.as_bytes(), &addr)
    } else {
        sock.send_to(forged.as_bytes(), &path)
    };

    // It stays launching (well within its 60 s listen_timeout).
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        let rows = list(&d);
        let row = &rows_of(&rows, "quiet")[0];
        assert_eq!(
            row.s("status"),
            "launching",
            "a foreign READY=1 made it {row:?}\n{}",
            r.dump()
        );
        assert_ne!(
            row.s("status_text"),
            "forged",
            "a foreign STATUS= was taken"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The uid of a user, from `id -u`.
fn uid_of(user: &str) -> Option<u32> {
    let out = std::process::Command::new("id")
        .args(["-u", user])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[test]
fn postgres_sends_ready_itself_and_dependents_start_after_it_accepts() {
    const BIN: &str = "/usr/lib/postgresql/15/bin";
    if !std::path::Path::new(&format!("{BIN}/postgres")).exists() {
        eprintln!("SKIPPED: {BIN}/postgres not installed (CI installs postgresql-15)");
        return;
    }
    let Some(pg_uid) = uid_of("postgres") else {
        eprintln!("SKIPPED: no postgres user");
        return;
    };
    if !is_root() {
        eprintln!("SKIPPED: postgres test needs root (to run postgres as the postgres user)");
        return;
    }
    let d = TestDir::new("postgres");
    let data = d.p("pgdata");
    let st = std::process::Command::new("chown")
        .args(["-R", "postgres:", &d.p("")])
        .status()
        .unwrap();
    assert!(st.success());
    let init = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(format!("{BIN}/initdb"))
            .args(["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync"])
            .current_dir(d.path())
            .uid(pg_uid)
            .env("LC_ALL", "C")
            .output()
            .unwrap()
    };
    assert!(
        init.status.success(),
        "initdb failed: {}\n{}",
        String::from_utf8_lossy(&init.stdout),
        String::from_utf8_lossy(&init.stderr)
    );
    let port = free_port();
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "pg"
script = "{BIN}/postgres"
args = ["-D", "{data}", "-k", "{dir}", "-p", "{port}", "-c", "listen_addresses=", "-c", "fsync=off"]
uid = "postgres"
wait_ready = true
listen_timeout = 30000
kill_signal = "SIGINT"
kill_timeout = 15000

[[apps]]
name = "client"
script = "/bin/sh"
args = ["-c", "pg_isready -h {dir} -p {port}; echo $? > {result}; exec sleep 100"]
depends_on = ["pg"]
"#,
        dir = d.p(""),
        result = d.p("result"),
    ));
    let mut r = runner_eco(&d, &[]);
    let result = d.wait_file_within("result", Duration::from_secs(40));
    assert_eq!(
        result.trim(),
        "0",
        "pg_isready in the dependent failed: postgres was not accepting yet\n{}",
        r.dump()
    );
    let rows = list(&d);
    assert_eq!(rows_of(&rows, "pg")[0].s("status"), "online");
    r.signal("TERM");
    assert_eq!(r.code(Duration::from_secs(30)), 0, "{}", r.dump());
    assert!(
        !r.stderr().contains("listen_timeout"),
        "postgres was counted online by the timeout, not by READY=1:\n{}",
        r.dump()
    );
}

fn is_root() -> bool {
    status_field(std::process::id() as i32, "Uid")
        .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

#[test]
fn ready_check_probes_tcp_http_and_exec() {
    let d = TestDir::new("probes");
    let (tcp, http) = (free_port(), free_port());
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "tcp"
script = "{late}"
args = ["tcp", "{tcp}", "{tcplog}", "1.5"]
ready_check = "tcp://127.0.0.1:{tcp}"
listen_timeout = 60000

[[apps]]
name = "http"
script = "{late}"
args = ["http", "{http}", "{httplog}", "1.5"]
ready_check = "http://127.0.0.1:{http}/health"
listen_timeout = 60000

[[apps]]
name = "exec"
script = "/bin/sh"
args = ["-c", "sleep 1.5; echo \"$(date +%s%3N) listening\" >> {execlog}; touch {flag}; exec sleep 100"]
ready_check = "exec:test -f {flag}"
listen_timeout = 60000
"#,
        late = app("late_listen.py"),
        tcplog = d.p("tcp.log"),
        httplog = d.p("http.log"),
        execlog = d.p("exec.log"),
        flag = d.p("flag"),
    ));
    let r = runner_eco(&d, &[]);
    wait_listening(&d);
    for name in ["tcp", "http", "exec"] {
        wait_online_not_before(&d, name, &format!("{name}.log"), "listening");
    }
    assert!(!r.stderr().contains("listen_timeout"), "{}", r.dump());
}

#[test]
fn listen_timeout_expiry_counts_it_online_with_a_warning() {
    let d = TestDir::new("listen-timeout");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "silent"
script = "{notify}"
wait_ready = true
listen_timeout = 1000
"#,
        notify = app("notify.py"),
    ));
    let start = Instant::now();
    let r = runner_eco(&d, &[]);
    wait_app_status(&d, "silent", 1, "online", Duration::from_secs(15));
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "online before listen_timeout"
    );
    wait_for("the listen_timeout warning", DEADLINE, || {
        r.stderr().lines().any(|l| {
            l.starts_with("runner:") && l.contains("silent") && l.contains("listen_timeout")
        })
    });
}

#[test]
fn dependency_chain_starts_in_order_and_stops_in_reverse() {
    let d = TestDir::new("chain");
    let notify = app("notify.py");
    let log = d.p("chain.log");
    // Declared in reverse to show the order comes from depends_on.
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "c"
script = "{notify}"
args = ["--stamp", "{log}", "--label", "c", "--ready-after", "0.3"]
wait_ready = true
listen_timeout = 60000
depends_on = ["b"]

[[apps]]
name = "b"
script = "{notify}"
args = ["--stamp", "{log}", "--label", "b", "--ready-after", "0.3"]
wait_ready = true
listen_timeout = 60000
depends_on = ["a"]

[[apps]]
name = "a"
script = "{notify}"
args = ["--stamp", "{log}", "--label", "a", "--ready-after", "0.3"]
wait_ready = true
listen_timeout = 60000
"#
    ));
    let mut r = runner_eco(&d, &[]);
    wait_for("c to be ready", Duration::from_secs(20), || {
        stamp_of(&d, "chain.log", "ready", Some("c")).is_some()
    });
    wait_app_status(&d, "c", 1, "online", DEADLINE);
    let s = |what: &str, l: &str| stamp_of(&d, "chain.log", what, Some(l)).unwrap();
    assert!(
        s("start", "b") >= s("ready", "a"),
        "b started before a was ready:\n{}",
        d.read("chain.log")
    );
    assert!(
        s("start", "c") >= s("ready", "b"),
        "c started before b was ready:\n{}",
        d.read("chain.log")
    );
    r.signal("TERM");
    assert_eq!(r.code(Duration::from_secs(20)), 0, "{}", r.dump());
    let log_text = d.read("chain.log");
    assert!(
        s("stop", "c") <= s("stop", "b"),
        "b stopped before c:\n{log_text}"
    );
    assert!(
        s("stop", "b") <= s("stop", "a"),
        "a stopped before b:\n{log_text}"
    );
    // Order of the lines too (the stamps have ms resolution).
    let stops: Vec<&str> = log_text
        .lines()
        .filter(|l| l.contains(" stop "))
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(stops, ["c", "b", "a"], "{log_text}");
}

#[test]
fn runner_tells_its_own_systemd_ready_watchdog_and_stopping() {
    let d = TestDir::new("own-notify");
    let sock_path = d.path().join("systemd.sock");
    let sd = UnixDatagram::bind(&sock_path).unwrap();
    sd.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "slow"
script = "{notify}"
args = ["--stamp", "{log}", "--label", "slow", "--ready-after", "1.5", "--env-file", "{env}"]
wait_ready = true
listen_timeout = 60000

[[apps]]
name = "fast"
script = "sleep"
args = ["100"]
"#,
        notify = app("notify.py"),
        log = d.p("slow.log"),
        env = d.p("env.txt"),
    ));
    let mut cmd = runner_cmd(d.path(), &[d.p("ecosystem.toml")]);
    cmd.env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID");
    let mut r = Proc::spawn(cmd);

    let mut msgs: Vec<(u64, String)> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut recv = |msgs: &mut Vec<(u64, String)>| {
        if let Ok(n) = sd.recv(&mut buf) {
            msgs.push((now_ms(), String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    };
    let is_ready = |m: &str| m.lines().any(|l| l == "READY=1");
    let end = Instant::now() + Duration::from_secs(20);
    while !msgs.iter().any(|(_, m)| is_ready(m)) {
        assert!(
            Instant::now() < end,
            "no READY=1 from runner: {msgs:?}\n{}",
            r.dump()
        );
        recv(&mut msgs);
    }
    let (ready_at, ready_msg) = msgs.iter().find(|(_, m)| is_ready(m)).unwrap().clone();
    let app_ready = stamp_of(&d, "slow.log", "ready", Some("slow"))
        .unwrap_or_else(|| panic!("runner said READY=1 ({ready_msg:?}) before the app was ready"));
    assert!(
        app_ready <= ready_at,
        "READY=1 at {ready_at} before the app at {app_ready}"
    );
    // Watchdog pings keep coming (every WATCHDOG_USEC/2 = 100 ms).
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        recv(&mut msgs);
    }
    let pings = msgs
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    assert!(pings >= 3, "only {pings} WATCHDOG=1: {msgs:?}");
    assert!(
        msgs.iter()
            .any(|(_, m)| m.lines().any(|l| l.starts_with("STATUS="))),
        "no STATUS=: {msgs:?}"
    );
    // Apps never see runner's own NOTIFY_SOCKET nor its WATCHDOG_USEC.
    let env = parse_env(&d.wait_file("env.txt"));
    assert_ne!(
        env.get("NOTIFY_SOCKET").map(String::as_str),
        Some(sock_path.to_str().unwrap()),
        "the app got runner's own NOTIFY_SOCKET"
    );
    assert_ne!(env.get("WATCHDOG_USEC").map(String::as_str), Some("200000"));

    r.signal("TERM");
    let end = Instant::now() + Duration::from_secs(15);
    while !msgs
        .iter()
        .any(|(_, m)| m.lines().any(|l| l == "STOPPING=1"))
    {
        assert!(
            Instant::now() < end,
            "no STOPPING=1: {msgs:?}\n{}",
            r.dump()
        );
        recv(&mut msgs);
    }
    assert_eq!(r.code(Duration::from_secs(15)), 0, "{}", r.dump());
}

#[test]
fn watchdog_restarts_an_instance_that_stops_pinging_only() {
    let d = TestDir::new("watchdog");
    let notify = app("notify.py");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "lazy"
script = "{notify}"
args = ["--ready-after", "0.2", "--watchdog", "2", "--watchdog-every", "0.1", "--env-file", "{env}"]
wait_ready = true
watchdog = "500ms"

[[apps]]
name = "busy"
script = "{notify}"
args = ["--ready-after", "0.2", "--watchdog", "-1", "--watchdog-every", "0.1"]
wait_ready = true
watchdog = "500ms"
"#,
        env = d.p("lazy-env.txt"),
    ));
    let r = runner_eco(&d, &[]);
    wait_listening(&d);
    let mut last = Vec::new();
    let ok = poll_until(Duration::from_secs(30), || {
        last = list(&d);
        rows_of(&last, "lazy")
            .first()
            .is_some_and(|row| row.i("restarts") >= 2)
    });
    assert!(ok, "lazy was not restarted: {last:?}\n{}", r.dump());
    let busy = &rows_of(&last, "busy")[0];
    assert_eq!(
        busy.i("restarts"),
        0,
        "busy was restarted: {busy:?}\n{}",
        r.dump()
    );
    assert_eq!(busy.s("status"), "online");
}

#[test]
fn watchdog_instances_get_watchdog_usec_and_pid() {
    let d = TestDir::new("watchdog-env");
    d.ecosystem(&format!(
        r#"
[[apps]]
name = "pinger"
script = "{notify}"
args = ["--ready-after", "0.2", "--watchdog", "-1", "--watchdog-every", "0.1", "--env-file", "{env}"]
wait_ready = true
watchdog = "500ms"
"#,
        notify = app("notify.py"),
        env = d.p("env.txt"),
    ));
    let _r = runner_eco(&d, &[]);
    let env = parse_env(&d.wait_file("env.txt"));
    assert_eq!(
        env.get("WATCHDOG_USEC").map(String::as_str),
        Some("500000"),
        "{env:?}"
    );
    assert_eq!(env.get("WATCHDOG_PID"), env.get("PID"), "{env:?}");
}

/// A read-only root as a non-root user: no directory for the control socket, so none,
/// and the instances' NOTIFY_SOCKET is an abstract socket — `systemd-notify` and the
/// README's Python lines must still make them online.
#[test]
fn wait_ready_works_on_a_read_only_root_without_a_control_socket() {
    if !have("unshare") || !have("setpriv") || !have("systemd-notify") || !have("python3") {
        eprintln!("SKIP: needs unshare, setpriv, systemd-notify and python3");
        return;
    }
    if !is_root() {
        eprintln!("SKIP: needs root to remount / read-only in a mount namespace");
        return;
    }
    // Readable by everyone; / , /tmp and /run become read-only below, not hidden (the
    // checkout itself may live under /tmp).
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "ro-root-{}-{}",
        std::process::id(),
        now_ms()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let py = "import os, socket, time\naddr = os.environ['NOTIFY_SOCKET']\n\
              if addr.startswith('@'):\n    addr = '\\0' + addr[1:]\n\
              s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
              s.sendto(b'READY=1', addr)\nprint('py', os.environ['NOTIFY_SOCKET'], flush=True)\n\
              time.sleep(2)\n";
    std::fs::write(dir.join("ready.py"), py).unwrap();
    std::fs::write(
        dir.join("ecosystem.toml"),
        "[[apps]]\nname = \"sh\"\nscript = \"sh\"\n\
         args = [\"-c\", \"systemd-notify --ready && sleep 2\"]\n\
         wait_ready = true\nlisten_timeout = \"10m\"\nautorestart = false\n\n\
         [[apps]]\nname = \"py\"\nscript = \"ready.py\"\nwait_ready = true\n\
         listen_timeout = \"10m\"\nautorestart = false\n",
    )
    .unwrap();
    for f in ["", "ready.py", "ecosystem.toml"] {
        let p = dir.join(f);
        let mode = if f.is_empty() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let script = format!(
        "mount -o remount,bind,ro / && \
         mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp && \
         mount --bind /run /run && mount -o remount,bind,ro /run && \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups \
         env -u XDG_RUNTIME_DIR -u RUNNER_SOCKET {} {}",
        RUNNER,
        dir.join("ecosystem.toml").display()
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let mut p = Proc::spawn(cmd);
    // Both finish on their own once online: runner then exits 0. A missing socket would
    // leave them launching for ten minutes instead.
    let code = p.code(Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{}", p.dump());
    let err = p.stderr();
    assert!(err.contains("no control socket"), "{}", p.dump());
    for app in ["sh", "py"] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("{app}[0]: pid")) && l.ends_with("online")),
            "{app} never came online\n{}",
            p.dump()
        );
    }
    assert!(p.stdout().contains("py @runner-notify-"), "{}", p.dump());
}
