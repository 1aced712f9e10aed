//! The `[runner] metrics` HTTP endpoint: `GET /metrics` served from the event loop.
//!
//! It is built so that no client can get in the way of supervision: a request head is
//! at most [`MAX_REQUEST`] bytes, a connection lives at most [`CONN_TIMEOUT`] from
//! accept to the last byte of the answer (a deadline in the loop, never a wait), at most
//! [`MAX_CONNS`] connections are open (more are closed at once), and one wake-up accepts
//! at most [`ACCEPTS_PER_TURN`] of them before the loop looks at everything else again.
//! Every answer closes its connection: there is no keep-alive to track.
//! With no connection open the endpoint has no deadline, so it costs no wake-up.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::supervisor::tokens::Band;

/// Largest request head (request line and headers) read; more is answered with 431.
pub const MAX_REQUEST: usize = 8 * 1024;
/// From accept to the end of the answer.
pub const CONN_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once; more are closed as soon as they are accepted.
pub const MAX_CONNS: usize = 32;
/// Accepts per wake-up, so a flood of connections cannot hold the loop.
pub const ACCEPTS_PER_TURN: usize = 64;

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    /// The answer, once known, and how much of it was written.
    answer: Option<(Vec<u8>, usize)>,
    deadline: Instant,
}

/// The listener and its connections.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
    conns: HashMap<u64, Conn>,
    next: u64,
    /// The last wake-up stopped accepting before the backlog was empty.
    pub more: bool,
}

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Answer(&'static str, &'static str),
}

impl MetricsServer {
    /// Binds `addr` now, so that a taken port is an error before anything starts.
    pub fn bind(addr: SocketAddr) -> Result<MetricsServer, String> {
        let std = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
        std.set_nonblocking(true)
            .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
        let addr = std.local_addr().unwrap_or(addr);
        Ok(MetricsServer {
            listener: TcpListener::from_std(std),
            addr,
            conns: HashMap::new(),
            next: 1,
            more: false,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn register(&mut self, registry: &Registry) -> std::io::Result<()> {
        registry.register(
            &mut self.listener,
            Band::Metrics.token(0),
            Interest::READABLE,
        )
    }

    pub fn owns(&self, token: Token) -> bool {
        matches!(Band::of(token), Some((Band::Metrics, _)))
    }

    /// The earliest connection deadline; None when no connection is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.values().map(|c| c.deadline).min()
    }

    /// Handles readiness of the listener or a connection. Returns the connections that
    /// asked for the metrics: the caller renders them and calls [`Self::answer_metrics`].
    pub fn handle(&mut self, registry: &Registry, token: Token, now: Instant) -> Vec<u64> {
        let Some((_, n)) = Band::of(token) else {
            return Vec::new();
        };
        if n == 0 {
            self.accept(registry, now);
            return Vec::new();
        }
        self.pump(registry, n)
    }

    /// Accepts up to [`ACCEPTS_PER_TURN`] connections; sets `more` when some may be left.
    pub fn accept(&mut self, registry: &Registry, now: Instant) {
        self.more = false;
        for _ in 0..ACCEPTS_PER_TURN {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.conns.len() >= MAX_CONNS {
                        // Closed unanswered: a scraper retries at its next interval.
                        drop(stream);
                        continue;
                    }
                    let n = self.next;
                    self.next = self.next.wrapping_add(1).max(1);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if registry
                        .register(&mut stream, Band::Metrics.token(n), interest)
                        .is_err()
                    {
                        continue;
                    }
                    self.conns.insert(
                        n,
                        Conn {
                            stream,
                            request: Vec::new(),
                            answer: None,
                            deadline: now + CONN_TIMEOUT,
                        },
                    );
                    // The request may already be there: edge-triggered readiness
                    // reports it as the first event anyway.
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of fds and the like: try again on the next wake-up.
                    log::debug!("metrics: accept: {e}");
                    self.more = true;
                    return;
                }
            }
        }
        self.more = true;
    }

