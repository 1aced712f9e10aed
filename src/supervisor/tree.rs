//! Signalling an instance's whole process tree and knowing when it is gone.
//!
//! An instance is rooted at its main process, which leads its own process group (pgid =
//! pid). A group signal misses descendants that called `setsid`, so the tree is also
//! walked in /proc, and every member seen is remembered by (pid, start time): once the
//! main process and a middle parent are gone, a re-parented grandchild is linked to the
//! instance by nothing else.
//!
//! The tree comes from a [`Tracker`], which reads only the pids created since its last
//! look and the members of the tree asked about: a stop costs the same whether the host
//! runs 100 processes or 10,000, and stopping N instances costs N, not N x host.

use std::collections::{HashMap, HashSet};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::procfs::{ProcInfo, Tracker};

#[derive(Debug, Default)]
pub struct Trees {
    remembered: HashMap<i32, Vec<(i32, u64)>>,
    /// Roots whose main process was reaped: their pid (and so their group id) may be
    /// reused, so the group is no longer signalled as a whole.
    reaped: HashSet<i32>,
    procs: Tracker,
}

impl Trees {
    /// Sends `signal` to the root, and to its whole tree when `tree`.
    pub fn signal(&mut self, root: i32, signal: Signal, tree: bool) {
        if !tree {
            if !self.reaped.contains(&root) {
                send(Pid::from_raw(root), signal);
                if signal != Signal::SIGKILL && signal != Signal::SIGCONT {
                    send(Pid::from_raw(root), Signal::SIGCONT);
                }
            }
            return;
        }
        let members = self.members(root);
        // While the root is unreaped its pid cannot be reused, so the group is ours and
        // one killpg reaches its members; the rest (those that left the group) get the
        // signal one by one. Each process gets it once: many apps read a second SIGINT
        // as "quit now".
        let group = !self.reaped.contains(&root);
        let outside: Vec<i32> = members
            .iter()
            .filter(|p| !group || p.pgid != root)
            .map(|p| p.pid)
            .collect();
        for sig in [signal, Signal::SIGCONT] {
            if sig == Signal::SIGCONT && (signal == Signal::SIGKILL || signal == Signal::SIGCONT) {
                break;
            }
            if group {
                match killpg(Pid::from_raw(root), sig) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => log::warn!("cannot signal process group {root}: {e}"),
                }
            }
            for pid in &outside {
                send(Pid::from_raw(*pid), sig);
            }
        }
    }

    /// The main process was reaped.
    pub fn main_reaped(&mut self, root: i32) {
        self.reaped.insert(root);
    }

    /// Whether nothing of the tree is left. Only meaningful once the main process was reaped.
    pub fn is_gone(&mut self, root: i32) -> bool {
        let remembered = self.remembered.get(&root).map(Vec::as_slice).unwrap_or(&[]);
        // Cheap path for the common case: an empty group and nothing that left it.
        if remembered.is_empty() && kill(Pid::from_raw(-root), None) == Err(Errno::ESRCH) {
            return true;
        }
        let remembered = remembered.to_vec();
        self.procs.tree(root, root, &remembered).is_empty()
    }

    /// Forgets a tree that is gone.
    pub fn forget(&mut self, root: i32) {
        self.remembered.remove(&root);
        self.reaped.remove(&root);
    }

    /// Members of the tree now (the root excluded), remembered for later calls.
    fn members(&mut self, root: i32) -> Vec<ProcInfo> {
        let known = self.remembered.entry(root).or_default();
        let mut members = self.procs.tree(root, root, known);
        members.retain(|p| p.pid != root);
        // The tracker read each member just now: whoever is not among them is gone.
        known.retain(|(pid, start)| {
            members
                .iter()
                .any(|p| p.pid == *pid && p.start_ticks == *start)
        });
        for p in &members {
            if !known.iter().any(|(pid, _)| *pid == p.pid) {
                known.push((p.pid, p.start_ticks));
            }
        }
        members
    }

    /// Looks for processes created since the last look; then [`of`](Self::of) reads trees.
    pub fn refresh(&mut self) {
        self.procs.refresh();
    }

    /// The tree of `root` (the root included when alive), read afresh: for memory and CPU.
    pub fn of(&mut self, root: i32) -> Vec<ProcInfo> {
        self.procs.tree_now(root, root, &[])
    }
}

fn send(pid: Pid, signal: Signal) {
    match kill(pid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => log::warn!("cannot send {} to pid {pid}: {e}", signal.as_str()),
    }
}
