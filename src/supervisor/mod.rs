//! The I/O shell around [`crate::core::Core`]: one mio loop that turns signals, child
//! exits and deadlines into core events, and performs the actions the core queues.

mod cron_clock;
mod env;
mod eval;
mod exposition;
mod health;
mod metrics;
mod node;
mod output;
mod reaper;
mod recent;
pub mod scrape;
mod signals;
pub mod spawn;
mod sweep;
pub mod tokens;
mod tree;
mod watch;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use nix::errno::Errno;
use nix::sys::signal::Signal;

use crate::cluster::Listeners;
use crate::config::{ExecMode, LoadOptions};
use crate::control::protocol::{Reply, Request};
use crate::control::server::{ConnId, Server};
use crate::core::{Action, Core, ExitKind, RequestId, Role, SpawnFailure};
use crate::readiness::attribution as ready;
use crate::readiness::{probes, systemd};
pub use ready::NotifyAt;
use spawn::{SpawnRequest, Stdin};
use tree::Trees;

use tokens::{Band, SIGNALS};

pub use crate::core::Mode;

/// What can stop runner before its loop even starts.
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the supervisor is started with besides the apps.
pub struct Options {
    pub mode: Mode,
    /// The control socket to serve (None: no socket, e.g. when it could not be bound).
    pub control: Option<Server>,
    /// Where `apply` re-reads the apps from.
    pub source: Option<(PathBuf, LoadOptions)>,
    /// Listening sockets of cluster apps, bound before anything starts.
    pub listeners: Listeners,
    /// Where to bind the sd_notify socket for the instances.
    pub notify: NotifyAt,
    /// The `[runner] metrics` endpoint, already bound.
    pub metrics: Option<scrape::MetricsServer>,
}

/// Everything the loop owns.
pub struct Supervisor {
    core: Core,
    mode: Mode,
    poll: Poll,
    signals: signals::SignalSource,
    trees: Trees,
    /// Roots whose main process exited while part of their tree lived on.
    watched: HashSet<i32>,
    base_env: Vec<(OsString, OsString)>,
    foreground_tty: bool,
    control: Option<Server>,
    /// Single-program mode may wait in `sigtimedwait` (`waits_for_signals_only`).
    signal_driven: bool,
    /// `Core::forward_targets` while the core cannot change (`pass_on`).
    forward_to: Option<Vec<i32>>,
    source: Option<(PathBuf, LoadOptions)>,
    /// Control requests waiting for the core's answer.
    pending: HashMap<RequestId, ConnId>,
    /// Requests answered together with the one in `pending` (rounds of `apply`).
    followers: HashMap<RequestId, Vec<ConnId>>,
    next_request: RequestId,
    metrics: metrics::Metrics,
    /// `Core::slots_removed` when the log rings were last pruned.
    rings_pruned_at: u64,
    listeners: Listeners,
    probes: probes::Probes,
    health: health::HealthChecks,
    scrape: Option<scrape::MetricsServer>,
    ready: ready::Readiness,
    node: node::NodeChannels,
    /// Node's `cluster.worker.id` for the next worker: unique for runner's lifetime, as
    /// a Node primary numbers the workers it forks.
    next_worker_id: u64,
    systemd: systemd::Systemd,
    output: output::Output,
    cron: cron_clock::CronClock,
    watches: watch::Watches,
    /// Instances forked whose exec result has not arrived yet (ecosystem mode): the loop
    /// starts the next instance without waiting for each program to exec.
    execs: HashMap<i32, PendingExec>,
    applies: eval::Applies,
    /// Leftovers being stopped after the core said to exit.
    sweep: Option<sweep::Sweep>,
    /// The moment of this wake-up: the clock is read once when `poll` returns and every
    /// handler of the turn uses it, so the events of one batch share one time. Read
    /// afresh only after work that can take long (see `run`, `spawn`, `exec_done`).
    now: Instant,
    reaper: reaper::Reaper,
}

/// A spawn whose answer to the core waits for the child's exec.
struct PendingExec {
    started: spawn::Started,
    slot: crate::core::SlotId,
    role: Role,
    name: String,
    index: u32,
}

/// Instances forked whose exec result is still awaited, at most: enough for the CPUs to
/// start programs in parallel, few enough to stay far below any fd limit.
const MAX_EXECS_IN_FLIGHT: usize = 64;

/// How often trees that outlived their main process are re-checked. SIGCHLD usually tells
/// first (the last member to die is re-parented to runner), this is the backstop.
const TREE_RECHECK: Duration = Duration::from_millis(250);

