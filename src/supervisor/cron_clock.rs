//! Turns `cron_restart` expressions into the core's monotonic deadlines.
//!
//! The core never reads a clock, so the shell does it here: the next match after the
//! current wall-clock time, in the local zone (`TZ`, else `/etc/localtime`, else UTC,
//! read once, on the first cron app), becomes `Instant::now() + (match - now)`. Each run
//! is computed from the later of now and the previous run, so a deadline that fires a
//! hair early on the wall clock never runs the same match twice. A wall-clock jump
//! (NTP step, suspend) moves the next run only once it is re-armed, after the current one.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::tz::TimeZone;

use crate::core::Core;

#[derive(Default)]
pub struct CronClock {
    zone: Option<TimeZone>,
    /// The last run armed for each app, in seconds since the epoch.
    last: HashMap<String, i64>,
}

impl CronClock {
    /// Arms the next run of every cron app that has none.
    pub fn arm(&mut self, core: &mut Core) {
        let names = core.unarmed_crons();
        if names.is_empty() {
            return;
        }
        let zone = self
            .zone
            .get_or_insert_with(crate::cron::local_zone_or_utc)
            .clone();
        let now = SystemTime::now();
        let mono = Instant::now();
        let wall = crate::tz::now_seconds();
        for name in names {
            let Some(expr) = core
                .apps()
                .iter()
                .find(|a| a.spec.name == name)
                .and_then(|a| a.spec.cron_restart.clone())
            else {
                continue;
            };
            let after = self.last.get(&name).map_or(wall, |l| (*l).max(wall));
            let Some(at) = expr.next_after(&zone, after) else {
                // Parsing refuses expressions that never match; nothing to arm.
                continue;
            };
            // From the precise wall clock: `wall` is rounded down to the second.
            let wait = u64::try_from(at)
                .map(|s| UNIX_EPOCH + Duration::from_secs(s))
                .ok()
                .and_then(|t| t.duration_since(now).ok())
                .unwrap_or_default();
            let level = if self.last.contains_key(&name) {
                log::Level::Debug
            } else {
                log::Level::Info
            };
            log::log!(
                level,
                "{name}: next cron_restart run {}",
                crate::cron::show(&zone, at)
            );
            self.last.insert(name.clone(), at);
            core.arm_cron(&name, mono + wait);
        }
    }
}
