//! Restarts nobody typed: `cron_restart` runs and `watch` changes. Both are deadlines of
//! an app; both restart its instances one at a time through the reload plan (cluster
//! mode: the replacement first; fork mode: stop, then start), so they are graceful and
//! never overlap a reload already under way.

use std::collections::VecDeque;
use std::time::Instant;

use super::{human, Core, SlotId};

/// What asked for the restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Cron,
    Watch,
}

impl Core {
    /// Apps with a `cron_restart` whose next run is not armed: the shell computes each
    /// one from the wall clock and the local time zone and calls [`Core::arm_cron`].
    pub fn unarmed_crons(&self) -> Vec<String> {
        if self.shutting_down {
            return Vec::new();
        }
        self.apps
            .iter()
            .filter(|a| a.spec.cron_restart.is_some() && a.cron_at.is_none())
            .map(|a| a.spec.name.clone())
            .collect()
    }

    /// The next `cron_restart` run of `app`, as a monotonic deadline.
    pub fn arm_cron(&mut self, app: &str, at: Instant) {
        if let Some(a) = self.apps.iter_mut().find(|a| a.spec.name == app) {
            if a.spec.cron_restart.is_some() {
                a.cron_at = Some(at);
            }
        }
    }

    /// A file under a watched path of `app` changed: restart `watch_delay` after the
    /// first change of a burst; later changes of the same burst join that restart.
    pub fn files_changed(&mut self, app: &str, now: Instant) {
        if self.shutting_down {
            return;
        }
        let Some(a) = self.apps.iter_mut().find(|a| a.spec.name == app) else {
            return;
        };
        let Some(w) = &a.spec.watch else {
            return;
        };
        if a.reload.is_some() {
            // The restart under way may have started before the change was written.
            a.watch_again = true;
        } else if a.watch_at.is_none() {
            a.watch_at = Some(now + w.delay);
        }
    }

    /// Runs the cron and watch restarts that are due.
    pub(super) fn scheduled_due(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        for ai in 0..self.apps.len() {
            let app = &mut self.apps[ai];
            let cron = app.cron_at.is_some_and(|t| t <= now);
            let watch = app.watch_at.is_some_and(|t| t <= now);
            if cron {
                app.cron_at = None;
            }
            if watch {
                app.watch_at = None;
            }
            let name = app.spec.name.clone();
            if cron {
                self.scheduled_restart(&name, Cause::Cron, now);
            } else if watch {
                self.scheduled_restart(&name, Cause::Watch, now);
            }
        }
        self.progress(now);
    }

    /// A change seen during a restart gets one more restart once that one is done.
    pub(super) fn watch_follow_up(&mut self, now: Instant) {
        for app in &mut self.apps {
            if app.watch_again && app.reload.is_none() && !self.shutting_down {
                app.watch_again = false;
                if app.watch_at.is_none() {
                    let delay = app.spec.watch.as_ref().map(|w| w.delay).unwrap_or_default();
                    app.watch_at = Some(now + delay);
                }
            }
        }
    }

    fn scheduled_restart(&mut self, name: &str, cause: Cause, now: Instant) {
        let Some(app) = self.apps.iter_mut().find(|a| a.spec.name == name) else {
            return;
        };
        if app.reload.is_some() {
            match cause {
                Cause::Cron => log::info!(
                    "{name}: cron_restart `{}`: a restart is still under way; skipping this run",
                    app.spec.cron_restart.as_ref().map_or("", |c| c.as_str())
                ),
                Cause::Watch => app.watch_again = true,
            }
            return;
        }
        let slots: VecDeque<SlotId> = app
            .slots
            .iter()
            .copied()
            .filter(|id| {
                self.slots.get(id).is_some_and(|s| {
                    // A cron run starts what `runner stop` put down, as PM2 does; a
                    // file change only restarts what is meant to run.
                    !s.deleting && (cause == Cause::Cron || !s.held)
                })
            })
            .collect();
        if slots.is_empty() {
            return;
        }
        match cause {
            Cause::Cron => log::info!(
                "{name}: cron_restart `{}`: restarting",
                app.spec.cron_restart.as_ref().map_or("", |c| c.as_str())
            ),
            Cause::Watch => {
                let delay = app.spec.watch.as_ref().map(|w| w.delay).unwrap_or_default();
                log::info!(
                    "{name}: files changed (watch_delay {}); restarting",
                    human(delay)
                );
            }
        }
        self.begin_reload(name, slots, false, now);
    }
}
