//! The environment an instance starts with: runner's own, minus what belongs to runner's
//! supervisor, plus the app's `env` and the per-instance variables.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::config::{AppSpec, ExecMode};
use crate::core::Slot;

/// Variables that describe runner's own relation to its parent (systemd socket
/// activation and notification); passing them on would make apps talk to runner's parent.
const RUNNER_ONLY: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// Runner's environment without the variables meant for runner alone.
pub fn inherited() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| !RUNNER_ONLY.iter().any(|r| k.as_bytes() == r.as_bytes()))
        .collect()
}

/// The full environment of one instance, later entries winning.
pub fn for_instance(
    base: &[(OsString, OsString)],
    spec: &AppSpec,
    slot: &Slot,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = base.to_vec();
    let mut set = |k: &str, v: String| {
        let k = OsString::from(k);
        env.retain(|(key, _)| *key != k);
        env.push((k, OsString::from(v)));
    };
    for (k, v) in &spec.env {
        set(k, v.clone());
    }
    if let Some(var) = &spec.increment_var {
        if let Some(base) = spec.env.get(var).and_then(|v| v.trim().parse::<i64>().ok()) {
            set(var, (base + i64::from(slot.index)).to_string());
        }
    }
    set(&spec.instance_var, slot.index.to_string());
    set("RUNNER_APP", spec.name.clone());
    set("RUNNER_INSTANCE_ID", slot.id.to_string());
    set("pm_id", slot.id.to_string());
    if spec.node_ipc {
        // What PM2 puts in every app's environment and Node apps read to know where
        // they run (PM2 names the modes `cluster_mode` / `fork_mode`); the app's own
        // `env` wins.
        let mode = match spec.exec_mode {
            ExecMode::Cluster => "cluster_mode",
            ExecMode::Fork => "fork_mode",
        };
        for (k, v) in [
            ("name", spec.name.clone()),
            ("exec_mode", mode.to_string()),
            ("instances", spec.instances.to_string()),
        ] {
            if !spec.env.contains_key(k) {
                set(k, v);
            }
        }
    }
    env
}
