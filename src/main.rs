//! Entry point: pick the mode, map errors to exit codes (SPEC section 1).
//!
//! runner starts from C's `main`, not Rust's `fn main` (`#![no_main]`), because in the
//! single-program case it replaces tini and its start-up is measured against tini's (issue
//! 18). Rust's runtime set-up before `fn main` reads `/proc/self/maps` (glibc's
//! `pthread_getattr_np` for the main thread's stack guard), and installs an alternate
//! signal stack with SIGSEGV/SIGBUS handlers only to print "stack overflow" before
//! aborting. What runner needs from that set-up it does itself in [`prepare_process`]:
//! fds 0-2 open, SIGPIPE ignored. Arguments are read from `main`'s own `argv`: glibc also
//! hands them to std's initialiser, but a static musl build does not, and there
//! `std::env::args_os()` is empty. `std::process::exit` flushes stdout as the runtime would.
// Under `cargo test` the harness brings its own entry point, and a C `main` of ours would
// replace it.
#![cfg_attr(not(test), no_main)]

use std::io::Write;
use std::path::PathBuf;

use runner::cli::{self, Command, Invocation};
use runner::cluster::Listeners;
use runner::config::{self, AppSpec, LoadOptions};
use runner::control::client::{self, ClientCommand};
use runner::control::server::Server;
use runner::control::socket_path;
use runner::core::Core;
use runner::supervisor::scrape::MetricsServer;
use runner::supervisor::{spawn, Mode, NotifyAt, Options, Supervisor};

/// Usage and ecosystem-file errors: nothing was started.
const EXIT_USAGE: u8 = 2;

#[cfg_attr(not(test), no_mangle)]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    prepare_process();
    // SAFETY: C's `main` gets `argc` NUL-terminated strings at `argv`, alive until exit.
    let args = unsafe { arguments(argc, argv) };
    let code = match cli::parse(args) {
        Ok(inv) => {
            init_logging();
            run(inv)
        }
        Err(e) => {
            eprintln!("runner: {e}\n{}", cli::USAGE);
            EXIT_USAGE
        }
    };
    std::process::exit(i32::from(code))
}

/// `argv[1..argc]` as OS strings (the bytes as given: Unix arguments need not be UTF-8).
///
/// # Safety
/// `argv` holds at least `argc` pointers to NUL-terminated strings, as C's `main` gets.
unsafe fn arguments(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let count = if argv.is_null() {
        0
    } else {
        usize::try_from(argc).unwrap_or(0)
    };
    (1..count)
        .map(|i| {
            // SAFETY: i < argc, and each entry is a NUL-terminated string (see above).
            let bytes = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) }.to_bytes();
            std::ffi::OsStr::from_bytes(bytes).to_os_string()
        })
        .collect()
}

/// The part of Rust's runtime set-up runner relies on (see the module doc).
fn prepare_process() {
    // A closed fd 0, 1 or 2 would be taken by the next file runner opens (a pipe, the
    // control socket), and then written to as if it were the terminal.
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll reads and writes only the three entries of `fds`; open takes a
    // NUL-terminated path and, the lower fds being open, returns the closed one.
    unsafe {
        if libc::poll(fds.as_mut_ptr(), 3, 0) >= 0 {
            for p in fds {
                if p.revents & libc::POLLNVAL != 0 {
                    libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                }
            }
        }
    }
    // Writes to a client that hung up or a closed pipe must fail with EPIPE, not kill
    // runner; children get the default back before exec (spawn.rs).
    // SAFETY: setting a disposition to SIG_IGN installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

fn init_logging() {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&std::env::var("RUNNER_LOG").unwrap_or_else(|_| "info".into()));
    builder.format(|buf, record| match record.level() {
        log::Level::Info => writeln!(buf, "runner: {}", record.args()),
        log::Level::Warn => writeln!(buf, "runner: warning: {}", record.args()),
        log::Level::Error => writeln!(buf, "runner: error: {}", record.args()),
        _ => writeln!(
            buf,
            "runner: {}: {}",
            record.level().as_str().to_lowercase(),
            record.args()
        ),
    });
    builder.init();
}

