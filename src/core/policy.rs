//! What happens after an instance's main process exits: restart, give up, or stop.
//!
//! Pure: the caller passes the run's length and the counters it keeps; nothing here reads
//! a clock or touches a process.

use std::time::Duration;

use crate::config::AppSpec;

/// How a process ended, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
}

impl ExitKind {
    /// The shell convention (and tini's): a signal N reads as 128+N.
    pub fn as_code(self) -> i32 {
        match self {
            ExitKind::Code(c) => c,
            ExitKind::Signal(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitKind::Code(c) => write!(f, "exit code {c}"),
            ExitKind::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(*s)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown signal");
                write!(f, "signal {s} ({name})")
            }
        }
    }
}

/// Counters that survive restarts of one instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestartState {
    /// Consecutive runs shorter than `min_uptime`. A long run resets it, so a crash loop
    /// is caught whenever it starts (PM2 only counts inside a window after creation).
    pub unstable_runs: u32,
    /// The last exponential-backoff delay, when `exp_backoff_restart_delay` is set.
    pub backoff: Option<Duration>,
}

/// The verdict on one exit that nobody asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Start again after this delay.
    Restart(Duration),
    /// Ended for good; `failed` tells whether it counts against runner's exit code.
    Ended { failed: bool },
    /// Too many consecutive unstable runs.
    Errored,
}

/// Exponential backoff caps here, as PM2 does.
pub const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// This much uptime resets the exponential backoff.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(30);

/// Decides what to do after an unrequested exit and updates the counters.
pub fn decide(
    spec: &AppSpec,
    state: &mut RestartState,
    ran_for: Duration,
    exit: ExitKind,
) -> Verdict {
    let expected = matches!(exit, ExitKind::Code(c) if spec.stop_exit_codes.contains(&c));
    if expected {
        return Verdict::Ended { failed: false };
    }
    if !spec.autorestart {
        return Verdict::Ended {
            failed: exit != ExitKind::Code(0),
        };
    }
    if ran_for < spec.min_uptime {
        state.unstable_runs = state.unstable_runs.saturating_add(1);
        if state.unstable_runs > spec.max_restarts {
            return Verdict::Errored;
        }
    } else {
        state.unstable_runs = 0;
    }
    let delay = match spec.exp_backoff_restart_delay {
        Some(first) => {
            let next = match state.backoff {
                Some(prev) if ran_for < BACKOFF_RESET_AFTER => prev.mul_f64(1.5).min(BACKOFF_MAX),
                _ => first.min(BACKOFF_MAX),
            };
            state.backoff = Some(next);
            next
        }
        None => spec.restart_delay,
    };
    Verdict::Restart(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn spec() -> AppSpec {
        AppSpec::with_defaults(
            "t",
            PathBuf::from("/bin/true"),
            vec!["true".into()],
            PathBuf::from("/"),
        )
    }

    const SHORT: Duration = Duration::from_millis(10);
    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn crash_loop_becomes_errored_after_max_restarts_consecutive_short_runs() {
        let mut s = spec();
        s.max_restarts = 3;
        let mut st = RestartState::default();
        for _ in 0..3 {
            assert_eq!(
                decide(&s, &mut st, SHORT, ExitKind::Code(1)),
                Verdict::Restart(Duration::ZERO)
            );
        }
        assert_eq!(
            decide(&s, &mut st, SHORT, ExitKind::Code(1)),
            Verdict::Errored
        );
    }

    #[test]
    fn a_long_run_resets_the_unstable_count_so_a_later_crash_loop_is_still_caught() {
        let mut s = spec();
        s.max_restarts = 2;
        let mut st = RestartState::default();
        decide(&s, &mut st, SHORT, ExitKind::Code(1));
        decide(&s, &mut st, SHORT, ExitKind::Code(1));
        assert!(matches!(
            decide(&s, &mut st, LONG, ExitKind::Code(1)),
            Verdict::Restart(_)
        ));
        assert_eq!(st.unstable_runs, 0);
        decide(&s, &mut st, SHORT, ExitKind::Code(1));
        decide(&s, &mut st, SHORT, ExitKind::Code(1));
        assert_eq!(
            decide(&s, &mut st, SHORT, ExitKind::Code(1)),
            Verdict::Errored
        );
    }

    #[test]
    fn max_restarts_zero_gives_up_on_the_first_short_run() {
        let mut s = spec();
        s.max_restarts = 0;
        let mut st = RestartState::default();
        assert_eq!(
            decide(&s, &mut st, SHORT, ExitKind::Signal(9)),
            Verdict::Errored
        );
    }

    #[test]
    fn stop_exit_codes_end_the_instance_without_failure() {
        let mut s = spec();
        s.stop_exit_codes = vec![3];
        let mut st = RestartState::default();
        assert_eq!(
            decide(&s, &mut st, LONG, ExitKind::Code(3)),
            Verdict::Ended { failed: false }
        );
        assert!(matches!(
            decide(&s, &mut st, LONG, ExitKind::Code(4)),
            Verdict::Restart(_)
        ));
    }

    #[test]
    fn without_autorestart_only_a_clean_exit_is_not_a_failure() {
        let mut s = spec();
        s.autorestart = false;
        let mut st = RestartState::default();
        assert_eq!(
            decide(&s, &mut st, LONG, ExitKind::Code(0)),
            Verdict::Ended { failed: false }
        );
        assert_eq!(
            decide(&s, &mut st, LONG, ExitKind::Code(2)),
            Verdict::Ended { failed: true }
        );
        assert_eq!(
            decide(&s, &mut st, LONG, ExitKind::Signal(15)),
            Verdict::Ended { failed: true }
        );
    }

    #[test]
    fn restart_delay_is_fixed() {
        let mut s = spec();
        s.restart_delay = Duration::from_millis(250);
        let mut st = RestartState::default();
        assert_eq!(
            decide(&s, &mut st, LONG, ExitKind::Code(1)),
            Verdict::Restart(Duration::from_millis(250))
        );
        assert_eq!(
            decide(&s, &mut st, LONG, ExitKind::Code(1)),
            Verdict::Restart(Duration::from_millis(250))
        );
    }

    #[test]
    fn exponential_backoff_grows_by_half_caps_at_15s_and_resets_after_30s_up() {
        let mut s = spec();
        s.exp_backoff_restart_delay = Some(Duration::from_millis(100));
        s.max_restarts = 1000;
        let mut st = RestartState::default();
        let ms = |v: Verdict| match v {
            Verdict::Restart(d) => d.as_millis(),
            other => panic!("expected a restart, got {other:?}"),
        };
        assert_eq!(ms(decide(&s, &mut st, SHORT, ExitKind::Code(1))), 100);
        assert_eq!(ms(decide(&s, &mut st, SHORT, ExitKind::Code(1))), 150);
        assert_eq!(ms(decide(&s, &mut st, SHORT, ExitKind::Code(1))), 225);
        for _ in 0..30 {
            decide(&s, &mut st, SHORT, ExitKind::Code(1));
        }
        assert_eq!(ms(decide(&s, &mut st, SHORT, ExitKind::Code(1))), 15_000);
        assert_eq!(
            ms(decide(
                &s,
                &mut st,
                Duration::from_secs(31),
                ExitKind::Code(1)
            )),
            100
        );
    }
}
