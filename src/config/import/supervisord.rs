//! A supervisord configuration (`supervisord.conf`) → ecosystem TOML text, which `load`
//! then reads as any ecosystem file. Used by `runner FILE.conf` and `runner import`.
//!
//! Follows supervisord's own reading of the file (`supervisor/options.py`,
//! `datatypes.py`): `%(name)s` expansions, commands split as `shlex.split` does, the
//! `environment` list with quoted values, its boolean words and signal names, and the
//! defaults of `[program:x]` (which differ from runner's: `stopsignal` TERM, `stopwaitsecs`
//! 10, `autorestart` unexpected with `exitcodes` 0, `startretries` 3, `startsecs` 1).
//! Sections and keys runner has no use for are named in a warning, never dropped silently.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::ini::{self, Entry, Section};
use super::toml_text::{comment, fmt_key, quoted};
use super::Converted;
use crate::config::error::Diagnostic;
use crate::config::shell_words;
use crate::config::units::parse_signal;

/// Whether `text` looks like a supervisord file (for files without a telling extension).
pub fn looks_like(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("[program:") || l.starts_with("[supervisord]")
    })
}

/// Keys of `[program:x]` that runner carries over.
const PROGRAM_KEYS: &[&str] = &[
    "command",
    "process_name",
    "numprocs",
    "numprocs_start",
    "directory",
    "user",
    "environment",
    "autostart",
    "autorestart",
    "exitcodes",
    "startsecs",
    "startretries",
    "stopsignal",
    "stopwaitsecs",
    "stopasgroup",
    "killasgroup",
    "priority",
    "redirect_stderr",
    "stdout_logfile",
    "stderr_logfile",
];

/// Keys of `[program:x]` that supervisord knows and runner does without, with why.
const PROGRAM_IGNORED: &[(&str, &str)] = &[
    (
        "umask",
        "set it in the command (`sh -c 'umask 022; exec ...'`)",
    ),
    (
        "stdout_logfile_maxbytes",
        "runner appends and never rotates; use logrotate with copytruncate",
    ),
    ("stdout_logfile_backups", "runner never rotates"),
    (
        "stderr_logfile_maxbytes",
        "runner appends and never rotates; use logrotate with copytruncate",
    ),
    ("stderr_logfile_backups", "runner never rotates"),
    ("stdout_capture_maxbytes", "no capture mode"),
    ("stderr_capture_maxbytes", "no capture mode"),
    ("stdout_events_enabled", "no event listeners"),
    ("stderr_events_enabled", "no event listeners"),
    (
        "stdout_syslog",
        "send output to stdout and let the container runtime collect it",
    ),
    (
        "stderr_syslog",
        "send output to stdout and let the container runtime collect it",
    ),
    ("serverurl", "runner sets no SUPERVISOR_SERVER_URL"),
];

struct Ctx<'a> {
    /// Which file each section came from (includes), for messages and `%(here)s`.
    files: Vec<PathBuf>,
    errors: Vec<Diagnostic>,
    warnings: Vec<String>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Ctx<'_> {
    fn error(&mut self, file: usize, line: usize, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            file: self.files[file].clone(),
            line,
            col: 1,
            message: message.into(),
        });
    }

    fn warn(&mut self, file: usize, line: usize, message: impl Into<String>) {
        let m = message.into();
        self.warnings
            .push(format!("{}:{line}: {m}", self.files[file].display()));
    }
}

/// Reads `path` (and its `[include]`s) and converts it.
pub fn to_toml(path: &Path) -> Result<Converted, Vec<Diagnostic>> {
    let env = |k: &str| std::env::var(k).ok();
    convert_file(path, &env)
}