fn run(inv: Invocation) -> u8 {
    match inv.command {
        Command::Help => {
            println!("{}", cli::HELP);
            0
        }
        Command::Version => {
            println!("runner {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::Single { program, args } => single(program, args, &inv.global),
        Command::Supervise { file } => supervise(&file, &inv.global),
        Command::Check { file } => match load(&file, &inv.global) {
            Ok(eco) => {
                print!("{}", config::render_check(&eco));
                0
            }
            Err(code) => code,
        },
        Command::Import { file } => match config::import(&file) {
            Ok((text, warnings)) => {
                for w in warnings {
                    eprintln!("runner: warning: {w}");
                }
                print!("{text}");
                0
            }
            Err(e) => {
                for d in e.diagnostics() {
                    eprintln!("runner: {d}");
                }
                EXIT_USAGE
            }
        },
        Command::List { json } => client_command(&inv.global, ClientCommand::List { json }),
        Command::Status => client_command(&inv.global, ClientCommand::Status),
        Command::Action { verb, target } => {
            client_command(&inv.global, ClientCommand::Action { verb, target })
        }
        Command::Signal { signal, target } => {
            client_command(&inv.global, ClientCommand::Signal { signal, target })
        }
        Command::Apply => client_command(&inv.global, ClientCommand::Apply),
        Command::Logs {
            target,
            lines,
            follow,
            stream,
        } => {
            let path = socket_path::resolve(inv.global.socket.as_deref(), None);
            client::logs(&path, target, lines, follow, stream)
        }
        Command::Scale { name, instances } => match instances.parse::<u32>() {
            Ok(n) => client_command(&inv.global, ClientCommand::Scale { name, instances: n }),
            Err(_) => {
                eprintln!(
                    "runner: N must be a whole number, not `{instances}`\n{}",
                    cli::USAGE
                );
                EXIT_USAGE
            }
        },
    }
}

/// Loads and validates the file; on error prints it and returns the exit code.
fn load(file: &std::path::Path, global: &cli::Global) -> Result<config::Ecosystem, u8> {
    let opts = LoadOptions {
        profile: global.env.clone(),
        only: global.only.clone(),
    };
    match config::load(file, &opts) {
        Ok(eco) => {
            for w in &eco.warnings {
                log::warn!("{w}");
            }
            Ok(eco)
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("runner: {line}");
            }
            eprintln!("runner: nothing was started");
            Err(EXIT_USAGE)
        }
    }
}

fn client_command(global: &cli::Global, cmd: ClientCommand) -> u8 {
    let path = socket_path::resolve(global.socket.as_deref(), None);
    client::run(&path, cmd)
}

/// Binds the control socket. `Err((fatal, message))`: a live runner on the path is
/// fatal in ecosystem mode (two supervisors would fight over the apps); any other
/// failure only costs the client commands.
fn bind_control(
    global: &cli::Global,
    file_setting: Option<&std::path::Path>,
) -> Result<Server, (bool, String)> {
    let path = socket_path::resolve(global.socket.as_deref(), file_setting);
    socket_path::prepare_dir(&path).map_err(|e| (false, e))?;
    Server::bind(&path).map_err(|e| (e.contains("already listening"), e))
}

fn supervise(file: &std::path::Path, global: &cli::Global) -> u8 {
    let eco = match load(file, global) {
        Ok(eco) => eco,
        Err(code) => return code,
    };
    let mode = Mode::Ecosystem {
        sighup_reloads: eco.runner.on_sighup == config::OnSighup::Reload,
    };
    let control = match bind_control(global, eco.runner.socket.as_deref()) {
        Ok(server) => Some(server),
        Err((true, e)) => {
            eprintln!("runner: {e}; nothing was started");
            return 1;
        }
        Err((false, e)) => {
            log::warn!("no control socket: {e}");
            None
        }
    };
    let source = Some((
        eco.path.clone(),
        LoadOptions {
            profile: global.env.clone(),
            only: global.only.clone(),
        },
    ));
    // Sockets are bound before anything starts: a taken port is a start-up error.
    let listeners = match Listeners::bind_all(&eco.apps) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("runner: {e}");
            eprintln!("runner: nothing was started");
            return EXIT_USAGE;
        }
    };
    let metrics = match eco.runner.metrics.map(MetricsServer::bind).transpose() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("runner: {e}");
            eprintln!("runner: nothing was started");
            return EXIT_USAGE;
        }
    };
    // The sd_notify socket lives beside the control socket (same directory, same rules).
    let notify = match &control {
        Some(c) => NotifyAt::Path(c.path().with_extension("notify")),
        None => NotifyAt::Abstract,
    };
    start(
        Core::new(eco.apps),
        Options {
            mode,
            control,
            source,
            listeners,
            notify,
            metrics,
        },
    )
}

/// `runner -- PROGRAM`: one app that is not restarted and whose end is runner's end.
fn single(program: std::ffi::OsString, args: Vec<std::ffi::OsString>, global: &cli::Global) -> u8 {
    let path = match spawn::resolve_program(&program) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("runner: {e}");
            return e.code as u8;
        }
    };
    let name = PathBuf::from(&program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".into());
    let mut argv = vec![program];
    argv.extend(args);
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut spec = AppSpec::with_defaults(&name, path, argv, cwd);
    spec.autorestart = false;
    spec.critical = true;
    spec.kill_signal = nix::sys::signal::Signal::SIGTERM;
    // tini-style use must work wherever tini does: without a socket if need be.
    let control = match bind_control(global, None) {
        Ok(server) => Some(server),
        Err((_, e)) => {
            log::debug!("no control socket: {e}");
            None
        }
    };
    let opts = Options {
        mode: Mode::Single,
        control,
        source: None,
        listeners: Listeners::default(),
        notify: NotifyAt::Nowhere,
        metrics: None,
    };
    let mut core = Core::new(vec![spec]);
    core.set_quiet(true);
    start(core, opts)
}

fn start(core: Core, opts: Options) -> u8 {
    match Supervisor::new(core, opts) {
        Ok(sup) => sup.run().clamp(0, 255) as u8,
        Err(e) => {
            eprintln!("runner: {e}");
            1
        }
    }
}
