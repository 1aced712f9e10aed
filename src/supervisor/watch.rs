//! `watch`: one inotify descriptor per watched app on the loop, recursive by hand
//! (inotify watches one folder at a time), new folders added as they appear.
//!
//! Nothing here is timed: an app with no changes costs no wake-up. A change is passed to
//! the core ([`Core::files_changed`]), whose `watch_delay` deadline turns a burst into one
//! restart. Events are `IN_CLOSE_WRITE` rather than `IN_MODIFY`, so a file some process
//! keeps open and appends to (a log) does not restart the app on every line.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::tokens::Band;
use crate::config::WatchSpec;
use crate::core::Core;

/// The watches of every app with `watch`.
#[derive(Default)]
pub struct Watches {
    apps: Vec<AppWatch>,
    next_token: u64,
}

struct AppWatch {
    app: String,
    spec: WatchSpec,
    cwd: PathBuf,
    inotify: Inotify,
    token: Token,
    /// Watched folders (and watched single files) by descriptor.
    paths: HashMap<WatchDescriptor, PathBuf>,
    /// The inotify watch limit was hit: said once.
    limit_warned: bool,
}

fn dir_mask() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
}

impl Watches {
    pub fn owns(&self, token: Token) -> bool {
        matches!(Band::of(token), Some((Band::Watch, _)))
    }

    /// Watches what the core's apps ask for: new or changed apps get a fresh watch,
    /// apps that are gone or no longer watched lose theirs.
    pub fn sync(&mut self, registry: &Registry, core: &Core) {
        let wanted: Vec<(&str, &WatchSpec, &Path)> = core
            .apps()
            .iter()
            .filter_map(|a| {
                a.spec
                    .watch
                    .as_ref()
                    .map(|w| (a.spec.name.as_str(), w, a.spec.cwd.as_path()))
            })
            .collect();
        if wanted.is_empty() && self.apps.is_empty() {
            return;
        }
        self.apps.retain(|w| {
            let keep = wanted
                .iter()
                .any(|(n, s, c)| *n == w.app && **s == w.spec && *c == w.cwd);
            if !keep {
                let fd = w.inotify.as_fd().as_raw_fd();
                let _ = registry.deregister(&mut SourceFd(&fd));
            }
            keep
        });
        for (name, spec, cwd) in wanted {
            if self.apps.iter().any(|w| w.app == name) {
                continue;
            }
            let token = Band::Watch.token(self.next_token);
            self.next_token += 1;
            match AppWatch::new(name, spec, cwd, token, registry) {
                Ok(w) => self.apps.push(w),
                Err(e) => {
                    log::warn!("{name}: cannot watch files: {e}; changes will not restart it")
                }
            }
        }
    }

    /// Reads what inotify has for `token`; tells the core when something counts.
    pub fn handle(&mut self, token: Token, core: &mut Core, now: std::time::Instant) {
        let Some(w) = self.apps.iter_mut().find(|w| w.token == token) else {
            return;
        };
        if let Some(path) = w.read() {
            log::debug!("{}: change at {}", w.app, path.display());
            core.files_changed(&w.app, now);
        }
    }
}

impl AppWatch {
    fn new(
        app: &str,
        spec: &WatchSpec,
        cwd: &Path,
        token: Token,
        registry: &Registry,
    ) -> Result<AppWatch, String> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(|e| {
            if e == Errno::EMFILE {
                format!("{e} (the inotify instance limit, fs.inotify.max_user_instances, or the open file limit is reached)")
            } else {
                e.to_string()
            }
        })?;
        let fd = inotify.as_fd().as_raw_fd();
        registry
            .register(&mut SourceFd(&fd), token, Interest::READABLE)
            .map_err(|e| e.to_string())?;
        let mut w = AppWatch {
            app: app.to_string(),
            spec: spec.clone(),
            cwd: cwd.to_path_buf(),
            inotify,
            token,
            paths: HashMap::new(),
            limit_warned: false,
        };
        for root in spec.paths.clone() {
            w.add_tree(&root);
        }
        log::debug!("{app}: watching {} folders and files", w.paths.len());
        Ok(w)
    }

    fn ignored(&self, path: &Path) -> bool {
        self.spec.own_files.iter().any(|f| f == path)
            || crate::glob::ignored(path, &self.cwd, &self.spec.paths, &self.spec.ignore)
    }

    /// Watches `root` and every folder below it that is not ignored. Symbolic links
    /// below the root are not followed (they could loop).
    fn add_tree(&mut self, root: &Path) {
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if !self.add_one(&dir) {
                return;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let p = entry.path();
                    if !self.ignored(&p) {
                        stack.push(p);
                    }
                }
            }
        }
    }

    /// False when the watch limit is reached (nothing more can be added).
    fn add_one(&mut self, path: &Path) -> bool {
        match self.inotify.add_watch(path, dir_mask()) {
            Ok(wd) => {
                self.paths.insert(wd, path.to_path_buf());
                true
            }
            Err(Errno::ENOSPC) => {
                if !self.limit_warned {
                    self.limit_warned = true;
                    let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                        .map(|s| s.trim().to_string())
                        .unwrap_or_else(|_| "?".to_string());
                    log::warn!(
                        "{}: the inotify watch limit is reached (fs.inotify.max_user_watches = {limit}); changes in {} and folders not yet watched are not seen. Add what need not be watched to ignore_watch, or raise the limit",
                        self.app,
                        path.display()
                    );
                }
                false
            }
            Err(e) => {
                // Gone meanwhile, or not readable: nothing to watch there.
                log::debug!("{}: cannot watch {}: {e}", self.app, path.display());
                true
            }
        }
    }

    /// Drains the descriptor; returns a path that counts as a change, if any did.
    fn read(&mut self) -> Option<PathBuf> {
        let mut changed = None;
        loop {
            let events = match self.inotify.read_events() {
                Ok(ev) if ev.is_empty() => break,
                Ok(ev) => ev,
                Err(Errno::EINTR) => continue,
                Err(_) => break, // EAGAIN: drained
            };
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    log::warn!(
                        "{}: too many file changes at once; some were not seen one by one",
                        self.app
                    );
                    changed = Some(self.cwd.clone());
                    continue;
                }
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    self.paths.remove(&ev.wd);
                    continue;
                }
                let Some(base) = self.paths.get(&ev.wd) else {
                    continue;
                };
                let path = match &ev.name {
                    Some(n) => base.join(n),
                    None => base.clone(),
                };
                if self.ignored(&path) {
                    continue;
                }
                let is_dir = ev.mask.contains(AddWatchFlags::IN_ISDIR);
                if is_dir
                    && ev
                        .mask
                        .intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
                {
                    self.add_tree(&path);
                }
                changed = Some(path);
            }
        }
        changed
    }
}
