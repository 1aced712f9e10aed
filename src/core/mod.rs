//! The lifecycle of apps and instances as a pure state machine.
//!
//! The shell (`supervisor`) feeds it events — a process was spawned, exited, said it was
//! ready, a deadline passed, runner was asked to stop — together with the current time,
//! and performs the [`Action`]s it queues. Nothing in here reads a clock, spawns, signals
//! or waits, so every decision is unit-tested with a fake clock (see `tests.rs`).

mod deadlines;
mod health;
pub(crate) mod memory;
mod ops;
mod policy;
mod scheduled;
mod signals;
mod slots;
mod status;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::{AppSpec, DependCondition};
pub use policy::{decide, ExitKind, RestartState, Verdict};
pub use signals::Mode;
pub use status::Status;

/// The id of an instance as shown by `list`; stable across restarts and reloads.
pub type SlotId = u32;

/// Which process of a slot an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The process that serves now.
    Current,
    /// The process that a reload starts to replace the current one.
    Replacement,
}

/// What the shell must do. Performed in order; `Spawn` is answered with [`Core::spawned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Spawn {
        slot: SlotId,
        role: Role,
    },
    /// The first signal of a graceful stop; `tree` asks for the whole process tree.
    Stop {
        pid: i32,
        signal: Signal,
        tree: bool,
    },
    /// SIGKILL to whatever is left of the process (and its tree when `tree`).
    Kill {
        pid: i32,
        tree: bool,
    },
    /// Pass a signal (by number: real-time ones have no name) on to a main process only.
    Forward {
        pid: i32,
        signal: i32,
    },
    /// The answer to a control request, once what it asked for is done (or failed).
    Reply {
        request: RequestId,
        ok: bool,
        message: String,
    },
    /// Run the app's `health_check` against this instance; answered with
    /// [`Core::health_result`]. Never asked again for a pid before that answer.
    HealthCheck {
        pid: i32,
    },
    /// The check under way for this instance took too long: drop it (an `exec:` command
    /// is killed with its whole process group). Its result no longer counts.
    AbortHealthCheck {
        pid: i32,
    },
    /// Everything has ended: runner exits with this code.
    Exit(i32),
}

/// Identifies a control request so that its reply can be sent when the work is done.
pub type RequestId = u64;

/// Why a spawn did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnFailure {
    pub message: String,
    /// The exit code it counts as (126/127, shell rules) when it is the program's fault.
    pub code: i32,
    /// The system is short of something (fork's EAGAIN under a pids limit, no fds): not
    /// the app's fault, so retried with a backoff that does not count as a crash.
    pub transient: bool,
}

impl std::fmt::Display for SpawnFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// First wait after a transient spawn failure; doubles up to [`RESOURCE_BACKOFF_MAX`].
pub const RESOURCE_BACKOFF: Duration = Duration::from_secs(1);
pub const RESOURCE_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Stop signals closer together than this are one request delivered twice (to runner's
/// pid and to its process group), not an operator asking a second time.
pub const STOP_REPEAT_WINDOW: Duration = Duration::from_secs(1);

/// A graceful stop in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stopping {
    kill_at: Instant,
    killed: bool,
}

/// One running process of a slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub pid: i32,
    pub started: Instant,
    pub online_since: Option<Instant>,
    /// Text of the last sd_notify `STATUS=`.
    pub status_text: Option<String>,
    ready_deadline: Option<Instant>,
    stopping: Option<Stopping>,
    /// The main process is gone (when and how); its tree may not be yet.
    exited: Option<(Instant, ExitKind)>,
    /// We asked it to stop, so its exit is not a crash.
    requested: bool,
    /// With `watchdog`: the latest moment for the next `WATCHDOG=1`.
    watchdog_at: Option<Instant>,
    /// With `health_check`: when it is checked next, and how it fared.
    health: health::Liveness,
}

impl Proc {
    fn new(pid: i32, now: Instant, spec: &AppSpec) -> Proc {
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

    fn is_online(&self) -> bool {
        self.online_since.is_some() && self.stopping.is_none() && self.exited.is_none()
    }
}

/// What a slot does once its current process is gone after a requested stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterStop {
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
    app_ix: usize,
    pub proc: Option<Proc>,
    pub next: Option<Proc>,
    pub restarts: u32,
    pub last_exit: Option<ExitKind>,
    /// Failed health checks over the slot's life, for metrics.
    pub health_failures_total: u64,
    /// The last thing that went wrong, for `list`.
    pub error: Option<String>,
    restart: RestartState,
    restart_at: Option<Instant>,
    /// The last wait after a transient spawn failure.
    resource_backoff: Option<Duration>,
    /// Whether this slot should have a process (false after `stop` or ending for good).
    wanted: bool,
    /// `delete` asked for it: removed once its process is gone.
    deleting: bool,
    errored: bool,
    after_stop: AfterStop,
    /// `runner stop` put it down: a file change does not start it again (cron does).
    held: bool,
    /// Spawns handed to the shell and not answered yet: the shell reports a spawn once
    /// the program has exec'd, and other events may come in between.
    spawning: u8,
    /// A process was started for this slot at least once (`depends_on` condition started).
    ran: bool,
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
    fn stop_under_way(&self) -> bool {
        self.proc.as_ref().is_some_and(|p| p.requested)
    }

