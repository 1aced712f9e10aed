//! Where decorated lines go: runner's stdout/stderr or a log file, written without ever
//! blocking the event loop, through a bounded buffer.
//!
//! # Writing without blocking on a file description runner shares
//!
//! fd 1 and 2 are usually shared: the terminal, `docker logs`' pipe or journald's socket is
//! also held by the container runtime, by the shell, and by every app that runs without log
//! options (those inherit runner's fds directly). `O_NONBLOCK` is a property of the *open
//! file description*, so setting it on fd 1 would make those apps' own writes fail with
//! `EAGAIN` — many programs treat that as a fatal error or lose output. runner therefore
//! never changes the flags of an fd it didn't open. Instead [`Sink::stdio`] picks, per kind
//! of file ([`WriteMode`]):
//!
//! * **pipe / FIFO / terminal** — open the same object again through `/proc/self/fd/N`
//!   (`O_WRONLY|O_NONBLOCK|O_NOCTTY|O_CLOEXEC`). For pipes and ttys that creates a *new*
//!   open file description of the same pipe or terminal, private to runner, where
//!   `O_NONBLOCK` is ours to set: a full pipe or a stopped terminal (`^S`) answers `EAGAIN`.
//!   The new fd is checked to be the same (dev, ino) as the original. This is the trick
//!   `/dev/stdout` relies on; runc even chowns the stdio pipes to the container user so it
//!   works as non-root.
//! * **the reopen fails** (no `/proc`, a pipe owned by another user): `poll(POLLOUT, 0)` and
//!   then at most `PIPE_BUF` bytes per `write`. A pipe reporting `POLLOUT` has a free page, so
//!   a write of ≤ `PIPE_BUF` bytes completes at once. Residual risk, documented: another
//!   writer filling the pipe between the poll and the write, or a terminal with less room
//!   than the chunk, can still block that one write.
//! * **socket** (journald's stdout stream, a socketpair): `send(MSG_DONTWAIT|MSG_NOSIGNAL)`,
//!   non-blocking per call without touching the shared flags.
//! * **regular file, `/dev/null`, other devices**: plain `write`; these don't wait for a
//!   reader.
//!
//! For every mode but the last, writes are cut at line boundaries into chunks of at most
//! `PIPE_BUF` bytes where possible: such writes are atomic on a pipe, so runner's lines
//! don't interleave mid-line with the output of apps writing to the same pipe directly.
//!
//! When a write fails for good (`EPIPE` — nobody reads runner's stdout anymore —,
//! `ENOSPC`, `EIO`) the pending bytes are dropped and counted, with one warning per streak:
//! holding them would stall every app behind back-pressure forever.
//!
//! # Log files
//!
//! [`Sink::file`] opens `O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC|O_NOCTTY|O_NONBLOCK`, mode
//! 0640 (minus the umask), and never seeks or truncates. For a regular file it remembers the
//! path's (dev, ino); when it has something to write and the check interval (1 s) has
//! passed, it `stat`s the path, and reopens (creating) when the path is gone or names
//! another file — logrotate's default rename-and-create works without a signal, and
//! `copytruncate` works thanks to `O_APPEND`. A path that is not a regular file
//! (`/dev/stdout`, a FIFO, a terminal, `/dev/null`) is written but never checked or
//! reopened (supervisord's "Illegal seek" lesson). A FIFO without a reader can't be opened
//! without blocking: that is an error (`ENXIO`).
//!
//! For an app that runs as another user (`uid`), the file is opened — and reopened after
//! rotation — through [`crate::as_user::open`]: with the app's own file-system rights,
//! never through a final symbolic link, and only when it is a regular file. A link swapped
//! in at rotation time is refused with a warning and runner keeps writing to the old file.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::Decor;
use crate::config::Credentials;

/// Bytes a pipe writes atomically (POSIX `PIPE_BUF`; 4096 on Linux).
pub const PIPE_BUF: usize = libc::PIPE_BUF;

