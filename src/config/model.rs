//! The validated, resolved form of an ecosystem file: what the supervisor runs.
//!
//! Everything here is already checked: paths resolved against the file's directory,
//! durations and sizes converted, signal names parsed, profiles merged. The supervisor
//! never sees raw TOML.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

/// Runner-wide settings from the optional `[runner]` table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunnerSettings {
    /// Control socket path from the file; `--socket` and `RUNNER_SOCKET` win over it.
    pub socket: Option<PathBuf>,
    pub on_sighup: OnSighup,
    /// `metrics = "ADDR:PORT"`: where to serve Prometheus' `GET /metrics` (off when None).
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnSighup {
    /// Forward SIGHUP to every instance's main process.
    #[default]
    Forward,
    /// Reload every app.
    Reload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecMode {
    Fork,
    Cluster,
}

impl ExecMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecMode::Fork => "fork",
            ExecMode::Cluster => "cluster",
        }
    }
}

/// One `listen` entry, parsed but not bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A `ready_check` probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyCheck {
    /// `tcp://HOST:PORT`: a connection is accepted.
    Tcp { host: String, port: u16 },
    /// `http://HOST:PORT/PATH`: a GET answers 2xx.
    Http {
        host: String,
        port: u16,
        path: String,
    },
    /// `exec:COMMAND`: the command, run with `sh -c`, exits 0.
    Exec(String),
}

impl std::fmt::Display for ReadyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bracket = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_string()
            }
        };
        match self {
            ReadyCheck::Tcp { host, port } => write!(f, "tcp://{}:{port}", bracket(host)),
            ReadyCheck::Http { host, port, path } => {
                write!(f, "http://{}:{port}{path}", bracket(host))
            }
            ReadyCheck::Exec(c) => write!(f, "exec:{c}"),
        }
    }
}

/// A `health_check` (liveness) probe with its timing. The host of a `tcp://` or
/// `http://` probe is resolved once, when the file is loaded, so no check ever waits for
/// a resolver inside the event loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The probe as written (its host is kept for the `Host:` header and messages).
    pub probe: ReadyCheck,
    /// Where `tcp://` and `http://` probes connect; None for `exec:`.
    pub addr: Option<std::net::SocketAddr>,
    /// From the end of one check to the start of the next (and from online to the first).
    pub interval: Duration,
    /// How long one check may take; an `exec:` command still running then is killed.
    pub timeout: Duration,
    /// Consecutive failures that restart the instance.
    pub failures: u32,
}

/// `health_interval` when not set (process-compose's and Kubernetes' period).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// `health_timeout` when not set.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// `health_failures` when not set (Kubernetes' failureThreshold).
pub const HEALTH_FAILURES: u32 = 3;

/// What a `depends_on` entry waits for (process-compose's `condition`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DependCondition {
    /// Every instance of the dependency has been started.
    Started,
    /// Every instance of the dependency is online (the default, as before conditions).
    #[default]
    Online,
    /// Every instance of the dependency has exited with 0 or a `stop_exit_codes` code and
    /// will not be restarted: a one-shot job such as a migration.
    Completed,
}

impl DependCondition {
    /// The word `runner check` prints and the file accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            DependCondition::Started => "started",
            DependCondition::Online => "online",
            DependCondition::Completed => "completed_successfully",
        }
    }

    /// Reads a condition: runner's words, process-compose's (`process_started`,
    /// `process_healthy`, `process_completed_successfully`) and short forms.
    pub fn parse(word: &str) -> Option<DependCondition> {
        let w = word.trim().to_ascii_lowercase();
        let w = w.strip_prefix("process_").unwrap_or(&w);
        Some(match w {
            "started" | "start" => DependCondition::Started,
            "online" | "healthy" | "ready" => DependCondition::Online,
            "completed_successfully" | "completed" | "complete" | "success" | "done" => {
                DependCondition::Completed
            }
            _ => return None,
        })
    }

    /// Every word [`DependCondition::parse`] accepts, for suggestions.
    pub const WORDS: &'static [&'static str] = &[
        "started",
        "online",
        "completed_successfully",
        "process_started",
        "process_healthy",
        "process_completed_successfully",
        "healthy",
        "completed",
    ];
}

