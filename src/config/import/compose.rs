//! A `process-compose.yaml` → ecosystem TOML text, which `load` then reads as any
//! ecosystem file. Used by `runner process-compose.yaml` and `runner import`.
//!
//! Names and defaults follow process-compose's schema (`src/types/process.go`,
//! `src/health/probe.go`): a process's `availability.restart` defaults to `no`, its
//! `shutdown` to signal 15 with a 10 s timeout, probes to a 10 s period, 1 s timeout and 3
//! failures, `backoff_seconds` to 1. Commands run with `sh -c` (process-compose uses
//! `bash -c`, which slim images lack). What runner does not carry over is named in a
//! warning, never dropped silently.

use std::fmt::Write;
use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use super::toml_text::{comment, fmt_key, quoted};
use super::Converted;
use crate::config::error::Diagnostic;
use crate::config::keys;
use crate::config::model::DependCondition;

/// Keys of a process that runner carries over.
const PROCESS_KEYS: &[&str] = &[
    "command",
    "entrypoint",
    "working_dir",
    "environment",
    "depends_on",
    "readiness_probe",
    "liveness_probe",
    "availability",
    "shutdown",
    "replicas",
    "namespace",
    "disabled",
    "log_location",
    "description",
];

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<Diagnostic>,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    /// The line of `key` inside process `proc` (or of the process itself): serde's YAML
    /// values carry no positions, and a line number is what makes a message useful.
    fn line_of(&self, proc: &str, key: Option<&str>) -> usize {
        let mut in_processes = false;
        let mut proc_line = None;
        let mut proc_indent = 0;
        for (i, l) in self.text.lines().enumerate() {
            let indent = l.len() - l.trim_start().len();
            let t = l.trim_start();
            if indent == 0 && !t.is_empty() && !t.starts_with('#') {
                in_processes = t.starts_with("processes:");
                if proc_line.is_some() {
                    break;
                }
                continue;
            }
            if !in_processes {
                continue;
            }
            match proc_line {
                None => {
                    let name = t.trim_start_matches(['"', '\'']);
                    if name.starts_with(proc)
                        && name[proc.len()..]
                            .trim_start_matches(['"', '\''])
                            .starts_with(':')
                    {
                        proc_line = Some(i + 1);
                        proc_indent = indent;
                        if key.is_none() {
                            return i + 1;
                        }
                    }
                }
                Some(_) => {
                    if !t.is_empty() && !t.starts_with('#') && indent <= proc_indent {
                        break;
                    }
                    if let Some(k) = key {
                        if t.starts_with(k) && t[k.len()..].starts_with(':') {
                            return i + 1;
                        }
                    }
                }
            }
        }
        proc_line.unwrap_or(0)
    }

    fn error(&mut self, proc: &str, key: Option<&str>, message: impl Into<String>) {
        let line = self.line_of(proc, key);
        self.errors.push(Diagnostic {
            file: self.path.to_path_buf(),
            line,
            col: if line == 0 { 0 } else { 1 },
            message: message.into(),
        });
    }

    fn warn(&mut self, proc: &str, key: Option<&str>, message: impl Into<String>) {
        let line = self.line_of(proc, key);
        let m = message.into();
        self.warnings.push(if line == 0 {
            format!("{}: {m}", self.path.display())
        } else {
            format!("{}:{line}: {m}", self.path.display())
        });
    }
}

/// Reads `path` and converts it.
pub fn to_toml(path: &Path) -> Result<Converted, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            message: format!("cannot read: {e}"),
        }]
    })?;
    convert_text(path, &text)
}

fn convert_text(path: &Path, text: &str) -> Result<Converted, Vec<Diagnostic>> {
    let mut doc: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, col) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        vec![Diagnostic {
            file: path.to_path_buf(),
            line,
            col,
            message: format!("invalid YAML: {e}"),
        }]
    })?;
    // `<<: *defaults` is common in compose files.
    let _ = doc.apply_merge();
    let mut ctx = Ctx {
        path,
        text,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let toml = convert(&mut ctx, &doc);
    Converted::or_errors(toml, ctx.warnings, ctx.errors)
}

fn str_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get<'v>(m: &'v Mapping, key: &str) -> Option<&'v Value> {
    m.get(key)
}

