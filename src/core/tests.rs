//! The lifecycle driven by hand: a fake clock, fake pids, no processes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;
use crate::config::DependCondition;

fn app(name: &str) -> AppSpec {
    AppSpec::with_defaults(
        name,
        PathBuf::from("/bin/true"),
        vec!["true".into()],
        PathBuf::from("/"),
    )
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
        self.core
            .slot(slot)
            .map(|s| s.status())
            .unwrap_or(Status::Stopped)
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
    assert_eq!(
        w.core.next_deadline(),
        Some(w.now + Duration::from_millis(500))
    );
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
    assert!(w.log.contains(&Action::Stop {
        pid,
        signal: Signal::SIGTERM,
        tree: true
    }));
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
fn one_stop_signal_delivered_twice_within_the_window_is_one_graceful_stop() {
    let mut w = World::new(vec![app("web")]);
    let pid = w.pid(0).unwrap();
    w.core.stop_signal(Signal::SIGTERM, w.now);
    w.pump();
    w.now += Duration::from_millis(5);
    w.core.stop_signal(Signal::SIGTERM, w.now);
    w.pump();
    assert!(!w.log.contains(&Action::Kill { pid, tree: true }));
    assert_eq!(w.count(|a| matches!(a, Action::Stop { .. })), 1);
    // Later, the operator asks again: that one escalates.
    w.now += STOP_REPEAT_WINDOW * 2;
    w.core.stop_signal(Signal::SIGTERM, w.now);
    w.pump();
    assert!(w.log.contains(&Action::Kill { pid, tree: true }));
}

#[test]
fn a_fork_reload_whose_probe_never_passes_fails_and_keeps_the_new_process() {
    let mut a = app("web");
    a.ready_check = Some(crate::config::ReadyCheck::Exec("true".into()));
    a.listen_timeout = Duration::from_secs(3);
    let mut w = World::new(vec![a]);
    let old = w.pid(0).unwrap();
    w.core.ready(old, w.now);
    w.pump();
    w.core.request_reload(7, "web", w.now);
    w.pump();
    w.exit(old, ExitKind::Signal(2));
    let new = w.pid(0).unwrap();
    assert_ne!(old, new);
    w.advance(Duration::from_secs(4));
    let failed = w.log.iter().any(|a| {
        matches!(a, Action::Reply { request: 7, ok: false, message }
            if message.contains("not ready within listen_timeout"))
    });
    assert!(failed, "{:?}", w.log);
    assert_eq!(w.pid(0), Some(new));
    assert_eq!(w.status(0), Status::Online);
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
    assert!(w
        .log
        .iter()
        .any(|a| matches!(a, Action::Stop { pid, .. } if *pid == api_pid)));
    assert!(!w
        .log
        .iter()
        .any(|a| matches!(a, Action::Stop { pid, .. } if *pid == db_pid)));
    w.exit(api_pid, ExitKind::Signal(2));
    assert!(w
        .log
        .iter()
        .any(|a| matches!(a, Action::Stop { pid, .. } if *pid == db_pid)));
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
    assert!(w
        .log
        .iter()
        .any(|a| matches!(a, Action::Stop { pid, .. } if *pid == web_pid)));
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
    assert!(w.log.contains(&Action::Stop {
        pid,
        signal: Signal::SIGINT,
        tree: true
    }));
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
    assert_eq!(
        w.count(|a| matches!(a, Action::Forward { signal: 1, .. })),
        2
    );
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
                core.spawned(
                    slot,
                    role,
                    Err(SpawnFailure {
                        message: "no such file".into(),
                        code: 127,
                        transient: false,
                    }),
                    now,
                );
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

fn replies(w: &World) -> Vec<(RequestId, bool, String)> {
    w.log
        .iter()
        .filter_map(|a| match a {
            Action::Reply {
                request,
                ok,
                message,
            } => Some((*request, *ok, message.clone())),
            _ => None,
        })
        .collect()
}

fn cluster(name: &str, n: u32) -> AppSpec {
    let mut a = app(name);
    a.instances = n;
    a.exec_mode = crate::config::ExecMode::Cluster;
    a.wait_ready = true;
    a
}

#[test]
fn cluster_reload_starts_each_replacement_before_stopping_the_old_process() {
    let mut w = World::new(vec![cluster("api", 2)]);
    let (old0, old1) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    w.core.ready(old0, w.now);
    w.core.ready(old1, w.now);
    w.pump();
    w.core.request_reload(1, "api", w.now);
    w.pump();
    // One replacement at a time, and the old one keeps serving until it is online.
    let new0 = w.core.slot(0).unwrap().replacement.as_ref().unwrap().pid;
    assert!(w.core.slot(1).unwrap().replacement.is_none());
    assert!(!w.log.iter().any(|a| matches!(a, Action::Stop { .. })));
    w.core.ready(new0, w.now);
    w.pump();
    assert_eq!(w.pid(0), Some(new0));
    assert!(w.log.contains(&Action::Stop {
        pid: old0,
        signal: Signal::SIGINT,
        tree: true
    }));
    let new1 = w.core.slot(1).unwrap().replacement.as_ref().unwrap().pid;
    w.core.ready(new1, w.now);
    w.pump();
    w.exit(old0, ExitKind::Code(0));
    w.exit(old1, ExitKind::Code(0));
    assert_eq!(
        replies(&w),
        vec![(1, true, "reloaded api (2 instance(s))".to_string())]
    );
    assert_eq!(w.status(0), Status::Online);
    assert_eq!(
        w.exit_action(),
        None,
        "the drained old processes are not crashes"
    );
}

#[test]
fn a_replacement_that_crashes_aborts_the_reload_and_keeps_the_old_processes() {
    let mut w = World::new(vec![cluster("api", 2)]);
    let (old0, old1) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    w.core.ready(old0, w.now);
    w.core.ready(old1, w.now);
    w.core.request_reload(7, "api", w.now);
    w.pump();
    let new0 = w.core.slot(0).unwrap().replacement.as_ref().unwrap().pid;
    w.exit(new0, ExitKind::Code(1));
    let r = replies(&w);
    assert_eq!(r.len(), 1);
    assert!(!r[0].1, "the reload reports failure: {r:?}");
    assert_eq!((w.pid(0), w.pid(1)), (Some(old0), Some(old1)));
    assert_eq!(w.status(0), Status::Online);
    assert!(!w
        .log
        .iter()
        .any(|a| matches!(a, Action::Stop { pid, .. } if *pid == old0 || *pid == old1)));
}

#[test]
fn a_replacement_not_ready_within_listen_timeout_fails_the_reload() {
    let mut w = World::new(vec![cluster("api", 1)]);
    let old = w.pid(0).unwrap();
    w.core.ready(old, w.now);
    w.core.request_reload(1, "api", w.now);
    w.pump();
    let new = w.core.slot(0).unwrap().replacement.as_ref().unwrap().pid;
    w.advance(Duration::from_millis(3000));
    assert!(w.log.contains(&Action::Stop {
        pid: new,
        signal: Signal::SIGINT,
        tree: true
    }));
    assert!(!replies(&w)[0].1);
    assert_eq!(w.pid(0), Some(old));
}

#[test]
fn a_second_reload_of_the_same_app_is_refused_while_the_first_runs() {
    let mut w = World::new(vec![cluster("api", 1)]);
    let old = w.pid(0).unwrap();
    w.core.ready(old, w.now);
    w.core.request_reload(1, "api", w.now);
    w.core.request_reload(2, "api", w.now);
    w.pump();
    let r = replies(&w);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, 2);
    assert!(!r[0].1 && r[0].2.contains("already in progress"));
}

#[test]
fn fork_mode_reload_restarts_one_instance_at_a_time() {
    let mut a = app("worker");
    a.instances = 2;
    let mut w = World::new(vec![a]);
    let (old0, old1) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    w.core.request_reload(1, "worker", w.now);
    w.pump();
    assert!(w
        .log
        .iter()
        .any(|a| matches!(a, Action::Stop { pid, .. } if *pid == old0)));
    assert!(!w
        .log
        .iter()
        .any(|a| matches!(a, Action::Stop { pid, .. } if *pid == old1)));
    w.exit(old0, ExitKind::Code(0));
    assert!(w
        .log
        .iter()
        .any(|a| matches!(a, Action::Stop { pid, .. } if *pid == old1)));
    w.exit(old1, ExitKind::Code(0));
    assert!(replies(&w)[0].1);
    assert_ne!(w.pid(0), Some(old0));
    assert_ne!(w.pid(1), Some(old1));
}

#[test]
fn stop_keeps_the_app_listed_as_stopped_and_start_brings_it_back() {
    let mut w = World::new(vec![app("a"), app("b")]);
    let pid = w.pid(0).unwrap();
    w.core.request_stop(1, "a", w.now);
    w.pump();
    w.exit(pid, ExitKind::Signal(2));
    assert_eq!(w.status(0), Status::Stopped);
    assert!(replies(&w)[0].1);
    assert_eq!(w.exit_action(), None, "b still runs");
    w.core.request_start(2, "a", w.now);
    w.pump();
    assert_eq!(w.status(0), Status::Online);
    assert_eq!(replies(&w).len(), 2);
}

#[test]
fn delete_forgets_the_app_and_scale_adds_and_removes_instances() {
    let mut w = World::new(vec![app("a"), app("b")]);
    let pid = w.pid(0).unwrap();
    w.core.request_delete(1, "a", w.now);
    w.pump();
    w.exit(pid, ExitKind::Signal(2));
    assert!(w.core.slot(0).is_none());
    assert_eq!(w.core.apps().len(), 1);
    w.core.request_scale(2, "b", 3, w.now);
    w.pump();
    assert_eq!(
        w.core
            .slots()
            .filter(|s| s.status() == Status::Online)
            .count(),
        3
    );
    w.core.request_scale(3, "b", 1, w.now);
    w.pump();
    let stopping: Vec<i32> = w
        .core
        .slots()
        .filter(|s| s.status() == Status::Stopping)
        .filter_map(|s| s.proc.as_ref().map(|p| p.pid))
        .collect();
    assert_eq!(stopping.len(), 2);
    for pid in stopping {
        w.exit(pid, ExitKind::Signal(2));
    }
    assert_eq!(w.core.slots().count(), 1);
    assert!(replies(&w).iter().all(|r| r.1), "{:?}", replies(&w));
}

#[test]
fn targets_resolve_by_name_id_namespace_and_all() {
    let mut a = app("a");
    a.namespace = "web".into();
    a.instances = 2;
    let w = World::new(vec![a, app("b")]);
    assert_eq!(w.core.resolve("a").unwrap(), vec![0, 1]);
    assert_eq!(w.core.resolve("2").unwrap(), vec![2]);
    assert_eq!(w.core.resolve("web").unwrap(), vec![0, 1]);
    assert_eq!(w.core.resolve("all").unwrap(), vec![0, 1, 2]);
    assert!(w.core.resolve("nope").is_err());
    assert!(w.core.resolve("9").is_err());
}

#[test]
fn memory_restart_in_cluster_mode_starts_the_replacement_first() {
    let mut w = World::new(vec![cluster("api", 1)]);
    let old = w.pid(0).unwrap();
    w.core.ready(old, w.now);
    w.core.memory_exceeded(0, w.now);
    w.pump();
    let new = w.core.slot(0).unwrap().replacement.as_ref().unwrap().pid;
    assert!(!w.log.iter().any(|a| matches!(a, Action::Stop { .. })));
    w.core.ready(new, w.now);
    w.pump();
    assert!(w
        .log
        .iter()
        .any(|a| matches!(a, Action::Stop { pid, .. } if *pid == old)));
    assert_eq!(w.core.slot(0).unwrap().restarts, 1);
}

#[test]
fn status_is_ok_only_when_every_wanted_instance_is_online() {
    let mut a = app("db");
    a.wait_ready = true;
    let mut w = World::new(vec![a]);
    assert!(!w.core.all_online().0);
    let pid = w.pid(0).unwrap();
    w.core.ready(pid, w.now);
    assert!(w.core.all_online().0);
}

#[test]
fn a_transient_spawn_failure_is_retried_with_backoff_and_never_errors() {
    let mut core = Core::new(vec![app("web")]);
    let mut now = Instant::now();
    core.start(now);
    let fail = || SpawnFailure {
        message: "fork failed: EAGAIN".into(),
        code: 126,
        transient: true,
    };
    for expected in [1u64, 2, 4, 8, 16, 30, 30] {
        let Some(Action::Spawn { slot, role }) = core.next_action() else {
            panic!("expected a spawn")
        };
        core.spawned(slot, role, Err(fail()), now);
        assert_eq!(core.slot(0).unwrap().status(), Status::WaitingRestart);
        assert_eq!(
            core.next_deadline(),
            Some(now + Duration::from_secs(expected))
        );
        now += Duration::from_secs(expected);
        core.tick(now);
    }
    let Some(Action::Spawn { slot, role }) = core.next_action() else {
        panic!("expected a spawn")
    };
    core.spawned(slot, role, Ok(77), now);
    assert_eq!(core.slot(0).unwrap().status(), Status::Online);
}

#[test]
fn a_replacement_that_cannot_be_spawned_fails_the_reload() {
    let mut a = app("api");
    a.exec_mode = crate::config::ExecMode::Cluster;
    let mut core = Core::new(vec![a]);
    let now = Instant::now();
    core.start(now);
    while let Some(a) = core.next_action() {
        if let Action::Spawn { slot, role } = a {
            core.spawned(slot, role, Ok(10), now);
        }
    }
    core.request_reload(1, "api", now);
    let mut replies = Vec::new();
    while let Some(a) = core.next_action() {
        match a {
            Action::Spawn { slot, role } => core.spawned(
                slot,
                role,
                Err(SpawnFailure {
                    message: "no fds".into(),
                    code: 126,
                    transient: true,
                }),
                now,
            ),
            Action::Reply { ok, .. } => replies.push(ok),
            _ => {}
        }
    }
    assert_eq!(replies, vec![false]);
    assert_eq!(core.slot(0).unwrap().proc.as_ref().map(|p| p.pid), Some(10));
}

/// Every process the world still has: current, replacement and draining main processes.
fn live_pids(w: &World) -> Vec<i32> {
    let mut v: Vec<i32> = w
        .core
        .slots()
        .flat_map(|s| [s.proc.as_ref(), s.replacement.as_ref()])
        .flatten()
        .map(|p| p.pid)
        .collect();
    v.extend(w.core.draining.iter().map(|(_, p)| p.pid));
    v
}

/// Ends every process that was asked to stop, as a well-behaved program does.
fn exit_every_stopped(w: &mut World) {
    for _ in 0..10 {
        let stopped: Vec<i32> = w
            .log
            .iter()
            .filter_map(|a| match a {
                Action::Stop { pid, .. } | Action::Kill { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect();
        let live = live_pids(w);
        let due: Vec<i32> = live.into_iter().filter(|p| stopped.contains(p)).collect();
        if due.is_empty() {
            return;
        }
        for pid in due {
            w.exit(pid, ExitKind::Signal(2));
        }
    }
}

#[test]
fn a_shutdown_during_a_cluster_reload_ends_the_reload_and_runner() {
    let mut w = World::new(vec![cluster("api", 2)]);
    let (old0, old1) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    w.core.ready(old0, w.now);
    w.core.ready(old1, w.now);
    w.core.request_reload(1, "api", w.now);
    w.pump();
    assert!(w.core.slot(0).unwrap().replacement.is_some());
    w.core.shutdown(false, w.now);
    w.pump();
    exit_every_stopped(&mut w);
    assert!(live_pids(&w).is_empty(), "left: {:?}", live_pids(&w));
    let r = replies(&w);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(!r[0].1 && r[0].2.contains("stopping"), "{r:?}");
    assert_eq!(w.exit_action(), Some(0));
}

#[test]
fn a_shutdown_during_a_fork_reload_ends_the_reload_and_runner() {
    let mut a = app("worker");
    a.instances = 2;
    let mut w = World::new(vec![a]);
    w.core.request_reload(1, "worker", w.now);
    w.pump();
    w.core.shutdown(false, w.now);
    w.pump();
    exit_every_stopped(&mut w);
    assert!(live_pids(&w).is_empty(), "left: {:?}", live_pids(&w));
    assert!(!replies(&w)[0].1);
    assert_eq!(w.exit_action(), Some(0));
}

#[test]
fn stopping_an_app_during_its_reload_ends_the_reload() {
    for mode in ["cluster", "fork"] {
        let mut a = cluster("api", 2);
        if mode == "fork" {
            a.exec_mode = crate::config::ExecMode::Fork;
            a.wait_ready = false;
        }
        let mut w = World::new(vec![a, app("other")]);
        for id in 0..2 {
            let pid = w.pid(id).unwrap();
            w.core.ready(pid, w.now);
        }
        w.pump();
        w.core.request_reload(1, "api", w.now);
        w.pump();
        w.core.request_stop(2, "api", w.now);
        w.pump();
        exit_every_stopped(&mut w);
        let r = replies(&w);
        assert_eq!(r.len(), 2, "{mode}: {r:?}");
        assert!(r.iter().any(|(id, ok, _)| *id == 1 && !ok), "{mode}: {r:?}");
        assert!(r.iter().any(|(id, ok, _)| *id == 2 && *ok), "{mode}: {r:?}");
        assert!(!w.core.is_reloading(), "{mode}: the plan is still there");
        // The app can be started and reloaded again.
        w.core.request_start(3, "api", w.now);
        w.pump();
        for id in 0..2 {
            let pid = w.pid(id).unwrap();
            w.core.ready(pid, w.now);
        }
        w.pump();
        w.core.request_reload(4, "api", w.now);
        w.pump();
        assert!(
            !replies(&w)
                .iter()
                .any(|(id, _, m)| *id == 4 && m.contains("already in progress")),
            "{mode}: {:?}",
            replies(&w)
        );
    }
}

#[test]
fn start_or_reload_while_a_stop_is_under_way_starts_the_slot_once_it_is_down() {
    for (request, cluster_mode) in [("start", false), ("reload", false), ("reload", true)] {
        let mut a = if cluster_mode {
            cluster("api", 1)
        } else {
            app("api")
        };
        a.wait_ready = false;
        let mut w = World::new(vec![a]);
        let old = w.pid(0).unwrap();
        w.core.request_stop(1, "api", w.now);
        w.pump();
        // The old process has not exited yet when the second request arrives.
        match request {
            "start" => w.core.request_start(2, "api", w.now),
            _ => w.core.request_reload(2, "api", w.now),
        }
        w.pump();
        w.exit(old, ExitKind::Signal(2));
        let new = w.pid(0);
        assert!(
            new.is_some() && new != Some(old),
            "{request} (cluster {cluster_mode}): the slot did not start again"
        );
        let r = replies(&w);
        assert!(
            r.iter().any(|(id, ok, _)| *id == 2 && *ok),
            "{request} (cluster {cluster_mode}): {r:?}"
        );
        assert!(!w.core.is_reloading());
    }
}

// ----- health_check (liveness) -----

fn checked(name: &str, interval_ms: u64, timeout_ms: u64, failures: u32) -> AppSpec {
    let mut a = app(name);
    a.health_check = Some(crate::config::HealthCheck {
        probe: crate::config::ReadyCheck::Tcp {
            host: "127.0.0.1".into(),
            port: 8080,
        },
        addr: Some("127.0.0.1:8080".parse().unwrap()),
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        failures,
    });
    a
}

impl World {
    fn checks_of(&self, pid: i32) -> usize {
        self.count(|a| matches!(a, Action::HealthCheck { pid: p } if *p == pid))
    }

    fn answer(&mut self, pid: i32, result: Result<(), &str>) {
        self.core
            .health_result(pid, result.map_err(str::to_string), self.now);
        self.pump();
    }
}

#[test]
fn health_checks_start_one_interval_after_online_and_repeat_after_each_answer() {
    let mut w = World::new(vec![checked("web", 10_000, 5_000, 3)]);
    let pid = w.pid(0).unwrap();
    assert_eq!(
        w.core.next_deadline(),
        Some(w.now + Duration::from_secs(10))
    );
    w.advance(Duration::from_millis(9_999));
    assert_eq!(w.checks_of(pid), 0);
    w.advance(Duration::from_millis(1));
    assert_eq!(w.checks_of(pid), 1);
    // While it runs, only its timeout is due: never a second check at once.
    assert_eq!(w.core.next_deadline(), Some(w.now + Duration::from_secs(5)));
    w.advance(Duration::from_millis(2_000));
    w.answer(pid, Ok(()));
    assert_eq!(
        w.core.next_deadline(),
        Some(w.now + Duration::from_secs(10))
    );
    w.advance(Duration::from_secs(10));
    assert_eq!(w.checks_of(pid), 2);
}

#[test]
fn a_check_in_flight_is_never_started_twice_however_late_its_answer() {
    let mut w = World::new(vec![checked("web", 1_000, 5_000, 3)]);
    let pid = w.pid(0).unwrap();
    w.advance(Duration::from_secs(1));
    for _ in 0..4 {
        w.advance(Duration::from_secs(1));
    }
    assert_eq!(w.checks_of(pid), 1);
}

#[test]
fn consecutive_health_failures_restart_a_fork_instance_once_and_count_it() {
    let mut w = World::new(vec![checked("web", 1_000, 500, 3)]);
    let pid = w.pid(0).unwrap();
    for n in 1..=3 {
        w.advance(Duration::from_secs(1));
        assert_eq!(w.checks_of(pid), n);
        assert!(
            !w.log.iter().any(|a| matches!(a, Action::Stop { .. })),
            "not before the threshold"
        );
        w.answer(pid, Err("connection refused"));
    }
    assert_eq!(
        w.count(|a| matches!(a, Action::Stop { pid: p, .. } if *p == pid)),
        1
    );
    assert_eq!(w.core.slot(0).unwrap().health_failures_total, 3);
    w.exit(pid, ExitKind::Signal(2));
    let new = w.pid(0).unwrap();
    assert_ne!(new, pid);
    assert_eq!(w.core.slot(0).unwrap().restarts, 1);
    // The new process is checked afresh, one interval after it is online.
    w.advance(Duration::from_secs(1));
    assert_eq!(w.checks_of(new), 1);
}

#[test]
fn a_success_between_failures_resets_the_count() {
    let mut w = World::new(vec![checked("web", 1_000, 500, 2)]);
    let pid = w.pid(0).unwrap();
    for result in [
        Err("refused"),
        Ok(()),
        Err("refused"),
        Ok(()),
        Err("refused"),
    ] {
        w.advance(Duration::from_secs(1));
        w.answer(pid, result);
    }
    assert_eq!(w.count(|a| matches!(a, Action::Stop { .. })), 0);
    assert_eq!(w.core.slot(0).unwrap().health_failures_total, 3);
}

#[test]
fn a_check_past_its_timeout_is_aborted_and_counts_as_a_failure() {
    let mut w = World::new(vec![checked("web", 1_000, 500, 2)]);
    let pid = w.pid(0).unwrap();
    w.advance(Duration::from_secs(1));
    w.advance(Duration::from_millis(499));
    assert_eq!(w.count(|a| matches!(a, Action::AbortHealthCheck { .. })), 0);
    w.advance(Duration::from_millis(1));
    assert_eq!(
        w.count(|a| matches!(a, Action::AbortHealthCheck { pid: p } if *p == pid)),
        1
    );
    assert_eq!(w.core.slot(0).unwrap().health_failures_total, 1);
    // A late answer of the aborted check does not count.
    w.answer(pid, Ok(()));
    w.advance(Duration::from_secs(1));
    w.advance(Duration::from_millis(500));
    assert_eq!(
        w.count(|a| matches!(a, Action::Stop { pid: p, .. } if *p == pid)),
        1
    );
}

#[test]
fn health_failures_in_cluster_mode_start_the_replacement_before_stopping_the_old() {
    let mut spec = checked("api", 1_000, 500, 1);
    spec.exec_mode = crate::config::ExecMode::Cluster;
    spec.wait_ready = true;
    let mut w = World::new(vec![spec]);
    let old = w.pid(0).unwrap();
    w.core.ready(old, w.now);
    w.pump();
    w.advance(Duration::from_secs(1));
    w.answer(old, Err("answered `HTTP/1.1 500`"));
    let new = w.core.slot(0).unwrap().replacement.as_ref().unwrap().pid;
    assert!(!w.log.iter().any(|a| matches!(a, Action::Stop { .. })));
    w.core.ready(new, w.now);
    w.pump();
    assert_eq!(
        w.count(|a| matches!(a, Action::Stop { pid, .. } if *pid == old)),
        1
    );
    assert_eq!(w.core.slot(0).unwrap().restarts, 1);
    assert_eq!(w.pid(0), Some(new));
}

#[test]
fn no_health_deadline_without_a_check_or_before_online() {
    let w = World::new(vec![app("plain")]);
    assert_eq!(w.core.next_deadline(), None);
    let mut spec = checked("slow", 1_000, 500, 1);
    spec.wait_ready = true;
    spec.listen_timeout = Duration::from_secs(60);
    let mut w = World::new(vec![spec]);
    let pid = w.pid(0).unwrap();
    assert_eq!(
        w.core.next_deadline(),
        Some(w.now + Duration::from_secs(60))
    );
    w.advance(Duration::from_secs(5));
    assert_eq!(w.checks_of(pid), 0);
}

#[test]
fn a_memory_restart_in_fork_mode_counts_one_restart() {
    let mut a = app("web");
    a.max_memory_restart = Some(1);
    let mut w = World::new(vec![a]);
    let pid = w.pid(0).unwrap();
    w.core.memory_exceeded(0, w.now);
    w.pump();
    w.exit(pid, ExitKind::Signal(2));
    assert_ne!(w.pid(0), Some(pid));
    assert_eq!(w.core.slot(0).unwrap().restarts, 1);
}

fn cron_app(name: &str, expr: &str) -> AppSpec {
    let mut a = app(name);
    a.cron_restart = Some(crate::cron::CronExpr::parse(expr).unwrap());
    a
}

fn watched_app(name: &str, delay: Duration) -> AppSpec {
    let mut a = app(name);
    a.watch = Some(crate::config::WatchSpec {
        paths: vec![PathBuf::from("/")],
        ignore: Vec::new(),
        own_files: Vec::new(),
        delay,
    });
    a
}

fn stops(w: &World) -> usize {
    w.count(|a| matches!(a, Action::Stop { .. }))
}

fn spawns(w: &World) -> usize {
    w.count(|a| matches!(a, Action::Spawn { .. }))
}

#[test]
fn a_cron_run_stops_the_instance_with_its_kill_signal_then_starts_it_and_asks_to_be_rearmed() {
    let mut a = cron_app("job", "*/3 * * * * *");
    a.kill_signal = Signal::SIGTERM;
    let mut w = World::new(vec![a]);
    assert_eq!(w.core.unarmed_crons(), vec!["job".to_string()]);
    w.core.arm_cron("job", w.now + Duration::from_secs(3));
    assert!(w.core.unarmed_crons().is_empty());
    assert_eq!(w.core.next_deadline(), Some(w.now + Duration::from_secs(3)));
    w.advance(Duration::from_secs(2));
    assert_eq!(stops(&w), 0);
    w.advance(Duration::from_secs(1));
    let pid = w.pid(0).unwrap();
    assert!(w.log.contains(&Action::Stop {
        pid,
        signal: Signal::SIGTERM,
        tree: true
    }));
    w.exit(pid, ExitKind::Signal(15));
    assert_eq!(spawns(&w), 2);
    assert_eq!(w.status(0), Status::Online);
    assert_eq!(w.core.unarmed_crons(), vec!["job".to_string()]);
    assert_eq!(w.exit_action(), None);
}

fn depends(app: &mut AppSpec, on: &str, cond: DependCondition) {
    app.depends_on.push(on.to_string());
    app.depends_conditions.insert(on.to_string(), cond);
}

fn job(name: &str) -> AppSpec {
    let mut j = app(name);
    j.autorestart = false;
    j
}

#[test]
fn a_server_waiting_for_a_job_to_complete_starts_after_it_exits_zero() {
    let mut web = app("web");
    depends(&mut web, "migrate", DependCondition::Completed);
    let mut w = World::new(vec![web, job("migrate")]);
    let migrate = w.pid(1).expect("the job starts first");
    assert_eq!(w.pid(0), None, "the server waits while the job runs");
    w.advance(Duration::from_secs(5));
    assert_eq!(w.pid(0), None);
    w.exit(migrate, ExitKind::Code(0));
    assert!(
        w.pid(0).is_some(),
        "the server starts once the job completed"
    );
    assert_eq!(w.status(1), Status::Stopped);
    assert!(w.core.slot(1).unwrap().completed);
    assert!(w.core.all_online().0, "a completed job counts as fine");
    assert_eq!(w.exit_action(), None);
}

#[test]
fn an_ended_cron_job_keeps_runner_alive_and_runs_again_at_the_next_match() {
    let mut a = cron_app("job", "0 * * * *");
    a.autorestart = false;
    let mut w = World::new(vec![a]);
    w.core.arm_cron("job", w.now + Duration::from_secs(3600));
    w.advance(Duration::from_secs(2));
    let pid = w.pid(0).unwrap();
    w.exit(pid, ExitKind::Code(0));
    assert_eq!(w.status(0), Status::Stopped);
    assert_eq!(w.exit_action(), None, "runner must wait for the next run");
    assert_eq!(
        w.core.next_deadline(),
        Some(w.now + Duration::from_secs(3598))
    );
    w.advance(Duration::from_secs(3598));
    assert_eq!(spawns(&w), 2);
    assert_eq!(w.status(0), Status::Online);
}

#[test]
fn a_cron_run_reloads_a_cluster_app_replacement_first() {
    let mut a = cron_app("api", "0 3 * * *");
    a.exec_mode = crate::config::ExecMode::Cluster;
    a.instances = 2;
    let mut w = World::new(vec![a]);
    w.core.arm_cron("api", w.now + Duration::from_secs(10));
    w.advance(Duration::from_secs(10));
    assert!(w.log.contains(&Action::Spawn {
        slot: 0,
        role: Role::Replacement
    }));
    assert_eq!(w.core.slot(0).unwrap().restarts, 1);
}

#[test]
fn a_cron_run_starts_an_app_stopped_by_runner_stop_but_a_file_change_does_not() {
    let mut a = cron_app("job", "0 * * * *");
    a.watch = watched_app("x", Duration::ZERO).watch;
    let mut w = World::new(vec![a]);
    w.core.request_stop(1, "job", w.now);
    w.pump();
    let pid = w.pid(0).unwrap();
    w.exit(pid, ExitKind::Signal(2));
    assert_eq!(w.status(0), Status::Stopped);
    w.core.files_changed("job", w.now);
    w.advance(Duration::from_millis(1));
    assert_eq!(spawns(&w), 1);
    w.core.arm_cron("job", w.now + Duration::from_secs(5));
    w.advance(Duration::from_secs(5));
    assert_eq!(spawns(&w), 2);
    assert_eq!(w.status(0), Status::Online);
}

#[test]
fn a_burst_of_changes_restarts_once_after_watch_delay() {
    let mut w = World::new(vec![watched_app("web", Duration::from_millis(500))]);
    assert_eq!(
        w.core.next_deadline(),
        None,
        "a watched app with no change sleeps"
    );
    for _ in 0..5 {
        w.core.files_changed("web", w.now);
        w.advance(Duration::from_millis(50));
    }
    assert_eq!(stops(&w), 0);
    w.advance(Duration::from_millis(300));
    assert_eq!(stops(&w), 1);
    let pid = w.pid(0).unwrap();
    w.exit(pid, ExitKind::Signal(2));
    assert_eq!(spawns(&w), 2);
    assert_eq!(w.core.next_deadline(), None);
}

#[test]
fn a_change_during_a_restart_gets_exactly_one_more_restart() {
    let mut w = World::new(vec![watched_app("web", Duration::ZERO)]);
    w.core.files_changed("web", w.now);
    w.advance(Duration::from_millis(1));
    assert_eq!(stops(&w), 1);
    // Still stopping: these changes may not be seen by the process about to start.
    w.core.files_changed("web", w.now);
    w.core.files_changed("web", w.now);
    let pid = w.pid(0).unwrap();
    w.exit(pid, ExitKind::Signal(2));
    w.advance(Duration::from_millis(1));
    assert_eq!(stops(&w), 2);
    let pid = w.pid(0).unwrap();
    w.exit(pid, ExitKind::Signal(2));
    w.advance(Duration::from_secs(10));
    assert_eq!(stops(&w), 2);
}

#[test]
fn no_scheduled_restart_during_shutdown() {
    let mut w = World::new(vec![cron_app("job", "* * * * *")]);
    w.core.arm_cron("job", w.now + Duration::from_secs(1));
    w.core.shutdown(false, w.now);
    w.pump();
    assert!(w.core.unarmed_crons().is_empty());
    let pid = w.pid(0).unwrap();
    w.exit(pid, ExitKind::Signal(2));
    assert_eq!(w.exit_action(), Some(0));
}

#[test]
fn a_stop_exit_code_counts_as_completed_successfully() {
    let mut web = app("web");
    depends(&mut web, "migrate", DependCondition::Completed);
    let mut m = app("migrate");
    m.stop_exit_codes = vec![3];
    let mut w = World::new(vec![web, m]);
    let migrate = w.pid(1).unwrap();
    w.exit(migrate, ExitKind::Code(3));
    assert!(w.pid(0).is_some());
}

#[test]
fn a_failed_job_keeps_its_dependents_from_starting_and_runner_exits_with_its_code() {
    let mut web = app("web");
    depends(&mut web, "migrate", DependCondition::Completed);
    let mut front = app("front");
    front.depends_on = vec!["web".into()];
    let mut w = World::new(vec![front, web, job("migrate")]);
    let migrate = w.pid(2).unwrap();
    w.exit(migrate, ExitKind::Code(1));
    assert_eq!(w.pid(1), None);
    assert_eq!(w.pid(0), None);
    assert_eq!(w.status(1), Status::Errored);
    assert_eq!(
        w.status(0),
        Status::Errored,
        "the failure reaches dependents of dependents"
    );
    assert!(w
        .core
        .slot(1)
        .unwrap()
        .error
        .as_deref()
        .unwrap()
        .contains("migrate[0] exited (exit code 1)"));
    assert!(!w
        .log
        .iter()
        .any(|a| matches!(a, Action::Spawn { slot: 0 | 1, .. })));
    assert_eq!(w.exit_action(), Some(1));
}

#[test]
fn a_failed_job_does_not_end_runner_while_another_app_runs() {
    let mut web = app("web");
    depends(&mut web, "migrate", DependCondition::Completed);
    let mut w = World::new(vec![web, job("migrate"), app("other")]);
    let migrate = w.pid(1).unwrap();
    let other = w.pid(2).unwrap();
    w.exit(migrate, ExitKind::Code(4));
    assert_eq!(w.pid(0), None);
    assert_eq!(w.exit_action(), None, "other still runs");
    assert!(!w.core.all_online().0, "a blocked app is not fine");
    w.core.shutdown(false, w.now);
    w.pump();
    w.exit(other, ExitKind::Signal(2));
    assert_eq!(w.exit_action(), Some(4));
}

#[test]
fn a_job_that_is_restarted_after_exit_zero_never_completes() {
    let mut web = app("web");
    depends(&mut web, "migrate", DependCondition::Completed);
    let mut w = World::new(vec![web, app("migrate")]);
    let first = w.pid(1).unwrap();
    w.advance(Duration::from_secs(2));
    w.exit(first, ExitKind::Code(0));
    assert_ne!(w.pid(1), Some(first), "autorestart starts it again");
    assert_eq!(w.pid(0), None);
}

#[test]
fn the_started_condition_is_met_as_soon_as_the_dependency_runs() {
    let mut db = app("db");
    db.wait_ready = true;
    let mut web = app("web");
    depends(&mut web, "db", DependCondition::Started);
    let w = World::new(vec![web, db]);
    assert_eq!(w.status(1), Status::Launching);
    assert!(w.pid(0).is_some(), "started does not wait for online");
}

#[test]
fn the_started_condition_holds_after_the_dependency_completed() {
    let mut web = app("web");
    depends(&mut web, "db", DependCondition::Started);
    web.depends_on.push("gate".into());
    let mut gate = app("gate");
    gate.wait_ready = true;
    let mut w = World::new(vec![web, job("db"), gate]);
    let db = w.pid(1).unwrap();
    w.exit(db, ExitKind::Code(0));
    assert_eq!(w.pid(0), None);
    let gate = w.pid(2).unwrap();
    w.core.ready(gate, w.now);
    w.pump();
    assert!(w.pid(0).is_some());
}

#[test]
fn the_online_condition_fails_for_good_when_the_dependency_completes() {
    let mut web = app("web");
    web.depends_on = vec!["migrate".into()];
    let mut m = job("migrate");
    m.wait_ready = true;
    let mut w = World::new(vec![web, m, app("other")]);
    let migrate = w.pid(1).unwrap();
    w.exit(migrate, ExitKind::Code(0));
    assert_eq!(w.status(0), Status::Errored);
    let why = w.core.slot(0).unwrap().error.clone().unwrap();
    assert!(why.contains("completed_successfully"), "{why}");
}

#[test]
fn a_dependency_stopped_on_request_keeps_its_dependents_waiting() {
    let mut db = app("db");
    db.wait_ready = true;
    let mut web = app("web");
    web.depends_on = vec!["db".into()];
    let mut w = World::new(vec![web, db, app("other")]);
    w.core.request_stop(1, "db", w.now);
    w.pump();
    let db = w.log.iter().find_map(|a| match a {
        Action::Stop { pid, .. } => Some(*pid),
        _ => None,
    });
    w.exit(db.unwrap(), ExitKind::Signal(2));
    assert_eq!(w.status(0), Status::Launching, "not errored: nobody failed");
}

fn forwarded(w: &mut World) -> Vec<i32> {
    w.pump();
    let signals = w
        .log
        .iter()
        .filter_map(|a| match a {
            Action::Forward { signal, .. } => Some(*signal),
            _ => None,
        })
        .collect();
    w.log.clear();
    signals
}

#[test]
fn single_mode_forwards_every_signal_even_stop_and_real_time_ones() {
    let mut w = World::new(vec![app("p")]);
    w.core.set_mode(Mode::Single);
    forwarded(&mut w);
    for signo in [15, 2, 3, 1, 10, 36] {
        w.core.signal_received(signo, w.now);
    }
    assert_eq!(forwarded(&mut w), vec![15, 2, 3, 1, 10, 36]);
    assert!(!w.core.is_shutting_down());
}

#[test]
fn an_ecosystem_stops_on_sigterm_and_forwards_usr1_but_not_real_time_signals() {
    let mut w = World::new(vec![app("p")]);
    w.core.set_mode(Mode::Ecosystem {
        sighup_reloads: false,
    });
    forwarded(&mut w);
    for signal in [Signal::SIGUSR1, Signal::SIGHUP, Signal::SIGCHLD] {
        w.core.signal_received(signal as i32, w.now);
    }
    w.core.signal_received(36, w.now);
    assert_eq!(
        forwarded(&mut w),
        vec![Signal::SIGUSR1 as i32, Signal::SIGHUP as i32]
    );
    w.core.signal_received(Signal::SIGTERM as i32, w.now);
    assert!(w.core.is_shutting_down());
}

#[test]
fn only_forwards_holds_exactly_for_signals_that_change_nothing_but_are_passed_on() {
    // The supervisor skips the rest of its turn on this word: a signal that stops,
    // reloads or means SIGCHLD must never be called a plain forward.
    let modes = [
        Mode::Single,
        Mode::Ecosystem {
            sighup_reloads: false,
        },
        Mode::Ecosystem {
            sighup_reloads: true,
        },
    ];
    for mode in modes {
        for signo in 1..=64 {
            let mut w = World::new(vec![app("p")]);
            w.core.set_mode(mode);
            w.pump();
            w.log.clear();
            let only = w.core.only_forwards(signo);
            w.core.signal_received(signo, w.now);
            w.pump();
            let all_forwards = w.log.iter().all(|a| matches!(a, Action::Forward { .. }));
            let passed_on = !w.log.is_empty() && all_forwards;
            let changed = w.core.is_shutting_down() || w.core.is_reloading();
            assert_eq!(only, passed_on && !changed, "{mode:?}, signal {signo}");
        }
    }
}

#[test]
fn sighup_reloads_when_the_ecosystem_says_so() {
    let mut w = World::new(vec![app("p")]);
    w.core.set_mode(Mode::Ecosystem {
        sighup_reloads: true,
    });
    forwarded(&mut w);
    w.core.signal_received(Signal::SIGHUP as i32, w.now);
    assert!(forwarded(&mut w).is_empty());
    assert!(w.core.is_reloading());
}

#[test]
fn memory_is_measured_once_a_second_and_only_an_instance_over_its_limit_restarts() {
    let mut limited = app("big");
    limited.max_memory_restart = Some(1000);
    let mut w = World::new(vec![limited, app("free")]);
    let pid = w.pid(0).unwrap();
    let due = w.core.memory_to_measure(w.now);
    assert_eq!(due, vec![(0, pid)], "only the app with a limit is measured");
    assert!(
        w.core.memory_to_measure(w.now).is_empty(),
        "not again at once"
    );
    assert_eq!(
        w.core.next_deadline(),
        Some(w.now + crate::core::memory::MEMORY_CHECK_EVERY)
    );
    w.core.memory_measured(0, 1000, w.now);
    w.pump();
    assert!(!w.log.iter().any(|a| matches!(a, Action::Stop { .. })));
    w.core.memory_measured(0, 1001, w.now);
    w.pump();
    assert!(w
        .log
        .iter()
        .any(|a| matches!(a, Action::Stop { pid: p, .. } if *p == pid)));
    // A second later the instance is still stopping: it is not measured (or restarted) again.
    w.now += crate::core::memory::MEMORY_CHECK_EVERY;
    assert!(w.core.memory_to_measure(w.now).is_empty());
    w.exit(pid, ExitKind::Signal(2));
    w.now += crate::core::memory::MEMORY_CHECK_EVERY;
    let again = w.core.memory_to_measure(w.now);
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].1, pid, "the new process is measured");
}

#[test]
fn without_any_memory_limit_there_is_no_memory_deadline() {
    let mut w = World::new(vec![app("free")]);
    assert!(w.core.memory_to_measure(w.now).is_empty());
    assert_eq!(w.core.next_deadline(), None);
}

/// The nearest deadline found by walking every slot, as `next_deadline` once did: the
/// queue must always agree with it.
fn deadline_by_scan(core: &Core) -> Option<Instant> {
    let slots = core.slots().filter_map(deadlines::slot_deadline);
    let draining = core
        .draining
        .iter()
        .filter_map(|(_, p)| p.stopping.filter(|s| !s.killed).map(|s| s.kill_at));
    let apps = core
        .apps
        .iter()
        .filter(|_| !core.shutting_down)
        .flat_map(|a| [a.cron_at, a.watch_at])
        .flatten();
    slots.chain(draining).chain(apps).min()
}

#[test]
fn the_deadline_queue_agrees_with_a_walk_over_every_slot() {
    let mut a = cluster("api", 6);
    a.listen_timeout = Duration::from_secs(3);
    a.kill_timeout = Duration::from_secs(2);
    let mut b = app("job");
    b.instances = 4;
    b.restart_delay = Duration::from_millis(700);
    let mut w = World::new(vec![a, b]);
    let check = |w: &World, when: &str| {
        assert_eq!(w.core.next_deadline(), deadline_by_scan(&w.core), "{when}");
    };
    check(&w, "after start: ready deadlines of api, none for job");
    let pids: Vec<i32> = (0..6).filter_map(|s| w.pid(s)).collect();
    for (i, pid) in pids.iter().enumerate().take(3) {
        w.now += Duration::from_millis(100 * i as u64);
        w.core.ready(*pid, w.now);
        w.pump();
        check(&w, "some api instances ready");
    }
    // job's instances crash at different moments: restart deadlines in between.
    for s in 6..10 {
        let pid = w.pid(s).unwrap();
        w.now += Duration::from_millis(50);
        w.exit(pid, ExitKind::Code(1));
        check(&w, "a job instance waits to restart");
    }
    for step in 0..40 {
        w.advance(Duration::from_millis(100));
        check(&w, &format!("step {step}"));
    }
    w.core.request_reload(1, "api", w.now);
    w.pump();
    check(&w, "reload under way");
    w.core.shutdown(false, w.now);
    w.pump();
    check(&w, "stopping: kill deadlines");
    w.advance(Duration::from_secs(1));
    check(&w, "stopping, one second later");
    w.advance(Duration::from_secs(2));
    check(&w, "every kill sent");
    assert!(w.log.iter().any(|a| matches!(a, Action::Kill { .. })));
}

#[test]
fn a_thousand_instances_start_reload_and_stop() {
    let mut w = World::new(vec![cluster("api", 1000)]);
    let spawns = |w: &World| w.count(|a| matches!(a, Action::Spawn { .. }));
    assert_eq!(spawns(&w), 1000);
    for s in 0..1000 {
        let pid = w.pid(s).unwrap();
        w.core.ready(pid, w.now);
    }
    w.pump();
    assert_eq!(
        w.core.all_online(),
        (true, "1000/1000 instances online".into())
    );
    assert_eq!(w.core.next_deadline(), None, "nothing is timed once online");
    w.core.request_reload(1, "api", w.now);
    w.pump();
    // Each replacement is ready at once; its old process stops and exits.
    for s in 0..1000 {
        let new = w.core.slot(s).unwrap().replacement.as_ref().unwrap().pid;
        w.core.ready(new, w.now);
        w.pump();
        let old = w.log.iter().rev().find_map(|a| match a {
            Action::Stop { pid, .. } => Some(*pid),
            _ => None,
        });
        w.exit(old.unwrap(), ExitKind::Signal(15));
    }
    assert_eq!(spawns(&w), 2000);
    assert!(replies(&w).iter().any(|(id, ok, _)| *id == 1 && *ok));
    assert_eq!(w.core.next_deadline(), None);
    w.core.shutdown(false, w.now);
    w.pump();
    let pids: Vec<i32> = (0..1000).filter_map(|s| w.pid(s)).collect();
    for pid in pids {
        w.exit(pid, ExitKind::Signal(15));
    }
    assert_eq!(w.exit_action(), Some(0));
}

#[test]
fn removing_an_app_keeps_every_other_slot_pointing_at_its_own_app() {
    let mut a = app("first");
    a.instances = 2;
    let mut b = app("second");
    b.restart_delay = Duration::from_millis(300);
    let mut w = World::new(vec![a.clone(), b.clone()]);
    w.core.apply(1, vec![b.clone()], w.now);
    w.pump();
    for s in 0..2 {
        let pid = w.pid(s).unwrap();
        w.exit(pid, ExitKind::Signal(15));
    }
    assert_eq!(w.core.apps().len(), 1);
    assert_eq!(w.core.spec_of(2).map(|s| s.name.as_str()), Some("second"));
    // Its own restart policy still applies (found through the app's new place).
    let pid = w.pid(2).unwrap();
    w.exit(pid, ExitKind::Code(1));
    assert_eq!(w.status(2), Status::WaitingRestart);
    w.advance(Duration::from_millis(300));
    assert_eq!(w.status(2), Status::Online);
    // A new app added later lands after it and finds its own spec too.
    let mut c = app("third");
    c.instances = 1;
    w.core.apply(2, vec![b, c], w.now);
    w.pump();
    let third = w.core.slots().find(|s| s.app == "third").unwrap().id;
    assert_eq!(
        w.core.spec_of(third).map(|s| s.name.as_str()),
        Some("third")
    );
    assert_eq!(w.status(third), Status::Online);
}

#[test]
fn scaling_down_leaves_no_deadline_of_a_forgotten_slot() {
    let mut a = app("web");
    a.instances = 3;
    a.kill_timeout = Duration::from_secs(5);
    let mut w = World::new(vec![a]);
    w.core.request_scale(1, "web", 1, w.now);
    w.pump();
    assert_eq!(w.core.next_deadline(), Some(w.now + Duration::from_secs(5)));
    for s in 1..3 {
        let pid = w.pid(s).unwrap();
        w.exit(pid, ExitKind::Signal(15));
    }
    assert_eq!(w.core.slots().count(), 1);
    assert_eq!(w.core.next_deadline(), None);
    assert_eq!(deadline_by_scan(&w.core), None);
}
