//! The bytes of a Node.js IPC channel: a Unix stream socket carrying JSON values, one
//! per line (`NODE_CHANNEL_SERIALIZATION_MODE=json`, Node's default), where a message
//! may travel with a file descriptor (`SCM_RIGHTS`), as Node passes handles.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::socket::{
    send, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};

/// A line longer than this is dropped (and the rest of it skipped), so a chatty or
/// broken app cannot grow runner's memory.
pub const MAX_LINE: usize = 1 << 20;

/// One [`NodeChannel::read`] consumes at most about this many bytes, so an app that
/// writes as fast as runner reads can neither starve the event loop nor make one call
/// allocate without bound. When the budget ends a call before `EAGAIN`,
/// [`NodeChannel::has_pending`] is true and the caller must call `read` again soon
/// (mio is edge-triggered: no new event comes for data already queued).
pub const READ_BUDGET: usize = 4 << 20;

/// Messages waiting to be written to one instance: an app that asks and never reads
/// its answers cannot grow runner's memory past this; further answers are dropped.
pub const MAX_QUEUED: usize = 256;

const CHUNK: usize = 64 * 1024;

/// Splits a byte stream into JSON messages, one per line; a line that is not JSON, or
/// longer than [`MAX_LINE`], is skipped. Pure, so it can be fuzzed on its own.
#[derive(Debug, Default)]
pub struct LineReader {
    /// The incomplete line received so far.
    line: Vec<u8>,
    /// Skipping the rest of an over-long line.
    discarding: bool,
}

impl LineReader {
    /// Consumes `data`, appending every complete message to `msgs`.
    pub fn feed(&mut self, mut data: &[u8], msgs: &mut Vec<serde_json::Value>) {
        while !data.is_empty() {
            let nl = data.iter().position(|&b| b == b'\n');
            let (part, rest, complete) = match nl {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &[][..], false),
            };
            data = rest;
            if self.discarding {
                if complete {
                    self.discarding = false;
                }
                continue;
            }
            if self.line.len() + part.len() > MAX_LINE {
                log::debug!("node ipc channel: message over {MAX_LINE} bytes dropped");
                self.line = Vec::new(); // release the memory
                self.discarding = !complete;
                continue;
            }
            self.line.extend_from_slice(part);
            if complete {
                self.take_line(msgs);
            }
        }
    }

    /// The peer is gone: an unterminated fragment is dropped (Node always ends messages).
    pub fn close(&mut self) {
        if !self.line.is_empty() && !self.discarding {
            log::debug!("node ipc channel: incomplete message at EOF dropped");
        }
        self.line = Vec::new();
        self.discarding = false;
    }

    fn take_line(&mut self, msgs: &mut Vec<serde_json::Value>) {
        let text = self.line.trim_ascii();
        if !text.is_empty() {
            match serde_json::from_slice::<serde_json::Value>(text) {
                Ok(v) => msgs.push(v),
                Err(e) => log::debug!("node ipc channel: invalid JSON message skipped: {e}"),
            }
        }
        self.line.clear();
        if self.line.capacity() > CHUNK {
            self.line.shrink_to(CHUNK);
        }
    }
}

/// One message to write, with the fd that travels with its first byte.
#[derive(Debug)]
struct Outgoing {
    bytes: Vec<u8>,
    written: usize,
    fd: Option<OwnedFd>,
}

/// Runner's end of an instance's Node IPC channel.
#[derive(Debug)]
pub struct NodeChannel {
    stream: UnixStream,
    reader: LineReader,
    /// The last `read` stopped on its budget, not on `EAGAIN`/EOF.
    pending: bool,
    budget: usize,
    chunk: Box<[u8]>,
    /// Written in order; a message with an fd waits until the previous fd was
    /// acknowledged (`NODE_HANDLE_ACK`), as Node's own sender does.
    out: VecDeque<Outgoing>,
    /// A handle was sent and its ACK has not arrived: (the message, resends so far).
    unacked: Option<(Vec<u8>, OwnedFd, u32)>,
}

