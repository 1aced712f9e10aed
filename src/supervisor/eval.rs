//! `runner apply` while the loop keeps serving (SPEC §8: nothing blocks the loop).
//!
//! A PM2 `.js`/`.cjs`/`.mjs` file is evaluated by `node` in a child leading a process
//! group of its own. The loop reads its two pipes (band [`Band::Eval`]), its exit comes
//! through the supervisor's one reaper (never a wait of its own), and its limits
//! ([`NODE_TIME_LIMIT`], [`NODE_MAX_OUTPUT`], the same as at start-up) are a deadline in
//! the loop's timeout and a count of bytes read. Past either, the whole group is killed
//! and the waiting clients get an error naming the file and the limit.
//!
//! Requests are served in rounds: those waiting when a round starts share it (one node
//! run, one apply, the same reply to each); those that arrive during it wait for the
//! next round, which starts when this one has ended. Every client so gets the outcome of
//! a read of the file that began after it asked, and pipelining requests can't make node
//! run more than once per round. Files read without node (TOML and the other formats)
//! take the same rounds and load at once.

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStderr, ChildStdout, Command, ExitStatus};
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::tokens::Band;
use super::Supervisor;
use crate::config::bounded::{self, Error, Output};
use crate::config::import::pm2::{NODE_MAX_OUTPUT, NODE_TIME_LIMIT};
use crate::config::{ConfigError, Ecosystem};
use crate::control::protocol::Reply;
use crate::control::server::ConnId;
use crate::core::ExitKind;

/// The rounds of `apply`: who waits, and the evaluation under way.
#[derive(Default)]
pub struct Applies {
    /// Clients waiting for the next round.
    queued: Vec<ConnId>,
    running: Option<Running>,
    /// Numbers the rounds, so that an event for an earlier round's pipe is told apart.
    rounds: u64,
    /// Evaluations killed at a limit whose exit the reaper has not seen yet.
    killed: HashSet<i32>,
}

/// One node evaluation in flight.
struct Running {
    pid: i32,
    round: u64,
    out: Option<ChildStdout>,
    err: Option<ChildStderr>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Set once the reaper saw node exit; the output may still be in the pipes.
    status: Option<ExitStatus>,
    deadline: Instant,
    waiters: Vec<ConnId>,
}

/// A round's evaluation ended: who waits for it and how it went.
pub struct Finished {
    pub waiters: Vec<ConnId>,
    pub run: Result<Output, Error>,
}

const STDOUT: u64 = 0;
const STDERR: u64 = 1;

impl Applies {
    /// `conn` asked for an apply: it waits for the next round.
    pub fn queue(&mut self, conn: ConnId) {
        self.queued.push(conn);
    }

