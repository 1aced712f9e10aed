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
use std::io::{Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::config::ReadyCheck;
use crate::core::ExitKind;
use crate::supervisor::probes::http_status_ok;
use crate::supervisor::tokens::Band;

/// Enough of an HTTP answer to read the status line.
const MAX_RESPONSE: usize = 1024;

/// How a check ended: `Err` says how it failed, for the log line.
pub type Outcome = Result<(), String>;

#[derive(Debug)]
enum Check {
    /// A TCP connection is being made (for HTTP: the request sent, the answer read).
    Connecting {
        stream: TcpStream,
        token: Token,
        /// The request to send once connected (HTTP only), and whether it was sent.
        request: Option<String>,
        sent: bool,
        response: Vec<u8>,
    },
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
        let request = match probe {
            ReadyCheck::Http { host, port, path } => Some(format!(
                "GET {path} HTTP/1.0\r\nHost: {}:{port}\r\nUser-Agent: runner-health-check\r\nConnection: close\r\n\r\n",
                if host.contains(':') { format!("[{host}]") } else { host.clone() }
            )),
            _ => None,
        };
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
                stream,
                token,
                request,
                sent: false,
                response: Vec::new(),
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
        let outcome = advance(check)?;
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

/// Moves a connecting check along; `Some` once it has an outcome.
fn advance(check: &mut Check) -> Option<Outcome> {
    let Check::Connecting {
        stream,
        request,
        sent,
        response,
        ..
    } = check
    else {
        return None;
    };
    // A non-blocking connect has finished once the socket is writable: it worked if
    // there is no pending error and the socket has a peer.
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return Some(Err(format!("cannot connect: {e}"))),
        Ok(None) => {}
    }
    if stream.peer_addr().is_err() {
        return None;
    }
    let Some(req) = request else {
        return Some(Ok(()));
    };
    if !*sent {
        match stream.write(req.as_bytes()) {
            Ok(n) if n == req.len() => *sent = true,
            Ok(_) => return Some(Err("the request could not be sent at once".into())),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(e) => return Some(Err(format!("cannot send the request: {e}"))),
        }
    }
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.len() >= MAX_RESPONSE || response.contains(&b'\n') {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(e) => return Some(Err(format!("cannot read the answer: {e}"))),
        }
    }
    if http_status_ok(response) {
        return Some(Ok(()));
    }
    let line = response.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    Some(Err(if line.is_empty() {
        "the connection closed without an answer".to_string()
    } else {
        format!("answered `{}`", line.chars().take(80).collect::<String>())
    }))
}

fn close(registry: &Registry, check: &mut Check) {
    if let Check::Connecting { stream, .. } = check {
        let _ = registry.deregister(stream);
    }
}
