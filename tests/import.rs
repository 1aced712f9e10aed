//! `runner import FILE` end to end: PM2 files on disk through the built binary.
//!
//! The crate is a binary crate, so these tests drive `runner import` as a user would and
//! judge the result the way the loader will: stdout must parse as TOML.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pm2")
        .join(name)
}

fn import(name: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("import")
        .arg(fixture(name))
        .output()
        .expect("run the runner binary")
}

/// Tests of `.js` files need node; CI installs it, a bare dev box may not have it.
fn have_node() -> bool {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("note: node is not in PATH; skipping a PM2 .js import test");
    }
    ok
}

/// A successful import: exit 0, stdout is TOML. Returns the text and the `apps` tables.
fn import_ok(name: &str) -> (String, Vec<toml::Table>) {
    let out = import(name);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "runner import {name} failed\nstderr: {stderr}\nstdout: {stdout}"
    );
    let doc: toml::Table = toml::from_str(&stdout)
        .unwrap_or_else(|e| panic!("runner import {name} printed invalid TOML: {e}\n{stdout}"));
    let apps = doc
        .get("apps")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_table().cloned()).collect())
        .unwrap_or_default();
    (stdout, apps)
}

/// A failed import: exit 2, nothing on stdout, the reason on stderr.
fn import_err(name: &str) -> String {
    let out = import(name);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "runner import {name} should fail with 2\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty(), "no TOML on failure");
    assert!(stderr.starts_with("runner: "), "{stderr}");
    stderr
}

fn app<'a>(apps: &'a [toml::Table], name: &str) -> &'a toml::Table {
    apps.iter()
        .find(|a| a.get("name").and_then(|n| n.as_str()) == Some(name))
        .unwrap_or_else(|| panic!("no app {name} in {apps:?}"))
}

fn str_of<'a>(t: &'a toml::Table, key: &str) -> Option<&'a str> {
    t.get(key).and_then(|v| v.as_str())
}

fn int_of(t: &toml::Table, key: &str) -> Option<i64> {
    t.get(key).and_then(|v| v.as_integer())
}

fn strings(t: &toml::Table, key: &str) -> Vec<String> {
    t.get(key)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn sub<'a>(t: &'a toml::Table, key: &str) -> &'a toml::Table {
    t.get(key)
        .and_then(|v| v.as_table())
        .unwrap_or_else(|| panic!("no table {key} in {t:?}"))
}

#[test]
fn import_ecosystem_config_js() {
    if !have_node() {
        return;
    }
    let (text, apps) = import_ok("ecosystem.config.js");
    assert!(
        text.starts_with("# converted from ecosystem.config.js by runner import\n"),
        "{text}"
    );
    assert!(text.contains("# PM2 deploy section ignored"), "{text}");
    assert!(
        !text.contains("212.83.163.1"),
        "deploy must not leak: {text}"
    );
    // The config's console.log went elsewhere: stdout parsed as TOML above.
    assert!(!text.contains("loading ecosystem"), "{text}");
    assert_eq!(apps.len(), 3);

    let api = app(&apps, "api");
    assert_eq!(str_of(api, "script"), Some("./api/server.js"));
    assert_eq!(str_of(api, "instances"), Some("max"));
    assert_eq!(str_of(api, "exec_mode"), Some("cluster"));
    // Runner is the Node cluster primary: the app's own listen(PORT) is shared, so the
    // import invents no `listen` key.
    assert!(api.get("listen").is_none(), "{text}");
    assert_eq!(
        str_of(api, "interpreter_args"),
        Some("--max-old-space-size=512")
    );
    assert_eq!(str_of(api, "max_memory_restart"), Some("300M"));
    assert_eq!(api.get("wait_ready").and_then(|v| v.as_bool()), Some(true));
    assert_eq!(int_of(api, "listen_timeout"), Some(10000));
    assert_eq!(int_of(api, "kill_timeout"), Some(5000));
    assert_eq!(str_of(api, "out_file"), Some("./logs/api-out.log"));
    assert_eq!(str_of(api, "error_file"), Some("./logs/api-error.log"));
    assert_eq!(str_of(sub(api, "env"), "PORT"), Some("3000"));
    assert_eq!(
        str_of(sub(api, "env_production"), "NODE_ENV"),
        Some("production")
    );
    assert!(
        !text.contains("LISTEN_FDS"),
        "no edit of the app is asked for: {text}"
    );
    // Log keys are converted now, not commented out.
    assert_eq!(api.get("merge_logs").and_then(|v| v.as_bool()), Some(true));
    assert_eq!(str_of(api, "log_date_format"), Some("YYYY-MM-DD HH:mm Z"));
    assert!(
        !text.contains("not supported by runner: merge_logs"),
        "{text}"
    );
    assert!(
        !text.contains("not supported by runner: log_date_format"),
        "{text}"
    );

    let worker = app(&apps, "worker");
    assert_eq!(
        strings(worker, "args"),
        ["--queue", "jobs", "--concurrency", "4"]
    );
    // path.join(__dirname, ...) ran in node with the file's own location.
    let cwd = str_of(worker, "cwd").unwrap_or_default();
    assert!(cwd.ends_with("tests/fixtures/pm2/worker"), "{cwd}");
    assert_eq!(int_of(worker, "instances"), Some(2));
    assert_eq!(str_of(worker, "exec_mode"), Some("fork"));
    assert_eq!(str_of(worker, "min_uptime"), Some("10s"));
    assert_eq!(int_of(worker, "restart_delay"), Some(4000));
    assert_eq!(int_of(worker, "max_restarts"), Some(10));
    assert_eq!(str_of(sub(worker, "env"), "DEBUG"), Some("false"));
    assert_eq!(strings(worker, "watch"), ["worker"]);
    assert_eq!(strings(worker, "ignore_watch"), ["node_modules", "logs"]);
    assert_eq!(str_of(worker, "cron_restart"), Some("0 3 * * *"));
    assert!(
        text.contains("# not supported by runner: watch_options = { followSymlinks = false }"),
        "{text}"
    );

    let scheduler = app(&apps, "scheduler");
    assert_eq!(str_of(scheduler, "interpreter"), Some("python3"));
    assert_eq!(int_of(scheduler, "exp_backoff_restart_delay"), Some(100));
    assert_eq!(
        scheduler
            .get("stop_exit_codes")
            .and_then(|v| v.as_array())
            .map(|a| a.len()),
        Some(1)
    );
    assert_eq!(scheduler.get("time").and_then(|v| v.as_bool()), Some(true));
    assert_eq!(str_of(sub(scheduler, "env"), "PYTHONUNBUFFERED"), Some("1"));
    // The function-valued post_start could not be serialised and is simply absent.
    assert!(!text.contains("post_start"), "{text}");
}

