//! `runner import`: PM2 ecosystem files (`ecosystem.config.js` / `.cjs` / `.mjs`, or a
//! JSON process file) converted to runner's ecosystem TOML.
//!
//! The converter is a translator, not a validator: values are carried over in the form
//! runner accepts and the TOML loader checks them afterwards, so a bad value is reported
//! once, with a line and column, by the same code that reports it for hand-written files.
//! Nothing in the PM2 file is dropped silently: whatever runner cannot express becomes a
//! comment in the app's table, so a user reading the output sees what changed.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

use super::toml_text::{comment, fmt_key, quoted, toml_value};

/// Convert a PM2 ecosystem file (`ecosystem.config.js`/.cjs/.mjs evaluated with `node`, or `.json` / `process.json`) into runner's ecosystem TOML text.
pub fn to_toml(path: &Path) -> Result<String, String> {
    let shown = path.display().to_string();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    let config = match ext.as_str() {
        "js" | "cjs" | "mjs" => eval_with_node(path, &shown, ext == "mjs")?,
        "json" => read_json(path, &shown)?,
        "yml" | "yaml" => {
            return Err(format!(
                "{shown}: YAML PM2 files are not supported; convert it to JSON (same keys) first"
            ))
        }
        _ => {
            return Err(format!(
                "{shown}: not a PM2 ecosystem file (expected .js, .cjs, .mjs or .json)"
            ))
        }
    };
    convert_file(path, &config)
}

/// `to_toml`'s conversion, once the file's config is at hand.
fn convert_file(path: &Path, config: &Value) -> Result<String, String> {
    let shown = path.display().to_string();
    let source = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| shown.clone());
    convert(config, &source).map_err(|e| format!("{shown}: {e}"))
}

/// Whether `to_toml` evaluates `path` with node (`.js`, `.cjs`, `.mjs`), and if so
/// whether as an ES module (`.mjs`).
pub fn node_evaluates(path: &Path) -> Option<bool> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    matches!(ext.as_str(), "js" | "cjs" | "mjs").then_some(ext == "mjs")
}

/// The command `to_toml` would run for such a file, for a caller that runs it its own
/// way (`apply` in the running supervisor) and hands the outcome to [`evaluated_to_toml`].
pub fn node_evaluation(path: &Path, esm: bool) -> Result<Command, String> {
    node_command(path, &path.display().to_string(), esm)
}

/// `to_toml` for a file [`node_evaluation`] named a command for, from that command's
/// bounded run (limits [`NODE_TIME_LIMIT`] and [`NODE_MAX_OUTPUT`]).
pub fn evaluated_to_toml(
    path: &Path,
    run: Result<crate::config::bounded::Output, crate::config::bounded::Error>,
) -> Result<String, String> {
    let config = node_value(&path.display().to_string(), run)?;
    convert_file(path, &config)
}

/// Same, from the JSON value of the PM2 config (`{apps:[...]}` or a bare array of apps, or a single app object).
pub fn json_to_toml(config: &Value) -> Result<String, String> {
    convert(config, "a PM2 ecosystem file")
}

// ---------------------------------------------------------------------------------------
// Reading the PM2 file

fn read_json(path: &Path, shown: &str) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| {
        // serde_json's Display already ends with "at line L column C"; the classification
        // words ("syntax error", "EOF") are what a user needs to see first.
        format!("{shown}: invalid JSON: {e}")
    })
}

/// The inline program node runs. It is CommonJS (`node -e`), gets the absolute file path
/// as `process.argv[1]`, and prints one line of JSON on the real stdout.
///
/// - Config files may log while they are evaluated (`console.log` of the chosen env is
///   common); that output is moved to stderr so it cannot corrupt the JSON.
/// - `require` first, as PM2 does; `import()` for `.mjs` and for `.js` files in a
///   `"type": "module"` package, where `require` refuses ESM.
/// - The config may be a Promise or a transpiled module (`exports.default`): unwrap both.
/// - `process.exit` after the write (of the JSON, or of the error): a config that leaves
///   a timer or socket open must not hang the import. The exit waits for the write's
///   callback, because node may queue pipe writes and exit drops what is queued (an
///   error after much console output was lost that way).
/// - `JSON.stringify` drops functions, which PM2 files may contain (e.g. computed hooks):
///   runner has nothing to map them to anyway.
const NODE_EVAL: &str = r#"
const file = process.argv[1];
const esm = process.argv[2] === 'esm';
const realWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
const viaImport = () => import(require('url').pathToFileURL(file).href);
const load = async () => {
  if (esm) return viaImport();
  try { return require(file); }
  catch (e) {
    if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE')) return viaImport();
    throw e;
  }
};
load().then(async (m) => {
  let c = m;
  if (c && c[Symbol.toStringTag] === 'Module') c = c.default !== undefined ? c.default : Object.assign({}, c);
  c = await c;
  if (c && typeof c === 'object' && c.__esModule && c.default !== undefined) c = await c.default;
  const s = JSON.stringify(c === undefined ? null : c);
  realWrite(s + '\n', () => process.exit(0));
}).catch((e) => {
  // Exit once the message is out: what the file printed may still be queued before it.
  process.stderr.write((e && e.stack ? String(e.stack) : String(e)) + '\n', () => process.exit(1));
});
"#;

/// How long `node` may take to evaluate a PM2 file (run, `check`, `import`, `apply`).
pub const NODE_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How much `node` may print (stdout and stderr together) while evaluating a PM2 file.
pub const NODE_MAX_OUTPUT: usize = 16 << 20;

fn eval_with_node(path: &Path, shown: &str, esm: bool) -> Result<Value, String> {
    let cmd = node_command(path, shown, esm)?;
    // Waiting for this one child by pid is sound here: this runs before the supervisor's
    // loop (start-up, `check`, `import`); `apply` in the running loop uses
    // `src/supervisor/eval.rs` instead. The wait is bounded (NODE_TIME_LIMIT,
    // NODE_MAX_OUTPUT).
    node_value(
        shown,
        crate::config::bounded::output(cmd, NODE_TIME_LIMIT, NODE_MAX_OUTPUT),
    )
}

/// The `node` command that evaluates the PM2 file at `path` and prints it as JSON.
fn node_command(path: &Path, shown: &str, esm: bool) -> Result<Command, String> {
    // Absolute, because node runs in the file's directory (PM2 users rely on relative
    // `require('./x')` and `path.resolve('...')` inside the config meaning "next to it").
    let abs = std::fs::canonicalize(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !abs.is_file() {
        return Err(format!("cannot read {shown}: not a file"));
    }
    let dir = abs.parent().unwrap_or_else(|| Path::new("/"));
    let mut cmd = Command::new("node");
    cmd.arg("-e")
        .arg(NODE_EVAL)
        .arg(&abs)
        .arg(if esm { "esm" } else { "cjs" })
        .current_dir(dir)
        .stdin(Stdio::null());
    Ok(cmd)
}

/// The config node printed, or what went wrong, from node's bounded run.
fn node_value(
    shown: &str,
    output: Result<crate::config::bounded::Output, crate::config::bounded::Error>,
) -> Result<Value, String> {
    let output = match output {
        Err(crate::config::bounded::Error::TimedOut) => {
            return Err(format!(
                "evaluating {shown} with node took longer than {} s and was stopped: a PM2 file must set module.exports at once (a Promise that never settles, a server or a timer keeps node running)",
                NODE_TIME_LIMIT.as_secs()
            ))
        }
        Err(crate::config::bounded::Error::TooMuchOutput) => {
            return Err(format!(
                "evaluating {shown} with node printed more than {} MiB and was stopped",
                NODE_MAX_OUTPUT >> 20
            ))
        }
        Err(crate::config::bounded::Error::Io(e)) => Err(e),
        Ok(o) => Ok(o),
    };
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("evaluating {shown} needs node in PATH"))
        }
        Err(e) => return Err(format!("evaluating {shown}: cannot run node: {e}")),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let detail = node_error_text(&stderr);
        let status = match output.status.code() {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".to_string(),
        };
        return Err(if detail.is_empty() {
            format!("evaluating {shown} with node failed ({status})")
        } else {
            format!("evaluating {shown} with node failed:\n{detail}")
        });
    }
    if !stderr.trim().is_empty() {
        log::debug!("node said while evaluating {shown}: {}", stderr.trim());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Something may still have written to fd 1 directly; our JSON is the last line.
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let value: Value = serde_json::from_str(line)
        .map_err(|e| format!("evaluating {shown}: node did not print the config as JSON ({e})"))?;
    if value.is_null() {
        return Err(format!(
            "{shown} exports nothing usable: set module.exports (or export default) to {{ apps: [...] }}"
        ));
    }
    Ok(value)
}

