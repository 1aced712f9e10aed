//! Apps, clients and slow programs never harm PID 1 or reach past their rights (SPEC §8):
//! files opened for an app running as another user, probes and helpers that hang, a
//! short-lived sd_notify sender, clients that hold connections, absurd counts.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn is_root() -> bool {
    status_field(std::process::id() as i32, "Uid")
        .is_some_and(|u| u.split_whitespace().nth(1) == Some("0"))
}

/// A folder owned by uid/gid 65534 inside `d`.
fn nobody_dir(d: &TestDir, name: &str) -> String {
    let p = d.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn a_log_link_planted_by_an_app_running_as_another_user_is_never_written_through() {
    if !is_root() {
        eprintln!("SKIP: needs root (the app runs as uid 65534)");
        return;
    }
    let d = TestDir::new("hard-loglink");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let logs = nobody_dir(&d, "logs");
    let victim = d.write("victim", "root's file\n");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The app planted a link before runner started.
    symlink(&victim, format!("{logs}/planted.log")).unwrap();
    d.ecosystem(&format!(
        "[[apps]]\nname = \"planted\"\nscript = \"/bin/sh\"\nargs = [\"-c\", \"while :; do echo planted-line; sleep 0.1; done\"]\nuid = \"65534\"\nout_file = {}\nrestart_delay = 500\n\
         [[apps]]\nname = \"swapped\"\nscript = \"/bin/sh\"\nargs = [\"-c\", \"while :; do echo swapped-line; sleep 0.1; done\"]\nuid = \"65534\"\nout_file = {}\n",
        q(&format!("{logs}/planted.log")),
        q(&format!("{logs}/swapped.log")),
    ));
    let mut p = runner_eco(&d, &[]);
    // The planted link is refused, naming the file.
    let refused = poll_until(T, || {
        try_list(&d).is_some_and(|rows| {
            rows_of(&rows, "planted")
                .iter()
                .any(|r| r.s("error").contains("symbolic link"))
        })
    });
    assert!(refused, "no error about the link\n{}", p.dump());
    // The regular log is written, then swapped for a link as logrotate never would.
    let swapped = format!("{logs}/swapped.log");
    wait_for("swapped.log to fill", T, || {
        std::fs::read_to_string(&swapped).is_ok_and(|s| s.contains("swapped-line"))
    });
    std::fs::remove_file(&swapped).unwrap();
    symlink(&victim, &swapped).unwrap();
    let warned = poll_until(T, || p.stderr().contains("can't be reopened"));
    assert!(warned, "no warning about the refused reopen\n{}", p.dump());
    let text = std::fs::read_to_string(&victim).unwrap();
    assert_eq!(text, "root's file\n", "runner wrote through a link");
    // A file created for the app is the app's own.
    std::fs::remove_file(&swapped).unwrap();
    wait_for("swapped.log to be recreated", T, || {
        std::fs::symlink_metadata(&swapped).is_ok_and(|m| m.file_type().is_file())
    });
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&swapped).unwrap().uid(), 65534);
    assert!(!p.has_exited(), "{}", p.dump());
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn an_app_running_as_another_user_gets_its_home_and_a_numeric_uid_gets_its_own_gid() {
    if !is_root() {
        eprintln!("SKIP: needs root (the apps run as other users)");
        return;
    }
    let d = TestDir::new("hard-home");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = nobody_dir(&d, "out");
    // 3999997 has no passwd entry.
    std::os::unix::fs::chown(&out, Some(3_999_997), Some(65534)).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    d.ecosystem(&format!(
        "[[apps]]\nname = \"named\"\nscript = \"/bin/sh\"\nargs = [\"-c\", \"env > {out}/named.env; id -g > {out}/named.gid; exec sleep 1000\"]\nuid = \"nobody\"\n\
         [[apps]]\nname = \"numeric\"\nscript = \"/bin/sh\"\nargs = [\"-c\", \"env > {out}/numeric.env; id -g > {out}/numeric.gid; exec sleep 1000\"]\nuid = 3999997\n",
    ));
    let mut p = runner_eco(&d, &[]);
    for f in ["named.gid", "numeric.gid"] {
        wait_for(f, T, || {
            std::fs::read_to_string(format!("{out}/{f}")).is_ok_and(|s| s.ends_with('\n'))
        });
    }
    let named = parse_env(&std::fs::read_to_string(format!("{out}/named.env")).unwrap());
    assert_eq!(named.get("USER").map(String::as_str), Some("nobody"));
    assert_eq!(named.get("LOGNAME").map(String::as_str), Some("nobody"));
    assert_eq!(named.get("HOME").map(String::as_str), Some("/nonexistent"));
    let numeric = parse_env(&std::fs::read_to_string(format!("{out}/numeric.env")).unwrap());
    assert_eq!(numeric.get("HOME").map(String::as_str), Some("/"));
    assert_eq!(numeric.get("USER"), None);
    let gid = std::fs::read_to_string(format!("{out}/numeric.gid")).unwrap();
    assert_eq!(
        gid.trim(),
        "3999997",
        "a numeric uid without passwd entry ran with gid {gid}"
    );
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn an_exec_probe_that_hangs_is_killed_with_what_it_started_at_its_timeout() {
    let d = TestDir::new("hard-probe");
    let pids = d.p("probe.pids");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"slow\"\nscript = \"sleep\"\nargs = \"1000\"\nlisten_timeout = \"120s\"\nready_check = {}\n",
        q(&format!("exec:sleep 1000 & echo $! >> {pids}; wait"))
    ));
    let mut p = runner_eco(&d, &[]);
    // Each attempt times out after 2 s; after three, the first two must be gone.
    let lines = d.wait_lines("probe.pids", 3);
    let first: Vec<i32> = lines[..2]
        .iter()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(first.len(), 2, "{lines:?}");
    let gone = poll_until(T, || first.iter().all(|pid| !alive(*pid)));
    assert!(
        gone,
        "probe commands {first:?} outlived their timeout\n{}",
        p.dump()
    );
    p.signal("TERM");
    p.wait(T);
}