    fn has_process(&self) -> bool {
        self.proc.is_some() || self.next.is_some() || self.spawning > 0
    }
}

/// An app and its slots.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// Shared, not copied, by the code paths that need the spec while changing slots.
    pub spec: Arc<AppSpec>,
    pub slots: Vec<SlotId>,
    /// Slots waiting for `start` or for their dependencies; the rest never need a look
    /// when deciding what to start.
    awaiting: BTreeSet<SlotId>,
    /// Set once runner began stopping this app during a shutdown.
    shutdown_sent: bool,
    /// A reload in progress: one slot at a time.
    reload: Option<ops::ReloadPlan>,
    /// Reloads asked for (`reload`, `apply`, SIGHUP) that ended, and those that failed.
    pub reloads: u64,
    pub reload_failures: u64,
    /// The next `cron_restart` run, armed by the shell from the wall clock.
    cron_at: Option<Instant>,
    /// A `watch` change was seen: restart at this time (`watch_delay` after the first).
    watch_at: Option<Instant>,
    /// A change came while a restart was under way: one more restart once it is done.
    watch_again: bool,
}

/// The whole supervised world.
#[derive(Debug)]
pub struct Core {
    apps: Vec<App>,
    slots: slots::Slots,
    /// The earliest deadline of each slot, so a wake-up does not walk every slot.
    deadlines: deadlines::Deadlines,
    /// Slots that `delete`, `scale` or `apply` asked to remove: forgotten once their
    /// process is gone (kept apart so each event does not look through every slot).
    deleting: BTreeSet<SlotId>,
    /// Which slot each main process (current, replacement or draining) belongs to, so an
    /// event about a pid costs the same with 5 instances or 5,000. Entries are checked
    /// against the slot on lookup; a process leaves the map when its tree is gone.
    pids: HashMap<i32, SlotId>,
    /// Old processes that a reload replaced, stopping in the background.
    draining: Vec<(SlotId, Proc)>,
    actions: VecDeque<Action>,
    shutting_down: bool,
    /// The code of the first app that failed for good.
    first_failure: Option<i32>,
    /// A critical app ended: runner exits with its code.
    critical_exit: Option<i32>,
    exited: bool,
    waiters: Vec<ops::Waiter>,
    next_slot_id: SlotId,
    /// How many slots were forgotten so far (deleted, scaled down): tells the shell when
    /// what it keeps per slot may need pruning.
    slots_removed: u64,
    /// tini-style use: the one program's start and end are its own business, so they
    /// are logged at debug level (tini and dumb-init print nothing either).
    quiet: bool,
    mode: Mode,
    /// When instances with `max_memory_restart` are measured next (None: at once).
    memory_check_at: Option<Instant>,
    /// When the latest SIGTERM/SIGINT/SIGQUIT arrived.
    last_stop_signal: Option<Instant>,
}

impl Core {
    /// Lays out the slots of every app; nothing starts until [`Core::start`].
    pub fn new(specs: Vec<AppSpec>) -> Core {
        let mut core = Core {
            apps: Vec::new(),
            slots: slots::Slots::default(),
            deadlines: deadlines::Deadlines::default(),
            deleting: BTreeSet::new(),
            pids: HashMap::new(),
            draining: Vec::new(),
            actions: VecDeque::new(),
            shutting_down: false,
            first_failure: None,
            critical_exit: None,
            exited: false,
            waiters: Vec::new(),
            next_slot_id: 0,
            slots_removed: 0,
            quiet: false,
            memory_check_at: None,
            mode: Mode::Ecosystem {
                sighup_reloads: false,
            },
            last_stop_signal: None,
        };
        for spec in specs {
            core.add_app(spec);
        }
        core
    }

    /// How signals to runner are read (see `signals.rs`).
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// Logs the routine start and end of the apps at debug level (single-program mode).
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// `level`, or debug for routine lifecycle news in quiet mode.
    fn routine(&self, level: log::Level) -> log::Level {
        if self.quiet {
            log::Level::Debug
        } else {
            level
        }
    }

    /// Adds an app and lays out its slots (not started).
    fn add_app(&mut self, spec: AppSpec) {
        let app_ix = self.apps.len();
        let mut ids = Vec::new();
        for index in 0..spec.instances {
            ids.push(self.add_slot(index, &spec.name, app_ix));
        }
        self.apps.push(App {
            spec: Arc::new(spec),
            awaiting: ids.iter().copied().collect(),
            slots: ids,
            shutdown_sent: false,
            reload: None,
            reloads: 0,
            reload_failures: 0,
            cron_at: None,
            watch_at: None,
            watch_again: false,
        });
    }

    /// A new slot of app `app_ix`, not started; the caller adds it to the app's `slots`
    /// and `awaiting`.
    fn add_slot(&mut self, index: u32, app: &str, app_ix: usize) -> SlotId {
        let id = self.next_slot_id;
        self.next_slot_id += 1;
        self.slots.insert(id, Slot::new(id, index, app, app_ix));
        id
    }

    pub fn apps(&self) -> &[App] {
        &self.apps
    }

