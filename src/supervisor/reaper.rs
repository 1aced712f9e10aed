//! Reaping exited children at a cost that does not grow with their number.
//!
//! `waitpid(-1)` makes the kernel walk every child of runner (`wait_consider_task`): at
//! 5,000 instances, reaping that way after each exit was over half of runner's CPU in a
//! rolling reload, so a reload of N cost N². A SIGCHLD names the child that sent it
//! (`ssi_pid`), and `waitpid(pid)` finds that one child directly. But SIGCHLD is a
//! standard signal: children that exit while one is pending add nothing to it, so any
//! SIGCHLD may stand for several children. Each one therefore also owes a full sweep,
//! run at once if none ran in the last [`SWEEP_GAP`], else at that deadline: a burst of
//! exits costs one walk per gap, and a child whose signal was merged is reaped at most
//! [`SWEEP_GAP`] late. With fewer than [`FEW_INSTANCES`] instances (single-program mode,
//! most ecosystems) a walk is short and the sweep runs after every SIGCHLD, as tini's
//! does: an orphan burst under PID 1 is drained at once instead of in 20 ms steps.
//! Orphans re-parented to runner send SIGCHLD too and are reaped the same way. Nothing is
//! due when no SIGCHLD came, so an idle runner never wakes for this.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::core::ExitKind;

/// Shortest time between two full sweeps while SIGCHLDs keep coming.
pub const SWEEP_GAP: Duration = Duration::from_millis(20);

/// Below this many instances, sweeps are not spaced at all.
pub const FEW_INSTANCES: usize = 64;

#[derive(Debug)]
pub struct Reaper {
    /// Children named by SIGCHLDs since the last reap.
    named: Vec<i32>,
    /// A SIGCHLD came since the last full sweep.
    owed: bool,
    last_sweep: Option<Instant>,
    /// The gap between sweeps for the number of instances runner has now.
    gap: Duration,
}

impl Reaper {
    /// Owes a sweep at once: zombies may be waiting from before runner started (an exec
    /// into runner keeps the children of the shell it replaced).
    pub fn new() -> Reaper {
        Reaper {
            named: Vec::new(),
            owed: true,
            last_sweep: None,
            gap: Duration::ZERO,
        }
    }

    /// How many instances runner has now (the children a sweep walks, orphans aside).
    pub fn set_instances(&mut self, n: usize) {
        self.gap = if n < FEW_INSTANCES {
            Duration::ZERO
        } else {
            SWEEP_GAP
        };
    }

    /// A SIGCHLD arrived from `pid` (0 or less when the sender is unknown).
    pub fn signalled(&mut self, pid: i32) {
        if pid > 0 && !self.named.contains(&pid) {
            self.named.push(pid);
        }
        self.owed = true;
    }

    /// When the owed full sweep is due.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if !self.owed {
            return None;
        }
        // The loop's `now`, not a fresh reading: a deadline an instant after it would be
        // rounded up to a 1 ms poll timeout.
        Some(match self.last_sweep {
            Some(at) => at + self.gap,
            None => now,
        })
    }

    /// The children that have exited: the named ones, and everyone when a full sweep is
    /// due (or `full`: runner is about to exit). Cheap when neither is the case.
    pub fn reap(&mut self, now: Instant, full: bool) -> Vec<(i32, ExitKind)> {
        let mut out = Vec::new();
        for pid in std::mem::take(&mut self.named) {
            // ECHILD (not ours: a SIGCHLD sent by hand) or not exited yet (the signal of
            // a stop): the full sweep owed for this signal covers it.
            if let Some(exit) = wait_one(Pid::from_raw(pid)) {
                out.push(exit);
            }
        }
        if self.sweep_due(now, full) {
            while let Some(exit) = wait_one(Pid::from_raw(-1)) {
                out.push(exit);
            }
        }
        out
    }

    /// Whether to sweep now; if so, the sweep counts as done.
    fn sweep_due(&mut self, now: Instant, full: bool) -> bool {
        let gap_over = self.last_sweep.is_none_or(|at| now >= at + self.gap);
        let due = full || (self.owed && gap_over);
        if due {
            self.owed = false;
            self.last_sweep = Some(now);
        }
        due
    }
}

/// Reaps one exited child matching `pid` (-1: any); None when there is none.
fn wait_one(pid: Pid) -> Option<(i32, ExitKind)> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => return Some((pid.as_raw(), ExitKind::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                return Some((pid.as_raw(), ExitKind::Signal(sig as i32)))
            }
            Ok(WaitStatus::StillAlive) => return None,
            // Stopped or continued: not an exit; look again.
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => return None, // ECHILD: nothing (left) to reap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Only the decisions: a real sweep would reap other tests' children.

    #[test]
    fn nothing_is_due_without_a_sigchld() {
        let mut r = Reaper::new();
        assert!(r.sweep_due(Instant::now(), false), "the first sweep");
        assert_eq!(r.next_deadline(Instant::now()), None);
        assert!(!r.sweep_due(Instant::now(), false));
        assert!(
            r.sweep_due(Instant::now(), true),
            "runner's exit sweeps anyway"
        );
    }

    #[test]
    fn with_few_instances_every_sigchld_sweeps_at_once() {
        let mut r = Reaper::new();
        r.set_instances(1);
        let t0 = Instant::now();
        assert!(r.sweep_due(t0, false));
        r.signalled(42);
        assert!(r.sweep_due(t0, false), "no gap to wait for");
        assert!(!r.sweep_due(t0, false), "nothing owed");
    }

    #[test]
    fn sweeps_are_spaced_by_the_gap() {
        let mut r = Reaper::new();
        r.set_instances(FEW_INSTANCES);
        let t0 = Instant::now();
        r.signalled(-1);
        assert_eq!(
            r.next_deadline(t0),
            Some(t0),
            "the first sweep is due at once"
        );
        assert!(r.sweep_due(t0, false));
        assert_eq!(r.next_deadline(t0), None, "swept");
        r.signalled(42);
        r.signalled(42);
        assert_eq!(r.named, vec![42]);
        assert_eq!(r.next_deadline(t0), Some(t0 + SWEEP_GAP));
        assert!(!r.sweep_due(t0 + SWEEP_GAP / 2, false));
        assert_eq!(r.next_deadline(t0), Some(t0 + SWEEP_GAP), "still owed");
        assert!(r.sweep_due(t0 + SWEEP_GAP, false));
        assert_eq!(r.next_deadline(t0), None);
    }
}
