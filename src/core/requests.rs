//! Operator requests (start, stop, restart, reload, delete, scale, signal, apply). A
//! request is answered once what it asked for is done: its [`Waiter`] is checked after
//! every event.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::{Action, AfterStop, Core, RequestId, SlotId, Status};
use crate::config::AppSpec;

#[derive(Debug, Clone, PartialEq)]
enum Goal {
    /// None of these processes is left (a `start` that came meanwhile may have started
    /// new ones: they are not this request's business).
    Stopped(Vec<i32>),
    /// Every slot is online, or has ended for good (which is reported as a failure).
    Online,
    /// The slots no longer exist.
    Gone,
    /// The reloads of these apps have finished.
    Reloaded(Vec<String>),
    /// `apply`: the changed apps' reloads have finished, the waiter's slots of new apps
    /// are settled (as for `Online`) and those of removed apps are gone.
    Applied {
        reloads: Vec<String>,
        removed: Vec<SlotId>,
    },
}

/// A control request waiting for its goal.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Waiter {
    request: RequestId,
    verb: &'static str,
    what: String,
    slots: Vec<SlotId>,
    goal: Goal,
    errors: Vec<String>,
}

impl Core {
    /// The slots a TARGET names: an app name, an instance id, a namespace, or `all`.
    pub fn resolve(&self, target: &str) -> Result<Vec<SlotId>, String> {
        if target == "all" {
            return Ok(self.slots.keys().copied().collect());
        }
        if let Some(app) = self.apps.iter().find(|a| a.spec.name == target) {
            return Ok(app.slots.clone());
        }
        if let Ok(id) = target.parse::<SlotId>() {
            return if self.slots.contains_key(&id) {
                Ok(vec![id])
            } else {
                Err(format!("no instance with id {id}"))
            };
        }
        let in_ns: Vec<SlotId> = self
            .apps
            .iter()
            .filter(|a| a.spec.namespace == target)
            .flat_map(|a| a.slots.iter().copied())
            .collect();
        if !in_ns.is_empty() {
            return Ok(in_ns);
        }
        Err(format!("no app, instance id or namespace named `{target}`"))
    }

    fn reply(&mut self, request: RequestId, result: Result<String, String>) {
        let (ok, message) = match result {
            Ok(m) => (true, m),
            Err(m) => (false, m),
        };
        self.actions.push_back(Action::Reply {
            request,
            ok,
            message,
        });
    }

    fn wait(
        &mut self,
        request: RequestId,
        verb: &'static str,
        target: &str,
        slots: Vec<SlotId>,
        goal: Goal,
    ) {
        self.waiters.push(Waiter {
            request,
            verb,
            what: target.to_string(),
            slots,
            goal,
            errors: Vec::new(),
        });
    }

    /// `runner stop TARGET`: graceful stop; the slots stay in `list` as `stopped`.
    pub fn request_stop(&mut self, request: RequestId, target: &str, now: Instant) {
        let ids = match self.resolve(target) {
            Ok(ids) => ids,
            Err(e) => return self.reply(request, Err(e)),
        };
        let pids = ids
            .iter()
            .filter_map(|id| self.slots.get(id))
            .flat_map(|s| [s.proc.as_ref(), s.replacement.as_ref()])
            .flatten()
            .map(|p| p.pid)
            .chain(
                self.draining
                    .iter()
                    .filter(|(id, _)| ids.contains(id))
                    .map(|(_, p)| p.pid),
            )
            .collect();
        for id in &ids {
            self.stop_for_good(*id, now);
        }
        self.wait(request, "stopped", target, ids, Goal::Stopped(pids));
        self.progress(now);
    }