/// `["K=V", ...]` (process-compose's form) or a `K: V` map.
fn env_list(ctx: &mut Ctx, proc: &str, v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match v {
        Value::Sequence(items) => {
            for item in items {
                match str_of(item).as_deref().and_then(|s| s.split_once('=')) {
                    Some((k, v)) if !k.trim().is_empty() => {
                        out.push((k.trim().to_string(), v.to_string()))
                    }
                    _ => ctx.error(
                        proc,
                        Some("environment"),
                        format!(
                            "`environment` items must be \"KEY=value\", found {}",
                            show(item)
                        ),
                    ),
                }
            }
        }
        Value::Mapping(m) => {
            for (k, v) in m {
                match (str_of(k), str_of(v)) {
                    (Some(k), Some(v)) => out.push((k, v)),
                    _ => ctx.error(
                        proc,
                        Some("environment"),
                        "`environment` values must be text",
                    ),
                }
            }
        }
        Value::Null => {}
        other => ctx.error(
            proc,
            Some("environment"),
            format!(
                "`environment` must be a list of \"KEY=value\", found {}",
                show(other)
            ),
        ),
    }
    out
}

fn show(v: &Value) -> String {
    serde_yaml_ng::to_string(v)
        .map(|s| s.trim().replace('\n', " "))
        .unwrap_or_else(|_| "?".into())
}

fn seconds(ctx: &mut Ctx, proc: &str, key: &str, v: Option<&Value>) -> Option<f64> {
    let v = v?;
    match v.as_f64() {
        Some(n) if n >= 0.0 => Some(n),
        _ => {
            ctx.error(
                proc,
                Some(key),
                format!("`{key}` must be a number of seconds, found {}", show(v)),
            );
            None
        }
    }
}

fn secs_text(s: f64) -> String {
    quoted(&format!("{}ms", (s * 1000.0).round() as u64))
}

/// A probe as a runner check string: `exec:` or `http://`.
fn probe(ctx: &mut Ctx, proc: &str, key: &str, m: &Mapping) -> Option<String> {
    if let Some(Value::Mapping(e)) = get(m, "exec") {
        let Some(cmd) = get(e, "command").and_then(str_of) else {
            ctx.error(
                proc,
                Some("command"),
                format!("`{key}.exec` needs `command`"),
            );
            return None;
        };
        if let Some(dir) = get(e, "working_dir").and_then(str_of) {
            return Some(format!(
                "exec:cd {} && {cmd}",
                crate::config::shell_words::join(&[dir])
            ));
        }
        return Some(format!("exec:{cmd}"));
    }
    if let Some(Value::Mapping(h)) = get(m, "http_get") {
        let host = get(h, "host")
            .and_then(str_of)
            .unwrap_or_else(|| "127.0.0.1".into());
        let scheme = get(h, "scheme")
            .and_then(str_of)
            .unwrap_or_else(|| "http".into());
        let path = get(h, "path")
            .and_then(str_of)
            .unwrap_or_else(|| "/".into());
        let Some(port) = get(h, "port").and_then(str_of) else {
            ctx.error(
                proc,
                Some("http_get"),
                format!("`{key}.http_get` needs `port`"),
            );
            return None;
        };
        if scheme != "http" {
            ctx.error(proc, Some("scheme"), format!("`{key}.http_get.scheme` `{scheme}`: runner probes plain http only; use an exec probe with curl"));
            return None;
        }
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        return Some(format!("http://{host}:{port}{path}"));
    }
    ctx.error(
        proc,
        Some(key),
        format!("`{key}` needs `exec` or `http_get`"),
    );
    None
}

fn convert(ctx: &mut Ctx, doc: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        comment(&format!(
            "converted from {} by runner import",
            ctx.path.display()
        ))
    );
    let Value::Mapping(top) = doc else {
        ctx.error(
            "",
            None,
            "a process-compose file must be a mapping with `processes:`",
        );
        return out;
    };
    let mut global_env = Vec::new();
    for (k, v) in top {
        let key = str_of(k).unwrap_or_default();
        match key.as_str() {
            "processes" | "version" => {}
            "environment" => global_env = env_list(ctx, "", v),
            "is_strict" | "is_tui_disabled" | "disable_env_expansion" => {}
            other => ctx.warn(
                "",
                None,
                format!("top-level `{other}` ignored: runner has no equivalent"),
            ),
        }
    }
    let Some(Value::Mapping(procs)) = get(top, "processes") else {
        let hint = if get(top, "apps").is_some() {
            " (this looks like a PM2 YAML file: convert it to JSON, same keys)"
        } else {
            ""
        };
        ctx.error(
            "",
            None,
            format!("no `processes:` mapping: nothing to run{hint}"),
        );
        return out;
    };
    let mut body = String::new();
    for (k, v) in procs {
        let Some(name) = str_of(k) else { continue };
        let Value::Mapping(p) = v else {
            ctx.error(&name, None, format!("process `{name}` must be a mapping"));
            continue;
        };
        body.push('\n');
        process(ctx, &name, p, &global_env, &mut body);
    }
    for w in &ctx.warnings {
        let _ = writeln!(out, "{}", comment(&format!("warning: {w}")));
    }
    out.push_str(&body);
    out
}

