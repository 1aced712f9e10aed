//! The loop's side of log capture: pipes for every instance in ecosystem mode, read as
//! they become readable and written as whole lines through [`crate::logs`] without blocking
//! the loop — to the log files, or to runner's own stdout/stderr — and kept in each
//! instance's ring for `runner logs` ([`Recent`]). Only single-program mode
//! (`runner -- PROGRAM`) hands the program runner's fd 1 and 2, as tini does, and never
//! passes through here.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::config::AppSpec;
use crate::logs::ring::Which;
use crate::logs::{self, Decor, Dest, Pump, Sinks, Stream};
use crate::supervisor::recent::{Meta, Recent};
use crate::supervisor::tokens::Band;

/// While output waits for a slow reader, retry this often.
const RETRY: Duration = Duration::from_millis(50);

/// The write ends for a child and the read ends runner keeps, before the spawn.
pub struct Prepared {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    streams: Vec<(Which, Stream)>,
    id: u32,
}

/// Whose stream it is.
#[derive(Debug, Clone, Copy)]
struct Owner {
    pid: i32,
    id: u32,
    which: Which,
}

#[derive(Default)]
pub struct Output {
    /// Every instance's output goes through runner (ecosystem mode), not only that of apps
    /// with log keys.
    capture_all: bool,
    /// Recent lines per instance and `logs --follow` clients.
    pub recent: Recent,
    sinks: Option<Sinks>,
    streams: HashMap<Token, (Owner, Stream)>,
    /// The streams of each process: finding them by walking `streams` made every exit
    /// cost O(instances) (a reload of N instances cost N²).
    by_pid: HashMap<i32, Vec<Token>>,
    /// Streams whose sink was full: pumped again once it has room.
    full: HashSet<Token>,
    next: usize,
    /// Some instance writes to runner's stdout directly.
    stdout_shared: bool,
}

impl Output {
    /// Output that goes through runner for every app (ecosystem mode), or only for apps
    /// with log keys (single-program mode, where there are none).
    pub fn new(capture_all: bool) -> Output {
        Output {
            capture_all,
            ..Output::default()
        }
    }

    /// Whether the instances of `spec` write through runner.
    pub fn captures(&self, spec: &AppSpec) -> bool {
        self.capture_all || spec.captures_output()
    }

    /// An instance is about to write to runner's stdout directly.
    pub fn note_inherited(&mut self) {
        self.stdout_shared = true;
        if let Some(sinks) = self.sinks.as_mut() {
            if let Ok(id) = sinks.get_or_open(Dest::Stdout) {
                sinks.sink(id).set_exclusive(false);
            }
        }
    }

    pub fn owns(&self, token: Token) -> bool {
        self.streams.contains_key(&token)
    }

    /// Pipes and destinations for instance `id` (number `index` of its app); None when the
    /// app's output is inherited.
    pub fn prepare(
        &mut self,
        spec: &AppSpec,
        id: u32,
        index: u32,
    ) -> Result<Option<Prepared>, (String, bool)> {
        if !self.captures(spec) {
            return Ok(None);
        }
        let sinks = self.sinks.get_or_insert_with(|| Sinks::new(logs::SINK_CAP));
        let file = |p: &std::path::PathBuf| Dest::File(spec.log_path_for(p, id));
        let out_dest = spec.out_file.as_ref().map_or(Dest::Stdout, file);
        let err_dest = spec.error_file.as_ref().map_or(Dest::Stderr, file);
        let creds = spec.credentials.as_ref();
        let out_sink = sinks
            .get_or_open_as(out_dest, creds)
            .map_err(|e| (format!("cannot open out_file: {e}"), short_of_fds(&e)))?;
        let err_sink = sinks
            .get_or_open_as(err_dest, creds)
            .map_err(|e| (format!("cannot open error_file: {e}"), short_of_fds(&e)))?;
        // Runner's stdout is ours alone unless an app inherits it or it is also stderr,
        // where runner's own log lines go.
        let stdout_id = sinks.get_or_open(Dest::Stdout).ok();
        let stderr_id = sinks.get_or_open(Dest::Stderr).ok();
        if let Some(id) = stdout_id {
            let alone = !self.stdout_shared && stdout_id != stderr_id;
            sinks.sink(id).set_exclusive(alone);
        }
        let pipe_err = |e: std::io::Error| (format!("cannot create a pipe: {e}"), short_of_fds(&e));
        let (out_r, out_w) = logs::pipe().map_err(pipe_err)?;
        let (err_r, err_w) = logs::pipe().map_err(pipe_err)?;
        let decor = || {
            Decor::for_instance(&spec.name, index, spec.log_prefix, spec.time)
                .with_date_format(spec.log_date_format.as_deref())
        };
        self.recent.describe(
            id,
            Meta {
                name: spec.name.clone(),
                namespace: spec.namespace.clone(),
                instance: index,
                decor: decor().without_prefix(),
            },
        );
        Ok(Some(Prepared {
            stdout: out_w,
            stderr: err_w,
            streams: vec![
                (Which::Out, Stream::new(out_r, decor(), out_sink)),
                (Which::Err, Stream::new(err_r, decor(), err_sink)),
            ],
            id,
        }))
    }

