//! `runner apply` of a PM2 `.js` file never blocks the loop (SPEC §8): node evaluates the
//! file in a child the loop watches, so control requests are answered, apps are reaped
//! and restarted, and an evaluation that never ends is killed at its limit meanwhile.
//! Requests arriving during an evaluation share the next one.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// A PM2 file that takes its apps from `apps.json` when it starts, then records the
/// evaluation (node's pid in `runs`: once a line is there, that evaluation has read
/// `apps.json`), and settles only once the file `go` exists: the test decides when an
/// apply's evaluation ends.
const GATED: &str = r#"
const fs = require('fs'), path = require('path');
const at = (n) => path.join(__dirname, n);
const apps = JSON.parse(fs.readFileSync(at('apps.json'), 'utf8'));
fs.appendFileSync(at('runs'), process.pid + '\n');
module.exports = new Promise((resolve) => {
  const t = setInterval(() => {
    if (fs.existsSync(at('go'))) { clearInterval(t); resolve({ apps }); }
  }, 20);
});
"#;

fn app_json(d: &TestDir, name: &str) -> String {
    format!(
        r#"{{"name":"{name}","script":"/bin/sh","args":["-c","echo $$ >> {}; exec sleep 1000"]}}"#,
        d.p(&format!("{name}.starts"))
    )
}

/// runner on the gated file with app `s` online; `go` is removed afterwards, so the next
/// evaluation waits.
fn gated_runner(d: &TestDir) -> Proc {
    if !have("node") {
        panic!("needs node");
    }
    d.write("apps.json", &format!("[{}]", app_json(d, "s")));
    d.write("go", "");
    let eco = d.write("ecosystem.config.js", GATED);
    let p = runner(d, &[eco.to_string_lossy().into_owned()]);
    d.wait_lines("s.starts", 1);
    d.wait_lines("runs", 1);
    std::fs::remove_file(d.path().join("go")).unwrap();
    p
}

/// Sends one `apply` on a connection of its own.
fn send_apply(d: &TestDir) -> UnixStream {
    let mut c = UnixStream::connect(d.path().join("runner.sock")).unwrap();
    c.write_all(b"{\"cmd\":\"apply\"}\n").unwrap();
    c
}

/// Reads `n` reply lines from `c`.
fn replies(c: &mut UnixStream, n: usize) -> String {
    c.set_read_timeout(Some(T)).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while got.matches('\n').count() < n {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => got.push_str(&String::from_utf8_lossy(&buf[..k])),
        }
    }
    got
}

