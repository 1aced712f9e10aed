//! Stopping runner: SIGTERM/SIGINT/SIGQUIT (a second one kills what is left), apps
//! stopped dependents first, and the exit code once every app has ended.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{human, Action, AfterStop, Core};

/// Stop signals closer together than this are one request delivered twice (to runner's
/// pid and to its process group), not an operator asking a second time.
pub const STOP_REPEAT_WINDOW: Duration = Duration::from_secs(1);

impl Core {
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
                for p in [&mut slot.proc, &mut slot.replacement]
                    .into_iter()
                    .flatten()
                {
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

    pub(super) fn advance_shutdown(&mut self, now: Instant) {
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

    pub(super) fn check_finished(&mut self) {
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

    /// The exit code runner will use, once it exits.
    pub fn exit_code(&self) -> i32 {
        self.critical_exit.or(self.first_failure).unwrap_or(0)
    }
}
