//! Instance output: whole lines, optionally decorated, to runner's stdout/stderr or to
//! log files — without ever blocking the event loop.
//!
//! # What goes where
//!
//! An app with none of `out_file`, `error_file`, `log_prefix`, `time` hands its instances
//! runner's own fd 1 and 2; this module is not involved. With any of them set, each
//! instance's stdout and stderr become pipes ([`pipe`]) whose read ends runner drains
//! ([`Stream`]), and every line goes to exactly one destination ([`Dest`]):
//!
//! | stream | `out_file` / `error_file` set | not set |
//! |---|---|---|
//! | stdout | that file **only** (as PM2 does) | runner's stdout |
//! | stderr | that file **only** | runner's stderr |
//!
//! `log_prefix` (`name[instance] `) and `time` (an ISO-8601 UTC timestamp with
//! milliseconds) apply to every destination; with both the line reads
//! `2026-11-26T16:41:16.123Z api[0] listening on :3000` ([`Decor`]). Bytes are passed
//! through as they are (no UTF-8 assumption); only `\n` delimits lines.
//!
//! # Guarantees
//!
//! * Lines never interleave mid-line: a destination is one [`Sink`] ([`Sinks`] hands out the
//!   same [`SinkId`] for every app and instance naming the same file — by path, and by
//!   (dev, ino) so `./a.log`, `/abs/a.log` and a symlink meet, and a file that is runner's
//!   own stdout meets `Dest::Stdout`), and only whole lines are queued.
//! * A line longer than [`MAX_LINE`] (64 KiB) is cut into pieces, each written as its own
//!   decorated line, instead of being held until its newline ([`LineBuffer`]).
//! * Nothing blocks: see [`sink`] for how writes to a shared fd 1/2 are made non-blocking
//!   without setting `O_NONBLOCK` on it. When a sink's buffer is full, its streams stop
//!   being read: back-pressure reaches the app through its own pipe (its write blocks, as it
//!   would writing to a slow terminal without runner) and no line is dropped. Lines are
//!   dropped only when a write fails for good (EPIPE, ENOSPC), with a warning.
//! * Everything an instance wrote is drained after it exits: its stream is read until EOF,
//!   and an unterminated last line is written with a newline added.
//! * Log files are opened append-only, 0640, close-on-exec, never seeked or truncated, and
//!   reopened when moved away (logrotate without a signal); see [`sink`].
//!
//! # Wiring into the loop
//!
//! ```text
//! spawn:   let (r, w) = logs::pipe()?;  child: dup2(w, 1); parent: drop(w) after spawn
//!          let id = sinks.get_or_open(Dest::File(path) or Dest::Stdout)?;
//!          let s = Stream::new(r, Decor::for_instance(name, i, log_prefix, time), id);
//!          register s.fd() READABLE; register sinks.get(id).fd() WRITABLE if .pollable()
//!          (once per sink)
//! readable event on a stream, or a Full stream whose sink has_room() again:
//!          match s.pump(&mut sinks, SystemTime::now()) {
//!              Pump::Empty => wait for the next readable event,
//!              Pump::Full  => remember it; pump again once sinks.get(s.sink()).has_room(),
//!              Pump::Eof   => deregister and drop the stream,
//!          }
//! end of every wake-up (after all events):  sinks.flush_all(); then re-pump Full streams
//!          whose sink has room
//! shutdown: drain streams, then sinks.flush_all_blocking(deadline)
//! ```
//!
//! mio is edge-triggered: a stream left `Full` gets no new readable event for the data
//! already in its pipe, so the loop must pump it again itself once there is room. For the
//! wake-up when a sink becomes writable, registering `fd()` for `WRITABLE` is recommended
//! (it is runner's own fd for pipes and terminals, the shared socket otherwise); a short
//! timer (say 50 ms while `sinks.pending() > 0`) is a correct fallback. A
//! [`WriteMode::Direct`] sink (regular file) always flushes completely and needs neither.
//!
//! An instance's stream only reaches EOF when every process holding the pipe's write end
//! has closed it: a daemonized grandchild keeps it open.
//!
//! Memory is bounded: per stream one unterminated line (≤ [`MAX_LINE`]), per sink its
//! capacity plus what one [`Stream::pump`] read adds after the sink filled up (≤
//! [`READ_CHUNK`] bytes of input, decorated).

mod datefmt;
mod decor;
mod line;
pub mod ring;
pub mod sink;

pub use datefmt::DateFormat;
pub use decor::{iso8601, Decor};
pub use line::LineBuffer;
pub use sink::{Sink, WriteMode};

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// Lines longer than this are cut into pieces of this size.
pub const MAX_LINE: usize = 64 * 1024;

/// Suggested capacity of a sink's buffer.
pub const SINK_CAP: usize = 256 * 1024;

/// How much [`Stream::pump`] reads per `read`.
pub const READ_CHUNK: usize = 64 * 1024;