/// Node's stack frames say where inside node's loader the error surfaced, which is noise
/// for someone fixing their config; the message, the file:line and the caret are kept.
fn node_error_text(stderr: &str) -> String {
    let kept: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            !l.trim_start().starts_with("at ")
                && !l.starts_with("Node.js v")
                && !l.ends_with("[eval]")
        })
        .collect();
    let text = kept.join("\n").trim().to_string();
    // The error is at the end; what the file printed before it can be megabytes, which
    // an error message (and a control reply) should not carry.
    if text.len() <= NODE_ERROR_MAX {
        return text;
    }
    let mut start = text.len() - NODE_ERROR_MAX;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[{start} bytes cut]\n{}", &text[start..])
}

/// At most this much of what node printed goes into an error message.
const NODE_ERROR_MAX: usize = 4096;

// ---------------------------------------------------------------------------------------
// Conversion

fn convert(config: &Value, source: &str) -> Result<String, String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        comment(&format!("converted from {source} by runner import"))
    );

    let apps: Vec<&Value> = match config {
        Value::Array(items) => items.iter().collect(),
        Value::Object(top) => {
            if let Some(apps) = top.get("apps") {
                if top.contains_key("deploy") {
                    out.push_str("# PM2 deploy section ignored\n");
                }
                for (key, value) in top {
                    if key != "apps" && key != "deploy" {
                        let _ = writeln!(out, "{}", unsupported_line(key, value, None));
                    }
                }
                match apps {
                    Value::Array(items) => items.iter().collect(),
                    Value::Object(_) => vec![apps],
                    other => {
                        return Err(format!(
                            "`apps` in the PM2 config must be an array of apps, not {}",
                            json_kind(other)
                        ))
                    }
                }
            } else if top.contains_key("script") || top.contains_key("exec") {
                // A process file may hold a single app.
                vec![config]
            } else {
                return Err(
                    "the PM2 config has no `apps` (expected { apps: [...] }, an array of apps or one app with a `script`)"
                        .to_string(),
                );
            }
        }
        other => {
            return Err(format!(
                "a PM2 config must be an object with `apps` or an array of apps, not {}",
                json_kind(other)
            ))
        }
    };

    if apps.is_empty() {
        out.push_str("# the PM2 config has no apps\n");
    }
    for (i, app) in apps.iter().enumerate() {
        let Value::Object(map) = app else {
            return Err(format!(
                "app #{} in the PM2 config is {}, not an object",
                i + 1,
                json_kind(app)
            ));
        };
        out.push('\n');
        convert_app(map, &mut out);
    }
    Ok(out)
}

/// PM2 options runner does not implement, with a hint where runner has a way to get the
/// same result. Listed so they are reported as PM2 options rather than as unknown keys.
const UNSUPPORTED: &[(&str, Option<&str>)] = &[
    (
        "watch_options",
        Some("chokidar's options; runner watches with inotify: use watch, ignore_watch and watch_delay"),
    ),
    ("log_type", None),
    (
        "pid_file",
        Some("runner writes no pid files; see `runner list --json`"),
    ),
    (
        "pid",
        Some("runner writes no pid files; see `runner list --json`"),
    ),
    (
        "shutdown_with_message",
        Some("runner stops instances with kill_signal"),
    ),
    (
        "autostart",
        Some("use `runner --only NAME,...` to choose the apps"),
    ),
    ("name_prefix", None),
    ("filter_env", Some("apps get runner's environment plus env")),
    ("append_env_to_name", None),
    ("install_url", None),
    ("vizion", None),
    ("source_map_support", None),
    ("disable_source_map_support", None),
    ("post_update", None),
    ("force", None),
    ("execute_command", None),
    ("trace", None),
    ("disable_trace", None),
    ("v8", None),
    ("event_loop_inspector", None),
    ("deep_monitoring", None),
    ("pmx", None),
    ("automation", None),
    ("io", None),
    ("username", None),
    ("windowsHide", None),
    ("kill_retry_time", None),
    ("write", None),
    ("node_version", None),
];

/// Keys runner has that PM2 lacks; a PM2 file written for both tools may carry them
/// (PM2 ignores them), and they mean exactly what the user wants here.
const RUNNER_ONLY: &[&str] = &[
    "ready_check",
    "depends_on",
    "critical",
    "watchdog",
    "health_check",
    "health_interval",
    "health_timeout",
    "health_failures",
    "log_prefix",
];

/// PM2's extension → interpreter table (lib/API/interpreter.json) where it differs from
/// runner's defaults (`.js .mjs .cjs` → node, `.py` → python3, `.sh` → sh).
const PM2_INTERPRETERS: &[(&str, &str)] = &[
    ("sh", "bash"),
    ("rb", "ruby"),
    ("php", "php"),
    ("pl", "perl"),
    ("coffee", "coffee"),
    ("ls", "lsc"),
];

/// One app being converted: the PM2 object and the lines of its `[[apps]]` table.
struct AppOut<'a> {
    app: &'a Map<String, Value>,
    used: BTreeSet<&'a str>,
    lines: Vec<String>,
    notes: Vec<String>,
}

