//! `ready_check` probes, run inside the event loop without blocking it: a non-blocking
//! TCP connect (and, for `http://`, one GET whose status line is read), or an `exec:`
//! command started by runner's own spawner so that the one reaper sees its exit.
//!
//! A probe exists while its instance is launching; it is retried every
//! [`RETRY_EVERY`] until it succeeds (the core then marks the instance online) or the
//! instance stops launching (`listen_timeout`, exit, stop).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::config::ReadyCheck;
use crate::readiness::http_check::Exchange;

/// Between two attempts of a failing probe.
pub const RETRY_EVERY: Duration = Duration::from_millis(250);
/// One attempt may not take longer than this.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
enum State {
    /// Waiting for the next attempt.
    Idle { at: Instant },
    /// A TCP connection is being made (or, for HTTP, the answer read).
    Connecting {
        exchange: Exchange,
        token: Token,
        deadline: Instant,
    },
    /// An `exec:` command is running as this pid.
    Running { pid: i32, deadline: Instant },
}

#[derive(Debug)]
struct Probe {
    check: ReadyCheck,
    /// The address resolved at load time (`AppSpec::ready_addr`).
    addr: Option<SocketAddr>,
    state: State,
}

/// What the loop must do for a probe that wants to run a command.
pub struct ExecRequest {
    pub instance_pid: i32,
    pub command: String,
}

/// Every probe in flight, keyed by the pid of the instance it probes.
#[derive(Debug)]
pub struct Probes {
    probes: HashMap<i32, Probe>,
    /// Number of the next probe socket's token in the band.
    next_token: u64,
    /// The `n`th token of the loop's band for probe sockets.
    token: fn(u64) -> Token,
    /// Whether a token is in that band.
    in_band: fn(Token) -> bool,
}

impl Probes {
    /// Probe sockets take their tokens from the loop's band for them (`token`, `in_band`).
    pub fn new(token: fn(u64) -> Token, in_band: fn(Token) -> bool) -> Probes {
        Probes {
            probes: HashMap::new(),
            next_token: 0,
            token,
            in_band,
        }
    }

    pub fn owns(&self, token: Token) -> bool {
        (self.in_band)(token)
    }

    /// Keeps exactly one probe per launching instance: adds new ones, drops the rest.
    pub fn sync(
        &mut self,
        registry: &Registry,
        launching: &[(i32, ReadyCheck, Option<SocketAddr>)],
        now: Instant,
    ) {
        let stale: Vec<i32> = self
            .probes
            .keys()
            .copied()
            .filter(|pid| !launching.iter().any(|(p, _, _)| p == pid))
            .collect();
        for pid in stale {
            if let Some(mut probe) = self.probes.remove(&pid) {
                close(registry, &mut probe.state);
            }
        }
        for (pid, check, addr) in launching {
            self.probes.entry(*pid).or_insert_with(|| Probe {
                check: check.clone(),
                addr: *addr,
                state: State::Idle { at: now },
            });
        }
    }

    /// The next moment a probe needs attention.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.probes
            .values()
            .map(|p| match &p.state {
                State::Idle { at } => *at,
                State::Connecting { deadline, .. } | State::Running { deadline, .. } => *deadline,
            })
            .min()
    }

    /// Starts due attempts and expires slow ones. Returns the commands to spawn.
    pub fn tick(&mut self, registry: &Registry, now: Instant) -> Vec<ExecRequest> {
        let mut execs = Vec::new();
        for (pid, probe) in self.probes.iter_mut() {
            match &probe.state {
                State::Idle { at } if *at <= now => match &probe.check {
                    ReadyCheck::Exec(cmd) => execs.push(ExecRequest {
                        instance_pid: *pid,
                        command: cmd.clone(),
                    }),
                    ReadyCheck::Tcp { host, port } | ReadyCheck::Http { host, port, .. } => {
                        let token = (self.token)(self.next_token);
                        self.next_token = self.next_token.wrapping_add(1);
                        probe.state = match connect(registry, probe.addr, host, *port, token) {
                            Some(stream) => State::Connecting {
                                exchange: Exchange::new(stream, &probe.check, "runner-ready-check"),
                                token,
                                deadline: now + ATTEMPT_TIMEOUT,
                            },
                            None => State::Idle {
                                at: now + RETRY_EVERY,
                            },
                        };
                    }
                },
                State::Connecting { deadline, .. } | State::Running { deadline, .. }
                    if *deadline <= now =>
                {
                    close(registry, &mut probe.state);
                    probe.state = State::Idle {
                        at: now + RETRY_EVERY,
                    };
                }
                _ => {}
            }
        }
        execs
    }

    /// An `exec:` probe command was started (or could not be).
    pub fn exec_started(&mut self, instance_pid: i32, result: Option<i32>, now: Instant) {
        if let Some(probe) = self.probes.get_mut(&instance_pid) {
            probe.state = match result {
                Some(pid) => State::Running {
                    pid,
                    deadline: now + ATTEMPT_TIMEOUT,
                },
                None => State::Idle {
                    at: now + RETRY_EVERY,
                },
            };
        }
    }

    /// A reaped pid: if it was a probe command, returns the instance it proves ready.
    pub fn command_exited(&mut self, pid: i32, success: bool, now: Instant) -> Option<Option<i32>> {
        let (instance, _) = self
            .probes
            .iter_mut()
            .find(|(_, p)| matches!(p.state, State::Running { pid: q, .. } if q == pid))?;
        let instance = *instance;
        if success {
            self.probes.remove(&instance);
            return Some(Some(instance));
        }
        if let Some(p) = self.probes.get_mut(&instance) {
            p.state = State::Idle {
                at: now + RETRY_EVERY,
            };
        }
        Some(None)
    }

    /// Socket readiness for a probe; returns the instance pid when its probe succeeded.
    pub fn ready(&mut self, registry: &Registry, token: Token, now: Instant) -> Option<i32> {
        let (pid, probe) = self
            .probes
            .iter_mut()
            .find(|(_, p)| matches!(&p.state, State::Connecting { token: t, .. } if *t == token))?;
        let pid = *pid;
        let State::Connecting { exchange, .. } = &mut probe.state else {
            return None;
        };
        match exchange.advance() {
            None => None,
            Some(Ok(())) => {
                if let Some(mut p) = self.probes.remove(&pid) {
                    close(registry, &mut p.state);
                }
                Some(pid)
            }
            Some(Err(_)) => {
                close(registry, &mut probe.state);
                probe.state = State::Idle {
                    at: now + RETRY_EVERY,
                };
                None
            }
        }
    }
}

