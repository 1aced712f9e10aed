//! Start order: which slots waiting to start may start now. A slot waits in its app's
//! `awaiting` set until every `depends_on` app meets its condition (online, started or
//! completed); a dependency that can never meet it blocks its dependents (errored).

use std::sync::Arc;
use std::time::Instant;

use super::{Action, AfterStop, App, Core, Role, Slot, SlotId};
use crate::config::DependCondition;

impl Core {
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

    pub(super) fn start_ready_apps(&mut self, _now: Instant) {
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

    /// Makes a slot that has no process start again, with a fresh restart budget.
    pub(super) fn revive(&mut self, id: SlotId) {
        let mut awaits = false;
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.wanted = true;
            slot.errored = false;
            slot.held = false;
            slot.restart = Default::default();
            if slot.stop_under_way() {
                // Start again once the stop is done.
                slot.after_stop = AfterStop::Start;
            } else if !slot.has_process() && slot.restart_at.is_none() {
                awaits = true;
            }
        }
        if awaits {
            self.set_awaiting(id, true);
        }
    }

    /// An app whose slots want to run and whose dependencies may still meet their
    /// conditions.
    pub(super) fn may_still_start(&self, app: &App) -> bool {
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
