//! Which signals runner catches, through signal-hook's self-pipe so they arrive as
//! ordinary events in the mio loop.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use signal_hook::consts::signal::*;

pub type SignalSource = signal_hook_mio::v1_0::Signals;

/// Signals runner acts on in every mode.
const COMMON: &[i32] = &[
    SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH,
];

/// Extra signals forwarded in single-program mode: every catchable one that is not about
/// runner's own execution (SIGSEGV and friends), SIGCHLD, or terminal I/O.
const SINGLE_EXTRA: &[i32] = &[
    SIGALRM,
    SIGCONT,
    SIGTSTP,
    SIGURG,
    SIGXCPU,
    SIGXFSZ,
    SIGVTALRM,
    SIGPROF,
    SIGIO,
    libc::SIGPWR,
];

/// Installs the handlers; called before any child exists so that no signal is lost.
pub fn install(single: bool) -> std::io::Result<SignalSource> {
    ignore_terminal_stops();
    let mut list: Vec<i32> = COMMON.to_vec();
    if single {
        list.extend_from_slice(SINGLE_EXTRA);
        list.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    }
    SignalSource::new(list)
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