fn convert_file(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Converted, Vec<Diagnostic>> {
    let mut ctx = Ctx {
        files: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        env,
    };
    // (file index, section)
    let mut sections: Vec<(usize, Section)> = Vec::new();
    read_with_includes(&mut ctx, path, &mut sections, 0);
    if !ctx.errors.is_empty() {
        return Err(ctx.errors);
    }
    let toml = convert(&mut ctx, &sections);
    Converted::or_errors(toml, ctx.warnings, ctx.errors)
}

fn read_with_includes(ctx: &mut Ctx, path: &Path, out: &mut Vec<(usize, Section)>, depth: usize) {
    let fi = ctx.files.len();
    ctx.files.push(path.to_path_buf());
    let text = match std::fs::read(path) {
        Ok(b) => match String::from_utf8(b) {
            Ok(t) => t,
            Err(_) => return ctx.error(fi, 0, "not valid UTF-8 text"),
        },
        Err(e) => return ctx.error(fi, 0, format!("cannot read: {e}")),
    };
    let sections = match ini::parse(&text) {
        Ok(s) => s,
        Err(errs) => {
            for e in errs {
                ctx.error(fi, e.line, e.message);
            }
            return;
        }
    };
    let here = here_of(path);
    for s in sections {
        if s.name == "include" {
            let Some(files) = s.get("files") else {
                ctx.error(fi, s.line, "[include] needs `files = GLOB ...`");
                continue;
            };
            if depth > 8 {
                ctx.error(
                    fi,
                    files.line,
                    "[include] nested more than 8 deep (an include loop?)",
                );
                continue;
            }
            let expanded = expand(ctx, fi, files, &BTreeMap::from([("here", here.clone())]));
            for pattern in expanded.split_whitespace() {
                let full = if Path::new(pattern).is_absolute() {
                    PathBuf::from(pattern)
                } else {
                    Path::new(&here).join(pattern)
                };
                for file in glob(&full) {
                    read_with_includes(ctx, &file, out, depth + 1);
                }
            }
            continue;
        }
        out.push((fi, s));
    }
}

fn here_of(path: &Path) -> String {
    std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
        .display()
        .to_string()
}

/// The files matching `pattern`, sorted; wildcards (`*`, `?`) only in the last part, as
/// supervisord's includes use them (`conf.d/*.conf`).
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return if pattern.exists() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
}

fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative match with one backtrack point for the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// Python's `%(name)s` / `%(name)d` formatting over `vars` and `ENV_X`; `%%` is `%`.
fn expand(ctx: &mut Ctx, fi: usize, e: &Entry, vars: &BTreeMap<&str, String>) -> String {
    let s = &e.value;
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('%') {
            out.push('%');
            rest = r;
            continue;
        }
        let Some(inner) = after.strip_prefix('(') else {
            out.push('%');
            rest = after;
            continue;
        };
        let Some(close) = inner.find(')') else {
            ctx.error(fi, e.line, format!("`{}`: unclosed `%(` in `{s}`", e.key));
            return s.clone();
        };
        let name = &inner[..close];
        // The conversion: flags and width digits, then one letter (s, d, ...).
        let spec_len = inner[close + 1..]
            .find(|c: char| c.is_ascii_alphabetic())
            .map(|p| p + 1)
            .unwrap_or(0);
        let spec = &inner[close + 1..close + 1 + spec_len];
        rest = &inner[close + 1 + spec_len..];
        let value = match name.strip_prefix("ENV_") {
            Some(var) => (ctx.env)(var),
            None => vars.get(name).cloned(),
        };
        let Some(value) = value else {
            let mut known: Vec<&str> = vars.keys().copied().collect();
            known.push("ENV_NAME");
            ctx.error(
                fi,
                e.line,
                format!(
                    "`{}`: `%({name})` cannot be expanded{}; known names: {}",
                    e.key,
                    if name.starts_with("ENV_") {
                        " (that variable is not set in runner's environment)"
                    } else {
                        ""
                    },
                    known.join(", ")
                ),
            );
            return s.clone();
        };
        out.push_str(&pad(&value, spec));
        if spec.is_empty() {
            ctx.error(
                fi,
                e.line,
                format!(
                    "`{}`: `%({name})` needs a conversion such as `s` or `d`",
                    e.key
                ),
            );
        }
    }
    out.push_str(rest);
    out
}