#[test]
fn import_process_json() {
    let (text, apps) = import_ok("process.json");
    assert!(
        text.starts_with("# converted from process.json by runner import\n"),
        "{text}"
    );
    let web = app(&apps, "web");
    assert_eq!(str_of(web, "interpreter"), Some("node"));
    assert_eq!(str_of(web, "exec_mode"), Some("cluster"));
    assert!(web.get("listen").is_none(), "{text}");
    assert_eq!(str_of(sub(web, "env"), "PORT"), Some("8000"));
    assert_eq!(str_of(web, "out_file"), Some("logs/web.out"));
    assert_eq!(str_of(web, "error_file"), Some("logs/web.err"));
    assert!(
        text.contains("# not supported by runner: pid_file"),
        "{text}"
    );

    let cleanup = app(&apps, "cleanup");
    assert_eq!(str_of(cleanup, "interpreter"), Some("bash"));
    assert_eq!(
        cleanup.get("autorestart").and_then(|v| v.as_bool()),
        Some(false)
    );
    assert_eq!(int_of(cleanup, "max_memory_restart"), Some(104857600));
    assert_eq!(str_of(cleanup, "cron_restart"), Some("*/15 * * * *"));
}

#[test]
fn import_cjs() {
    if !have_node() {
        return;
    }
    let (_, apps) = import_ok("ecosystem.config.cjs");
    let queue = app(&apps, "queue");
    assert_eq!(str_of(queue, "uid"), Some("www-data"));
    assert_eq!(str_of(queue, "kill_signal"), Some("SIGTERM"));
    assert_eq!(int_of(queue, "kill_timeout"), Some(3000));
    assert_eq!(str_of(queue, "increment_var"), Some("PORT"));
    assert_eq!(str_of(queue, "instance_var"), Some("INSTANCE_ID"));
    // PM2's combined log_file becomes both streams when no separate files are set.
    assert_eq!(str_of(queue, "out_file"), Some("logs/queue.log"));
    assert_eq!(str_of(queue, "error_file"), Some("logs/queue.log"));
}

#[test]
fn import_mjs_and_esm_package() {
    if !have_node() {
        return;
    }
    let (text, apps) = import_ok("ecosystem.config.mjs");
    let esm = app(&apps, "esm-app");
    assert_eq!(str_of(esm, "namespace"), Some("esm"));
    assert_eq!(strings(esm, "interpreter_args"), ["--enable-source-maps"]);
    assert!(
        text.contains("# not supported by runner: shutdown_with_message = true"),
        "{text}"
    );

    // A .js file in a "type": "module" package cannot be require()d.
    let (_, apps) = import_ok("esm-package/ecosystem.config.js");
    let js = app(&apps, "esm-js");
    assert_eq!(str_of(js, "exec_mode"), Some("cluster"));
    assert!(js.get("listen").is_none());
}

#[test]
fn import_js_syntax_error() {
    if !have_node() {
        return;
    }
    let err = import_err("broken.config.js");
    assert!(err.contains("broken.config.js"), "{err}");
    assert!(err.contains("SyntaxError"), "{err}");
}

#[test]
fn import_js_that_throws() {
    if !have_node() {
        return;
    }
    let err = import_err("throws.config.js");
    assert!(err.contains("throws.config.js"), "{err}");
    assert!(err.contains("does-not-exist.js"), "{err}");
}

#[test]
fn import_bad_json() {
    let err = import_err("broken.json");
    assert!(err.contains("broken.json"), "{err}");
    assert!(err.contains("line 5"), "{err}");

    let err = import_err("not_an_ecosystem.json");
    assert!(err.contains("not_an_ecosystem.json"), "{err}");
}

#[test]
fn import_missing_or_foreign_file() {
    let err = import_err("no-such-file.json");
    assert!(err.contains("no-such-file.json"), "{err}");
    let err = import_err("no-such-file.config.js");
    assert!(err.contains("no-such-file.config.js"), "{err}");
    let err = import_err("ecosystem.toml");
    assert!(err.contains("ecosystem.toml"), "{err}");
}