#[test]
fn during_a_slow_apply_runner_answers_reaps_and_restarts() {
    if !have("node") {
        eprintln!("SKIP: needs node");
        return;
    }
    let d = TestDir::new("apply-async-serve");
    let mut p = gated_runner(&d);
    d.write(
        "apps.json",
        &format!("[{},{}]", app_json(&d, "s"), app_json(&d, "late")),
    );
    let mut apply = Proc::spawn(runner_cmd(d.path(), &["apply"]));
    // The evaluation has begun and will not end before `go` exists.
    let runs = d.wait_lines("runs", 2);
    let node: i32 = runs[1].parse().unwrap();
    assert!(alive(node), "the evaluation ended early\n{}", p.dump());

    let rows = try_list(&d);
    assert!(
        rows.is_some_and(|r| rows_of(&r, "s").len() == 1),
        "list was not answered during the apply\n{}",
        p.dump()
    );
    assert!(
        !apply.has_exited(),
        "list must be answered while the apply is still pending: {}",
        apply.stdout()
    );

    // An app that dies meanwhile is reaped and restarted (seen through its own file).
    let first: i32 = d.lines("s.starts")[0].parse().unwrap();
    send_signal(first, "KILL");
    d.wait_lines("s.starts", 2);
    assert!(zombie_children(p.pid()).iter().all(|z| *z != first));
    assert!(
        !apply.has_exited(),
        "the restart must happen while the apply is still pending: {}",
        apply.stdout()
    );
    assert!(alive(node), "the evaluation ended early\n{}", p.dump());

    d.write("go", "");
    let st = apply.wait(T);
    assert!(
        st.success(),
        "apply failed: {}\n{}\n{}",
        apply.stdout(),
        apply.stderr(),
        p.dump()
    );
    assert!(apply.stdout().contains("added: late"), "{}", apply.stdout());
    wait_app_status(&d, "late", 1, "online", T);
    // node was reaped by runner's one reaper: no zombie is left.
    wait_for("node to be reaped", T, || stat(node).is_none());
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn an_evaluation_that_never_ends_is_killed_at_its_limit_and_runner_keeps_running() {
    if !have("node") {
        eprintln!("SKIP: needs node");
        return;
    }
    let d = TestDir::new("apply-async-limit");
    let mut p = gated_runner(&d);
    let s_pid = d.lines("s.starts")[0].clone();
    // A busy loop: node never yields, never exits.
    d.write(
        "ecosystem.config.js",
        "require('fs').appendFileSync(__dirname + '/runs', process.pid + '\\n');\nwhile (true) {}\n",
    );
    let mut apply = Proc::spawn(runner_cmd(d.path(), &["apply"]));
    let node: i32 = d.wait_lines("runs", 2)[1].parse().unwrap();
    let (code, _, err) = client(&d, &["status"], T);
    assert_eq!(code, 0, "status during the apply: {err}\n{}", p.dump());
    assert!(
        !apply.has_exited(),
        "status must be answered while the apply is still pending"
    );

    let st = apply.wait(Duration::from_secs(60));
    assert!(!st.success(), "{}", apply.stdout());
    let said = apply.stdout() + &apply.stderr();
    assert!(
        said.contains("ecosystem.config.js") && said.contains("took longer than 10 s"),
        "{said}"
    );
    assert!(said.contains("nothing was changed"), "{said}");
    wait_for("the evaluation to be killed and reaped", T, || {
        stat(node).is_none()
    });
    // runner kept running and its app was left alone.
    assert!(!p.has_exited());
    assert_eq!(d.lines("s.starts"), vec![s_pid]);
    let (code, _, err) = client(&d, &["status"], T);
    assert_eq!(code, 0, "{err}");

    // The next apply is evaluated afresh.
    d.write("ecosystem.config.js", GATED);
    d.write("go", "");
    let (code, out, err) = client(&d, &["apply"], T);
    assert_eq!(code, 0, "{out}\n{err}\n{}", p.dump());
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn an_evaluation_printing_without_end_is_cut_at_the_output_limit() {
    if !have("node") {
        eprintln!("SKIP: needs node");
        return;
    }
    let d = TestDir::new("apply-async-output");
    let mut p = gated_runner(&d);
    // The output comes from a process node started, in node's group.
    d.write(
        "ecosystem.config.js",
        "const c = require('child_process').spawn('yes', [], { stdio: ['ignore', 'inherit', 'inherit'] });\n\
         require('fs').writeFileSync(__dirname + '/yes.pid', String(c.pid));\n\
         setInterval(() => {}, 1000);\n",
    );
    let (code, out, err) = client(&d, &["apply"], Duration::from_secs(60));
    assert_ne!(code, 0, "{out}");
    assert!(
        (out.clone() + &err).contains("printed more than 16 MiB"),
        "{out}\n{err}"
    );
    let yes: i32 = d.wait_file("yes.pid").trim().parse().unwrap();
    wait_for("the process that printed to be killed", T, || !alive(yes));
    assert!(!p.has_exited());
    let (code, _, err) = client(&d, &["status"], T);
    assert_eq!(code, 0, "{err}");
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn applies_during_an_evaluation_share_the_next_one_and_a_client_may_leave() {
    if !have("node") {
        eprintln!("SKIP: needs node");
        return;
    }
    let d = TestDir::new("apply-async-rounds");
    let mut p = gated_runner(&d);
    let mut a = send_apply(&d);
    d.wait_lines("runs", 2);
    // A's evaluation read apps.json already: what changes now is for the next round.
    d.write(
        "apps.json",
        &format!("[{},{}]", app_json(&d, "s"), app_json(&d, "late")),
    );
    let mut b = send_apply(&d);
    let mut c = UnixStream::connect(d.path().join("runner.sock")).unwrap();
    c.write_all(b"{\"cmd\":\"apply\"}\n{\"cmd\":\"apply\"}\n")
        .unwrap();
    drop(send_apply(&d)); // a client that leaves before its answer
                          // Answered after the requests above were sent, so they have been read.
    assert!(try_list(&d).is_some(), "{}", p.dump());
    d.write("go", "");

    let ra = replies(&mut a, 1);
    assert!(
        ra.contains("\"ok\":true") && ra.contains("added: none"),
        "{ra}"
    );
    let rb = replies(&mut b, 1);
    assert!(rb.contains("added: late"), "{rb}\n{}", p.dump());
    let rc = replies(&mut c, 2);
    assert_eq!(rc.matches("added: late").count(), 2, "{rc}");
    // The start-up's, A's, and one shared by B, C (twice) and the client that left.
    assert_eq!(d.lines("runs").len(), 3, "{}", p.dump());
    wait_app_status(&d, "late", 1, "online", T);
    let (code, _, err) = client(&d, &["status"], T);
    assert_eq!(code, 0, "{err}");
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn sigterm_during_an_evaluation_stops_it_and_runner_exits() {
    if !have("node") {
        eprintln!("SKIP: needs node");
        return;
    }
    let d = TestDir::new("apply-async-term");
    let mut p = gated_runner(&d);
    let mut a = send_apply(&d);
    let node: i32 = d.wait_lines("runs", 2)[1].parse().unwrap();
    let node_id = ProcId::of(node);
    p.signal("TERM");
    let st = p.wait(T);
    assert_eq!(st.code(), Some(0), "{}", p.dump());
    assert!(!node_id.exists(), "node outlived runner\n{}", p.dump());
    // The client is told, or at least not left hanging.
    let ra = replies(&mut a, 1);
    assert!(ra.is_empty() || ra.contains("nothing was applied"), "{ra}");
}

#[test]
fn a_failing_evaluation_is_reported_without_all_it_printed() {
    if !have("node") {
        eprintln!("SKIP: needs node");
        return;
    }
    let d = TestDir::new("apply-async-fail");
    let mut p = gated_runner(&d);
    d.write(
        "ecosystem.config.js",
        "console.log('y'.repeat(1 << 20));\nthrow new Error('no apps for you');\n",
    );
    let (code, out, err) = client(&d, &["apply"], T);
    assert_ne!(code, 0, "{out}");
    let said = out + &err;
    assert!(said.contains("no apps for you"), "{said}");
    assert!(said.len() < 16 << 10, "{} bytes of error", said.len());
    p.signal("TERM");
    p.wait(T);
}