/// Applies a `%02d`-style width to a number (the only padding configs use).
fn pad(value: &str, spec: &str) -> String {
    if value == SHELL_PROCESS_NUM {
        return shell_process_num(spec);
    }
    let digits = spec.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let zero = digits.starts_with('0');
    let width: usize = digits.trim_start_matches('0').parse().unwrap_or(0);
    if value.len() >= width {
        return value.to_string();
    }
    let fill = if zero { '0' } else { ' ' };
    let mut s: String = std::iter::repeat_n(fill, width - value.len()).collect();
    s.push_str(value);
    s
}

/// `%(process_num)` in a command that differs per instance: the shell that runs the
/// command puts in the instance's number from `increment_var`.
const SHELL_PROCESS_NUM: &str = "${SUPERVISOR_PROCESS_NUM}";

/// The shell's text for `%(process_num)` with conversion `spec`. A width (`02d`, the
/// common `--port 80%(process_num)02d`) is kept by `printf`, so instance 1 gets port
/// 8001 as under supervisord, not 801; a spec other than flags, width and `d`/`s` is
/// not passed to the shell.
fn shell_process_num(spec: &str) -> String {
    let (digits, letter) = spec.split_at(spec.len().saturating_sub(1));
    let plain = digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    if plain || !matches!(letter, "d" | "s") {
        return SHELL_PROCESS_NUM.to_string();
    }
    format!("$(printf %{digits}{letter} \"$SUPERVISOR_PROCESS_NUM\")")
}

/// supervisord's `datatypes.boolean`.
fn boolean(ctx: &mut Ctx, fi: usize, e: &Entry) -> Option<bool> {
    match e.value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        v => {
            ctx.error(
                fi,
                e.line,
                format!(
                    "`{}` must be true or false (or yes/no, on/off, 1/0), found `{v}`",
                    e.key
                ),
            );
            None
        }
    }
}

fn integer(ctx: &mut Ctx, fi: usize, e: &Entry, min: i64) -> Option<i64> {
    match e.value.trim().parse::<i64>() {
        Ok(n) if n >= min => Some(n),
        _ => {
            ctx.error(
                fi,
                e.line,
                format!(
                    "`{}` must be an integer of at least {min}, found `{}`",
                    e.key, e.value
                ),
            );
            None
        }
    }
}

/// supervisord's `dict_of_key_value_pairs`: `K=V,K2="V, with commas"`.
fn environment(ctx: &mut Ctx, fi: usize, e: &Entry, text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut key = String::new();
    let mut val = String::new();
    let mut in_val = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    let flush = |key: &mut String,
                 val: &mut String,
                 in_val: &mut bool,
                 out: &mut Vec<(String, String)>,
                 ctx: &mut Ctx| {
        let k = key.trim().to_string();
        if !k.is_empty() || *in_val {
            if !*in_val || k.is_empty() {
                ctx.error(fi, e.line, format!("`environment`: `{k}` is not KEY=value (quote values that hold commas: KEY=\"a,b\")"));
            } else {
                out.push((k, std::mem::take(val)));
            }
        }
        key.clear();
        val.clear();
        *in_val = false;
    };
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => {
                if let Some(n) = chars.next() {
                    val.push(n);
                }
            }
            (Some(_), c) => val.push(c),
            (None, '"' | '\'') if in_val => quote = Some(c),
            (None, ',') => flush(&mut key, &mut val, &mut in_val, &mut out, ctx),
            (None, '=') if !in_val => in_val = true,
            (None, c) if in_val => {
                if !(c.is_whitespace() && val.is_empty()) {
                    val.push(c)
                }
            }
            (None, c) => key.push(c),
        }
    }
    if quote.is_some() {
        ctx.error(fi, e.line, "`environment`: a quoted value is not closed");
    }
    flush(&mut key, &mut val, &mut in_val, &mut out, ctx);
    // Unquoted values end at whitespace in shlex; trailing blanks are never meant.
    for (_, v) in &mut out {
        let t = v.trim_end().len();
        v.truncate(t);
    }
    out
}

/// Output: inherit (`/dev/stdout`, AUTO: runner has no log directory of its own), none,
/// or a file.
enum Log {
    Inherit,
    Null,
    File(String),
}

