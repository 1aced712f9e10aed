//! The lifecycle driven by hand: a fake clock, fake pids, no processes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;

fn app(name: &str) -> AppSpec {
    AppSpec::with_defaults(name, PathBuf::from("/bin/true"), vec!["true".into()], PathBuf::from("/"))
}

/// Plays the shell: performs spawns with increasing fake pids and records the rest.
struct World {
    core: Core,
    now: Instant,
    next_pid: i32,
    log: Vec<Action>,
}

impl World {
    fn new(apps: Vec<AppSpec>) -> World {
        let mut w = World {
            core: Core::new(apps),
            now: Instant::now(),
            next_pid: 100,
            log: Vec::new(),
        };
        w.core.start(w.now);
        w.pump();
        w
    }

    fn pump(&mut self) {
        while let Some(a) = self.core.next_action() {
            if let Action::Spawn { slot, role } = a {
                let pid = self.next_pid;
                self.next_pid += 1;
                self.core.spawned(slot, role, Ok(pid), self.now);
            }
            self.log.push(a);
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.core.tick(self.now);
        self.pump();
    }

    fn exit(&mut self, pid: i32, exit: ExitKind) {
        self.core.exited(pid, exit, true, self.now);
        self.pump();
    }

    fn pid(&self, slot: SlotId) -> Option<i32> {
        self.core.slot(slot)?.proc.as_ref().map(|p| p.pid)
    }

    fn status(&self, slot: SlotId) -> Status {
        self.core.slot(slot).map(|s| s.status()).unwrap_or(Status::Stopped)
    }

    fn exit_action(&self) -> Option<i32> {
        self.log.iter().find_map(|a| match a {
            Action::Exit(c) => Some(*c),
            _ => None,
        })
    }

    fn count(&self, f: impl Fn(&Action) -> bool) -> usize {
        self.log.iter().filter(|a| f(a)).count()
    }
}

#[test]
fn every_instance_starts_and_is_online_without_wait_ready() {
    let mut a = app("web");
    a.instances = 3;
    let w = World::new(vec![a]);
    for id in 0..3 {
        assert_eq!(w.status(id), Status::Online);
    }
    assert_eq!(w.count(|a| matches!(a, Action::Spawn { .. })), 3);
}

#[test]
fn a_crashing_instance_restarts_and_counts_the_restart() {
    let mut w = World::new(vec![app("web")]);
    w.advance(Duration::from_secs(5));
    let first = w.pid(0).unwrap();
    w.exit(first, ExitKind::Code(1));
    let second = w.pid(0).unwrap();
    assert_ne!(first, second);
    assert_eq!(w.core.slot(0).unwrap().restarts, 1);
    assert_eq!(w.exit_action(), None);
}

#[test]
fn a_crash_loop_ends_errored_and_runner_exits_with_its_code() {
    let mut a = app("bad");
    a.max_restarts = 2;
    let mut w = World::new(vec![a]);
    for _ in 0..3 {
        let pid = w.pid(0).unwrap();
        w.exit(pid, ExitKind::Code(3));
    }
    assert_eq!(w.status(0), Status::Errored);
    assert_eq!(w.exit_action(), Some(3));
}

#[test]
fn an_errored_app_does_not_stop_the_others() {
    let mut bad = app("bad");
    bad.max_restarts = 0;
    let mut w = World::new(vec![bad, app("good")]);
    let pid = w.pid(0).unwrap();
    w.exit(pid, ExitKind::Code(1));
    assert_eq!(w.status(0), Status::Errored);
    assert_eq!(w.status(1), Status::Online);
    assert_eq!(w.exit_action(), None);
    // Once the good one is stopped on request, runner exits with the bad one's code.
    w.core.shutdown(false, w.now);
    w.pump();
    let good = w.pid(1).unwrap();
    w.exit(good, ExitKind::Signal(2));
    assert_eq!(w.exit_action(), Some(1));
}

#[test]
fn restart_delay_waits_before_the_next_start() {
    let mut a = app("web");
    a.restart_delay = Duration::from_millis(500);
    let mut w = World::new(vec![a]);
    w.advance(Duration::from_secs(2));
    let pid = w.pid(0).unwrap();
    w.exit(pid, ExitKind::Code(1));
    assert_eq!(w.status(0), Status::WaitingRestart);
    assert_eq!(w.core.next_deadline(), Some(w.now + Duration::from_millis(500)));
    w.advance(Duration::from_millis(499));
    assert_eq!(w.status(0), Status::WaitingRestart);
    w.advance(Duration::from_millis(1));
    assert_eq!(w.status(0), Status::Online);
}

#[test]
fn shutdown_sends_kill_signal_then_sigkill_after_kill_timeout() {
    let mut a = app("web");
    a.kill_signal = Signal::SIGTERM;
    a.kill_timeout = Duration::from_secs(2);
    let mut w = World::new(vec![a]);
    let pid = w.pid(0).unwrap();
    w.core.shutdown(false, w.now);
    w.pump();
    assert!(w.log.contains(&Action::Stop { pid, signal: Signal::SIGTERM, tree: true }));
    assert_eq!(w.status(0), Status::Stopping);
    w.advance(Duration::from_millis(1999));
    assert_eq!(w.count(|a| matches!(a, Action::Kill { .. })), 0);
    w.advance(Duration::from_millis(1));
    assert!(w.log.contains(&Action::Kill { pid, tree: true }));
    w.exit(pid, ExitKind::Signal(9));
    assert_eq!(w.exit_action(), Some(0), "a requested stop exits 0");
}

#[test]
fn a_second_stop_request_kills_at_once() {
    let mut w = World::new(vec![app("web")]);
    let pid = w.pid(0).unwrap();
    w.core.shutdown(false, w.now);
    w.pump();
    w.core.shutdown(true, w.now);
    w.pump();
    assert!(w.log.contains(&Action::Kill { pid, tree: true }));
}

#[test]
fn dependents_start_after_and_stop_before_their_dependencies() {
    let mut db = app("db");
    db.wait_ready = true;
    let mut api = app("api");
    api.depends_on = vec!["db".into()];
    let mut w = World::new(vec![api, db]);
    // api is slot 0, db slot 1: only db runs until it is ready.
    assert_eq!(w.pid(0), None);
    let db_pid = w.pid(1).unwrap();
    assert_eq!(w.status(1), Status::Launching);
    w.core.ready(db_pid, w.now);
    w.pump();
    let api_pid = w.pid(0).expect("api starts once db is online");
    w.core.shutdown(false, w.now);
    w.pump();
    assert!(w.log.iter().any(|a| matches!(a, Action::Stop { pid, .. } if *pid == api_pid)));
    assert!(!w.log.iter().any(|a| matches!(a, Action::Stop { pid, .. } if *pid == db_pid)));
    w.exit(api_pid, ExitKind::Signal(2));
    assert!(w.log.iter().any(|a| matches!(a, Action::Stop { pid, .. } if *pid == db_pid)));
    w.exit(db_pid, ExitKind::Code(0));
    assert_eq!(w.exit_action(), Some(0));
}

#[test]
fn listen_timeout_makes_a_silent_instance_online() {
    let mut a = app("web");
    a.wait_ready = true;
    a.listen_timeout = Duration::from_secs(3);
    let mut w = World::new(vec![a]);
    assert_eq!(w.status(0), Status::Launching);
    w.advance(Duration::from_secs(3));
    assert_eq!(w.status(0), Status::Online);
}

#[test]
fn a_ready_message_from_an_unknown_pid_changes_nothing() {
    let mut a = app("web");
    a.wait_ready = true;
    let mut w = World::new(vec![a]);
    w.core.ready(4242, w.now);
    w.pump();
    assert_eq!(w.status(0), Status::Launching);
}

#[test]
fn a_critical_app_that_ends_stops_everything_with_its_code() {
    let mut job = app("job");
    job.critical = true;
    job.autorestart = false;
    let mut w = World::new(vec![job, app("web")]);
    let job_pid = w.pid(0).unwrap();
    let web_pid = w.pid(1).unwrap();
    w.exit(job_pid, ExitKind::Code(7));
    assert!(w.log.iter().any(|a| matches!(a, Action::Stop { pid, .. } if *pid == web_pid)));
    w.exit(web_pid, ExitKind::Signal(2));
    assert_eq!(w.exit_action(), Some(7));
}

#[test]
fn stop_exit_codes_end_the_app_and_runner_exits_zero() {
    let mut a = app("once");
    a.stop_exit_codes = vec![0];
    let mut w = World::new(vec![a]);
    let pid = w.pid(0).unwrap();
    w.exit(pid, ExitKind::Code(0));
    assert_eq!(w.status(0), Status::Stopped);
    assert_eq!(w.exit_action(), Some(0));
}

#[test]
fn leftovers_of_an_exited_process_are_stopped_before_the_restart() {
    let mut w = World::new(vec![app("web")]);
    w.advance(Duration::from_secs(5));
    let pid = w.pid(0).unwrap();
    w.core.exited(pid, ExitKind::Code(1), false, w.now);
    w.pump();
    assert!(w.log.contains(&Action::Stop { pid, signal: Signal::SIGINT, tree: true }));
    assert_eq!(w.status(0), Status::Stopping);
    assert_eq!(w.count(|a| matches!(a, Action::Spawn { .. })), 1);
    w.core.tree_gone(pid, w.now);
    w.pump();
    assert_eq!(w.count(|a| matches!(a, Action::Spawn { .. })), 2);
    assert_eq!(w.status(0), Status::Online);
}

#[test]
fn forwarded_signals_reach_every_main_process_once() {
    let mut a = app("web");
    a.instances = 2;
    let mut w = World::new(vec![a]);
    w.core.forward(Signal::SIGHUP);
    w.pump();
    assert_eq!(w.count(|a| matches!(a, Action::Forward { signal: Signal::SIGHUP, .. })), 2);
}

#[test]
fn a_failed_spawn_is_retried_within_the_crash_loop_bound() {
    let mut a = app("web");
    a.max_restarts = 2;
    let mut core = Core::new(vec![a]);
    let now = Instant::now();
    core.start(now);
    let mut spawns = 0;
    let mut exit = None;
    while let Some(action) = core.next_action() {
        match action {
            Action::Spawn { slot, role } => {
                spawns += 1;
                core.spawned(slot, role, Err(("no such file".into(), 127)), now);
            }
            Action::Exit(c) => exit = Some(c),
            _ => {}
        }
    }
    assert_eq!(spawns, 3);
    assert_eq!(exit, Some(127));
    assert_eq!(core.slot(0).map(|s| s.status()), Some(Status::Errored));
}

#[test]
fn nothing_is_due_when_everything_runs() {
    let w = World::new(vec![app("web")]);
    assert_eq!(w.core.next_deadline(), None);
}