/// A user and group to run an instance as, resolved from names at load time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups of the user (empty when only `gid` was given).
    pub groups: Vec<u32>,
    /// The user's passwd entry (name, home folder) when `uid` has one: the instance gets
    /// `USER`, `LOGNAME` and `HOME` from it, as systemd's `User=` does.
    pub passwd: Option<(String, String)>,
}

/// The most instances one app may have (`instances`, `runner scale`): far above what a
/// host runs, low enough that a typo (`scale api 4000000000`) is an error instead of an
/// allocation that ends in the OOM killer taking PID 1.
pub const MAX_INSTANCES: u32 = 10_000;

/// One app, fully resolved. `instances` is already a concrete count.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    pub name: String,
    pub namespace: String,
    /// The program that is executed: an absolute path (found in PATH at load time) or a
    /// path relative to `cwd` as the user wrote it.
    pub program: PathBuf,
    /// Full argv, argv[0] included (interpreter, interpreter args, script, args). OS
    /// strings: `runner -- PROGRAM` passes its arguments on byte for byte, as tini does.
    pub argv: Vec<OsString>,
    pub cwd: PathBuf,
    /// Environment added to runner's own: env_file, then `env`, then `env_<profile>`.
    pub env: BTreeMap<String, String>,
    pub instances: u32,
    pub exec_mode: ExecMode,
    pub listen: Vec<ListenAddr>,
    pub instance_var: String,
    /// Name of a variable in `env` whose integer value grows by one per instance.
    pub increment_var: Option<String>,
    /// True when the interpreter is node: the instance gets a Node IPC channel.
    pub node_ipc: bool,
    pub wait_ready: bool,
    pub listen_timeout: Duration,
    pub ready_check: Option<ReadyCheck>,
    /// The address of a `tcp://` or `http://` ready_check, resolved once at load time so
    /// that no DNS lookup ever runs on the event loop.
    pub ready_addr: Option<std::net::SocketAddr>,
    pub depends_on: Vec<String>,
    /// The condition of each `depends_on` entry that is not the default (online).
    pub depends_conditions: BTreeMap<String, DependCondition>,
    pub critical: bool,
    pub watchdog: Option<Duration>,
    pub health_check: Option<HealthCheck>,
    pub kill_signal: Signal,
    pub kill_timeout: Duration,
    pub treekill: bool,
    pub autorestart: bool,
    pub stop_exit_codes: Vec<i32>,
    pub min_uptime: Duration,
    pub max_restarts: u32,
    pub restart_delay: Duration,
    pub exp_backoff_restart_delay: Option<Duration>,
    pub max_memory_restart: Option<u64>,
    pub credentials: Option<Credentials>,
    pub out_file: Option<PathBuf>,
    pub error_file: Option<PathBuf>,
    pub log_prefix: bool,
    pub time: bool,
    /// PM2's `log_date_format` (dayjs tokens); wins over `time` when both are set.
    pub log_date_format: Option<String>,
    /// One `out_file`/`error_file` for every instance; otherwise each instance writes to
    /// `NAME-ID.log` (PM2's per-process naming). Already resolved to PM2's default.
    pub merge_logs: bool,
    /// `cron_restart`: restart (cluster: reload) at each match; start an app that ended.
    pub cron_restart: Option<crate::cron::CronExpr>,
    /// `watch`, `ignore_watch`, `watch_delay`.
    pub watch: Option<WatchSpec>,
}

/// Default `watch_delay`. PM2's is 0, but PM2 gets one restart per save from chokidar's
/// own event coalescing; with raw inotify a save is several events (create, write,
/// close, an editor's rename), and this short window makes them one restart.
pub const WATCH_DELAY: Duration = Duration::from_millis(100);

/// What `watch` looks at and what it ignores.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSpec {
    /// Absolute files or folders, watched recursively.
    pub paths: Vec<PathBuf>,
    /// `ignore_watch` patterns, added to the defaults (`node_modules`, dot-folders).
    pub ignore: Vec<String>,
    /// Files runner itself writes for this app (its logs): never a reason to restart.
    pub own_files: Vec<PathBuf>,
    /// The first change arms a restart this much later; later changes join it.
    pub delay: Duration,
}

