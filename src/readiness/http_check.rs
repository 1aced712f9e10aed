//! The network half of `ready_check` and `health_check`: one non-blocking TCP connect
//! and, for `http://`, one GET whose status line is read — driven by socket readiness,
//! so the loop never waits on it.

use std::io::{Read, Write};

use mio::net::TcpStream;

use crate::config::ReadyCheck;

/// Enough of an HTTP answer to read the status line.
const MAX_RESPONSE: usize = 1024;

/// A check's connection, from connect to outcome.
#[derive(Debug)]
pub struct Exchange {
    pub stream: TcpStream,
    /// The request to send once connected (HTTP only), and whether it was sent.
    request: Option<String>,
    sent: bool,
    response: Vec<u8>,
}

impl Exchange {
    /// `agent` names the kind of check in the request's `User-Agent`.
    pub fn new(stream: TcpStream, check: &ReadyCheck, agent: &str) -> Exchange {
        let request = match check {
            ReadyCheck::Http { host, port, path } => {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                Some(format!(
                    "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
                ))
            }
            _ => None,
        };
        Exchange {
            stream,
            request,
            sent: false,
            response: Vec::new(),
        }
    }

    /// Moves the exchange along on socket readiness; `Some` once it has an outcome, with
    /// what went wrong on failure.
    pub fn advance(&mut self) -> Option<Result<(), String>> {
        // A non-blocking connect has finished once the socket is writable: it worked if
        // there is no pending error and the socket has a peer.
        match self.stream.take_error() {
            Ok(Some(e)) | Err(e) => return Some(Err(format!("cannot connect: {e}"))),
            Ok(None) => {}
        }
        if self.stream.peer_addr().is_err() {
            return None;
        }
        let Some(req) = &self.request else {
            return Some(Ok(()));
        };
        if !self.sent {
            match self.stream.write(req.as_bytes()) {
                Ok(n) if n == req.len() => self.sent = true,
                Ok(_) => return Some(Err("the request could not be sent at once".into())),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) => return Some(Err(format!("cannot send the request: {e}"))),
            }
        }
        let mut buf = [0u8; 512];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.response.extend_from_slice(&buf[..n]);
                    if self.response.len() >= MAX_RESPONSE || self.response.contains(&b'\n') {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) => return Some(Err(format!("cannot read the answer: {e}"))),
            }
        }
        if http_status_ok(&self.response) {
            return Some(Ok(()));
        }
        let line = self.response.split(|b| *b == b'\n').next().unwrap_or(&[]);
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        Some(Err(if line.is_empty() {
            "the connection closed without an answer".to_string()
        } else {
            format!("answered `{}`", line.chars().take(80).collect::<String>())
        }))
    }
}

/// `HTTP/1.x 2xx ...` on the first line.
pub fn http_status_ok(response: &[u8]) -> bool {
    let line = response.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let mut parts = line.split(|b| *b == b' ');
    let proto = parts.next().unwrap_or(&[]);
    let code = parts.next().unwrap_or(&[]);
    proto.starts_with(b"HTTP/") && code.len() == 3 && code[0] == b'2'
}
