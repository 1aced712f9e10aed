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
    with_index(base, spec, slot.index, slot.id.to_string())
}

fn set_var(env: &mut Vec<(OsString, OsString)>, k: &str, v: String) {
    let k = OsString::from(k);
    env.retain(|(key, _)| *key != k);
    env.push((k, OsString::from(v)));
}

/// [`for_instance`] for the instance at `index` with the id `id`.
fn with_index(
    base: &[(OsString, OsString)],
    spec: &AppSpec,
    index: u32,
    id: String,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = base.to_vec();
    // An app running as another user gets that user's identity, as systemd's `User=`
    // gives it, not runner's (often root's HOME); its own `env` still wins.
    if let Some(c) = spec.credentials.as_ref() {
        // SAFETY: geteuid has no preconditions.
        if c.uid != unsafe { libc::geteuid() } {
            match &c.passwd {
                Some((name, home)) => {
                    set_var(&mut env, "HOME", home.clone());
                    set_var(&mut env, "USER", name.clone());
                    set_var(&mut env, "LOGNAME", name.clone());
                }
                None => {
                    set_var(&mut env, "HOME", "/".to_string());
                    env.retain(|(k, _)| k != "USER" && k != "LOGNAME");
                }
            }
        }
    }
    let mut set = |k: &str, v: String| set_var(&mut env, k, v);
    for (k, v) in &spec.env {
        set(k, v.clone());
    }
    if let Some(var) = &spec.increment_var {
        if let Some(base) = spec.env.get(var).and_then(|v| v.trim().parse::<i64>().ok()) {
            // Load checks that base + MAX_INSTANCES fits; checked anyway, never a panic.
            if let Some(v) = base.checked_add(i64::from(index)) {
                set(var, v.to_string());
            }
        }
    }
    set(&spec.instance_var, index.to_string());
    set("RUNNER_APP", spec.name.clone());
    set("pm_id", id.clone());
    set("RUNNER_INSTANCE_ID", id);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credentials;

    fn get<'a>(env: &'a [(OsString, OsString)], k: &str) -> Option<&'a str> {
        env.iter()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| v.to_str())
    }

    #[test]
    fn another_users_instance_gets_its_home_user_and_logname_and_env_still_wins() {
        let base = vec![
            (OsString::from("HOME"), OsString::from("/root")),
            (OsString::from("USER"), OsString::from("root")),
            (OsString::from("LOGNAME"), OsString::from("root")),
        ];
        let mut spec =
            AppSpec::with_defaults("a", "/bin/true".into(), vec!["true".into()], "/".into());
        spec.credentials = Some(Credentials {
            uid: 3_999_998,
            gid: 3_999_998,
            groups: vec![],
            passwd: Some(("svc".into(), "/home/svc".into())),
        });
        let env = with_index(&base, &spec, 0, "0".into());
        assert_eq!(get(&env, "HOME"), Some("/home/svc"));
        assert_eq!(get(&env, "USER"), Some("svc"));
        assert_eq!(get(&env, "LOGNAME"), Some("svc"));
        spec.env.insert("HOME".into(), "/srv".into());
        let env = with_index(&base, &spec, 0, "0".into());
        assert_eq!(get(&env, "HOME"), Some("/srv"));
        // A numeric uid without passwd entry: never runner's home or name.
        spec.env.clear();
        spec.credentials.as_mut().unwrap().passwd = None;
        let env = with_index(&base, &spec, 0, "0".into());
        assert_eq!(get(&env, "HOME"), Some("/"));
        assert_eq!(get(&env, "USER"), None);
        assert_eq!(get(&env, "LOGNAME"), None);
    }

    #[test]
    fn increment_var_never_overflows() {
        let mut spec =
            AppSpec::with_defaults("a", "/bin/true".into(), vec!["true".into()], "/".into());
        spec.env.insert("PORT".into(), i64::MAX.to_string());
        spec.increment_var = Some("PORT".into());
        let env = with_index(&[], &spec, 3, "1".into());
        assert_eq!(get(&env, "PORT"), Some(i64::MAX.to_string().as_str()));
    }
}