/// Busy loops on every CPU, ended on drop.
struct Load(Vec<Child>);

impl Load {
    fn start(n: usize) -> Load {
        Load(
            (0..n)
                .filter_map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdout(Stdio::null())
                        .spawn()
                        .ok()
                })
                .collect(),
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_short_lived_notify_sender_makes_each_of_ten_instances_online_under_load() {
    if !have("python3") {
        eprintln!("SKIP: needs python3");
        return;
    }
    let d = TestDir::new("hard-notify");
    let stamps = d.p("stamps");
    d.ecosystem(&format!(
        "[[apps]]\nname = \"notif\"\ninstances = 10\nscript = \"/bin/sh\"\nargs = [\"-c\", {}]\nwait_ready = true\nlisten_timeout = \"120s\"\n\
         [[apps]]\nname = \"after\"\nscript = \"/bin/sh\"\nargs = [\"-c\", {}]\ndepends_on = [\"notif\"]\n",
        q(&format!("python3 {}; exec sleep 1000", app("notify_barrier.py"))),
        q(&format!("date +%s%3N > {stamps}.after; exec sleep 1000")),
    ));
    let _load = Load::start(6);
    let started = now_ms();
    let mut p = runner_eco(&d, &[]);
    // `after` starts only once all ten are online: no polling of runner needed.
    let text = d.wait_file_within("stamps.after", Duration::from_secs(60));
    let after: u64 = text.trim().parse().unwrap();
    assert!(
        after - started < 20_000,
        "the ten instances took {} ms to come online (a lost READY=1 waits for listen_timeout)\n{}",
        after - started,
        p.dump()
    );
    p.signal("TERM");
    p.wait(T);
}

fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer; raising the soft limit to the hard one.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

#[test]
fn status_is_served_while_another_client_holds_1024_idle_connections() {
    raise_fd_limit();
    let d = TestDir::new("hard-idle");
    d.ecosystem("[[apps]]\nname = \"s\"\nscript = \"sleep\"\nargs = \"1000\"\n");
    let mut p = runner_eco(&d, &[]);
    wait_app_status(&d, "s", 1, "online", T);
    let sock = d.path().join("runner.sock");
    let held: Vec<UnixStream> = (0..1024)
        .filter_map(|_| UnixStream::connect(&sock).ok())
        .collect();
    assert!(
        held.len() >= 1000,
        "could only open {} connections",
        held.len()
    );
    let (code, out, err) = client(&d, &["status"], T);
    assert_eq!(code, 0, "status was not served: {out}\n{err}\n{}", p.dump());
    // Idle connections time out on their own.
    let mut one = &held[held.len() - 1];
    one.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 8];
    assert_eq!(
        one.read(&mut buf).unwrap_or(0),
        0,
        "an idle connection stayed open"
    );
    assert!(start.elapsed() < Duration::from_secs(50));
    drop(held);
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn scale_beyond_the_cap_is_refused_with_a_clear_error() {
    let d = TestDir::new("hard-scale");
    d.ecosystem("[[apps]]\nname = \"s\"\nscript = \"sleep\"\nargs = \"1000\"\n");
    let mut p = runner_eco(&d, &[]);
    wait_app_status(&d, "s", 1, "online", T);
    let (code, out, err) = client(&d, &["scale", "s", "4000000000"], T);
    assert_ne!(code, 0, "{out}\n{err}");
    assert!(
        (out.clone() + &err).contains("limit is 10000"),
        "{out}\n{err}"
    );
    assert_eq!(rows_of(&list(&d), "s").len(), 1);
    assert!(!p.has_exited());
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn a_pm2_file_that_never_finishes_is_stopped_at_the_time_limit_and_runner_keeps_serving() {
    if !have("node") {
        eprintln!("SKIP: needs node");
        return;
    }
    let d = TestDir::new("hard-pm2");
    let good = "module.exports = { apps: [{ name: 's', script: 'sleep', args: '1000' }] };\n";
    let eco = d.write("ecosystem.config.js", good);
    let mut p = runner(&d, &[eco.to_string_lossy().into_owned()]);
    wait_app_status(&d, "s", 1, "online", T);
    d.write(
        "ecosystem.config.js",
        "setInterval(() => {}, 1000);\nmodule.exports = new Promise(() => {});\n",
    );
    // Several applies pipelined on one connection run node once.
    let sock = d.path().join("runner.sock");
    let mut c = UnixStream::connect(&sock).unwrap();
    c.write_all(b"{\"cmd\":\"apply\"}\n{\"cmd\":\"apply\"}\n{\"cmd\":\"apply\"}\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let start = Instant::now();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while got.matches('\n').count() < 3 {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert_eq!(got.matches('\n').count(), 3, "{got}\n{}", p.dump());
    assert!(got.contains("took longer than"), "{got}");
    assert!(
        start.elapsed() < Duration::from_secs(25),
        "three applies took {:?}: node ran more than once",
        start.elapsed()
    );
    let (code, _, err) = client(&d, &["status"], T);
    assert_eq!(code, 0, "{err}");
    // `check` has the same limit.
    let (code, _, err) = client(
        &d,
        &["check", &d.p("ecosystem.config.js")],
        Duration::from_secs(40),
    );
    assert_ne!(code, 0);
    assert!(err.contains("took longer than"), "{err}");
    p.signal("TERM");
    p.wait(T);
}
