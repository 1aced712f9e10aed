//! The command line of SPEC section 1.

use std::ffi::OsString;
use std::path::PathBuf;

/// Options shared by the supervisor and the client commands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Global {
    pub env: Option<String>,
    pub only: Vec<String>,
    pub socket: Option<PathBuf>,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Supervise {
        file: PathBuf,
    },
    Single {
        program: OsString,
        args: Vec<OsString>,
    },
    Check {
        file: PathBuf,
    },
    List {
        json: bool,
    },
    Status,
    Action {
        verb: String,
        target: String,
    },
    Scale {
        name: String,
        instances: String,
    },
    Signal {
        signal: String,
        target: String,
    },
    Apply,
    Import {
        file: PathBuf,
    },
    Logs {
        target: String,
        lines: usize,
        follow: bool,
        /// `"out"` or `"err"`; None for both.
        stream: Option<String>,
    },
    Help,
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub global: Global,
    pub command: Command,
}

pub const USAGE: &str =
    "usage: runner [--env NAME] [--only NAMES] [--socket PATH] [FILE | -- PROGRAM [ARGS...]]
       runner check [FILE] | list [--json] | status | start|stop|restart|reload|delete TARGET
       runner scale NAME N | signal SIGNAL TARGET | apply | import FILE
       runner logs [TARGET] [--lines N] [--follow] [--out|--err]";

pub const HELP: &str = "runner — supervise the apps of an ecosystem file in the foreground

USAGE:
    runner [OPTIONS] [FILE]                 supervise the apps in FILE (default ./ecosystem.toml)
    runner [OPTIONS] -- PROGRAM [ARGS...]   supervise one program, tini-style
    runner check [FILE]                     validate FILE, print the resolved apps
    runner list [--json]                    the apps of a running runner
    runner status                           exit 0 when every app that should run is online
    runner start|stop|restart|reload|delete TARGET
    runner scale NAME N                     change the number of instances of an app
    runner signal SIGNAL TARGET             send a signal to the instances
    runner apply                            re-read the ecosystem file and apply the difference
    runner import FILE                      print a PM2, supervisord or process-compose file
                                            as ecosystem TOML (FILE also runs as it is)
    runner logs [TARGET] [--lines N] [--follow] [--out|--err]
                                            recent output of the instances (default: all,
                                            15 lines each); --follow streams new lines

OPTIONS:
    --env NAME          merge env_NAME over env for every app
    --only NAME[,NAME]  supervise only these apps (and what they depend on)
    --socket PATH       control socket (also RUNNER_SOCKET)
    -h, --help          print this help
    -V, --version       print the version

TARGET is an app name, an instance id, a namespace or `all`.
Logging: RUNNER_LOG=debug|info|warn|error (default info).";

const DEFAULT_FILE: &str = "ecosystem.toml";

/// Options that take a value, for finding the `--` that starts tini-style mode.
const VALUED: &[&str] = &["--env", "--only", "--socket"];

/// Parses argv (without argv[0]). Errors are one line for the usage message.
pub fn parse(args: Vec<OsString>) -> Result<Invocation, String> {
    let (ours, program) = split_program(args);
    let opts = match read_options(ours)? {
        Read::Options(opts) => opts,
        Read::Done(invocation) => return Ok(invocation),
    };
    let command = match program {
        Some(program) => single(&opts.positional, program)?,
        None => subcommand(opts.positional, &opts.flags)?,
    };
    Ok(Invocation {
        global: opts.global,
        command,
    })
}

/// Everything after the first `--` that is not an option's value is PROGRAM and its
/// arguments, passed on untouched (they may look like options, or not be UTF-8).
fn split_program(args: Vec<OsString>) -> (Vec<OsString>, Option<Vec<OsString>>) {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_str().unwrap_or("");
        if a == "--" {
            return (args[..i].to_vec(), Some(args[i + 1..].to_vec()));
        }
        i += if VALUED.contains(&a) { 2 } else { 1 };
    }
    (args, None)
}

