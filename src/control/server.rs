//! The control socket, served inside the supervisor's mio loop: accept, check the peer's
//! uid, split lines, parse requests, queue replies. Everything is non-blocking and nothing
//! that comes from the network or the OS can panic (runner may be PID 1).
//!
//! The caller's contract: every request returned by [`Server::handle`] gets exactly one
//! [`Server::reply`], now or later. A connection whose client has shut down its writing
//! side (`printf '{"cmd":"list"}\n' | socat - UNIX:...`) stays open until its requests are
//! answered, then closes.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, MsgFlags};
use nix::sys::stat::{umask, Mode};

use super::protocol::{parse_request, Reply, Request};

/// Identifies one connection for [`Server::reply`]. Never reused while the server lives,
/// so a late reply can never reach a newer client that got the same slot.
pub type ConnId = usize;

/// A request line longer than this (no newline within it) is refused and its connection
/// closed.
pub const MAX_LINE: usize = 64 * 1024;
/// Reply bytes queued for one connection beyond which the client counts as not reading and
/// is disconnected.
pub const MAX_PENDING_OUTPUT: usize = 4 * 1024 * 1024;
/// Concurrent connections served by default; beyond them new connections are closed at once.
pub const DEFAULT_MAX_CONNS: usize = 1024;
/// Longest path a Unix socket address can hold (`sun_path` minus the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Requests of one connection awaiting their replies beyond which it is disconnected.
pub const MAX_IN_FLIGHT: usize = 4096;
const READ_CHUNK: usize = 16 * 1024;
/// A connection with no request awaiting its reply and no traffic for this long is closed:
/// a client holding connections open can't keep `runner status` (often the container's
/// health check) out. Clients send their request at once; a long operation (a reload) has
/// a request in flight and is never cut.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a streaming client (`runner logs --follow`) may have unwritten before more lines
/// for it are held back (and, upstream, dropped): its connection never grows beyond this
/// plus one batch.
pub const STREAM_CAP: usize = 64 * 1024;

/// What became of bytes offered to a streaming client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamed {
    /// Taken (and written as far as the socket allowed).
    Queued,
    /// The client has not read what it already has: try again later.
    Full,
    /// The connection is closed.
    Gone,
}

/// The listening control socket and its connections.
pub struct Server {
    path: PathBuf,
    listener: UnixListener,
    /// Device and inode of the socket file we bound, so that `Drop` removes only ours.
    identity: (u64, u64),
    base: Option<Token>,
    max_conns: usize,
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    by_id: HashMap<ConnId, usize>,
    next_id: ConnId,
    euid: u32,
    /// accept failed for want of fds; clients may wait in the backlog.
    accept_stalled: bool,
    idle_timeout: Duration,
}

struct Conn {
    id: ConnId,
    stream: UnixStream,
    /// Bytes received that do not yet form a complete line.
    input: Vec<u8>,
    /// Reply bytes not yet written; `out_pos` of them already went out.
    output: Vec<u8>,
    out_pos: usize,
    /// WRITABLE interest is registered (only while output is pending).
    writable: bool,
    /// The client shut down its writing side.
    read_closed: bool,
    /// Requests handed to the caller and not yet replied to.
    in_flight: usize,
    /// The last event or reply on this connection, for the idle timeout.
    last_active: Instant,
    /// Follows a stream (`logs --follow`): it ends when the client closes its side.
    streaming: bool,
}

impl Conn {
    fn pending(&self) -> usize {
        self.output.len() - self.out_pos
    }
}