    /// Starts reading the pipes of a process that was spawned with `prepared`.
    pub fn attach(&mut self, registry: &Registry, pid: i32, prepared: Prepared) {
        let id = prepared.id;
        for (which, stream) in prepared.streams {
            let token = Band::Output.token(self.next as u64);
            self.next = self.next.wrapping_add(1);
            let fd: RawFd = stream.fd();
            if let Err(e) = registry.register(&mut SourceFd(&fd), token, Interest::READABLE) {
                log::warn!("cannot watch the output of pid {pid}: {e}");
                continue;
            }
            self.streams
                .insert(token, (Owner { pid, id, which }, stream));
            self.by_pid.entry(pid).or_default().push(token);
            // Output written before registration would not raise an event on its own.
            self.pump(registry, token);
        }
    }

    /// Reads what is there for one stream.
    pub fn pump(&mut self, registry: &Registry, token: Token) {
        let Some(sinks) = self.sinks.as_mut() else {
            return;
        };
        let Some((owner, stream)) = self.streams.get_mut(&token) else {
            return;
        };
        let now = SystemTime::now();
        let recent = &mut self.recent;
        let (id, which) = (owner.id, owner.which);
        let mut tap = |line: &[u8]| recent.line(id, which, line, now);
        match stream.pump_with(sinks, now, &mut tap) {
            Pump::Empty => {
                self.full.remove(&token);
            }
            Pump::Full => {
                self.full.insert(token);
            }
            Pump::Eof => {
                self.full.remove(&token);
                if let Some((owner, stream)) = self.streams.remove(&token) {
                    if let Some(tokens) = self.by_pid.get_mut(&owner.pid) {
                        tokens.retain(|t| *t != token);
                        if tokens.is_empty() {
                            self.by_pid.remove(&owner.pid);
                        }
                    }
                    let fd = stream.fd();
                    let _ = registry.deregister(&mut SourceFd(&fd));
                }
            }
        }
    }

    /// Drains what a process that just exited left in its pipes, so its last lines come
    /// before the news of its exit.
    pub fn drain_pid(&mut self, registry: &Registry, pid: i32) {
        let tokens: Vec<Token> = self.by_pid.get(&pid).cloned().unwrap_or_default();
        for t in tokens {
            self.pump(registry, t);
        }
        self.flush(registry);
    }

    /// Once per wake-up: write what is queued, then read streams that waited for room.
    pub fn flush(&mut self, registry: &Registry) {
        let Some(sinks) = self.sinks.as_mut() else {
            return;
        };
        sinks.flush_all();
        let waiting: Vec<Token> = self
            .full
            .iter()
            .copied()
            .filter(|t| {
                self.streams
                    .get(t)
                    .is_some_and(|(_, s)| sinks.get(s.sink()).has_room())
            })
            .collect();
        for t in waiting {
            self.pump(registry, t);
        }
        if let Some(sinks) = self.sinks.as_mut() {
            sinks.flush_all();
        }
    }

    /// When the loop must retry writing to a slow reader.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let pending = self.sinks.as_ref().is_some_and(|s| s.pending() > 0);
        (pending || !self.full.is_empty()).then_some(now + RETRY)
    }

    /// Before runner exits: read every pipe to its end and write everything out, for at
    /// most `budget`. A pipe that stays open belongs to a process that outlived its
    /// instance; it is not waited for.
    pub fn finish(&mut self, registry: &Registry, budget: Duration) {
        let deadline = Instant::now() + budget;
        while !self.streams.is_empty() && Instant::now() < deadline {
            let before = self.streams.len();
            let tokens: Vec<Token> = self.streams.keys().copied().collect();
            for t in tokens {
                self.pump(registry, t);
            }
            self.flush(registry);
            if self.full.is_empty() && self.streams.len() == before {
                break;
            }
        }
        if let Some(sinks) = self.sinks.as_mut() {
            sinks.flush_all_blocking(deadline);
        }
    }
}

/// Out of file descriptors (EMFILE, ENFILE): a shortage that passes, retried with backoff
/// like a fork that fails with EAGAIN, never counted as a crash.
fn short_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

impl Prepared {
    pub fn fds(&self) -> (RawFd, RawFd) {
        (self.stdout.as_raw_fd(), self.stderr.as_raw_fd())
    }
}
