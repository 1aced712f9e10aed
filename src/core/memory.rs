//! `max_memory_restart`: when to measure, and what a measurement means. The shell only
//! reads the trees' resident memory for the instances the core names.

use std::time::{Duration, Instant};

use super::{human_bytes, Core, SlotId};

/// How often instances with a memory limit are measured (SPEC: at least once a second;
/// PM2 checks every 30 s). It costs a few /proc reads of the instances' own trees.
pub const MEMORY_CHECK_EVERY: Duration = Duration::from_secs(1);

impl Core {
    /// The running instances to measure now, with their main pids; empty when no check
    /// is due. Calling it schedules the next check.
    pub fn memory_to_measure(&mut self, now: Instant) -> Vec<(SlotId, i32)> {
        if !self.any_memory_limit() {
            self.memory_check_at = None;
            return Vec::new();
        }
        if self.memory_check_at.is_some_and(|at| at > now) {
            return Vec::new();
        }
        self.memory_check_at = Some(now + MEMORY_CHECK_EVERY);
        self.slots
            .values()
            .filter(|s| {
                self.spec_of(s.id)
                    .is_some_and(|a| a.max_memory_restart.is_some())
            })
            .filter_map(|s| {
                let p = s.proc.as_ref().filter(|p| p.is_running())?;
                Some((s.id, p.pid))
            })
            .collect()
    }

    /// The tree of `slot`'s instance holds `rss` bytes: over its app's limit, it is
    /// restarted gracefully (a one-instance reload in cluster mode).
    pub fn memory_measured(&mut self, slot: SlotId, rss: u64, now: Instant) {
        let Some(limit) = self.spec_of(slot).and_then(|a| a.max_memory_restart) else {
            return;
        };
        if rss <= limit {
            return;
        }
        if let Some(s) = self.slots.get(&slot) {
            log::warn!(
                "{}[{}]: memory {} is over max_memory_restart {}; restarting it",
                s.app,
                s.index,
                human_bytes(rss),
                human_bytes(limit)
            );
        }
        self.replace_instance(slot, now);
    }

    /// Restarts one instance gracefully because its tree uses too much memory; in cluster
    /// mode the replacement starts first, as in a reload.
    pub fn memory_exceeded(&mut self, id: SlotId, now: Instant) {
        self.replace_instance(id, now);
    }

    /// When the next memory check is due, while any app has a limit.
    pub(super) fn memory_deadline(&self) -> Option<Instant> {
        self.memory_check_at.filter(|_| self.any_memory_limit())
    }

    fn any_memory_limit(&self) -> bool {
        self.apps
            .iter()
            .any(|a| a.spec.max_memory_restart.is_some())
    }
}
