//! The CLI client against the real control server, served by a mio loop on a thread (the
//! supervisor's loop in miniature): replies in order, late replies, exit codes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use runner::control::client::{self, ClientCommand, ClientError};
use runner::control::protocol::{InstanceInfo, Reply, Request};
use runner::control::server::{ConnId, Server};

fn instance(id: u32, status: &str) -> InstanceInfo {
    InstanceInfo {
        id,
        name: "api".into(),
        namespace: "default".into(),
        mode: "cluster".into(),
        pid: Some(1000 + id as i32),
        status: status.into(),
        restarts: 0,
        uptime_ms: 5000,
        cpu: 0.5,
        memory: 10 << 20,
        instance: id,
        status_text: None,
        error: None,
    }
}

/// A fake runner: answers `list` and `status` at once, `reload` after a delay (as a real
/// reload finishing later), `stop` of an unknown target with an error.
struct FakeRunner {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeRunner {
    fn start(tag: &str) -> FakeRunner {
        let dir = std::env::temp_dir().join(format!("runner-it-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("runner.sock");
        let mut server = Server::bind(&path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut poll = Poll::new().unwrap();
            let mut events = Events::with_capacity(64);
            server.register(poll.registry(), Token(1)).unwrap();
            let mut later: Vec<(Instant, ConnId, Reply)> = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                poll.poll(&mut events, Some(Duration::from_millis(10)))
                    .unwrap();
                for ev in events.iter() {
                    for (conn, req) in server.handle(poll.registry(), ev.token()) {
                        match req {
                            Request::List => server.reply(
                                poll.registry(),
                                conn,
                                &Reply::instances(vec![
                                    instance(0, "online"),
                                    instance(1, "launching"),
                                ]),
                            ),
                            Request::Status => {
                                let r = Reply {
                                    ok: false,
                                    message: Some("1/2 online".into()),
                                    ..Reply::default()
                                };
                                server.reply(poll.registry(), conn, &r)
                            }
                            Request::Reload { target } => later.push((
                                Instant::now() + Duration::from_millis(300),
                                conn,
                                Reply::ok(format!("reloaded {target}")),
                            )),
                            Request::Stop { target } => server.reply(
                                poll.registry(),
                                conn,
                                &Reply::error(format!("no app named '{target}'")),
                            ),
                            _ => server.reply(poll.registry(), conn, &Reply::ok("done")),
                        }
                    }
                }
                let now = Instant::now();
                let (due, rest): (Vec<_>, Vec<_>) = later.drain(..).partition(|l| l.0 <= now);
                later = rest;
                for (_, conn, reply) in due {
                    server.reply(poll.registry(), conn, &reply);
                }
            }
        });
        FakeRunner {
            path,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeRunner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn list_returns_the_instances() {
    let r = FakeRunner::start("list");
    let reply = client::call(&r.path, &Request::List, Some(Duration::from_secs(10))).unwrap();
    assert!(reply.ok);
    let list = reply.instances.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].status, "launching");
    assert_eq!(client::run(&r.path, ClientCommand::List { json: true }), 0);
    assert_eq!(client::run(&r.path, ClientCommand::List { json: false }), 0);
}

#[test]
fn status_exits_1_when_not_everything_is_online() {
    let r = FakeRunner::start("status");
    assert_eq!(client::run(&r.path, ClientCommand::Status), 1);
}

#[test]
fn a_refused_action_exits_1() {
    let r = FakeRunner::start("refused");
    let cmd = ClientCommand::Action {
        verb: "stop".into(),
        target: "nope".into(),
    };
    assert_eq!(client::run(&r.path, cmd), 1);
}

#[test]
fn a_slow_reload_does_not_hold_up_other_clients() {
    let r = FakeRunner::start("reload");
    let path = r.path.clone();
    let reload = std::thread::spawn(move || {
        let req = Request::Reload {
            target: "api".into(),
        };
        client::call(&path, &req, None)
    });
    // While the reload is pending, list is answered at once.
    let start = Instant::now();
    let reply = client::call(&r.path, &Request::List, Some(Duration::from_secs(10))).unwrap();
    assert!(reply.ok);
    assert!(start.elapsed() < Duration::from_millis(250));
    let reloaded = reload.join().unwrap().unwrap();
    assert_eq!(reloaded, Reply::ok("reloaded api"));
}

#[test]
fn no_runner_is_a_clear_one_line_error() {
    let path = Path::new("/nonexistent-runner-dir/runner.sock");
    let e = client::call(path, &Request::List, Some(Duration::from_secs(1))).unwrap_err();
    assert!(matches!(e, ClientError::NotListening(_)));
    assert_eq!(
        e.to_string(),
        "no runner is listening on /nonexistent-runner-dir/runner.sock (start one, or pass --socket)"
    );
    assert_eq!(client::run(path, ClientCommand::Status), 1);
}
