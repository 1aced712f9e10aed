//! What comes due, and when: restarts after a backoff, SIGKILLs after `kill_timeout`,
//! readiness (`listen_timeout`) and watchdog timeouts, health checks, cron and watch
//! restarts, memory checks. The queue of per-slot deadlines itself is `deadlines.rs`.

use std::time::Instant;

use super::{deadlines, human, Action, AfterStop, Core, Role};

impl Core {
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
            for proc in [&mut slot.proc, &mut slot.replacement]
                .into_iter()
                .flatten()
            {
                self.actions.extend(proc.kill_if_due(&spec, now));
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
            let timed_out = slot.proc.as_ref().is_some_and(|p| p.ready_overdue(now));
            let next_timed_out = slot
                .replacement
                .as_ref()
                .is_some_and(|p| p.ready_overdue(now));
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
                    if let Some(pid) = slot.replacement.as_ref().map(|p| p.pid) {
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
                self.actions
                    .extend(self.draining[i].1.kill_if_due(&spec, now));
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
}