impl AppSpec {
    /// A Node cluster worker with no other readiness is ready once it listens (Node's
    /// `listening` message), as PM2's reload waits for it.
    pub fn ready_on_listening(&self) -> bool {
        self.node_ipc
            && self.exec_mode == ExecMode::Cluster
            && !self.wait_ready
            && self.ready_check.is_none()
    }

    /// An instance is `launching` until something says it is ready.
    pub fn waits_for_ready(&self) -> bool {
        self.wait_ready || self.ready_check.is_some() || self.ready_on_listening()
    }

    /// A spec with every default of SPEC section 2, for a program given as argv.
    /// Used by single-program mode and by tests.
    pub fn with_defaults(name: &str, program: PathBuf, argv: Vec<OsString>, cwd: PathBuf) -> Self {
        AppSpec {
            name: name.to_string(),
            namespace: "default".to_string(),
            program,
            argv,
            cwd,
            env: BTreeMap::new(),
            instances: 1,
            exec_mode: ExecMode::Fork,
            listen: Vec::new(),
            instance_var: "NODE_APP_INSTANCE".to_string(),
            increment_var: None,
            node_ipc: false,
            wait_ready: false,
            listen_timeout: Duration::from_millis(3000),
            ready_check: None,
            ready_addr: None,
            depends_on: Vec::new(),
            depends_conditions: BTreeMap::new(),
            critical: false,
            watchdog: None,
            health_check: None,
            kill_signal: Signal::SIGINT,
            kill_timeout: Duration::from_millis(1600),
            treekill: true,
            autorestart: true,
            stop_exit_codes: Vec::new(),
            min_uptime: Duration::from_millis(1000),
            max_restarts: 16,
            restart_delay: Duration::ZERO,
            exp_backoff_restart_delay: None,
            max_memory_restart: None,
            credentials: None,
            out_file: None,
            error_file: None,
            log_prefix: false,
            time: false,
            log_date_format: None,
            merge_logs: true,
            cron_restart: None,
            watch: None,
        }
    }

    /// The condition `depends_on` names for dependency `name`.
    pub fn depend_condition(&self, name: &str) -> DependCondition {
        self.depends_conditions
            .get(name)
            .copied()
            .unwrap_or_default()
    }

    /// Whether output must go through runner (pipes) rather than be inherited.
    pub fn captures_output(&self) -> bool {
        self.log_prefix
            || self.time
            || self.log_date_format.is_some()
            || self.out_file.is_some()
            || self.error_file.is_some()
    }

    /// The file instance `id` writes `path` to: PM2's rule (`lib/God.js`) unless
    /// `merge_logs` — a path ending in `.log` gets `-ID` before it, replacing a `-NUMBER`
    /// already there (`out.log`, `out-3.log` → `out-7.log`); other paths are shared.
    pub fn log_path_for(&self, path: &std::path::Path, id: u32) -> PathBuf {
        if self.merge_logs {
            return path.to_path_buf();
        }
        per_instance_log_path(path, id)
    }
}

/// `path` with PM2's per-process suffix: `-ID` before a final `.log`, replacing a `-DIGITS`
/// already there; paths not ending in `.log` are returned as they are.
pub fn per_instance_log_path(path: &std::path::Path, id: u32) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = path.as_os_str().as_bytes();
    let Some(stem) = bytes.strip_suffix(b".log") else {
        return path.to_path_buf();
    };
    let digits = stem.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let stem = match stem.len().checked_sub(digits + 1) {
        Some(dash) if digits > 0 && stem[dash] == b'-' => &stem[..dash],
        _ => stem,
    };
    let mut out = stem.to_vec();
    out.extend_from_slice(format!("-{id}.log").as_bytes());
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// A whole ecosystem file after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Ecosystem {
    /// The file it came from (absolute), for `apply` and messages.
    pub path: PathBuf,
    pub runner: RunnerSettings,
    /// Apps in file order; `--only` already applied (with dependencies kept).
    pub apps: Vec<AppSpec>,
    /// Non-fatal findings (PM2 keys runner does not implement, ...), already formatted
    /// with file, line and column.
    pub warnings: Vec<String>,
}