fn log_target(value: &str) -> Log {
    match value {
        "" | "/dev/stdout" | "/dev/stderr" | "/dev/fd/1" | "/dev/fd/2" | "/proc/self/fd/1"
        | "/proc/self/fd/2" => Log::Inherit,
        v if v.eq_ignore_ascii_case("auto") => Log::Inherit,
        v if v.eq_ignore_ascii_case("none") => Log::Null,
        v => Log::File(v.to_string()),
    }
}

struct Program {
    fi: usize,
    name: String,
    line: usize,
    priority: i64,
    lines: Vec<String>,
    skipped: bool,
}

fn convert(ctx: &mut Ctx, sections: &[(usize, Section)]) -> String {
    let mut global_env: Vec<(String, String)> = Vec::new();
    let mut groups: BTreeMap<String, String> = BTreeMap::new();
    for (fi, s) in sections {
        let fi = *fi;
        if s.name == "supervisord" {
            let mut ignored = Vec::new();
            for e in &s.entries {
                match e.key.as_str() {
                    "environment" => {
                        let here = here_of(&ctx.files[fi].clone());
                        let text = expand(ctx, fi, e, &BTreeMap::from([("here", here)]));
                        global_env = environment(ctx, fi, e, &text);
                    }
                    // runner always runs in the foreground.
                    "nodaemon" | "silent" => {}
                    k => ignored.push(format!("`{k}`")),
                }
            }
            if !ignored.is_empty() {
                ctx.warn(
                    fi,
                    s.line,
                    format!(
                        "[supervisord] {} ignored: runner logs to stderr, runs in the foreground and keeps no pid file",
                        ignored.join(", ")
                    ),
                );
            }
        } else if let Some(g) = s.name.strip_prefix("group:") {
            match s.get("programs") {
                Some(p) => {
                    for prog in p.value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        groups.insert(prog.to_string(), g.to_string());
                    }
                }
                None => ctx.error(fi, s.line, format!("[group:{g}] needs `programs = a,b`")),
            }
            if let Some(p) = s.get("priority") {
                ctx.warn(
                    fi,
                    p.line,
                    format!("[group:{g}] `priority` ignored; set it per program"),
                );
            }
        } else if !s.name.starts_with("program:") {
            let what = if s.name.starts_with("eventlistener:") {
                "event listeners are not supported"
            } else if s.name.starts_with("fcgi-program:") {
                "FastCGI programs are not supported; use `listen` to share a socket"
            } else if s.name.starts_with("rpcinterface:")
                || s.name.contains("http_server")
                || s.name == "supervisorctl"
            {
                "runner's control socket and `runner list`/`start`/`stop` take its place"
            } else {
                "not a section runner knows"
            };
            ctx.warn(fi, s.line, format!("[{}] ignored: {what}", s.name));
        }
    }

    let mut programs: Vec<Program> = Vec::new();
    for (fi, s) in sections {
        if let Some(name) = s.name.strip_prefix("program:") {
            let group = groups.get(name).cloned();
            programs.push(program(ctx, *fi, s, name, group.as_deref(), &global_env));
        }
    }
    let known: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
    for (prog, group) in &groups {
        if !known.contains(&prog.as_str())
            && !programs.iter().any(|p| p.name.starts_with(prog.as_str()))
        {
            let fi = 0;
            ctx.warn(
                fi,
                0,
                format!("[group:{group}] names `{prog}`, which has no [program:{prog}]"),
            );
        }
    }

    let mut out = String::new();
    let source = ctx
        .files
        .first()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{}",
        comment(&format!("converted from {source} by runner import"))
    );
    for w in &ctx.warnings {
        let _ = writeln!(out, "{}", comment(&format!("warning: {w}")));
    }
    // priority: lower starts first and stops last; each program waits for the programs
    // of the next lower priority to have started, which gives the same order.
    let mut levels: Vec<i64> = programs
        .iter()
        .filter(|p| !p.skipped)
        .map(|p| p.priority)
        .collect();
    levels.sort();
    levels.dedup();
    for p in &programs {
        out.push('\n');
        if p.skipped {
            for l in &p.lines {
                let _ = writeln!(out, "{l}");
            }
            continue;
        }
        let _ = writeln!(
            out,
            "{}",
            comment(&format!(
                "[program:{}] {}:{}",
                p.name,
                ctx.files[p.fi].display(),
                p.line
            ))
        );
        out.push_str("[[apps]]\n");
        for l in &p.lines {
            let _ = writeln!(out, "{l}");
        }
        let lower = levels.iter().rev().find(|&&l| l < p.priority);
        if let Some(&lower) = lower {
            let deps: Vec<String> = programs
                .iter()
                .filter(|q| !q.skipped && q.priority == lower)
                .map(|q| format!("{{ name = {}, condition = \"started\" }}", quoted(&q.name)))
                .collect();
            let _ = writeln!(
                out,
                "depends_on = [{}]  # priority {} after {lower}",
                deps.join(", "),
                p.priority
            );
        }
    }
    out
}

