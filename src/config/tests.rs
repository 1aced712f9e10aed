//! Loading whole ecosystem files: every key's happy path, the errors users will hit, and
//! that no input makes the loader panic.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::*;

/// A scratch directory holding an ecosystem file's neighbours; removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "runner-config-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        // A fake `node` and `python3`, found through `PATH` in the apps' env, so the
        // tests do not depend on what the machine has installed.
        let d = Dir(p);
        d.exec("bin/node", "#!/bin/sh\n");
        d.exec("bin/python3", "#!/bin/sh\n");
        d
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    fn exec(&self, name: &str, text: &str) -> PathBuf {
        let p = self.file(name, text);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn eco(&self) -> PathBuf {
        self.0.join("ecosystem.toml")
    }

    fn bin_path(&self) -> String {
        format!("{}/bin:/usr/bin:/bin", self.0.display())
    }

    fn load(&self, toml: &str) -> Result<Ecosystem, ConfigError> {
        self.load_with(toml, &LoadOptions::default())
    }

    fn load_with(&self, toml: &str, opts: &LoadOptions) -> Result<Ecosystem, ConfigError> {
        let toml = toml.replace("@PATH@", &self.bin_path());
        load_str(&toml, &self.eco(), opts)
    }

    fn ok(&self, toml: &str) -> Ecosystem {
        match self.load(toml) {
            Ok(e) => e,
            Err(e) => panic!("unexpected errors:\n{e}"),
        }
    }

    fn app(&self, toml: &str) -> AppSpec {
        let mut e = self.ok(toml);
        assert_eq!(e.apps.len(), 1);
        e.apps.remove(0)
    }

    /// The error lines without the file name: "LINE:COL: message".
    fn errors(&self, toml: &str) -> Vec<String> {
        match self.load(toml) {
            Ok(_) => panic!("expected errors for:\n{toml}"),
            Err(e) => e
                .diagnostics()
                .iter()
                .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
                .collect(),
        }
    }

    fn one_error(&self, toml: &str) -> String {
        let e = self.errors(toml);
        assert_eq!(e.len(), 1, "{e:#?}");
        e.into_iter().next().unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A directory with an executable `app` and a `server.js`.
fn dir() -> Dir {
    let d = Dir::new();
    d.exec("app", "#!/bin/sh\n");
    d.file("server.js", "");
    d
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---- scripts, interpreters, names ----------------------------------------------------

#[test]
fn minimal_app_gets_every_default() {
    let d = dir();
    let a = d.app("[[apps]]\nscript = \"app\"\n");
    let mut want = AppSpec::with_defaults("app", d.0.join("app"), vec!["app".into()], d.0.clone());
    want.env = Default::default();
    assert_eq!(a, want);
}

#[test]
fn ecosystem_path_is_absolute_and_runner_settings_default() {
    let d = dir();
    let e = d.ok("[[apps]]\nscript = \"app\"\n");
    assert!(e.path.is_absolute());
    assert_eq!(e.runner, RunnerSettings::default());
    assert!(e.warnings.is_empty());
}

#[test]
fn js_scripts_run_with_node_and_get_an_ipc_channel() {
    let d = dir();
    let a = d.app(
        "[[apps]]\nname = \"api\"\nscript = \"server.js\"\nargs = \"--port 80 'a b'\"\nnode_args = [\"--max-old-space-size=512\"]\nenv = { PATH = \"@PATH@\" }\n",
    );
    assert_eq!(a.program, d.0.join("bin/node"));
    let script = d.0.join("server.js").display().to_string();
    assert_eq!(
        a.argv,
        [
            "node",
            "--max-old-space-size=512",
            script.as_str(),
            "--port",
            "80",
            "a b"
        ]
    );
    assert!(a.node_ipc);
}

#[test]
fn python_scripts_run_with_python3() {
    let d = dir();
    d.file("tool.py", "");
    let a = d.app(
        "[[apps]]\nscript = \"tool.py\"\ninterpreter_args = \"-u\"\nenv = { PATH = \"@PATH@\" }\n",
    );
    assert_eq!(a.name, "tool");
    assert_eq!(a.program, d.0.join("bin/python3"));
    assert_eq!(a.argv[..2], ["python3", "-u"]);
    assert!(!a.node_ipc);
}

#[test]
fn explicit_interpreter_and_its_pm2_alias() {
    let d = dir();
    d.file("job.rb", "");
    d.exec("bin/ruby", "");
    let a = d.app(
        "[[apps]]\nscript = \"job.rb\"\ninterpreter = \"ruby\"\nenv = { PATH = \"@PATH@\" }\n",
    );
    assert_eq!(a.program, d.0.join("bin/ruby"));
    let a = d.app(
        "[[apps]]\nscript = \"job.rb\"\nexec_interpreter = \"ruby\"\nenv = { PATH = \"@PATH@\" }\n",
    );
    assert_eq!(a.program, d.0.join("bin/ruby"));
}

#[test]
fn interpreter_none_runs_the_script_itself() {
    let d = dir();
    d.exec("run.js", "#!/bin/sh\n");
    let a =
        d.app("[[apps]]\nscript = \"./run.js\"\ninterpreter = \"none\"\nargs = [\"x\", 1, true]\n");
    assert_eq!(a.program, d.0.join("run.js"));
    assert_eq!(a.argv, ["./run.js", "x", "1", "true"]);
    assert!(!a.node_ipc);
}

#[test]
fn scripts_with_spaces_run_with_sh_and_are_named_after_the_first_word() {
    let d = dir();
    let a = d.app("[[apps]]\nscript = \"python3 -m http.server 8000\"\n");
    assert_eq!(a.name, "python3");
    assert_eq!(a.program, PathBuf::from("/bin/sh"));
    assert_eq!(a.argv, ["sh", "-c", "python3 -m http.server 8000"]);
}

#[test]
fn bare_names_are_looked_up_in_path() {
    let d = dir();
    d.exec("bin/mytool", "#!/bin/sh\n");
    let a = d.app("[[apps]]\nscript = \"mytool\"\nenv = { PATH = \"@PATH@\" }\n");
    assert_eq!(a.program, d.0.join("bin/mytool"));
    assert_eq!(a.argv, ["mytool"]);
}

#[test]
fn missing_or_non_executable_scripts_are_errors_naming_the_path() {
    let d = dir();
    d.file("plain", "");
    let e = d.one_error("[[apps]]\nscript = \"./plain\"\n");
    assert!(e.starts_with("2:10: script `"), "{e}");
    assert!(e.contains("plain` is not executable"), "{e}");
    let e = d.one_error("[[apps]]\nscript = \"./nope\"\n");
    assert!(e.contains("nope` does not exist"), "{e}");
    let e = d.one_error("[[apps]]\nscript = \"nope-xyz\"\nenv = { PATH = \"@PATH@\" }\n");
    assert!(e.contains("`nope-xyz` is neither in"), "{e}");
    let e = d.one_error("[[apps]]\nscript = \"gone.js\"\nenv = { PATH = \"@PATH@\" }\n");
    assert!(e.contains("gone.js"), "{e}");
}

#[test]
fn interpreter_not_in_path_is_an_error_at_the_interpreter() {
    let d = dir();
    let e = d.one_error(
        "[[apps]]\nscript = \"server.js\"\ninterpreter = \"nodez\"\nenv = { PATH = \"@PATH@\" }\n",
    );
    assert!(
        e.starts_with("3:15: interpreter `nodez` not found in PATH"),
        "{e}"
    );
}

#[test]
fn unterminated_quote_in_args_is_an_error() {
    let d = dir();
    let e = d.one_error("[[apps]]\nscript = \"app\"\nargs = \"'open\"\n");
    assert_eq!(e, "3:8: `args`: unterminated single quote");
}

#[test]
fn app_without_script_is_an_error_at_its_header() {
    let d = dir();
    let e = d.one_error("[[apps]]\nname = \"x\"\n");
    assert_eq!(e, "1:1: app `x` has no `script`");
}

#[test]
fn names_must_be_unique_and_not_targets() {
    let d = dir();
    let e = d.one_error("[[apps]]\nscript = \"app\"\n[[apps]]\nname = \"app\"\nscript = \"app\"\n");
    assert_eq!(e, "4:8: duplicate app name `app` (first used at 1:1)");
    let e = d.one_error("[[apps]]\nname = \"all\"\nscript = \"app\"\n");
    assert!(
        e.starts_with("2:8: `all` cannot be used as an app name"),
        "{e}"
    );
    let e = d.one_error("[[apps]]\nname = \"42\"\nscript = \"app\"\n");
    assert!(e.contains("instance ids"), "{e}");
    let e = d.one_error("[[apps]]\nname = \"a,b\"\nscript = \"app\"\n");
    assert!(e.contains("commas"), "{e}");
}

// ---- cwd, namespace, instances, cluster ------------------------------------------------

#[test]
fn cwd_is_relative_to_the_file_and_must_be_a_directory() {
    let d = dir();
    d.exec("sub/tool", "#!/bin/sh\n");
    let a = d.app("[[apps]]\nscript = \"tool\"\ncwd = \"./sub\"\n");
    assert_eq!(a.cwd, d.0.join("sub"));
    assert_eq!(a.program, d.0.join("sub/tool"));
    let e = d.one_error("[[apps]]\nscript = \"app\"\ncwd = \"missing\"\n");
    assert!(
        e.starts_with("3:7: cwd `") && e.ends_with("missing` does not exist"),
        "{e}"
    );
}

#[test]
fn namespace_is_kept() {
    let d = dir();
    assert_eq!(
        d.app("[[apps]]\nscript = \"app\"\nnamespace = \"web\"\n")
            .namespace,
        "web"
    );
    let e = d.one_error("[[apps]]\nscript = \"app\"\nnamespace = \"all\"\n");
    assert!(e.starts_with("3:13:"), "{e}");
}

#[test]
fn instances_count_max_zero_and_negative() {
    let d = dir();
    let cpus = usable_cpus();
    let n = |v: &str| {
        d.app(&format!("[[apps]]\nscript = \"app\"\ninstances = {v}\n"))
            .instances
    };
    assert_eq!(n("4"), 4);
    assert_eq!(n("\"max\""), cpus);
    assert_eq!(n("0"), cpus);
    assert_eq!(n("-1"), cpus.saturating_sub(1).max(1));
    assert_eq!(n("-1000"), 1);
    assert_eq!(n("\"3\""), 3);
}

#[test]
fn instances_of_the_wrong_type_say_what_is_expected() {
    let d = dir();
    let e = d.one_error("[[apps]]\nscript = \"app\"\ninstances = true\n");
    assert_eq!(
        e,
        "3:13: `instances` must be an integer or \"max\", found a boolean"
    );
    let e = d.one_error("[[apps]]\nscript = \"app\"\ninstances = \"lots\"\n");
    assert_eq!(
        e,
        "3:13: `instances` must be an integer or \"max\", found \"lots\""
    );
    assert_eq!(
        d.errors("[[apps]]\nscript = \"app\"\ninstances = 99999999999\n")
            .len(),
        1
    );
}

#[test]
fn listen_makes_cluster_mode_the_default() {
    let d = dir();
    let a = d.app("[[apps]]\nscript = \"app\"\nlisten = [\"8080\", \"127.0.0.1:81\", \"[::]:82\", \"unix:run/a.sock\", 83]\n");
    assert_eq!(a.exec_mode, ExecMode::Cluster);
    assert_eq!(
        a.listen,
        [
            ListenAddr::Tcp("0.0.0.0:8080".parse().unwrap()),
            ListenAddr::Tcp("127.0.0.1:81".parse().unwrap()),
            ListenAddr::Tcp("[::]:82".parse().unwrap()),
            ListenAddr::Unix(d.0.join("run/a.sock")),
            ListenAddr::Tcp("0.0.0.0:83".parse().unwrap()),
        ]
    );
    let a = d.app("[[apps]]\nscript = \"app\"\nlisten = [\"8080\"]\nexec_mode = \"fork\"\n");
    assert_eq!(a.exec_mode, ExecMode::Fork);
    let a = d.app("[[apps]]\nscript = \"app\"\nexec_mode = \"cluster_mode\"\n");
    assert_eq!(a.exec_mode, ExecMode::Cluster);
    assert_eq!(
        d.app("[[apps]]\nscript = \"app\"\n").exec_mode,
        ExecMode::Fork
    );
}

#[test]
fn bad_listen_and_exec_mode_are_errors() {
    let d = dir();
    let e = d.errors("[[apps]]\nscript = \"app\"\nlisten = [\"8080\", \"nope\", \"8080\"]\nexec_mode = \"forked\"\n");
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[0].starts_with("3:19: `listen`: `nope` is not a listen address"),
        "{e:#?}"
    );
    assert!(
        e[1].starts_with("3:27: `listen`: `0.0.0.0:8080` is listed twice"),
        "{e:#?}"
    );
    assert_eq!(
        e[2],
        "4:13: `exec_mode` must be \"fork\" or \"cluster\", found \"forked\""
    );
}

// ---- environment ----------------------------------------------------------------------

#[test]
fn env_file_then_env_then_profile() {
    let d = dir();
    d.file(
        ".env",
        "# comment\nexport A=from_file\nB='file b'\nC=file\n",
    );
    let toml = "[[apps]]\nscript = \"app\"\nenv_file = \".env\"\nenv = { B = \"env\", PORT = 8080, DEBUG = true, R = 1.5 }\nenv_production = { C = \"prod\" }\nenv_staging = { C = \"stage\" }\n";
    let a = d.app(toml);
    let get = |a: &AppSpec, k: &str| a.env.get(k).cloned().unwrap_or_default();
    assert_eq!(get(&a, "A"), "from_file");
    assert_eq!(get(&a, "B"), "env");
    assert_eq!(get(&a, "C"), "file");
    assert_eq!(get(&a, "PORT"), "8080");
    assert_eq!(get(&a, "DEBUG"), "true");
    assert_eq!(get(&a, "R"), "1.5");
    let opts = LoadOptions {
        profile: Some("production".into()),
        ..Default::default()
    };
    let a = d.load_with(toml, &opts).unwrap().apps.remove(0);
    assert_eq!(get(&a, "C"), "prod");
    // A profile no app defines is fine.
    let opts = LoadOptions {
        profile: Some("nowhere".into()),
        ..Default::default()
    };
    assert!(d.load_with(toml, &opts).is_ok());
}

#[test]
fn env_file_lists_and_their_errors() {
    let d = dir();
    d.file("a.env", "X=1\n");
    d.file("b.env", "X=2\nbad line\n");
    let e = d.errors("[[apps]]\nscript = \"app\"\nenv_file = [\"a.env\", \"b.env\", \"c.env\"]\n");
    assert_eq!(e.len(), 2, "{e:#?}");
    // Problems in the ecosystem file first, then those in the env files.
    assert!(e[0].starts_with("3:31: cannot read env_file"), "{e:#?}");
    assert!(e[1].starts_with("2:1: expected KEY=value"), "{e:#?}");
    let err = d
        .load("[[apps]]\nscript = \"app\"\nenv_file = \"b.env\"\n")
        .unwrap_err();
    assert!(
        err.to_string().contains("b.env:2:1: expected KEY=value"),
        "{err}"
    );
}

#[test]
fn env_values_must_be_scalars_and_profiles_are_checked_even_when_unused() {
    let d = dir();
    let e = d.errors("[[apps]]\nscript = \"app\"\nenv = { A = [1] }\nenv_prod = { \"B=C\" = \"x\" }\nenv_x = 5\n");
    assert_eq!(e.len(), 3, "{e:#?}");
    assert_eq!(
        e[0],
        "3:13: `env.A` must be a string, number or boolean, found an array"
    );
    assert!(
        e[1].starts_with("4:14: `env_prod`: `B=C` is not a valid variable name"),
        "{e:#?}"
    );
    assert_eq!(
        e[2],
        "5:9: `env_x` must be a table of variables, found an integer"
    );
}

#[test]
fn instance_and_increment_vars() {
    let d = dir();
    let a = d.app("[[apps]]\nscript = \"app\"\ninstance_var = \"INSTANCE_ID\"\nincrement_var = \"PORT\"\nenv = { PORT = 3000 }\n");
    assert_eq!(a.instance_var, "INSTANCE_ID");
    assert_eq!(a.increment_var.as_deref(), Some("PORT"));
    let e = d.one_error("[[apps]]\nscript = \"app\"\nincrement_var = \"PORT\"\n");
    assert_eq!(
        e,
        "3:17: `increment_var` names `PORT`, which is not set in this app's `env`"
    );
    let e = d.one_error(
        "[[apps]]\nscript = \"app\"\nincrement_var = \"PORT\"\nenv = { PORT = \"http\" }\n",
    );
    assert_eq!(
        e,
        "3:17: `increment_var` names `PORT`, whose value `http` is not an integer"
    );
    // A profile can provide it.
    let opts = LoadOptions {
        profile: Some("prod".into()),
        ..Default::default()
    };
    let toml = "[[apps]]\nscript = \"app\"\nincrement_var = \"PORT\"\nenv_prod = { PORT = 80 }\n";
    assert!(d.load_with(toml, &opts).is_ok());
}

// ---- readiness, dependencies ----------------------------------------------------------

#[test]
fn readiness_settings() {
    let d = dir();
    let a = d.app("[[apps]]\nscript = \"app\"\nwait_ready = true\nlisten_timeout = \"10s\"\nready_check = \"http://127.0.0.1:8080/health\"\nwatchdog = 30000\n");
    assert!(a.wait_ready);
    assert_eq!(a.listen_timeout, ms(10_000));
    assert_eq!(
        a.ready_check,
        Some(ReadyCheck::Http {
            host: "127.0.0.1".into(),
            port: 8080,
            path: "/health".into()
        })
    );
    assert_eq!(a.watchdog, Some(ms(30_000)));
    let e = d.errors("[[apps]]\nscript = \"app\"\nwait_ready = \"yes\"\nready_check = \"ftp://x\"\nwatchdog = \"soon\"\n");
    assert_eq!(e.len(), 3, "{e:#?}");
    assert_eq!(
        e[0],
        "3:14: `wait_ready` must be true or false, found a string"
    );
    assert!(
        e[1].starts_with("4:15: `ready_check`: `ftp://x` is not a valid probe"),
        "{e:#?}"
    );
    assert!(
        e[2].starts_with("5:12: `watchdog`: `soon` is not a duration"),
        "{e:#?}"
    );
}

const DEPS: &str = "[[apps]]\nname = \"web\"\nscript = \"app\"\ndepends_on = [\"api\"]\n\
[[apps]]\nname = \"worker\"\nscript = \"app\"\ndepends_on = \"db\"\n\
[[apps]]\nname = \"api\"\nscript = \"app\"\ndepends_on = [\"db\"]\n\
[[apps]]\nname = \"db\"\nscript = \"app\"\ncritical = true\n\
[[apps]]\nname = \"other\"\nscript = \"app\"\n";

#[test]
fn depends_on_and_critical() {
    let d = dir();
    let e = d.ok(DEPS);
    assert_eq!(e.apps[0].depends_on, ["api"]);
    assert_eq!(e.apps[1].depends_on, ["db"]);
    assert!(e.apps[3].critical);
}

#[test]
fn depends_on_tables_name_a_condition_in_runner_or_process_compose_words() {
    let d = dir();
    let e = d.ok("[[apps]]\nname = \"web\"\nscript = \"app\"\ndepends_on = [\"db\", { name = \"migrate\", condition = \"process_completed_successfully\" }, { name = \"cache\", condition = \"started\" }]\n\
[[apps]]\nname = \"db\"\nscript = \"app\"\n[[apps]]\nname = \"migrate\"\nscript = \"app\"\n[[apps]]\nname = \"cache\"\nscript = \"app\"\n");
    let web = &e.apps[0];
    assert_eq!(web.depends_on, ["db", "migrate", "cache"]);
    assert_eq!(web.depend_condition("db"), DependCondition::Online);
    assert_eq!(web.depend_condition("migrate"), DependCondition::Completed);
    assert_eq!(web.depend_condition("cache"), DependCondition::Started);
    for (word, cond) in [
        ("completed", DependCondition::Completed),
        ("process_healthy", DependCondition::Online),
        ("process_started", DependCondition::Started),
    ] {
        assert_eq!(DependCondition::parse(word), Some(cond), "{word}");
    }
}

#[test]
fn a_bad_depends_on_table_is_an_error_with_a_remedy() {
    let d = dir();
    let e = d.errors("[[apps]]\nname = \"web\"\nscript = \"app\"\ndepends_on = [{ name = \"db\", condition = \"complted\" }, { nme = \"db\" }]\n[[apps]]\nname = \"db\"\nscript = \"app\"\n");
    assert!(
        e[0].starts_with("4:42: unknown `depends_on` condition \"complted\""),
        "{e:#?}"
    );
    assert!(e[0].contains("did you mean"), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("needs `name`")), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("unknown key `nme`")), "{e:#?}");
}

