//! The Node.js IPC channel (`NODE_CHANNEL_FD`), the one PM2 apps signal readiness on
//! with `process.send('ready')`.
//!
//! Node treats fd `NODE_CHANNEL_FD` as a Unix stream socket carrying JSON values, one
//! per line (`NODE_CHANNEL_SERIALIZATION_MODE=json`, Node's default).

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

/// A line longer than this is dropped (and the rest of it skipped), so a chatty or
/// broken app cannot grow runner's memory.
pub const MAX_LINE: usize = 1 << 20;

/// One [`NodeChannel::read`] consumes at most about this many bytes, so an app that
/// writes as fast as runner reads can neither starve the event loop nor make one call
/// allocate without bound. When the budget ends a call before `EAGAIN`,
/// [`NodeChannel::has_pending`] is true and the caller must call `read` again soon
/// (mio is edge-triggered: no new event comes for data already queued).
pub const READ_BUDGET: usize = 4 << 20;

const CHUNK: usize = 64 * 1024;

/// Runner's end of an instance's Node IPC channel.
#[derive(Debug)]
pub struct NodeChannel {
    stream: UnixStream,
    /// The incomplete line received so far.
    line: Vec<u8>,
    /// Skipping the rest of an over-long line.
    discarding: bool,
    /// The last `read` stopped on its budget, not on `EAGAIN`/EOF.
    pending: bool,
    budget: usize,
    chunk: Box<[u8]>,
}

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
                line: Vec::new(),
                discarding: false,
                pending: false,
                budget: READ_BUDGET,
                chunk: vec![0u8; CHUNK].into_boxed_slice(),
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
    /// exited). Once closed, deregister the fd and drop the channel.
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
            let mut data = &self.chunk[..n];
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
                    Self::take_line(&mut self.line, &mut msgs);
                }
            }
        };
        if closed && !self.line.is_empty() && !self.discarding {
            // Node always terminates messages; a trailing fragment is incomplete.
            log::debug!("node ipc channel: incomplete message at EOF dropped");
        }
        if closed {
            self.line = Vec::new();
            self.discarding = false;
        }
        (msgs, closed)
    }

    /// True when the last [`read`](Self::read) stopped on [`READ_BUDGET`] with data
    /// possibly still queued: call `read` again without waiting for a new event.
    pub fn has_pending(&self) -> bool {
        self.pending
    }

    fn take_line(line: &mut Vec<u8>, msgs: &mut Vec<serde_json::Value>) {
        let text = line.trim_ascii();
        if !text.is_empty() {
            match serde_json::from_slice::<serde_json::Value>(text) {
                Ok(v) => msgs.push(v),
                Err(e) => log::debug!("node ipc channel: invalid JSON message skipped: {e}"),
            }
        }
        line.clear();
        if line.capacity() > CHUNK {
            line.shrink_to(CHUNK);
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

/// Whether a message means "ready": exactly the JSON string `"ready"`, as PM2 checks.
pub fn is_ready(msg: &serde_json::Value) -> bool {
    msg.as_str() == Some("ready")
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn is_ready_exact_string_only() {
        assert!(is_ready(&json!("ready")));
        assert!(!is_ready(&json!("Ready")));
        assert!(!is_ready(&json!("ready ")));
        assert!(!is_ready(&json!({"type": "ready"})));
        assert!(!is_ready(&json!({"type": "process:msg", "data": "ready"})));
        assert!(!is_ready(&json!(["ready"])));
        assert!(!is_ready(&json!(null)));
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
        assert!(ch.line.capacity() <= CHUNK);
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
