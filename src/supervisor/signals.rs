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

impl SignalSource {
    /// The signal numbers that arrived since the last call, with the sender's pid, in
    /// arrival order (a standard signal sent twice before runner reads it counts once, as
    /// with any handler). Read up to `BATCH` at a time into a buffer held here, without
    /// allocating: this is the path of every forwarded signal.
    pub fn pending(&mut self) -> impl Iterator<Item = (i32, i32)> + '_ {
        self.drained = false;
        std::iter::from_fn(move || {
            if self.next == self.len && !self.refill() {
                return None;
            }
            let info = &self.batch[self.next];
            self.next += 1;
            Some((info.ssi_signo as i32, info.ssi_pid as i32))
        })
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