/// Where a stream's lines go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dest {
    /// runner's own stdout (fd 1).
    Stdout,
    /// runner's own stderr (fd 2).
    Stderr,
    /// A log file (`out_file` / `error_file`).
    File(PathBuf),
}

/// A handle on one of the [`Sinks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SinkId(usize);

/// Every destination, each opened once and shared by all the streams writing to it.
#[derive(Debug)]
pub struct Sinks {
    sinks: Vec<Sink>,
    by_dest: HashMap<Dest, SinkId>,
    cap: usize,
    reopen_every: Duration,
}

impl Default for Sinks {
    fn default() -> Self {
        Sinks::new(SINK_CAP)
    }
}

impl Sinks {
    /// No sinks yet; each one opened will buffer about `cap` bytes.
    pub fn new(cap: usize) -> Sinks {
        Sinks::with_reopen_check(cap, sink::REOPEN_CHECK)
    }

    /// [`Sinks::new`] with the log-rotation check interval given (tests use zero).
    pub fn with_reopen_check(cap: usize, every: Duration) -> Sinks {
        Sinks {
            sinks: Vec::new(),
            by_dest: HashMap::new(),
            cap,
            reopen_every: every,
        }
    }

    /// The sink for `dest`, opened (a file created) the first time. The same file named
    /// differently (relative/absolute path, a symlink, `/dev/stdout` when that is where
    /// runner's stdout goes) gets the same sink. Errors name the path.
    pub fn get_or_open(&mut self, dest: Dest) -> io::Result<SinkId> {
        self.get_or_open_as(dest, None)
    }

    /// [`get_or_open`](Sinks::get_or_open) for an app running with `creds`: when that is
    /// another user, the file is opened with its rights every time (even when already
    /// open for another app), so the app never writes where it could not itself, and the
    /// shared sink reopens after rotation with those rights only.
    pub fn get_or_open_as(
        &mut self,
        dest: Dest,
        creds: Option<&crate::config::Credentials>,
    ) -> io::Result<SinkId> {
        let dest = match dest {
            Dest::File(p) => Dest::File(std::path::absolute(&p).unwrap_or(p)),
            d => d,
        };
        let other_user = crate::as_user::is_other_user(creds);
        if let Some(id) = self.by_dest.get(&dest) {
            if !(other_user && matches!(dest, Dest::File(_))) {
                return Ok(*id);
            }
        }
        let creds = creds.filter(|_| other_user);
        let sink = match &dest {
            Dest::Stdout => Sink::stdio(1, self.cap),
            Dest::Stderr => Sink::stdio(2, self.cap),
            Dest::File(p) => Sink::file_as(p, self.cap, self.reopen_every, creds)?,
        };
        let same = sink.identity().and_then(|ident| {
            self.sinks
                .iter()
                .position(|s| s.identity() == Some(ident))
                .map(SinkId)
        });
        let id = match same {
            // The new fd (if runner's own) closes here.
            Some(id) => {
                if let Some(c) = creds {
                    self.sinks[id.0].restrict_reopen_to(c);
                }
                id
            }
            None => {
                self.sinks.push(sink);
                SinkId(self.sinks.len() - 1)
            }
        };
        self.by_dest.insert(dest, id);
        Ok(id)
    }

    /// The sink `id` (ids come from [`get_or_open`](Sinks::get_or_open) of this `Sinks`).
    pub fn sink(&mut self, id: SinkId) -> &mut Sink {
        &mut self.sinks[id.0]
    }

    /// The sink `id`, read-only.
    pub fn get(&self, id: SinkId) -> &Sink {
        &self.sinks[id.0]
    }

    /// Every sink with its id.
    pub fn iter(&self) -> impl Iterator<Item = (SinkId, &Sink)> {
        self.sinks.iter().enumerate().map(|(i, s)| (SinkId(i), s))
    }

    /// The sink whose `fd()` is `fd` (to dispatch a mio WRITABLE event).
    pub fn by_fd(&self, fd: RawFd) -> Option<SinkId> {
        self.sinks.iter().position(|s| s.fd() == fd).map(SinkId)
    }

    /// Bytes pending over all sinks.
    pub fn pending(&self) -> usize {
        self.sinks.iter().map(Sink::pending).sum()
    }

    /// [`Sink::flush`] on every sink; whether all are empty.
    pub fn flush_all(&mut self) -> bool {
        let mut all = true;
        for s in &mut self.sinks {
            all &= s.flush();
        }
        all
    }

    /// [`Sink::flush_blocking`] on every sink with a common deadline; whether all are empty.
    pub fn flush_all_blocking(&mut self, deadline: Instant) -> bool {
        let mut all = true;
        for s in &mut self.sinks {
            all &= s.flush_blocking(deadline);
        }
        all
    }
}

