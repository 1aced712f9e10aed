//! Reload plans: an app's slots replaced one at a time (`reload`, `apply`, SIGHUP, cron,
//! watch, memory and health restarts), never two plans for one app. Cluster mode starts
//! the replacement and stops the old process once the new one is online; fork mode stops,
//! then starts. A failed replacement ends the plan and keeps the old processes.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Action, AfterStop, Core, Role, SlotId};
use crate::config::ExecMode;

/// One app's reload: slots are replaced one at a time, never two reloads at once.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ReloadPlan {
    queue: VecDeque<SlotId>,
    current: Option<SlotId>,
    error: Option<String>,
    /// Replacing the slot's process whatever its state (memory restarts), not only when online.
    quiet: bool,
}

impl Core {
    /// Everything SIGHUP with `on_sighup = "reload"` asks for: reload every app not
    /// already reloading.
    pub fn reload_all(&mut self, now: Instant) {
        let names: Vec<(String, VecDeque<SlotId>)> = self
            .apps
            .iter()
            .filter(|a| a.reload.is_none())
            .map(|a| (a.spec.name.clone(), a.slots.iter().copied().collect()))
            .collect();
        for (name, queue) in names {
            self.begin_reload(&name, queue, false, now);
        }
        self.progress(now);
    }

    /// Restarts one instance gracefully outside any operator request (memory limit,
    /// failed health checks): a one-slot reload, so it never interleaves with another
    /// reload of the app, and in cluster mode the replacement starts first.
    pub(super) fn replace_instance(&mut self, id: SlotId, now: Instant) {
        let Some(name) = self.slots.get(&id).map(|s| s.app.clone()) else {
            return;
        };
        if self
            .apps
            .iter()
            .any(|a| a.spec.name == name && a.reload.is_some())
        {
            return;
        }
        // Fork mode counts the restart when the slot starts again (after its stop);
        // a quiet cluster replacement is counted here, once.
        let cluster = self
            .spec_of(id)
            .is_some_and(|s| s.exec_mode == ExecMode::Cluster);
        if let Some(slot) = self.slots.get_mut(&id).filter(|_| cluster) {
            slot.restarts += 1;
        }
        self.begin_reload(&name, VecDeque::from([id]), true, now);
        self.progress(now);
    }

    /// Begins a plan replacing `queue`'s slots of app `name`, one at a time. A `quiet`
    /// plan (a memory or health restart) is neither counted nor logged as a reload.
    pub(super) fn begin_reload(
        &mut self,
        name: &str,
        queue: VecDeque<SlotId>,
        quiet: bool,
        now: Instant,
    ) {
        if let Some(app) = self.apps.iter_mut().find(|a| a.spec.name == name) {
            app.reload = Some(ReloadPlan {
                queue,
                current: None,
                error: None,
                quiet,
            });
        }
        self.reload_step(name, now);
    }

    /// Starts replacing the next slot of the plan, or ends the plan.
    fn reload_step(&mut self, name: &str, now: Instant) {
        loop {
            let Some(app) = self.apps.iter_mut().find(|a| a.spec.name == name) else {
                return;
            };
            let spec = app.spec.clone();
            let Some(plan) = app.reload.as_mut() else {
                return;
            };
            if plan.current.is_some() {
                return;
            }
            let Some(id) = plan.queue.pop_front() else {
                self.finish_reload(name);
                return;
            };
            plan.current = Some(id);
            let quiet = plan.quiet;
            if self.shutting_down {
                self.finish_reload(name);
                return;
            }
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            let serving = slot
                .proc
                .as_ref()
                .is_some_and(|p| p.main_alive() && p.stopping.is_none());
            if !serving {
                // Nothing to replace: start it and wait until it is online.
                self.revive(id);
                self.start_ready_apps(now);
                return;
            }
            if spec.exec_mode == ExecMode::Cluster {
                // Fork mode counts its restart when the slot starts again.
                if !quiet {
                    slot.restarts += 1;
                }
                self.actions.push_back(Action::Spawn {
                    slot: id,
                    role: Role::Replacement,
                });
            } else {
                self.stop_slot(id, &spec, AfterStop::Start, now);
            }
            return;
        }
    }

