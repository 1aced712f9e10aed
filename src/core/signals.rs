//! What a signal sent to runner means. Runner's mode decides it: in single-program mode
//! every signal goes to the program (tini's rule); with an ecosystem file SIGTERM, SIGINT
//! and SIGQUIT stop everything, SIGHUP is forwarded or reloads (`on_sighup`), and the
//! rest are forwarded to every main process. The shell only reads the signalfd and
//! performs the resulting actions.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::{Action, Core};

/// How runner treats the signals it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `runner -- PROGRAM`: every signal goes to the program, tini-style.
    Single,
    /// An ecosystem file: SIGTERM/SIGINT/SIGQUIT stop everything, a few are forwarded.
    Ecosystem { sighup_reloads: bool },
}

/// What one signal means to the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// Passed on to every main process, and nothing else changes.
    Forward,
    /// SIGTERM, SIGINT or SIGQUIT with an ecosystem: stop everything.
    Stop(Signal),
    /// SIGHUP with `on_sighup = "reload"`.
    Reload,
    /// SIGCHLD (the shell reaps), or a real-time signal to an ecosystem.
    Nothing,
}

impl Core {
    fn meaning(&self, signo: i32) -> Meaning {
        if signo == Signal::SIGCHLD as i32 {
            return Meaning::Nothing;
        }
        let Ok(signal) = Signal::try_from(signo) else {
            // Real-time signals have no name in nix: they are the program's business in
            // single-program mode and mean nothing to an ecosystem.
            return match self.mode {
                Mode::Single => Meaning::Forward,
                Mode::Ecosystem { .. } => Meaning::Nothing,
            };
        };
        match (self.mode, signal) {
            (Mode::Single, _) => Meaning::Forward,
            (Mode::Ecosystem { .. }, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => {
                Meaning::Stop(signal)
            }
            (
                Mode::Ecosystem {
                    sighup_reloads: true,
                },
                Signal::SIGHUP,
            ) => Meaning::Reload,
            (Mode::Ecosystem { .. }, _) => Meaning::Forward,
        }
    }

    /// Signal number `signo` reached runner.
    pub fn signal_received(&mut self, signo: i32, now: Instant) {
        match self.meaning(signo) {
            Meaning::Forward => self.forward_number(signo),
            Meaning::Stop(signal) => self.stop_signal(signal, now),
            Meaning::Reload => {
                log::info!("received SIGHUP: reloading every app");
                self.reload_all(now);
            }
            Meaning::Nothing => {}
        }
    }

    /// Whether `signo` only makes the core pass it on: the supervisor then has nothing
    /// else to do in its turn (SIGCHLD is not one: the shell reaps).
    pub fn only_forwards(&self, signo: i32) -> bool {
        self.meaning(signo) == Meaning::Forward
    }

    /// Passes `signal` on to every instance's main process.
    pub fn forward(&mut self, signal: Signal) {
        self.forward_number(signal as i32);
    }

    /// Where a forwarded signal goes: every live main process, a reload's replacement
    /// included. Valid until the core next changes (the supervisor keeps it between
    /// turns, to forward without touching the core: `Supervisor::pass_on`).
    pub fn forward_targets(&self) -> impl Iterator<Item = i32> + '_ {
        targets(&self.slots)
    }

    fn forward_number(&mut self, signal: i32) {
        let forwards = targets(&self.slots).map(|pid| Action::Forward { pid, signal });
        self.actions.extend(forwards);
    }
}

fn targets(slots: &super::slots::Slots) -> impl Iterator<Item = i32> + '_ {
    slots
        .values()
        .flat_map(|slot| [&slot.proc, &slot.replacement].into_iter().flatten())
        .filter(|p| p.main_alive())
        .map(|p| p.pid)
}
