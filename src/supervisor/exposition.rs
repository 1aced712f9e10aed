//! The body of `GET /metrics`: Prometheus text exposition format 0.0.4.
//!
//! Every metric name starts with `runner_`. Per-instance series carry the labels `app`,
//! `instance` (the index 0..N-1, as `NODE_APP_INSTANCE`) and `namespace`; per-app series
//! `app` and `namespace`. The README lists every name with its type and help text; the
//! table [`FAMILIES`] below is the one place they are written.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::core::{Core, SlotId, Status};
use crate::procfs;
use crate::supervisor::metrics::Usage;

/// (name, type, help) of every metric family, in the order they are written.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "runner_instance_up",
        "gauge",
        "1 when the instance has a running main process, else 0.",
    ),
    (
        "runner_instance_ready",
        "gauge",
        "1 when the instance is online (ready), else 0.",
    ),
    (
        "runner_instance_restarts_total",
        "counter",
        "Restarts of the instance since runner started (as in runner list).",
    ),
    (
        "runner_instance_memory_bytes",
        "gauge",
        "Resident memory of the instance's process tree, as max_memory_restart measures it.",
    ),
    (
        "runner_instance_cpu_seconds_total",
        "counter",
        "CPU time (user and system) used by the live processes of the instance's tree.",
    ),
    (
        "runner_instance_start_time_seconds",
        "gauge",
        "Start time of the instance's current process, in seconds since the Unix epoch.",
    ),
    (
        "runner_instance_last_exit_code",
        "gauge",
        "Exit code of the instance's last process to end (128+N for signal N).",
    ),
    (
        "runner_instance_health_check_failures_total",
        "counter",
        "Failed health checks of the instance since runner started.",
    ),
    (
        "runner_app_reloads_total",
        "counter",
        "Reloads of the app that ended (reload, apply, SIGHUP), failed ones included.",
    ),
    (
        "runner_app_reload_failures_total",
        "counter",
        "Reloads of the app that failed (the old instances kept serving).",
    ),
    (
        "runner_build_info",
        "gauge",
        "Always 1; the label version is runner's version.",
    ),
    (
        "runner_open_fds",
        "gauge",
        "File descriptors open in runner itself.",
    ),
    (
        "runner_resident_memory_bytes",
        "gauge",
        "Resident memory of runner itself.",
    ),
];

/// What a scrape reads besides the core: one /proc pass, made by the caller.
pub struct Sample<'a> {
    pub usage: &'a HashMap<SlotId, Usage>,
    pub own_rss: u64,
    pub own_fds: u64,
}

/// Renders the whole exposition.
pub fn render(core: &Core, sample: &Sample<'_>, now: Instant) -> String {
    let mut series: Vec<Vec<String>> = vec![Vec::new(); FAMILIES.len()];
    let wall_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let ticks = procfs::clock_ticks_per_sec().max(1) as f64;
    for slot in core.slots() {
        let Some(spec) = core.spec_of(slot.id) else {
            continue;
        };
        let labels = format!(
            "app=\"{}\",instance=\"{}\",namespace=\"{}\"",
            escape(&slot.app),
            slot.index,
            escape(&spec.namespace)
        );
        let running = slot.proc.as_ref().filter(|p| p.main_alive());
        let u = sample.usage.get(&slot.id).copied().unwrap_or_default();
        let mut put =
            |i: usize, v: String| series[i].push(format!("{}{{{labels}}} {v}", FAMILIES[i].0));
        put(0, bit(running.is_some()));
        put(1, bit(slot.status() == Status::Online));
        put(2, slot.restarts.to_string());
        put(3, u.rss.to_string());
        put(4, float(u.cpu_ticks as f64 / ticks));
        if let Some(p) = &slot.proc {
            let age = now.saturating_duration_since(p.started).as_secs_f64();
            put(5, float(wall_now - age));
        }
        if let Some(e) = slot.last_exit {
            put(6, e.as_code().to_string());
        }
        put(7, slot.health_failures_total.to_string());
    }
    for app in core.apps() {
        let labels = format!(
            "app=\"{}\",namespace=\"{}\"",
            escape(&app.spec.name),
            escape(&app.spec.namespace)
        );
        series[8].push(format!("{}{{{labels}}} {}", FAMILIES[8].0, app.reloads));
        series[9].push(format!(
            "{}{{{labels}}} {}",
            FAMILIES[9].0, app.reload_failures
        ));
    }
    series[10].push(format!(
        "{}{{version=\"{}\"}} 1",
        FAMILIES[10].0,
        escape(env!("CARGO_PKG_VERSION"))
    ));
    series[11].push(format!("{} {}", FAMILIES[11].0, sample.own_fds));
    series[12].push(format!("{} {}", FAMILIES[12].0, sample.own_rss));

    let mut out = String::with_capacity(4096);
    for ((name, kind, help), lines) in FAMILIES.iter().zip(series) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

fn bit(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

/// A float as Prometheus reads it (no exponent for ordinary values).
fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "0".to_string()
    }
}

/// A label value: backslash, double quote and newline escaped (format 0.0.4).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("plain-name"), "plain-name");
    }

    #[test]
    fn every_family_is_prefixed_and_typed() {
        for (name, kind, help) in FAMILIES {
            assert!(name.starts_with("runner_"), "{name}");
            assert!(matches!(*kind, "gauge" | "counter"), "{name}");
            assert_eq!(kind == &"counter", name.ends_with("_total"), "{name}");
            assert!(!help.contains('\n'));
        }
    }
}