    pub fn slot(&self, id: SlotId) -> Option<&Slot> {
        self.slots.get(&id)
    }

    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.slots.values()
    }

    /// How many slots have been forgotten since the start (see `slots_removed`).
    pub fn slots_removed(&self) -> u64 {
        self.slots_removed
    }

    pub fn spec_of(&self, slot: SlotId) -> Option<&AppSpec> {
        self.app_of(self.slots.get(&slot)?).map(|a| &*a.spec)
    }

    /// The spec of the slot's app, shared: for code that changes slots while reading it.
    fn spec_arc(&self, slot: SlotId) -> Option<Arc<AppSpec>> {
        self.app_of(self.slots.get(&slot)?)
            .map(|a| Arc::clone(&a.spec))
    }

    /// The slot's app: by index, O(1); by name should an index ever be out of date.
    fn app_of(&self, slot: &Slot) -> Option<&App> {
        match self.apps.get(slot.app_ix) {
            Some(a) if a.spec.name == slot.app => Some(a),
            _ => self.apps.iter().find(|a| a.spec.name == slot.app),
        }
    }

    /// Index of the slot's app in `apps`.
    fn app_ix(&self, id: SlotId) -> Option<usize> {
        let slot = self.slots.get(&id)?;
        match self.apps.get(slot.app_ix) {
            Some(a) if a.spec.name == slot.app => Some(slot.app_ix),
            _ => self.apps.iter().position(|a| a.spec.name == slot.app),
        }
    }

    /// The next action for the shell to perform.
    pub fn next_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if let Some(Action::Spawn { slot, .. }) = &action {
            if let Some(s) = self.slots.get_mut(slot) {
                s.spawning = s.spawning.saturating_add(1);
            }
        }
        action
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Whether some app is being reloaded.
    pub fn is_reloading(&self) -> bool {
        self.apps.iter().any(|a| a.reload.is_some())
    }

    /// Starts every app whose dependencies allow it.
    pub fn start(&mut self, now: Instant) {
        self.progress(now);
    }

    /// The shell's answer to `Action::Spawn`.
    /// A failure carries its message and the exit code it counts as (126/127, shell rules).
    pub fn spawned(
        &mut self,
        id: SlotId,
        role: Role,
        result: Result<i32, SpawnFailure>,
        now: Instant,
    ) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.spawning = slot.spawning.saturating_sub(1);
        }
        let Some(spec) = self.spec_arc(id) else {
            return;
        };
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        match result {
            Ok(pid) => {
                self.pids.insert(pid, id);
                let mut proc = Proc::new(pid, now, &spec);
                slot.error = None;
                slot.resource_backoff = None;
                // Stopped, deleted or shut down while the program was starting: it is
                // stopped as it would have been, had it been running then.
                let unwanted = self.shutting_down || !slot.wanted;
                if unwanted {
                    begin_stop(&mut self.actions, &mut proc, &spec, now);
                }
                slot.ran = true;
                slot.completed = false;
                match role {
                    Role::Current => slot.proc = Some(proc),
                    Role::Replacement => slot.next = Some(proc),
                }
                if !unwanted && !spec.waits_for_ready() {
                    self.became_online_pid(id, pid, now);
                }
            }
            Err(failure) => {
                log::error!(
                    "{}[{}]: cannot start: {}",
                    spec.name,
                    slot.index,
                    failure.message
                );
                slot.error = Some(failure.message.clone());
                let index = slot.index;
                if role == Role::Replacement {
                    let msg = format!(
                        "{}[{index}]: cannot start the new process: {}",
                        spec.name, failure.message
                    );
                    self.reload_failed(&spec.name, msg, now);
                } else if failure.transient && !self.shutting_down {
                    let wait = slot
                        .resource_backoff
                        .map_or(RESOURCE_BACKOFF, |d| (d * 2).min(RESOURCE_BACKOFF_MAX));
                    slot.resource_backoff = Some(wait);
                    slot.restart_at = Some(now + wait);
                    log::warn!("{}[{index}]: retrying in {}", spec.name, human(wait));
                } else {
                    // A start that fails is a run of zero length: the crash-loop rule
                    // bounds how often we retry.
                    self.unrequested_end(id, Duration::ZERO, ExitKind::Code(failure.code), now);
                }
            }
        }
        self.progress(now);
    }

    /// A main process was reaped. `tree_gone` tells whether anything of its tree is left
    /// (always true when the app does not use `treekill`).
    pub fn exited(&mut self, pid: i32, exit: ExitKind, tree_gone: bool, now: Instant) {
        let Some((id, role)) = self.find_pid(pid) else {
            return;
        };
        let kill_signal;
        let kill_timeout;
        {
            let Some(spec) = self.spec_of(id) else {
                return;
            };
            kill_signal = spec.kill_signal;
            kill_timeout = spec.kill_timeout;
        }
        let shutting_down = self.shutting_down;
        let Some(proc) = self.proc_mut(id, role, pid) else {
            return;
        };
        proc.exited = Some((now, exit));
        if tree_gone {
            self.tree_gone(pid, now);
            return;
        }
        // What the main process left behind is stopped as gracefully as the process
        // itself would have been, before the slot is started again.
        if proc.stopping.is_none() {
            if !proc.requested && !shutting_down {
                log::info!("pid {pid} exited ({exit}) and left processes behind; stopping them");
            }
            let stop = proc.signal_stop(kill_signal, kill_timeout, true, now);
            self.actions.push_back(stop);
        }
    }

    /// Nothing is left of the process tree rooted at `pid`.
    pub fn tree_gone(&mut self, pid: i32, now: Instant) {
        let Some((id, role)) = self.find_pid(pid) else {
            return;
        };
        self.pids.remove(&pid);
        if let Some(pos) = self.draining.iter().position(|(_, p)| p.pid == pid) {
            let (id, old) = self.draining.remove(pos);
            if let Some(slot) = self.slots.get(&id) {
                let exit = old.exited.map_or(ExitKind::Signal(9), |(_, e)| e);
                log::log!(
                    self.routine(log::Level::Info),
                    "{}[{}]: replaced pid {pid} stopped ({exit})",
                    slot.app,
                    slot.index
                );
            }
            self.progress(now);
            return;
        }
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let proc = match role {
            Role::Current => slot.proc.take(),
            Role::Replacement => slot.next.take(),
        };
        let Some(proc) = proc else {
            return;
        };
        let (ended_at, exit) = proc.exited.unwrap_or((now, ExitKind::Signal(9)));
        slot.last_exit = Some(exit);
        let name = slot.app.clone();
        let index = slot.index;
        match role {
            Role::Replacement => {
                // A replacement that was never promoted: only a reload starts one, and
                // that reload cannot go on without it, whoever ended it.
                let why = if proc.requested {
                    format!("{name}[{index}]: the new process was stopped before it was online")
                } else {
                    log::warn!("{name}[{index}]: replacement pid {pid} ended ({exit}) before it was online");
                    format!("{name}[{index}]: the new process exited ({exit}) before it was online")
                };
                self.reload_failed(&name, why, now);
            }
            Role::Current if proc.requested || self.shutting_down => {
                log::info!("{name}[{index}]: pid {pid} stopped ({exit})");
                let after = slot.after_stop;
                slot.after_stop = AfterStop::StayDown;
                if after == AfterStop::Start && !self.shutting_down && slot.wanted {
                    slot.restarts += 1;
                    self.actions.push_back(Action::Spawn {
                        slot: id,
                        role: Role::Current,
                    });
                }
            }
            Role::Current => {
                let ran_for = ended_at.saturating_duration_since(proc.started);
                // A clean exit is news, not trouble (a one-shot job, tini-style use).
                let level = self.routine(if exit == ExitKind::Code(0) {
                    log::Level::Info
                } else {
                    log::Level::Warn
                });
                log::log!(
                    level,
                    "{name}[{index}]: pid {pid} exited ({exit}) after {}",
                    human(ran_for)
                );
                if proc.online_since.is_none() {
                    self.reload_slot_failed(
                        &name,
                        id,
                        format!("{name}[{index}]: exited ({exit}) before it was online"),
                        now,
                    );
                }
                self.unrequested_end(id, ran_for, exit, now);
            }
        }
        self.progress(now);
    }

    /// An instance process (or one of its descendants, mapped by the shell) said READY=1.
    pub fn ready(&mut self, pid: i32, now: Instant) {
        let Some((id, _)) = self.find_pid(pid) else {
            return;
        };
        self.became_online_pid(id, pid, now);
        self.progress(now);
    }

    /// sd_notify `WATCHDOG=1`: the instance is alive.
    pub fn watchdog_ping(&mut self, pid: i32, now: Instant) {
        let Some((id, role)) = self.find_pid(pid) else {
            return;
        };
        let Some(every) = self.spec_of(id).and_then(|s| s.watchdog) else {
            return;
        };
        if let Some(p) = self.proc_mut(id, role, pid) {
            p.watchdog_at = Some(now + every);
        }
    }

    /// sd_notify `STATUS=` text for `list`.
    pub fn set_status_text(&mut self, pid: i32, text: String) {
        if let Some((id, role)) = self.find_pid(pid) {
            if let Some(p) = self.proc_mut(id, role, pid) {
                p.status_text = Some(text);
            }
        }
    }

    /// Deadlines that are due: restarts, SIGKILLs, readiness timeouts, scheduled restarts.
    pub fn tick(&mut self, now: Instant) {
        self.scheduled_due(now);
        self.deadlines.update(&mut self.slots);
        for id in self.deadlines.take_due(now) {
            // Noted as changed, so the next update queues whatever it still waits for.
            let _ = self.slots.get_mut(&id);
            let Some(spec) = self.spec_arc(id) else {
                continue;
            };
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            if let Some(at) = slot.restart_at {
                if at <= now && slot.proc.is_none() {
                    slot.restart_at = None;
                    if slot.wanted && !self.shutting_down {
                        slot.restarts += 1;
                        self.actions.push_back(Action::Spawn {
                            slot: id,
                            role: Role::Current,
                        });
                    }
                }
            }
            for proc in [&mut slot.proc, &mut slot.next].into_iter().flatten() {
                Self::kill_if_due(&mut self.actions, proc, &spec, now);
            }
            let starved = slot
                .proc
                .as_ref()
                .filter(|p| p.is_running())
                .and_then(|p| p.watchdog_at)
                .is_some_and(|at| at <= now);
            if starved && !self.shutting_down {
                log::warn!(
                    "{}[{}]: no WATCHDOG=1 within {}; restarting it",
                    spec.name,
                    slot.index,
                    human(spec.watchdog.unwrap_or_default())
                );
                if let Some(p) = slot.proc.as_mut() {
                    p.watchdog_at = None;
                }
                self.stop_slot(id, &spec, AfterStop::Start, now);
                continue;
            }
            self.tick_health(id, &spec, now);
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            let timed_out = slot
                .proc
                .as_ref()
                .filter(|p| p.main_alive() && p.online_since.is_none() && p.stopping.is_none())
                .and_then(|p| p.ready_deadline)
                .is_some_and(|d| d <= now);
            let next_timed_out = slot
                .next
                .as_ref()
                .filter(|p| p.main_alive() && p.online_since.is_none() && p.stopping.is_none())
                .and_then(|p| p.ready_deadline)
                .is_some_and(|d| d <= now);
            // Only an instance that waits for readiness has a ready deadline, and during a
            // reload a new process that is not ready in time fails the reload (SPEC 5).
            let index = slot.index;
            let not_ready = || {
                format!(
                    "{}[{index}]: the new process was not ready within listen_timeout ({})",
                    spec.name,
                    human(spec.listen_timeout)
                )
            };
            if next_timed_out {
                // A Node worker that does not listen (a queue consumer in cluster mode)
                // never says `listening`: as PM2 does, the reload goes on after
                // listen_timeout. A crash before that still fails it.
                if spec.ready_on_listening() {
                    if let Some(pid) = slot.next.as_ref().map(|p| p.pid) {
                        log::info!(
                            "{}[{index}]: the new process did not listen within listen_timeout ({}); counting it as online",
                            spec.name,
                            human(spec.listen_timeout)
                        );
                        self.became_online_pid(id, pid, now);
                    }
                    continue;
                }
                let msg = not_ready();
                self.reload_failed(&spec.name, msg, now);
                continue;
            }
            if timed_out {
                // Fork mode replaces in place: there is no old process to fall back on,
                // so the new one keeps running (counted online, as outside a reload)
                // while the reload stops there and reports the failure.
                let msg = not_ready();
                self.reload_slot_failed(&spec.name, id, msg, now);
                // A worker that never listens is no mistake: only readiness the user
                // asked for is worth a warning.
                let level = if spec.ready_on_listening() {
                    log::Level::Info
                } else {
                    log::Level::Warn
                };
                log::log!(
                    level,
                    "{}[{index}]: not ready after listen_timeout ({}); counting it as online",
                    spec.name,
                    human(spec.listen_timeout)
                );
                self.became_online(id, now);
            }
        }
        for i in 0..self.draining.len() {
            let (id, _) = self.draining[i];
            if let Some(spec) = self.spec_arc(id) {
                Self::kill_if_due(&mut self.actions, &mut self.draining[i].1, &spec, now);
            }
        }
        self.progress(now);
    }

    /// The earliest moment at which [`Core::tick`] has something to do: the top of the
    /// deadline queue and the slots changed since it was updated, not every slot.
    pub fn next_deadline(&self) -> Option<Instant> {
        let changed = self.slots.pending_changes();
        let mut best: Option<Instant> = self.deadlines.earliest_except(changed);
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        };
        for id in changed {
            consider(self.slots.get(id).and_then(deadlines::slot_deadline));
        }
        for (_, p) in &self.draining {
            consider(p.stopping.filter(|s| !s.killed).map(|s| s.kill_at));
        }
        if !self.shutting_down {
            for app in &self.apps {
                consider(app.cron_at);
                consider(app.watch_at);
            }
        }
        consider(self.memory_deadline());
        best
    }

    /// SIGTERM, SIGINT or SIGQUIT reached runner. The first stops everything gracefully; a
    /// later one, during that stop, kills what is left at once. Copies of one request that
    /// arrive within [`STOP_REPEAT_WINDOW`] of each other count once: `timeout`, `kill 0`
    /// and shells signal runner's pid and then its process group, and that one operator
    /// action must not SIGKILL a draining database.
    pub fn stop_signal(&mut self, signal: Signal, now: Instant) {
        let repeated = self
            .last_stop_signal
            .is_some_and(|at| now.saturating_duration_since(at) < STOP_REPEAT_WINDOW);
        self.last_stop_signal = Some(now);
        if repeated {
            log::debug!(
                "received {} again within {}: the same stop request",
                signal.as_str(),
                human(STOP_REPEAT_WINDOW)
            );
            return;
        }
        log::info!("received {}", signal.as_str());
        let force = self.shutting_down;
        self.shutdown(force, now);
    }

    /// Stop everything, dependents first. A second call with `force` kills what is left
    /// at once.
    pub fn shutdown(&mut self, force: bool, now: Instant) {
        if force && self.shutting_down {
            log::warn!("second stop request: killing every remaining process");
            let actions = &mut self.actions;
            for slot in self.slots.values_mut() {
                for p in [&mut slot.proc, &mut slot.next].into_iter().flatten() {
                    actions.push_back(p.kill_now(true, now));
                }
            }
            for (_, p) in &mut self.draining {
                actions.push_back(p.kill_now(true, now));
            }
            return;
        }
        if !self.shutting_down {
            log::log!(self.routine(log::Level::Info), "stopping every app");
        }
        self.shutting_down = true;
        for slot in self.slots.values_mut() {
            slot.restart_at = None;
        }
        self.progress(now);
    }

    /// The exit code runner will use, once it exits.
    pub fn exit_code(&self) -> i32 {
        self.critical_exit.or(self.first_failure).unwrap_or(0)
    }

    // ----- internals -----

    /// The app a main process (current, replacement or draining) belongs to.
    pub fn owner(&self, pid: i32) -> Option<(&Slot, &AppSpec)> {
        let (id, _) = self.find_pid(pid)?;
        Some((self.slots.get(&id)?, self.spec_of(id)?))
    }

    fn find_pid(&self, pid: i32) -> Option<(SlotId, Role)> {
        let id = *self.pids.get(&pid)?;
        if let Some(slot) = self.slots.get(&id) {
            if slot.proc.as_ref().is_some_and(|p| p.pid == pid) {
                return Some((id, Role::Current));
            }
            if slot.next.as_ref().is_some_and(|p| p.pid == pid) {
                return Some((id, Role::Replacement));
            }
        }
        self.draining
            .iter()
            .any(|(d, p)| *d == id && p.pid == pid)
            .then_some((id, Role::Current))
    }

    fn proc_mut(&mut self, id: SlotId, role: Role, pid: i32) -> Option<&mut Proc> {
        let slot = self.slots.get_mut(&id)?;
        let p = match role {
            Role::Current => slot.proc.as_mut(),
            Role::Replacement => slot.next.as_mut(),
        };
        match p {
            Some(p) if p.pid == pid => Some(p),
            _ => self
                .draining
                .iter_mut()
                .find(|(_, p)| p.pid == pid)
                .map(|(_, p)| p),
        }
    }

    fn kill_if_due(actions: &mut VecDeque<Action>, proc: &mut Proc, spec: &AppSpec, now: Instant) {
        if proc.stopping.is_some_and(|s| !s.killed && s.kill_at <= now) {
            log::warn!(
                "{}: processes of pid {} still running {} after {}; sending SIGKILL",
                spec.name,
                proc.pid,
                human(spec.kill_timeout),
                spec.kill_signal.as_str()
            );
            actions.push_back(proc.kill_now(spec.treekill, now));
        }
    }

    fn became_online(&mut self, id: SlotId, now: Instant) {
        let pid = self
            .slots
            .get(&id)
            .and_then(|s| s.proc.as_ref())
            .map(|p| p.pid);
        if let Some(pid) = pid {
            self.became_online_pid(id, pid, now);
        }
    }

    fn became_online_pid(&mut self, id: SlotId, pid: i32, now: Instant) {
        // Only readiness that was waited for is news; the rest is online at spawn.
        let waited = self.spec_of(id).is_some_and(|s| s.waits_for_ready());
        let watchdog = self.spec_of(id).and_then(|s| s.watchdog);
        let liveness = self
            .spec_of(id)
            .map(|s| health::Liveness::online(s, now))
            .unwrap_or_default();
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let mut changed = false;
        for p in [&mut slot.proc, &mut slot.next].into_iter().flatten() {
            if p.pid == pid && p.online_since.is_none() && p.main_alive() && p.stopping.is_none() {
                p.online_since = Some(now);
                p.watchdog_at = watchdog.map(|w| now + w);
                p.health = liveness;
                changed = true;
                if waited {
                    log::info!("{}[{}]: pid {pid} online", slot.app, slot.index);
                }
            }
        }
        if changed {
            self.instance_online(id, now);
        }
    }

    /// An exit nobody asked for: apply the restart policy.
    fn unrequested_end(&mut self, id: SlotId, ran_for: Duration, exit: ExitKind, now: Instant) {
        let Some(spec) = self.spec_arc(id) else {
            return;
        };
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if self.shutting_down {
            return;
        }
        let ended_for_good = match decide(&spec, &mut slot.restart, ran_for, exit) {
            Verdict::Restart(delay) => {
                if delay.is_zero() {
                    slot.restarts += 1;
                    self.actions.push_back(Action::Spawn {
                        slot: id,
                        role: Role::Current,
                    });
                } else {
                    log::info!(
                        "{}[{}]: restarting in {}",
                        spec.name,
                        slot.index,
                        human(delay)
                    );
                    slot.restart_at = Some(now + delay);
                }
                None
            }
            Verdict::Ended { failed } => {
                // A failure that will not be retried must show, in `list` and to
                // `runner status`: such an instance is errored, not stopped.
                slot.wanted = false;
                slot.errored = failed;
                slot.completed = !failed;
                Some(failed)
            }
            Verdict::Errored => {
                log::error!(
                    "{}[{}]: {} consecutive runs shorter than min_uptime ({}); giving up (errored)",
                    spec.name,
                    slot.index,
                    slot.restart.unstable_runs,
                    human(spec.min_uptime)
                );
                slot.wanted = false;
                slot.errored = true;
                Some(true)
            }
        };
        if let Some(failed) = ended_for_good {
            if failed && self.first_failure.is_none() {
                self.first_failure = Some(exit.as_code());
            }
            if spec.critical {
                let level = self.routine(if failed {
                    log::Level::Warn
                } else {
                    log::Level::Info
                });
                log::log!(
                    level,
                    "{}: critical app ended ({exit}); stopping everything",
                    spec.name
                );
                self.critical_exit = Some(exit.as_code());
                self.shutdown(false, now);
            }
        }
    }

    /// Moves starts and stops along: apps whose dependencies came online start, apps
    /// whose dependents are gone stop, and runner exits when nothing is left.
    fn progress(&mut self, now: Instant) {
        self.abandon_reloads(now);
        self.watch_follow_up(now);
        if self.shutting_down {
            self.advance_shutdown(now);
        } else {
            self.start_ready_apps(now);
        }
        self.remove_deleted();
        self.check_waiters();
        self.check_finished();
        self.deadlines.update(&mut self.slots);
    }

    fn app_online(&self, name: &str) -> bool {
        self.apps
            .iter()
            .find(|a| a.spec.name == name)
            .is_some_and(|a| {
                a.slots.iter().all(|id| {
                    self.slots
                        .get(id)
                        .and_then(|s| s.proc.as_ref())
                        .is_some_and(|p| p.is_online())
                })
            })
    }

    /// Whether dependency `name` meets `cond` now.
    fn dependency_met(&self, name: &str, cond: DependCondition) -> bool {
        let Some(app) = self.apps.iter().find(|a| a.spec.name == name) else {
            return false;
        };
        let all = |f: &dyn Fn(&Slot) -> bool| {
            app.slots.iter().all(|id| self.slots.get(id).is_some_and(f))
        };
        match cond {
            DependCondition::Online => self.app_online(name),
            DependCondition::Started => all(&|s| s.ran),
            DependCondition::Completed => all(&|s| s.completed && !s.has_process()),
        }
    }

    /// Why dependency `name` can never meet `cond`, when it has failed for good: one of
    /// its instances is errored (it failed, ran out of restarts, or its own dependency
    /// failed), or it completed while its dependent waits for it to be online. A
    /// dependency stopped on request is not a failure: its dependents keep waiting.
    fn dependency_failed(&self, name: &str, cond: DependCondition) -> Option<String> {
        let app = self.apps.iter().find(|a| a.spec.name == name)?;
        app.slots.iter().find_map(|id| {
            let s = self.slots.get(id)?;
            if s.has_process() || s.restart_at.is_some() || app.awaiting.contains(id) {
                return None;
            }
            let exit = s
                .last_exit
                .map_or_else(|| "did not start".to_string(), |e| format!("exited ({e})"));
            if s.errored {
                Some(format!("{name}[{}] {exit} and will not run again", s.index))
            } else if s.completed && cond == DependCondition::Online {
                Some(format!(
                    "{name}[{}] completed ({exit}) and will never be online; \
                     use {{ name = \"{name}\", condition = \"completed_successfully\" }}",
                    s.index
                ))
            } else {
                None
            }
        })
    }

    fn start_ready_apps(&mut self, _now: Instant) {
        // A blocked app is marked errored, which can block its own dependents in turn:
        // repeat until nothing changes (at most once per app).
        for _ in 0..=self.apps.len() {
            if !self.start_ready_apps_once() {
                break;
            }
        }
    }

    /// One pass of [`Core::start_ready_apps`]; true when some app was newly blocked.
    /// Only the slots in an app's `awaiting` set are looked at: with every instance
    /// started, a pass costs O(apps), not O(instances).
    fn start_ready_apps_once(&mut self) -> bool {
        let mut blocked_any = false;
        for ai in 0..self.apps.len() {
            let app = &self.apps[ai];
            let ready = |id: &SlotId| {
                self.slots
                    .get(id)
                    .is_some_and(|s| s.wanted && !s.has_process())
            };
            if !app.awaiting.iter().any(ready) {
                continue;
            }
            let spec = Arc::clone(&app.spec);
            let mut deps_ok = true;
            let mut blocked = None;
            for d in &spec.depends_on {
                let cond = spec.depend_condition(d);
                if self.dependency_met(d, cond) {
                    continue;
                }
                deps_ok = false;
                if let Some(why) = self.dependency_failed(d, cond) {
                    blocked = Some(why);
                    break;
                }
            }
            if !deps_ok && blocked.is_none() {
                continue;
            }
            let ids: Vec<SlotId> = self.apps[ai].awaiting.iter().copied().collect();
            if let Some(why) = &blocked {
                blocked_any = true;
                log::error!("{}: not starting: its dependency {why}", spec.name);
            }
            let message = blocked.map(|why| format!("not started: dependency {why}"));
            for id in ids {
                let Some(slot) = self.slots.get_mut(&id) else {
                    continue;
                };
                if !slot.wanted || slot.has_process() {
                    continue;
                }
                self.apps[ai].awaiting.remove(&id);
                match &message {
                    Some(message) => {
                        slot.wanted = false;
                        slot.errored = true;
                        slot.error = Some(message.clone());
                    }
                    None => self.actions.push_back(Action::Spawn {
                        slot: id,
                        role: Role::Current,
                    }),
                }
            }
        }
        blocked_any
    }

    /// Marks a slot as waiting to start (or no longer).
    pub(super) fn set_awaiting(&mut self, id: SlotId, on: bool) {
        if let Some(ai) = self.app_ix(id) {
            let set = &mut self.apps[ai].awaiting;
            if on {
                set.insert(id);
            } else {
                set.remove(&id);
            }
        }
    }

    /// Whether anything of `app` still runs (current, replacement or draining).
    fn app_has_process(&self, name: &str) -> bool {
        self.slots
            .values()
            .any(|s| s.app == name && s.has_process())
            || self
                .draining
                .iter()
                .any(|(id, _)| self.slots.get(id).is_some_and(|s| s.app == name))
    }

    fn advance_shutdown(&mut self, now: Instant) {
        for ai in 0..self.apps.len() {
            if self.apps[ai].shutdown_sent {
                continue;
            }
            let name = self.apps[ai].spec.name.clone();
            let dependents_gone = self
                .apps
                .iter()
                .filter(|a| a.spec.depends_on.contains(&name))
                .all(|a| !self.app_has_process(&a.spec.name));
            if !dependents_gone {
                continue;
            }
            self.apps[ai].shutdown_sent = true;
            let spec = self.apps[ai].spec.clone();
            for id in self.apps[ai].slots.clone() {
                self.stop_slot(id, &spec, AfterStop::StayDown, now);
            }
        }
    }

    /// Begins a graceful stop of whatever process the slot has.
    fn stop_slot(&mut self, id: SlotId, spec: &AppSpec, after: AfterStop, now: Instant) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        slot.restart_at = None;
        slot.after_stop = after;
        for p in [&mut slot.proc, &mut slot.next].into_iter().flatten() {
            begin_stop(&mut self.actions, p, spec, now);
        }
    }

    fn check_finished(&mut self) {
        if self.exited {
            return;
        }
        if self.apps.iter().any(|a| a.reload.is_some()) {
            return;
        }
        let pending_spawn = self
            .actions
            .iter()
            .any(|a| matches!(a, Action::Spawn { .. }));
        if pending_spawn || !self.draining.is_empty() {
            return;
        }
        if self.slots.values().any(|s| s.has_process()) {
            return;
        }
        if !self.shutting_down && self.slots.values().any(|s| s.restart_at.is_some()) {
            return;
        }
        if !self.shutting_down && self.apps.iter().any(|a| self.may_still_start(a)) {
            return;
        }
        // A cron job that has ended runs again at its next match.
        if !self.shutting_down && self.apps.iter().any(|a| a.spec.cron_restart.is_some()) {
            return;
        }
        self.exited = true;
        let code = self.exit_code();
        log::log!(
            self.routine(log::Level::Info),
            "every app has ended; exiting with code {code}"
        );
        self.actions.push_back(Action::Exit(code));
    }

    /// An app whose slots want to run and whose dependencies may still meet their
    /// conditions.
    fn may_still_start(&self, app: &App) -> bool {
        !app.awaiting.is_empty()
            && app
                .spec
                .depends_on
                .iter()
                .all(|d| self.app_may_reach(d, app.spec.depend_condition(d), 0))
    }

    /// Whether app `name` meets `cond` already or still may.
    fn app_may_reach(&self, name: &str, cond: DependCondition, depth: usize) -> bool {
        // Config validation rejects cycles; the depth bound keeps a bug from recursing forever.
        if depth > self.apps.len() {
            return false;
        }
        if self.dependency_met(name, cond) {
            return true;
        }
        let Some(app) = self.apps.iter().find(|a| a.spec.name == name) else {
            return false;
        };
        let alive = app.slots.iter().all(|id| {
            self.slots.get(id).is_some_and(|s| {
                s.has_process()
                    || s.restart_at.is_some()
                    || app.awaiting.contains(id)
                    || (cond == DependCondition::Started && s.ran)
                    || (cond == DependCondition::Completed && s.completed)
            })
        });
        alive
            && app
                .spec
                .depends_on
                .iter()
                .all(|d| self.app_may_reach(d, app.spec.depend_condition(d), depth + 1))
    }
}

