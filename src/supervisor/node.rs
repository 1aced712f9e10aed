//! The loop's side of the Node IPC channels, one per node instance: readiness
//! (`process.send('ready')`) and, for cluster workers, runner as the Node cluster primary
//! (listening sockets passed as fds, see [`crate::node_ipc::cluster`]).
//!
//! A worker is stopped the way PM2 stops one, and as SPEC section 4 says: `kill_signal`
//! first, so an app's own graceful shutdown (PM2's documented `process.on('SIGINT')`)
//! drains its connections as it chooses. Node's `disconnect` (which closes the worker's
//! servers, idle keep-alive connections included) comes only if the worker is still
//! connected after half its `kill_timeout`: an app whose handler closed nothing, or only
//! its servers, then ends on its own before the core's SIGKILL at `kill_timeout`.
//! Disconnecting first was tried and measured: it cut an app's own drain short and gave
//! keep-alive clients resets through reloads that PM2 gives none of (bench/cluster.sh).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};

use crate::cluster::Listeners;
use crate::core::Core;
use crate::node_ipc::cluster::{self, Incoming};
use crate::node_ipc::NodeChannel;
use crate::readiness::attribution::Said;
use crate::supervisor::tokens::Band;

struct Attached {
    pid: i32,
    channel: NodeChannel,
    /// Runner is this instance's cluster primary (it got `NODE_UNIQUE_ID`).
    worker: bool,
    /// Runner's own message counter on this channel (Node's `seq`).
    seq: u64,
}

impl Attached {
    fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }
}

#[derive(Default)]
pub struct NodeChannels {
    channels: HashMap<Token, Attached>,
    by_pid: HashMap<i32, Token>,
    next: u64,
    /// Workers being stopped: when each is asked to disconnect if it hasn't gone by then.
    disconnect_at: HashMap<i32, Instant>,
    /// A channel stopped reading early (read budget): read it again without waiting.
    pub more: bool,
}

impl NodeChannels {
    /// A channel for a node instance: runner's end, and the child's end to pass as an fd.
    pub fn pair() -> Option<(NodeChannel, std::os::fd::OwnedFd)> {
        match NodeChannel::pair() {
            Ok(pair) => Some(pair),
            Err(e) => {
                log::warn!("cannot open a Node IPC channel: {e}");
                None
            }
        }
    }

    pub fn owns(&self, token: Token) -> bool {
        self.channels.contains_key(&token)
    }

    /// Starts serving a node instance's channel.
    pub fn attach(
        &mut self,
        registry: &Registry,
        pid: i32,
        mut channel: NodeChannel,
        worker: bool,
    ) {
        let token = Band::NodeIpc.token(self.next);
        self.next = self.next.wrapping_add(1);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = registry.register(&mut channel, token, interest) {
            log::warn!("cannot watch the Node IPC channel of pid {pid}: {e}");
            return;
        }
        self.channels.insert(
            token,
            Attached {
                pid,
                channel,
                worker,
                seq: 0,
            },
        );
        self.by_pid.insert(pid, token);
    }

    /// Reads and answers what arrived on `token` (or, with None, re-reads channels that
    /// stopped early). Returns what instances said.
    pub fn handle(
        &mut self,
        registry: &Registry,
        token: Option<Token>,
        core: &Core,
        listeners: &mut Listeners,
    ) -> Vec<Said> {
        let mut said = Vec::new();
        let tokens: Vec<Token> = match token {
            Some(t) => vec![t],
            None => self.channels.keys().copied().collect(),
        };
        self.more = false;
        for t in tokens {
            let Some(a) = self.channels.get_mut(&t) else {
                continue;
            };
            a.channel.flush();
            let (messages, closed) = a.channel.read();
            for m in &messages {
                answer(a, m, core, listeners, &mut said);
            }
            if closed {
                let pid = a.pid;
                if let Some(mut gone) = self.channels.remove(&t) {
                    let _ = registry.deregister(&mut gone.channel);
                }
                self.by_pid.remove(&pid);
                self.disconnect_at.remove(&pid);
            } else if a.channel.has_pending() {
                self.more = true;
            }
        }
        said
    }

    /// A graceful stop signal went to `pid`: if it is a connected worker, ask it to
    /// disconnect once half of `kill_timeout` has passed without its end.
    pub fn stopping(&mut self, pid: i32, kill_timeout: Duration, now: Instant) {
        let worker = self
            .by_pid
            .get(&pid)
            .and_then(|t| self.channels.get(t))
            .is_some_and(|a| a.worker);
        if worker {
            self.disconnect_at
                .entry(pid)
                .or_insert(now + kill_timeout / 2);
        }
    }

    /// A SIGKILL went to `pid`, or it was reaped: nothing more to ask of it.
    pub fn killed(&mut self, pid: i32) {
        self.disconnect_at.remove(&pid);
    }

    /// Asks the workers whose grace is half over to disconnect.
    pub fn disconnect_due(&mut self, now: Instant) {
        let due: Vec<i32> = self
            .disconnect_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(pid, _)| *pid)
            .collect();
        for pid in due {
            self.disconnect_at.remove(&pid);
            let Some(a) = self.by_pid.get(&pid).and_then(|t| self.channels.get_mut(t)) else {
                continue;
            };
            let seq = a.next_seq();
            if a.channel.send(&cluster::disconnect(seq), None) {
                log::debug!("pid {pid} is still running half way to its kill_timeout: asked it to disconnect");
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.disconnect_at.values().min().copied()
    }
}

/// One message from an instance: readiness is reported, a worker's request answered.
fn answer(
    a: &mut Attached,
    m: &serde_json::Value,
    core: &Core,
    listeners: &mut Listeners,
    said: &mut Vec<Said>,
) {
    let pid = a.pid;
    match cluster::classify(m) {
        Incoming::Ready => said.push(Said::Ready(pid)),
        Incoming::HandleAck => a.channel.handle_acked(),
        Incoming::HandleNack => a.channel.handle_nacked(),
        Incoming::WantsAck(of) if a.worker => {
            let seq = a.next_seq();
            a.channel.send(&cluster::ack(&of, seq), None);
        }
        Incoming::Listening if a.worker => {
            if core
                .owner(pid)
                .is_some_and(|(_, spec)| spec.ready_on_listening())
            {
                said.push(Said::Ready(pid));
            }
        }
        Incoming::Query(q) if a.worker => {
            let Some((slot, spec)) = core.owner(pid) else {
                log::debug!("pid {pid} asked for a socket but is no instance any more");
                return;
            };
            let (fd, errno, data) = match listeners.node_socket(spec, &q) {
                Ok((fd, data)) => (Some(fd), None, data),
                Err(e) => {
                    log::warn!(
                        "{}[{}]: cannot listen on {} for pid {pid}: {e}; the instance's listen() fails with {e:?}",
                        spec.name,
                        slot.index,
                        q.target,
                    );
                    (None, Some(e), serde_json::Value::Null)
                }
            };
            let seq = a.next_seq();
            a.channel.send(&cluster::answer(&q, errno, &data, seq), fd);
        }
        _ => log::debug!("pid {pid} sent {m} over its Node IPC channel; ignored"),
    }
}
