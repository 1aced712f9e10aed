//! Which signals runner catches, and how they reach the mio loop: blocked, and read from
//! a signalfd.
//!
//! Why a signalfd rather than handlers and a self-pipe (signal-hook): single-program mode
//! catches every catchable signal, 51 of them, and registering that many handlers through
//! signal-hook's registry copied the registry once per signal — 80% of the instructions
//! `runner -- true` executed. Blocking them is one system call and leaves no handler in
//! the process to be async-signal-safe about. A blocked signal is queued even for PID 1
//! (the kernel drops only signals that PID 1 leaves at their default action, unblocked),
//! and real-time signals stay queued one by one. Children start with an empty mask
//! (`spawn.rs`), so blocking here never leaks into them.
//!
//! In single-program mode, while nothing but signals can happen (no client connected, no
//! exec result awaited), the loop waits in `sigtimedwait` on the same set instead of in
//! epoll, as tini does: measured, epoll on a signalfd added ~10 µs to every forwarded
//! signal, and that wait is the whole of tini's advantage (BENCHMARKS.md, "PID-1 floor").
//! A client's connection then arrives as a SIGIO that the kernel sends for the control
//! socket (`Server::signal_on_connect`); a SIGIO sent by a process is forwarded as usual.

use std::os::fd::AsRawFd;

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Signals runner acts on in every mode.
const COMMON: &[Signal] = &[
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Extra signals forwarded in single-program mode: every catchable one that is not about
/// runner's own execution (SIGSEGV and friends), SIGCHLD, or terminal I/O.
const SINGLE_EXTRA: &[Signal] = &[
    Signal::SIGALRM,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGURG,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
];

/// The signals runner receives, as a readable descriptor for the mio loop.
pub struct SignalSource {
    fd: SignalFd,
    /// The blocked set the signalfd reads, for `wait`.
    mask: SigSet,
    /// One read's worth of siginfo records, handed out one by one.
    batch: [libc::signalfd_siginfo; BATCH],
    len: usize,
    next: usize,
    /// The last read filled less than `batch`: the queue was empty then, and with the
    /// edge-triggered registration a later signal wakes the loop again, so no read is
    /// owed (the usual case saves the read that would find nothing).
    drained: bool,
}

/// Siginfo records per read: more than any burst of distinct signals the loop sees at once.
const BATCH: usize = 8;

/// One signal as runner received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub signo: i32,
    /// The sender's pid (0 for the kernel).
    pub from: i32,
    /// A SIGIO the kernel raised for runner's own control socket (`si_code` > 0: a
    /// process's kill or sigqueue has SI_USER, SI_QUEUE or SI_TKILL, all ≤ 0). Not the
    /// program's business.
    pub own_io: bool,
}

impl Received {
    fn new(signo: i32, from: i32, code: i32) -> Received {
        Received {
            signo,
            from,
            own_io: signo == libc::SIGIO && code > 0,
        }
    }
}

impl SignalSource {
    /// The signalfd was reported readable: the next `next_signal` reads it again.
    pub fn woke(&mut self) {
        self.drained = false;
    }

    /// The next signal that arrived, in arrival order (a standard signal sent twice before
    /// runner reads it counts once, as with any handler). Read up to `BATCH` at a time
    /// into a buffer held here, without allocating: this is the path of every forwarded
    /// signal.
    pub fn next_signal(&mut self) -> Option<Received> {
        if self.next == self.len && !self.refill() {
            return None;
        }
        let info = &self.batch[self.next];
        self.next += 1;
        Some(Received::new(
            info.ssi_signo as i32,
            info.ssi_pid as i32,
            info.ssi_code,
        ))
    }

    /// Waits up to `timeout` (None: for ever) for one of the signals runner handles and
    /// takes it from the queue; None when the time ran out.
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> Option<Received> {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: t.subsec_nanos().into(),
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: siginfo_t is plain integers and a union of them: all-zero is a value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: the set, `info` and the timespec (or null) are valid for the call.
        let signo = unsafe { libc::sigtimedwait(self.mask.as_ref(), &mut info, ts_ptr) };
        if signo <= 0 {
            return None; // EAGAIN: the time ran out; EINTR: a stop, the loop turns anyway
        }
        // SAFETY: si_pid is valid to read for every signal the kernel reports here (0
        // where no process sent it).
        let from = unsafe { info.si_pid() };
        Some(Received::new(signo, from, info.si_code))
    }

