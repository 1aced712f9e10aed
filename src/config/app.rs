//! One `[[apps]]` table → one `AppSpec`, with every problem in it reported.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::addr::{parse_listen, parse_ready_check, resolve_probe};
use super::dotenv;
use super::error::Diagnostic;
use super::keys::{self, AppKey};
use super::model::{self as m, AppSpec, DependCondition, ExecMode, HealthCheck};
use super::program::{self, ProgramError};
use super::suggest::did_you_mean;
use super::units::parse_signal;
use super::users::{self, CredError, Id};
use super::value::{integer, resolve, scalar_string, type_phrase, Ctx, Val};

/// An app as built, with what the cross-app checks (names, `depends_on`) need.
pub(crate) struct Built {
    pub spec: AppSpec,
    /// None when no name could be found (the error is already reported).
    pub name: Option<String>,
    /// Where to point for name problems: the `name` value, else the app's header.
    pub name_span: Range<usize>,
    pub deps: Vec<(String, Range<usize>)>,
    pub deps_span: Range<usize>,
}

/// `depends_on`: a name, or an array of names and `{ name = "x", condition = "..." }`
/// tables.
fn dependency_list(ctx: &mut Ctx, v: &Val) -> Vec<(String, Range<usize>, DependCondition)> {
    let items: Vec<&Val> = match v.get_ref() {
        DeValue::String(_) | DeValue::Table(_) => vec![v],
        DeValue::Array(items) => items.iter().collect(),
        _ => {
            ctx.type_error(
                "depends_on",
                "an array of app names or { name = \"...\", condition = \"...\" } tables",
                v,
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for item in items {
        match item.get_ref() {
            DeValue::String(s) => out.push((s.to_string(), item.span(), DependCondition::Online)),
            DeValue::Table(t) => {
                let mut name = None;
                let mut cond = DependCondition::Online;
                let mut entries: Vec<_> = t.iter().collect();
                entries.sort_by_key(|(k, _)| k.span().start);
                for (k, val) in entries {
                    match k.get_ref().as_ref() {
                        "name" => {
                            name = ctx
                                .nonempty("depends_on.name", val)
                                .map(|n| (n, val.span()))
                        }
                        "condition" => {
                            if let Some(w) = ctx.string("depends_on.condition", val) {
                                match DependCondition::parse(&w) {
                                    Some(c) => cond = c,
                                    None => {
                                        let hint = did_you_mean(
                                            &w,
                                            DependCondition::WORDS.iter().copied(),
                                        );
                                        ctx.error(
                                            &val.span(),
                                            format!(
                                                "unknown `depends_on` condition \"{w}\" \
                                                 (use started, online or completed_successfully){hint}"
                                            ),
                                        );
                                    }
                                }
                            }
                        }
                        other => {
                            let hint = did_you_mean(other, ["name", "condition"]);
                            ctx.error(
                                &k.span(),
                                format!("unknown key `{other}` in a `depends_on` entry{hint}"),
                            );
                        }
                    }
                }
                match name {
                    Some((n, span)) => out.push((n, span, cond)),
                    None => ctx.error(
                        &item.span(),
                        "a `depends_on` table needs `name`: { name = \"db\", condition = \"online\" }",
                    ),
                }
            }
            other => {
                let msg = format!(
                    "`depends_on` items must be app names or {{ name, condition }} tables, found {}",
                    type_phrase(other)
                );
                ctx.error(&item.span(), msg);
            }
        }
    }
    out
}

/// One key as found: where it is, how it was spelled, and its value.
struct Field<'t, 'i> {
    key_span: Range<usize>,
    written: &'t str,
    value: &'t Val<'i>,
}

/// Checks an app name or namespace: both are TARGETs on the command line, so they must
/// not look like `all` or an instance id, and `--only a,b` needs them free of commas.
fn check_target_name(what: &str, s: &str) -> Result<(), String> {
    if s == "all" {
        return Err(format!(
            "`all` cannot be used as {what}: it is the TARGET for every app"
        ));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{s}` cannot be used as {what}: numeric TARGETs are instance ids"
        ));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    {
        return Err(format!(
            "`{s}` cannot be used as {what}: it must not contain spaces, control characters or commas"
        ));
    }
    Ok(())
}

fn valid_var_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(['=', '\0'])
}

pub(crate) fn build(
    ctx: &mut Ctx,
    table: &DeTable,
    header: Range<usize>,
    index: usize,
    profile: Option<&str>,
) -> Built {
    let label = label(table, index);
    let (fields, profiles) = read_fields(ctx, table, &label);
    let mut spec = AppSpec::with_defaults(&label, PathBuf::new(), Vec::new(), ctx.dir.clone());
    let (name, name_span) = app_name(ctx, &fields, &header);
    if let Some(n) = &name {
        spec.name = n.clone();
    }
    let cwd_ok = place(ctx, &fields, &mut spec);
    // Before the environment: env files are read with the app's rights.
    identity(ctx, &fields, &mut spec);
    spec.env = environment(
        ctx,
        fields.get("env_file"),
        fields.get("env"),
        &profiles,
        profile,
        spec.credentials.as_ref(),
    );
    let script = script(ctx, &fields, &header, &label);
    program_and_argv(ctx, &fields, &mut spec, script, cwd_ok);
    instances_and_mode(ctx, &fields, &mut spec);
    readiness(ctx, &fields, &mut spec);
    spec.health_check = health_check(ctx, |k| fields.get(k));
    let (deps, deps_span) = dependencies(ctx, &fields, &mut spec, &header);
    stopping(ctx, &fields, &mut spec);
    restart_policy(ctx, &fields, &mut spec);
    output(ctx, &fields, &mut spec);
    schedules(ctx, &fields, &mut spec);
    Built {
        spec,
        name,
        name_span,
        deps,
        deps_span,
    }
}

/// The keys of one app table by canonical name, each set once.
struct Fields<'t, 'i>(BTreeMap<&'static str, Field<'t, 'i>>);

impl<'t, 'i> Fields<'t, 'i> {
    fn get(&self, k: &str) -> Option<&'t Val<'i>> {
        self.0.get(k).map(|f| f.value)
    }
}

/// Sorts the table's keys into known fields (reporting a key set twice under two
/// spellings), `env_*` profiles, PM2 options runner ignores, and unknown keys.
fn read_fields<'t, 'i>(
    ctx: &mut Ctx,
    table: &'t DeTable<'i>,
    label: &str,
) -> (Fields<'t, 'i>, Vec<(&'t str, &'t Val<'i>)>) {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut fields: BTreeMap<&'static str, Field> = BTreeMap::new();
    let mut profiles: Vec<(&str, &Val)> = Vec::new();
    for (k, v) in &entries {
        let written: &str = k.get_ref();
        match keys::classify(written) {
            AppKey::Known(canonical) => {
                if let Some(prev) = fields.get(canonical) {
                    let (line, col) = ctx.src.position(prev.key_span.start);
                    let msg = format!(
                        "`{written}` sets `{canonical}` again (already set by `{}` at {line}:{col})",
                        prev.written
                    );
                    ctx.error(&k.span(), msg);
                } else {
                    fields.insert(
                        canonical,
                        Field {
                            key_span: k.span(),
                            written,
                            value: v,
                        },
                    );
                }
            }
            AppKey::Profile(name) => profiles.push((name, v)),
            AppKey::Unsupported => ctx.warn(
                &k.span(),
                format!("`{written}` in app `{label}` is a PM2 option runner does not implement; ignored"),
            ),
            AppKey::Unknown => {
                let hint = did_you_mean(written, keys::app_spellings());
                ctx.error(&k.span(), format!("unknown key `{written}` in app `{label}`{hint}"));
            }
        }
    }
    (Fields(fields), profiles)
}

/// Explicit, else the script's stem; and where to point for name problems.
fn app_name(
    ctx: &mut Ctx,
    fields: &Fields,
    header: &Range<usize>,
) -> (Option<String>, Range<usize>) {
    let get = |k: &str| fields.get(k);
    let mut name = None;
    let mut name_span = header.clone();
    if let Some(v) = get("name") {
        name_span = v.span();
        name = ctx.nonempty("name", v);
    } else if let Some(DeValue::String(s)) = get("script").map(|v| v.get_ref()) {
        let n = program::default_name(s);
        if n.is_empty() {
            ctx.error(
                header,
                "this app has no `name` and none can be derived from `script`",
            );
        } else {
            name = Some(n);
        }
    }
    if let Some(n) = &name {
        if let Err(e) = check_target_name("an app name", n) {
            ctx.error(&name_span, e);
            name = None;
        }
    }
    (name, name_span)
}

/// `namespace` and `cwd`; false when `cwd` is unusable (the program is then not resolved).
fn place(ctx: &mut Ctx, fields: &Fields, spec: &mut AppSpec) -> bool {
    let get = |k: &str| fields.get(k);
    if let Some(v) = get("namespace") {
        if let Some(ns) = ctx.nonempty("namespace", v) {
            match check_target_name("a namespace", &ns) {
                Ok(()) => spec.namespace = ns,
                Err(e) => ctx.error(&v.span(), e),
            }
        }
    }

    let mut cwd_ok = true;
    if let Some(v) = get("cwd") {
        match ctx.path("cwd", v) {
            Some(p) if p.is_dir() => spec.cwd = p,
            Some(p) => {
                let why = if p.exists() {
                    "is not a directory"
                } else {
                    "does not exist"
                };
                ctx.error(&v.span(), format!("cwd `{}` {why}", p.display()));
                cwd_ok = false;
            }
            None => cwd_ok = false,
        }
    }

    cwd_ok
}

/// `uid` and `gid`.
fn identity(ctx: &mut Ctx, fields: &Fields, spec: &mut AppSpec) {
    let get = |k: &str| fields.get(k);
    let uid = get("uid").and_then(|v| id(ctx, "uid", v).map(|i| (i, v.span())));
    let gid = get("gid").and_then(|v| id(ctx, "gid", v).map(|i| (i, v.span())));
    if uid.is_some() || gid.is_some() {
        match users::resolve(uid.as_ref().map(|u| &u.0), gid.as_ref().map(|g| &g.0)) {
            Ok(c) => spec.credentials = c,
            Err(CredError::Uid(e)) => {
                if let Some((_, s)) = &uid {
                    ctx.error(s, format!("`uid`: {e}"))
                }
            }
            Err(CredError::Gid(e)) => {
                if let Some((_, s)) = &gid {
                    ctx.error(s, format!("`gid`: {e}"))
                }
            }
        }
    }
}

/// `script` and its span; None (reported) when it is missing or empty.
fn script(
    ctx: &mut Ctx,
    fields: &Fields,
    header: &Range<usize>,
    label: &str,
) -> Option<(String, Range<usize>)> {
    let get = |k: &str| fields.get(k);
    match get("script") {
        Some(v) => ctx.nonempty("script", v).map(|s| (s, v.span())),
        None => {
            ctx.error(header, format!("app `{label}` has no `script`"));
            None
        }
    }
}

/// The program to exec and its argv: `script`, `args`, `interpreter`, `interpreter_args`
/// (each checked even when the program cannot be resolved, so every error is reported).
fn program_and_argv(
    ctx: &mut Ctx,
    fields: &Fields,
    spec: &mut AppSpec,
    script: Option<(String, Range<usize>)>,
    cwd_ok: bool,
) {
    let get = |k: &str| fields.get(k);
    let args = get("args")
        .and_then(|v| ctx.words("args", v).map(Some))
        .unwrap_or(None);
    let args_bad = get("args").is_some() && args.is_none();
    let interpreter = get("interpreter").map(|v| (ctx.nonempty("interpreter", v), v.span()));
    let interpreter_args = match get("interpreter_args") {
        Some(v) => ctx.words("interpreter_args", v),
        None => Some(Vec::new()),
    };
    let interp_ok = interpreter.as_ref().is_none_or(|(i, _)| i.is_some());
    if let (Some((script, script_span)), Some(interpreter_args), true, true, true) =
        (&script, interpreter_args, interp_ok, cwd_ok, !args_bad)
    {
        let interp_text = interpreter.as_ref().and_then(|(i, _)| i.as_deref());
        let runner_path = std::env::var("PATH").ok();
        let path_var = spec.env.get("PATH").cloned().or(runner_path);
        let input = program::Input {
            script,
            args,
            interpreter: interp_text,
            interpreter_args: interpreter_args.clone(),
            cwd: &spec.cwd,
            path_var: path_var.as_deref(),
        };
        match program::resolve_program(&input) {
            Ok(p) => {
                spec.program = p.program;
                spec.argv = p.argv.into_iter().map(OsString::from).collect();
                spec.node_ipc = p.node_ipc;
                let interpreted = p.interpreted;
                if !interpreter_args.is_empty() && !interpreted {
                    if let Some(f) = fields.0.get("interpreter_args") {
                        ctx.warn(
                            &f.key_span,
                            format!(
                                "`{}` has no effect: `{script}` runs without an interpreter",
                                f.written
                            ),
                        );
                    }
                }
            }
            Err(ProgramError::Script(e)) => ctx.error(script_span, e),
            Err(ProgramError::Interpreter(e)) => {
                let span = interpreter
                    .as_ref()
                    .map_or(script_span.clone(), |(_, s)| s.clone());
                ctx.error(&span, e)
            }
        }
    }
}

/// `instances`, `listen`, `exec_mode`, `instance_var`, `increment_var`.
fn instances_and_mode(ctx: &mut Ctx, fields: &Fields, spec: &mut AppSpec) {
    let get = |k: &str| fields.get(k);
    if let Some(v) = get("instances") {
        if let Some(n) = instances(ctx, v) {
            spec.instances = n;
        }
    }
    if let Some(v) = get("listen") {
        spec.listen = listen(ctx, v);
    }
    spec.exec_mode = if spec.listen.is_empty() {
        ExecMode::Fork
    } else {
        ExecMode::Cluster
    };
    if let Some(v) = get("exec_mode") {
        match ctx.string("exec_mode", v).as_deref() {
            Some("fork" | "fork_mode") => spec.exec_mode = ExecMode::Fork,
            Some("cluster" | "cluster_mode") => spec.exec_mode = ExecMode::Cluster,
            Some(other) => ctx.error(
                &v.span(),
                format!("`exec_mode` must be \"fork\" or \"cluster\", found \"{other}\""),
            ),
            None => {}
        }
    }

    if let Some(v) = get("instance_var") {
        if let Some(s) = ctx.nonempty("instance_var", v) {
            if valid_var_name(&s) {
                spec.instance_var = s;
            } else {
                ctx.error(
                    &v.span(),
                    format!("`instance_var`: `{s}` is not a valid variable name"),
                );
            }
        }
    }
    if let Some(v) = get("increment_var") {
        if let Some(var) = ctx.nonempty("increment_var", v) {
            match spec.env.get(&var) {
                None => ctx.error(
                    &v.span(),
                    format!("`increment_var` names `{var}`, which is not set in this app's `env`"),
                ),
                Some(val) if val.trim().parse::<i64>().is_err() => ctx.error(
                    &v.span(),
                    format!("`increment_var` names `{var}`, whose value `{val}` is not an integer"),
                ),
                // The last instance's value must fit: an overflow would otherwise surface
                // only at spawn time, as a panic or a wrapped value.
                Some(val)
                    if val.trim().parse::<i64>().ok().and_then(|b| {
                        b.checked_add(i64::from(super::model::MAX_INSTANCES))
                    })
                    .is_none() =>
                {
                    ctx.error(
                        &v.span(),
                        format!(
                            "`increment_var` names `{var}`, whose value `{val}` is too large to add an instance number to"
                        ),
                    )
                }
                Some(_) => spec.increment_var = Some(var),
            }
        }
    }
}

/// `wait_ready`, `listen_timeout`, `ready_check`, `watchdog`.
fn readiness(ctx: &mut Ctx, fields: &Fields, spec: &mut AppSpec) {
    let get = |k: &str| fields.get(k);
    if let Some(b) = get("wait_ready").and_then(|v| ctx.boolean("wait_ready", v)) {
        spec.wait_ready = b;
    }
    if let Some(d) = get("listen_timeout").and_then(|v| ctx.duration("listen_timeout", v)) {
        spec.listen_timeout = d;
    }
    if let Some(v) = get("ready_check") {
        if let Some(s) = ctx.nonempty("ready_check", v) {
            match parse_ready_check(&s) {
                Ok(r) => {
                    // Resolved here, once: a lookup in the loop could stall PID 1 for
                    // seconds on every probe attempt.
                    match resolve_probe(&r) {
                        Ok(a) => spec.ready_addr = a,
                        Err(e) => ctx.error(&v.span(), format!("`ready_check`: {e}")),
                    }
                    spec.ready_check = Some(r);
                }
                Err(e) => ctx.error(&v.span(), format!("`ready_check`: {e}")),
            }
        }
    }
    if let Some(d) = get("watchdog").and_then(|v| ctx.duration("watchdog", v)) {
        // 0 disables, as systemd's WatchdogSec=0 does.
        spec.watchdog = (!d.is_zero()).then_some(d);
    }
}

/// `depends_on` (checked across apps by the caller) and `critical`.
fn dependencies(
    ctx: &mut Ctx,
    fields: &Fields,
    spec: &mut AppSpec,
    header: &Range<usize>,
) -> (Vec<(String, Range<usize>)>, Range<usize>) {
    let get = |k: &str| fields.get(k);
    let mut deps = Vec::new();
    let mut deps_span = header.clone();
    if let Some(v) = get("depends_on") {
        deps_span = v.span();
        let mut seen = HashSet::new();
        for (d, span, cond) in dependency_list(ctx, v) {
            if seen.insert(d.clone()) {
                spec.depends_on.push(d.clone());
                if cond != DependCondition::Online {
                    spec.depends_conditions.insert(d.clone(), cond);
                }
                deps.push((d, span));
            }
        }
    }
    if let Some(b) = get("critical").and_then(|v| ctx.boolean("critical", v)) {
        spec.critical = b;
    }

    (deps, deps_span)
}

/// `kill_signal`, `kill_timeout`, `treekill`.
fn stopping(ctx: &mut Ctx, fields: &Fields, spec: &mut AppSpec) {
    let get = |k: &str| fields.get(k);
    if let Some(v) = get("kill_signal") {
        let text = match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Integer(i) => Some(i.to_string()),
            _ => {
                ctx.type_error(
                    "kill_signal",
                    "a signal name like \"SIGTERM\" or a number",
                    v,
                );
                None
            }
        };
        if let Some(t) = text {
            match parse_signal(&t) {
                Some(sig) => spec.kill_signal = sig,
                None => {
                    let names = nix::sys::signal::Signal::iterator().map(|s| s.as_str());
                    let hint = super::suggest::did_you_mean(&t.to_ascii_uppercase(), names);
                    ctx.error(
                        &v.span(),
                        format!("`kill_signal`: `{t}` is not a signal{hint}"),
                    )
                }
            }
        }
    }
    if let Some(d) = get("kill_timeout").and_then(|v| ctx.duration("kill_timeout", v)) {
        spec.kill_timeout = d;
    }
    if let Some(b) = get("treekill").and_then(|v| ctx.boolean("treekill", v)) {
        spec.treekill = b;
    }
}

/// `autorestart`, `stop_exit_codes`, `min_uptime`, `max_restarts`, the delays and
/// `max_memory_restart`.
fn restart_policy(ctx: &mut Ctx, fields: &Fields, spec: &mut AppSpec) {
    let get = |k: &str| fields.get(k);
    if let Some(b) = get("autorestart").and_then(|v| ctx.boolean("autorestart", v)) {
        spec.autorestart = b;
    }
    if let Some(v) = get("stop_exit_codes") {
        spec.stop_exit_codes = exit_codes(ctx, v);
    }
    if let Some(d) = get("min_uptime").and_then(|v| ctx.duration("min_uptime", v)) {
        spec.min_uptime = d;
    }
    if let Some(n) =
        get("max_restarts").and_then(|v| ctx.int_in("max_restarts", v, 0, i64::from(u32::MAX)))
    {
        spec.max_restarts = n as u32;
    }
    if let Some(d) = get("restart_delay").and_then(|v| ctx.duration("restart_delay", v)) {
        spec.restart_delay = d;
    }
    if let Some(d) =
        get("exp_backoff_restart_delay").and_then(|v| ctx.duration("exp_backoff_restart_delay", v))
    {
        // 0 would back off by nothing forever: treat it as "off", as PM2 does.
        spec.exp_backoff_restart_delay = (!d.is_zero()).then_some(d);
    }
    if let Some(v) = get("max_memory_restart") {
        match ctx.size("max_memory_restart", v) {
            Some(0) => ctx.error(&v.span(), "`max_memory_restart` must be greater than 0"),
            Some(n) => spec.max_memory_restart = Some(n),
            None => {}
        }
    }
}

/// Log files and how lines are decorated and merged.
fn output(ctx: &mut Ctx, fields: &Fields, spec: &mut AppSpec) {
    let get = |k: &str| fields.get(k);
    spec.out_file =
        get("out_file").and_then(|v| log_path(ctx, fields_written(fields, "out_file"), v));
    spec.error_file =
        get("error_file").and_then(|v| log_path(ctx, fields_written(fields, "error_file"), v));
    if let Some(b) = get("log_prefix").and_then(|v| ctx.boolean("log_prefix", v)) {
        spec.log_prefix = b;
    }
    if let Some(b) = get("time").and_then(|v| ctx.boolean("time", v)) {
        spec.time = b;
    }
    if let Some(v) = get("log_date_format") {
        spec.log_date_format = ctx.nonempty("log_date_format", v);
    }
    // PM2's default (lib/Common.js verifyConfs): one file for all only in fork mode with
    // `instances` unset, 0 or "max"; any other count, or cluster mode, splits per process.
    let counted = get("instances").is_some_and(pm2_counts_instances);
    spec.merge_logs = spec.exec_mode != ExecMode::Cluster && !counted;
    if let Some(b) = get("merge_logs").and_then(|v| ctx.boolean("merge_logs", v)) {
        spec.merge_logs = b;
    }
}

/// Restarts on a schedule (`cron_restart`) and on file changes (`watch`).
fn schedules(ctx: &mut Ctx, fields: &Fields, spec: &mut AppSpec) {
    let get = |k: &str| fields.get(k);
    if let Some(v) = get("cron_restart") {
        spec.cron_restart = cron_restart(ctx, v);
    }
    spec.watch = watch(
        ctx,
        spec,
        get("watch"),
        get("ignore_watch"),
        get("watch_delay"),
    );
}

fn fields_written<'a>(fields: &Fields<'a, '_>, k: &'static str) -> &'a str {
    fields.0.get(k).map_or(k, |f| f.written)
}

/// What to call the app in messages before its name is validated.
fn label(table: &DeTable, index: usize) -> String {
    let find = |k: &str| {
        table
            .iter()
            .find(|(key, _)| key.get_ref() == k)
            .and_then(|(_, v)| match v.get_ref() {
                DeValue::String(s) if !s.is_empty() => Some(s.to_string()),
                _ => None,
            })
    };
    find("name")
        .or_else(|| find("script").map(|s| program::default_name(&s)))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("#{}", index + 1))
}

/// `env_file`, then `env`, then the selected `env_<profile>`; later ones win.
/// Every profile is checked, selected or not, so a typo shows before it is needed.
fn environment(
    ctx: &mut Ctx,
    env_file: Option<&Val>,
    env: Option<&Val>,
    profiles: &[(&str, &Val)],
    selected: Option<&str>,
    creds: Option<&super::model::Credentials>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(v) = env_file {
        for (p, span) in ctx.string_list("env_file", v).unwrap_or_default() {
            if p.is_empty() || p.contains('\0') {
                ctx.error(&span, "`env_file` paths must not be empty or contain NUL");
                continue;
            }
            let path = resolve(&ctx.dir, Path::new(&p));
            let text = match crate::as_user::read(&path, creds) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => {
                    ctx.error(
                        &span,
                        format!("cannot read env_file `{}`: {e}", path.display()),
                    );
                    continue;
                }
            };
            let (vars, errors) = dotenv::parse(&text);
            for e in errors {
                ctx.errors.push(Diagnostic {
                    file: path.clone(),
                    line: e.line,
                    col: 1,
                    message: e.message,
                });
            }
            for (k, val) in vars {
                if val.contains('\0') {
                    continue;
                }
                out.insert(k, val);
            }
        }
    }
    if let Some(v) = env {
        out.extend(env_table(ctx, "env", v));
    }
    for (name, v) in profiles {
        let vars = env_table(ctx, &format!("env_{name}"), v);
        if selected == Some(*name) {
            out.extend(vars);
        }
    }
    out
}

fn env_table(ctx: &mut Ctx, key: &str, v: &Val) -> Vec<(String, String)> {
    let DeValue::Table(t) = v.get_ref() else {
        ctx.type_error(key, "a table of variables", v);
        return Vec::new();
    };
    let mut entries: Vec<_> = t.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = Vec::new();
    for (k, val) in entries {
        let name: &str = k.get_ref();
        if !valid_var_name(name) {
            ctx.error(
                &k.span(),
                format!("`{key}`: `{name}` is not a valid variable name"),
            );
            continue;
        }
        match scalar_string(val.get_ref()) {
            Some(s) if s.contains('\0') => ctx.error(
                &val.span(),
                format!("`{key}.{name}` must not contain a NUL character"),
            ),
            Some(s) => out.push((name.to_string(), s)),
            None => {
                let msg = format!(
                    "`{key}.{name}` must be a string, number or boolean, found {}",
                    type_phrase(val.get_ref())
                );
                ctx.error(&val.span(), msg);
            }
        }
    }
    out
}

fn instances(ctx: &mut Ctx, v: &Val) -> Option<u32> {
    let expected = "`instances` must be an integer or \"max\"";
    let n: i64 = match v.get_ref() {
        DeValue::Integer(i) => match integer(i) {
            Some(n) => n,
            None => {
                ctx.error(
                    &v.span(),
                    format!("{expected}, found {i}, which is too large"),
                );
                return None;
            }
        },
        DeValue::String(s) if s.trim().eq_ignore_ascii_case("max") => 0,
        DeValue::String(s) => match s.trim().parse::<i64>() {
            Ok(n) => n,
            Err(_) => {
                ctx.error(&v.span(), format!("{expected}, found \"{s}\""));
                return None;
            }
        },
        other => {
            ctx.error(
                &v.span(),
                format!("{expected}, found {}", type_phrase(other)),
            );
            return None;
        }
    };
    if n > i64::from(u32::MAX) {
        ctx.error(
            &v.span(),
            format!("{expected}, found {n}, which is too large"),
        );
        return None;
    }
    if n > i64::from(super::model::MAX_INSTANCES) {
        ctx.error(
            &v.span(),
            format!(
                "`instances` is {n}, more than the limit of {} per app",
                super::model::MAX_INSTANCES
            ),
        );
        return None;
    }
    let cpus = if n <= 0 { ctx.cpus() } else { 1 };
    Some(super::cpus::instances_for(n, cpus))
}

/// Whether PM2 sees a non-zero `instances` here (`parseInt` of a string; "max" is 0).
fn pm2_counts_instances(v: &Val) -> bool {
    match v.get_ref() {
        DeValue::Integer(i) => integer(i) != Some(0),
        DeValue::String(s) => s.trim().parse::<i64>().is_ok_and(|n| n != 0),
        _ => false,
    }
}

fn listen(ctx: &mut Ctx, v: &Val) -> Vec<super::model::ListenAddr> {
    let one = [v.clone()];
    let items: &[Val] = match v.get_ref() {
        DeValue::Array(items) => items,
        DeValue::String(_) | DeValue::Integer(_) => &one,
        _ => {
            ctx.type_error("listen", "an array of addresses like [\"8080\"]", v);
            return Vec::new();
        }
    };
    let dir = ctx.dir.clone();
    let mut out = Vec::new();
    for item in items {
        let text = match item.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(i) => i.to_string(),
            other => {
                let msg = format!(
                    "`listen` entries must be strings like \"8080\", found {}",
                    type_phrase(other)
                );
                ctx.error(&item.span(), msg);
                continue;
            }
        };
        match parse_listen(&text, &dir) {
            Ok(addr) if out.contains(&addr) => {
                ctx.error(&item.span(), format!("`listen`: `{addr}` is listed twice"))
            }
            Ok(addr) => out.push(addr),
            Err(e) => ctx.error(&item.span(), format!("`listen`: {e}")),
        }
    }
    out
}

fn exit_codes(ctx: &mut Ctx, v: &Val) -> Vec<i32> {
    let one = [v.clone()];
    let items: &[Val] = match v.get_ref() {
        DeValue::Array(items) => items,
        DeValue::Integer(_) => &one,
        _ => {
            ctx.type_error("stop_exit_codes", "an array of integers", v);
            return Vec::new();
        }
    };
    items
        .iter()
        .filter_map(|item| {
            ctx.int_in("stop_exit_codes", item, 0, 255)
                .map(|n| n as i32)
        })
        .collect()
}

fn id(ctx: &mut Ctx, key: &str, v: &Val) -> Option<Id> {
    match v.get_ref() {
        DeValue::Integer(_) => ctx
            .int_in(key, v, 0, i64::from(u32::MAX - 1))
            .map(|n| Id::Number(n as u32)),
        DeValue::String(_) => ctx.nonempty(key, v).map(|s| Id::from_text(&s)),
        _ => {
            ctx.type_error(key, "a name or a number", v);
            None
        }
    }
}

/// A log file path: its directory must exist, since runner creates only the file.
fn log_path(ctx: &mut Ctx, key: &str, v: &Val) -> Option<PathBuf> {
    let p = ctx.path(key, v)?;
    if p.is_dir() {
        ctx.error(
            &v.span(),
            format!("`{key}` `{}` is a directory", p.display()),
        );
        return None;
    }
    match p.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            ctx.error(
                &v.span(),
                format!("`{key}`: directory `{}` does not exist", dir.display()),
            );
            None
        }
        _ => Some(p),
    }
}

/// `health_check` with `health_interval`, `health_timeout` and `health_failures`; the
/// timing keys without a check are reported, as they would silently do nothing.
fn health_check<'v, 'i: 'v>(
    ctx: &mut Ctx,
    get: impl Fn(&str) -> Option<&'v Val<'i>>,
) -> Option<HealthCheck> {
    let mut check = HealthCheck {
        probe: m::ReadyCheck::Exec(String::new()),
        addr: None,
        interval: m::HEALTH_INTERVAL,
        timeout: m::HEALTH_TIMEOUT,
        failures: m::HEALTH_FAILURES,
    };
    let positive = |ctx: &mut Ctx, key: &str, v: &Val| -> Option<std::time::Duration> {
        let d = ctx.duration(key, v)?;
        if d.is_zero() {
            ctx.error(&v.span(), format!("`{key}` must be longer than 0"));
            return None;
        }
        Some(d)
    };
    if let Some(v) = get("health_interval") {
        check.interval = positive(ctx, "health_interval", v).unwrap_or(check.interval);
    }
    if let Some(v) = get("health_timeout") {
        check.timeout = positive(ctx, "health_timeout", v).unwrap_or(check.timeout);
    }
    if let Some(v) = get("health_failures") {
        if let Some(n) = ctx.int_in("health_failures", v, 1, 1_000_000) {
            check.failures = n as u32;
        }
    }
    let Some(v) = get("health_check") else {
        for key in ["health_interval", "health_timeout", "health_failures"] {
            if let Some(v) = get(key) {
                ctx.error(
                    &v.span(),
                    format!("`{key}` needs a `health_check` in the same app"),
                );
            }
        }
        return None;
    };
    let s = ctx.nonempty("health_check", v)?;
    match parse_ready_check(&s).and_then(|p| resolve_probe(&p).map(|a| (p, a))) {
        Ok((probe, addr)) => {
            check.probe = probe;
            check.addr = addr;
            Some(check)
        }
        Err(e) => {
            ctx.error(&v.span(), format!("`health_check`: {e}"));
            None
        }
    }
}

/// `cron_restart`: an expression, or PM2's `0`/`"0"` for none.
fn cron_restart(ctx: &mut Ctx, v: &Val) -> Option<crate::cron::CronExpr> {
    let text = match v.get_ref() {
        DeValue::String(s) => s.to_string(),
        DeValue::Integer(i) if integer(i) == Some(0) => return None,
        _ => {
            ctx.type_error("cron_restart", "a cron expression like \"0 3 * * *\"", v);
            return None;
        }
    };
    if text.trim() == "0" {
        return None;
    }
    match crate::cron::CronExpr::parse(&text) {
        Ok(e) => Some(e),
        Err(e) => {
            ctx.error(&v.span(), format!("`cron_restart`: `{text}`: {e}"));
            None
        }
    }
}

/// `watch` (`true`, a path or a list of paths, relative to the app's cwd), `ignore_watch`
/// and `watch_delay`. The latter two alone do nothing, as in PM2.
fn watch(
    ctx: &mut Ctx,
    spec: &AppSpec,
    watch: Option<&Val>,
    ignore: Option<&Val>,
    delay: Option<&Val>,
) -> Option<super::model::WatchSpec> {
    let ignore = ignore
        .and_then(|v| ctx.string_list("ignore_watch", v))
        .unwrap_or_default()
        .into_iter()
        .map(|(s, _)| s)
        .filter(|s| !s.is_empty())
        .collect();
    let delay = delay
        .and_then(|v| ctx.duration("watch_delay", v))
        .unwrap_or(super::model::WATCH_DELAY);
    let v = watch?;
    let paths = match v.get_ref() {
        DeValue::Boolean(false) => return None,
        DeValue::Boolean(true) => vec![spec.cwd.clone()],
        DeValue::Array(items) if items.is_empty() => vec![spec.cwd.clone()],
        DeValue::String(_) | DeValue::Array(_) => {
            let mut out = Vec::new();
            for (p, span) in ctx.string_list("watch", v)? {
                if p.is_empty() || p.contains('\0') {
                    ctx.error(&span, "`watch` paths must not be empty or contain NUL");
                    continue;
                }
                let path = resolve(&spec.cwd, Path::new(&p));
                if !path.exists() {
                    // PM2 (chokidar) loads such a file and watches nothing there.
                    ctx.warn(
                        &span,
                        format!("`watch`: `{}` does not exist; not watched", path.display()),
                    );
                    continue;
                }
                out.push(path);
            }
            out
        }
        _ => {
            ctx.type_error("watch", "true, false, a path or an array of paths", v);
            return None;
        }
    };
    if paths.is_empty() {
        return None;
    }
    let own_files = [&spec.out_file, &spec.error_file]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    Some(super::model::WatchSpec {
        paths,
        ignore,
        own_files,
        delay,
    })
}
