//! Memory and CPU of each instance's process tree, read from /proc: for `list` and for
//! `max_memory_restart`. Only the members of the instances' trees are read (and the pids
//! created since the last look, see [`Tracker`](crate::procfs::Tracker)), so the cost
//! follows the apps' size, not the number of processes on the host.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::control::protocol::InstanceInfo;
use crate::core::{Core, SlotId, Status};
use crate::procfs;

use super::tree::Trees;

/// Per-tree usage measured at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub rss: u64,
    pub cpu_ticks: u64,
}

/// CPU samples kept between measurements, so cpu % covers the last interval.
#[derive(Debug, Default)]
pub struct Metrics {
    last: HashMap<i32, (u64, Instant)>,
}

impl Metrics {
    /// Usage of every running instance's tree, keyed by slot.
    pub fn measure(&self, core: &Core, trees: &mut Trees) -> HashMap<SlotId, Usage> {
        trees.refresh();
        let mut out = HashMap::new();
        for slot in core.slots() {
            let Some(p) = &slot.proc else { continue };
            out.insert(slot.id, usage(&trees.of(p.pid)));
        }
        out
    }

    /// Percent of one CPU used by `pid`'s tree since the last sample (or since it started).
    fn cpu_percent(&mut self, pid: i32, ticks: u64, started: Instant, now: Instant) -> f64 {
        let (prev_ticks, prev_at) = self.last.get(&pid).copied().unwrap_or((0, started));
        self.last.insert(pid, (ticks, now));
        let elapsed = now.saturating_duration_since(prev_at);
        procfs::cpu_percent(ticks.saturating_sub(prev_ticks), elapsed)
    }

    /// The rows of `list`.
    pub fn list(&mut self, core: &Core, trees: &mut Trees) -> Vec<InstanceInfo> {
        let now = Instant::now();
        let usage = self.measure(core, trees);
        let mut rows = Vec::new();
        for slot in core.slots() {
            let Some(spec) = core.spec_of(slot.id) else {
                continue;
            };
            let u = usage.get(&slot.id).copied().unwrap_or_default();
            let cpu = match &slot.proc {
                Some(p) => self.cpu_percent(p.pid, u.cpu_ticks, p.started, now),
                None => 0.0,
            };
            let crashed = matches!(slot.status(), Status::Errored | Status::WaitingRestart);
            let error = slot.error.clone().or_else(|| {
                slot.last_exit
                    .filter(|_| crashed)
                    .map(|e| format!("last exit: {e}"))
            });
            rows.push(InstanceInfo {
                id: slot.id,
                name: slot.app.clone(),
                namespace: spec.namespace.clone(),
                mode: spec.exec_mode.as_str().to_string(),
                // Null once the main process is gone, even while its leftovers are stopped.
                pid: slot.proc.as_ref().filter(|p| p.main_alive()).map(|p| p.pid),
                status: slot.status().as_str().to_string(),
                restarts: slot.restarts,
                uptime_ms: slot
                    .proc
                    .as_ref()
                    .map(|p| now.saturating_duration_since(p.started).as_millis() as u64)
                    .unwrap_or(0),
                cpu: (cpu * 10.0).round() / 10.0,
                memory: u.rss,
                instance: slot.index,
                status_text: slot
                    .proc
                    .as_ref()
                    .and_then(|p| p.status_text.clone())
                    .or_else(|| completed_text(slot)),
                error,
            });
        }
        // Forget samples of processes that are gone, so the map stays bounded.
        let live: HashSet<i32> = core
            .slots()
            .filter_map(|s| s.proc.as_ref().map(|p| p.pid))
            .collect();
        self.last.retain(|pid, _| live.contains(pid));
        rows
    }

    /// The resident memory of each named instance's tree (main pid given).
    pub fn tree_rss(&self, due: &[(SlotId, i32)], trees: &mut Trees) -> Vec<(SlotId, u64)> {
        trees.refresh();
        due.iter()
            .map(|&(slot, pid)| (slot, usage(&trees.of(pid)).rss))
            .collect()
    }
}

/// Resident memory and CPU ticks summed over a tree.
///
/// RSS counts pages shared between processes (fork's copy-on-write, shared libraries)
/// once per process, so the sum over-estimates the tree's real footprint — the same
/// measure PM2 and `ps` users expect.
fn usage(tree: &[procfs::ProcInfo]) -> Usage {
    tree.iter().fold(Usage::default(), |u, p| Usage {
        rss: u.rss.saturating_add(p.rss_bytes),
        cpu_ticks: u.cpu_ticks.saturating_add(p.cpu_ticks),
    })
}

/// A one-shot job that finished shows as `stopped` (SPEC's word) with this text, so
/// `list` tells it from an app stopped on request.
fn completed_text(slot: &crate::core::Slot) -> Option<String> {
    if !slot.completed || slot.proc.is_some() {
        return None;
    }
    Some(match slot.last_exit {
        Some(e) => format!("completed ({e})"),
        None => "completed".to_string(),
    })
}
