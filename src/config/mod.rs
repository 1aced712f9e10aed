//! The ecosystem file: TOML (or a PM2 file converted to TOML) → validated `Ecosystem`.
//!
//! Loading walks the spanned TOML tree by hand rather than through serde, so that every
//! problem in the file is reported at once, each with file, line, column and, for an
//! unknown key, the closest known one.

pub mod import;
pub mod model;

mod addr;
mod app;
pub mod bounded;
mod cpus;
mod dotenv;
mod error;
mod graph;
mod keys;
mod program;
mod render;
mod shell_words;
mod suggest;
mod units;
mod users;
mod value;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hardening;

pub use cpus::usable_cpus;
pub use error::{ConfigError, Diagnostic};
pub use model::*;
pub use render::render_check;
pub use units::{parse_duration, parse_signal, parse_size};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use app::Built;
use error::Source;
use suggest::did_you_mean;
use value::{Ctx, Val};

/// Command-line choices that change how a file is read.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--env NAME`: merge `env_NAME` over `env` in every app that has it.
    pub profile: Option<String>,
    /// `--only`: keep these apps and what they depend on (names may also be
    /// comma-separated within one entry).
    pub only: Vec<String>,
}

/// The formats runner reads besides its own TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Foreign {
    Pm2,
    Supervisord,
    ProcessCompose,
}

/// Which converter a file needs, from its extension or (supervisord) its sections.
fn foreign_kind(path: &Path, text: Option<&str>) -> Option<Foreign> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("js" | "cjs" | "mjs" | "json") => Some(Foreign::Pm2),
        Some("conf" | "ini") => Some(Foreign::Supervisord),
        Some("yaml" | "yml") => Some(Foreign::ProcessCompose),
        _ if text.is_some_and(import::supervisord::looks_like) => Some(Foreign::Supervisord),
        _ => None,
    }
}

/// A PM2 or supervisord file as ecosystem TOML text, with what the conversion could
/// not carry over (`runner import`, and `load` before it reads the TOML).
pub fn import(path: &Path) -> Result<(String, Vec<String>), ConfigError> {
    let text = std::fs::read_to_string(path).ok();
    match foreign_kind(path, text.as_deref()) {
        Some(Foreign::Supervisord) => import::supervisord::to_toml(path)
            .map(|c| (c.toml, c.warnings))
            .map_err(ConfigError::new),
        Some(Foreign::ProcessCompose) => import::compose::to_toml(path)
            .map(|c| (c.toml, c.warnings))
            .map_err(ConfigError::new),
        _ => pm2_to_toml(path)
            .map(|t| (t, Vec::new()))
            .map_err(|e| pm2_error(path, e)),
    }
}

/// A PM2 converter's message as an error about the whole file.
fn pm2_error(path: &Path, e: String) -> ConfigError {
    // The converter's messages usually start with the path already.
    let prefix = format!("{}: ", path.display());
    let msg = e.strip_prefix(&prefix).unwrap_or(&e).to_string();
    ConfigError::whole_file(path, msg)
}

/// For `apply` in the running supervisor: when [`load`] of `path` would run `node` (a
/// PM2 `.js`, `.cjs` or `.mjs` file), the command to run instead, so that the caller can
/// wait for it without blocking (within [`import::pm2::NODE_TIME_LIMIT`] and
/// [`import::pm2::NODE_MAX_OUTPUT`]) and finish with [`load_evaluated`]. None: `load` it.
pub fn node_evaluation(path: &Path) -> Option<Result<std::process::Command, ConfigError>> {
    let esm = import::pm2::node_evaluates(path)?;
    Some(
        read_text(path)
            .and_then(|_| import::pm2::node_evaluation(path, esm).map_err(|e| pm2_error(path, e))),
    )
}

/// The rest of [`load`] for a file [`node_evaluation`] gave a command for, from how that
/// command's run ended.
pub fn load_evaluated(
    path: &Path,
    opts: &LoadOptions,
    run: Result<bounded::Output, bounded::Error>,
) -> Result<Ecosystem, ConfigError> {
    let text = import::pm2::evaluated_to_toml(path, run).map_err(|e| pm2_error(path, e))?;
    load_str(&text, path, opts).map_err(|e| converted_error(path, e))
}

/// The file's text, which must be UTF-8.
fn read_text(path: &Path) -> Result<String, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| ConfigError::whole_file(path, "not valid UTF-8 text")),
        Err(e) => Err(ConfigError::whole_file(path, format!("cannot read: {e}"))),
    }
}