/// How often a log file's path is checked for rotation, at most.
pub const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// How a [`Sink`] writes without blocking; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Regular file or a device that doesn't wait for a reader: plain `write`, all at once.
    Direct,
    /// A file description of runner's own with `O_NONBLOCK` (a path runner opened, or fd
    /// 1/2 reopened through `/proc/self/fd`): `write` answers `EAGAIN` instead of waiting.
    NonBlocking,
    /// A shared socket: `send(MSG_DONTWAIT | MSG_NOSIGNAL)`.
    Send,
    /// A shared pipe or terminal that couldn't be reopened: `poll(POLLOUT, 0)`, then at most
    /// `PIPE_BUF` bytes per `write`.
    PollGuarded,
    /// Nothing to write to (the fd is closed): output is discarded.
    Discard,
}

/// The fd a sink writes to: its own, or one it must not close (fd 1/2).
#[derive(Debug)]
enum Fd {
    Owned(OwnedFd),
    Shared(RawFd),
}

impl Fd {
    fn raw(&self) -> RawFd {
        match self {
            Fd::Owned(f) => f.as_raw_fd(),
            Fd::Shared(fd) => *fd,
        }
    }

    fn borrow(&self) -> BorrowedFd<'_> {
        match self {
            Fd::Owned(f) => f.as_fd(),
            // SAFETY: a shared fd is runner's stdout or stderr (a test's fd that outlives
            // the sink in unit tests), which runner never closes; one that was not open
            // when the sink was made got `WriteMode::Discard`, which never borrows it.
            Fd::Shared(fd) => unsafe { BorrowedFd::borrow_raw(*fd) },
        }
    }
}

/// Path, interval and clock of the rotation check of a regular log file.
#[derive(Debug)]
struct Reopen {
    path: PathBuf,
    /// The identity of an app running as another user: reopened with its rights only.
    as_user: Option<Credentials>,
    every: Duration,
    last: Instant,
    failed: bool,
}

/// A non-blocking sink with a bounded buffer: runner's stdout (fd 1) or stderr (fd 2), or a
/// log file. Callers queue whole lines and call [`flush`](Sink::flush) when the loop wakes.
#[derive(Debug)]
pub struct Sink {
    fd: Fd,
    mode: WriteMode,
    /// Queued bytes; `buf[start..]` is still to be written.
    buf: Vec<u8>,
    start: usize,
    cap: usize,
    /// (dev, ino) of what `fd` writes to.
    identity: Option<(u64, u64)>,
    reopen: Option<Reopen>,
    label: String,
    /// In a streak of write errors (warned once).
    failing: bool,
    dropped: u64,
    /// No other process writes to the same pipe (no app inherits it), so writes need not
    /// stay within PIPE_BUF to be atomic: fewer, larger writes wake the reader less.
    exclusive: bool,
}

impl Sink {
    /// A sink for runner's own `fd` (1 or 2), holding at most about `cap` pending bytes. The
    /// flags of `fd` are never changed; the way of writing is chosen by what `fd` is (see
    /// the module documentation). A closed `fd` gives a sink that discards.
    pub fn stdio(fd: RawFd, cap: usize) -> Sink {
        let label = match fd {
            1 => "stdout".to_string(),
            2 => "stderr".to_string(),
            n => format!("fd {n}"),
        };
        let st = match fstat(fd) {
            Ok(st) => st,
            Err(e) => {
                log::debug!("{label} is not usable ({e}); output for it is discarded");
                return Sink::new(Fd::Shared(fd), WriteMode::Discard, cap, None, label);
            }
        };
        let identity = Some(ident(&st));
        let kind = st.st_mode & libc::S_IFMT;
        // SAFETY: fstat just showed `fd` open, and the caller keeps it open (see Fd::borrow).
        let open = unsafe { BorrowedFd::borrow_raw(fd) };
        let tty = kind == libc::S_IFCHR && nix::unistd::isatty(open).unwrap_or(false);
        let (fd, mode) = if kind == libc::S_IFSOCK {
            (Fd::Shared(fd), WriteMode::Send)
        } else if kind == libc::S_IFIFO || tty {
            match reopen_private(fd, &st) {
                Some(own) => (Fd::Owned(own), WriteMode::NonBlocking),
                None => (Fd::Shared(fd), WriteMode::PollGuarded),
            }
        } else {
            (Fd::Shared(fd), WriteMode::Direct)
        };
        Sink::new(fd, mode, cap, identity, label)
    }

