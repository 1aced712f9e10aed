//! The readiness channels of the loop: the sd_notify socket every instance may write to,
//! and one Node.js IPC channel per node instance. Messages are attributed to an instance
//! by the sender's pid, which the kernel vouches for (SCM_CREDENTIALS) or which owns the
//! channel; a sender that is not in an instance's tree changes nothing.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;

use mio::{Interest, Registry, Token};

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
    /// `is_instance` tells whether a pid is an instance's main process.
    pub fn handle(
        &mut self,
        registry: &Registry,
        token: Option<Token>,
        is_instance: &dyn Fn(i32) -> bool,
    ) -> Vec<Said> {
        let mut said = Vec::new();
        if token == Some(NOTIFY) {
            if let Some(sock) = self.notify.as_mut() {
                for (sender, msg) in sock.drain() {
                    let Some(main) = attribute(sender, is_instance) else {
                        log::debug!(
                            "sd_notify message from pid {sender}, which is no instance's; ignored"
                        );
                        continue;
                    };
                    if msg.ready {
                        said.push(Said::Ready(main));
                    }
                    if let Some(text) = msg.status {
                        said.push(Said::Status(main, text));
                    }
                    if msg.watchdog {
                        said.push(Said::Watchdog(main));
                    }
                }
            }
            return said;
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