/// Reads and validates an ecosystem file. PM2 files (`.js`, `.cjs`, `.mjs`, `.json`),
/// supervisord files (`.conf`, `.ini`, or any file with a `[program:x]` section) and
/// process-compose files (`.yaml`, `.yml`) are converted as `runner import` would, then read as TOML.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Ecosystem, ConfigError> {
    let raw = read_text(path)?;
    if foreign_kind(path, Some(&raw)).is_none() {
        return load_str(&raw, path, opts);
    }
    let (text, warnings) = import(path)?;
    let mut eco = load_str(&text, path, opts).map_err(|e| converted_error(path, e))?;
    eco.warnings.splice(0..0, warnings);
    Ok(eco)
}

/// An error in converted TOML points at lines the user never wrote: say so.
fn converted_error(path: &Path, e: ConfigError) -> ConfigError {
    let diagnostics = e
        .diagnostics()
        .iter()
        .map(|d| Diagnostic {
            message: format!(
                "{} (in the TOML `runner import {}` prints)",
                d.message,
                path.display()
            ),
            ..d.clone()
        })
        .collect();
    ConfigError::new(diagnostics)
}

fn pm2_to_toml(path: &Path) -> Result<String, String> {
    import::pm2::to_toml(path)
}

/// Parses TOML text as if read from `path` (used by `load`, by tests, and by the PM2
/// import path). Relative paths in it resolve against `path`'s directory.
pub fn load_str(text: &str, path: &Path, opts: &LoadOptions) -> Result<Ecosystem, ConfigError> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = absolute
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));

    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(syntax_errors(path, text, syntax));
    }
    let doc_span = doc.span();
    let doc = doc.into_inner();

    let mut ctx = Ctx::new(path, text, dir);
    let mut runner = RunnerSettings::default();
    let mut tables: Vec<(&DeTable, std::ops::Range<usize>)> = Vec::new();
    let mut apps_malformed = false;

    let mut entries: Vec<_> = doc.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (k, v) in entries {
        let key: &str = k.get_ref();
        match key {
            "runner" => runner = runner_settings(&mut ctx, v),
            "apps" => {
                let before = ctx.errors.len();
                app_tables(&mut ctx, v, &mut tables);
                apps_malformed = ctx.errors.len() > before;
            }
            _ if keys::PM2_TOP_LEVEL.contains(&key) => ctx.warn(
                &k.span(),
                format!("`{key}` is a PM2 section runner does not implement; ignored"),
            ),
            _ => {
                let mut hint = did_you_mean(key, keys::TOP_KEYS.iter().copied());
                if hint.is_empty() && !matches!(keys::classify(key), keys::AppKey::Unknown) {
                    hint = format!("; `{key}` belongs in an [[apps]] table");
                }
                ctx.error(
                    &k.span(),
                    format!("unknown key `{key}` at the top level{hint}"),
                );
            }
        }
    }
    // An empty file or `apps = []` would start nothing and exit at once: surely a mistake.
    if tables.is_empty() && !apps_malformed {
        ctx.error(
            &doc_span,
            "no apps: add an [[apps]] table with at least a `script`",
        );
    }

    let built: Vec<Built> = tables
        .iter()
        .enumerate()
        .map(|(i, (t, header))| app::build(&mut ctx, t, header.clone(), i, opts.profile.as_deref()))
        .collect();
    let deps = check_across_apps(&mut ctx, &built);
    let keep = select_only(&mut ctx, &built, &deps, &opts.only);

    // File order reads best; findings in other files (env files) and without a position
    // (`--only`) come after.
    let main_file = ctx.src.path.to_path_buf();
    let order = |d: &Diagnostic| (d.file != main_file, d.line == 0, d.line, d.col);
    ctx.errors.sort_by_key(order);
    ctx.warnings.sort_by_key(order);
    if !ctx.errors.is_empty() {
        return Err(ConfigError::new(ctx.errors));
    }
    let warnings = ctx.warnings.iter().map(|w| w.to_string()).collect();
    let mut apps: Vec<AppSpec> = built.into_iter().map(|b| b.spec).collect();
    if let Some(keep) = keep {
        let mut i = 0;
        apps.retain(|_| {
            i += 1;
            keep.contains(&(i - 1))
        });
    }
    Ok(Ecosystem {
        path: absolute,
        runner,
        apps,
        warnings,
    })
}

fn syntax_errors(path: &Path, text: &str, mut errs: Vec<toml::de::Error>) -> ConfigError {
    let src = Source::new(path, text);
    errs.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    let mut out: Vec<Diagnostic> = Vec::new();
    for e in errs {
        let msg = format!("invalid TOML: {}", e.message().trim_end());
        let d = match e.span() {
            Some(s) => src.diagnostic(&s, msg),
            None => src.diagnostic(&(0..0), msg),
        };
        if !out.contains(&d) {
            out.push(d);
        }
    }
    ConfigError::new(out)
}