#[test]
fn only_keeps_the_named_apps_and_their_dependencies_in_file_order() {
    let d = dir();
    let names = |only: &[&str]| {
        let opts = LoadOptions {
            only: only.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let e = d.load_with(DEPS, &opts).unwrap();
        e.apps.iter().map(|a| a.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&["web"]), ["web", "api", "db"]);
    assert_eq!(names(&["other,worker"]), ["worker", "db", "other"]);
    assert_eq!(names(&[]).len(), 5);
    let opts = LoadOptions {
        only: vec!["wbe".into()],
        ..Default::default()
    };
    let err = d.load_with(DEPS, &opts).unwrap_err();
    assert_eq!(
        err.diagnostics()[0].message,
        "--only names `wbe`, which is not an app in this file; did you mean `web`?"
    );
    assert!(err.to_string().ends_with(
        "ecosystem.toml: --only names `wbe`, which is not an app in this file; did you mean `web`?"
    ));
}

#[test]
fn unknown_self_and_cyclic_dependencies_are_errors() {
    let d = dir();
    let e = d.one_error("[[apps]]\nname = \"api\"\nscript = \"app\"\ndepends_on = [\"dbb\"]\n[[apps]]\nname = \"db\"\nscript = \"app\"\n");
    assert_eq!(
        e,
        "4:15: `depends_on` names `dbb`, which is not an app in this file; did you mean `db`?"
    );
    let e = d.one_error("[[apps]]\nname = \"a\"\nscript = \"app\"\ndepends_on = [\"a\"]\n");
    assert_eq!(e, "4:15: app `a` cannot depend on itself");
    let e = d.one_error("[[apps]]\nname = \"a\"\nscript = \"app\"\ndepends_on = [\"b\"]\n[[apps]]\nname = \"b\"\nscript = \"app\"\ndepends_on = [\"c\"]\n[[apps]]\nname = \"c\"\nscript = \"app\"\ndepends_on = [\"a\"]\n");
    assert_eq!(e, "4:14: `depends_on` cycle: a -> b -> c -> a");
}

// ---- stopping and restarting ----------------------------------------------------------

#[test]
fn stop_settings() {
    let d = dir();
    let a = d.app("[[apps]]\nscript = \"app\"\nkill_signal = \"TERM\"\nkill_timeout = \"5s\"\ntreekill = false\n");
    assert_eq!(a.kill_signal, Signal::SIGTERM);
    assert_eq!(a.kill_timeout, ms(5000));
    assert!(!a.treekill);
    assert_eq!(
        d.app("[[apps]]\nscript = \"app\"\nkill_signal = 3\n")
            .kill_signal,
        Signal::SIGQUIT
    );
    let e = d.errors("[[apps]]\nscript = \"app\"\nkill_signal = \"SIGNOPE\"\nkill_timeout = -5\n");
    assert_eq!(
        e[0],
        "3:15: `kill_signal`: `SIGNOPE` is not a signal; did you mean `SIGFPE`?"
    );
    assert_eq!(
        e[1],
        "4:16: `kill_timeout`: `-5` is not a duration: it must not be negative"
    );
    let swapped = d.errors("[[apps]]\nscript = \"app\"\nkill_signal = \"SIGTREM\"\n");
    assert_eq!(
        swapped[0],
        "3:15: `kill_signal`: `SIGTREM` is not a signal; did you mean `SIGTERM`?"
    );
}

#[test]
fn restart_policy() {
    let d = dir();
    let a = d.app("[[apps]]\nscript = \"app\"\nautorestart = false\nstop_exit_codes = [0, 143]\nmin_uptime = \"2s\"\nmax_restarts = 3\nrestart_delay = 250\nexp_backoff_restart_delay = \"100ms\"\nmax_memory_restart = \"500M\"\n");
    assert!(!a.autorestart);
    assert_eq!(a.stop_exit_codes, [0, 143]);
    assert_eq!(a.min_uptime, ms(2000));
    assert_eq!(a.max_restarts, 3);
    assert_eq!(a.restart_delay, ms(250));
    assert_eq!(a.exp_backoff_restart_delay, Some(ms(100)));
    assert_eq!(a.max_memory_restart, Some(500 << 20));
    assert_eq!(
        d.app("[[apps]]\nscript = \"app\"\nstop_exit_codes = 2\n")
            .stop_exit_codes,
        [2]
    );
    assert_eq!(
        d.app("[[apps]]\nscript = \"app\"\nmax_memory_restart = 1048576\n")
            .max_memory_restart,
        Some(1 << 20)
    );
}

#[test]
fn restart_policy_errors() {
    let d = dir();
    let e = d.errors("[[apps]]\nscript = \"app\"\nautorestart = 1\nstop_exit_codes = [0, 256]\nmin_uptime = \"1x\"\nmax_restarts = -1\nrestart_delay = 1.5\nmax_memory_restart = \"lots\"\n");
    assert_eq!(e.len(), 6, "{e:#?}");
    assert_eq!(
        e[0],
        "3:15: `autorestart` must be true or false, found an integer"
    );
    assert_eq!(
        e[1],
        "4:23: `stop_exit_codes` must be between 0 and 255, found 256"
    );
    assert!(
        e[2].starts_with("5:14: `min_uptime`: `1x` is not a duration"),
        "{e:#?}"
    );
    assert_eq!(
        e[3],
        "6:16: `max_restarts` must be between 0 and 4294967295, found -1"
    );
    assert!(
        e[4].starts_with("7:17: `restart_delay` must be milliseconds"),
        "{e:#?}"
    );
    assert!(
        e[5].starts_with("8:22: `max_memory_restart`: `lots` is not a size"),
        "{e:#?}"
    );
}

// ---- identity and output --------------------------------------------------------------

#[test]
fn uid_and_gid_are_resolved() {
    let d = dir();
    let a = d.app("[[apps]]\nscript = \"app\"\nuid = \"root\"\n");
    let c = a.credentials.unwrap();
    assert_eq!((c.uid, c.gid), (0, 0));
    let a = d.app("[[apps]]\nscript = \"app\"\ngid = 0\n");
    assert_eq!(a.credentials.unwrap().uid, nix::unistd::getuid().as_raw());
    let e = d.one_error("[[apps]]\nscript = \"app\"\nuid = \"no-such-user-zz\"\n");
    assert_eq!(e, "3:7: `uid`: no user named `no-such-user-zz`");
    let e = d.one_error("[[apps]]\nscript = \"app\"\ngid = \"no-such-group-zz\"\n");
    assert_eq!(e, "3:7: `gid`: no group named `no-such-group-zz`");
}

#[test]
fn log_files_and_prefixes() {
    let d = dir();
    let a = d.app("[[apps]]\nscript = \"app\"\nout_file = \"out.log\"\nerror_file = \"/dev/null\"\nlog_prefix = true\ntime = true\n");
    assert_eq!(a.out_file, Some(d.0.join("out.log")));
    assert_eq!(a.error_file, Some(PathBuf::from("/dev/null")));
    assert!(a.log_prefix && a.time);
    let a = d.app("[[apps]]\nscript = \"app\"\noutput = \"o.log\"\nerr_file = \"e.log\"\n");
    assert_eq!(a.out_file, Some(d.0.join("o.log")));
    assert_eq!(a.error_file, Some(d.0.join("e.log")));
    let e = d.one_error("[[apps]]\nscript = \"app\"\nout_file = \"nodir/o.log\"\n");
    assert!(e.starts_with("3:12: `out_file`: directory"), "{e}");
}

#[test]
fn an_alias_and_its_key_together_are_an_error() {
    let d = dir();
    let e =
        d.one_error("[[apps]]\nscript = \"app\"\nerror_file = \"a.log\"\nerr_file = \"b.log\"\n");
    assert_eq!(
        e,
        "4:1: `err_file` sets `error_file` again (already set by `error_file` at 3:1)"
    );
}

// ---- keys, warnings, syntax ---------------------------------------------------------

#[test]
fn unknown_keys_point_at_the_key_and_suggest_the_closest() {
    let d = dir();
    let e = d.one_error("[[apps]]\nname = \"api\"\nscript = \"app\"\n  instnces = 2\n");
    assert_eq!(
        e,
        "4:3: unknown key `instnces` in app `api`; did you mean `instances`?"
    );
    let e = d.one_error("[[apps]]\nscript = \"app\"\nkillTimeout = 2\n");
    assert_eq!(
        e,
        "3:1: unknown key `killTimeout` in app `app`; did you mean `kill_timeout`?"
    );
    let e = d.one_error("[[apps]]\nscript = \"app\"\nzzzzzz = 2\n");
    assert_eq!(e, "3:1: unknown key `zzzzzz` in app `app`");
}

#[test]
fn top_level_and_runner_keys() {
    let d = dir();
    let e = d.ok(
        "[runner]\nsocket = \"run/r.sock\"\non_sighup = \"reload\"\n[[apps]]\nscript = \"app\"\n",
    );
    assert_eq!(e.runner.socket, Some(d.0.join("run/r.sock")));
    assert_eq!(e.runner.on_sighup, OnSighup::Reload);
    let e = d.errors("app = 1\nscript = \"x\"\n[runner]\nsockett = \"x\"\non_sighup = \"restart\"\n[[apps]]\nscript = \"app\"\n");
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_eq!(
        e[0],
        "1:1: unknown key `app` at the top level; did you mean `apps`?"
    );
    assert_eq!(
        e[1],
        "2:1: unknown key `script` at the top level; `script` belongs in an [[apps]] table"
    );
    assert_eq!(
        e[2],
        "4:1: unknown key `sockett` in [runner]; did you mean `socket`?"
    );
    assert_eq!(
        e[3],
        "5:13: `on_sighup` must be \"forward\" or \"reload\", found \"restart\""
    );
}

#[test]
fn pm2_keys_runner_does_not_implement_are_warnings() {
    let d = dir();
    let e = d.ok("[[apps]]\nname = \"api\"\nscript = \"app\"\nvizion = true\npid_file = \"x\"\n[deploy]\nx = 1\n");
    assert_eq!(e.warnings.len(), 3, "{:#?}", e.warnings);
    assert!(
        e.warnings[0].ends_with(
            "ecosystem.toml:4:1: `vizion` in app `api` is a PM2 option runner does not implement; ignored"
        ),
        "{:#?}",
        e.warnings
    );
    assert!(e.warnings[1].contains(":5:1: `pid_file`"));
    assert!(e.warnings[2].contains(":6:2: `deploy` is a PM2 section"));
}

#[test]
fn syntax_errors_have_line_and_column() {
    let d = dir();
    let e = d.errors("[[apps]]\nscript = \"app\"\ninstances = = 2\n");
    assert!(e[0].starts_with("3:13: invalid TOML:"), "{e:#?}");
    let e = d.errors("[[apps]]\nname = \"a\"\nname = \"b\"\n");
    assert!(
        e.iter()
            .any(|m| m.starts_with("3:1: invalid TOML: duplicate key")),
        "{e:#?}"
    );
}

#[test]
fn an_empty_file_has_no_apps() {
    let d = dir();
    assert_eq!(
        d.one_error("apps = []\n"),
        "1:1: no apps: add an [[apps]] table with at least a `script`"
    );
    assert_eq!(
        d.one_error(""),
        "1:1: no apps: add an [[apps]] table with at least a `script`"
    );
    assert_eq!(
        d.one_error("apps = 3\n"),
        "1:8: `apps` must be an array of tables ([[apps]]), found an integer"
    );
    assert_eq!(
        d.one_error("apps = [1]\n"),
        "1:9: each entry of `apps` must be a table, found an integer"
    );
}

#[test]
fn every_problem_in_the_file_is_reported_at_once() {
    let d = dir();
    let e = d.errors("[[apps]]\nname = \"a\"\nscript = \"app\"\ninstnces = 2\nkill_signal = \"X\"\n[[apps]]\nname = \"a\"\nscript = \"./missing\"\ndepends_on = [\"zz\"]\n");
    assert_eq!(e.len(), 5, "{e:#?}");
}

#[test]
fn inline_apps_arrays_work_too() {
    let d = dir();
    let e = d.ok("apps = [{ name = \"x\", script = \"app\" }, { script = \"server.js\", env = { PATH = \"@PATH@\" } }]\n");
    assert_eq!(e.apps.len(), 2);
    assert_eq!(e.apps[1].name, "server");
}

// ---- check output ---------------------------------------------------------------------

#[test]
fn check_output_shows_the_resolved_app() {
    let d = dir();
    let e = d.ok("[[apps]]\nname = \"api\"\nscript = \"app\"\nargs = [\"--msg\", \"hello world\"]\ninstances = 2\nlisten = [\"8080\"]\nenv = { B = \"2\", A = \"x y\" }\nwait_ready = true\nkill_signal = \"SIGTERM\"\nmax_memory_restart = \"500M\"\n[[apps]]\nname = \"db\"\nscript = \"app\"\n");
    let out = render_check(&e);
    assert!(out.contains(": 2 apps\n"), "{out}");
    assert!(out.contains("\napi\n  namespace     default\n  mode          cluster, 2 instances\n  command       app --msg 'hello world'\n"), "{out}");
    assert!(out.contains("  listen        0.0.0.0:8080\n"), "{out}");
    assert!(
        out.contains("  env           A='x y'\n                B=2\n"),
        "{out}"
    );
    assert!(
        out.contains("  ready         wait_ready, listen_timeout 3s\n"),
        "{out}"
    );
    assert!(
        out.contains("  stop          SIGTERM, then SIGKILL after 1600ms\n"),
        "{out}"
    );
    assert!(out.contains("  memory limit  500M\n"), "{out}");
    assert!(
        out.contains("\ndb\n  namespace     default\n  mode          fork, 1 instance\n"),
        "{out}"
    );
    // Stable: the same input renders the same.
    assert_eq!(out, render_check(&e));
}

// ---- robustness -----------------------------------------------------------------------

#[test]
fn no_input_makes_the_loader_panic() {
    let d = dir();
    let sample = "[runner]\nsocket = \"s\"\non_sighup = \"reload\"\n[[apps]]\nname = \"api\"\nscript = \"server.js\"\nargs = \"a 'b c'\"\ninstances = \"max\"\nlisten = [\"8080\", \"unix:x\"]\nenv = { PORT = 1, A = \"é\" }\nenv_file = [\".env\"]\nenv_p = { X = 1 }\nincrement_var = \"PORT\"\nready_check = \"http://localhost:1/x\"\ndepends_on = [\"db\"]\nkill_signal = \"TERM\"\nkill_timeout = \"1.5s\"\nmax_memory_restart = \"1G\"\nuid = \"root\"\nstop_exit_codes = [1]\n[[apps]]\nname = \"db\"\nscript = \"sh -c 'x'\"\ndepends_on = [\"api\"]\n";
    d.file(".env", "A=1\nB=\"2\n");
    let opts = LoadOptions {
        profile: Some("p".into()),
        only: vec!["db".into()],
    };
    let _ = load_str(sample, &d.eco(), &opts);
    let bytes = sample.as_bytes();
    for i in (0..bytes.len()).step_by(3) {
        // Truncations.
        if let Ok(s) = std::str::from_utf8(&bytes[..i]) {
            let _ = load_str(s, &d.eco(), &opts);
        }
        // Single-byte substitutions with bytes that matter to TOML and to our parsers.
        for b in [
            b'"', b'[', b'=', b'\n', b'-', b'0', b'\'', b'.', b'\\', b' ',
        ] {
            let mut m = bytes.to_vec();
            m[i] = b;
            if let Ok(s) = std::str::from_utf8(&m) {
                if let Err(e) = load_str(s, &d.eco(), &opts) {
                    let _ = e.to_string();
                }
            }
        }
    }
}

#[test]
fn cron_restart_is_parsed_and_a_bad_one_names_its_place_and_field() {
    let d = dir();
    let e = d.ok("[[apps]]\nname = \"job\"\nscript = \"app\"\ncron = \"*/3 * * * * *\"\n");
    assert_eq!(
        e.apps[0].cron_restart.as_ref().map(|c| c.as_str()),
        Some("*/3 * * * * *")
    );
    let e = d.ok("[[apps]]\nname = \"job\"\nscript = \"app\"\ncron_restart = \"0\"\n");
    assert_eq!(e.apps[0].cron_restart, None);
    let e = d.errors("[[apps]]\nname = \"job\"\nscript = \"app\"\ncron_restart = \"0 25 * * *\"\n");
    assert_eq!(
        e[0],
        "4:16: `cron_restart`: `0 25 * * *`: hour field: 25 is out of range 0-23"
    );
}

#[test]
fn watch_true_is_the_cwd_and_paths_are_relative_to_it() {
    let d = dir();
    std::fs::create_dir_all(d.0.join("src")).unwrap();
    let e = d.ok("[[apps]]\nname = \"w\"\nscript = \"app\"\nwatch = true\nignore_watch = \"*.log\"\nwatch_delay = \"1s\"\n");
    let w = e.apps[0].watch.clone().unwrap();
    assert_eq!(w.paths, vec![e.apps[0].cwd.clone()]);
    assert_eq!(w.ignore, vec!["*.log".to_string()]);
    assert_eq!(w.delay, std::time::Duration::from_secs(1));
    let e = d.ok("[[apps]]\nname = \"w\"\nscript = \"app\"\nwatch = [\"src\"]\n");
    assert_eq!(
        e.apps[0].watch.as_ref().unwrap().paths,
        vec![e.apps[0].cwd.join("src")]
    );
    let e = d.ok("[[apps]]\nname = \"w\"\nscript = \"app\"\nwatch = [\"nope\"]\n");
    let w = &e.warnings[0];
    assert!(
        w.contains(":4:10: `watch`: `") && w.ends_with("nope` does not exist; not watched"),
        "{w}"
    );
    let e = d.ok("[[apps]]\nname = \"w\"\nscript = \"app\"\nwatch = false\n");
    assert_eq!(e.apps[0].watch, None);
}