    fn stop_for_good(&mut self, id: SlotId, now: Instant) {
        let Some(spec) = self.spec_arc(id) else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.wanted = false;
            slot.restart_at = None;
            slot.held = true;
        }
        self.set_awaiting(id, false);
        self.stop_slot(id, &spec, AfterStop::StayDown, now);
    }

    /// Stops the slot for good and forgets it once its process is gone.
    fn stop_and_forget(&mut self, id: SlotId, now: Instant) {
        self.stop_for_good(id, now);
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.deleting = true;
            self.deleting.insert(id);
        }
    }

    /// The shape of most requests: `act` on each slot the target names, then answer once
    /// `goal` is reached.
    fn on_each_slot(
        &mut self,
        request: RequestId,
        target: &str,
        (verb, goal): (&'static str, Goal),
        now: Instant,
        act: fn(&mut Core, SlotId, Instant),
    ) {
        let ids = match self.resolve(target) {
            Ok(ids) => ids,
            Err(e) => return self.reply(request, Err(e)),
        };
        for id in &ids {
            act(self, *id, now);
        }
        self.wait(request, verb, target, ids, goal);
        self.progress(now);
    }

    /// `runner start TARGET`: starts what is not running (errored included).
    pub fn request_start(&mut self, request: RequestId, target: &str, now: Instant) {
        let goal = ("started", Goal::Online);
        self.on_each_slot(request, target, goal, now, |core, id, _| core.revive(id));
    }

    /// `runner restart TARGET`: stop, then start (downtime allowed).
    pub fn request_restart(&mut self, request: RequestId, target: &str, now: Instant) {
        let goal = ("restarted", Goal::Online);
        self.on_each_slot(request, target, goal, now, Core::restart_slot);
    }

    fn restart_slot(&mut self, id: SlotId, now: Instant) {
        let Some(spec) = self.spec_arc(id) else {
            return;
        };
        self.revive(id);
        let running = self.slots.get(&id).is_some_and(|s| s.proc.is_some());
        if running {
            self.stop_slot(id, &spec, AfterStop::Start, now);
        }
    }

    /// `runner reload TARGET`: one instance at a time; cluster apps start the replacement
    /// first and stop the old process once the new one is online.
    pub fn request_reload(&mut self, request: RequestId, target: &str, now: Instant) {
        let ids = match self.resolve(target) {
            Ok(ids) => ids,
            Err(e) => return self.reply(request, Err(e)),
        };
        let mut apps: Vec<String> = Vec::new();
        for id in &ids {
            if let Some(slot) = self.slots.get(id) {
                if !apps.contains(&slot.app) {
                    apps.push(slot.app.clone());
                }
            }
        }
        if let Some(busy) = self
            .apps
            .iter()
            .find(|a| apps.contains(&a.spec.name) && a.reload.is_some())
        {
            let msg = format!("a reload of {} is already in progress", busy.spec.name);
            return self.reply(request, Err(msg));
        }
        // A set: `reload all` of 5,000 instances looked each one up in a list of 5,000.
        let wanted: std::collections::HashSet<SlotId> = ids.iter().copied().collect();
        for name in &apps {
            let queue: VecDeque<SlotId> = self
                .apps
                .iter()
                .find(|a| &a.spec.name == name)
                .map(|a| {
                    a.slots
                        .iter()
                        .copied()
                        .filter(|id| wanted.contains(id))
                        .collect()
                })
                .unwrap_or_default();
            self.begin_reload(name, queue, false, now);
        }
        self.wait(request, "reloaded", target, ids, Goal::Reloaded(apps));
        self.progress(now);
    }

    /// `runner delete TARGET`: stop, then forget the slots (and apps left without any).
    pub fn request_delete(&mut self, request: RequestId, target: &str, now: Instant) {
        let goal = ("deleted", Goal::Gone);
        self.on_each_slot(request, target, goal, now, Core::stop_and_forget);
    }

    /// `runner scale NAME N`.
    pub fn request_scale(&mut self, request: RequestId, name: &str, n: u32, now: Instant) {
        let Some(ai) = self.apps.iter().position(|a| a.spec.name == name) else {
            return self.reply(request, Err(format!("no app named `{name}`")));
        };
        if n == 0 {
            return self.reply(
                request,
                Err("scale needs at least 1 instance (use stop to stop an app)".into()),
            );
        }
        if n > crate::config::MAX_INSTANCES {
            return self.reply(
                request,
                Err(format!(
                    "scale to {n} instances refused: the limit is {} per app",
                    crate::config::MAX_INSTANCES
                )),
            );
        }
        let have = self.apps[ai].slots.len() as u32;
        let mut touched = Vec::new();
        let goal;
        if n > have {
            for index in have..n {
                let id = self.add_slot(index, name, ai);
                self.apps[ai].slots.push(id);
                self.apps[ai].awaiting.insert(id);
                touched.push(id);
            }
            goal = Goal::Online;
        } else {
            let remove: Vec<SlotId> = self.apps[ai].slots.split_off(n as usize);
            for id in &remove {
                self.stop_and_forget(*id, now);
            }
            // The slots leave the app's list now so `instances` reads right at once;
            // they stay in `slots` until their process is gone.
            touched = remove;
            goal = Goal::Gone;
        }
        Arc::make_mut(&mut self.apps[ai].spec).instances = n;
        self.wait(request, "scaled", &format!("{name} to {n}"), touched, goal);
        self.progress(now);
    }

    /// `runner signal SIG TARGET`: to each main process; answered at once.
    pub fn request_signal(&mut self, request: RequestId, signal: Signal, target: &str) {
        let ids = match self.resolve(target) {
            Ok(ids) => ids,
            Err(e) => return self.reply(request, Err(e)),
        };
        let mut n = 0;
        for id in ids {
            if let Some(slot) = self.slots.get(&id) {
                for p in [&slot.proc, &slot.replacement].into_iter().flatten() {
                    if p.main_alive() {
                        self.actions.push_back(Action::Forward {
                            pid: p.pid,
                            signal: signal as i32,
                        });
                        n += 1;
                    }
                }
            }
        }
        if n == 0 {
            self.reply(request, Err(format!("no running process in `{target}`")));
        } else {
            self.reply(
                request,
                Ok(format!(
                    "sent {} to {n} process(es) of {target}",
                    signal.as_str()
                )),
            );
        }
    }

    /// `runner apply`: the new file's apps. New apps start, removed apps are deleted,
    /// changed apps take the new settings and are reloaded. Answered when all of that is
    /// done, like the other actions.
    pub fn apply(&mut self, request: RequestId, specs: Vec<AppSpec>, now: Instant) {
        let mut added = Vec::new();
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        let new_names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        for app in &self.apps {
            if !new_names.contains(&app.spec.name) {
                removed.push(app.spec.name.clone());
            }
        }
        let mut gone = Vec::new();
        for name in &removed {
            let ids = self
                .apps
                .iter()
                .find(|a| &a.spec.name == name)
                .map(|a| a.slots.clone())
                .unwrap_or_default();
            for id in ids {
                self.stop_and_forget(id, now);
                gone.push(id);
            }
        }
        for spec in specs {
            match self.apps.iter().position(|a| a.spec.name == spec.name) {
                None => {
                    added.push(spec.name.clone());
                    self.add_app(spec);
                }
                Some(ai) if *self.apps[ai].spec != spec => {
                    changed.push(spec.name.clone());
                    // The shell arms the new schedule from the new expression.
                    self.apps[ai].cron_at = None;
                    let old_n = self.apps[ai].slots.len() as u32;
                    let n = spec.instances;
                    self.apps[ai].spec = Arc::new(spec.clone());
                    if n > old_n {
                        for index in old_n..n {
                            let id = self.add_slot(index, &spec.name, ai);
                            self.apps[ai].slots.push(id);
                            self.apps[ai].awaiting.insert(id);
                        }
                    } else if n < old_n {
                        for id in self.apps[ai].slots.split_off(n as usize) {
                            self.stop_and_forget(id, now);
                            gone.push(id);
                        }
                    }
                    if self.apps[ai].reload.is_none() {
                        let queue = self.apps[ai].slots.iter().copied().collect();
                        self.begin_reload(&spec.name, queue, false, now);
                    }
                }
                Some(_) => {}
            }
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let msg = format!(
            "applied: added: {}; reloaded: {}; removed: {}",
            list(&added),
            list(&changed),
            list(&removed)
        );
        let new_slots: Vec<SlotId> = self
            .apps
            .iter()
            .filter(|a| added.contains(&a.spec.name))
            .flat_map(|a| a.slots.iter().copied())
            .collect();
        // Those whose reload is under way (just begun, or one that was running already).
        let reloads = changed
            .iter()
            .filter(|n| {
                self.apps
                    .iter()
                    .any(|a| &a.spec.name == *n && a.reload.is_some())
            })
            .cloned()
            .collect();
        self.waiters.push(Waiter {
            request,
            verb: "applied",
            what: msg,
            slots: new_slots,
            goal: Goal::Applied {
                reloads,
                removed: gone,
            },
            errors: Vec::new(),
        });
        self.progress(now);
    }

    /// `runner status`: true when every instance that should run is online.
    pub fn all_online(&self) -> (bool, String) {
        let mut should = 0;
        let mut online = 0;
        for slot in self.slots.values().filter(|s| !s.deleting) {
            if slot.wanted || slot.errored || slot.has_process() {
                should += 1;
                if slot.status() == Status::Online {
                    online += 1;
                }
            }
        }
        (
            should == online,
            format!("{online}/{should} instances online"),
        )
    }

    /// Forgets deleted slots whose process is gone, and apps left without slots.
    pub(super) fn remove_deleted(&mut self) {
        if self.deleting.is_empty() {
            return;
        }
        let gone: Vec<SlotId> = self
            .deleting
            .iter()
            .copied()
            .filter(|id| self.slots.get(id).is_none_or(|s| !s.has_process()))
            .filter(|id| !self.draining.iter().any(|(d, _)| d == id))
            .collect();
        if gone.is_empty() {
            return;
        }
        let gone_set: std::collections::HashSet<SlotId> = gone.iter().copied().collect();
        for id in &gone {
            self.slots.remove(id);
            self.deleting.remove(id);
        }
        self.slots_removed += gone.len() as u64;
        for app in &mut self.apps {
            app.slots.retain(|id| !gone_set.contains(id));
            app.awaiting.retain(|id| !gone_set.contains(id));
        }
        let before = self.apps.len();
        let slots = &self.slots;
        self.apps
            .retain(|a| !a.slots.is_empty() || slots.values().any(|s| s.app == a.spec.name));
        if self.apps.len() != before {
            // Apps moved in `apps`: point every slot at its app's new place.
            let places: HashMap<String, usize> = self
                .apps
                .iter()
                .enumerate()
                .map(|(ix, a)| (a.spec.name.clone(), ix))
                .collect();
            for slot in self.slots.values_mut() {
                if let Some(ix) = places.get(&slot.app) {
                    slot.app_ix = *ix;
                }
            }
        }
    }

    /// Answers the requests whose goal is reached.
    pub(super) fn check_waiters(&mut self) {
        // A stop's pids are dropped from the end as they go, so this check costs O(1) per
        // event however many processes the stop waits for.
        let mut waiters = std::mem::take(&mut self.waiters);
        for w in &mut waiters {
            if let Goal::Stopped(pids) = &mut w.goal {
                while pids.last().is_some_and(|p| self.find_pid(*p).is_none()) {
                    pids.pop();
                }
            }
        }
        self.waiters = waiters;
        let mut done = Vec::new();
        for (i, w) in self.waiters.iter().enumerate() {
            let reached = match &w.goal {
                Goal::Stopped(pids) => pids.is_empty(),
                Goal::Gone => w.slots.iter().all(|id| !self.slots.contains_key(id)),
                Goal::Reloaded(apps) => apps.is_empty(),
                Goal::Online => self.settled(&w.slots),
                Goal::Applied { reloads, removed } => {
                    reloads.is_empty()
                        && self.settled(&w.slots)
                        && removed.iter().all(|id| !self.slots.contains_key(id))
                }
            };
            if reached || self.exited_pending() {
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            let mut w = self.waiters.remove(i);
            if matches!(w.goal, Goal::Online | Goal::Applied { .. }) {
                for id in &w.slots {
                    if let Some(s) = self.slots.get(id) {
                        if s.status() != Status::Online {
                            w.errors
                                .push(format!("{}[{}] is {}", s.app, s.index, s.status()));
                        }
                    }
                }
            }
            let result = if !w.errors.is_empty() {
                Err(w.errors.join("; "))
            } else if matches!(w.goal, Goal::Applied { .. }) {
                Ok(w.what)
            } else if w.verb == "scaled" {
                // What the operator asked (the new count), then what it took.
                let change = if w.goal == Goal::Gone {
                    "stopped"
                } else {
                    "started"
                };
                Ok(format!(
                    "scaled {} ({} instance(s) {change})",
                    w.what,
                    w.slots.len()
                ))
            } else {
                Ok(format!(
                    "{} {} ({} instance(s))",
                    w.verb,
                    w.what,
                    w.slots.len()
                ))
            };
            self.reply(w.request, result);
        }
    }

    /// Every slot is online, or has ended or stopped for good, and none is being replaced.
    fn settled(&self, slots: &[SlotId]) -> bool {
        slots.iter().all(|id| {
            self.slots.get(id).is_none_or(|s| {
                matches!(
                    s.status(),
                    Status::Online | Status::Errored | Status::Stopped
                ) && s.replacement.is_none()
            })
        })
    }

    /// During a shutdown nothing will come online: answer everyone rather than hang.
    fn exited_pending(&self) -> bool {
        self.shutting_down
    }

    /// A reload plan of `app` ended (with `error` when it failed): the requests waiting
    /// for it learn so.
    pub(super) fn reload_ended(&mut self, app: &str, error: Option<&str>) {
        for w in &mut self.waiters {
            if let Goal::Reloaded(apps) | Goal::Applied { reloads: apps, .. } = &mut w.goal {
                if let Some(pos) = apps.iter().position(|a| a == app) {
                    apps.remove(pos);
                    if let Some(err) = error {
                        w.errors.push(err.to_string());
                    }
                }
            }
        }
    }
}
