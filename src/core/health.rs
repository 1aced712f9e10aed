//! Liveness (`health_check`): when each online instance is checked, what a result means,
//! and when enough consecutive failures restart it. The checks themselves are the shell's
//! business: the core asks for one with [`Action::HealthCheck`] and hears back through
//! [`Core::health_result`]; a check that outlives `health_timeout` is a failure here and
//! is cancelled with [`Action::AbortHealthCheck`].

use std::time::Instant;

use super::{human, Action, Core, SlotId};
use crate::config::{AppSpec, ExecMode};

/// Liveness state of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Liveness {
    /// When the next check starts (None: not checked, or a check is under way).
    pub next_at: Option<Instant>,
    /// A check is under way and counts as failed at this moment.
    pub until: Option<Instant>,
    /// Failures in a row.
    pub failures: u32,
}

impl Liveness {
    /// For a process that just came online: the first check one interval later.
    pub fn online(spec: &AppSpec, now: Instant) -> Liveness {
        Liveness {
            next_at: spec.health_check.as_ref().map(|h| now + h.interval),
            until: None,
            failures: 0,
        }
    }

    /// The next moment the core has something to do for this process.
    pub fn deadline(&self) -> Option<Instant> {
        self.until.or(self.next_at)
    }
}

impl Core {
    /// Starts due checks and fails those past their timeout. Part of [`Core::tick`].
    pub(super) fn tick_health(&mut self, id: SlotId, spec: &AppSpec, now: Instant) {
        let Some(check) = &spec.health_check else {
            return;
        };
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let Some(p) = slot.proc.as_mut().filter(|p| p.is_online()) else {
            return;
        };
        let pid = p.pid;
        if p.health.until.is_some_and(|t| t <= now) {
            self.actions.push_back(Action::AbortHealthCheck { pid });
            let why = format!("no answer within health_timeout ({})", human(check.timeout));
            self.health_result(pid, Err(why), now);
            return;
        }
        if p.health.until.is_none() && p.health.next_at.is_some_and(|t| t <= now) {
            p.health.next_at = None;
            p.health.until = Some(now + check.timeout);
            self.actions.push_back(Action::HealthCheck { pid });
        }
    }

    /// Whether a check of `pid` is under way and its result still counts; the shell drops
    /// the checks for which this turns false (the instance stopped or was replaced).
    pub fn health_awaited(&self, pid: i32) -> bool {
        self.owner(pid).is_some_and(|(slot, _)| {
            slot.proc
                .as_ref()
                .is_some_and(|p| p.pid == pid && p.is_online() && p.health.until.is_some())
        })
    }

    /// The outcome of the check under way for `pid` (`Err` says how it failed). Results
    /// for a process that is no longer checked (stopped, replaced, timed out) are ignored.
    pub fn health_result(&mut self, pid: i32, result: Result<(), String>, now: Instant) {
        let Some((id, _)) = self.find_pid(pid) else {
            return;
        };
        let Some(spec) = self.spec_arc(id) else {
            return;
        };
        let Some(check) = &spec.health_check else {
            return;
        };
        let reloading = self
            .apps
            .iter()
            .any(|a| a.spec.name == spec.name && a.reload.is_some());
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let index = slot.index;
        let Some(p) = slot.proc.as_mut().filter(|p| p.pid == pid && p.is_online()) else {
            return;
        };
        if p.health.until.take().is_none() {
            return;
        }
        p.health.next_at = Some(now + check.interval);
        let why = match result {
            Ok(()) => {
                if p.health.failures > 0 {
                    log::info!(
                        "{}[{index}]: health_check {} passes again",
                        spec.name,
                        check.probe
                    );
                }
                p.health.failures = 0;
                return;
            }
            Err(why) => why,
        };
        p.health.failures += 1;
        slot.health_failures_total += 1;
        let failures = p.health.failures;
        if failures < check.failures {
            log::warn!(
                "{}[{index}]: health_check {} failed: {why} ({failures} of {} in a row)",
                spec.name,
                check.probe,
                check.failures
            );
            return;
        }
        // A reload (operator's, memory or an earlier health restart) is already replacing
        // it: checks go on, and restart it later if it is still the one serving.
        if reloading || self.shutting_down {
            return;
        }
        log::warn!(
            "{}[{index}]: health_check {} failed {failures} times in a row (last: {why}); restarting it",
            spec.name,
            check.probe
        );
        p.health = super::health::Liveness::default();
        if spec.exec_mode == ExecMode::Cluster {
            self.replace_instance(id, now);
        } else {
            self.stop_slot(id, &spec, super::AfterStop::Start, now);
            self.progress(now);
        }
    }
}