/// How often a handle the receiver NACKed is sent again (Node's own limit).
const MAX_RETRANSMISSIONS: u32 = 3;

impl NodeChannel {
    /// A close-on-exec `AF_UNIX`/`SOCK_STREAM` socketpair: runner's end (non-blocking)
    /// and the child's end, which the caller passes to the child as `NODE_CHANNEL_FD`
    /// (dup2 to the target fd clears close-on-exec there) and closes after spawn.
    pub fn pair() -> io::Result<(NodeChannel, OwnedFd)> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let stream = UnixStream::from(ours);
        stream.set_nonblocking(true)?;
        Ok((
            NodeChannel {
                stream,
                reader: LineReader::default(),
                pending: false,
                budget: READ_BUDGET,
                chunk: vec![0u8; CHUNK].into_boxed_slice(),
                out: VecDeque::new(),
                unacked: None,
            },
            theirs,
        ))
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Reads everything available (until `EAGAIN`) and returns the complete messages
    /// received, parsed as JSON (a line that isn't valid JSON is skipped), and whether
    /// the channel is closed (EOF or a fatal socket error: the child closed its end or
    /// exited). Once closed, deregister the fd and drop the channel. An fd the app
    /// sends along is closed by the kernel: runner never takes handles.
    ///
    /// Stops early after [`READ_BUDGET`] bytes: then [`has_pending`](Self::has_pending)
    /// is true and `read` must be called again (e.g. on the next loop iteration).
    pub fn read(&mut self) -> (Vec<serde_json::Value>, bool) {
        let mut msgs = Vec::new();
        let mut total = 0usize;
        self.pending = false;
        let closed = loop {
            if total >= self.budget {
                self.pending = true;
                break false;
            }
            let n = match self.stream.read(&mut self.chunk) {
                Ok(0) => break true,
                Ok(n) => {
                    total += n;
                    n
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("node ipc channel: read: {e}");
                    break true;
                }
            };
            self.reader.feed(&self.chunk[..n], &mut msgs);
        };
        if closed {
            self.reader.close();
            self.out.clear();
            self.unacked = None;
        }
        (msgs, closed)
    }

    /// True when the last [`read`](Self::read) stopped on [`READ_BUDGET`] with data
    /// possibly still queued: call `read` again without waiting for a new event.
    pub fn has_pending(&self) -> bool {
        self.pending
    }