impl<'a> AppOut<'a> {
    /// The value of the first of `names` present (PM2's own name first, aliases after).
    /// Aliases that are also present lose, and say so.
    fn take(&mut self, names: &[&'a str]) -> Option<(&'a str, &'a Value)> {
        let app = self.app;
        let mut found: Option<(&'a str, &'a Value)> = None;
        for &name in names {
            if let Some((key, value)) = app.get_key_value(name) {
                self.used.insert(key.as_str());
                match found {
                    None => found = Some((key.as_str(), value)),
                    Some((winner, _)) => {
                        let hint = format!("`{winner}` is used instead");
                        self.notes
                            .push(unsupported_line(key, value, Some(hint.as_str())));
                    }
                }
            }
        }
        found
    }

    fn set(&mut self, key: &str, value: &toml::Value) {
        match toml_value(value) {
            Some(text) => self.lines.push(format!("{key} = {text}")),
            None => self.lines.push(comment(&format!(
                "not converted (cannot be written as TOML): {key}"
            ))),
        }
    }

    fn not_converted(&mut self, key: &str, value: &Value, expected: &str) {
        self.lines.push(comment(&format!(
            "not converted (expected {expected}): {} = {}",
            fmt_key(key),
            show_json(value)
        )));
    }

    /// Convert one key with `f`; a value of the wrong type becomes a comment.
    fn map(
        &mut self,
        out_key: &str,
        names: &[&'a str],
        expected: &str,
        f: fn(&Value) -> Option<toml::Value>,
    ) -> Option<toml::Value> {
        let (key, value) = self.take(names)?;
        match f(value) {
            Some(v) => {
                self.set(out_key, &v);
                Some(v)
            }
            None => {
                self.not_converted(key, value, expected);
                None
            }
        }
    }
}

/// One PM2 app object as a `[[apps]]` table: the keys in the order the loader reads its
/// sections, then what could not be converted (as comments), then the env profiles.
fn convert_app(app: &Map<String, Value>, out: &mut String) {
    let mut a = AppOut {
        app,
        used: BTreeSet::new(),
        lines: Vec::new(),
        notes: Vec::new(),
    };
    let interpreter = convert_program(&mut a);
    let env = collect_env(&mut a, interpreter.as_deref());
    let (instances, cluster) = convert_instances(&mut a, interpreter.as_deref());
    convert_all(&mut a, READINESS_AND_STOPPING);
    convert_all(&mut a, RESTART_POLICY);
    a.map("uid", &["uid", "user"], "a user name or number", id);
    a.map("gid", &["gid"], "a group name or number", id);
    convert_output(&mut a, cluster, instances.as_ref());
    convert_all(&mut a, SCHEDULES);
    for &key in RUNNER_ONLY {
        a.map(key, &[key], "a TOML value", any);
    }
    note_unconverted(&mut a);
    write_app(out, &a, &env);
}

/// `name`, `namespace`, `script`, `args`, the interpreter and its arguments, `cwd`;
/// returns the interpreter: the one given, else the one PM2 would pick for the script.
fn convert_program(a: &mut AppOut) -> Option<String> {
    a.map("name", &["name"], "a string", string);
    a.map("namespace", &["namespace"], "a string", string);
    let script = a.map("script", &["script", "exec"], "a string", string);
    a.map("args", &["args"], "a string or an array", string_or_array);
    let interpreter = match a.map(
        "interpreter",
        &["exec_interpreter", "interpreter"],
        "a string",
        string,
    ) {
        Some(toml::Value::String(s)) => {
            if s.starts_with("node@") {
                a.lines.push(
                    "# PM2 resolves node@VERSION through nvm; runner looks this name up in PATH"
                        .to_string(),
                );
            }
            Some(s)
        }
        _ => default_interpreter(a, script.as_ref()),
    };
    a.map(
        "interpreter_args",
        &["node_args", "interpreter_args", "interpreterArgs"],
        "a string or an array",
        string_or_array,
    );
    a.map("cwd", &["cwd"], "a string", string);
    interpreter
}

/// `instances`, `exec_mode`, `instance_var`, `increment_var`; returns the instances
/// value and whether the app became a cluster app.
fn convert_instances(a: &mut AppOut, interpreter: Option<&str>) -> (Option<toml::Value>, bool) {
    let instances = a.map(
        "instances",
        &["instances"],
        "an integer or \"max\"",
        instances,
    );
    let cluster = convert_exec_mode(a, instances.as_ref(), interpreter);
    a.map("instance_var", &["instance_var"], "a string", string);
    a.map("increment_var", &["increment_var"], "a string", string);
    (instances, cluster)
}

/// A key converted one to one: runner's name, PM2's names (its own first, aliases after),
/// what PM2 expects (for the comment when the value is not that), the conversion.
type OneToOne = (
    &'static str,
    &'static [&'static str],
    &'static str,
    fn(&Value) -> Option<toml::Value>,
);

const MS: &str = "milliseconds or a duration string";

/// `wait_ready`, `listen_timeout`, `kill_signal`, `kill_timeout`, `treekill`.
const READINESS_AND_STOPPING: &[OneToOne] = &[
    ("wait_ready", &["wait_ready"], "true or false", boolean),
    ("listen_timeout", &["listen_timeout"], MS, duration),
    ("kill_signal", &["kill_signal"], "a signal name", signal),
    ("kill_timeout", &["kill_timeout"], MS, duration),
    ("treekill", &["treekill"], "true or false", boolean),
];

/// `autorestart`, `stop_exit_codes`, `min_uptime`, `max_restarts`, the delays and
/// `max_memory_restart`.
const RESTART_POLICY: &[OneToOne] = &[
    ("autorestart", &["autorestart"], "true or false", boolean),
    (
        "stop_exit_codes",
        &["stop_exit_codes"],
        "an integer or an array of integers",
        exit_codes,
    ),
    ("min_uptime", &["min_uptime"], MS, duration),
    (
        "max_restarts",
        &["max_restarts"],
        "a non-negative integer",
        count,
    ),
    ("restart_delay", &["restart_delay"], MS, duration),
    (
        "exp_backoff_restart_delay",
        &["exp_backoff_restart_delay"],
        MS,
        duration,
    ),
    (
        "max_memory_restart",
        &["max_memory_restart"],
        "bytes or a size such as \"200M\"",
        size,
    ),
];

/// `cron_restart` and `watch`: restarts on a schedule and on file changes.
const SCHEDULES: &[OneToOne] = &[
    (
        "cron_restart",
        &["cron_restart", "cron"],
        "a cron expression",
        cron,
    ),
    (
        "watch",
        &["watch"],
        "true, false, a path or an array of paths",
        watch,
    ),
    (
        "ignore_watch",
        &["ignore_watch"],
        "a string or an array of strings",
        string_or_array,
    ),
    ("watch_delay", &["watch_delay"], MS, duration),
];

fn convert_all(a: &mut AppOut, keys: &[OneToOne]) {
    for &(out_key, names, expected, f) in keys {
        a.map(out_key, names, expected, f);
    }
}

/// Log files (`log_file`, `disable_logs`), line decoration and PM2's merge default.
fn convert_output(a: &mut AppOut, cluster: bool, instances: Option<&toml::Value>) {
    let out_file = a.map(
        "out_file",
        &["out_file", "out", "output", "out_log"],
        "a path",
        string,
    );
    let error_file = a.map(
        "error_file",
        &["error_file", "error", "err", "err_file", "err_log"],
        "a path",
        string,
    );
    let log_file = convert_log_file(a, out_file.is_some(), error_file.is_some());
    convert_disable_logs(a, out_file.is_some() || error_file.is_some() || log_file);
    a.map("time", &["time"], "true or false", boolean);
    a.map("log_date_format", &["log_date_format"], "a string", string);
    let merge = a.map(
        "merge_logs",
        &["merge_logs", "combine_logs"],
        "true or false",
        boolean,
    );
    if merge.is_none() && (out_file.is_some() || error_file.is_some() || log_file) {
        pm2_merge_default(a, cluster, instances);
    }
}

/// Everything not consumed by the steps above, as comments: PM2 options runner lacks,
/// and unknown keys.
fn note_unconverted(a: &mut AppOut) {
    for (key, value) in a.app {
        if a.used.contains(key.as_str()) {
            continue;
        }
        let line = if key == "env_file" {
            comment(&format!(
                "PM2 has no env_file option (PM2 ignored it; runner would load it): env_file = {}",
                show_json(value)
            ))
        } else if let Some((_, hint)) = UNSUPPORTED.iter().find(|(k, _)| k == key) {
            unsupported_line(key, value, *hint)
        } else {
            unsupported_line(key, value, Some("not a PM2 option either"))
        };
        a.notes.push(line);
    }
}

/// The `[[apps]]` table, then one `[apps.env_NAME]` table per profile.
fn write_app(out: &mut String, a: &AppOut, env: &[EnvTable]) {
    out.push_str("[[apps]]\n");
    for line in a.lines.iter().chain(a.notes.iter()) {
        out.push_str(line);
        out.push('\n');
    }
    for table in env {
        out.push('\n');
        let _ = writeln!(out, "[apps.{}]", fmt_key(&table.name));
        for line in &table.lines {
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// When the PM2 file names no interpreter, keep the one PM2 would have used where
/// runner's default differs (bash, not sh, for `.sh`; ruby for `.rb`, ...).
fn default_interpreter(a: &mut AppOut, script: Option<&toml::Value>) -> Option<String> {
    let Some(toml::Value::String(script)) = script else {
        return None;
    };
    // A command line: runner hands it to sh, PM2 to bash; neither picks by extension.
    if script.contains(char::is_whitespace) {
        return None;
    }
    let file = script.rsplit('/').next().unwrap_or(script);
    let ext = match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    };
    match ext.as_str() {
        "js" | "mjs" | "cjs" => Some("node".to_string()),
        "py" => Some("python3".to_string()),
        "ts" | "tsx" => {
            a.lines.push(
                "# PM2 runs .ts scripts with bun (ts-node before PM2 6); runner needs interpreter = \"...\" for them"
                    .to_string(),
            );
            None
        }
        _ => {
            if let Some((_, interp)) = PM2_INTERPRETERS.iter().find(|(e, _)| *e == ext) {
                a.lines
                    .push(format!("# PM2's interpreter for .{ext} scripts"));
                a.set("interpreter", &toml::Value::String((*interp).to_string()));
                Some((*interp).to_string())
            } else {
                // PM2 runs any non-binary file with node; runner execs it. Only worth
                // saying for a file path: a bare name (npm, gunicorn) is a PATH command.
                if script.contains('/') {
                    a.lines.push(
                        "# PM2 runs a script that is not a binary with node; runner executes it directly (it needs a shebang and the exec bit, or interpreter = \"node\")"
                            .to_string(),
                    );
                }
                None
            }
        }
    }
}

/// PM2 decides `merge_logs` from the file as written (lib/Common.js): one file for all
/// only with no cluster `exec_mode` and `instances` unset, 0 or "max". runner applies the
/// same rule to the TOML, where the cluster mode PM2 picks later for node apps is written
/// out: where the two differ (`instances = "max"` with node), say PM2's answer explicitly.
fn pm2_merge_default(a: &mut AppOut, cluster_out: bool, instances: Option<&toml::Value>) {
    let declared_cluster = a
        .app
        .get("exec_mode")
        .and_then(Value::as_str)
        .is_some_and(|m| matches!(m.trim(), "cluster" | "cluster_mode"));
    let counted = match instances {
        Some(toml::Value::Integer(n)) => *n != 0,
        _ => false,
    };
    let pm2 = !declared_cluster && !counted;
    let runner = !cluster_out && !counted;
    if pm2 != runner {
        a.lines
            .push("# PM2 writes every instance of this app to the same log files here".to_string());
        a.set("merge_logs", &toml::Value::Boolean(pm2));
    }
}

/// PM2's `disable_logs`: no log files. runner sends the output to /dev/null instead (it
/// still keeps the last lines for `runner logs`).
fn convert_disable_logs(a: &mut AppOut, has_files: bool) {
    let Some((key, value)) = a.take(&["disable_logs"]) else {
        return;
    };
    match value {
        Value::Bool(true) if !has_files => {
            let null = toml::Value::String("/dev/null".into());
            a.lines.push(comment("PM2 disable_logs = true"));
            a.set("out_file", &null);
            a.set("error_file", &null);
        }
        Value::Bool(_) => {}
        _ => a.not_converted(key, value, "true or false"),
    }
}

/// `log_file` is PM2's combined stdout+stderr file. runner has no third stream, but
/// pointing both streams at it gives the same file when no separate ones are asked for.
/// Whether it did.
fn convert_log_file(a: &mut AppOut, has_out: bool, has_err: bool) -> bool {
    let Some((key, value)) = a.take(&["log_file", "log"]) else {
        return false;
    };
    match value {
        Value::String(path) if !has_out && !has_err => {
            // Through comment(): a path may hold characters a raw comment cannot.
            a.lines.push(comment(&format!(
                "PM2 {} = {}: runner appends stdout and stderr to it",
                key,
                show_json(value)
            )));
            let v = toml::Value::String(path.clone());
            a.set("out_file", &v);
            a.set("error_file", &v);
            true
        }
        _ => {
            let hint = "combined log: runner has only out_file and error_file";
            a.notes.push(unsupported_line(key, value, Some(hint)));
            false
        }
    }
}

/// PM2's exec_mode, including the cluster mode PM2 picks by itself for node scripts with
/// `instances`. Nothing else is needed: in cluster mode runner is the Node cluster
/// primary, so the app's own `listen(PORT)` shares one socket, as under PM2.
fn convert_exec_mode(
    a: &mut AppOut,
    instances: Option<&toml::Value>,
    interpreter: Option<&str>,
) -> bool {
    let mode = match a.take(&["exec_mode"]) {
        None => None,
        Some((key, value)) => match value.as_str().map(str::trim) {
            Some("cluster" | "cluster_mode") => Some("cluster"),
            Some("fork" | "fork_mode") => Some("fork"),
            _ => {
                a.not_converted(key, value, "\"fork\" or \"cluster\"");
                None
            }
        },
    };
    let explicit_listen = a.take(&["listen"]);

    // PM2's determineExecMode: instances >= 1, 0 or -1 ("max" is 0 by then) and a
    // node (or bun) interpreter mean cluster when exec_mode is not given.
    let implicit = mode.is_none()
        && a.app.get("exec_mode").is_none()
        && match instances {
            Some(toml::Value::Integer(n)) => *n >= -1,
            Some(toml::Value::String(s)) => s == "max",
            _ => false,
        }
        && interpreter.is_some_and(|i| i.contains("node") || i.contains("bun"));

    if mode == Some("fork") {
        a.set("exec_mode", &toml::Value::String("fork".into()));
    }
    if mode == Some("cluster") || implicit {
        if implicit {
            a.lines.push(
                "# PM2 ran this app in cluster mode: instances is set and it runs with node"
                    .to_string(),
            );
        }
        a.set("exec_mode", &toml::Value::String("cluster".into()));
    }
    if let Some((key, value)) = explicit_listen {
        match string_array(value) {
            Some(v) => a.set("listen", &v),
            None => a.not_converted(key, value, "an array of addresses"),
        }
    }
    mode == Some("cluster") || implicit
}

/// One `env` or `env_<profile>` table, already rendered.
struct EnvTable {
    name: String,
    lines: Vec<String>,
}

fn collect_env(a: &mut AppOut, interpreter: Option<&str>) -> Vec<EnvTable> {
    let app = a.app;
    let mut tables = Vec::new();

    // PM2's `port` is a shortcut for env.PORT (and overrides it), and PM2 sets
    // PYTHONUNBUFFERED for python so that logs are not held in a buffer: both are
    // written into `env` explicitly, since runner does neither by itself.
    let mut port = None;
    if let Some((key, value)) = a.take(&["port"]) {
        match scalar_string(value) {
            Some(p) => port = Some(p),
            None => a.not_converted(key, value, "a port number"),
        }
    }
    let base = match a.take(&["env"]) {
        Some((_, Value::Object(map))) => Some(map),
        Some((key, value)) => {
            a.notes
                .push(unsupported_line(key, value, Some("env must be an object")));
            None
        }
        None => None,
    };
    let python = interpreter.is_some_and(|i| i.contains("python"))
        && !base.is_some_and(|b| b.contains_key("PYTHONUNBUFFERED"));

    if base.is_some() || port.is_some() || python {
        let empty = Map::new();
        let skip = if port.is_some() { Some("PORT") } else { None };
        let mut t = env_table("env", base.unwrap_or(&empty), skip);
        if let Some(p) = port {
            if let Some(old) = base.and_then(|b| b.get("PORT")) {
                t.lines.push(comment(&format!(
                    "PORT = {} in env, replaced by PM2's `port`, as PM2 does",
                    show_json(old)
                )));
            } else {
                t.lines.push(comment("from PM2's `port` option"));
            }
            t.lines.push(format!("PORT = {}", quoted(&p)));
        }
        if python {
            t.lines.push(comment("PM2 sets it for python interpreters"));
            t.lines.push("PYTHONUNBUFFERED = \"1\"".to_string());
        }
        tables.push(t);
    }

    for (key, value) in app {
        let Some(profile) = key.strip_prefix("env_") else {
            continue;
        };
        if profile.is_empty() || key == "env_file" {
            continue;
        }
        if let Value::Object(map) = value {
            a.used.insert(key.as_str());
            tables.push(env_table(key, map, None));
        }
    }
    tables
}

fn env_table(name: &str, map: &Map<String, Value>, skip: Option<&str>) -> EnvTable {
    let mut t = EnvTable {
        name: name.to_string(),
        lines: Vec::new(),
    };
    for (k, v) in map {
        if skip == Some(k.as_str()) {
            continue;
        }
        // Processes only ever see strings; PM2 stringifies numbers and booleans too.
        let s = match v {
            Value::Null => {
                t.lines.push(comment(&format!(
                    "{} is null in the PM2 file: left out",
                    fmt_key(k)
                )));
                continue;
            }
            Value::Array(_) | Value::Object(_) => {
                t.lines
                    .push(comment(&format!("{} was JSON in the PM2 file", fmt_key(k))));
                v.to_string()
            }
            other => scalar_string(other).unwrap_or_default(),
        };
        t.lines.push(format!("{} = {}", fmt_key(k), quoted(&s)));
    }
    t
}

// ---------------------------------------------------------------------------------------
// Value conversions: None means "not of a type runner accepts here".

fn string(v: &Value) -> Option<toml::Value> {
    v.as_str().map(|s| toml::Value::String(s.to_string()))
}

/// Strings, numbers and booleans as a string; PM2 users write `args: ["--port", 3000]`.
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_array(v: &Value) -> Option<toml::Value> {
    let items = v.as_array()?;
    let strings: Option<Vec<toml::Value>> = items
        .iter()
        .map(|i| scalar_string(i).map(toml::Value::String))
        .collect();
    strings.map(toml::Value::Array)
}

fn string_or_array(v: &Value) -> Option<toml::Value> {
    string(v).or_else(|| string_array(v))
}

/// A JSON number that is a whole number representable in TOML (i64).
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
        }),
        // PM2 configs built from process.env carry numbers as strings.
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

fn instances(v: &Value) -> Option<toml::Value> {
    match v {
        Value::String(s) if s.trim() == "max" => Some(toml::Value::String("max".into())),
        _ => integer(v).map(toml::Value::Integer),
    }
}

fn count(v: &Value) -> Option<toml::Value> {
    integer(v).filter(|n| *n >= 0).map(toml::Value::Integer)
}

fn boolean(v: &Value) -> Option<toml::Value> {
    match v {
        Value::Bool(b) => Some(toml::Value::Boolean(*b)),
        Value::String(s) if s == "true" => Some(toml::Value::Boolean(true)),
        Value::String(s) if s == "false" => Some(toml::Value::Boolean(false)),
        _ => None,
    }
}

/// Milliseconds stay integers; strings with a unit ("5s", as PM2 allows for min_uptime)
/// pass through for the loader, which understands the same units; digit-only strings
/// become milliseconds, as PM2 reads them.
fn duration(v: &Value) -> Option<toml::Value> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return (i >= 0).then_some(toml::Value::Integer(i));
            }
            let f = n.as_f64()?;
            // setTimeout takes fractional ms; runner's unit is whole ms.
            (f.is_finite() && (0.0..9.0e15).contains(&f))
                .then(|| toml::Value::Integer(f.round() as i64))
        }
        Value::String(s) => Some(match s.trim().parse::<i64>() {
            Ok(i) if i >= 0 => toml::Value::Integer(i),
            _ => toml::Value::String(s.clone()),
        }),
        _ => None,
    }
}