/// Connects to the address resolved at load time, or to `host` when it is an IP literal;
/// never looks a name up here (DNS can take seconds and this runs in the loop).
fn connect(
    registry: &Registry,
    resolved: Option<SocketAddr>,
    host: &str,
    port: u16,
    token: Token,
) -> Option<TcpStream> {
    let addr: SocketAddr = match resolved {
        Some(a) => a,
        None => SocketAddr::new(host.parse::<std::net::IpAddr>().ok()?, port),
    };
    let mut stream = TcpStream::connect(addr).ok()?;
    registry
        .register(&mut stream, token, Interest::WRITABLE | Interest::READABLE)
        .ok()?;
    Some(stream)
}

/// Ends an attempt: deregisters a connection, or kills a command that is still running
/// with its whole process group (the shell and what it started; spawn makes the command a
/// group leader). The command is not reaped yet (its exit would have moved it out of
/// `Running`), so its pid, and with it the group id, cannot have been reused.
fn close(registry: &Registry, state: &mut State) {
    match state {
        State::Connecting { exchange, .. } => {
            let _ = registry.deregister(&mut exchange.stream);
        }
        State::Running { pid, .. } if *pid > 0 => {
            // SAFETY: a plain kill(2) of a process group runner started and has not reaped.
            unsafe {
                libc::kill(-*pid, libc::SIGKILL);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::http_check::http_status_ok;
    use std::io::{Read, Write};

    #[test]
    fn only_a_2xx_status_line_counts_as_ready() {
        assert!(http_status_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(http_status_ok(b"HTTP/1.0 204 No Content\r\n"));
        assert!(!http_status_ok(b"HTTP/1.1 503 Unavailable\r\n"));
        assert!(!http_status_ok(b"garbage"));
        assert!(!http_status_ok(b""));
    }

    fn wait_ready(probes: &mut Probes, poll: &mut mio::Poll, pid: i32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = mio::Events::with_capacity(8);
        while Instant::now() < deadline {
            probes.tick(poll.registry(), Instant::now());
            let _ = poll.poll(&mut events, Some(Duration::from_millis(50)));
            for e in events.iter() {
                if probes.ready(poll.registry(), e.token(), Instant::now()) == Some(pid) {
                    return true;
                }
            }
        }
        false
    }

    /// Probes whose tokens are all the loop's ones (the loop has nothing else here).
    fn any_probes() -> Probes {
        Probes::new(|n| Token(n as usize), |_| true)
    }

    #[test]
    fn a_tcp_probe_succeeds_once_something_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut poll = mio::Poll::new().unwrap();
        let mut probes = any_probes();
        let check = ReadyCheck::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        probes.sync(poll.registry(), &[(42, check, None)], Instant::now());
        assert!(wait_ready(&mut probes, &mut poll, 42));
    }

    #[test]
    fn an_http_probe_needs_a_2xx_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for (i, conn) in listener.incoming().take(2).enumerate() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 512];
                let _ = conn.read(&mut buf);
                let answer: &[u8] = if i == 0 {
                    b"HTTP/1.1 503 No\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\n\r\n"
                };
                let _ = conn.write_all(answer);
            }
        });
        let mut poll = mio::Poll::new().unwrap();
        let mut probes = any_probes();
        let check = ReadyCheck::Http {
            host: "127.0.0.1".into(),
            port,
            path: "/health".into(),
        };
        probes.sync(poll.registry(), &[(7, check, None)], Instant::now());
        assert!(wait_ready(&mut probes, &mut poll, 7));
        let _ = server.join();
    }

    #[test]
    fn a_probe_uses_the_address_resolved_at_load_and_never_looks_a_name_up() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut poll = mio::Poll::new().unwrap();
        let mut probes = any_probes();
        // A name that can't resolve: only the load-time address can make this succeed.
        let check = ReadyCheck::Tcp {
            host: "name.invalid".into(),
            port: addr.port(),
        };
        probes.sync(poll.registry(), &[(9, check, Some(addr))], Instant::now());
        assert!(wait_ready(&mut probes, &mut poll, 9));
    }
}
