//! The validated, resolved form of an ecosystem file: what the supervisor runs.
//!
//! Everything here is already checked: paths resolved against the file's directory,
//! durations and sizes converted, signal names parsed, profiles merged. The supervisor
//! never sees raw TOML.

use std::collections::BTreeMap;
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups of the user (empty when only `gid` was given).
    pub groups: Vec<u32>,
}

/// One app, fully resolved. `instances` is already a concrete count.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    pub name: String,
    pub namespace: String,
    /// The program that is executed: an absolute path (found in PATH at load time) or a
    /// path relative to `cwd` as the user wrote it.
    pub program: PathBuf,
    /// Full argv, argv[0] included (interpreter, interpreter args, script, args).
    pub argv: Vec<String>,
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
}

impl AppSpec {
    /// A spec with every default of SPEC section 2, for a program given as argv.
    /// Used by single-program mode and by tests.
    pub fn with_defaults(name: &str, program: PathBuf, argv: Vec<String>, cwd: PathBuf) -> Self {
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
        self.log_prefix || self.time || self.out_file.is_some() || self.error_file.is_some()
    }
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