/// Bytes or "200M"/"1G"/"500K": same notation in PM2 and runner (powers of 1024).
fn size(v: &Value) -> Option<toml::Value> {
    duration(v)
}

fn exit_codes(v: &Value) -> Option<toml::Value> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| integer(i).map(toml::Value::Integer))
            .collect::<Option<Vec<_>>>()
            .map(toml::Value::Array),
        other => integer(other).map(|n| toml::Value::Array(vec![toml::Value::Integer(n)])),
    }
}

fn id(v: &Value) -> Option<toml::Value> {
    match v {
        Value::String(s) => Some(toml::Value::String(s.clone())),
        _ => integer(v).filter(|n| *n >= 0).map(toml::Value::Integer),
    }
}

/// Signal names pass through; numbers become names, which is what runner accepts.
fn signal(v: &Value) -> Option<toml::Value> {
    match v {
        Value::String(s) => Some(toml::Value::String(s.clone())),
        _ => {
            let n = i32::try_from(integer(v)?).ok()?;
            let sig = nix::sys::signal::Signal::try_from(n).ok()?;
            Some(toml::Value::String(sig.as_str().to_string()))
        }
    }
}

/// A cron expression passes through; PM2's `0` (no cron) stays 0, which runner reads the same.
fn cron(v: &Value) -> Option<toml::Value> {
    match v {
        Value::String(s) => Some(toml::Value::String(s.clone())),
        _ => integer(v).filter(|n| *n == 0).map(toml::Value::Integer),
    }
}