    /// The clients of the round to start now: None while one runs or nobody waits.
    pub fn take_round(&mut self) -> Option<Vec<ConnId>> {
        if self.running.is_some() || self.queued.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.queued))
    }

    /// Starts node for `waiters`' round; when it can't start, the waiters come back with
    /// the reason.
    pub fn start(
        &mut self,
        registry: &Registry,
        cmd: Command,
        waiters: Vec<ConnId>,
        now: Instant,
    ) -> Result<(), (Vec<ConnId>, Error)> {
        let started = match bounded::start(cmd) {
            Ok(s) => s,
            Err(e) => return Err((waiters, e)),
        };
        self.rounds += 1;
        let round = self.rounds;
        let pid = started.child.id() as i32;
        // The std handle is dropped unwaited: the supervisor's reaper collects the exit.
        drop(started.child);
        let mut running = Running {
            pid,
            round,
            out: Some(started.stdout),
            err: Some(started.stderr),
            stdout: Vec::new(),
            stderr: Vec::new(),
            status: None,
            deadline: now + NODE_TIME_LIMIT,
            waiters,
        };
        for (fd, which) in [
            (running.out.as_ref().map(|p| p.as_raw_fd()), STDOUT),
            (running.err.as_ref().map(|p| p.as_raw_fd()), STDERR),
        ] {
            let Some(fd) = fd else { continue };
            if let Err(e) =
                registry.register(&mut SourceFd(&fd), token(round, which), Interest::READABLE)
            {
                bounded::kill_group(pid);
                self.killed.insert(pid);
                running.close(registry);
                return Err((running.waiters, Error::Io(e)));
            }
        }
        log::debug!("apply: evaluating with node, pid {pid}");
        self.running = Some(running);
        Ok(())
    }

    pub fn owns(&self, token: Token) -> bool {
        matches!(Band::of(token), Some((Band::Eval, _)))
    }

    /// One of the pipes is readable: read it, within the output limit.
    pub fn readable(&mut self, registry: &Registry, token: Token) -> Option<Finished> {
        let Some((Band::Eval, n)) = Band::of(token) else {
            return None;
        };
        let r = self.running.as_mut()?;
        if token != self::token(r.round, n & 1) {
            return None; // an earlier round's pipe, already closed
        }
        let left = |other: &Vec<u8>| NODE_MAX_OUTPUT.saturating_sub(other.len());
        let open = if n & 1 == STDOUT {
            let cap = left(&r.stderr);
            r.out
                .as_mut()
                .is_some_and(|p| bounded::read_some(p, &mut r.stdout, cap))
        } else {
            let cap = left(&r.stdout);
            r.err
                .as_mut()
                .is_some_and(|p| bounded::read_some(p, &mut r.stderr, cap))
        };
        if r.stdout.len() + r.stderr.len() > NODE_MAX_OUTPUT {
            return Some(self.kill_running(registry, Error::TooMuchOutput));
        }
        if !open {
            match n & 1 {
                STDOUT => close(registry, &mut r.out),
                _ => close(registry, &mut r.err),
            }
        }
        self.finish_if_done()
    }

    /// The reaper collected `pid`: Some when it was an evaluation (with the round's end
    /// when that was the last thing it waited for), None for any other child.
    pub fn exited(&mut self, pid: i32, exit: ExitKind) -> Option<Option<Finished>> {
        if self.killed.remove(&pid) {
            return Some(None);
        }
        let r = self.running.as_mut().filter(|r| r.pid == pid)?;
        r.status = Some(match exit {
            ExitKind::Code(c) => ExitStatus::from_raw((c & 0xff) << 8),
            ExitKind::Signal(s) => ExitStatus::from_raw(s & 0x7f),
        });
        Some(self.finish_if_done())
    }

    /// When the running evaluation must be over.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.running.as_ref().map(|r| r.deadline)
    }

    /// Past the time limit, the evaluation is killed and its round ends with the reason.
    pub fn expire(&mut self, registry: &Registry, now: Instant) -> Option<Finished> {
        if self.running.as_ref()?.deadline > now {
            return None;
        }
        Some(self.kill_running(registry, Error::TimedOut))
    }

    /// runner is exiting: the evaluation is killed (the last sweep reaps it); everyone
    /// waiting is returned.
    pub fn abort(&mut self, registry: &Registry) -> Vec<ConnId> {
        let mut waiters = Vec::new();
        if self.running.is_some() {
            let f = self.kill_running(registry, Error::TimedOut);
            waiters = f.waiters;
        }
        waiters.append(&mut self.queued);
        // The killed node is reaped by the loop during runner's last sweep of leftovers,
        // which never sleeps; `killed` still claims its exit there.
        waiters
    }

    fn kill_running(&mut self, registry: &Registry, why: Error) -> Finished {
        let Some(mut r) = self.running.take() else {
            return Finished {
                waiters: Vec::new(),
                run: Err(why),
            };
        };
        // Even after node itself was reaped, a process it started may hold the pipes
        // open; it is in node's group, whose id stays node's pid while it lives.
        bounded::kill_group(r.pid);
        if r.status.is_none() {
            self.killed.insert(r.pid);
        }
        r.close(registry);
        log::debug!("apply: node evaluation pid {} stopped: {why:?}", r.pid);
        Finished {
            waiters: std::mem::take(&mut r.waiters),
            run: Err(why),
        }
    }

    /// Both pipes at their end and the exit seen: the round's evaluation is over.
    fn finish_if_done(&mut self) -> Option<Finished> {
        let r = self.running.as_ref()?;
        if r.out.is_some() || r.err.is_some() {
            return None;
        }
        let status = r.status?;
        let r = self.running.take()?;
        Some(Finished {
            waiters: r.waiters,
            run: Ok(Output {
                status,
                stdout: r.stdout,
                stderr: r.stderr,
            }),
        })
    }
}

impl Running {
    fn close(&mut self, registry: &Registry) {
        close(registry, &mut self.out);
        close(registry, &mut self.err);
    }
}

