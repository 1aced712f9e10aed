//! Moving in from supervisord and process-compose: their files run as they are, and a
//! one-shot job runs before the server that depends on it.

mod common;

use common::*;
use std::time::Duration;

fn is_root() -> bool {
    status_field(std::process::id() as i32, "Uid")
        .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn supervisord_conf_runs_with_its_instances_env_user_and_stop_signal() {
    let dir = TestDir::new("sv-run");
    let root = is_root();
    // A program running as `nobody` writes into the test dir.
    chmod(dir.path(), 0o777);
    dir.write_exec(
        "web.sh",
        "#!/bin/sh\ntrap 'echo got-QUIT > \"$OUT/quit\"; exit 0' QUIT\nid -u > \"$OUT/web.uid\"\necho web up\nwhile :; do sleep 0.1; done\n",
    );
    let user = if root { "user = nobody\n" } else { "" };
    let conf = format!(
        "; a supervisord file as found in the wild\n\
         [supervisord]\nnodaemon = true\nlogfile = /dev/null\n\n\
         [unix_http_server]\nfile = /tmp/supervisor.sock\n\n\
         [program:worker]\n\
         command = /bin/sh {envdump} %(here)s\n\
         process_name = %(program_name)s_%(process_num)02d\n\
         numprocs = 2\n\
         environment = GREETING=\"hello, world\",QUOTED='a=b, c',PLAIN=1\n\
         stdout_logfile = /dev/stdout\n\
         stdout_logfile_maxbytes = 0\n\n\
         [program:padded]\n\
         command = /bin/sh -c \"echo 80%(process_num)02d > %(here)s/port.%(process_num)d; exec sleep 60\"\n\
         process_name = %(program_name)s_%(process_num)02d\n\
         numprocs = 2\n\n\
         [program:web]\n\
         command = /bin/sh %(here)s/web.sh\n\
         stopsignal = QUIT\n\
         {user}\
         environment = OUT=\"%(here)s\"\n\
         stdout_logfile = %(here)s/%(program_name)s.out.log\n",
        envdump = app("envdump.sh"),
    );
    let file = dir.write("supervisord.conf", &conf);
    let mut p = runner(&dir, &[file.to_string_lossy().into_owned()]);
    let w0 = parse_env(&dir.wait_file("env.worker.0"));
    let w1 = parse_env(&dir.wait_file("env.worker.1"));
    assert_eq!(w0["GREETING"], "hello, world");
    assert_eq!(w0["QUOTED"], "a=b, c");
    assert_eq!(w0["PLAIN"], "1");
    assert_eq!(w0["SUPERVISOR_PROCESS_NUM"], "0");
    assert_eq!(w1["SUPERVISOR_PROCESS_NUM"], "1");
    assert_eq!(w0["SUPERVISOR_ENABLED"], "1");
    // `80%(process_num)02d` is 8000 and 8001, as under supervisord (not 800 and 801).
    assert_eq!(dir.wait_file("port.0").trim(), "8000");
    assert_eq!(dir.wait_file("port.1").trim(), "8001");
    let uid = dir.wait_file("web.uid");
    if root {
        assert_eq!(uid.trim(), "65534", "web runs as nobody");
    } else {
        eprintln!("NOTE: not root, `user = nobody` not exercised");
    }
    wait_for("web's output in web.out.log", DEADLINE, || {
        dir.read("web.out.log").contains("web up")
    });
    let rows = list(&dir);
    assert_eq!(
        rows_of(&rows, "worker").len(),
        2,
        "numprocs = 2: two instances"
    );
    assert_eq!(rows_of(&rows, "web")[0].s("status"), "online");
    p.signal("TERM");
    assert_eq!(p.code(Duration::from_secs(20)), 0, "{}", p.dump());
    assert_eq!(
        dir.read("quit").trim(),
        "got-QUIT",
        "stopsignal = QUIT reached web"
    );
    let err = p.stderr();
    assert!(
        err.contains("[unix_http_server] ignored"),
        "other sections are named in a warning: {err}"
    );
}

#[test]
fn supervisord_errors_name_file_line_key_and_remedy() {
    let dir = TestDir::new("sv-err");
    let file = dir.write(
        "supervisord.conf",
        "[program:a]\ncommand = /bin/true\nautorestart = sometimes\nstopsignal = NOPE\n",
    );
    let (code, _, err) = run_to_end(
        &dir,
        &["check".to_string(), file.to_string_lossy().into_owned()],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("supervisord.conf:3:1: `autorestart` must be true, false or unexpected"),
        "{err}"
    );
    assert!(err.contains("supervisord.conf:4:1: `stopsignal`"), "{err}");
}

fn compose_file(dir: &TestDir, port: u16, migrate_code: i32) -> String {
    dir.write_exec(
        "migrate.sh",
        &format!("#!/bin/sh\necho migrate-start >> order\nsleep 0.5\necho migrate-done >> order\nexit {migrate_code}\n"),
    );
    dir.write(
        "process-compose.yaml",
        &format!(
            "version: \"0.5\"\n\
             log_level: info\n\
             processes:\n\
             \x20 migrate:\n\
             \x20   command: ./migrate.sh\n\
             \x20 web:\n\
             \x20   command: echo web >> order; exec python3 -m http.server {port} --bind 127.0.0.1\n\
             \x20   environment:\n\
             \x20     - \"A=1,2\"\n\
             \x20   depends_on:\n\
             \x20     migrate:\n\
             \x20       condition: process_completed_successfully\n\
             \x20   readiness_probe:\n\
             \x20     http_get:\n\
             \x20       host: 127.0.0.1\n\
             \x20       port: {port}\n\
             \x20       path: /\n\
             \x20     period_seconds: 1\n\
             \x20   shutdown:\n\
             \x20     signal: 15\n\
             \x20     timeout_seconds: 5\n\
             \x20 after:\n\
             \x20   command: echo after >> order; exec sleep 1000\n\
             \x20   depends_on:\n\
             \x20     web:\n\
             \x20       condition: process_healthy\n"
        ),
    )
    .to_string_lossy()
    .into_owned()
}

#[test]
fn process_compose_runs_the_job_then_the_server_once_ready() {
    if !have("python3") {
        eprintln!("SKIP: python3 not found");
        return;
    }
    let dir = TestDir::new("pc-run");
    let port = free_port();
    let file = compose_file(&dir, port, 0);
    let mut p = runner(&dir, &[file]);
    wait_for(
        "the dependent of the ready server",
        Duration::from_secs(30),
        || dir.read("order").contains("after"),
    );
    assert_eq!(
        dir.lines("order"),
        ["migrate-start", "migrate-done", "web", "after"],
        "the job completes before the server starts; `after` waits for the probe"
    );
    let rows = list(&dir);
    let job = &rows_of(&rows, "migrate")[0];
    assert_eq!(job.s("status"), "stopped");
    assert_eq!(job.s("status_text"), "completed (exit code 0)");
    let (code, out, _) = client(&dir, &["status"], Duration::from_secs(10));
    assert_eq!(code, 0, "a completed job counts as fine: {out}");
    p.signal("TERM");
    assert_eq!(p.code(Duration::from_secs(20)), 0, "{}", p.dump());
}

#[test]
fn process_compose_server_never_starts_when_the_job_fails() {
    let dir = TestDir::new("pc-fail");
    let file = compose_file(&dir, free_port(), 1);
    let mut p = runner(&dir, &[file]);
    let code = p.code(Duration::from_secs(20));
    assert_eq!(code, 1, "runner exits with the job's code: {}", p.dump());
    assert_eq!(dir.lines("order"), ["migrate-start", "migrate-done"]);
    let err = p.stderr();
    assert!(
        err.contains("web: not starting: its dependency migrate[0] exited (exit code 1)"),
        "{err}"
    );
}

#[test]
fn import_of_both_formats_prints_toml_that_check_accepts() {
    let dir = TestDir::new("mig-import");
    let sv = dir.write(
        "supervisord.conf",
        "[supervisord]\nnodaemon=true\n[program:a]\ncommand=/bin/sleep 10\nnumprocs=2\nprocess_name=%(program_name)s-%(process_num)d\npriority=5\n[program:b]\ncommand=/bin/sleep 10\nenvironment=X=\"1,2\"\n[group:g]\nprograms=a,b\n",
    );
    let pc = compose_file(&dir, free_port(), 0);
    for (i, f) in [sv.to_string_lossy().into_owned(), pc]
        .into_iter()
        .enumerate()
    {
        let (code, out, err) = run_to_end(&dir, &["import".to_string(), f.clone()]);
        assert_eq!(code, 0, "{f}: {err}");
        let toml = dir.write(&format!("imported{i}.toml"), &out);
        let (code, checked, err) = run_to_end(
            &dir,
            &["check".to_string(), toml.to_string_lossy().into_owned()],
        );
        assert_eq!(code, 0, "runner check on the import of {f}:\n{out}\n{err}");
        assert!(checked.contains("start order (depends_on)"), "{checked}");
    }
}

/// The same supervisord.conf, run by supervisord itself and by runner, in `dir`.
fn same_conf(dir: &TestDir) -> std::path::PathBuf {
    dir.write_exec(
        "dump.sh",
        "#!/bin/sh\n{ env; echo \"ARG=$2\"; echo \"CWD=$(pwd -P)\"; } > \"$1/env.$2.tmp\" && mv \"$1/env.$2.tmp\" \"$1/env.$2\"\nexec sleep 1000\n",
    );
    std::fs::create_dir_all(dir.path().join("work")).unwrap();
    dir.write(
        "supervisord.conf",
        "[supervisord]\nnodaemon = true\nlogfile = %(here)s/sd.log\npidfile = %(here)s/sd.pid\n\
         environment = GLOBAL=\"from supervisord\",PLAIN=global\n\n\
         [program:worker]\n\
         command = /bin/sh \"%(here)s/dump.sh\" %(here)s %(process_num)d ; a comment\n\
         process_name = %(program_name)s_%(process_num)02d\n\
         numprocs = 2\n\
         directory = %(here)s/work\n\
         environment = GREETING=\"hello, world\",QUOTED='a=b, c',PLAIN=1,\n\
         \x20   PATHLIKE=/usr/bin:%(here)s,PCT=\"100%%\"\n\
         stdout_logfile = NONE\n\
         stopsignal = TERM\n",
    )
}

#[test]
fn supervisord_and_runner_read_the_same_file_the_same_way() {
    if !have("supervisord") {
        eprintln!("SKIP: supervisord not installed (Debian package `supervisor`)");
        return;
    }
    let theirs = TestDir::new("sv-theirs");
    let ours = TestDir::new("sv-ours");
    let mut sd = Proc::spawn({
        let mut c = std::process::Command::new("supervisord");
        c.args(["-n", "-c"])
            .arg(same_conf(&theirs))
            .current_dir(theirs.path());
        c
    });
    let mut rn = runner(&ours, &[same_conf(&ours).to_string_lossy().into_owned()]);
    for n in ["0", "1"] {
        let a = parse_env(&theirs.wait_file(&format!("env.{n}")));
        let b = parse_env(&ours.wait_file(&format!("env.{n}")));
        for key in [
            "GREETING",
            "QUOTED",
            "PLAIN",
            "GLOBAL",
            "PCT",
            "ARG",
            "SUPERVISOR_ENABLED",
            "SUPERVISOR_GROUP_NAME",
        ] {
            assert_eq!(a.get(key), b.get(key), "{key} of process {n}");
        }
        let strip = |s: &str, d: &TestDir| s.replace(d.path().to_str().unwrap(), "HERE");
        assert_eq!(
            strip(&a["PATHLIKE"], &theirs),
            strip(&b["PATHLIKE"], &ours),
            "%(here)s in environment"
        );
        assert_eq!(
            strip(&a["CWD"], &theirs),
            strip(&b["CWD"], &ours),
            "directory"
        );
    }
    sd.signal("TERM");
    let _ = sd.wait(Duration::from_secs(20));
    rn.signal("TERM");
    assert_eq!(rn.code(Duration::from_secs(20)), 0, "{}", rn.dump());
}