fn process(
    ctx: &mut Ctx,
    name: &str,
    p: &Mapping,
    global_env: &[(String, String)],
    out: &mut String,
) {
    let mut lines: Vec<String> = Vec::new();
    let mut kv = |k: &str, v: String| lines.push(format!("{} = {v}", fmt_key(k)));
    kv("name", quoted(name));
    if let Some(ns) = get(p, "namespace").and_then(str_of) {
        kv("namespace", quoted(&ns));
    }
    match (get(p, "command").and_then(str_of), get(p, "entrypoint")) {
        (_, Some(Value::Sequence(words))) => {
            let mut argv: Vec<String> = words.iter().filter_map(str_of).collect();
            if let Some(cmd) = get(p, "command").and_then(str_of) {
                argv.push(cmd);
            }
            if argv.is_empty() {
                ctx.error(name, Some("entrypoint"), "`entrypoint` is empty");
            } else {
                kv("script", quoted(&argv[0]));
                kv("interpreter", quoted("none"));
                let a: Vec<String> = argv[1..].iter().map(|w| quoted(w)).collect();
                kv("args", format!("[{}]", a.join(", ")));
            }
        }
        (Some(cmd), _) => {
            kv("script", quoted("sh"));
            kv("interpreter", quoted("none"));
            kv("args", format!("[\"-c\", {}]", quoted(&cmd)));
        }
        (None, _) => ctx.error(
            name,
            None,
            format!("process `{name}` has no `command`: add `command: \"./server --port 8080\"`"),
        ),
    }
    if let Some(d) = get(p, "working_dir").and_then(str_of) {
        kv("cwd", quoted(&d));
    }
    let replicas = match get(p, "replicas") {
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => n,
            _ => {
                ctx.error(
                    name,
                    Some("replicas"),
                    format!("`replicas` must be a positive integer, found {}", show(v)),
                );
                1
            }
        },
        None => 1,
    };
    if replicas > 1 {
        kv("instances", replicas.to_string());
        // process-compose tells each replica its number.
        kv("instance_var", quoted("PC_REPLICA_NUM"));
    }
    let mut env: Vec<(String, String)> = global_env.to_vec();
    if let Some(v) = get(p, "environment") {
        for (k, val) in env_list(ctx, name, v) {
            env.retain(|(o, _)| o != &k);
            env.push((k, val));
        }
    }
    env.push(("PC_PROC_NAME".into(), name.into()));
    let pairs: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{} = {}", fmt_key(k), quoted(v)))
        .collect();
    kv("env", format!("{{ {} }}", pairs.join(", ")));

    // depends_on: { other: { condition: process_completed_successfully } }
    if let Some(v) = get(p, "depends_on") {
        let mut deps = Vec::new();
        match v {
            Value::Mapping(m) => {
                for (dk, dv) in m {
                    let Some(dep) = str_of(dk) else { continue };
                    let cond_word = match dv {
                        Value::Mapping(c) => get(c, "condition").and_then(str_of),
                        _ => None,
                    }
                    .unwrap_or_else(|| "process_started".into());
                    let cond = match cond_word.as_str() {
                        "process_completed" => {
                            ctx.warn(name, Some("condition"), format!("`{dep}`: condition process_completed (any exit code) becomes completed_successfully: runner waits for exit 0"));
                            Some(DependCondition::Completed)
                        }
                        "process_log_ready" => {
                            ctx.warn(name, Some("condition"), format!("`{dep}`: condition process_log_ready becomes online: give `{dep}` a readiness_probe or have it send sd_notify READY=1"));
                            Some(DependCondition::Online)
                        }
                        w => DependCondition::parse(w),
                    };
                    match cond {
                        Some(c) => deps.push(format!("{{ name = {}, condition = {} }}", quoted(&dep), quoted(c.as_str()))),
                        None => ctx.error(name, Some("condition"), format!("`depends_on.{dep}.condition` `{cond_word}` is not one of process_started, process_healthy, process_completed_successfully, process_completed, process_log_ready")),
                    }
                }
            }
            other => ctx.error(
                name,
                Some("depends_on"),
                format!(
                    "`depends_on` must map process names to {{condition: ...}}, found {}",
                    show(other)
                ),
            ),
        }
        if !deps.is_empty() {
            kv("depends_on", format!("[{}]", deps.join(", ")));
        }
    }

    // Probes.
    if let Some(v) = get(p, "readiness_probe") {
        if let Value::Mapping(m) = v {
            if let Some(check) = probe(ctx, name, "readiness_probe", m) {
                kv("ready_check", quoted(&check));
                let delay = seconds(
                    ctx,
                    name,
                    "initial_delay_seconds",
                    get(m, "initial_delay_seconds"),
                )
                .unwrap_or(0.0);
                let period =
                    seconds(ctx, name, "period_seconds", get(m, "period_seconds")).unwrap_or(10.0);
                let failures = get(m, "failure_threshold")
                    .and_then(Value::as_u64)
                    .unwrap_or(3) as f64;
                // process-compose gives up after this many failed periods.
                kv(
                    "listen_timeout",
                    secs_text(delay + period * failures.max(1.0)),
                );
            }
        } else {
            ctx.error(
                name,
                Some("readiness_probe"),
                "`readiness_probe` must be a mapping",
            );
        }
    }
    if let Some(Value::Mapping(m)) = get(p, "liveness_probe") {
        if let Some(check) = probe(ctx, name, "liveness_probe", m) {
            let period =
                seconds(ctx, name, "period_seconds", get(m, "period_seconds")).unwrap_or(10.0);
            let timeout =
                seconds(ctx, name, "timeout_seconds", get(m, "timeout_seconds")).unwrap_or(1.0);
            let failures = get(m, "failure_threshold")
                .and_then(Value::as_u64)
                .unwrap_or(3);
            let health = [
                ("health_check", quoted(&check)),
                ("health_interval", secs_text(period)),
                ("health_timeout", secs_text(timeout)),
                ("health_failures", failures.to_string()),
            ];
            if keys::APP_KEYS.contains(&"health_check") {
                for (k, v) in health {
                    kv(k, v);
                }
            } else {
                ctx.warn(
                    name,
                    Some("liveness_probe"),
                    "`liveness_probe` needs a runner with `health_check`; written as a comment",
                );
                for (k, v) in health {
                    lines.push(format!("# {k} = {v}"));
                }
            }
        }
    }

    // availability.
    let mut restart = "no".to_string();
    if let Some(Value::Mapping(a)) = get(p, "availability") {
        if let Some(r) = get(a, "restart").and_then(str_of) {
            restart = r;
        }
        if let Some(b) = seconds(ctx, name, "backoff_seconds", get(a, "backoff_seconds")) {
            lines.push(format!("restart_delay = {}", secs_text(b)));
        } else if restart != "no" {
            lines.push(format!("restart_delay = {}", secs_text(1.0)));
        }
        if let Some(n) = get(a, "max_restarts").and_then(Value::as_u64) {
            if n > 0 {
                lines.push(format!("max_restarts = {n}"));
            }
        }
        if get(a, "exit_on_end").and_then(Value::as_bool) == Some(true) {
            lines.push("critical = true".into());
        }
        for (k, _) in a {
            let k = str_of(k).unwrap_or_default();
            if !["restart", "backoff_seconds", "max_restarts", "exit_on_end"].contains(&k.as_str())
            {
                ctx.warn(
                    name,
                    Some(&k),
                    format!("`availability.{k}` ignored: runner has no equivalent"),
                );
            }
        }
    }
    match restart.as_str() {
        "always" => lines.push("autorestart = true".into()),
        "on_failure" => {
            lines.push("autorestart = true".into());
            lines.push("stop_exit_codes = [0]".into());
        }
        "exit_on_failure" => {
            lines.push("autorestart = false".into());
            ctx.warn(name, Some("restart"), "`restart: exit_on_failure` becomes `critical = true`: runner stops everything when it ends, whatever its code");
            lines.push("critical = true".into());
        }
        "no" => lines.push("autorestart = false".into()),
        other => ctx.error(name, Some("restart"), format!("`availability.restart` `{other}` is not one of always, on_failure, exit_on_failure, no")),
    }

    // shutdown.
    let mut signal = "SIGTERM".to_string();
    let mut timeout = 10.0;
    if let Some(Value::Mapping(s)) = get(p, "shutdown") {
        if let Some(v) = get(s, "signal") {
            match str_of(v)
                .as_deref()
                .and_then(crate::config::units::parse_signal)
            {
                Some(sig) => signal = sig.as_str().to_string(),
                None => ctx.error(
                    name,
                    Some("signal"),
                    format!(
                        "`shutdown.signal` {} is not a signal number or name",
                        show(v)
                    ),
                ),
            }
        }
        if let Some(t) = seconds(ctx, name, "timeout_seconds", get(s, "timeout_seconds")) {
            timeout = t;
        }
        if get(s, "parent_only").and_then(Value::as_bool) == Some(true) {
            lines.push("treekill = false".into());
        }
        if get(s, "command").is_some() {
            ctx.warn(name, Some("command"), "`shutdown.command` ignored: runner stops with `kill_signal`; make the program handle it");
        }
    }
    lines.push(format!("kill_signal = {}", quoted(&signal)));
    lines.push(format!("kill_timeout = {}", secs_text(timeout)));

    if let Some(l) = get(p, "log_location").and_then(str_of) {
        lines.push(format!("out_file = {}", quoted(&l)));
        lines.push(format!("error_file = {}", quoted(&l)));
    }

    for (k, _) in p {
        let k = str_of(k).unwrap_or_default();
        if !PROCESS_KEYS.contains(&k.as_str()) {
            let hint = crate::config::suggest::did_you_mean(&k, PROCESS_KEYS.iter().copied());
            ctx.warn(
                name,
                Some(&k),
                format!("`{k}` of process `{name}` ignored: runner has no equivalent{hint}"),
            );
        }
    }

    let disabled = get(p, "disabled").and_then(Value::as_bool) == Some(true);
    if let Some(d) = get(p, "description").and_then(str_of) {
        let _ = writeln!(out, "{}", comment(&d));
    }
    if disabled {
        ctx.warn(
            name,
            Some("disabled"),
            format!("process `{name}` is disabled: left out"),
        );
        let _ = writeln!(
            out,
            "{}",
            comment(&format!("process `{name}` left out: disabled"))
        );
        for l in &lines {
            let _ = writeln!(out, "# {l}");
        }
        return;
    }
    out.push_str("[[apps]]\n");
    for l in &lines {
        let _ = writeln!(out, "{l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(text: &str) -> Result<Converted, Vec<String>> {
        convert_text(Path::new("pc.yaml"), text).map_err(|e| {
            e.iter()
                .map(|d| format!("{}:{}", d.line, d.message))
                .collect()
        })
    }

    #[test]
    fn a_job_then_a_server_with_a_readiness_probe() {
        let c = conv("version: \"0.5\"\nprocesses:\n  migrate:\n    command: ./migrate\n  web:\n    command: ./web --port 8080\n    environment:\n      - 'A=1,2'\n    depends_on:\n      migrate:\n        condition: process_completed_successfully\n    readiness_probe:\n      http_get:\n        host: 127.0.0.1\n        port: 8080\n        path: /health\n      period_seconds: 1\n    availability:\n      restart: on_failure\n    shutdown:\n      signal: 3\n      timeout_seconds: 5\n").unwrap();
        for want in [
            r#"args = ["-c", "./web --port 8080"]"#,
            r#"A = "1,2""#,
            r#"depends_on = [{ name = "migrate", condition = "completed_successfully" }]"#,
            r#"ready_check = "http://127.0.0.1:8080/health""#,
            r#"kill_signal = "SIGQUIT""#,
            r#"kill_timeout = "5000ms""#,
            "stop_exit_codes = [0]",
        ] {
            assert!(c.toml.contains(want), "{want} in {}", c.toml);
        }
        assert!(
            c.toml.contains("autorestart = false"),
            "migrate: restart defaults to no"
        );
    }

    #[test]
    fn errors_name_the_line_and_the_remedy() {
        let e = conv("processes:\n  web:\n    command: x\n    availability:\n      restart: sometimes\n    depends_on:\n      db:\n        condition: process_finished\n").unwrap_err();
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e[0].starts_with("5:`availability.restart` `sometimes`"),
            "{e:#?}"
        );
        assert!(e[1].starts_with("8:`depends_on.db.condition`"), "{e:#?}");
        let e = conv("processes:\n  web:\n    command: [x\n").unwrap_err();
        assert!(e[0].contains("invalid YAML"), "{e:#?}");
    }

    #[test]
    fn unknown_keys_are_warnings_with_their_line() {
        let c = conv("log_level: debug\nprocesses:\n  web:\n    command: x\n    is_daemon: true\n")
            .unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("pc.yaml:5: `is_daemon`")),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings.iter().any(|w| w.contains("`log_level`")),
            "{:?}",
            c.warnings
        );
    }
}