/// A pipe for a child's stdout or stderr: (read end: non-blocking, close-on-exec; write
/// end: close-on-exec, blocking). The spawner `dup2`s the write end onto 1 or 2 in the
/// child (which clears close-on-exec there) and the parent drops it right after the spawn,
/// so that EOF arrives when the instance's processes are gone.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    // The read end's description is runner's alone (the child only gets the write end), so
    // O_NONBLOCK on it affects nobody else.
    let flags = OFlag::from_bits_retain(fcntl(&r, FcntlArg::F_GETFL)?);
    fcntl(&r, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok((r, w))
}

/// Reads what is available from a non-blocking pipe read end into `buf`: `Ok(0)` at EOF,
/// `Err(WouldBlock)` when the pipe is empty. Retries on EINTR.
pub fn read_pipe(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd.as_fd(), buf) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return Ok(other?),
        }
    }
}

thread_local! {
    /// The read buffer every [`Stream::pump`] borrows (the loop is one thread).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`read_pipe`] into memory that need not be initialised; returns how many bytes of it
/// now are.
///
/// libc's read, because nix's takes an initialised `&mut [u8]`: zeroing the 64 KiB chunk on
/// every wake-up would cost more than the read and touch pages that otherwise stay unused.
fn read_pipe_uninit(fd: RawFd, buf: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
    loop {
        // SAFETY: the buffer is valid for writes of its length and read(2) writes at most
        // that many bytes; `fd` is the stream's own open pipe.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// What [`Stream::pump`] stopped on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pump {
    /// The pipe is empty: wait for the next readable event.
    Empty,
    /// The sink is full: pump again when it has room (no readable event will come for the
    /// data already waiting).
    Full,
    /// End of the stream: everything is queued; deregister and drop the stream.
    Eof,
}

/// One instance's stdout or stderr: the read end of its pipe, the line assembly, the
/// decoration and the sink its lines go to.
#[derive(Debug)]
pub struct Stream {
    fd: OwnedFd,
    lines: LineBuffer,
    decor: Decor,
    sink: SinkId,
    eof: bool,
}

impl Stream {
    /// A stream reading `read_end` (from [`pipe`]) into `sink`, cutting lines at [`MAX_LINE`].
    pub fn new(read_end: OwnedFd, decor: Decor, sink: SinkId) -> Stream {
        Stream::with_max_line(read_end, decor, sink, MAX_LINE)
    }

    /// [`Stream::new`] with another line bound.
    pub fn with_max_line(read_end: OwnedFd, decor: Decor, sink: SinkId, max_line: usize) -> Stream {
        Stream {
            fd: read_end,
            lines: LineBuffer::new(max_line),
            decor,
            sink,
            eof: false,
        }
    }

    /// The pipe's read end, to register with mio for READABLE.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The sink this stream writes to.
    pub fn sink(&self) -> SinkId {
        self.sink
    }

    /// Whether EOF was reached.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Reads and queues whole decorated lines until the pipe is empty, the sink is full or
    /// the stream ends; `now` stamps the lines (`time`). Doesn't flush: the loop flushes the
    /// sinks once per wake-up. A read error other than EAGAIN/EINTR ends the stream.
    pub fn pump(&mut self, sinks: &mut Sinks, now: SystemTime) -> Pump {
        self.pump_with(sinks, now, &mut |_| {})
    }

    /// [`Stream::pump`], also handing every line (undecorated, without its newline) to
    /// `tap` — the instance's ring buffer and `runner logs --follow` clients.
    pub fn pump_with(
        &mut self,
        sinks: &mut Sinks,
        now: SystemTime,
        tap: &mut dyn FnMut(&[u8]),
    ) -> Pump {
        if self.eof {
            return Pump::Eof;
        }
        let sink = sinks.sink(self.sink);
        // One heap buffer for all streams, never zeroed: a 64 KiB array on the stack would
        // be touched page by page (stack probes) by the first read of every idle instance,
        // and RSS with 50 instances is a target; untouched heap pages cost nothing.
        let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        buf.clear();
        buf.reserve_exact(READ_CHUNK);
        let result = loop {
            if !sink.has_room() {
                break Some(Pump::Full);
            }
            let spare = buf.spare_capacity_mut();
            match read_pipe_uninit(self.fd.as_raw_fd(), spare) {
                Ok(0) => break None,
                Ok(n) => {
                    // SAFETY: read(2) initialised the first `n` bytes of the spare room.
                    let data =
                        unsafe { std::slice::from_raw_parts(spare.as_ptr().cast::<u8>(), n) };
                    let decor = &self.decor;
                    self.lines.push(data, |line, _| {
                        sink.queue_line(decor, line, now);
                        tap(line);
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Some(Pump::Empty),
                Err(e) => {
                    log::warn!("reading instance output for {}: {e}", sink.label());
                    break None;
                }
            }
        };
        SCRATCH.with(|s| *s.borrow_mut() = buf);
        if let Some(p) = result {
            return p;
        }
        let decor = &self.decor;
        self.lines.finish(|line, _| {
            sink.queue_line(decor, line, now);
            tap(line);
        });
        self.eof = true;
        Pump::Eof
    }
}

#[cfg(test)]
mod tests;
