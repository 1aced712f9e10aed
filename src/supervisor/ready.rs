//! The sd_notify socket every instance may write to (the Node IPC channels, which carry
//! readiness too, live in [`super::node`]). Messages are attributed to an instance by
//! the sender's pid, which the kernel vouches for (SCM_CREDENTIALS); a sender that is not
//! in an instance's tree changes nothing.

use std::ffi::OsString;

use mio::{Interest, Registry, Token};

use crate::core::Core;
use crate::procfs;
use crate::readiness::notify::NotifySocket;
use crate::supervisor::NotifyAt;

use crate::supervisor::tokens::NOTIFY;
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
        token == NOTIFY
    }

    /// Reads what arrived on the sd_notify socket.
    pub fn handle(&mut self, core: &Core) -> Vec<Said> {
        let mut said = Vec::new();
        if let Some(sock) = self.notify.as_mut() {
            for (sender, msg) in sock.drain() {
                let Some(main) = attribute(sender, core) else {
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
        said
    }
}

/// The main process of the instance whose tree `sender` belongs to, following parents.
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