    /// [`Sink::stdio`] as if reopening through `/proc` had failed (tests the fallback).
    #[cfg(test)]
    pub(crate) fn stdio_poll_guarded(fd: RawFd, cap: usize) -> Sink {
        let identity = fstat(fd).ok().map(|st| ident(&st));
        Sink::new(
            Fd::Shared(fd),
            WriteMode::PollGuarded,
            cap,
            identity,
            format!("fd {fd}"),
        )
    }

    /// Whether this sink checks its path for rotation (regular log files only).
    pub fn checks_rotation(&self) -> bool {
        self.reopen.is_some()
    }

    /// A sink appending to the file at `path` (created 0640 if missing), holding at most
    /// about `cap` pending bytes, checked for rotation at most once per second.
    pub fn file(path: &Path, cap: usize) -> io::Result<Sink> {
        Sink::file_checked_every(path, cap, REOPEN_CHECK)
    }

    /// [`Sink::file`] with the rotation check interval given (tests use zero).
    pub fn file_checked_every(path: &Path, cap: usize, every: Duration) -> io::Result<Sink> {
        Sink::file_as(path, cap, every, None)
    }

    /// [`Sink::file_checked_every`] for an app running with `as_user` (see the module
    /// documentation): opened and reopened with that user's rights.
    pub fn file_as(
        path: &Path,
        cap: usize,
        every: Duration,
        as_user: Option<&Credentials>,
    ) -> io::Result<Sink> {
        let (fd, meta) = open_log(path, as_user)?;
        let mode = mode_of(&fd, &meta);
        let identity = Some((meta.dev(), meta.ino()));
        let mut sink = Sink::new(
            Fd::Owned(fd),
            mode,
            cap,
            identity,
            path.display().to_string(),
        );
        if meta.file_type().is_file() {
            sink.reopen = Some(Reopen {
                path: path.to_path_buf(),
                as_user: as_user.cloned(),
                every,
                last: Instant::now(),
                failed: false,
            });
        }
        Ok(sink)
    }

    fn new(
        fd: Fd,
        mode: WriteMode,
        cap: usize,
        identity: Option<(u64, u64)>,
        label: String,
    ) -> Sink {
        Sink {
            fd,
            mode,
            buf: Vec::new(),
            start: 0,
            cap: cap.max(1),
            identity,
            reopen: None,
            label,
            failing: false,
            dropped: 0,
            exclusive: false,
        }
    }

    /// From now on, reopen (after rotation) only with the rights of `creds` too: an app
    /// running as another user shares this file.
    pub fn restrict_reopen_to(&mut self, creds: &Credentials) {
        if let Some(r) = self.reopen.as_mut() {
            r.as_user.get_or_insert_with(|| creds.clone());
        }
    }

    /// Says whether this sink is the only writer of what it writes to.
    pub fn set_exclusive(&mut self, exclusive: bool) {
        self.exclusive = exclusive;
    }

    /// Queues `bytes`, which should be whole decorated lines. The bytes are always taken
    /// (never dropped here); returns `false` when the buffer is now at or over capacity —
    /// the caller then stops reading its sources until [`flush`](Sink::flush) makes room
    /// ([`has_room`](Sink::has_room)).
    pub fn queue(&mut self, bytes: &[u8]) -> bool {
        if self.mode == WriteMode::Discard {
            return true;
        }
        self.buf.extend_from_slice(bytes);
        self.has_room()
    }

    /// Decorates `line` (without its newline) and queues it; see [`queue`](Sink::queue).
    pub fn queue_line(&mut self, decor: &Decor, line: &[u8], now: SystemTime) -> bool {
        if self.mode == WriteMode::Discard {
            return true;
        }
        decor.format(line, now, &mut self.buf);
        self.has_room()
    }

    /// Whether the buffer is under capacity (sources feeding it may be read).
    pub fn has_room(&self) -> bool {
        self.pending() < self.cap
    }

    /// Bytes queued but not written yet.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The fd written to. When [`pollable`](Sink::pollable), register it with mio for
    /// `WRITABLE` (once, edge-triggered) and call `flush` on its events.
    pub fn fd(&self) -> RawFd {
        self.fd.raw()
    }

    /// Whether `fd()` can be registered with epoll and ever leaves output pending. A
    /// [`WriteMode::Direct`] sink (regular file, `/dev/null`) can't be registered and never
    /// needs to be: its `flush` always writes everything.
    pub fn pollable(&self) -> bool {
        matches!(
            self.mode,
            WriteMode::NonBlocking | WriteMode::Send | WriteMode::PollGuarded
        )
    }