impl Supervisor {
    /// Installs signal handling first (before any child exists, so no signal is lost),
    /// then becomes a subreaper when not PID 1.
    pub fn new(mut core: Core, opts: Options) -> Result<Supervisor, SetupError> {
        let mode = opts.mode;
        core.set_mode(mode);
        let poll =
            Poll::new().map_err(|e| SetupError(format!("cannot create the event loop: {e}")))?;
        let mut signals = signals::install(mode == Mode::Single)
            .map_err(|e| SetupError(format!("cannot install signal handlers: {e}")))?;
        poll.registry()
            .register(&mut signals, SIGNALS, mio::Interest::READABLE)
            .map_err(|e| SetupError(format!("cannot watch signals: {e}")))?;
        if std::process::id() != 1 {
            // Orphans of our apps are re-parented to us, so we reap them and see their trees.
            if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
                log::warn!(
                    "cannot become a child subreaper ({e}); orphans of apps will go to init"
                );
            }
        }
        spawn::cloexec_inherited_fds();
        // Low fd numbers for the children's fds, taken before the apps' pipes take them.
        spawn::reserve_fds();
        let foreground_tty = mode == Mode::Single && owns_terminal_foreground();
        let mut control = opts.control;
        if let Some(server) = control.as_mut() {
            if let Err(e) = server.register(poll.registry(), Band::Control.token(0)) {
                log::error!("cannot serve the control socket: {e}");
                control = None;
            }
        }
        // Without SIGIO for new clients, waiting in sigtimedwait would leave them unserved.
        let signal_driven = mode == Mode::Single
            && control
                .as_ref()
                .is_none_or(|c| match c.signal_on_connect() {
                    Ok(()) => true,
                    Err(e) => {
                        log::debug!("control socket without SIGIO ({e}): waiting in epoll");
                        false
                    }
                });
        let ready = ready::Readiness::new(poll.registry(), &opts.notify, tokens::NOTIFY);
        let now = Instant::now();
        let mut scrape = opts.metrics;
        if let Some(server) = scrape.as_mut() {
            server
                .register(poll.registry())
                .map_err(|e| SetupError(format!("cannot serve metrics: {e}")))?;
            log::info!("serving metrics on http://{}/metrics", server.addr());
        }
        Ok(Supervisor {
            core,
            mode,
            poll,
            signals,
            trees: Trees::default(),
            watched: HashSet::new(),
            base_env: env::inherited(),
            foreground_tty,
            control,
            signal_driven,
            forward_to: None,
            source: opts.source,
            pending: HashMap::new(),
            followers: HashMap::new(),
            next_request: 1,
            metrics: metrics::Metrics::default(),
            rings_pruned_at: 0,
            listeners: opts.listeners,
            probes: probes::Probes::new(
                |n| Band::Probes.token(n),
                |t| matches!(Band::of(t), Some((Band::Probes, _))),
            ),
            health: health::HealthChecks::default(),
            scrape,
            ready,
            node: node::NodeChannels::default(),
            next_worker_id: 1,
            systemd: systemd::Systemd::from_env(now),
            output: output::Output::new(mode != Mode::Single),
            cron: cron_clock::CronClock::default(),
            watches: watch::Watches::default(),
            execs: HashMap::new(),
            applies: eval::Applies::default(),
            sweep: None,
            now,
            reaper: reaper::Reaper::new(),
        })
    }

    /// Runs until every app has ended; returns runner's exit code.
    pub fn run(mut self) -> i32 {
        let mut events = Events::with_capacity(64);
        self.now = Instant::now();
        self.core.start(self.now);
        self.watches.sync(self.poll.registry(), &self.core);
        // Set when a wake-up brought only signals that are passed on: the rest of the
        // turn has nothing new to see, so the loop waits again for the same deadline. A
        // forwarded signal then costs a signalfd read and a kill, as under tini; the
        // turn's other work used to compete with the program for the CPU.
        let mut forwarded_only = false;
        let mut deadline = None;
        loop {
            if !forwarded_only {
                self.forward_to = None;
                if let Some(code) = self.prepare_wait() {
                    return code;
                }
                deadline = self.deadline();
            }
            // After a forwarded-only wake-up the turn's clock is stale; read it afresh, and
            // only when there is a deadline to count down to.
            let timeout = deadline.map(|d: Instant| {
                d.saturating_duration_since(if forwarded_only {
                    Instant::now()
                } else {
                    self.now
                })
            });
            let mut wait = timeout;
            // A signal taken by sigtimedwait that did more than pass on: this turn is a
            // full one whatever the zero-timeout poll after it finds (a SIGCHLD owes a reap).
            let mut acted = false;
            if self.waits_for_signals_only() {
                if let Some(signal) = self.signals.wait(timeout) {
                    if self.pass_on(signal) {
                        forwarded_only = true;
                        continue;
                    }
                    self.now = Instant::now();
                    self.act_on_signal(signal);
                    acted = true;
                }
                // Whatever else is ready (the client behind a SIGIO), without waiting.
                wait = Some(Duration::ZERO);
            }
            if let Err(e) = self.poll.poll(&mut events, wait) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::error!("event loop: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            self.now = Instant::now();
            // Exec results first: a program that has exec'd may already have spoken on
            // its Node channel or notify socket in the same batch, and the core must
            // know the instance before it hears from it.
            for event in events.iter() {
                if let Some((Band::Exec, pid)) = Band::of(event.token()) {
                    self.exec_done(pid as i32);
                }
            }
            let only_signals = !events.is_empty() && events.iter().all(|e| e.token() == SIGNALS);
            let mut passed_on = true;
            for event in events.iter() {
                let token = event.token();
                if let Some((Band::Exec, _)) = Band::of(token) {
                } else if token == SIGNALS {
                    // Signals only passed on are forwarded as they are read (`pass_on`).
                    passed_on &= self.handle_signals();
                } else if self.control.as_ref().is_some_and(|c| c.owns(token)) {
                    self.handle_control(token);
                    // `apply` and `delete` change which apps are watched.
                    self.watches.sync(self.poll.registry(), &self.core);
                } else if self.applies.owns(token) {
                    self.apply_readable(token);
                } else if self.watches.owns(token) {
                    self.watches.handle(token, &mut self.core, self.now);
                } else if self.output.owns(token) {
                    self.output.pump(self.poll.registry(), token);
                } else if self.ready.owns(token) {
                    let (core, execs) = (&self.core, &self.execs);
                    let is_instance =
                        |pid: i32| core.owner(pid).is_some() || execs.contains_key(&pid);
                    let said = self.ready.handle(core, &is_instance);
                    self.apply_said(said);
                } else if self.scrape.as_ref().is_some_and(|s| s.owns(token)) {
                    self.handle_scrape(token);
                } else if self.health.owns(token) {
                    if let Some((pid, outcome)) = self.health.ready(self.poll.registry(), token) {
                        self.core.health_result(pid, outcome, self.now);
                    }
                } else if self.node.owns(token) {
                    self.handle_node(Some(token));
                } else if self.probes.owns(token) {
                    if let Some(pid) = self.probes.ready(self.poll.registry(), token, self.now) {
                        self.core.ready(pid, self.now);
                    }
                }
            }
            forwarded_only = only_signals && passed_on && !acted;
            if forwarded_only {
                continue;
            }
            if self.ready.pending() {
                let (core, execs) = (&self.core, &self.execs);
                let is_instance = |pid: i32| core.owner(pid).is_some() || execs.contains_key(&pid);
                let said = self.ready.handle(core, &is_instance);
                self.apply_said(said);
            }
            if self.node.more {
                self.handle_node(None);
            }
            // Only after a SIGCHLD, and see reaper.rs: reaping with waitpid(-1) on each
            // wake-up made every event cost O(instances).
            self.reap(false);
            self.apply_deadline(self.now);
            if let Some(sweep) = self.sweep.as_mut() {
                if sweep.step(self.now) {
                    let code = sweep.code;
                    return self.finish(code);
                }
            }
            self.recheck_trees();
            if let Some(server) = self.control.as_mut() {
                server.retry_accept(self.poll.registry());
                server.expire_idle(self.poll.registry(), self.now);
            }
            self.output.flush(self.poll.registry());
            if let Some(server) = self.scrape.as_mut() {
                let now = self.now;
                if server.next_deadline().is_some_and(|d| d <= now) {
                    server.expire(self.poll.registry(), now);
                }
                if server.more {
                    server.accept(self.poll.registry(), now);
                }
            }
            self.deliver_logs();
            self.check_memory();
            // Most wake-ups (output, control requests) have nothing due: keep them cheap.
            let now = self.now;
            if self.core.next_deadline().is_some_and(|d| d <= now) {
                self.core.tick(now);
            }
            self.node.disconnect_due(now);
        }
    }

    /// The turn's work before the wait: actions, then everything that arms a timer or a
    /// probe, so that the deadline computed next sees them (a probe or deadline that only
    /// a later wake-up would set up is a stall: a ready_check that waited for a client to
    /// connect). An apply round starts first, so that what it applies at once acts now.
    /// Some(exit code) when runner is done.
    fn prepare_wait(&mut self) -> Option<i32> {
        self.next_apply_round();
        let exit = self.perform_actions();
        // Performing actions may have spawned many children, which takes time: the
        // sweep, probes, systemd and the poll timeout count from after it.
        self.now = Instant::now();
        if let Some(code) = exit {
            if self.sweep.is_none() {
                // A node evaluating an apply is killed; the sweep reaps it.
                self.end_applies();
                self.reap(true);
                self.sweep = sweep::Sweep::begin(code, self.now);
                if self.sweep.is_none() {
                    return Some(self.finish(code));
                }
            }
        }
        self.run_probes();
        self.tell_systemd();
        self.cron.arm(&mut self.core);
        None
    }

    /// The last words: what the apps wrote is flushed and delivered before runner exits.
    fn finish(&mut self, code: i32) -> i32 {
        self.output
            .finish(self.poll.registry(), Duration::from_secs(2));
        self.deliver_logs();
        code
    }

    /// Tells systemd (when runner runs under it) what changed.
    fn tell_systemd(&mut self) {
        if self.systemd.active() {
            let (online, summary) = self.core.all_online();
            let reloading = self.core.is_reloading();
            let stopping = self.core.is_shutting_down();
            self.systemd
                .update(online, &summary, reloading, stopping, self.now);
        }
    }

    fn handle_node(&mut self, token: Option<Token>) {
        let said = self
            .node
            .handle(self.poll.registry(), token, &self.core, &mut self.listeners);
        self.apply_said(said);
    }

    /// Hands new lines to `runner logs --follow` clients.
    fn deliver_logs(&mut self) {
        if !self.output.recent.has_followers() {
            return;
        }
        if let Some(server) = self.control.as_mut() {
            self.output.recent.deliver(self.poll.registry(), server);
        }
    }

    /// `runner logs`: the backlog now, then new lines as they come with `follow`.
    fn request_logs(
        &mut self,
        conn: ConnId,
        target: &str,
        lines: usize,
        follow: bool,
        stream: Option<&str>,
    ) {
        use crate::logs::ring::Which;
        use recent::{Streams, Target};
        let streams = match stream {
            None => Streams::Both,
            Some("out") => Streams::Only(Which::Out),
            Some("err") => Streams::Only(Which::Err),
            Some(other) => {
                let e = format!("unknown stream `{other}` (\"out\" or \"err\")");
                return self.reply_now(conn, Reply::error(e));
            }
        };
        if self.mode == Mode::Single {
            let e = "runner -- PROGRAM passes the program's output straight through (as tini \
                     does) and keeps none of it for `runner logs`";
            return self.reply_now(conn, Reply::error(e));
        }
        let ids = match self.core.resolve(target) {
            Ok(ids) => ids,
            Err(e) => return self.reply_now(conn, Reply::error(e)),
        };
        let rule = if target == "all" {
            Target::All
        } else if self.core.apps().iter().any(|a| a.spec.name == target) {
            Target::App(target.to_string())
        } else if let Ok(id) = target.parse::<u32>() {
            Target::Id(id)
        } else {
            Target::Namespace(target.to_string())
        };
        let mut bytes = self.output.recent.backlog(&ids, lines, streams);
        let Some(server) = self.control.as_mut() else {
            return;
        };
        if follow {
            server.set_streaming(conn);
            server.send_lines(self.poll.registry(), conn, &bytes, false);
            self.output.recent.follow(conn, rule, streams);
        } else {
            let mut done = serde_json::to_vec(&Reply {
                ok: true,
                ..Reply::default()
            })
            .unwrap_or_else(|_| b"{\"ok\":true}".to_vec());
            done.push(b'\n');
            bytes.extend_from_slice(&done);
            server.send_lines(self.poll.registry(), conn, &bytes, true);
        }
    }

    fn apply_said(&mut self, said: Vec<ready::Said>) {
        for s in &said {
            let (ready::Said::Ready(pid)
            | ready::Said::Status(pid, _)
            | ready::Said::Watchdog(pid)) = s;
            // The program spoke, so it has exec'd: the core learns of it first.
            if self.execs.contains_key(pid) {
                self.exec_done(*pid);
            }
        }
        let now = self.now;
        for s in said {
            match s {
                ready::Said::Ready(pid) => self.core.ready(pid, now),
                ready::Said::Status(pid, text) => self.core.set_status_text(pid, text),
                ready::Said::Watchdog(pid) => self.core.watchdog_ping(pid, now),
            }
        }
    }

    /// One probe per launching instance whose app has a `ready_check`.
    fn run_probes(&mut self) {
        let any_check = self
            .core
            .apps()
            .iter()
            .any(|a| a.spec.ready_check.is_some());
        if !any_check && self.probes.next_deadline().is_none() {
            return;
        }
        let now = self.now;
        let mut launching = Vec::new();
        for slot in self.core.slots() {
            let Some((check, addr)) = self
                .core
                .spec_of(slot.id)
                .and_then(|s| s.ready_check.clone().map(|c| (c, s.ready_addr)))
            else {
                continue;
            };
            for p in [&slot.proc, &slot.replacement].into_iter().flatten() {
                if p.is_launching() {
                    launching.push((p.pid, check.clone(), addr));
                }
            }
        }
        if launching.is_empty() && self.probes.next_deadline().is_none() {
            return;
        }
        self.probes.sync(self.poll.registry(), &launching, now);
        for req in self.probes.tick(self.poll.registry(), now) {
            let started = self.spawn_probe_command(req.instance_pid, &req.command);
            self.probes.exec_started(req.instance_pid, started, now);
        }
    }

    /// Runs an `exec:` probe with the instance's cwd and environment, through the same
    /// spawner (and so the same reaper) as the instances.
    fn spawn_probe_command(&mut self, instance_pid: i32, command: &str) -> Option<i32> {
        match self.spawn_check_command(instance_pid, command) {
            Ok(pid) => Some(pid),
            Err(e) => {
                log::warn!("cannot run ready_check command: {e}");
                None
            }
        }
    }

    /// Runs a check's `exec:` command as the instance would run (cwd, environment, user)
    /// in a process group of its own, through the one spawner and reaper.
    fn spawn_check_command(&mut self, instance_pid: i32, command: &str) -> Result<i32, String> {
        let Some((slot, spec)) = self.core.owner(instance_pid) else {
            return Err(format!("pid {instance_pid} is no instance"));
        };
        let argv = ["sh", "-c", command].map(OsString::from);
        let req = SpawnRequest {
            program: std::path::Path::new("/bin/sh"),
            argv: &argv,
            env: env::for_instance(&self.base_env, spec, slot),
            cwd: &spec.cwd,
            credentials: spec.credentials.as_ref(),
            stdin: Stdin::Null,
            stdout: None,
            stderr: None,
            extra_fds: Vec::new(),
            pid_vars: Vec::new(),
            foreground_tty: false,
        };
        let name = spec.name.clone();
        spawn::spawn(req).map_err(|e| format!("{name}: {e}"))
    }

    /// Performs `Action::HealthCheck`: starts the app's check against `pid`.
    fn start_health_check(&mut self, pid: i32) {
        let now = self.now;
        let Some(check) = self
            .core
            .owner(pid)
            .and_then(|(_, spec)| spec.health_check.clone())
        else {
            return;
        };
        let failed = match (&check.probe, check.addr) {
            (crate::config::ReadyCheck::Exec(cmd), _) => match self.spawn_check_command(pid, cmd) {
                Ok(cmd_pid) => {
                    self.health.running(pid, cmd_pid);
                    None
                }
                Err(e) => Some(Err(format!("cannot run the command: {e}"))),
            },
            (probe, Some(addr)) => self.health.connect(self.poll.registry(), pid, probe, addr),
            (_, None) => Some(Err("no address to connect to".to_string())),
        };
        if let Some(outcome) = failed {
            self.core.health_result(pid, outcome, now);
        }
    }

    /// Drops the check of `instance`; an `exec:` command is killed with its whole tree.
    fn abort_health_check(&mut self, instance: i32) {
        if let Some(cmd) = self.health.abort(self.poll.registry(), instance) {
            // Unreaped, so its group is still ours to signal.
            self.trees.signal(cmd, Signal::SIGKILL, true);
        }
    }

    /// A metrics connection (or the listener) is ready; scrapes are answered at once,
    /// from one /proc pass each.
    fn handle_scrape(&mut self, token: Token) {
        let now = self.now;
        let Some(server) = self.scrape.as_mut() else {
            return;
        };
        let wanting = server.handle(self.poll.registry(), token, now);
        if wanting.is_empty() {
            return;
        }
        let usage = self.metrics.measure(&self.core, &mut self.trees);
        let own = crate::procfs::read(std::process::id() as i32);
        let own_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        let sample = exposition::Sample {
            usage: &usage,
            own_rss: own.map_or(0, |p| p.rss_bytes),
            own_fds,
        };
        let body = exposition::render(&self.core, &sample, now);
        if let Some(server) = self.scrape.as_mut() {
            for n in wanting {
                server.answer_metrics(self.poll.registry(), n, &body);
            }
        }
    }

    fn handle_control(&mut self, token: Token) {
        let Some(server) = self.control.as_mut() else {
            return;
        };
        let requests = server.handle(self.poll.registry(), token);
        for (conn, request) in requests {
            self.handle_request(conn, request);
        }
    }

    fn reply_now(&mut self, conn: ConnId, reply: Reply) {
        if let Some(server) = self.control.as_mut() {
            server.reply(self.poll.registry(), conn, &reply);
        }
    }

    fn handle_request(&mut self, conn: ConnId, request: Request) {
        let reads = matches!(
            request,
            Request::List | Request::Status | Request::Logs { .. }
        );
        if self.sweep.is_some() && !reads {
            let reply = Reply::error("every app has ended and runner is exiting");
            self.reply_now(conn, reply);
            return;
        }
        let now = self.now;
        let id = self.next_request;
        self.next_request += 1;
        match request {
            Request::List => {
                let rows = self.metrics.list(&self.core, &mut self.trees);
                self.reply_now(conn, Reply::instances(rows));
                return;
            }
            Request::Logs {
                target,
                lines,
                follow,
                stream,
            } => {
                self.request_logs(conn, &target, lines, follow, stream.as_deref());
                return;
            }
            Request::Status => {
                let (ok, message) = self.core.all_online();
                let reply = Reply {
                    ok,
                    message: Some(message),
                    ..Reply::default()
                };
                self.reply_now(conn, reply);
                return;
            }
            Request::Apply => {
                // Served in rounds, one load of the file each (eval.rs).
                self.request_apply(conn);
                return;
            }
            _ => {}
        }
        self.pending.insert(id, conn);
        match request {
            Request::Start { target } => self.core.request_start(id, &target, now),
            Request::Stop { target } => self.core.request_stop(id, &target, now),
            Request::Restart { target } => self.core.request_restart(id, &target, now),
            Request::Reload { target } => self.core.request_reload(id, &target, now),
            Request::Delete { target } => self.core.request_delete(id, &target, now),
            Request::Scale { name, instances } => {
                self.core.request_scale(id, &name, instances, now)
            }
            Request::Signal { signal, target } => match crate::config::parse_signal(&signal) {
                Some(sig) => self.core.request_signal(id, sig, &target),
                None => {
                    self.pending.remove(&id);
                    self.reply_now(conn, Reply::error(format!("unknown signal `{signal}`")));
                }
            },
            Request::List | Request::Status | Request::Apply | Request::Logs { .. } => {}
        }
    }

    /// Checks `max_memory_restart` limits once a second, only while some app has one.
    fn check_memory(&mut self) {
        let now = self.now;
        let due = self.core.memory_to_measure(now);
        if due.is_empty() {
            return;
        }
        for (slot, rss) in self.metrics.tree_rss(&due, &mut self.trees) {
            self.core.memory_measured(slot, rss, now);
        }
    }

    /// Until the nearest deadline; None (sleep until an event) when nothing is timed.
    fn deadline(&self) -> Option<Instant> {
        let now = self.now;
        let trees = (!self.watched.is_empty()).then(|| now + TREE_RECHECK);
        let stalled = self.control.as_ref().is_some_and(|c| c.accept_stalled());
        let accept = stalled.then(|| now + TREE_RECHECK);
        // Node IPC channels that stopped reading early have more to give right away.
        let unread = self.node.more.then_some(now);
        [
            self.core.next_deadline(),
            trees,
            accept,
            self.probes.next_deadline(),
            self.scrape.as_ref().and_then(|s| s.next_deadline()),
            self.scrape.as_ref().filter(|s| s.more).map(|_| now),
            self.control.as_ref().and_then(|c| c.next_deadline()),
            // Queued readiness input left for the next turn: come back at once.
            self.ready.pending().then_some(now),
            self.node.next_deadline(),
            self.applies.next_deadline(),
            self.systemd.next_deadline(),
            self.output.next_deadline(now),
            unread,
            self.sweep.as_ref().map(|s| s.deadline()),
            self.reaper.next_deadline(now),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Reads the signalfd; true when every signal read is one the core only passes on.
    fn handle_signals(&mut self) -> bool {
        self.signals.woke();
        let mut passed_on = true;
        while let Some(signal) = self.signals.next_signal() {
            if !self.pass_on(signal) {
                self.act_on_signal(signal);
                passed_on = false;
            }
        }
        passed_on
    }

    /// A signal, from the signalfd or `sigtimedwait`, that does more than pass on.
    fn act_on_signal(&mut self, signal: signals::Received) {
        let signals::Received {
            signo,
            from,
            own_io,
        } = signal;
        if own_io {
            return; // a client connected: the turn serves it
        }
        if signo == libc::SIGCHLD {
            self.reaper.signalled(from);
        }
        if let Some(sweep) = self.sweep.as_mut() {
            // The apps have ended: a stop signal now means "do not wait for leftovers".
            if [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT].contains(&signo) {
                sweep.kill_now(self.now);
            }
            return;
        }
        self.core.signal_received(signo, self.now);
    }

    /// Forwards a signal that the core only passes on, to the targets it named at the
    /// start of this stretch of waiting: the core has not changed since (it changes only
    /// in a full turn, which clears them), so this is what `signal_received` would queue.
    /// Why not ask the core each time: its state is cold after a wait, and reaching it
    /// cost ~7 µs of every forwarded signal (BENCHMARKS.md, "PID-1 floor").
    fn pass_on(&mut self, signal: signals::Received) -> bool {
        if signal.own_io || self.sweep.is_some() || !self.core.only_forwards(signal.signo) {
            return false;
        }
        let core = &self.core;
        let targets = self
            .forward_to
            .get_or_insert_with(|| core.forward_targets().collect());
        for &pid in targets.iter() {
            forward(pid, signal.signo);
        }
        true
    }

    /// Whether the loop may wait in `sigtimedwait` (see `signals.rs`): single-program
    /// mode, and nothing but a signal can need it: no exec result awaited, no client
    /// connected (a new one raises SIGIO).
    fn waits_for_signals_only(&self) -> bool {
        self.signal_driven
            && self.execs.is_empty()
            && self
                .control
                .as_ref()
                .is_none_or(|c| c.connections() == 0 && !c.accept_stalled())
    }

    /// Reaps the children that have exited: instance main processes and adopted orphans
    /// (every one when `full`).
    fn reap(&mut self, full: bool) {
        self.reaper.set_instances(self.core.slot_count());
        for (pid, exit) in self.reaper.reap(self.now, full) {
            self.child_exited(pid, exit);
        }
    }

    fn child_exited(&mut self, pid: i32, exit: ExitKind) {
        if self.apply_child_exited(pid, exit) {
            return;
        }
        // The child is gone, so its exec result is there to read: a failed exec is a
        // failed start (126/127 and its message), not a crash of a running program.
        if self.execs.contains_key(&pid) {
            self.exec_done(pid);
        }
        if let Some(ended) = self.health.command_exited(pid, exit) {
            self.trees.main_reaped(pid);
            self.trees.forget(pid);
            if let Some((instance, outcome)) = ended {
                self.core.health_result(instance, outcome, self.now);
            }
            return;
        }
        if let Some(proved) = self
            .probes
            .command_exited(pid, exit == ExitKind::Code(0), self.now)
        {
            if let Some(instance) = proved {
                self.core.ready(instance, self.now);
            }
            return;
        }
        // A reaped worker's pid may be reused: never send it a late disconnect.
        self.node.killed(pid);
        let Some((_, spec)) = self.core.owner(pid) else {
            log::debug!("reaped orphan pid {pid} ({exit})");
            return;
        };
        let captured = self.output.captures(spec);
        let treekill = spec.treekill;
        if captured {
            self.output.drain_pid(self.poll.registry(), pid);
        }
        self.trees.main_reaped(pid);
        let gone = !treekill || self.trees.is_gone(pid);
        if gone {
            self.trees.forget(pid);
        } else {
            self.watched.insert(pid);
        }
        self.core.exited(pid, exit, gone, self.now);
    }

    fn recheck_trees(&mut self) {
        if self.watched.is_empty() {
            return;
        }
        let roots: Vec<i32> = self.watched.iter().copied().collect();
        let gone: Vec<i32> = roots
            .into_iter()
            .filter(|r| self.trees.is_gone(*r))
            .collect();
        for root in gone {
            self.watched.remove(&root);
            self.trees.forget(root);
            self.core.tree_gone(root, self.now);
        }
    }

    /// Performs queued actions; returns the exit code once the core says to exit.
    fn perform_actions(&mut self) -> Option<i32> {
        while let Some(action) = self.core.next_action() {
            match action {
                Action::Spawn { slot, role } => self.spawn(slot, role),
                Action::Stop { pid, signal, tree } => {
                    self.trees.signal(pid, signal, tree);
                    if let Some((_, spec)) = self.core.owner(pid) {
                        self.node.stopping(pid, spec.kill_timeout, self.now);
                    }
                }
                Action::Kill { pid, tree } => {
                    self.node.killed(pid);
                    self.trees.signal(pid, Signal::SIGKILL, tree);
                }
                Action::Forward { pid, signal } => forward(pid, signal),
                Action::Reply {
                    request,
                    ok,
                    message,
                } => {
                    if let Some(conn) = self.pending.remove(&request) {
                        let reply = if ok {
                            Reply::ok(message)
                        } else {
                            Reply::error(message)
                        };
                        for f in self.followers.remove(&request).unwrap_or_default() {
                            self.reply_now(f, reply.clone());
                        }
                        self.reply_now(conn, reply);
                    }
                }
                Action::HealthCheck { pid } => self.start_health_check(pid),
                Action::AbortHealthCheck { pid } => self.abort_health_check(pid),
                Action::Exit(code) => return Some(code),
            }
        }
        // Checks of instances that stopped or were replaced meanwhile are dropped.
        if !self.health.is_empty() {
            for instance in self.health.instances() {
                if !self.core.health_awaited(instance) {
                    self.abort_health_check(instance);
                }
            }
        }
        None
    }

    /// Something the instance needs (its sockets, its log files) could not be set up:
    /// a start that failed, for the restart policy to judge.
    fn setup_failed(
        &mut self,
        id: crate::core::SlotId,
        role: Role,
        (message, transient): (String, bool),
        now: Instant,
    ) {
        let failure = SpawnFailure {
            message,
            code: 126,
            transient,
        };
        self.core.spawned(id, role, Err(failure), now);
    }

    fn spawn(&mut self, id: crate::core::SlotId, role: Role) {
        // Dated when it happens: a turn that starts many instances forks for a while, and
        // a start time counts for min_uptime and listen_timeout.
        let now = Instant::now();
        let core = &self.core;
        // Pruned only after slots were removed: a walk over every ring per spawn made
        // starting N instances cost N².
        if core.slots_removed() != self.rings_pruned_at {
            self.rings_pruned_at = core.slots_removed();
            self.output.recent.retain(|i| core.slot(i).is_some());
        }
        let (Some(slot), Some(spec)) = (self.core.slot(id), self.core.spec_of(id)) else {
            return;
        };
        let mut env = env::for_instance(&self.base_env, spec, slot);
        let single = self.mode == Mode::Single;
        let mut extra_fds = Vec::new();
        if spec.exec_mode == ExecMode::Cluster && !spec.listen.is_empty() {
            if let Err(e) = self.listeners.ensure(spec) {
                return self.setup_failed(id, role, (e, false), now);
            }
            extra_fds = self.listeners.fds(&spec.name);
            let names = vec![spec.name.as_str(); extra_fds.len()].join(":");
            env.push(("LISTEN_FDS".into(), extra_fds.len().to_string().into()));
            env.push(("LISTEN_FDNAMES".into(), names.into()));
        }
        let mut pid_vars = Vec::new();
        if !extra_fds.is_empty() {
            pid_vars.push("LISTEN_PID");
        }
        if let Some(w) = spec.watchdog {
            env.push(("WATCHDOG_USEC".into(), w.as_micros().to_string().into()));
            pid_vars.push("WATCHDOG_PID");
        }
        if let Some(kv) = self.ready.env() {
            env.push(kv);
        }
        // The child's end of the Node IPC channel comes after the listening sockets.
        let channel = if spec.node_ipc {
            node::NodeChannels::pair()
        } else {
            None
        };
        // Runner is the cluster primary of a node app in cluster mode (Node makes a
        // process a worker when NODE_UNIQUE_ID is set and it has the channel).
        let worker = channel.is_some() && spec.exec_mode == ExecMode::Cluster;
        if let Some((_, child_end)) = &channel {
            use std::os::fd::AsRawFd;
            env.push((
                "NODE_CHANNEL_FD".into(),
                (3 + extra_fds.len()).to_string().into(),
            ));
            env.push(("NODE_CHANNEL_SERIALIZATION_MODE".into(), "json".into()));
            extra_fds.push(child_end.as_raw_fd());
            if worker {
                env.retain(|(k, _)| k != "NODE_UNIQUE_ID");
                env.push((
                    "NODE_UNIQUE_ID".into(),
                    self.next_worker_id.to_string().into(),
                ));
                self.next_worker_id += 1;
            }
        }
        let prepared = match self.output.prepare(spec, slot.id, slot.index) {
            Ok(p) => p,
            Err(e) => return self.setup_failed(id, role, e, now),
        };
        if prepared.is_none() {
            self.output.note_inherited();
        }
        let (stdout, stderr) = match &prepared {
            Some(p) => {
                let (o, e) = p.fds();
                (Some(o), Some(e))
            }
            None => (None, None),
        };
        let req = SpawnRequest {
            program: &spec.program,
            argv: &spec.argv,
            env,
            cwd: &spec.cwd,
            credentials: spec.credentials.as_ref(),
            stdin: if single { Stdin::Inherit } else { Stdin::Null },
            stdout,
            stderr,
            extra_fds,
            pid_vars,
            foreground_tty: self.foreground_tty,
        };
        let name = spec.name.clone();
        let index = slot.index;
        // Single-program mode keeps the synchronous answer: one child, and its exec
        // failure decides runner's own exit code at once, as tini's does.
        let result = if single {
            spawn::spawn(req)
        } else {
            match spawn::start(req) {
                Ok(started) => {
                    let pid = started.pid;
                    if let Some((ours, _child_end)) = channel {
                        self.node.attach(self.poll.registry(), pid, ours, worker);
                    }
                    if let Some(p) = prepared {
                        self.output.attach(self.poll.registry(), pid, p);
                    }
                    self.await_exec(PendingExec {
                        started,
                        slot: id,
                        role,
                        name,
                        index,
                    });
                    return;
                }
                Err(e) => Err(e),
            }
        };
        match &result {
            Ok(pid) => {
                let level = if single {
                    log::Level::Debug
                } else {
                    log::Level::Info
                };
                log::log!(level, "{name}[{index}]: started pid {pid}");
                if let Some((ours, _child_end)) = channel {
                    self.node.attach(self.poll.registry(), *pid, ours, worker);
                }
                // The write ends are the child's now; runner's copies close here so
                // the pipes reach EOF when the instance is gone.
                if let Some(p) = prepared {
                    self.output.attach(self.poll.registry(), *pid, p);
                }
            }
            Err(e) => log::debug!("{name}[{index}]: spawn failed: {e}"),
        }
        self.core.spawned(id, role, result, now);
    }

    /// Waits for the child's exec on the loop; if its pipe cannot be watched, reads the
    /// result at once (the old, synchronous way).
    fn await_exec(&mut self, pending: PendingExec) {
        use std::os::fd::AsRawFd;
        // Each pending exec holds a pipe: beyond a bound, wait for one (as every spawn
        // once did) rather than run out of fds with thousands of instances.
        if self.execs.len() >= MAX_EXECS_IN_FLIGHT {
            if let Some(oldest) = self.execs.keys().next().copied() {
                self.exec_done(oldest);
            }
        }
        let pid = pending.started.pid;
        let fd = pending.started.exec.as_raw_fd();
        let token = Band::Exec.token(pid as u64);
        match self.poll.registry().register(
            &mut mio::unix::SourceFd(&fd),
            token,
            mio::Interest::READABLE,
        ) {
            Ok(()) => {
                self.execs.insert(pid, pending);
            }
            Err(e) => {
                log::debug!("cannot watch the exec of pid {pid} ({e}); waiting for it");
                self.execs.insert(pid, pending);
                self.exec_done(pid);
            }
        }
    }

    /// The exec result of `pid` is readable: the core learns whether the start succeeded.
    fn exec_done(&mut self, pid: i32) {
        use std::os::fd::AsRawFd;
        let Some(pending) = self.execs.remove(&pid) else {
            return;
        };
        let fd = pending.started.exec.as_raw_fd();
        let _ = self
            .poll
            .registry()
            .deregister(&mut mio::unix::SourceFd(&fd));
        let result = pending.started.outcome();
        match &result {
            Ok(pid) => log::info!("{}[{}]: started pid {pid}", pending.name, pending.index),
            Err(e) => log::debug!("{}[{}]: spawn failed: {e}", pending.name, pending.index),
        }
        // Read afresh: `outcome` may have waited for the exec (past MAX_EXECS_IN_FLIGHT),
        // and this may follow a run of spawns in the same turn.
        self.core
            .spawned(pending.slot, pending.role, result, Instant::now());
    }
}

/// True when runner's stdin is a terminal whose foreground group is runner's own: only
/// then may the single program take the terminal over.
fn owns_terminal_foreground() -> bool {
    let stdin = std::io::stdin();
    match nix::unistd::tcgetpgrp(&stdin) {
        Ok(pgrp) => pgrp == nix::unistd::getpgrp(),
        Err(_) => false,
    }
}

/// Passes a signal on to a process (the one place runner forwards).
fn forward(pid: i32, signal: i32) {
    // SAFETY: kill(2) has no memory effects; `signal` is a number the kernel delivered to
    // runner (real-time ones have no nix name).
    if unsafe { libc::kill(pid, signal) } != 0 {
        log::debug!(
            "cannot forward signal {signal} to pid {pid}: {}",
            Errno::last()
        );
    }
}