impl Slot {
    fn new(id: SlotId, index: u32, app: &str, app_ix: usize) -> Slot {
        Slot {
            id,
            index,
            app: app.to_string(),
            app_ix,
            proc: None,
            next: None,
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

/// Marks `proc` as stopped on request and, unless a stop is already under way, sends the
/// app's kill signal and arms the SIGKILL deadline.
fn begin_stop(actions: &mut VecDeque<Action>, proc: &mut Proc, spec: &AppSpec, now: Instant) {
    proc.requested = true;
    if proc.main_alive() && proc.stopping.is_none() {
        actions.push_back(proc.signal_stop(
            spec.kill_signal,
            spec.kill_timeout,
            spec.treekill,
            now,
        ));
    }
}

/// Every stop of a process goes through these two, which mark it and return the action
/// to perform: the graceful one (its signal now, SIGKILL armed for `kill_timeout` later,
/// see `Core::kill_if_due`) and the immediate one.
impl Proc {
    fn signal_stop(
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

    fn kill_now(&mut self, tree: bool, now: Instant) -> Action {
        self.stopping = Some(Stopping {
            kill_at: now,
            killed: true,
        });
        Action::Kill {
            pid: self.pid,
            tree,
        }
    }
}

/// Powers of 1024, as `list` and log lines show sizes: `512B`, `12.4M`, `512M`, `1.5G`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    // 1023.5 and above would print as "1024": use the next unit.
    while v >= 1023.5 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v >= 99.95 {
        format!("{v:.0}{}", UNITS[unit])
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

/// A duration as people read it in a log line.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
