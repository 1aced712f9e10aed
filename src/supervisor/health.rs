//! `health_check` probes in flight, run inside the event loop without blocking it: a
//! non-blocking TCP connect to the address resolved when the file was loaded (and, for
//! `http://`, one GET whose status line is read), or an `exec:` command started by
//! runner's own spawner in a process group of its own, so that the one reaper sees its
//! exit and a timeout can kill everything it started.
//!
//! When to check, and the timeout, are core deadlines (`core::health`): this module
//! only performs a check when asked and reports how it ended. At most one check per
//! instance exists at a time, keyed by the instance's pid.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::config::ReadyCheck;
use crate::core::ExitKind;
use crate::readiness::http_check::Exchange;
use crate::supervisor::tokens::Band;

/// How a check ended: `Err` says how it failed, for the log line.
pub type Outcome = Result<(), String>;

#[derive(Debug)]
enum Check {
    /// A TCP connection is being made (for HTTP: the request sent, the answer read).
    Connecting { exchange: Exchange, token: Token },
    /// An `exec:` command runs as this pid (and process group).
    Running { pid: i32 },
}

/// Every health check in flight.
#[derive(Debug, Default)]
pub struct HealthChecks {
    checks: HashMap<i32, Check>,
    /// `exec:` commands killed at their timeout and not reaped yet: their exit is no news.
    killed: HashSet<i32>,
    next_token: u64,
}

impl HealthChecks {
    pub fn owns(&self, token: Token) -> bool {
        matches!(Band::of(token), Some((Band::Health, _)))
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Starts a `tcp://` or `http://` check of `instance`; an immediate failure is returned.
    pub fn connect(
        &mut self,
        registry: &Registry,
        instance: i32,
        probe: &ReadyCheck,
        addr: SocketAddr,
    ) -> Option<Outcome> {
        let mut stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => return Some(Err(format!("cannot connect to {addr}: {e}"))),
        };
        let token = Band::Health.token(self.next_token);
        self.next_token = self.next_token.wrapping_add(1);
        if let Err(e) =
            registry.register(&mut stream, token, Interest::WRITABLE | Interest::READABLE)
        {
            return Some(Err(format!("cannot watch the connection: {e}")));
        }
        self.checks.insert(
            instance,
            Check::Connecting {
                exchange: Exchange::new(stream, probe, "runner-health-check"),
                token,
            },
        );
        None
    }

    /// An `exec:` check of `instance` was started as `pid`.
    pub fn running(&mut self, instance: i32, pid: i32) {
        self.checks.insert(instance, Check::Running { pid });
    }

    /// Socket readiness of a check: the instance and the outcome once it is known.
    pub fn ready(&mut self, registry: &Registry, token: Token) -> Option<(i32, Outcome)> {
        let (instance, check) = self
            .checks
            .iter_mut()
            .find(|(_, c)| matches!(c, Check::Connecting { token: t, .. } if *t == token))?;
        let instance = *instance;
        let Check::Connecting { exchange, .. } = check else {
            return None;
        };
        let outcome = exchange.advance()?;
        if let Some(mut c) = self.checks.remove(&instance) {
            close(registry, &mut c);
        }
        Some((instance, outcome))
    }

    /// A reaped pid. `None`: not a health check's. `Some(None)`: a killed check, or one
    /// whose instance is no longer checked. `Some(Some(..))`: a check that ended.
    pub fn command_exited(&mut self, pid: i32, exit: ExitKind) -> Option<Option<(i32, Outcome)>> {
        if self.killed.remove(&pid) {
            return Some(None);
        }
        let instance = self
            .checks
            .iter()
            .find(|(_, c)| matches!(c, Check::Running { pid: p } if *p == pid))
            .map(|(i, _)| *i)?;
        self.checks.remove(&instance);
        let outcome = match exit {
            ExitKind::Code(0) => Ok(()),
            e => Err(format!("the command ended with {e}")),
        };
        Some(Some((instance, outcome)))
    }

    /// Drops the check of `instance`. Returns the pid of an `exec:` command still running,
    /// which the caller kills with its whole process group and tree.
    pub fn abort(&mut self, registry: &Registry, instance: i32) -> Option<i32> {
        let mut check = self.checks.remove(&instance)?;
        close(registry, &mut check);
        match check {
            Check::Running { pid } => {
                self.killed.insert(pid);
                Some(pid)
            }
            Check::Connecting { .. } => None,
        }
    }

    /// Instances with a check in flight.
    pub fn instances(&self) -> Vec<i32> {
        self.checks.keys().copied().collect()
    }
}

fn close(registry: &Registry, check: &mut Check) {
    if let Check::Connecting { exchange, .. } = check {
        let _ = registry.deregister(&mut exchange.stream);
    }
}