/// What to do with a connection after an operation on it.
enum Next {
    Keep,
    Close(&'static str),
}

impl Server {
    /// Binds `path` with mode 0600. If the path exists: a live runner answering there is an
    /// error ("another runner is already listening on PATH"); a stale socket file (connect
    /// refused) is removed and replaced; anything that is not a socket is never touched.
    pub fn bind(path: &Path) -> Result<Server, String> {
        let shown = path.display();
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(format!(
                "control socket path {shown} is too long ({} bytes, at most {MAX_SOCKET_PATH}); \
                 pass a shorter --socket",
                path.as_os_str().len()
            ));
        }
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot check control socket {shown}: {e}")),
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(format!(
                    "{shown} exists and is not a socket; refusing to replace it \
                     (remove it, or pass --socket)"
                ))
            }
            Ok(_) => match probe(path) {
                Probe::Live => {
                    return Err(format!("another runner is already listening on {shown}"))
                }
                Probe::Gone => {}
                Probe::Stale => {
                    log::debug!("replacing stale control socket {shown}");
                    match std::fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(format!("cannot remove stale control socket {shown}: {e}"))
                        }
                    }
                }
                Probe::Error(e) => {
                    return Err(format!(
                        "{shown} exists and cannot be checked ({e}); refusing to replace it \
                         (remove it, or pass --socket)"
                    ))
                }
            },
        }

        let old = umask(Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        umask(old);
        let listener = bound.map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => {
                format!("another process created {shown} while runner was starting")
            }
            _ => format!("cannot create control socket {shown}: {e}"),
        })?;
        let cleanup = |msg: String| {
            let _ = std::fs::remove_file(path);
            msg
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| cleanup(format!("cannot chmod control socket {shown}: {e}")))?;
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| cleanup(format!("cannot stat control socket {shown}: {e}")))?;
        Ok(Server {
            path: path.to_path_buf(),
            listener,
            identity: (meta.dev(), meta.ino()),
            base: None,
            max_conns: DEFAULT_MAX_CONNS,
            idle_timeout: IDLE_TIMEOUT,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            next_id: 0,
            euid: nix::unistd::geteuid().as_raw(),
            accept_stalled: false,
        })
    }

    /// Sets how long an idle connection stays open (default [`IDLE_TIMEOUT`]).
    pub fn set_idle_timeout(&mut self, timeout: Duration) {
        self.idle_timeout = timeout;
    }

    /// Sets how many connections are served at once (default [`DEFAULT_MAX_CONNS`]); call
    /// before [`Server::register`], since it decides the token range.
    pub fn set_max_conns(&mut self, max_conns: usize) {
        if self.base.is_none() {
            self.max_conns = max_conns.max(1);
        }
    }

    /// The tokens the server uses once registered: `base` for the listener and
    /// `base+1 ..= base+max_conns` for connections. The caller keeps them free.
    pub fn tokens(&self, base: Token) -> std::ops::RangeInclusive<usize> {
        base.0..=base.0.saturating_add(self.max_conns)
    }

    /// Registers the listener with `registry`; the server uses tokens base, base+1, ...
    /// (base for the listener, base+1+n for connection slot n), at most `max_conns`
    /// connections at once. Beyond that, new connections are accepted and closed at once.
    pub fn register(&mut self, registry: &Registry, base: Token) -> io::Result<()> {
        if base.0.checked_add(self.max_conns).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "control socket token range overflows",
            ));
        }
        registry.register(&mut self.listener, base, Interest::READABLE)?;
        self.base = Some(base);
        Ok(())
    }

    /// Whether `token` belongs to this server.
    pub fn owns(&self, token: Token) -> bool {
        match self.base {
            Some(base) => token.0 >= base.0 && token.0 - base.0 <= self.max_conns,
            None => false,
        }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.by_id.len()
    }

    /// Handles a readiness event for one of our tokens and returns the well-formed requests
    /// received. Malformed lines are answered here with `Reply::error("bad request: ...")`;
    /// a line over [`MAX_LINE`] is answered with an error and its connection closed; a
    /// client whose uid is neither ours nor root's is refused at accept.
    pub fn handle(&mut self, registry: &Registry, token: Token) -> Vec<(ConnId, Request)> {
        let mut requests = Vec::new();
        let Some(base) = self.base else {
            return requests;
        };
        if token == base {
            self.accept_all(registry);
            return requests;
        }
        if !self.owns(token) {
            return requests;
        }
        let slot = token.0 - base.0 - 1;
        let next = match self.slots.get_mut(slot).and_then(Option::as_mut) {
            Some(conn) => {
                conn.last_active = Instant::now();
                service(conn, registry, token, &mut requests)
            }
            None => return requests, // a stale event for a connection already closed
        };
        if let Next::Close(why) = next {
            self.close(registry, slot, why);
        }
        requests
    }

    /// Queues a reply line for a connection (if it is still open) and writes what the socket
    /// takes now; the rest goes out when it becomes writable. A client with more than
    /// [`MAX_PENDING_OUTPUT`] unread is disconnected.
    pub fn reply(&mut self, registry: &Registry, conn: ConnId, reply: &Reply) {
        let Some(&slot) = self.by_id.get(&conn) else {
            log::debug!("control: connection {conn} closed before its reply");
            return;
        };
        let Some(base) = self.base else { return };
        let token = Token(base.0 + 1 + slot);
        let next = match self.slots.get_mut(slot).and_then(Option::as_mut) {
            Some(c) => {
                c.in_flight = c.in_flight.saturating_sub(1);
                c.last_active = Instant::now();
                queue(c, reply);
                if c.pending() > MAX_PENDING_OUTPUT {
                    Next::Close("client is not reading its replies")
                } else {
                    flush_then_finished(c, registry, token)
                }
            }
            None => return,
        };
        if let Next::Close(why) = next {
            self.close(registry, slot, why);
        }
    }

    fn accept_all(&mut self, registry: &Registry) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => {
                    self.accept_stalled = false;
                    stream
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog, keep running.
                    // The listener raises no new event for clients already waiting, so
                    // accepting is retried when an fd is freed and on a timer.
                    if !self.accept_stalled {
                        log::warn!("control socket {}: accept: {e}", self.path.display());
                    }
                    self.accept_stalled = true;
                    return;
                }
            };
            match socket::getsockopt(&stream, sockopt::PeerCredentials) {
                Ok(cred) if peer_allowed(cred.uid(), self.euid) => {}
                Ok(cred) => {
                    log::warn!(
                        "control socket: refused a client with uid {} (pid {})",
                        cred.uid(),
                        cred.pid()
                    );
                    let msg = format!(
                        "permission denied: uid {} is neither runner's ({}) nor root",
                        cred.uid(),
                        self.euid
                    );
                    refuse(&stream, &Reply::error(msg));
                    continue;
                }
                Err(e) => {
                    log::debug!("control socket: cannot read peer credentials: {e}");
                    continue;
                }
            }
            // Full: the connection idle the longest makes room, so a new client (the
            // health check) is always served while others merely hold connections.
            let slot = match self.free_slot() {
                Some(slot) => slot,
                None => match self.longest_idle() {
                    Some(old) => {
                        self.close_quietly(registry, old, "making room for a new client");
                        match self.free_slot() {
                            Some(slot) => slot,
                            None => continue,
                        }
                    }
                    None => {
                        log::debug!(
                            "control socket: {} connections busy, closing a new one",
                            self.max_conns
                        );
                        continue;
                    }
                },
            };
            let Some(base) = self.base else { return };
            let mut conn = Conn {
                id: self.next_id,
                stream,
                input: Vec::new(),
                output: Vec::new(),
                out_pos: 0,
                writable: false,
                read_closed: false,
                in_flight: 0,
                last_active: Instant::now(),
                streaming: false,
            };
            let token = Token(base.0 + 1 + slot);
            if let Err(e) = registry.register(&mut conn.stream, token, Interest::READABLE) {
                log::warn!("control socket: cannot watch a new connection: {e}");
                self.free.push(slot);
                continue;
            }
            self.next_id = self.next_id.wrapping_add(1);
            self.by_id.insert(conn.id, slot);
            if let Some(s) = self.slots.get_mut(slot) {
                *s = Some(conn);
            }
        }
    }

    fn free_slot(&mut self) -> Option<usize> {
        if let Some(slot) = self.free.pop() {
            return Some(slot);
        }
        if self.slots.len() < self.max_conns {
            self.slots.push(None);
            return Some(self.slots.len() - 1);
        }
        None
    }

    fn close(&mut self, registry: &Registry, slot: usize, why: &str) {
        if self.close_quietly(registry, slot, why) && self.accept_stalled {
            self.accept_all(registry);
        }
    }

    /// Closes a connection without retrying stalled accepts (callers inside accept_all).
    fn close_quietly(&mut self, registry: &Registry, slot: usize, why: &str) -> bool {
        let Some(mut conn) = self.slots.get_mut(slot).and_then(Option::take) else {
            return false;
        };
        log::debug!("control: closing connection {}: {why}", conn.id);
        let _ = registry.deregister(&mut conn.stream);
        self.by_id.remove(&conn.id);
        self.free.push(slot);
        true
    }

    /// The open connection with nothing in flight that has been quiet the longest.
    fn longest_idle(&self) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
            .filter(|(_, c)| c.in_flight == 0)
            .min_by_key(|(_, c)| c.last_active)
            .map(|(i, _)| i)
    }

    /// When the next idle connection times out; None when none is open (no wake-ups).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .flatten()
            .filter(|c| c.in_flight == 0)
            .map(|c| c.last_active + self.idle_timeout)
            .min()
    }

    /// Closes the connections idle for [`IDLE_TIMEOUT`] at `now`.
    pub fn expire_idle(&mut self, registry: &Registry, now: Instant) {
        if self.next_deadline().is_none_or(|d| d > now) {
            return;
        }
        let expired: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
            .filter(|(_, c)| c.in_flight == 0 && c.last_active + self.idle_timeout <= now)
            .map(|(i, _)| i)
            .collect();
        for slot in expired {
            self.close(registry, slot, "idle");
        }
    }

    /// Whether the connection `conn` is still open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.by_id.contains_key(&conn)
    }

    /// Marks `conn` as following a stream: its request stays unanswered, and the client
    /// closing its side ends it (a follower never half-closes to say it is done sending).
    pub fn set_streaming(&mut self, conn: ConnId) {
        if let Some(c) = self.conn_mut(conn) {
            c.streaming = true;
        }
    }

    fn conn_mut(&mut self, conn: ConnId) -> Option<&mut Conn> {
        let slot = *self.by_id.get(&conn)?;
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    /// Offers `bytes` (whole JSON lines) to a streaming client: taken only while less than
    /// [`STREAM_CAP`] waits unwritten for it, so a client that does not read costs bounded
    /// memory and never a blocking write.
    pub fn stream(&mut self, registry: &Registry, conn: ConnId, bytes: &[u8]) -> Streamed {
        let (Some(&slot), Some(base)) = (self.by_id.get(&conn), self.base) else {
            return Streamed::Gone;
        };
        let token = Token(base.0 + 1 + slot);
        let next = match self.slots.get_mut(slot).and_then(Option::as_mut) {
            Some(c) if c.pending() >= STREAM_CAP => return Streamed::Full,
            Some(c) => {
                c.output.extend_from_slice(bytes);
                flush(c, registry, token)
            }
            None => return Streamed::Gone,
        };
        match next {
            Next::Keep => Streamed::Queued,
            Next::Close(why) => {
                self.close(registry, slot, why);
                Streamed::Gone
            }
        }
    }

    /// Queues `bytes` (whole JSON lines): the `logs` backlog, bounded by the ring buffers
    /// rather than by [`MAX_PENDING_OUTPUT`]. With `answered`, the last line was the
    /// request's final reply.
    pub fn send_lines(&mut self, registry: &Registry, conn: ConnId, bytes: &[u8], answered: bool) {
        let (Some(&slot), Some(base)) = (self.by_id.get(&conn), self.base) else {
            return;
        };
        let token = Token(base.0 + 1 + slot);
        let next = match self.slots.get_mut(slot).and_then(Option::as_mut) {
            Some(c) => {
                if answered {
                    c.in_flight = c.in_flight.saturating_sub(1);
                }
                c.output.extend_from_slice(bytes);
                flush_then_finished(c, registry, token)
            }
            None => return,
        };
        if let Next::Close(why) = next {
            self.close(registry, slot, why);
        }
    }

    /// Has the kernel send runner SIGIO (with `si_code` POLL_IN) when a client connects,
    /// for a loop that waits in `sigtimedwait` rather than epoll (single-program mode, see
    /// `supervisor/signals.rs`). The listener stays registered with the loop as well.
    pub fn signal_on_connect(&self) -> io::Result<()> {
        let fd = self.listener.as_raw_fd();
        // SAFETY: fcntl on our own listening fd, with integer arguments only.
        let ok = unsafe {
            libc::fcntl(fd, libc::F_SETOWN, libc::getpid()) == 0
                && libc::fcntl(fd, F_SETSIG, libc::SIGIO) == 0
                && {
                    let flags = libc::fcntl(fd, libc::F_GETFL);
                    flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_ASYNC) == 0
                }
        };
        if ok {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Whether clients may be waiting in the backlog because runner ran out of fds.
    pub fn accept_stalled(&self) -> bool {
        self.accept_stalled
    }

    /// Tries again to accept clients left in the backlog.
    pub fn retry_accept(&mut self, registry: &Registry) {
        if self.accept_stalled {
            self.accept_all(registry);
        }
    }
}

impl Drop for Server {
    /// Removes the socket file, only if it is still the one we bound (a newer runner may
    /// have replaced it).
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.file_type().is_socket() && (meta.dev(), meta.ino()) == self.identity {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// fcntl's F_SETSIG (Linux's fcntl.h), which the libc crate does not name: with it the
/// kernel's SIGIO carries `si_code` POLL_IN, telling it from a SIGIO a process sent.
const F_SETSIG: libc::c_int = 10;

/// Only runner's own user and root may talk to it.
pub fn peer_allowed(peer_uid: u32, our_euid: u32) -> bool {
    peer_uid == our_euid || peer_uid == 0
}

enum Probe {
    Live,
    Stale,
    Gone,
    Error(io::Error),
}

/// Is someone listening on the socket file at `path`? Non-blocking, so a live runner with a
/// full backlog (EAGAIN) counts as live rather than hanging us.
fn probe(path: &Path) -> Probe {
    match UnixStream::connect(path) {
        Ok(_) => Probe::Live,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Probe::Live,
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Probe::Stale,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Probe::Gone,
        Err(e) => Probe::Error(e),
    }
}

/// Writes a last reply to a connection we are about to drop, without waiting.
fn refuse(stream: &UnixStream, reply: &Reply) {
    let mut line = encode(reply);
    line.push(b'\n');
    let _ = socket::send(stream.as_raw_fd(), &line, MsgFlags::MSG_NOSIGNAL);
}

pub(crate) fn encode(reply: &Reply) -> Vec<u8> {
    serde_json::to_vec(reply).unwrap_or_else(|e| {
        format!(r#"{{"ok":false,"error":"cannot encode reply: {e}"}}"#)
            .replace('\n', " ")
            .into_bytes()
    })
}

fn queue(conn: &mut Conn, reply: &Reply) {
    if conn.out_pos > 0 && conn.out_pos == conn.output.len() {
        conn.output.clear();
        conn.out_pos = 0;
    }
    // Straight into the buffer: a 5,000-row `list` is about 1 MB.
    let start = conn.output.len();
    if serde_json::to_writer(&mut conn.output, reply).is_err() {
        conn.output.truncate(start);
        conn.output.extend_from_slice(&encode(reply));
    }
    conn.output.push(b'\n');
}

/// Writes pending output until done or the socket is full, and keeps WRITABLE interest
/// registered exactly while output is pending.
fn flush(conn: &mut Conn, registry: &Registry, token: Token) -> Next {
    while conn.out_pos < conn.output.len() {
        let fd = conn.stream.as_raw_fd();
        match socket::send(fd, &conn.output[conn.out_pos..], MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Next::Close("write returned 0"),
            Ok(n) => conn.out_pos += n,
            Err(Errno::EAGAIN) => break,
            Err(Errno::EINTR) => continue,
            Err(_) => return Next::Close("client went away"),
        }
    }
    if conn.out_pos == conn.output.len() {
        conn.output.clear();
        conn.out_pos = 0;
    } else if conn.out_pos > 64 * 1024 && conn.out_pos * 2 > conn.output.len() {
        conn.output.drain(..conn.out_pos);
        conn.out_pos = 0;
    }
    let want_writable = conn.pending() > 0;
    if want_writable != conn.writable {
        let interest = if want_writable {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if registry
            .reregister(&mut conn.stream, token, interest)
            .is_err()
        {
            return Next::Close("cannot change interest");
        }
        conn.writable = want_writable;
    }
    Next::Keep
}

/// Writes what the socket takes now; then whether the connection is done.
fn flush_then_finished(c: &mut Conn, registry: &Registry, token: Token) -> Next {
    match flush(c, registry, token) {
        Next::Keep => finished(c),
        close => close,
    }
}

/// A connection is done when its client stopped sending and everything it asked for has
/// been answered and written.
fn finished(conn: &Conn) -> Next {
    if conn.read_closed && conn.in_flight == 0 && conn.pending() == 0 {
        Next::Close("client finished")
    } else {
        Next::Keep
    }
}

/// Writes what is pending, reads what arrived, hands complete requests over.
fn service(
    conn: &mut Conn,
    registry: &Registry,
    token: Token,
    requests: &mut Vec<(ConnId, Request)>,
) -> Next {
    if let Next::Close(why) = flush(conn, registry, token) {
        return Next::Close(why);
    }
    if !conn.read_closed {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) if conn.streaming => return Next::Close("follower left"),
                Ok(0) => {
                    conn.read_closed = true;
                    // An unterminated last line still counts (`printf '...' | socat`).
                    if !conn.input.is_empty() {
                        conn.input.push(b'\n');
                    }
                    if let Next::Close(why) = take_lines(conn, requests) {
                        return Next::Close(why);
                    }
                    break;
                }
                Ok(n) => {
                    conn.input.extend_from_slice(&buf[..n]);
                    if let Next::Close(why) = take_lines(conn, requests) {
                        return Next::Close(why);
                    }
                    // A client that floods us is cut off rather than served forever.
                    if conn.in_flight > MAX_IN_FLIGHT {
                        return Next::Close("too many requests awaiting replies");
                    }
                    if conn.pending() > MAX_PENDING_OUTPUT {
                        return Next::Close("client is not reading its replies");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Next::Close("read error"),
            }
        }
    }
    // Error replies to bad lines were queued; write them now.
    if let Next::Close(why) = flush(conn, registry, token) {
        return Next::Close(why);
    }
    if conn.pending() > MAX_PENDING_OUTPUT {
        return Next::Close("client is not reading its replies");
    }
    finished(conn)
}

/// Splits complete lines off `conn.input`: requests go to `requests`, bad lines get an error
/// reply queued, an over-long line gets an error reply and closes the connection.
fn take_lines(conn: &mut Conn, requests: &mut Vec<(ConnId, Request)>) -> Next {
    let mut start = 0;
    while let Some(pos) = conn.input[start..].iter().position(|&b| b == b'\n') {
        let end = start + pos;
        if end - start > MAX_LINE {
            return too_long(conn);
        }
        let line = trim(&conn.input[start..end]);
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        match parse_request(line) {
            Ok(req) => {
                conn.in_flight += 1;
                requests.push((conn.id, req));
            }
            Err(e) => queue(conn, &Reply::error(e)),
        }
    }
    conn.input.drain(..start);
    if conn.input.len() > MAX_LINE {
        return too_long(conn);
    }
    Next::Keep
}

fn too_long(conn: &mut Conn) -> Next {
    conn.input.clear();
    queue(
        conn,
        &Reply::error(format!(
            "bad request: line longer than {} KiB",
            MAX_LINE / 1024
        )),
    );
    // One try to write what is pending, then close whatever the outcome: never wait on a
    // client that floods us.
    let pending = &conn.output[conn.out_pos..];
    let _ = socket::send(conn.stream.as_raw_fd(), pending, MsgFlags::MSG_NOSIGNAL);
    Next::Close("request line too long")
}

fn trim(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., last] = line {
        if last.is_ascii_whitespace() {
            line = rest;
        } else {
            break;
        }
    }
    while let [first, rest @ ..] = line {
        if first.is_ascii_whitespace() {
            line = rest;
        } else {
            break;
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream as StdStream;
    use std::time::{Duration, Instant};

    const BASE: Token = Token(100);

    struct Harness {
        poll: Poll,
        events: Events,
        server: Server,
        dir: PathBuf,
    }

    impl Harness {
        fn new(tag: &str) -> Harness {
            let dir = temp_dir(tag);
            let mut server = Server::bind(&dir.join("runner.sock")).unwrap();
            let poll = Poll::new().unwrap();
            server.register(poll.registry(), BASE).unwrap();
            Harness {
                poll,
                events: Events::with_capacity(256),
                server,
                dir,
            }
        }

        fn path(&self) -> PathBuf {
            self.server.path().to_path_buf()
        }

        /// One turn of the loop: wait up to `timeout`, handle what came in.
        fn turn(&mut self, timeout: Duration) -> Vec<(ConnId, Request)> {
            let mut out = Vec::new();
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return out,
                Err(e) => panic!("poll: {e}"),
            }
            let tokens: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
            for t in tokens {
                assert!(self.server.owns(t), "foreign token {t:?}");
                out.extend(self.server.handle(self.poll.registry(), t));
            }
            out
        }

        /// Turns the loop until `n` requests arrived or the deadline passed.
        fn requests(&mut self, n: usize, within: Duration) -> Vec<(ConnId, Request)> {
            let deadline = Instant::now() + within;
            let mut got = Vec::new();
            while got.len() < n && Instant::now() < deadline {
                got.extend(self.turn(Duration::from_millis(20)));
            }
            got
        }

        /// Turns the loop until `cond` holds or the deadline passed.
        fn until(&mut self, within: Duration, mut cond: impl FnMut(&Server) -> bool) -> bool {
            let deadline = Instant::now() + within;
            while Instant::now() < deadline {
                if cond(&self.server) {
                    return true;
                }
                let extra = self.turn(Duration::from_millis(20));
                assert!(extra.is_empty(), "unexpected requests {extra:?}");
            }
            cond(&self.server)
        }

        fn reply(&mut self, conn: ConnId, reply: &Reply) {
            self.server.reply(self.poll.registry(), conn, reply);
        }
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("runner-srv-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn client(path: &Path) -> StdStream {
        let s = StdStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn read_reply(r: &mut impl BufRead) -> Reply {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "incomplete reply {line:?}");
        serde_json::from_str(&line).unwrap()
    }

    fn is_cloexec(fd: i32) -> bool {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        flags >= 0 && flags & libc::FD_CLOEXEC != 0
    }

    #[test]
    fn the_socket_is_created_owner_only() {
        let h = Harness::new("mode");
        let meta = std::fs::symlink_metadata(h.path()).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert!(is_cloexec(h.server.listener.as_raw_fd()));
    }

    #[test]
    fn a_stale_socket_file_is_replaced() {
        let dir = temp_dir("stale");
        let path = dir.join("runner.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let server = Server::bind(&path).unwrap();
        assert_eq!(
            std::fs::symlink_metadata(&path).unwrap().mode() & 0o777,
            0o600
        );
        drop(server);
        assert!(!path.exists(), "the socket is removed on drop");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_live_runner_refuses_a_second_bind() {
        let h = Harness::new("live");
        let err = Server::bind(&h.path()).err().unwrap();
        assert_eq!(
            err,
            format!(
                "another runner is already listening on {}",
                h.path().display()
            )
        );
        assert!(h.path().exists(), "the live socket is left alone");
    }

    #[test]
    fn a_regular_file_is_never_replaced() {
        let dir = temp_dir("regular");
        let path = dir.join("runner.sock");
        std::fs::write(&path, b"precious").unwrap();
        let err = Server::bind(&path).err().unwrap();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn drop_leaves_a_socket_that_replaced_ours() {
        let dir = temp_dir("replaced");
        let path = dir.join("runner.sock");
        let server = Server::bind(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(server);
        assert!(path.exists(), "someone else's socket must survive our drop");
        drop(other);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_too_long_path_is_a_clear_error() {
        let path = PathBuf::from(format!("/tmp/{}/runner.sock", "x".repeat(120)));
        let err = Server::bind(&path).err().unwrap();
        assert!(err.contains("too long"), "{err}");
    }

    #[test]
    fn two_requests_and_a_garbage_line_on_one_connection() {
        let mut h = Harness::new("two");
        let mut c = client(&h.path());
        c.write_all(b"{\"cmd\":\"list\"}\nnot json\n\r\n{\"cmd\":\"stop\",\"target\":\"api\"}\r\n")
            .unwrap();
        let got = h.requests(2, Duration::from_secs(5));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].1, Request::List);
        assert_eq!(
            got[1].1,
            Request::Stop {
                target: "api".into()
            }
        );
        assert_eq!(got[0].0, got[1].0, "same connection");
        let conn = got[0].0;
        assert!(is_cloexec(
            h.server.slots[0].as_ref().unwrap().stream.as_raw_fd()
        ));

        let mut r = BufReader::new(c.try_clone().unwrap());
        let bad = read_reply(&mut r);
        assert!(!bad.ok);
        assert!(
            bad.error.as_deref().unwrap().starts_with("bad request: "),
            "{bad:?}"
        );
        // Replies go out in the order they are given, even much later.
        h.reply(conn, &Reply::ok("first"));
        h.reply(conn, &Reply::ok("second"));
        assert_eq!(read_reply(&mut r), Reply::ok("first"));
        assert_eq!(read_reply(&mut r), Reply::ok("second"));
        assert_eq!(h.server.connections(), 1);
    }

    #[test]
    fn a_client_that_half_closes_still_gets_its_reply() {
        let mut h = Harness::new("half");
        let c = client(&h.path());
        (&c).write_all(b"{\"cmd\":\"status\"}").unwrap(); // no newline, as `printf`
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let got = h.requests(1, Duration::from_secs(5));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, Request::Status);
        // Still open while the reply is pending.
        assert!(!h.until(Duration::from_millis(100), |s| s.connections() == 0));
        h.reply(got[0].0, &Reply::ok("1/1 online"));
        let mut r = BufReader::new(&c);
        assert_eq!(read_reply(&mut r), Reply::ok("1/1 online"));
        assert!(h.until(Duration::from_secs(5), |s| s.connections() == 0));
        let mut rest = String::new();
        assert_eq!(r.read_line(&mut rest).unwrap(), 0, "then EOF");
    }

    #[test]
    fn a_reply_to_a_client_that_left_is_dropped() {
        let mut h = Harness::new("left");
        let c = client(&h.path());
        (&c).write_all(b"{\"cmd\":\"reload\",\"target\":\"all\"}\n")
            .unwrap();
        let got = h.requests(1, Duration::from_secs(5));
        drop(c);
        h.until(Duration::from_millis(100), |_| false);
        h.reply(got[0].0, &Reply::ok("reloaded"));
        assert!(h.until(Duration::from_secs(5), |s| s.connections() == 0));
        // A new client gets a new id, never the old one's replies.
        let c2 = client(&h.path());
        (&c2).write_all(b"{\"cmd\":\"list\"}\n").unwrap();
        let got2 = h.requests(1, Duration::from_secs(5));
        assert_ne!(got2[0].0, got[0].0);
        h.reply(got[0].0, &Reply::ok("stale"));
        h.reply(got2[0].0, &Reply::ok("fresh"));
        assert_eq!(read_reply(&mut BufReader::new(&c2)), Reply::ok("fresh"));
    }

    #[test]
    fn an_endless_line_is_refused_and_others_are_still_served() {
        let mut h = Harness::new("long");
        let path = h.path();
        let flood = std::thread::spawn(move || {
            let mut c = client(&path);
            // The server closes mid-way, so the write may fail: that's expected.
            let _ = c.write_all(&vec![b'x'; 1024 * 1024]);
            let mut line = String::new();
            let _ = BufReader::new(&c).read_line(&mut line);
            line
        });
        let other = client(&h.path());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while !flood.is_finished() && Instant::now() < deadline {
            got.extend(h.turn(Duration::from_millis(20)));
        }
        assert!(got.is_empty(), "{got:?}");
        let line = flood.join().unwrap();
        let reply: Reply = serde_json::from_str(&line).unwrap();
        assert!(!reply.ok);
        assert!(reply.error.unwrap().contains("longer than 64 KiB"));
        assert!(h.until(Duration::from_secs(5), |s| s.connections() == 1));

        (&other).write_all(b"{\"cmd\":\"list\"}\n").unwrap();
        let got = h.requests(1, Duration::from_secs(5));
        assert_eq!(got.len(), 1);
        h.reply(got[0].0, &Reply::ok("still here"));
        assert_eq!(
            read_reply(&mut BufReader::new(&other)),
            Reply::ok("still here")
        );
    }

    #[test]
    fn a_client_that_disconnects_mid_line_breaks_nothing() {
        let mut h = Harness::new("midline");
        {
            let mut c = client(&h.path());
            c.write_all(b"{\"cmd\":\"li").unwrap();
        }
        assert!(h.until(Duration::from_secs(5), |s| s.connections() == 0));
        let c = client(&h.path());
        (&c).write_all(b"{\"cmd\":\"list\"}\n").unwrap();
        let got = h.requests(1, Duration::from_secs(5));
        assert_eq!(got.len(), 1);
        h.reply(got[0].0, &Reply::ok("fine"));
        assert_eq!(read_reply(&mut BufReader::new(&c)), Reply::ok("fine"));
    }

    fn raise_fd_limit(want: u64) {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            if soft < want {
                let _ = setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard);
            }
        }
    }

    #[test]
    fn five_hundred_idle_connections_do_not_delay_a_request() {
        raise_fd_limit(4096);
        let mut h = Harness::new("many");
        let mut idle = Vec::new();
        for i in 0..500 {
            idle.push(client(&h.path()));
            if i % 50 == 49 {
                let n = i + 1;
                assert!(
                    h.until(Duration::from_secs(5), |s| s.connections() == n),
                    "only {} of {n} accepted",
                    h.server.connections()
                );
            }
        }
        let start = Instant::now();
        let c = client(&h.path());
        (&c).write_all(b"{\"cmd\":\"status\"}\n").unwrap();
        let got = h.requests(1, Duration::from_secs(5));
        assert_eq!(got.len(), 1);
        h.reply(got[0].0, &Reply::ok("ok"));
        assert_eq!(read_reply(&mut BufReader::new(&c)), Reply::ok("ok"));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(h.server.connections(), 501);
        drop(idle);
        assert!(h.until(Duration::from_secs(5), |s| s.connections() == 1));
    }

    #[test]
    fn connections_beyond_the_limit_are_closed_at_once() {
        let dir = temp_dir("limit");
        let mut server = Server::bind(&dir.join("runner.sock")).unwrap();
        server.set_max_conns(2);
        let poll = Poll::new().unwrap();
        server.register(poll.registry(), BASE).unwrap();
        assert!(server.owns(Token(102)) && !server.owns(Token(103)) && !server.owns(Token(99)));
        let mut h = Harness {
            poll,
            events: Events::with_capacity(64),
            server,
            dir,
        };
        let a = client(&h.path());
        let b = client(&h.path());
        assert!(h.until(Duration::from_secs(5), |s| s.connections() == 2));
        // The two hold their connections idle: the one quiet the longest makes room, so
        // a new client (a health check) is always served.
        let c = client(&h.path());
        h.until(Duration::from_millis(100), |_| false);
        let mut buf = [0u8; 16];
        assert_eq!(
            (&a).read(&mut buf).unwrap(),
            0,
            "the oldest idle one is closed"
        );
        assert_eq!(h.server.connections(), 2);
        (&c).write_all(b"{\"cmd\":\"list\"}\n").unwrap();
        let got = h.requests(1, Duration::from_secs(5));
        assert_eq!(got.len(), 1, "the new client is served");
        // With every connection waiting for a reply, a new one is closed instead.
        (&b).write_all(b"{\"cmd\":\"list\"}\n").unwrap();
        assert_eq!(h.requests(1, Duration::from_secs(5)).len(), 1);
        let d = client(&h.path());
        h.until(Duration::from_millis(100), |_| false);
        assert_eq!(
            (&d).read(&mut buf).unwrap(),
            0,
            "no idle one to close: the new one goes"
        );
        drop((b, c));
    }

    #[test]
    fn an_idle_connection_times_out_and_one_awaiting_a_reply_does_not() {
        let mut h = Harness::new("idle");
        h.server.set_idle_timeout(Duration::from_millis(200));
        let idle = client(&h.path());
        let waiting = client(&h.path());
        (&waiting).write_all(b"{\"cmd\":\"list\"}\n").unwrap();
        let got = h.requests(1, Duration::from_secs(5));
        assert_eq!(got.len(), 1);
        let deadline = h
            .server
            .next_deadline()
            .expect("a deadline while idle ones are open");
        assert!(deadline <= Instant::now() + Duration::from_millis(200));
        let until = Instant::now() + Duration::from_secs(5);
        while h.server.connections() > 1 && Instant::now() < until {
            h.until(Duration::from_millis(50), |_| false);
            h.server.expire_idle(h.poll.registry(), Instant::now());
        }
        assert_eq!(h.server.connections(), 1);
        let mut buf = [0u8; 16];
        assert_eq!((&idle).read(&mut buf).unwrap(), 0, "the idle one is closed");
        // Its reply still reaches the client that waited.
        h.reply(got[0].0, &Reply::ok("done"));
        let mut line = String::new();
        BufReader::new(&waiting).read_line(&mut line).unwrap();
        assert!(line.contains("done"), "{line}");
    }

    #[test]
    fn a_client_that_never_reads_is_disconnected() {
        let mut h = Harness::new("noread");
        let c = client(&h.path());
        (&c).write_all(b"{\"cmd\":\"list\"}\n").unwrap();
        let got = h.requests(1, Duration::from_secs(5));
        let big = Reply::ok("x".repeat(1024 * 1024));
        for _ in 0..6 {
            h.reply(got[0].0, &big);
        }
        assert_eq!(h.server.connections(), 0);
        drop(c);
    }

    #[test]
    fn a_foreign_uid_is_refused() {
        if !nix::unistd::geteuid().is_root() || !Path::new("/usr/bin/perl").exists() {
            eprintln!("skipped: needs root and perl");
            return;
        }
        use std::os::unix::process::CommandExt;
        let mut h = Harness::new("uid");
        std::fs::set_permissions(&h.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(h.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
        let script = r#"use IO::Socket::UNIX; my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!"; my $l = <$s>; print $l;"#;
        let child = std::process::Command::new("/usr/bin/perl")
            .arg("-e")
            .arg(script)
            .arg(h.path())
            .uid(65534)
            .gid(65534)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        let mut child = Some(child);
        let mut output = None;
        while Instant::now() < deadline {
            got.extend(h.turn(Duration::from_millis(20)));
            if let Some(c) = child.as_mut() {
                if c.try_wait().unwrap().is_some() {
                    output = Some(child.take().unwrap().wait_with_output().unwrap());
                    break;
                }
            }
        }
        let out = output.unwrap_or_else(|| panic!("perl (pid {pid}) did not finish"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "perl: {:?} {stderr}", out.status);
        assert!(got.is_empty(), "{got:?}");
        let reply: Reply = serde_json::from_slice(&out.stdout).unwrap();
        assert!(!reply.ok);
        assert!(
            reply
                .error
                .unwrap()
                .starts_with("permission denied: uid 65534"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(h.server.connections(), 0);
    }

    #[test]
    fn only_our_uid_and_root_are_allowed() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(peer_allowed(0, 0));
    }
}
