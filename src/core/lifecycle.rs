//! A process's life as the shell reports it: spawned (or not), ready, exited, its tree
//! gone; and what an exit nobody asked for leads to (the verdict of `policy.rs`).

use std::time::{Duration, Instant};

use super::{
    decide, health, human, Action, AfterStop, Core, ExitKind, Proc, Role, SlotId, SpawnFailure,
    Verdict,
};

/// First wait after a transient spawn failure; doubles up to [`RESOURCE_BACKOFF_MAX`].
pub const RESOURCE_BACKOFF: Duration = Duration::from_secs(1);
pub const RESOURCE_BACKOFF_MAX: Duration = Duration::from_secs(30);

impl Core {
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
                    self.actions.extend(proc.stop_on_request(&spec, now));
                }
                slot.ran = true;
                slot.completed = false;
                match role {
                    Role::Current => slot.proc = Some(proc),
                    Role::Replacement => slot.replacement = Some(proc),
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
            Role::Replacement => slot.replacement.take(),
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

    pub(super) fn became_online(&mut self, id: SlotId, now: Instant) {
        let pid = self
            .slots
            .get(&id)
            .and_then(|s| s.proc.as_ref())
            .map(|p| p.pid);
        if let Some(pid) = pid {
            self.became_online_pid(id, pid, now);
        }
    }

    pub(super) fn became_online_pid(&mut self, id: SlotId, pid: i32, now: Instant) {
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
        for p in [&mut slot.proc, &mut slot.replacement]
            .into_iter()
            .flatten()
        {
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
}