fn close<P: AsRawFd>(registry: &Registry, pipe: &mut Option<P>) {
    if let Some(p) = pipe.take() {
        let _ = registry.deregister(&mut SourceFd(&p.as_raw_fd()));
    }
}

fn token(round: u64, which: u64) -> Token {
    Band::Eval.token(round << 1 | which)
}

impl Supervisor {
    /// `runner apply` from `conn`: answered by the next round.
    pub(super) fn request_apply(&mut self, conn: ConnId) {
        if self.source.is_none() {
            let reply = Reply::error("runner was not started from an ecosystem file");
            return self.reply_now(conn, reply);
        }
        self.applies.queue(conn);
    }

    /// Starts the next round when none is running and someone waits. Runs before the
    /// loop performs the core's actions, so that an apply done here acts at once.
    pub(super) fn next_apply_round(&mut self) {
        let Some(waiters) = self.applies.take_round() else {
            return;
        };
        let Some((path, opts)) = self.source.clone() else {
            return;
        };
        match crate::config::node_evaluation(&path) {
            None => {
                let loaded = crate::config::load(&path, &opts);
                self.apply_loaded(waiters, loaded);
            }
            Some(Err(e)) => self.apply_loaded(waiters, Err(e)),
            Some(Ok(cmd)) => {
                let started =
                    self.applies
                        .start(self.poll.registry(), cmd, waiters, Instant::now());
                if let Err((waiters, e)) = started {
                    let loaded = crate::config::load_evaluated(&path, &opts, Err(e));
                    self.apply_loaded(waiters, loaded);
                }
            }
        }
    }

    /// An event on one of the evaluation's pipes.
    pub(super) fn apply_readable(&mut self, token: Token) {
        if let Some(f) = self.applies.readable(self.poll.registry(), token) {
            self.apply_evaluated(f);
        }
    }

    /// The reaper collected `pid`; true when it was an evaluation's node.
    pub(super) fn apply_child_exited(&mut self, pid: i32, exit: ExitKind) -> bool {
        match self.applies.exited(pid, exit) {
            None => false,
            Some(None) => true,
            Some(Some(f)) => {
                self.apply_evaluated(f);
                true
            }
        }
    }

    /// The time limit of the evaluation, checked on every wake-up.
    pub(super) fn apply_deadline(&mut self, now: Instant) {
        if let Some(f) = self.applies.expire(self.poll.registry(), now) {
            self.apply_evaluated(f);
        }
    }

    /// runner is exiting: nothing more is applied, and those waiting are told so.
    pub(super) fn end_applies(&mut self) {
        let waiters = self.applies.abort(self.poll.registry());
        let reply = Reply::error("runner is exiting; nothing was applied");
        for conn in waiters {
            self.reply_now(conn, reply.clone());
        }
    }

    fn apply_evaluated(&mut self, f: Finished) {
        let Some((path, opts)) = self.source.clone() else {
            return;
        };
        let loaded = crate::config::load_evaluated(&path, &opts, f.run);
        self.apply_loaded(f.waiters, loaded);
    }

    /// The file was read: the core applies it and answers every waiter when done, or all
    /// of them get the error at once.
    fn apply_loaded(&mut self, waiters: Vec<ConnId>, loaded: Result<Ecosystem, ConfigError>) {
        let mut waiters = waiters.into_iter();
        let Some(first) = waiters.next() else {
            return;
        };
        let eco = match loaded {
            Ok(eco) if self.core.is_shutting_down() => {
                drop(eco);
                Err("runner is stopping; nothing was applied".to_string())
            }
            Ok(eco) => Ok(eco),
            Err(e) => Err(format!("{e}\nnothing was changed")),
        };
        let eco = match eco {
            Ok(eco) => eco,
            Err(message) => {
                let reply = Reply::error(message);
                for conn in waiters {
                    self.reply_now(conn, reply.clone());
                }
                return self.reply_now(first, reply);
            }
        };
        for w in &eco.warnings {
            log::warn!("{w}");
        }
        let id = self.next_request;
        self.next_request += 1;
        self.pending.insert(id, first);
        let followers: Vec<ConnId> = waiters.collect();
        if !followers.is_empty() {
            self.followers.insert(id, followers);
        }
        self.core.apply(id, eco.apps, Instant::now());
        // The set of apps changed, and with it what is watched.
        self.watches.sync(self.poll.registry(), &self.core);
    }
}