fn runner_settings(ctx: &mut Ctx, v: &Val) -> RunnerSettings {
    let mut settings = RunnerSettings::default();
    let DeValue::Table(t) = v.get_ref() else {
        ctx.type_error("runner", "a table", v);
        return settings;
    };
    let mut entries: Vec<_> = t.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (k, v) in entries {
        let key: &str = k.get_ref();
        match key {
            "socket" => settings.socket = ctx.path("socket", v),
            "on_sighup" => match ctx.string("on_sighup", v).as_deref() {
                Some("forward") => settings.on_sighup = OnSighup::Forward,
                Some("reload") => settings.on_sighup = OnSighup::Reload,
                Some(other) => ctx.error(
                    &v.span(),
                    format!("`on_sighup` must be \"forward\" or \"reload\", found \"{other}\""),
                ),
                None => {}
            },
            "metrics" => {
                if let Some(text) = ctx.nonempty("metrics", v) {
                    match addr::parse_metrics(&text) {
                        Ok(a) => settings.metrics = Some(a),
                        Err(e) => ctx.error(&v.span(), format!("`metrics`: {e}")),
                    }
                }
            }
            _ => {
                let hint = did_you_mean(key, keys::RUNNER_KEYS.iter().copied());
                ctx.error(&k.span(), format!("unknown key `{key}` in [runner]{hint}"));
            }
        }
    }
    settings
}

fn app_tables<'t, 'i>(
    ctx: &mut Ctx,
    v: &'t Val<'i>,
    out: &mut Vec<(&'t DeTable<'i>, std::ops::Range<usize>)>,
) {
    let DeValue::Array(items) = v.get_ref() else {
        ctx.type_error("apps", "an array of tables ([[apps]])", v);
        return;
    };
    for item in items.iter() {
        match item.get_ref() {
            DeValue::Table(t) => out.push((t, item.span())),
            other => {
                let msg = format!(
                    "each entry of `apps` must be a table, found {}",
                    value::type_phrase(other)
                );
                ctx.error(&item.span(), msg);
            }
        }
    }
}

/// Duplicate names and the `depends_on` graph. Returns each app's dependencies as
/// indices (unknown names and self-references left out, as they are already errors).
fn check_across_apps(ctx: &mut Ctx, built: &[Built]) -> Vec<Vec<usize>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, b) in built.iter().enumerate() {
        let Some(name) = b.name.as_deref() else {
            continue;
        };
        match index.get(name) {
            Some(&first) => {
                let (line, col) = ctx.src.position(built[first].name_span.start);
                ctx.error(
                    &b.name_span,
                    format!("duplicate app name `{name}` (first used at {line}:{col})"),
                );
            }
            None => {
                index.insert(name, i);
            }
        }
    }
    let names: Vec<&str> = index.keys().copied().collect();
    let mut deps = vec![Vec::new(); built.len()];
    for (i, b) in built.iter().enumerate() {
        for (d, span) in &b.deps {
            match index.get(d.as_str()) {
                Some(&j) if j == i => {
                    ctx.error(span, format!("app `{d}` cannot depend on itself"));
                }
                Some(&j) => deps[i].push(j),
                None => {
                    let hint = did_you_mean(d, names.iter().copied());
                    ctx.error(
                        span,
                        format!("`depends_on` names `{d}`, which is not an app in this file{hint}"),
                    );
                }
            }
        }
    }
    for cycle in graph::cycles(&deps) {
        let path: Vec<&str> = cycle.iter().map(|&i| built[i].spec.name.as_str()).collect();
        let start = cycle.first().copied().unwrap_or(0);
        ctx.error(
            &built[start].deps_span,
            format!("`depends_on` cycle: {}", path.join(" -> ")),
        );
    }
    deps
}

/// The indices `--only` keeps, or None to keep everything.
fn select_only(
    ctx: &mut Ctx,
    built: &[Built],
    deps: &[Vec<usize>],
    only: &[String],
) -> Option<Vec<usize>> {
    let wanted: Vec<&str> = only
        .iter()
        .flat_map(|o| o.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let names: Vec<&str> = built.iter().filter_map(|b| b.name.as_deref()).collect();
    let mut roots = Vec::new();
    for w in wanted {
        match built.iter().position(|b| b.name.as_deref() == Some(w)) {
            Some(i) => roots.push(i),
            None => {
                let hint = did_you_mean(w, names.iter().copied());
                ctx.errors.push(Diagnostic {
                    file: ctx.src.path.to_path_buf(),
                    line: 0,
                    col: 0,
                    message: format!("--only names `{w}`, which is not an app in this file{hint}"),
                });
            }
        }
    }
    Some(graph::closure(deps, &roots))
}