fn program(
    ctx: &mut Ctx,
    fi: usize,
    s: &Section,
    name: &str,
    group: Option<&str>,
    global_env: &[(String, String)],
) -> Program {
    let here = here_of(&ctx.files[fi].clone());
    let numprocs = s
        .get("numprocs")
        .and_then(|e| integer(ctx, fi, e, 1))
        .unwrap_or(1);
    let start = s
        .get("numprocs_start")
        .and_then(|e| integer(ctx, fi, e, 0))
        .unwrap_or(0);
    let mut vars: BTreeMap<&str, String> = BTreeMap::from([
        ("here", here),
        ("program_name", name.to_string()),
        ("group_name", group.unwrap_or(name).to_string()),
        ("numprocs", numprocs.to_string()),
        ("process_num", start.to_string()),
        (
            "host_node_name",
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
        ),
    ]);
    let mut lines: Vec<String> = Vec::new();
    let mut kv = |k: &str, v: String| lines.push(format!("{} = {v}", fmt_key(k)));

    // The name: with numprocs > 1 runner's instances take the place of the numbered
    // process names, so the app is named after the program.
    let process_name = match s.get("process_name") {
        Some(e) => expand(ctx, fi, e, &vars),
        None => name.to_string(),
    };
    if numprocs > 1 {
        let uses_num = s
            .get("process_name")
            .is_some_and(|e| e.value.contains("%(process_num)"));
        if !uses_num {
            let line = s.get("numprocs").map_or(s.line, |e| e.line);
            ctx.error(fi, line, format!("[program:{name}] `numprocs = {numprocs}` needs `process_name` to include `%(process_num)s`, as supervisord requires"));
        }
    }
    let app_name = if numprocs > 1 {
        name.to_string()
    } else {
        process_name
    };
    vars.insert("process_name", app_name.clone());
    kv("name", quoted(&app_name));
    if let Some(g) = group {
        kv("namespace", quoted(g));
    }

    // Options whose value may vary by process number are expanded once with
    // numprocs_start; the command gets the number from `increment_var` instead.
    let varies = |e: &Entry| numprocs > 1 && e.value.contains("%(process_num)");

    match s.get("command") {
        None => ctx.error(
            fi,
            s.line,
            format!("[program:{name}] has no `command`: add `command = /path/to/program args`"),
        ),
        Some(e) => {
            let text = if varies(e) {
                let mut v = vars.clone();
                v.insert("process_num", SHELL_PROCESS_NUM.to_string());
                expand(ctx, fi, e, &v)
            } else {
                expand(ctx, fi, e, &vars)
            };
            match shell_words::split(&text) {
                Ok(argv) if argv.is_empty() => ctx.error(fi, e.line, "`command` is empty"),
                Ok(argv) if varies(e) => {
                    // The number differs per instance: let a shell put it in.
                    kv("script", quoted("sh"));
                    kv("interpreter", quoted("none"));
                    let line = format!("exec {text}");
                    kv("args", format!("[\"-c\", {}]", quoted(&line)));
                    let _ = argv;
                }
                Ok(argv) => {
                    kv("script", quoted(&argv[0]));
                    kv("interpreter", quoted("none"));
                    if argv.len() > 1 {
                        let a: Vec<String> = argv[1..].iter().map(|w| quoted(w)).collect();
                        kv("args", format!("[{}]", a.join(", ")));
                    }
                }
                Err(err) => ctx.error(fi, e.line, format!("`command`: {err}")),
            }
        }
    }
    if numprocs > 1 {
        kv("instances", numprocs.to_string());
        kv("increment_var", quoted("SUPERVISOR_PROCESS_NUM"));
    }
    if let Some(e) = s.get("directory") {
        kv("cwd", quoted(&expand(ctx, fi, e, &vars)));
    }
    if let Some(e) = s.get("user") {
        kv("uid", quoted(&expand(ctx, fi, e, &vars)));
    }

    let mut env: Vec<(String, String)> = global_env.to_vec();
    if let Some(e) = s.get("environment") {
        let text = expand(ctx, fi, e, &vars);
        for (k, v) in environment(ctx, fi, e, &text) {
            env.retain(|(old, _)| old != &k);
            env.push((k, v));
        }
    }
    // What supervisord tells its children about themselves.
    env.push(("SUPERVISOR_ENABLED".into(), "1".into()));
    env.push(("SUPERVISOR_PROCESS_NAME".into(), app_name.clone()));
    env.push((
        "SUPERVISOR_GROUP_NAME".into(),
        group.unwrap_or(name).to_string(),
    ));
    if numprocs > 1 {
        env.push(("SUPERVISOR_PROCESS_NUM".into(), start.to_string()));
    }
    let pairs: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{} = {}", fmt_key(k), quoted(v)))
        .collect();
    kv("env", format!("{{ {} }}", pairs.join(", ")));

    // Restarts.
    let autorestart = s
        .get("autorestart")
        .map(|e| (e.value.to_ascii_lowercase(), e.line));
    let exitcodes: Vec<i64> = match s.get("exitcodes") {
        Some(e) => e
            .value
            .split(',')
            .filter_map(|c| match c.trim().parse::<i64>() {
                Ok(n) if (0..=255).contains(&n) => Some(n),
                _ => {
                    ctx.error(
                        fi,
                        e.line,
                        format!("`exitcodes`: `{}` is not an exit code (0-255)", c.trim()),
                    );
                    None
                }
            })
            .collect(),
        None => vec![0],
    };
    let codes: Vec<String> = exitcodes.iter().map(i64::to_string).collect();
    match autorestart.as_ref().map(|(v, l)| (v.as_str(), *l)) {
        None | Some(("unexpected", _)) => {
            kv("autorestart", "true".into());
            kv("stop_exit_codes", format!("[{}]", codes.join(", ")));
        }
        Some(("true" | "yes" | "on" | "1", _)) => kv("autorestart", "true".into()),
        Some(("false" | "no" | "off" | "0", _)) => {
            kv("autorestart", "false".into());
            if exitcodes != [0] {
                kv("stop_exit_codes", format!("[{}]", codes.join(", ")));
            }
        }
        Some((v, line)) => ctx.error(
            fi,
            line,
            format!("`autorestart` must be true, false or unexpected, found `{v}`"),
        ),
    }
    let startsecs = s
        .get("startsecs")
        .and_then(|e| integer(ctx, fi, e, 0))
        .unwrap_or(1);
    kv("min_uptime", quoted(&format!("{startsecs}s")));
    let retries = s
        .get("startretries")
        .and_then(|e| integer(ctx, fi, e, 0))
        .unwrap_or(3);
    kv("max_restarts", retries.to_string());

    // Stopping.
    let signal = match s.get("stopsignal") {
        Some(e) => match parse_signal(&e.value) {
            Some(sig) => sig.as_str().to_string(),
            None => {
                ctx.error(fi, e.line, format!("`stopsignal`: `{}` is not a signal name such as TERM, INT, QUIT, HUP, KILL, USR1 or USR2", e.value));
                "SIGTERM".into()
            }
        },
        None => "SIGTERM".into(),
    };
    kv("kill_signal", quoted(&signal));
    let wait = s
        .get("stopwaitsecs")
        .and_then(|e| integer(ctx, fi, e, 0))
        .unwrap_or(10);
    kv("kill_timeout", quoted(&format!("{wait}s")));
    let stopasgroup = s.get("stopasgroup").and_then(|e| boolean(ctx, fi, e));
    let killasgroup = s.get("killasgroup").and_then(|e| boolean(ctx, fi, e));
    match (stopasgroup, killasgroup) {
        (Some(true), _) | (_, Some(true)) => kv("treekill", "true".into()),
        (Some(false), _) | (_, Some(false)) => kv("treekill", "false".into()),
        (None, None) => {}
    }

    // Output.
    let redirect = s
        .get("redirect_stderr")
        .and_then(|e| boolean(ctx, fi, e))
        .unwrap_or(false);
    let out_log = s
        .get("stdout_logfile")
        .map(|e| log_target(&expand(ctx, fi, e, &vars)));
    let err_log = s
        .get("stderr_logfile")
        .map(|e| log_target(&expand(ctx, fi, e, &vars)));
    match &out_log {
        Some(Log::File(p)) => kv("out_file", quoted(p)),
        Some(Log::Null) => kv("out_file", quoted("/dev/null")),
        _ => {}
    }
    let err_target = if redirect {
        out_log.as_ref()
    } else {
        err_log.as_ref()
    };
    match err_target {
        Some(Log::File(p)) => kv("error_file", quoted(p)),
        Some(Log::Null) => kv("error_file", quoted("/dev/null")),
        _ => {}
    }

    let priority = s
        .get("priority")
        .and_then(|e| integer(ctx, fi, e, i64::MIN))
        .unwrap_or(999);

    for e in &s.entries {
        if PROGRAM_KEYS.contains(&e.key.as_str()) {
            continue;
        }
        // `maxbytes = 0` (the `/dev/stdout` recipe) and no backups are what runner does.
        if (e.key.ends_with("_maxbytes") || e.key.ends_with("_backups")) && e.value.trim() == "0" {
            continue;
        }
        let why = PROGRAM_IGNORED
            .iter()
            .find(|(k, _)| *k == e.key)
            .map(|(_, w)| *w);
        match why {
            Some(w) => ctx.warn(
                fi,
                e.line,
                format!("[program:{name}] `{}` ignored: {w}", e.key),
            ),
            None => {
                let hint =
                    crate::config::suggest::did_you_mean(&e.key, PROGRAM_KEYS.iter().copied());
                ctx.warn(fi, e.line, format!("[program:{name}] `{}` is not a supervisord program option runner knows; ignored{hint}", e.key))
            }
        }
    }

    let autostart = s
        .get("autostart")
        .and_then(|e| boolean(ctx, fi, e))
        .unwrap_or(true);
    let mut skipped = false;
    if !autostart {
        let line = s.get("autostart").map_or(s.line, |e| e.line);
        ctx.warn(fi, line, format!("[program:{name}] has `autostart = false`: left out (runner starts every app it supervises)"));
        lines = std::iter::once(comment(&format!(
            "[program:{name}] left out: autostart = false"
        )))
        .chain(lines.iter().map(|l| format!("# {l}")))
        .collect();
        skipped = true;
    }
    Program {
        fi,
        name: app_name,
        line: s.line,
        priority,
        lines,
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(text: &str) -> Result<Converted, Vec<String>> {
        let dir =
            std::env::temp_dir().join(format!("runner-sv-{}-{}", std::process::id(), text.len()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("supervisord.conf");
        std::fs::write(&path, text).unwrap();
        let env = |k: &str| (k == "HOME_DIR").then(|| "/home/x".to_string());
        convert_file(&path, &env).map_err(|e| {
            e.iter()
                .map(|d| format!("{}:{}", d.line, d.message))
                .collect()
        })
    }

    #[test]
    fn environment_values_may_be_quoted_and_hold_commas() {
        let text = "[program:a]\ncommand=/bin/true\nenvironment=A=\"x,y\",B='p q',C=plain, D=%(ENV_HOME_DIR)s\n";
        let c = conv(text).unwrap();
        assert!(
            c.toml
                .contains(r#"env = { A = "x,y", B = "p q", C = "plain", D = "/home/x","#),
            "{}",
            c.toml
        );
    }

    #[test]
    fn supervisord_defaults_are_written_out() {
        let c = conv("[program:a]\ncommand=/bin/app -x \"a b\"\n").unwrap();
        for want in [
            r#"script = "/bin/app""#,
            r#"args = ["-x", "a b"]"#,
            "autorestart = true",
            "stop_exit_codes = [0]",
            r#"kill_signal = "SIGTERM""#,
            r#"kill_timeout = "10s""#,
            "max_restarts = 3",
            r#"min_uptime = "1s""#,
        ] {
            assert!(c.toml.contains(want), "{want} in {}", c.toml);
        }
    }

    #[test]
    fn numprocs_become_instances_and_the_number_reaches_the_command() {
        let c = conv("[program:w]\ncommand=/bin/w --port 80%(process_num)02d\nprocess_name=%(program_name)s_%(process_num)d\nnumprocs=2\n").unwrap();
        assert!(c.toml.contains("instances = 2"), "{}", c.toml);
        assert!(c
            .toml
            .contains(r#"increment_var = "SUPERVISOR_PROCESS_NUM""#));
        assert!(
            c.toml.contains(
                r#"args = ["-c", 'exec /bin/w --port 80$(printf %02d "$SUPERVISOR_PROCESS_NUM")']"#
            ),
            "{}",
            c.toml
        );
        let c = conv("[program:w]\ncommand=/bin/w --id %(process_num)d\nprocess_name=w%(process_num)d\nnumprocs=2\n").unwrap();
        assert!(
            c.toml
                .contains(r#"args = ["-c", "exec /bin/w --id ${SUPERVISOR_PROCESS_NUM}"]"#),
            "{}",
            c.toml
        );
    }

    #[test]
    fn the_shell_keeps_a_process_num_width_and_nothing_else() {
        assert_eq!(
            shell_process_num("02d"),
            r#"$(printf %02d "$SUPERVISOR_PROCESS_NUM")"#
        );
        assert_eq!(
            shell_process_num("-3s"),
            r#"$(printf %-3s "$SUPERVISOR_PROCESS_NUM")"#
        );
        assert_eq!(shell_process_num("d"), "${SUPERVISOR_PROCESS_NUM}");
        assert_eq!(shell_process_num(";x"), "${SUPERVISOR_PROCESS_NUM}");
        assert_eq!(shell_process_num("2x"), "${SUPERVISOR_PROCESS_NUM}");
    }

    #[test]
    fn errors_name_the_line_key_and_remedy() {
        let e = conv(
            "[program:a]\ncommand=/bin/true\nautorestart=sometimes\nstopsignal=NOPE\nstartsecs=x\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(
            e[0].starts_with("3:`autorestart` must be true, false or unexpected"),
            "{e:#?}"
        );
        assert!(e[1].starts_with("4:`stopsignal`"), "{e:#?}");
        assert!(
            e[2].starts_with("5:`startsecs` must be an integer"),
            "{e:#?}"
        );
        let e = conv("[program:a]\nnumprocs=2\n").unwrap_err();
        assert!(e.iter().any(|m| m.contains("has no `command`")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("process_num")), "{e:#?}");
        let e = conv("[program:a]\ncommand=/bin/%(nope)s\n").unwrap_err();
        assert!(e[0].contains("`%(nope)` cannot be expanded"), "{e:#?}");
    }

    #[test]
    fn other_sections_and_keys_are_named_in_warnings() {
        let c = conv("[supervisord]\nnodaemon=true\nlogfile=/x\n[unix_http_server]\nfile=/s\n[rpcinterface:supervisor]\nx=y\n[eventlistener:e]\ncommand=/x\n[program:a]\ncommand=/bin/true\numask=022\nfoo=1\n").unwrap();
        let w = c.warnings.join("\n");
        for want in [
            "`logfile`",
            "[unix_http_server]",
            "[rpcinterface:supervisor]",
            "[eventlistener:e]",
            "`umask`",
            "`foo`",
        ] {
            assert!(w.contains(want), "{want} in {w}");
        }
    }

    #[test]
    fn wildcards_match_like_fnmatch() {
        assert!(wildcard("*.conf", "a.conf"));
        assert!(!wildcard("*.conf", "a.ini"));
        assert!(wildcard("a?c*", "abcdef"));
        assert!(!wildcard("a?c", "ac"));
    }
}