    /// Ends the plan: counts it, logs how it went and tells the requests waiting for it.
    fn finish_reload(&mut self, name: &str) {
        let Some(app) = self.apps.iter_mut().find(|a| a.spec.name == name) else {
            return;
        };
        let Some(plan) = app.reload.take() else {
            return;
        };
        if !plan.quiet {
            app.reloads += 1;
            app.reload_failures += u64::from(plan.error.is_some());
        }
        if let Some(err) = &plan.error {
            log::error!("{name}: reload failed: {err}");
        } else if !plan.quiet {
            log::info!("{name}: reloaded");
        }
        self.reload_ended(name, plan.error.as_deref());
    }

    /// Called when a slot's process (current or replacement) came online.
    pub(super) fn instance_online(&mut self, id: SlotId, now: Instant) {
        let Some(spec) = self.spec_arc(id) else {
            return;
        };
        // A replacement that is online takes over; the old process drains in the background.
        if let Some(slot) = self.slots.get_mut(&id) {
            if slot
                .replacement
                .as_ref()
                .is_some_and(|p| p.online_since.is_some())
            {
                let old = slot.proc.take();
                slot.proc = slot.replacement.take();
                if let Some(mut old) = old {
                    self.actions.extend(old.stop_on_request(&spec, now));
                    self.draining.push((id, old));
                }
            }
        }
        let name = spec.name.clone();
        let is_current = self
            .apps
            .iter()
            .find(|a| a.spec.name == name)
            .and_then(|a| a.reload.as_ref())
            .is_some_and(|p| p.current == Some(id));
        let promoted = self.slots.get(&id).is_some_and(|s| s.replacement.is_none());
        if is_current && promoted {
            if let Some(plan) = self
                .apps
                .iter_mut()
                .find(|a| a.spec.name == name)
                .and_then(|a| a.reload.as_mut())
            {
                plan.current = None;
            }
            self.reload_step(&name, now);
        }
    }

    /// The replacement failed: stop it, keep the old processes, end the plan.
    pub(super) fn reload_failed(&mut self, name: &str, error: String, now: Instant) {
        let Some(app) = self.apps.iter_mut().find(|a| a.spec.name == name) else {
            return;
        };
        let spec = app.spec.clone();
        let Some(plan) = app.reload.as_mut() else {
            return;
        };
        plan.error = Some(error);
        plan.queue.clear();
        let current = plan.current.take();
        if let Some(id) = current {
            if let Some(slot) = self.slots.get_mut(&id) {
                if let Some(p) = slot.replacement.as_mut() {
                    self.actions.extend(p.stop_on_request(&spec, now));
                }
            }
        }
        self.finish_reload(name);
    }

    /// Ends the reloads that can no longer finish: runner is stopping, or the slot being
    /// replaced was stopped or deleted meanwhile. Without this the plan would wait for
    /// an instance that never comes online, refuse every later reload and keep runner
    /// from exiting.
    pub(super) fn abandon_reloads(&mut self, now: Instant) {
        let mut stuck = Vec::new();
        for app in &self.apps {
            let Some(plan) = &app.reload else {
                continue;
            };
            let name = &app.spec.name;
            if self.shutting_down {
                stuck.push((name.clone(), format!("{name}: runner is stopping")));
            } else if let Some(id) = plan.current {
                match self.slots.get(&id) {
                    Some(slot) if slot.wanted && !slot.deleting => {}
                    Some(slot) => stuck.push((
                        name.clone(),
                        format!("{name}[{}] was stopped during the reload", slot.index),
                    )),
                    None => stuck.push((name.clone(), format!("{name}: instance was deleted"))),
                }
            }
        }
        for (name, why) in stuck {
            self.reload_failed(&name, why, now);
        }
    }

    /// A slot being reloaded in fork mode lost its new process before it was online.
    pub(super) fn reload_slot_failed(
        &mut self,
        name: &str,
        id: SlotId,
        error: String,
        now: Instant,
    ) {
        let current = self
            .apps
            .iter()
            .find(|a| a.spec.name == name)
            .and_then(|a| a.reload.as_ref())
            .and_then(|p| p.current);
        if current == Some(id) {
            self.reload_failed(name, error, now);
        }
    }
}
