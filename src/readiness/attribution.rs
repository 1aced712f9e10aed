//! The sd_notify socket every instance may write to (the Node IPC channels, which carry
//! readiness too, live in `supervisor/node.rs`). Messages are attributed to an instance by
//! the sender's pid, which the kernel vouches for (SCM_CREDENTIALS); a sender that is not
//! in an instance's tree changes nothing.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use mio::{Interest, Registry, Token};

use crate::core::Core;
use crate::procfs;
use crate::readiness::notify::NotifySocket;
/// How far up the parent chain a sender may be from its instance's main process.
const MAX_DEPTH: usize = 64;

/// Where the instances' sd_notify socket is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyAt {
    /// No socket, no `NOTIFY_SOCKET` (single-program mode, as tini).
    Nowhere,
    /// A path (beside the control socket).
    Path(PathBuf),
    /// The abstract namespace: no directory is writable.
    Abstract,
}

/// What an instance said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    Ready(i32),
    Status(i32, String),
    Watchdog(i32),
}

pub struct Readiness {
    notify: Option<NotifySocket>,
    /// The loop's token for the socket.
    token: Token,
    /// The notify socket's budget ran out: datagrams may still be queued.
    notify_more: bool,
}

impl Readiness {
    /// Binds the sd_notify socket `at` (`Nowhere`: apps get no NOTIFY_SOCKET) and registers
    /// it under `token`.
    pub fn new(registry: &Registry, at: &NotifyAt, token: Token) -> Readiness {
        let mut r = Readiness {
            notify: None,
            token,
            notify_more: false,
        };
        let bound = match at {
            NotifyAt::Nowhere => return r,
            NotifyAt::Path(path) => NotifySocket::bind(path)
                .map_err(|e| format!("no sd_notify socket at {}: {e}", path.display())),
            // No control socket, so no directory to put this one in: the abstract
            // namespace needs none.
            NotifyAt::Abstract => NotifySocket::bind_abstract(&format!(
                "runner-notify-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
            ))
            .map_err(|e| format!("no sd_notify socket: {e}")),
        };
        match bound {
            Ok(mut sock) => match registry.register(&mut sock, token, Interest::READABLE) {
                Ok(()) => r.notify = Some(sock),
                Err(e) => log::warn!("cannot watch the sd_notify socket: {e}"),
            },
            Err(e) => log::warn!("{e}"),
        }
        r
    }

    /// `NOTIFY_SOCKET` for the instances, when there is a socket.
    pub fn env(&self) -> Option<(OsString, OsString)> {
        self.notify.as_ref().map(|s| {
            (
                OsString::from("NOTIFY_SOCKET"),
                s.path().as_os_str().to_owned(),
            )
        })
    }

    pub fn owns(&self, token: Token) -> bool {
        token == self.token
    }

    /// Reads what arrived on the sd_notify socket.
    /// `is_instance` tells whether a pid is an instance's main process (one whose exec
    /// has not been confirmed yet counts too).
    pub fn handle(&mut self, core: &Core, is_instance: &dyn Fn(i32) -> bool) -> Vec<Said> {
        self.handle_notify(core, is_instance)
    }

    /// Whether a wake-up must come at once: the notify socket's budget ran out.
    pub fn pending(&self) -> bool {
        self.notify_more
    }

    /// One budget's worth of sd_notify datagrams, attributed while the fds they passed are
    /// still open (see [`NotifySocket::drain_bounded`]); those close at the end.
    fn handle_notify(&mut self, core: &Core, is_instance: &dyn Fn(i32) -> bool) -> Vec<Said> {
        let mut said = Vec::new();
        let Some(sock) = self.notify.as_mut() else {
            self.notify_more = false;
            return said;
        };
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        let uids: Vec<u32> = core
            .apps()
            .iter()
            .map(|a| a.spec.credentials.as_ref().map_or(euid, |c| c.uid))
            .collect();
        // Root may run setuid helpers on an app's behalf; its datagrams are still vouched
        // for by the kernel and attributed through the tree.
        let allowed = |uid: u32| uid == 0 || uids.contains(&uid);
        let (batch, more) = sock.drain_bounded(NOTIFY_BUDGET, &allowed);
        self.notify_more = more;
        let mut known: HashMap<i32, Option<i32>> = HashMap::new();
        for r in &batch {
            let main = *known
                .entry(r.pid)
                .or_insert_with(|| attribute(r.pid, is_instance));
            let Some(main) = main else {
                log::debug!(
                    "sd_notify message from pid {}, which is no instance's; ignored",
                    r.pid
                );
                continue;
            };
            let msg = &r.message;
            if msg.ready {
                said.push(Said::Ready(main));
            }
            if let Some(text) = &msg.status {
                said.push(Said::Status(main, text.clone()));
            }
            if msg.watchdog {
                said.push(Said::Watchdog(main));
            }
        }
        // Only now are passed fds (systemd-notify's barrier) closed, releasing senders.
        drop(batch);
        said
    }
}

/// Datagrams read from the notify socket per wake-up; more are read on the next turn.
const NOTIFY_BUDGET: usize = 64;

/// The main process of the instance whose tree `sender` belongs to, following parents.
fn attribute(sender: i32, is_instance: &dyn Fn(i32) -> bool) -> Option<i32> {
    let mut pid = sender;
    for _ in 0..MAX_DEPTH {
        if is_instance(pid) {
            return Some(pid);
        }
        let parent = procfs::read(pid)?.ppid;
        if parent <= 1 || parent == pid {
            return None;
        }
        pid = parent;
    }
    None
}