fn watch(v: &Value) -> Option<toml::Value> {
    match v {
        Value::Bool(b) => Some(toml::Value::Boolean(*b)),
        _ => string_or_array(v),
    }
}

fn any(v: &Value) -> Option<toml::Value> {
    json_as_toml(v)
}

/// JSON → TOML, where TOML can say it (it has no null).
fn json_as_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => {
            toml::Value::Array(items.iter().map(json_as_toml).collect::<Option<_>>()?)
        }
        Value::Object(map) => {
            let mut t = toml::Table::new();
            for (k, v) in map {
                t.insert(k.clone(), json_as_toml(v)?);
            }
            toml::Value::Table(t)
        }
    })
}

// ---------------------------------------------------------------------------------------
// Writing TOML

/// A value for a comment: TOML syntax when TOML can express it, else JSON.
fn show_json(v: &Value) -> String {
    json_as_toml(v)
        .and_then(|t| toml_value(&t))
        // A multi-line TOML string would be unreadable once escaped onto one line.
        .filter(|t| !t.contains('\n'))
        .unwrap_or_else(|| v.to_string())
}

fn unsupported_line(key: &str, value: &Value, hint: Option<&str>) -> String {
    let mut text = format!(
        "not supported by runner: {} = {}",
        fmt_key(key),
        show_json(value)
    );
    if let Some(h) = hint {
        let _ = write!(text, "  ({h})");
    }
    comment(&text)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert_ok(v: Value) -> (String, toml::Table) {
        let text = json_to_toml(&v).unwrap_or_else(|e| panic!("conversion failed: {e}"));
        let table = toml::from_str::<toml::Table>(&text)
            .unwrap_or_else(|e| panic!("output is not TOML: {e}\n{text}"));
        (text, table)
    }

    fn apps(t: &toml::Table) -> Vec<toml::Table> {
        match t.get("apps") {
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_table().cloned().expect("app is a table"))
                .collect(),
            None => Vec::new(),
            other => panic!("apps is {other:?}"),
        }
    }

    fn one_app(v: Value) -> (String, toml::Table) {
        let (text, t) = convert_ok(v);
        let mut a = apps(&t);
        assert_eq!(a.len(), 1, "{text}");
        (text, a.remove(0))
    }

    fn s(v: &str) -> toml::Value {
        toml::Value::String(v.into())
    }

    #[test]
    fn pm2_maps_every_runner_key() {
        let (text, app) = one_app(json!({ "apps": [{
            "name": "api", "namespace": "web", "script": "server.js",
            "args": ["--port", 3000, true], "interpreter": "node",
            "node_args": "--max-old-space-size=512", "cwd": "/srv/api",
            "instances": 4, "exec_mode": "fork", "instance_var": "INSTANCE_ID",
            "increment_var": "PORT", "wait_ready": true, "listen_timeout": 8000,
            "kill_signal": "SIGTERM", "kill_timeout": 5000, "treekill": false,
            "autorestart": false, "stop_exit_codes": [0, 3], "min_uptime": "5s",
            "max_restarts": 10, "restart_delay": 250, "exp_backoff_restart_delay": 100,
            "max_memory_restart": "300M", "uid": "www-data", "gid": 33,
            "out_file": "/var/log/api.out", "error_file": "/var/log/api.err", "time": true,
        }]}));
        let want: &[(&str, toml::Value)] = &[
            ("name", s("api")),
            ("namespace", s("web")),
            ("script", s("server.js")),
            (
                "args",
                toml::Value::Array(vec![s("--port"), s("3000"), s("true")]),
            ),
            ("interpreter", s("node")),
            ("interpreter_args", s("--max-old-space-size=512")),
            ("cwd", s("/srv/api")),
            ("instances", toml::Value::Integer(4)),
            ("exec_mode", s("fork")),
            ("instance_var", s("INSTANCE_ID")),
            ("increment_var", s("PORT")),
            ("wait_ready", toml::Value::Boolean(true)),
            ("listen_timeout", toml::Value::Integer(8000)),
            ("kill_signal", s("SIGTERM")),
            ("kill_timeout", toml::Value::Integer(5000)),
            ("treekill", toml::Value::Boolean(false)),
            ("autorestart", toml::Value::Boolean(false)),
            (
                "stop_exit_codes",
                toml::Value::Array(vec![toml::Value::Integer(0), toml::Value::Integer(3)]),
            ),
            ("min_uptime", s("5s")),
            ("max_restarts", toml::Value::Integer(10)),
            ("restart_delay", toml::Value::Integer(250)),
            ("exp_backoff_restart_delay", toml::Value::Integer(100)),
            ("max_memory_restart", s("300M")),
            ("uid", s("www-data")),
            ("gid", toml::Value::Integer(33)),
            ("out_file", s("/var/log/api.out")),
            ("error_file", s("/var/log/api.err")),
            ("time", toml::Value::Boolean(true)),
        ];
        for (k, v) in want {
            assert_eq!(app.get(*k), Some(v), "key {k} in\n{text}");
        }
        assert_eq!(app.len(), want.len(), "{text}");
        assert!(!text.contains("not supported"), "{text}");
        // Fixed order: name first, time last among keys.
        let pos = |k: &str| text.find(&format!("\n{k} = ")).unwrap_or(usize::MAX);
        assert!(pos("name") < pos("script") && pos("script") < pos("instances"));
        assert!(pos("instances") < pos("kill_timeout") && pos("kill_timeout") < pos("time"));
        assert!(text.starts_with("# converted from a PM2 ecosystem file by runner import\n"));
    }

    #[test]
    fn pm2_aliases() {
        let (text, app) = one_app(json!([{
            "exec": "worker.js", "exec_interpreter": "/usr/bin/node",
            "interpreter_args": ["--inspect"], "user": "app", "output": "out.log",
            "err_file": "err.log",
        }]));
        assert_eq!(app.get("script"), Some(&s("worker.js")));
        assert_eq!(app.get("interpreter"), Some(&s("/usr/bin/node")));
        assert_eq!(
            app.get("interpreter_args"),
            Some(&toml::Value::Array(vec![s("--inspect")]))
        );
        assert_eq!(app.get("uid"), Some(&s("app")));
        assert_eq!(app.get("out_file"), Some(&s("out.log")));
        assert_eq!(app.get("error_file"), Some(&s("err.log")));
        assert!(!text.contains("not supported"), "{text}");

        for (alias, value) in [("error", "e1"), ("out", "o1"), ("interpreterArgs", "--x")] {
            let (_, app) = one_app(json!({ "script": "a.js", alias: value }));
            let key = match alias {
                "error" => "error_file",
                "out" => "out_file",
                _ => "interpreter_args",
            };
            assert_eq!(app.get(key), Some(&s(value)), "{alias}");
        }
        // Both the PM2 name and an alias: the PM2 name wins, the other is kept as a note.
        let (text, app) =
            one_app(json!({ "script": "a.js", "interpreter": "bun", "exec_interpreter": "node" }));
        assert_eq!(app.get("interpreter"), Some(&s("node")));
        assert!(
            text.contains("# not supported by runner: interpreter = \"bun\""),
            "{text}"
        );
    }

    #[test]
    fn pm2_exec_mode_aliases() {
        for (pm2, runner) in [
            ("fork_mode", "fork"),
            ("fork", "fork"),
            ("cluster_mode", "cluster"),
            ("cluster", "cluster"),
        ] {
            let (_, app) = one_app(json!({ "script": "a.js", "exec_mode": pm2 }));
            assert_eq!(app.get("exec_mode"), Some(&s(runner)), "{pm2}");
        }
        let (text, app) = one_app(json!({ "script": "a.js", "exec_mode": "turbo" }));
        assert!(app.get("exec_mode").is_none());
        assert!(
            text.contains(
                "# not converted (expected \"fork\" or \"cluster\"): exec_mode = \"turbo\""
            ),
            "{text}"
        );
    }

    #[test]
    fn pm2_instances_forms() {
        for (pm2, runner) in [
            (json!("max"), s("max")),
            (json!(-1), toml::Value::Integer(-1)),
            (json!(0), toml::Value::Integer(0)),
            (json!("3"), toml::Value::Integer(3)),
            (json!(2.0), toml::Value::Integer(2)),
        ] {
            let (_, app) = one_app(json!({ "script": "a.py", "instances": pm2 }));
            assert_eq!(app.get("instances"), Some(&runner));
        }
        let (text, app) = one_app(json!({ "script": "a.py", "instances": "lots" }));
        assert!(app.get("instances").is_none());
        assert!(text.contains("not converted"), "{text}");
    }

    #[test]
    fn pm2_durations_and_sizes() {
        let (_, app) = one_app(json!({ "script": "a.py",
            "min_uptime": 2000, "listen_timeout": "10s", "kill_timeout": "3000",
            "restart_delay": 1.6, "max_memory_restart": 1048576 }));
        assert_eq!(app.get("min_uptime"), Some(&toml::Value::Integer(2000)));
        assert_eq!(app.get("listen_timeout"), Some(&s("10s")));
        assert_eq!(app.get("kill_timeout"), Some(&toml::Value::Integer(3000)));
        assert_eq!(app.get("restart_delay"), Some(&toml::Value::Integer(2)));
        assert_eq!(
            app.get("max_memory_restart"),
            Some(&toml::Value::Integer(1048576))
        );
        for size in ["1G", "500K", "200M"] {
            let (_, app) = one_app(json!({ "script": "a.py", "max_memory_restart": size }));
            assert_eq!(app.get("max_memory_restart"), Some(&s(size)));
        }
        let (text, app) =
            one_app(json!({ "script": "a.py", "kill_timeout": -5, "autorestart": "yes" }));
        assert!(app.get("kill_timeout").is_none() && app.get("autorestart").is_none());
        assert!(
            text.contains(
                "# not converted (expected milliseconds or a duration string): kill_timeout = -5"
            ),
            "{text}"
        );
        assert!(text.contains("autorestart = \"yes\""), "{text}");
    }

    #[test]
    fn pm2_stop_exit_codes_and_signals() {
        let (_, app) =
            one_app(json!({ "script": "a.py", "stop_exit_codes": 0, "kill_signal": 15 }));
        assert_eq!(
            app.get("stop_exit_codes"),
            Some(&toml::Value::Array(vec![toml::Value::Integer(0)]))
        );
        assert_eq!(app.get("kill_signal"), Some(&s("SIGTERM")));
    }

    #[test]
    fn pm2_unsupported_keys_become_comments() {
        let (text, app) = one_app(json!({ "apps": [{
            "name": "web", "script": "app.js", "watch": true,
            "ignore_watch": ["node_modules", "logs"], "cron_restart": "0 3 * * *",
            "merge_logs": true, "log_date_format": "YYYY-MM-DD HH:mm Z",
            "pid_file": "/tmp/web.pid", "vizion": false, "source_map_support": true,
            "post_update": ["npm install"], "force": true, "shutdown_with_message": true,
            "my_custom_thing": {"a": 1}, "weird key\n": null,
        }]}));
        for line in [
            "# not supported by runner: pid_file = \"/tmp/web.pid\"",
            "# not supported by runner: vizion = false",
            "# not supported by runner: source_map_support = true",
            "# not supported by runner: post_update = [\"npm install\"]",
            "# not supported by runner: force = true",
            "# not supported by runner: shutdown_with_message = true",
            "# not supported by runner: my_custom_thing = { a = 1 }  (not a PM2 option either)",
            "# not supported by runner: \"weird key\\n\" = null",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(app.get("merge_logs"), Some(&toml::Value::Boolean(true)));
        assert_eq!(app.get("log_date_format"), Some(&s("YYYY-MM-DD HH:mm Z")));
        assert_eq!(
            app.len(),
            7,
            "only name, script, the log, watch and cron keys:\n{text}"
        );
    }

    #[test]
    fn cron_and_watch_keys_are_converted() {
        let (text, app) = one_app(json!({ "apps": [{
            "name": "web", "script": "app.js", "watch": ["src", "lib"],
            "ignore_watch": "logs", "watch_delay": 1000, "cron": "0 */2 * * *",
        }]}));
        assert!(!text.contains("not supported"), "{text}");
        assert_eq!(app.get("cron_restart"), Some(&s("0 */2 * * *")));
        assert_eq!(
            app.get("watch"),
            Some(&toml::Value::Array(vec![s("src"), s("lib")]))
        );
        assert_eq!(app.get("ignore_watch"), Some(&s("logs")));
        assert_eq!(app.get("watch_delay"), Some(&toml::Value::Integer(1000)));
        let (_, app) = one_app(json!({ "script": "a.js", "watch": true, "cron_restart": 0 }));
        assert_eq!(app.get("watch"), Some(&toml::Value::Boolean(true)));
        assert_eq!(app.get("cron_restart"), Some(&toml::Value::Integer(0)));
    }

    #[test]
    fn pm2_env_values_become_strings() {
        let (text, app) = one_app(json!({ "script": "a.js",
            "env": { "NODE_ENV": "development", "PORT": 3000, "DEBUG": false, "RATIO": 0.5,
                     "OPTS": {"x": [1]}, "NOTHING": null, "with.dot": "1", "": "empty" },
            "env_production": { "NODE_ENV": "production", "WORKERS": 8 },
            "env_staging-eu": { "NODE_ENV": "staging" },
        }));
        let env = app
            .get("env")
            .and_then(|v| v.as_table())
            .expect("env table");
        assert_eq!(env.get("NODE_ENV"), Some(&s("development")));
        assert_eq!(env.get("PORT"), Some(&s("3000")));
        assert_eq!(env.get("DEBUG"), Some(&s("false")));
        assert_eq!(env.get("RATIO"), Some(&s("0.5")));
        assert_eq!(env.get("OPTS"), Some(&s("{\"x\":[1]}")));
        assert_eq!(env.get("with.dot"), Some(&s("1")));
        assert_eq!(env.get(""), Some(&s("empty")));
        assert!(env.get("NOTHING").is_none());
        assert!(
            text.contains("# NOTHING is null in the PM2 file: left out"),
            "{text}"
        );
        let prod = app
            .get("env_production")
            .and_then(|v| v.as_table())
            .expect("profile");
        assert_eq!(prod.get("WORKERS"), Some(&s("8")));
        let eu = app
            .get("env_staging-eu")
            .and_then(|v| v.as_table())
            .expect("profile");
        assert_eq!(eu.get("NODE_ENV"), Some(&s("staging")));

        // A non-object env is reported, not dropped.
        let (text, app) = one_app(json!({ "script": "a.js", "env": "production", "env_x": 3 }));
        assert!(app.get("env").is_none());
        assert!(
            text.contains("# not supported by runner: env = \"production\""),
            "{text}"
        );
        assert!(
            text.contains("# not supported by runner: env_x = 3"),
            "{text}"
        );
    }

    #[test]
    fn pm2_port_and_python_env() {
        let (text, app) = one_app(json!({ "script": "app.py", "port": 8000 }));
        let env = app.get("env").and_then(|v| v.as_table()).expect("env");
        assert_eq!(env.get("PORT"), Some(&s("8000")));
        assert_eq!(env.get("PYTHONUNBUFFERED"), Some(&s("1")));
        assert!(text.contains("# from PM2's `port` option"), "{text}");
        // The user's own value wins over PM2's implicit PYTHONUNBUFFERED.
        let (_, app) = one_app(json!({ "script": "app.py", "env": {"PYTHONUNBUFFERED": 0} }));
        let env = app.get("env").and_then(|v| v.as_table()).expect("env");
        assert_eq!(env.get("PYTHONUNBUFFERED"), Some(&s("0")));
    }

    #[test]
    fn pm2_cluster_mode_needs_no_listen_and_no_change_to_the_app() {
        // Runner is the Node cluster primary: the app's own listen(PORT) is shared, so
        // the import neither invents `listen` from PORT nor asks for an edit.
        for app in [
            json!({ "script": "app.js", "instances": 4, "exec_mode": "cluster" }),
            json!({ "script": "app.js", "instances": "max", "exec_mode": "cluster_mode",
                "env": { "PORT": 8080 }, "env_production": { "PORT": 80 } }),
            json!({ "script": "app.js", "exec_mode": "cluster", "port": 3000 }),
        ] {
            let (text, out) = one_app(app.clone());
            assert_eq!(out.get("exec_mode"), Some(&s("cluster")), "{app}");
            assert!(out.get("listen").is_none(), "{text}");
            assert!(!text.contains("LISTEN_FDS"), "{text}");
            assert!(!text.contains("add listen"), "{text}");
        }
        // An explicit `listen` in the PM2 file is still converted.
        let (_, out) =
            one_app(json!({ "script": "app.js", "exec_mode": "cluster", "listen": ["8080"] }));
        assert_eq!(
            out.get("listen"),
            Some(&toml::Value::Array(vec![s("8080")]))
        );
    }

    #[test]
    fn pm2_implicit_cluster() {
        // PM2 picks cluster for node scripts with instances and no exec_mode.
        let (text, app) = one_app(json!({ "script": "app.js", "instances": 2 }));
        assert_eq!(app.get("exec_mode"), Some(&s("cluster")));
        assert!(text.contains("PM2 ran this app in cluster mode"), "{text}");
        // ... but not for other interpreters.
        let (_, app) = one_app(json!({ "script": "app.py", "instances": 2 }));
        assert!(app.get("exec_mode").is_none());
        let (_, app) = one_app(json!({ "script": "app.js", "instances": 2, "exec_mode": "fork" }));
        assert_eq!(app.get("exec_mode"), Some(&s("fork")));
    }

    #[test]
    fn pm2_explicit_listen_kept() {
        let (_, app) = one_app(json!({ "script": "app.js", "exec_mode": "cluster",
            "listen": ["0.0.0.0:9000"], "env": {"PORT": 1}, "depends_on": ["db"], "critical": true }));
        assert_eq!(
            app.get("listen"),
            Some(&toml::Value::Array(vec![s("0.0.0.0:9000")]))
        );
        assert_eq!(
            app.get("depends_on"),
            Some(&toml::Value::Array(vec![s("db")]))
        );
        assert_eq!(app.get("critical"), Some(&toml::Value::Boolean(true)));
    }

    #[test]
    fn pm2_interpreter_defaults() {
        let (text, app) = one_app(json!({ "script": "./run.sh" }));
        assert_eq!(app.get("interpreter"), Some(&s("bash")), "{text}");
        let (_, app) = one_app(json!({ "script": "worker.rb" }));
        assert_eq!(app.get("interpreter"), Some(&s("ruby")));
        let (_, app) = one_app(json!({ "script": "app.js" }));
        assert!(app.get("interpreter").is_none());
        let (text, _) = one_app(json!({ "script": "./bin/www" }));
        assert!(
            text.contains("PM2 runs a script that is not a binary with node"),
            "{text}"
        );
        let (text, _) = one_app(json!({ "script": "npm", "args": "start" }));
        assert!(!text.contains("PM2 runs"), "{text}");
        let (text, _) = one_app(json!({ "script": "src/index.ts" }));
        assert!(text.contains("PM2 runs .ts scripts with bun"), "{text}");
    }

    #[test]
    fn pm2_log_naming_keys_convert() {
        let (_, app) = one_app(json!({ "script": "a.js", "combine_logs": false,
            "out_file": "o.log", "log_date_format": "YYYY-MM-DD HH:mm:ss" }));
        assert_eq!(app.get("merge_logs"), Some(&toml::Value::Boolean(false)));
        assert_eq!(app.get("log_date_format"), Some(&s("YYYY-MM-DD HH:mm:ss")));
        // PM2 merges a node app with instances "max" and no exec_mode (it decides on
        // cluster mode only later); the TOML says cluster, so PM2's answer is written.
        let (text, app) = one_app(json!({ "script": "a.js", "instances": "max",
            "out_file": "o.log" }));
        assert_eq!(app.get("exec_mode"), Some(&s("cluster")));
        assert_eq!(
            app.get("merge_logs"),
            Some(&toml::Value::Boolean(true)),
            "{text}"
        );
        // Where the rules agree nothing is added.
        let (_, app) = one_app(json!({ "script": "a.py", "instances": 2, "out_file": "o.log" }));
        assert!(app.get("merge_logs").is_none());
        let (_, app) = one_app(json!({ "script": "a.py", "disable_logs": true }));
        assert_eq!(app.get("out_file"), Some(&s("/dev/null")));
        assert_eq!(app.get("error_file"), Some(&s("/dev/null")));
    }

    #[test]
    fn pm2_log_file() {
        let (_, app) = one_app(json!({ "script": "a.js", "log_file": "/var/log/all.log" }));
        assert_eq!(app.get("out_file"), Some(&s("/var/log/all.log")));
        assert_eq!(app.get("error_file"), Some(&s("/var/log/all.log")));
        let (text, app) =
            one_app(json!({ "script": "a.js", "log": "all.log", "out_file": "o.log" }));
        assert_eq!(app.get("out_file"), Some(&s("o.log")));
        assert!(app.get("error_file").is_none());
        assert!(
            text.contains("# not supported by runner: log = \"all.log\""),
            "{text}"
        );
    }

    #[test]
    fn pm2_top_level_forms() {
        let (_, t) = convert_ok(json!([{ "script": "a.js" }, { "script": "b.js" }]));
        assert_eq!(apps(&t).len(), 2);
        let (_, t) = convert_ok(json!({ "name": "solo", "script": "a.js" }));
        assert_eq!(apps(&t)[0].get("name"), Some(&s("solo")));
        let (_, t) = convert_ok(json!({ "apps": { "script": "a.js" } }));
        assert_eq!(apps(&t).len(), 1);
        let (text, t) = convert_ok(json!({ "apps": [{ "script": "a.js" }],
            "deploy": { "production": { "user": "node", "host": "1.2.3.4" } }, "extra": 1 }));
        assert_eq!(apps(&t).len(), 1);
        assert!(text.contains("\n# PM2 deploy section ignored\n"), "{text}");
        assert!(
            text.contains("# not supported by runner: extra = 1"),
            "{text}"
        );
        assert!(!text.contains("1.2.3.4"), "{text}");
        let (text, t) = convert_ok(json!({ "apps": [] }));
        assert!(apps(&t).is_empty(), "{text}");
    }

    #[test]
    fn pm2_garbage_is_an_error() {
        for bad in [
            json!(null),
            json!(42),
            json!("ecosystem"),
            json!(true),
            json!({ "deploy": {} }),
            json!({ "apps": "web" }),
            json!([1]),
            json!({ "apps": [{ "script": "a.js" }, []] }),
        ] {
            let err = json_to_toml(&bad).expect_err(&bad.to_string());
            assert!(!err.is_empty());
        }
        let err = json_to_toml(&json!({ "apps": [{ "script": "a.js" }, 7] })).unwrap_err();
        assert!(err.contains("app #2"), "{err}");
    }

    #[test]
    fn pm2_hostile_strings_stay_toml() {
        // Values and keys that would break naive TOML or comment writing.
        let nasty = "a\"b\\c\nd\u{7f}e\u{0}f ]] [[apps]]\r\n# x";
        let (_, t) = convert_ok(json!({ "apps": [{
            "name": nasty, "script": nasty, "args": [nasty], "watch": nasty,
            nasty: nasty, "env": { nasty: nasty }, format!("env_{nasty}"): { nasty: 1 },
            "out_file": { "not": "a string" }, "instances": 1e300, "max_memory_restart": -1.5,
            "min_uptime": 1e300, "uid": -3, "kill_signal": 99999,
        }]}));
        let app = &apps(&t)[0];
        assert_eq!(app.get("name"), Some(&s(nasty)));
        assert_eq!(app.get("args"), Some(&toml::Value::Array(vec![s(nasty)])));
        let env = app.get("env").and_then(|v| v.as_table()).expect("env");
        assert_eq!(env.get(nasty), Some(&s(nasty)));
        assert!(app.get(&format!("env_{nasty}")).is_some());
        for k in [
            "out_file",
            "instances",
            "max_memory_restart",
            "min_uptime",
            "uid",
            "kill_signal",
        ] {
            assert!(app.get(k).is_none(), "{k}");
        }
    }

    #[test]
    fn pm2_deeply_varied_values_never_panic() {
        let values = [
            json!(null),
            json!(true),
            json!(-1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(-0.0),
            json!(""),
            json!("max"),
            json!([]),
            json!([null]),
            json!({}),
            json!({"a": null}),
            json!([1, "a", {"b": [true]}]),
        ];
        let keys = [
            "name",
            "script",
            "exec",
            "args",
            "interpreter",
            "node_args",
            "cwd",
            "instances",
            "exec_mode",
            "env",
            "env_production",
            "env_file",
            "port",
            "listen",
            "uid",
            "gid",
            "stop_exit_codes",
            "kill_signal",
            "max_memory_restart",
            "min_uptime",
            "log_file",
            "wait_ready",
            "depends_on",
            "time",
            "watch",
            "unknown",
        ];
        for k in keys {
            for v in &values {
                let app = json!({ "apps": [{ "script": "a.js", k: v.clone(), "instances": 2 }] });
                let (_, _) = convert_ok(app);
            }
        }
    }

    /// A small deterministic fuzzer: random PM2-shaped documents must convert without
    /// panicking, and every successful conversion must be valid TOML.
    #[test]
    fn pm2_random_documents_convert_to_valid_toml() {
        struct Rng(u64);
        impl Rng {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0
            }
            fn below(&mut self, n: u64) -> u64 {
                self.next() % n
            }
        }
        const KEYS: &[&str] = &[
            "name",
            "script",
            "exec",
            "args",
            "interpreter",
            "exec_interpreter",
            "node_args",
            "cwd",
            "instances",
            "exec_mode",
            "env",
            "env_production",
            "env_",
            "env_file",
            "port",
            "listen",
            "uid",
            "user",
            "gid",
            "out",
            "error",
            "log",
            "log_file",
            "stop_exit_codes",
            "kill_signal",
            "max_memory_restart",
            "min_uptime",
            "time",
            "watch",
            "cron_restart",
            "depends_on",
            "PORT",
            "apps",
            "deploy",
            "\u{7f}\n\"",
        ];
        fn value(r: &mut Rng, depth: u32) -> Value {
            match r.below(if depth > 2 { 6 } else { 8 }) {
                0 => Value::Null,
                1 => json!(r.below(2) == 0),
                2 => json!(r.next() as i64),
                3 => json!((r.next() as f64) / 7.0 - 1e18),
                4 => json!(KEYS[r.below(KEYS.len() as u64) as usize]),
                5 => json!(
                    ["max", "cluster", "fork_mode", "3000", "5s", "\n]]\"", ""]
                        [r.below(7) as usize]
                ),
                6 => Value::Array((0..r.below(4)).map(|_| value(r, depth + 1)).collect()),
                _ => Value::Object(
                    (0..r.below(6))
                        .map(|_| {
                            (
                                KEYS[r.below(KEYS.len() as u64) as usize].to_string(),
                                value(r, depth + 1),
                            )
                        })
                        .collect(),
                ),
            }
        }
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let mut converted = 0;
        for _ in 0..3000 {
            let doc = match r.below(3) {
                0 => {
                    json!({ "apps": [value(&mut r, 0), value(&mut r, 0)], "deploy": value(&mut r, 1) })
                }
                1 => Value::Array(vec![value(&mut r, 0)]),
                _ => value(&mut r, 0),
            };
            if let Ok(text) = json_to_toml(&doc) {
                converted += 1;
                if let Err(e) = toml::from_str::<toml::Table>(&text) {
                    panic!("invalid TOML for {doc}: {e}\n{text}");
                }
            }
        }
        assert!(converted > 100, "only {converted} documents converted");
    }
}