    /// Queues one message (serialised as a line), with `fd` passed along when given,
    /// and writes what it can. False when the queue is full and the message was dropped.
    pub fn send(&mut self, msg: &serde_json::Value, fd: Option<OwnedFd>) -> bool {
        if self.out.len() >= MAX_QUEUED {
            log::debug!("node ipc channel: the peer reads nothing; answer dropped");
            return false;
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(b'\n');
        self.out.push_back(Outgoing {
            bytes,
            written: 0,
            fd,
        });
        self.flush();
        true
    }

    /// The receiver took the handle: the next one may go.
    pub fn handle_acked(&mut self) {
        self.unacked = None;
        self.flush();
    }

    /// The receiver lost the handle (e.g. `MSG_CTRUNC`): send it again, a few times.
    pub fn handle_nacked(&mut self) {
        let Some((bytes, fd, tries)) = self.unacked.take() else {
            return;
        };
        if tries >= MAX_RETRANSMISSIONS {
            log::debug!("node ipc channel: a handle never reached the instance");
            self.flush();
            return;
        }
        if let Ok(copy) = fd.try_clone() {
            self.out.push_front(Outgoing {
                bytes: bytes.clone(),
                written: 0,
                fd: Some(copy),
            });
            self.unacked = Some((bytes, fd, tries + 1));
            // The resend is the one in flight: write it ahead of the queue.
            self.write_queued(true);
        }
    }

    /// Writes queued messages until the socket is full or a handle awaits its ACK.
    /// Call again when the socket becomes writable.
    pub fn flush(&mut self) {
        self.write_queued(false);
    }

    fn write_queued(&mut self, mut resend: bool) {
        while let Some(front) = self.out.front_mut() {
            let starts_handle = front.written == 0 && front.fd.is_some();
            if starts_handle && self.unacked.is_some() && !resend {
                return;
            }
            let rest = &front.bytes[front.written..];
            let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
            let fd = self.stream.as_raw_fd();
            let result = match (front.written, &front.fd) {
                (0, Some(handle)) => {
                    let fds = [handle.as_raw_fd()];
                    let cmsg = [ControlMessage::ScmRights(&fds)];
                    sendmsg::<()>(fd, &[io::IoSlice::new(rest)], &cmsg, flags, None)
                }
                _ => send(fd, rest, flags),
            };
            match result {
                Ok(n) => {
                    if starts_handle && n > 0 && !resend {
                        // The fd went with the first byte; keep a copy for a resend.
                        if let Some(handle) = front.fd.take() {
                            self.unacked = Some((front.bytes.clone(), handle, 0));
                        }
                    } else if starts_handle && n > 0 {
                        front.fd = None;
                    }
                    front.written += n;
                    if front.written >= front.bytes.len() {
                        self.out.pop_front();
                    }
                    // Only the resent message itself jumps the ACK wait.
                    resend = false;
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::debug!("node ipc channel: write: {e}");
                    self.out.clear();
                    return;
                }
            }
        }
    }
}

impl AsFd for NodeChannel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl mio::event::Source for NodeChannel {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.stream.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.stream.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.stream.as_raw_fd()).deregister(registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_ipc::cluster::is_ready;
    use serde_json::json;
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command, ExitStatus};
    use std::time::{Duration, Instant};

    fn have_node() -> bool {
        std::path::Path::new("/usr/bin/node").exists()
    }