/// Options of one subcommand, checked against the subcommand once it is known.
#[derive(Default)]
struct Flags {
    json: bool,
    lines: Option<usize>,
    follow: bool,
    stream: Option<&'static str>,
}

/// The options and words before any `--`.
struct Options {
    global: Global,
    positional: Vec<String>,
    flags: Flags,
}

enum Read {
    Options(Options),
    /// `--help` or `--version`: nothing else matters.
    Done(Invocation),
}

fn read_options(ours: Vec<OsString>) -> Result<Read, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(ours);
    let mut global = Global::default();
    let mut positional: Vec<String> = Vec::new();
    let mut flags = Flags::default();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("env") => global.env = Some(value_string(&mut parser, "--env")?),
            Long("only") => {
                let v = value_string(&mut parser, "--only")?;
                global.only.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
            }
            Long("socket") => {
                global.socket = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?))
            }
            Long("json") => flags.json = true,
            Long("lines") | Short('n') => {
                let v = value_string(&mut parser, "--lines")?;
                flags.lines = Some(
                    v.parse()
                        .map_err(|_| format!("--lines must be a whole number, not `{v}`"))?,
                );
            }
            Long("follow") | Short('f') => flags.follow = true,
            Long("out") => flags.stream = Some("out"),
            Long("err") => flags.stream = Some("err"),
            Short('h') | Long("help") => {
                let command = Command::Help;
                return Ok(Read::Done(Invocation { global, command }));
            }
            Short('V') | Long("version") => {
                let command = Command::Version;
                return Ok(Read::Done(Invocation { global, command }));
            }
            Value(v) => positional.push(
                v.into_string()
                    .map_err(|v| format!("argument is not UTF-8: {}", v.to_string_lossy()))?,
            ),
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(Read::Options(Options {
        global,
        positional,
        flags,
    }))
}

/// `runner [OPTIONS] -- PROGRAM ARGS...`.
fn single(positional: &[String], mut program: Vec<OsString>) -> Result<Command, String> {
    if let Some(first) = positional.first() {
        return Err(format!("unexpected argument '{first}' before --"));
    }
    if program.is_empty() {
        return Err("missing PROGRAM after --".into());
    }
    let args = program.split_off(1);
    let program = program.remove(0);
    Ok(Command::Single { program, args })
}

/// The subcommand the words name (none or a file: supervise), with its arguments.
fn subcommand(positional: Vec<String>, flags: &Flags) -> Result<Command, String> {
    let mut pos = positional.into_iter();
    let first = pos.next();
    let rest: Vec<String> = pos.collect();
    let exact = |n: usize, what: &str| -> Result<(), String> {
        if rest.len() < n {
            Err(format!("missing {what}"))
        } else if rest.len() > n {
            Err(format!("unexpected argument '{}'", rest[n]))
        } else {
            Ok(())
        }
    };
    let at_most_one = || match rest.get(1) {
        Some(extra) => Err(format!("unexpected argument '{extra}'")),
        None => Ok(()),
    };
    if flags.json && first.as_deref() != Some("list") {
        return Err("--json goes with list".into());
    }
    let logs_opts = flags.lines.is_some() || flags.follow || flags.stream.is_some();
    if logs_opts && first.as_deref() != Some("logs") {
        return Err("--lines, --follow, --out and --err go with logs".into());
    }
    Ok(match first.as_deref() {
        None => Command::Supervise {
            file: PathBuf::from(DEFAULT_FILE),
        },
        Some("check") => {
            at_most_one()?;
            Command::Check {
                file: rest
                    .first()
                    .map_or_else(|| PathBuf::from(DEFAULT_FILE), PathBuf::from),
            }
        }
        Some("list") => {
            exact(0, "")?;
            Command::List { json: flags.json }
        }
        Some("status") => {
            exact(0, "")?;
            Command::Status
        }
        Some("apply") => {
            exact(0, "")?;
            Command::Apply
        }
        Some(verb @ ("start" | "stop" | "restart" | "reload" | "delete")) => {
            exact(1, "TARGET")?;
            Command::Action {
                verb: verb.to_string(),
                target: rest[0].clone(),
            }
        }
        Some("scale") => {
            exact(2, "NAME and N")?;
            Command::Scale {
                name: rest[0].clone(),
                instances: rest[1].clone(),
            }
        }
        Some("signal") => {
            exact(2, "SIGNAL and TARGET")?;
            Command::Signal {
                signal: rest[0].clone(),
                target: rest[1].clone(),
            }
        }
        Some("logs") => {
            at_most_one()?;
            Command::Logs {
                target: rest.first().cloned().unwrap_or_else(|| "all".to_string()),
                lines: flags
                    .lines
                    .unwrap_or(crate::control::protocol::DEFAULT_LOG_LINES),
                follow: flags.follow,
                stream: flags.stream.map(String::from),
            }
        }
        Some("import") => {
            exact(1, "FILE")?;
            Command::Import {
                file: PathBuf::from(&rest[0]),
            }
        }
        Some(file) => {
            if let Some(extra) = rest.first() {
                return Err(format!("unexpected argument '{extra}'"));
            }
            Command::Supervise {
                file: PathBuf::from(file),
            }
        }
    })
}

