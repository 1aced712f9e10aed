//! One process (`Proc`) and the numbered place it fills (`Slot`), and every way a process
//! is stopped: gracefully (its app's `kill_signal`, SIGKILL armed `kill_timeout` later),
//! at once (SIGKILL), and the SIGKILL that comes due. A new stop rule starts here.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{health, human, Action, Core, ExitKind, RestartState, SlotId, Status};
use crate::config::AppSpec;

/// A graceful stop in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stopping {
    pub(super) kill_at: Instant,
    pub(super) killed: bool,
}

/// One running process of a slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub pid: i32,
    pub started: Instant,
    pub online_since: Option<Instant>,
    /// Text of the last sd_notify `STATUS=`.
    pub status_text: Option<String>,
    pub(super) ready_deadline: Option<Instant>,
    pub(super) stopping: Option<Stopping>,
    /// The main process is gone (when and how); its tree may not be yet.
    pub(super) exited: Option<(Instant, ExitKind)>,
    /// We asked it to stop, so its exit is not a crash.
    pub(super) requested: bool,
    /// With `watchdog`: the latest moment for the next `WATCHDOG=1`.
    pub(super) watchdog_at: Option<Instant>,
    /// With `health_check`: when it is checked next, and how it fared.
    pub(super) health: health::Liveness,
}

impl Proc {
    pub(super) fn new(pid: i32, now: Instant, spec: &AppSpec) -> Proc {
        let waits = spec.waits_for_ready();
        Proc {
            pid,
            started: now,
            online_since: None,
            status_text: None,
            ready_deadline: if waits {
                Some(now + spec.listen_timeout)
            } else {
                None
            },
            stopping: None,
            exited: None,
            requested: false,
            watchdog_at: None,
            health: health::Liveness::default(),
        }
    }

    /// The main process has not exited (its tree may be stopping).
    pub fn main_alive(&self) -> bool {
        self.exited.is_none()
    }

    /// Started, not yet online, and not being stopped.
    pub fn is_launching(&self) -> bool {
        self.exited.is_none() && self.stopping.is_none() && self.online_since.is_none()
    }

    /// Running and not being stopped.
    pub fn is_running(&self) -> bool {
        self.exited.is_none() && self.stopping.is_none()
    }

    pub(super) fn is_online(&self) -> bool {
        self.online_since.is_some() && self.stopping.is_none() && self.exited.is_none()
    }

    /// Still launching past its readiness deadline (`listen_timeout`).
    pub(super) fn ready_overdue(&self, now: Instant) -> bool {
        self.is_launching() && self.ready_deadline.is_some_and(|d| d <= now)
    }
}

/// Every stop of a process goes through `signal_stop` and `kill_now`, which mark it and
/// return the action to perform: the graceful one (its signal now, SIGKILL armed for
/// `kill_timeout` later, see [`Proc::kill_if_due`]) and the immediate one.
impl Proc {
    pub(super) fn signal_stop(
        &mut self,
        signal: Signal,
        kill_timeout: Duration,
        tree: bool,
        now: Instant,
    ) -> Action {
        self.stopping = Some(Stopping {
            kill_at: now + kill_timeout,
            killed: false,
        });
        Action::Stop {
            pid: self.pid,
            signal,
            tree,
        }
    }

    pub(super) fn kill_now(&mut self, tree: bool, now: Instant) -> Action {
        self.stopping = Some(Stopping {
            kill_at: now,
            killed: true,
        });
        Action::Kill {
            pid: self.pid,
            tree,
        }
    }

    /// Marks the process as stopped on request and, unless a stop is already under way,
    /// returns its app's kill signal (the SIGKILL deadline armed).
    pub(super) fn stop_on_request(&mut self, spec: &AppSpec, now: Instant) -> Option<Action> {
        self.requested = true;
        if self.main_alive() && self.stopping.is_none() {
            Some(self.signal_stop(spec.kill_signal, spec.kill_timeout, spec.treekill, now))
        } else {
            None
        }
    }