    /// Spawns node with `theirs` as fd 3 and NODE_CHANNEL_FD=3, then closes our copy.
    fn spawn_node(script: &str, theirs: OwnedFd) -> Child {
        let raw = theirs.as_raw_fd();
        let mut cmd = Command::new("/usr/bin/node");
        cmd.arg("-e")
            .arg(script)
            .env("NODE_CHANNEL_FD", "3")
            .env("NODE_CHANNEL_SERIALIZATION_MODE", "json");
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if raw == 3 {
                    if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(raw, 3) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(theirs);
        child
    }

    fn wait_deadline(child: &mut Child, d: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Reads until closed or the deadline; returns all messages and whether closed.
    fn read_all(
        ch: &mut NodeChannel,
        d: Duration,
        pause: Duration,
    ) -> (Vec<serde_json::Value>, bool) {
        let deadline = Instant::now() + d;
        let mut all = Vec::new();
        while Instant::now() < deadline {
            let (msgs, closed) = ch.read();
            all.extend(msgs);
            if closed {
                return (all, true);
            }
            std::thread::sleep(pause);
        }
        (all, false)
    }

    #[test]
    fn framing_garbage_and_limits() {
        let (mut ch, theirs) = NodeChannel::pair().unwrap();
        let mut tx = UnixStream::from(theirs);
        // Split message, invalid JSON, empty line, non-UTF-8.
        tx.write_all(b"\"rea").unwrap();
        assert_eq!(ch.read(), (vec![], false));
        tx.write_all(b"dy\"\nnot json\n\n\xff\xfe\n{\"a\":[1,2]}\n")
            .unwrap();
        assert_eq!(
            ch.read(),
            (vec![json!("ready"), json!({"a": [1, 2]})], false)
        );
        // An over-long line is dropped, the next one survives.
        let writer = std::thread::spawn(move || {
            let big = vec![b'x'; MAX_LINE + 10];
            tx.write_all(b"\"").unwrap();
            tx.write_all(&big).unwrap();
            tx.write_all(b"\"\n\"after\"\n\"partial").unwrap();
            tx // dropped at join -> EOF
        });
        let mut all = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut closed = false;
        let mut joined = false;
        let mut writer = Some(writer);
        while Instant::now() < deadline && !closed {
            let (m, c) = ch.read();
            all.extend(m);
            closed = c;
            if !joined && writer.as_ref().is_some_and(|w| w.is_finished()) {
                drop(writer.take().unwrap().join().unwrap());
                joined = true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(closed);
        assert_eq!(all, vec![json!("after")]);
        assert!(ch.reader.line.capacity() <= CHUNK);
        assert_eq!(ch.read(), (vec![], true));
    }

    #[test]
    fn read_budget_sets_pending() {
        let (mut ch, theirs) = NodeChannel::pair().unwrap();
        ch.budget = 1; // every read call consumes one chunk at most
        let mut tx = UnixStream::from(theirs);
        let mut data = Vec::new();
        for i in 0..20_000 {
            data.extend_from_slice(format!("{i}\n").as_bytes());
        }
        data.extend_from_slice(b"\"ready\"\n");
        let writer = std::thread::spawn(move || tx.write_all(&data).unwrap());
        let mut all = Vec::new();
        let mut saw_pending = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (m, closed) = ch.read();
            all.extend(m);
            saw_pending |= ch.has_pending();
            if closed || Instant::now() > deadline {
                break;
            }
        }
        writer.join().unwrap();
        assert!(saw_pending);
        assert_eq!(all.len(), 20_001);
        assert_eq!(all[19_999], json!(19_999));
        assert!(is_ready(&all[20_000]));
    }

    #[test]
    fn real_node_ready_and_exits_by_itself() {
        if !have_node() {
            eprintln!("node not available; skipped");
            return;
        }
        let (mut ch, theirs) = NodeChannel::pair().unwrap();
        let mut child = spawn_node("process.send('ready'); process.send({hello: 1});", theirs);
        let (msgs, closed) = read_all(&mut ch, Duration::from_secs(10), Duration::from_millis(5));
        let status = wait_deadline(&mut child, Duration::from_secs(10));
        assert_eq!(msgs, vec![json!("ready"), json!({"hello": 1})]);
        assert!(is_ready(&msgs[0]));
        assert!(closed, "EOF after node exits");
        let status = status.expect("node must exit by itself with the IPC channel open");
        assert!(status.success(), "{status}");
    }

    #[test]
    fn real_node_with_timer_exits_by_itself() {
        if !have_node() {
            eprintln!("node not available; skipped");
            return;
        }
        let (mut ch, theirs) = NodeChannel::pair().unwrap();
        let start = Instant::now();
        let mut child = spawn_node("process.send('ready'); setTimeout(()=>{}, 100)", theirs);
        let (msgs, closed) = read_all(&mut ch, Duration::from_secs(10), Duration::from_millis(5));
        let status = wait_deadline(&mut child, Duration::from_secs(10));
        eprintln!(
            "node with timer exited {status:?} after {:?}",
            start.elapsed()
        );
        assert_eq!(msgs, vec![json!("ready")]);
        assert!(closed);
        assert!(status.expect("node exits by itself").success());
    }

    #[test]
    fn real_node_many_messages_slow_reader() {
        if !have_node() {
            eprintln!("node not available; skipped");
            return;
        }
        let (mut ch, theirs) = NodeChannel::pair().unwrap();
        let mut child = spawn_node(
            "for (let i = 0; i < 10000; i++) process.send({i, pad: 'x'.repeat(100)}); \
             process.send('ready');",
            theirs,
        );
        // Slow reader: sleep between reads so node's socket buffer fills up.
        let (msgs, closed) = read_all(&mut ch, Duration::from_secs(60), Duration::from_millis(20));
        let status = wait_deadline(&mut child, Duration::from_secs(10));
        assert!(closed);
        assert!(status.expect("node exits").success());
        assert_eq!(msgs.len(), 10_001);
        for (i, m) in msgs[..10_000].iter().enumerate() {
            assert_eq!(m["i"], json!(i));
        }
        assert!(is_ready(&msgs[10_000]));
    }
}
