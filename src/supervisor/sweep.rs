//! Before runner exits: processes adopted from the apps that no instance accounted for
//! (daemons an app double-forked, what a `treekill = false` app left behind) get SIGTERM,
//! then SIGKILL after [`GRACE`], so nothing is left to the kernel's SIGKILL (as PID 1) or
//! to init (as a subreaper).
//!
//! The wait is a deadline of the loop, not a sleep: meanwhile runner keeps reaping what
//! exits and answering its clients (`runner list` shows the apps stopped), and a second
//! SIGTERM/SIGINT/SIGQUIT kills the leftovers at once, as it does during a stop.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

/// How long leftovers have between SIGTERM and SIGKILL (README, "Lifecycle").
pub const GRACE: Duration = Duration::from_secs(2);

/// After SIGKILL, how long runner waits to reap the killed before it exits anyway: SIGKILL
/// cannot be caught, but a process in uninterruptible sleep dies when its I/O returns.
const REAP_GRACE: Duration = Duration::from_secs(1);

/// A sweep under way; runner exits with `code` once it is over.
#[derive(Debug)]
pub struct Sweep {
    pub code: i32,
    phase: Phase,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// SIGTERM sent; SIGKILL at the deadline.
    Term { kill_at: Instant },
    /// SIGKILL sent; runner exits at the deadline even if something is still unreaped.
    Kill { give_up_at: Instant },
}

impl Sweep {
    /// Sends SIGTERM to every live child; None when there is none (the usual case, told
    /// without reading /proc). Call it right after reaping.
    pub fn begin(code: i32, now: Instant) -> Option<Sweep> {
        if !has_children() {
            return None;
        }
        let left = live_children();
        if left.is_empty() {
            // Only children already dying (one killed an instant ago, a zombie the last
            // reap just missed): let the loop reap them, within a bound, before exiting,
            // so none is left to whoever inherits it.
            return Some(Sweep {
                code,
                phase: Phase::Kill {
                    give_up_at: now + REAP_GRACE,
                },
            });
        }
        log::info!("stopping {} leftover process(es)", left.len());
        for pid in left {
            let _ = kill(pid, Signal::SIGTERM);
            // A stopped process would not act on the SIGTERM before the SIGKILL.
            let _ = kill(pid, Signal::SIGCONT);
        }
        Some(Sweep {
            code,
            phase: Phase::Term {
                kill_at: now + GRACE,
            },
        })
    }

    /// Called after each reap: kills the leftovers once their grace is over; true once
    /// the sweep is over (no child left, or the killed could not be reaped in time).
    pub fn step(&mut self, now: Instant) -> bool {
        if !has_children() {
            return true;
        }
        match self.phase {
            Phase::Term { kill_at } if now >= kill_at => {
                self.kill_now(now);
                false
            }
            Phase::Kill { give_up_at } if now >= give_up_at => {
                log::warn!("exiting with leftover process(es) not yet reaped");
                true
            }
            _ => false,
        }
    }

    /// SIGKILL to every live child now (the grace is over, or the operator insisted).
    pub fn kill_now(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Kill { .. }) {
            return;
        }
        for pid in live_children() {
            let _ = kill(pid, Signal::SIGKILL);
        }
        self.phase = Phase::Kill {
            give_up_at: now + REAP_GRACE,
        };
    }

    /// When the loop must wake up for the sweep even if no child exits.
    pub fn deadline(&self) -> Instant {
        match self.phase {
            Phase::Term { kill_at } => kill_at,
            Phase::Kill { give_up_at } => give_up_at,
        }
    }
}

/// Whether runner has any child, live or zombie, without reaping it: the loop's reap
/// must see every exit (a child reaped here would be lost to it).
fn has_children() -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::All, flags), Err(Errno::ECHILD))
}

/// Runner's children that are still running (zombies are the reaper's business).
fn live_children() -> Vec<Pid> {
    let me = std::process::id() as i32;
    crate::procfs::Snapshot::take()
        .iter()
        .filter(|p| p.ppid == me && !p.is_zombie())
        .map(|p| Pid::from_raw(p.pid))
        .collect()
}
