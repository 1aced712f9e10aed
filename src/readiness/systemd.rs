//! Runner as a systemd `Type=notify` service: READY=1 once every app is online, a STATUS=
//! summary, RELOADING=1/READY=1 around reloads, STOPPING=1 on shutdown, and WATCHDOG=1
//! every half `WATCHDOG_USEC`. Inert when runner has no NOTIFY_SOCKET.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use crate::readiness::notify::notify;

#[derive(Debug, Default)]
pub struct Systemd {
    socket: Option<OsString>,
    watchdog_every: Option<Duration>,
    next_watchdog: Option<Instant>,
    ready_sent: bool,
    stopping_sent: bool,
    reloading: bool,
    last_status: String,
}

impl Systemd {
    /// Reads runner's own environment (before it is filtered for the apps).
    pub fn from_env(now: Instant) -> Systemd {
        let socket = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty());
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|us| *us > 0 && for_us)
            .map(|us| Duration::from_micros(us / 2));
        Systemd {
            next_watchdog: watchdog_every.map(|_| now),
            socket,
            watchdog_every,
            ..Systemd::default()
        }
    }

    fn send(&self, message: &str) {
        if let Some(sock) = &self.socket {
            if let Err(e) = notify(sock, message) {
                log::debug!("cannot notify systemd ({message:?}): {e}");
            }
        }
    }

    /// Whether runner runs under a service manager that listens.
    pub fn active(&self) -> bool {
        self.socket.is_some()
    }

    /// The next WATCHDOG=1, if systemd asked for them.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_watchdog
    }

    /// Called once per loop turn with the apps' state.
    pub fn update(
        &mut self,
        all_online: bool,
        summary: &str,
        reloading: bool,
        stopping: bool,
        now: Instant,
    ) {
        if self.socket.is_none() {
            return;
        }
        if let (Some(at), Some(every)) = (self.next_watchdog, self.watchdog_every) {
            if at <= now {
                self.send("WATCHDOG=1");
                self.next_watchdog = Some(now + every);
            }
        }
        if stopping {
            if !self.stopping_sent {
                self.stopping_sent = true;
                self.send(&format!("STOPPING=1\nSTATUS=stopping: {summary}"));
            }
            return;
        }
        if reloading && !self.reloading && self.ready_sent {
            self.reloading = true;
            self.send("RELOADING=1");
        }
        let mut parts = Vec::new();
        if all_online && !reloading && (!self.ready_sent || self.reloading) {
            self.ready_sent = true;
            self.reloading = false;
            parts.push("READY=1".to_string());
        }
        if summary != self.last_status {
            self.last_status = summary.to_string();
            parts.push(format!("STATUS={summary}"));
        }
        if !parts.is_empty() {
            self.send(&parts.join("\n"));
        }
    }
}
