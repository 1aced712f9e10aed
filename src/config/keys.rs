//! Every key the ecosystem file knows, in one place: what runner implements, the PM2
//! spellings it accepts as aliases, and the PM2 keys it only warns about.

/// Keys of an `[[apps]]` table that runner implements (SPEC section 2).
pub const APP_KEYS: &[&str] = &[
    "name",
    "script",
    "args",
    "interpreter",
    "interpreter_args",
    "cwd",
    "namespace",
    "instances",
    "exec_mode",
    "listen",
    "env_file",
    "env",
    "instance_var",
    "increment_var",
    "wait_ready",
    "listen_timeout",
    "ready_check",
    "depends_on",
    "critical",
    "watchdog",
    "health_check",
    "health_interval",
    "health_timeout",
    "health_failures",
    "kill_signal",
    "kill_timeout",
    "treekill",
    "autorestart",
    "stop_exit_codes",
    "min_uptime",
    "max_restarts",
    "restart_delay",
    "exp_backoff_restart_delay",
    "max_memory_restart",
    "uid",
    "gid",
    "out_file",
    "error_file",
    "log_prefix",
    "time",
    "log_date_format",
    "merge_logs",
    "cron_restart",
    "watch",
    "ignore_watch",
    "watch_delay",
];

/// Other spellings PM2 accepts for the same option: (alias, canonical key).
pub const ALIASES: &[(&str, &str)] = &[
    ("node_args", "interpreter_args"),
    ("exec_interpreter", "interpreter"),
    ("err_file", "error_file"),
    ("error", "error_file"),
    ("output", "out_file"),
    ("combine_logs", "merge_logs"),
    ("cron", "cron_restart"),
];

/// PM2 app options runner does not implement: accepted with a warning so a PM2 file
/// translated line by line still loads.
pub const PM2_UNSUPPORTED: &[&str] = &[
    "watch_options",
    "log_file",
    "log",
    "log_type",
    "pid_file",
    "pid",
    "source_map_support",
    "disable_source_map_support",
    "vizion",
    "post_update",
    "force",
    "autostart",
    "shutdown_with_message",
    "disable_trace",
    "trace",
    "filter_env",
    "appendEnvToName",
    "append_env_to_name",
    "port",
    "kill_retry_time",
    "automation",
    "pmx",
    "deep_monitoring",
    "windowsHide",
    "instance_id_env",
    "version",
];

/// PM2 top-level sections runner ignores with a warning.
pub const PM2_TOP_LEVEL: &[&str] = &["deploy"];

/// Keys of the top level.
pub const TOP_KEYS: &[&str] = &["runner", "apps"];

/// Keys of the `[runner]` table.
pub const RUNNER_KEYS: &[&str] = &["socket", "on_sighup", "metrics"];

/// What a key of an app table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKey<'a> {
    /// A key runner implements, under its canonical name.
    Known(&'static str),
    /// `env_<profile>`, with the profile name.
    Profile(&'a str),
    /// A PM2 option runner ignores.
    Unsupported,
    Unknown,
}

pub fn classify(key: &str) -> AppKey<'_> {
    if let Some(k) = APP_KEYS.iter().find(|k| **k == key) {
        return AppKey::Known(k);
    }
    if let Some((_, k)) = ALIASES.iter().find(|(a, _)| *a == key) {
        return AppKey::Known(k);
    }
    if let Some(profile) = key.strip_prefix("env_") {
        if !profile.is_empty() {
            return AppKey::Profile(profile);
        }
    }
    if PM2_UNSUPPORTED.contains(&key) {
        return AppKey::Unsupported;
    }
    AppKey::Unknown
}

/// Every spelling a user could have meant, for suggestions.
pub fn app_spellings() -> impl Iterator<Item = &'static str> {
    APP_KEYS
        .iter()
        .copied()
        .chain(ALIASES.iter().map(|(a, _)| *a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified() {
        assert_eq!(classify("instances"), AppKey::Known("instances"));
        assert_eq!(classify("node_args"), AppKey::Known("interpreter_args"));
        assert_eq!(classify("output"), AppKey::Known("out_file"));
        assert_eq!(classify("env_file"), AppKey::Known("env_file"));
        assert_eq!(classify("env_production"), AppKey::Profile("production"));
        assert_eq!(classify("env_"), AppKey::Unknown);
        assert_eq!(classify("watch_options"), AppKey::Unsupported);
        assert_eq!(classify("cron"), AppKey::Known("cron_restart"));
        assert_eq!(classify("instnces"), AppKey::Unknown);
    }

    #[test]
    fn no_key_is_in_two_lists() {
        for k in PM2_UNSUPPORTED {
            assert!(!APP_KEYS.contains(k), "{k}");
            assert!(!ALIASES.iter().any(|(a, _)| a == k), "{k}");
        }
        for (a, canonical) in ALIASES {
            assert!(!APP_KEYS.contains(a), "{a}");
            assert!(APP_KEYS.contains(canonical), "{canonical}");
        }
    }
}
