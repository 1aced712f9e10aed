//! The human output of `runner check`: what would run, with only the settings that
//! differ from the defaults, in a stable order so it can be diffed.

use std::fmt::Write;
use std::path::PathBuf;

use super::model::{AppSpec, DependCondition, Ecosystem, OnSighup, ReadyCheck};
use super::shell_words;
use super::units::{format_duration, format_size};

pub fn render_check(eco: &Ecosystem) -> String {
    let mut out = String::new();
    let n = eco.apps.len();
    let _ = writeln!(
        out,
        "{}: {n} app{}",
        eco.path.display(),
        if n == 1 { "" } else { "s" }
    );
    if let Some(s) = &eco.runner.socket {
        let _ = writeln!(out, "socket: {}", s.display());
    }
    if eco.runner.on_sighup == OnSighup::Reload {
        let _ = writeln!(out, "on_sighup: reload");
    }
    if let Some(a) = &eco.runner.metrics {
        let _ = writeln!(out, "metrics: http://{a}/metrics");
    }
    for app in &eco.apps {
        out.push('\n');
        render_app(&mut out, app);
    }
    render_graph(&mut out, &eco.apps);
    out
}

/// The `depends_on` graph as start steps: each step starts once the conditions on the
/// steps before it are met (stops run in the reverse order).
fn render_graph(out: &mut String, apps: &[AppSpec]) {
    if apps.iter().all(|a| a.depends_on.is_empty()) {
        return;
    }
    let index = |name: &str| apps.iter().position(|a| a.name == name);
    let mut step = vec![0usize; apps.len()];
    // Longest path by relaxation; cycles were rejected on load, the bound is for safety.
    for _ in 0..apps.len() {
        let mut changed = false;
        for (i, a) in apps.iter().enumerate() {
            for d in &a.depends_on {
                if let Some(j) = index(d) {
                    if step[i] < step[j] + 1 {
                        step[i] = step[j] + 1;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let _ = writeln!(out, "\nstart order (depends_on):");
    let last = step.iter().copied().max().unwrap_or(0);
    for s in 0..=last {
        let names: Vec<String> = apps
            .iter()
            .enumerate()
            .filter(|(i, _)| step[*i] == s)
            .map(|(_, a)| {
                if a.depends_on.is_empty() {
                    return a.name.clone();
                }
                let deps: Vec<String> = a
                    .depends_on
                    .iter()
                    .map(|d| format!("{d} {}", a.depend_condition(d).as_str()))
                    .collect();
                format!("{} (after {})", a.name, deps.join(", "))
            })
            .collect();
        let _ = writeln!(out, "  {}. {}", s + 1, names.join("; "));
    }
}

fn row(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "  {label:<13} {value}");
}

fn render_app(out: &mut String, app: &AppSpec) {
    let d = AppSpec::with_defaults("", PathBuf::new(), Vec::new(), PathBuf::new());
    let _ = writeln!(out, "{}", app.name);
    row(out, "namespace", &app.namespace);
    let plural = if app.instances == 1 { "" } else { "s" };
    row(
        out,
        "mode",
        format!(
            "{}, {} instance{plural}",
            app.exec_mode.as_str(),
            app.instances
        ),
    );
    let argv: Vec<String> = app
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    row(out, "command", shell_words::join(&argv));
    if app.argv.first().map(|a| a.as_os_str()) != Some(app.program.as_os_str()) {
        row(out, "program", app.program.display());
    }
    row(out, "cwd", app.cwd.display());
    if !app.listen.is_empty() {
        let l: Vec<String> = app.listen.iter().map(|a| a.to_string()).collect();
        row(out, "listen", l.join(", "));
    }
    let mut first = true;
    for (k, v) in &app.env {
        let label = if first { "env" } else { "" };
        first = false;
        row(out, label, format!("{k}={}", shell_words::quote(v)));
    }
    if app.instance_var != d.instance_var {
        row(out, "instance_var", &app.instance_var);
    }
    if let Some(v) = &app.increment_var {
        row(out, "increment_var", v);
    }
    if app.node_ipc {
        row(out, "node_ipc", "yes");
    }

    let mut ready = Vec::new();
    if app.wait_ready {
        ready.push("wait_ready".to_string());
    }
    if let Some(r) = &app.ready_check {
        ready.push(match r {
            ReadyCheck::Tcp { host, port } => format!("tcp://{}:{port}", host_for_url(host)),
            ReadyCheck::Http { host, port, path } => {
                format!("http://{}:{port}{path}", host_for_url(host))
            }
            ReadyCheck::Exec(c) => format!("exec:{c}"),
        });
    }
    if !ready.is_empty() || app.listen_timeout != d.listen_timeout {
        ready.push(format!(
            "listen_timeout {}",
            format_duration(app.listen_timeout)
        ));
        row(out, "ready", ready.join(", "));
    }
    if let Some(w) = app.watchdog {
        row(out, "watchdog", format_duration(w));
    }
    if let Some(h) = &app.health_check {
        let at = match h.addr {
            Some(a) if !matches!(&h.probe, ReadyCheck::Tcp { host, .. } | ReadyCheck::Http { host, .. } if host.parse::<std::net::IpAddr>().is_ok()) =>
            {
                format!(" (at {a})")
            }
            _ => String::new(),
        };
        row(
            out,
            "health_check",
            format!(
                "{}{at}, every {}, timeout {}, restart after {} failure{}",
                h.probe,
                format_duration(h.interval),
                format_duration(h.timeout),
                h.failures,
                if h.failures == 1 { "" } else { "s" }
            ),
        );
    }
    if !app.depends_on.is_empty() {
        let deps: Vec<String> = app
            .depends_on
            .iter()
            .map(|d| match app.depend_condition(d) {
                DependCondition::Online => d.clone(),
                c => format!("{d} ({})", c.as_str()),
            })
            .collect();
        row(out, "depends_on", deps.join(", "));
    }
    if app.critical {
        row(out, "critical", "yes");
    }

    if app.kill_signal != d.kill_signal || app.kill_timeout != d.kill_timeout || !app.treekill {
        let mut s = format!(
            "{}, then SIGKILL after {}",
            app.kill_signal.as_str(),
            format_duration(app.kill_timeout)
        );
        if !app.treekill {
            s.push_str(", main process only (treekill = false)");
        }
        row(out, "stop", s);
    }

    let policy_is_default = app.autorestart == d.autorestart
        && app.stop_exit_codes.is_empty()
        && app.min_uptime == d.min_uptime
        && app.max_restarts == d.max_restarts
        && app.restart_delay == d.restart_delay
        && app.exp_backoff_restart_delay.is_none();
    if !policy_is_default {
        let s = if !app.autorestart {
            "never".to_string()
        } else {
            let mut parts = vec![format!(
                "up to {} unstable restarts (min_uptime {})",
                app.max_restarts,
                format_duration(app.min_uptime)
            )];
            if let Some(b) = app.exp_backoff_restart_delay {
                parts.push(format!("exponential backoff from {}", format_duration(b)));
            } else if !app.restart_delay.is_zero() {
                parts.push(format!("delay {}", format_duration(app.restart_delay)));
            }
            if !app.stop_exit_codes.is_empty() {
                let codes: Vec<String> =
                    app.stop_exit_codes.iter().map(|c| c.to_string()).collect();
                parts.push(format!("not after exit {}", codes.join(", ")));
            }
            parts.join(", ")
        };
        row(out, "restart", s);
    }
    if let Some(m) = app.max_memory_restart {
        row(out, "memory limit", format_size(m));
    }
    if let Some(c) = &app.credentials {
        let groups: Vec<String> = c.groups.iter().map(|g| g.to_string()).collect();
        let mut s = format!("uid {}, gid {}", c.uid, c.gid);
        if !groups.is_empty() {
            let _ = write!(s, ", groups {}", groups.join(","));
        }
        row(out, "user", s);
    }
    if let Some(p) = &app.out_file {
        row(out, "out_file", p.display());
    }
    if let Some(p) = &app.error_file {
        row(out, "error_file", p.display());
    }
    let mut prefix = Vec::new();
    if app.log_prefix {
        prefix.push("name");
    }
    if app.time {
        prefix.push("time");
    }
    if !prefix.is_empty() {
        row(out, "log prefix", prefix.join(" + "));
    }
    if let Some(c) = &app.cron_restart {
        let tz = crate::cron::local_zone_or_utc();
        let next = c
            .next_after(&tz, crate::tz::now_seconds())
            .map_or("never".to_string(), |t| crate::cron::show(&tz, t));
        row(out, "cron_restart", format!("{c}, next run {next}"));
    }
    if let Some(w) = &app.watch {
        let paths: Vec<String> = w.paths.iter().map(|p| p.display().to_string()).collect();
        let mut ignore = vec!["node_modules".to_string(), ".*".to_string()];
        ignore.extend(w.ignore.iter().cloned());
        row(
            out,
            "watch",
            format!(
                "{}; ignoring {}; delay {}",
                paths.join(", "),
                ignore.join(", "),
                format_duration(w.delay)
            ),
        );
    }
}

fn host_for_url(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