fn value_string(parser: &mut lexopt::Parser, name: &str) -> Result<String, String> {
    parser
        .value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|_| format!("{name} value is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Invocation, String> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn no_arguments_supervise_the_default_file() {
        assert_eq!(
            p(&[]).unwrap().command,
            Command::Supervise {
                file: "ecosystem.toml".into()
            }
        );
    }

    #[test]
    fn everything_after_double_dash_is_the_program_untouched() {
        let inv = p(&["--env", "prod", "--", "sh", "-c", "--help"]).unwrap();
        assert_eq!(inv.global.env.as_deref(), Some("prod"));
        assert_eq!(
            inv.command,
            Command::Single {
                program: "sh".into(),
                args: vec!["-c".into(), "--help".into()]
            }
        );
    }

    #[test]
    fn an_option_value_may_be_a_double_dash() {
        let inv = p(&["--socket", "--", "eco.toml"]).unwrap();
        assert_eq!(inv.global.socket, Some(PathBuf::from("--")));
        assert_eq!(
            inv.command,
            Command::Supervise {
                file: "eco.toml".into()
            }
        );
    }

    #[test]
    fn subcommands_take_their_arguments() {
        assert_eq!(
            p(&["list", "--json"]).unwrap().command,
            Command::List { json: true }
        );
        assert_eq!(
            p(&["signal", "SIGUSR2", "api"]).unwrap().command,
            Command::Signal {
                signal: "SIGUSR2".into(),
                target: "api".into()
            }
        );
        assert_eq!(
            p(&["--only", "a,b", "x.toml"]).unwrap().global.only,
            vec!["a", "b"]
        );
    }

    #[test]
    fn logs_takes_an_optional_target_and_its_options() {
        assert_eq!(
            p(&["logs"]).unwrap().command,
            Command::Logs {
                target: "all".into(),
                lines: 15,
                follow: false,
                stream: None
            }
        );
        assert_eq!(
            p(&["logs", "api", "--lines", "5", "-f", "--err"])
                .unwrap()
                .command,
            Command::Logs {
                target: "api".into(),
                lines: 5,
                follow: true,
                stream: Some("err".into())
            }
        );
        assert!(p(&["logs", "--lines", "x"]).is_err());
        assert!(p(&["list", "--follow"]).is_err());
        assert!(p(&["logs", "a", "b"]).is_err());
    }

    #[test]
    fn wrong_usage_is_an_error() {
        assert!(p(&["--bogus"]).is_err());
        assert!(p(&["stop"]).is_err());
        assert!(p(&["a.toml", "b.toml"]).is_err());
        assert!(p(&["--"]).is_err());
        assert!(p(&["--env"]).is_err());
    }
}