    /// How this sink writes.
    pub fn mode(&self) -> WriteMode {
        self.mode
    }

    /// (dev, ino) of the file written to, if known.
    pub fn identity(&self) -> Option<(u64, u64)> {
        self.identity
    }

    /// What this sink writes to, for messages: `stdout`, `stderr` or the path.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Bytes dropped because writing failed for good (EPIPE, ENOSPC, ...).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Writes as much as possible without blocking. Returns `true` when nothing is left
    /// pending (all written, or dropped after a write error); `false` when the file can't
    /// take more right now — wait for `fd()` to be writable (or a short timer) and retry.
    pub fn flush(&mut self) -> bool {
        if self.pending() == 0 {
            return true;
        }
        self.check_rotation();
        loop {
            let pending = self.pending();
            if pending == 0 {
                self.emptied();
                return true;
            }
            let len = self.chunk_len();
            let chunk = &self.buf[self.start..self.start + len];
            let res = match self.mode {
                WriteMode::Discard => Ok(len),
                WriteMode::Direct | WriteMode::NonBlocking => write(self.fd.borrow(), chunk),
                WriteMode::Send => send(self.fd.raw(), chunk),
                WriteMode::PollGuarded => match poll_out(self.fd.borrow(), 0) {
                    Ok(true) => write(self.fd.borrow(), chunk),
                    Ok(false) => Err(io::ErrorKind::WouldBlock.into()),
                    Err(e) => Err(e),
                },
            };
            match res {
                Ok(0) => {
                    // A zero-length write for a non-empty chunk: treat as "not now".
                    self.compact();
                    return false;
                }
                Ok(n) => {
                    self.start += n;
                    if self.failing {
                        self.failing = false;
                        log::warn!(
                            "{}: writing works again ({} bytes of output were dropped so far)",
                            self.label,
                            self.dropped
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.compact();
                    return false;
                }
                Err(e) => {
                    self.dropped += pending as u64;
                    if !self.failing {
                        self.failing = true;
                        log::warn!(
                            "{}: {e}; dropping {pending} bytes of output (and more while this lasts)",
                            self.label
                        );
                    }
                    self.buf.clear();
                    self.start = 0;
                    return true;
                }
            }
        }
    }

    /// Writes everything, waiting for the file to take it, until `deadline` (shutdown).
    /// Returns whether everything was written; what's left is kept.
    pub fn flush_blocking(&mut self, deadline: Instant) -> bool {
        loop {
            if self.flush() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            let ms = wait.as_millis().clamp(1, 100) as u16;
            // Errors and timeouts alike: retry `flush`, which reports real errors.
            let _ = poll_out(self.fd.borrow(), ms);
        }
    }

    /// The next piece to write: everything for `Direct`, else whole lines up to `PIPE_BUF`
    /// bytes (atomic on a pipe); a longer first line goes whole, or in `PIPE_BUF` pieces when
    /// each write must fit the room `POLLOUT` promises.
    fn chunk_len(&self) -> usize {
        let pend = &self.buf[self.start..];
        match self.mode {
            WriteMode::Direct | WriteMode::Discard => pend.len(),
            WriteMode::NonBlocking | WriteMode::Send if self.exclusive => pend.len(),
            _ if pend.len() <= PIPE_BUF => pend.len(),
            mode => match pend[..PIPE_BUF].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None if mode == WriteMode::PollGuarded => PIPE_BUF,
                None => pend
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(pend.len(), |i| i + 1),
            },
        }
    }

    /// Drops the written prefix when that's cheap relative to what's left.
    fn compact(&mut self) {
        if self.start > 0 && self.start >= self.pending() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    fn emptied(&mut self) {
        self.buf.clear();
        self.start = 0;
        // Give back the memory of a burst.
        if self.buf.capacity() > 2 * self.cap.max(64 * 1024) {
            self.buf.shrink_to(64 * 1024);
        }
    }

    /// For a regular log file: if the interval has passed, reopen when the path is gone or
    /// now names another file (moved away by logrotate).
    fn check_rotation(&mut self) {
        let Some(r) = self.reopen.as_mut() else {
            return;
        };
        let now = Instant::now();
        if now.duration_since(r.last) < r.every {
            return;
        }
        r.last = now;
        // For an app running as another user, lstat: a link swapped in for the file is
        // "another file", whose reopen the no-link rule then refuses.
        let meta = if r.as_user.is_some() {
            std::fs::symlink_metadata(&r.path)
        } else {
            std::fs::metadata(&r.path)
        };
        match meta {
            Ok(m) if Some((m.dev(), m.ino())) == self.identity => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                log::debug!("{}: can't check for rotation: {e}", r.path.display());
                return;
            }
        }
        match open_log(&r.path, r.as_user.as_ref()) {
            Ok((fd, meta)) => {
                if r.failed {
                    r.failed = false;
                    log::warn!("{}: reopened", r.path.display());
                }
                log::debug!("{}: moved away, reopened", r.path.display());
                self.mode = mode_of(&fd, &meta);
                self.identity = Some((meta.dev(), meta.ino()));
                self.fd = Fd::Owned(fd);
                if !meta.file_type().is_file() {
                    self.reopen = None;
                }
            }
            Err(e) => {
                if !r.failed {
                    r.failed = true;
                    log::warn!(
                        "{}: moved away but can't be reopened ({e}); still writing to the old file",
                        r.path.display()
                    );
                }
            }
        }
    }
}

/// Opens a log path for appending without ever blocking or seeking; for an app running as
/// another user, with its rights (see [`crate::as_user`]).
fn open_log(
    path: &Path,
    as_user: Option<&Credentials>,
) -> io::Result<(OwnedFd, std::fs::Metadata)> {
    let mut opts = OpenOptions::new();
    opts.append(true)
        .create(true)
        .mode(0o640)
        // std adds O_CLOEXEC. O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of
        // hanging the loop, and a FIFO/tty write answers EAGAIN; regular files ignore it.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    let file = crate::as_user::open(path, &mut opts, as_user)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let meta = file.metadata()?;
    Ok((OwnedFd::from(file), meta))
}

/// How to write to a file runner opened itself (so `O_NONBLOCK` is its own).
fn mode_of(fd: &OwnedFd, meta: &std::fs::Metadata) -> WriteMode {
    let ft = meta.file_type();
    let tty = ft.is_char_device() && nix::unistd::isatty(fd).unwrap_or(false);
    if ft.is_fifo() || tty || ft.is_socket() {
        WriteMode::NonBlocking
    } else {
        WriteMode::Direct
    }
}

/// A new open file description of the pipe or terminal behind `fd`, with `O_NONBLOCK`, or
/// None when that isn't possible or yields something else.
fn reopen_private(fd: RawFd, st: &libc::stat) -> Option<OwnedFd> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let path = format!("/proc/self/fd/{fd}");
    let own = match nix::fcntl::open(path.as_str(), flags, nix::sys::stat::Mode::empty()) {
        Ok(own) => own,
        Err(e) => {
            log::debug!("fd {fd}: can't reopen through /proc ({e}); using poll-guarded writes");
            return None;
        }
    };
    match nix::sys::stat::fstat(&own) {
        Ok(n) if n.st_dev == st.st_dev && n.st_ino == st.st_ino => Some(own),
        _ => None,
    }
}

/// fstat of an fd number that may not be open (runner's stdout may have been closed by
/// whoever started it): libc's, because nix needs a `BorrowedFd`, which must not be made
/// of a closed number.
fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer; fstat fails with EBADF on a closed number.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// (dev, ino) of a stat (the field types differ between targets).
#[allow(clippy::unnecessary_cast)]
fn ident(st: &libc::stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    Ok(nix::unistd::write(fd, buf)?)
}

fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    use nix::sys::socket::MsgFlags;
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    Ok(nix::sys::socket::send(fd, buf, flags)?)
}

/// Whether `fd` is writable (or in an error state a write will report) within `timeout_ms`.
fn poll_out(fd: BorrowedFd<'_>, timeout_ms: u16) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags};
    let mut p = [PollFd::new(fd, PollFlags::POLLOUT)];
    let n = nix::poll::poll(&mut p, timeout_ms)?;
    if p[0]
        .revents()
        .is_some_and(|r| r.contains(PollFlags::POLLNVAL))
    {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(n > 0)
}
