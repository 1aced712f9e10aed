//! The readiness channels of the loop: the sd_notify socket every instance may write to,
//! and one Node.js IPC channel per node instance. Messages are attributed to an instance
//! by the sender's pid, which the kernel vouches for (SCM_CREDENTIALS) or which owns the
//! channel; a sender that is not in an instance's tree changes nothing.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;

use mio::{Interest, Registry, Token};

use crate::core::Core;
use crate::procfs;
use crate::readiness::node_ipc::{self, NodeChannel};
use crate::readiness::notify::NotifySocket;
use crate::supervisor::NotifyAt;

use crate::supervisor::tokens::{Band, NOTIFY};
/// How far up the parent chain a sender may be from its instance's main process.
const MAX_DEPTH: usize = 64;

/// What an instance said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    Ready(i32),
    Status(i32, String),
    Watchdog(i32),
}

#[derive(Default)]
pub struct Readiness {
    notify: Option<NotifySocket>,
    channels: HashMap<Token, (i32, NodeChannel)>,
    next: usize,
    /// A channel stopped reading early (read budget): read it again without waiting.
    pub more: bool,
    /// The notify socket's budget ran out: datagrams may still be queued.
    notify_more: bool,
}

impl Readiness {
    /// Binds the sd_notify socket at `path` (None: apps get no NOTIFY_SOCKET).
    pub fn new(registry: &Registry, at: &NotifyAt) -> Readiness {
        let mut r = Readiness::default();
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
            Ok(mut sock) => match registry.register(&mut sock, NOTIFY, Interest::READABLE) {
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
        token == NOTIFY || self.channels.contains_key(&token)
    }

    /// A channel for a node instance: runner's end, and the child's end to pass as an fd.
    pub fn node_channel() -> Option<(NodeChannel, OwnedFd)> {
        match NodeChannel::pair() {
            Ok(pair) => Some(pair),
            Err(e) => {
                log::warn!("cannot open a Node IPC channel: {e}");
                None
            }
        }
    }

    /// Starts reading a node instance's channel.
    pub fn attach(&mut self, registry: &Registry, pid: i32, mut channel: NodeChannel) {
        let token = Band::NodeIpc.token(self.next as u64);
        self.next = self.next.wrapping_add(1);
        if let Err(e) = registry.register(&mut channel, token, Interest::READABLE) {
            log::warn!("cannot watch the Node IPC channel of pid {pid}: {e}");
            return;
        }
        self.channels.insert(token, (pid, channel));
    }

    /// Reads what arrived on `token` (or, with None, re-reads channels that stopped early).
    pub fn handle(&mut self, registry: &Registry, token: Option<Token>, core: &Core) -> Vec<Said> {
        let mut said = Vec::new();
        if token == Some(NOTIFY) || (token.is_none() && self.notify_more) {
            said = self.handle_notify(core);
            if token.is_some() {
                return said;
            }
        }
        let tokens: Vec<Token> = match token {
            Some(t) => vec![t],
            None => self.channels.keys().copied().collect(),
        };
        self.more = false;
        for t in tokens {
            let Some((pid, channel)) = self.channels.get_mut(&t) else {
                continue;
            };
            let pid = *pid;
            let (messages, closed) = channel.read();
            for m in &messages {
                if node_ipc::is_ready(m) {
                    said.push(Said::Ready(pid));
                } else {
                    log::debug!("pid {pid} sent {m} over its Node IPC channel; ignored");
                }
            }
            if closed {
                if let Some((_, mut ch)) = self.channels.remove(&t) {
                    let _ = registry.deregister(&mut ch);
                }
            } else if channel.has_pending() {
                self.more = true;
            }
        }
        said
    }
}

/// The main process of the instance whose tree `sender` belongs to, following parents.
impl Readiness {
    /// Whether a wake-up must come at once: the notify socket's budget ran out, or a Node
    /// channel holds unread messages.
    pub fn pending(&self) -> bool {
        self.more || self.notify_more
    }

    /// One budget's worth of sd_notify datagrams, attributed while the fds they passed are
    /// still open (see [`NotifySocket::drain_bounded`]); those close at the end.
    fn handle_notify(&mut self, core: &Core) -> Vec<Said> {
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
            let main = *known.entry(r.pid).or_insert_with(|| attribute(r.pid, core));
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

fn attribute(sender: i32, core: &Core) -> Option<i32> {
    let mut pid = sender;
    for _ in 0..MAX_DEPTH {
        if core.owner(pid).is_some() {
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