    /// Reads the next batch; false when there is none (queue empty, or an error logged).
    fn refill(&mut self) -> bool {
        self.next = 0;
        self.len = 0;
        if self.drained {
            return false;
        }
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: reads at most the byte size of `batch`, an array of plain-data
            // records the kernel fills whole (a signalfd returns only whole records).
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    self.batch.as_mut_ptr().cast(),
                    size * BATCH,
                )
            };
            if n >= 0 {
                self.len = n as usize / size;
                self.drained = self.len < BATCH;
                return self.len > 0;
            }
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::EAGAIN => return false,
                e => {
                    log::warn!("cannot read signals: {e}");
                    return false;
                }
            }
        }
    }
}

impl Source for SignalSource {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> std::io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).register(r, t, i)
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> std::io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).reregister(r, t, i)
    }

    fn deregister(&mut self, r: &Registry) -> std::io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).deregister(r)
    }
}

/// Blocks the signals runner handles and opens the signalfd that receives them; called
/// before any child exists so that no signal is lost.
pub fn install(single: bool) -> std::io::Result<SignalSource> {
    ignore_terminal_stops();
    let mut mask = SigSet::empty();
    for s in COMMON {
        mask.add(*s);
    }
    if single {
        for s in SINGLE_EXTRA {
            mask.add(*s);
        }
        add_realtime(&mut mask);
    }
    // Single-threaded: the process mask is this thread's mask.
    mask.thread_block().map_err(std::io::Error::from)?;
    let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(
        |e| {
            // Without the descriptor nobody would read them: unblock rather than lose them.
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&mask), None);
            std::io::Error::from(e)
        },
    )?;
    Ok(SignalSource {
        fd,
        mask,
        // SAFETY: signalfd_siginfo is plain integers, for which all-zero is a value.
        batch: unsafe { std::mem::zeroed() },
        len: 0,
        next: 0,
        drained: false,
    })
}

/// Adds SIGRTMIN..=SIGRTMAX, which nix's `Signal` cannot name.
fn add_realtime(mask: &mut SigSet) {
    let mut raw: libc::sigset_t = *mask.as_ref();
    for sig in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        // SAFETY: `raw` is an initialised sigset_t and `sig` a valid signal number.
        unsafe { libc::sigaddset(&mut raw, sig) };
    }
    // SAFETY: built from a valid SigSet with sigaddset only.
    *mask = unsafe { SigSet::from_sigset_t_unchecked(raw) };
}

/// Runner writes to the terminal from whatever process group; SIGTTOU/SIGTTIN must never
/// stop it. Children get the default back before exec.
fn ignore_terminal_stops() {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGTTIN, Signal::SIGTTOU] {
        // SAFETY: installing SIG_IGN has no handler code to be unsafe about.
        if let Err(e) = unsafe { sigaction(sig, &ignore) } {
            log::warn!("cannot ignore {}: {e}", sig.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sigio_the_kernel_raised_is_runners_own() {
        // POLL_IN from F_SETSIG, SI_KERNEL without it; SI_USER (kill), SI_QUEUE, SI_TKILL.
        for (code, own) in [
            (1, true),
            (0x80, true),
            (0, false),
            (-1, false),
            (-6, false),
        ] {
            assert_eq!(Received::new(libc::SIGIO, 7, code).own_io, own, "{code}");
        }
        assert!(!Received::new(libc::SIGUSR1, 0, 1).own_io);
    }

    #[test]
    fn the_mask_holds_every_realtime_signal_in_single_mode() {
        let mut mask = SigSet::empty();
        add_realtime(&mut mask);
        for sig in libc::SIGRTMIN()..=libc::SIGRTMAX() {
            // SAFETY: reading a valid sigset_t.
            assert_eq!(unsafe { libc::sigismember(mask.as_ref(), sig) }, 1, "{sig}");
        }
        assert!(!mask.contains(Signal::SIGTERM));
    }
}