    /// SIGKILL, once a graceful stop has outlived `kill_timeout`.
    pub(super) fn kill_if_due(&mut self, spec: &AppSpec, now: Instant) -> Option<Action> {
        if self.stopping.is_some_and(|s| !s.killed && s.kill_at <= now) {
            log::warn!(
                "{}: processes of pid {} still running {} after {}; sending SIGKILL",
                spec.name,
                self.pid,
                human(spec.kill_timeout),
                spec.kill_signal.as_str()
            );
            Some(self.kill_now(spec.treekill, now))
        } else {
            None
        }
    }
}

/// What a slot does once its current process is gone after a requested stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterStop {
    StayDown,
    Start,
}

/// One instance of an app: a numbered place that a process fills, again and again.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub id: SlotId,
    /// Index into the app's instances, 0..N-1 (the `instance_var` value).
    pub index: u32,
    pub app: String,
    /// Where the app is in `Core::apps` (checked against `app`, see `Core::app_of`).
    pub(super) app_ix: usize,
    pub proc: Option<Proc>,
    /// The process a reload started to take over from `proc`, until it is online.
    pub replacement: Option<Proc>,
    pub restarts: u32,
    pub last_exit: Option<ExitKind>,
    /// Failed health checks over the slot's life, for metrics.
    pub health_failures_total: u64,
    /// The last thing that went wrong, for `list`.
    pub error: Option<String>,
    pub(super) restart: RestartState,
    pub(super) restart_at: Option<Instant>,
    /// The last wait after a transient spawn failure.
    pub(super) resource_backoff: Option<Duration>,
    /// Whether this slot should have a process (false after `stop` or ending for good).
    pub(super) wanted: bool,
    /// `delete` asked for it: removed once its process is gone.
    pub(super) deleting: bool,
    pub(super) errored: bool,
    pub(super) after_stop: AfterStop,
    /// `runner stop` put it down: a file change does not start it again (cron does).
    pub(super) held: bool,
    /// Spawns handed to the shell and not answered yet: the shell reports a spawn once
    /// the program has exec'd, and other events may come in between.
    pub(super) spawning: u8,
    /// A process was started for this slot at least once (`depends_on` condition started).
    pub(super) ran: bool,
    /// The last run ended for good with success (0 or a `stop_exit_codes` code).
    pub completed: bool,
}

impl Slot {
    pub fn status(&self) -> Status {
        match &self.proc {
            Some(p) if p.stopping.is_some() || p.exited.is_some() => Status::Stopping,
            Some(p) if p.online_since.is_some() => Status::Online,
            Some(_) => Status::Launching,
            None if self.errored => Status::Errored,
            None if self.restart_at.is_some() => Status::WaitingRestart,
            None if self.wanted => Status::Launching,
            None => Status::Stopped,
        }
    }

    /// The current process was asked to stop and has not finished stopping.
    pub(super) fn stop_under_way(&self) -> bool {
        self.proc.as_ref().is_some_and(|p| p.requested)
    }

    pub(super) fn has_process(&self) -> bool {
        self.proc.is_some() || self.replacement.is_some() || self.spawning > 0
    }

    pub(super) fn new(id: SlotId, index: u32, app: &str, app_ix: usize) -> Slot {
        Slot {
            id,
            index,
            app: app.to_string(),
            app_ix,
            proc: None,
            replacement: None,
            restarts: 0,
            last_exit: None,
            health_failures_total: 0,
            error: None,
            restart: RestartState::default(),
            restart_at: None,
            resource_backoff: None,
            wanted: true,
            deleting: false,
            errored: false,
            after_stop: AfterStop::StayDown,
            held: false,
            spawning: 0,
            ran: false,
            completed: false,
        }
    }
}

impl Core {
    /// Begins a graceful stop of whatever process the slot has; `after` says whether it
    /// starts again once stopped.
    pub(super) fn stop_slot(&mut self, id: SlotId, spec: &AppSpec, after: AfterStop, now: Instant) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        slot.restart_at = None;
        slot.after_stop = after;
        for p in [&mut slot.proc, &mut slot.replacement]
            .into_iter()
            .flatten()
        {
            self.actions.extend(p.stop_on_request(spec, now));
        }
    }
}
