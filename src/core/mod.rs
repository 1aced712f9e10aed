//! The lifecycle of apps and instances as a pure state machine.
//!
//! The shell (`supervisor`) feeds it events — a process was spawned, exited, said it was
//! ready, a deadline passed, runner was asked to stop — together with the current time,
//! and performs the [`Action`]s it queues. Nothing in here reads a clock, spawns, signals
//! or waits, so every decision is unit-tested with a fake clock (see `tests.rs`).
//!
//! This file holds the model (apps, slots, the action queue) and [`Core::progress`],
//! which every event ends in. Each topic has its own file and calls the others only
//! through their `pub(super)` functions (what is private here is shared by all of them):
//!
//! | file | owns |
//! |---|---|
//! | `process.rs` | `Proc` and `Slot`; every stop of a process (graceful, forced, SIGKILL when due) |
//! | `lifecycle.rs` | what the shell reports about a process: spawned, exited, tree gone, ready |
//! | `policy.rs` | an exit nobody asked for: restart, wait, or give up |
//! | `timers.rs` | `tick` and `next_deadline`: restarts, kills, readiness and watchdog timeouts |
//! | `dependencies.rs` | start order: which waiting slots may start (`depends_on`) |
//! | `requests.rs` | operator requests and their replies once done |
//! | `reload.rs` | reload plans: one slot at a time, replacement first in cluster mode |
//! | `shutdown.rs` | stopping runner: dependents first, a second signal kills, the exit code |
//! | `signals.rs`, `memory.rs`, `health.rs`, `scheduled.rs` | signals to runner, memory limit, health checks, cron and watch |

mod deadlines;
mod dependencies;
mod health;
mod human;
mod lifecycle;
pub(crate) mod memory;
mod policy;
mod process;
mod reload;
mod requests;
mod scheduled;
mod shutdown;
mod signals;
mod slots;
mod status;
#[cfg(test)]
mod tests;
mod timers;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::config::AppSpec;
pub use human::{human, human_bytes};
pub use lifecycle::{RESOURCE_BACKOFF, RESOURCE_BACKOFF_MAX};
pub use policy::{decide, ExitKind, RestartState, Verdict};
use process::AfterStop;
pub use process::{Proc, Slot};
pub use shutdown::STOP_REPEAT_WINDOW;
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

impl Proc {}

impl Slot {}

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
    reload: Option<reload::ReloadPlan>,
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
    waiters: Vec<requests::Waiter>,
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

    /// How many slots there are (O(1), unlike counting `slots()`).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
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
            if slot.replacement.as_ref().is_some_and(|p| p.pid == pid) {
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
            Role::Replacement => slot.replacement.as_mut(),
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
}