    /// Reads and writes what a connection allows; returns it when it asks for metrics.
    fn pump(&mut self, registry: &Registry, n: u64) -> Vec<u64> {
        let Some(conn) = self.conns.get_mut(&n) else {
            return Vec::new();
        };
        if conn.answer.is_none() {
            match read_request(conn) {
                Reading::More => return Vec::new(),
                Reading::Closed => {
                    self.close(registry, n);
                    return Vec::new();
                }
                Reading::TooLarge => {
                    conn.answer = Some((
                        response(
                            "431 Request Header Fields Too Large",
                            "text/plain",
                            b"request too large\n",
                            None,
                        ),
                        0,
                    ));
                }
                Reading::Done(route) => match route {
                    Route::Metrics => return vec![n],
                    Route::Answer(status, allow) => {
                        let body = format!("{status}\n");
                        conn.answer = Some((
                            response(
                                status,
                                "text/plain",
                                body.as_bytes(),
                                Some(allow).filter(|a| !a.is_empty()),
                            ),
                            0,
                        ));
                    }
                },
            }
        }
        self.write(registry, n);
        Vec::new()
    }

    /// Sends the rendered metrics to connection `n`.
    pub fn answer_metrics(&mut self, registry: &Registry, n: u64, body: &str) {
        if let Some(conn) = self.conns.get_mut(&n) {
            conn.answer = Some((
                response(
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    body.as_bytes(),
                    None,
                ),
                0,
            ));
            self.write(registry, n);
        }
    }

    fn write(&mut self, registry: &Registry, n: u64) {
        let Some(conn) = self.conns.get_mut(&n) else {
            return;
        };
        let Some((answer, written)) = conn.answer.as_mut() else {
            return;
        };
        while *written < answer.len() {
            match conn.stream.write(&answer[*written..]) {
                Ok(0) => break,
                Ok(k) => *written += k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = conn.stream.shutdown(std::net::Shutdown::Write);
        self.close(registry, n);
    }

    /// Closes connections past their deadline.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let late: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(n, _)| *n)
            .collect();
        for n in late {
            self.close(registry, n);
        }
    }

    fn close(&mut self, registry: &Registry, n: u64) {
        if let Some(mut conn) = self.conns.remove(&n) {
            let _ = registry.deregister(&mut conn.stream);
        }
    }
}

enum Reading {
    More,
    Closed,
    TooLarge,
    Done(Route),
}

fn read_request(conn: &mut Conn) -> Reading {
    let mut buf = [0u8; 2048];
    loop {
        let room = MAX_REQUEST + 1 - conn.request.len().min(MAX_REQUEST + 1);
        if room == 0 {
            return Reading::TooLarge;
        }
        let want = room.min(buf.len());
        match conn.stream.read(&mut buf[..want]) {
            Ok(0) => return Reading::Closed,
            Ok(k) => {
                // Only the new bytes (and 3 before them) can complete the head.
                let from = conn.request.len().saturating_sub(3);
                conn.request.extend_from_slice(&buf[..k]);
                if let Some(end) = head_end(&conn.request[from..]) {
                    return Reading::Done(route(&conn.request[..from + end]));
                }
                if conn.request.len() > MAX_REQUEST {
                    return Reading::TooLarge;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Reading::More,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Reading::Closed,
        }
    }
}

/// Where the request head ends (after its blank line), if it has.
fn head_end(b: &[u8]) -> Option<usize> {
    if let Some(i) = b.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some(i + 4);
    }
    b.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
}

/// Only `GET /metrics` is served: another path is 404, another method 405.
fn route(head: &[u8]) -> Route {
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::Answer("400 Bad Request", "");
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Route::Answer("400 Bad Request", "");
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Route::Answer("404 Not Found", "");
    }
    if method != "GET" {
        return Route::Answer("405 Method Not Allowed", "GET");
    }
    Route::Metrics
}

fn response(status: &str, content_type: &str, body: &[u8], allow: Option<&str>) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = allow {
        head.push_str(&format!("Allow: {a}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::Answer("405 Method Not Allowed", "GET")
        );
        assert_eq!(
            route(b"GET / HTTP/1.1\r\n\r\n"),
            Route::Answer("404 Not Found", "")
        );
        assert_eq!(
            route(b"GET /metricsx HTTP/1.1\r\n\r\n"),
            Route::Answer("404 Not Found", "")
        );
        assert_eq!(
            route(b"garbage\r\n\r\n"),
            Route::Answer("400 Bad Request", "")
        );
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }
}
