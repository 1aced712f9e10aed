//! The README's commands, run as the README writes them, so the manual cannot rot.
//!
//! Every fenced `sh` block of README.md is either run here, line by line, or named in
//! `RUN_ELSEWHERE` with what runs it (`.ci/run`, `scripts/check-static.sh`). A new block
//! or a changed line that nothing runs fails `every_sh_line_is_run_somewhere`. The other
//! blocks that claim something checkable are checked too: the TOML example passes
//! `runner check`, the three "ready" snippets make an instance online, every protocol
//! request gets an `ok` reply, and the command synopsis matches `runner --help`.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Lines of the README's `sh` blocks that another script runs, and which one.
const RUN_ELSEWHERE: &[(&str, &str)] = &[
    ("cargo test --release", ".ci/run"),
    ("cargo install --locked --path .", ".ci/run"),
    ("runner --version", ".ci/run"),
    ("scripts/check-static.sh", ".ci/run"),
    // No Docker engine here: check-static.sh runs the Dockerfile's build command and plays
    // the final stage (PID 1, HEALTHCHECK, SIGTERM) with the binary it builds.
    (
        "docker build -t runner-example .",
        "scripts/check-static.sh",
    ),
    (
        "docker run --rm -p 8090:8090 runner-example",
        "scripts/check-static.sh",
    ),
];

/// The bundled example listens on 127.0.0.1:8080: one test at a time uses it.
static PORT_8080: Mutex<()> = Mutex::new(());

fn port_8080() -> MutexGuard<'static, ()> {
    PORT_8080.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the bundled example's port is free (else the test says so and skips).
fn port_8080_free(test: &str) -> bool {
    let free = std::net::TcpListener::bind("127.0.0.1:8080").is_ok();
    if !free {
        eprintln!("SKIP {test}: 127.0.0.1:8080 is in use by another program");
    }
    free
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fenced block of README.md: its info string, the `##` section it is in, its text.
#[derive(Debug, Clone)]
struct Block {
    lang: String,
    section: String,
    text: String,
}

fn readme_blocks() -> Vec<Block> {
    let text = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut blocks = Vec::new();
    let mut section = String::new();
    let mut open: Option<Block> = None;
    for line in text.lines() {
        if let Some(b) = open.as_mut() {
            if line.starts_with("```") {
                blocks.push(open.take().unwrap());
            } else {
                b.text.push_str(line);
                b.text.push('\n');
            }
        } else if let Some(lang) = line.strip_prefix("```") {
            open = Some(Block {
                lang: lang.trim().to_string(),
                section: section.clone(),
                text: String::new(),
            });
        } else if let Some(h) = line.strip_prefix("## ") {
            section = h.trim().to_string();
        }
    }
    assert!(open.is_none(), "README.md has an unclosed ``` block");
    blocks
}

fn blocks_in(section: &str, lang: &str) -> Vec<Block> {
    let v: Vec<Block> = readme_blocks()
        .into_iter()
        .filter(|b| b.section.starts_with(section) && b.lang == lang)
        .collect();
    assert!(
        !v.is_empty(),
        "README.md has no ```{lang} block under \"## {section}\""
    );
    v
}

/// A command line of an `sh` block: the command and its trailing `# comment`.
#[derive(Debug, Clone)]
struct Line {
    command: String,
    comment: String,
}

/// The command lines of an `sh` block (a shebang script is not a list of commands).
fn sh_lines(block: &Block) -> Vec<Line> {
    block
        .text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            // A comment starts at " #" outside quotes; the README's commands keep '#' out
            // of their quoted words.
            let (command, comment) = match l.find(" #") {
                Some(i) => (&l[..i], l[i + 2..].trim()),
                None => (l, ""),
            };
            Line {
                command: command.trim().to_string(),
                comment: comment.to_string(),
            }
        })
        .collect()
}

/// A `sh -ec LINE` in `cwd` with runner first on PATH and the test's control socket.
fn shell(line: &str, cwd: &Path, socket: &Path) -> Command {
    let bin_dir = Path::new(RUNNER).parent().expect("runner's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-ec")
        .arg(line)
        .current_dir(cwd)
        .env("PATH", path)
        .env("RUNNER_SOCKET", socket)
        .env_remove("RUNNER_LOG");
    cmd
}

/// Runs `line` to its end (deadline 60 s); returns (code, stdout, stderr).
fn run_line(line: &str, cwd: &Path, socket: &Path) -> (i32, String, String) {
    let mut p = Proc::spawn(shell(line, cwd, socket));
    let st = p.wait(Duration::from_secs(60));
    (st.code().unwrap_or(-1), p.stdout(), p.stderr())
}

/// The pid of the runner that `sh` started for a line (sh itself when it exec'd runner).
fn runner_under(sh: i32) -> Option<i32> {
    if stat(sh).is_some_and(|s| s.comm == "runner") {
        return Some(sh);
    }
    children(sh)
        .into_iter()
        .find(|c| c.comm == "runner")
        .map(|c| c.pid)
}

/// Stops, when the test ends however it ends, the runner a `sh` line started: dropping
/// the `Proc` only ends the shell, and runner then has another parent.
struct StopRunnerUnder {
    sh: i32,
    runner: Option<i32>,
}

impl StopRunnerUnder {
    fn new(sh: i32) -> StopRunnerUnder {
        StopRunnerUnder { sh, runner: None }
    }

    /// The runner's pid, found (and remembered) while the shell is still its parent.
    fn pid(&mut self) -> i32 {
        if self.runner.is_none() {
            self.runner = runner_under(self.sh);
        }
        self.runner.expect("no runner under the shell")
    }
}

impl Drop for StopRunnerUnder {
    fn drop(&mut self) {
        if let Some(pid) = self.runner.or_else(|| runner_under(self.sh)) {
            send_signal(pid, "TERM");
            poll_until(Duration::from_secs(20), || !alive(pid));
        }
    }
}

/// Waits until `runner status` (through the test's socket) exits 0.
fn wait_healthy(p: &mut Proc, socket: &Path) {
    let mut last = (0, String::new(), String::new());
    let ok = poll_until(Duration::from_secs(30), || {
        last = run_line("runner status", &repo(), socket);
        last.0 == 0
    });
    assert!(ok, "runner status never exited 0: {last:?}\n{}", p.dump());
}

/// Sends one protocol line to the control socket and returns the reply line.
fn request(socket: &Path, line: &str) -> String {
    let mut s =
        UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).unwrap();
    reply
}

// ---------------------------------------------------------------------------------------

#[test]
fn every_sh_line_is_run_somewhere() {
    // The sections whose blocks the tests below run line by line.
    let run_here = [
        "The two commands",
        "Five-minute tour",
        "Saying \"ready\"",
        "Coming from PM2",
    ];
    let ci = std::fs::read_to_string(repo().join(".ci/run")).expect(".ci/run");
    let mut orphans = Vec::new();
    for b in readme_blocks().iter().filter(|b| b.lang == "sh") {
        for l in sh_lines(b) {
            match RUN_ELSEWHERE.iter().find(|(c, _)| *c == l.command) {
                Some((c, ".ci/run")) => assert!(
                    ci.contains(c),
                    "README's `{c}` is said to run in .ci/run, which does not contain it"
                ),
                Some(_) => {}
                None if run_here.iter().any(|s| b.section.starts_with(s)) => {}
                None => orphans.push(format!("`{}` (## {})", l.command, b.section)),
            }
        }
    }
    assert!(
        orphans.is_empty(),
        "README commands that no test runs: {orphans:?}; run them in tests/readme.rs or \
         name what runs them in RUN_ELSEWHERE"
    );
    // The Docker lines are only covered while check-static.sh plays them.
    let check_static =
        std::fs::read_to_string(repo().join("scripts/check-static.sh")).expect("check-static");
    assert!(
        check_static.contains("<Dockerfile") && check_static.contains("\"$bin\" status"),
        "check-static.sh no longer checks the Dockerfile's build and HEALTHCHECK"
    );
}

#[test]
fn the_two_commands_are_the_build_and_the_test_command() {
    let blocks = blocks_in("The two commands", "sh");
    let lines: Vec<String> = blocks
        .iter()
        .flat_map(sh_lines)
        .map(|l| l.command)
        .collect();
    assert_eq!(
        lines,
        [
            "cargo build --release && ./target/release/runner examples/ecosystem.toml",
            "cargo test --release"
        ],
        "the README's two commands changed: update tests/readme.rs and .ci/run with them"
    );
}

#[test]
fn first_command_runs_the_bundled_example_until_ctrl_c() {
    let _g = port_8080();
    if !port_8080_free("first command") {
        return;
    }
    let line = blocks_in("The two commands", "sh")[0]
        .text
        .trim()
        .to_string();
    // Under `cargo test --release` the binary is ./target/release/runner and the build is
    // a no-op, so the line runs as written; another profile or target dir runs the binary
    // under test instead of building a second one.
    let release = repo().join("target/release/runner");
    let line = if Path::new(RUNNER) == release {
        line
    } else {
        let (_, run) = line.split_once("&& ").expect("a build && run line");
        run.replace("./target/release/runner", RUNNER)
    };
    let dir = TestDir::new("readme-first");
    let socket = dir.path().join("runner.sock");
    let mut p = Proc::spawn(shell(&line, &repo(), &socket));
    let mut stop = StopRunnerUnder::new(p.pid());
    wait_healthy(&mut p, &socket);
    let pid = stop.pid();
    let r = http_get(8080, "/").unwrap_or_else(|e| panic!("GET :8080: {e}\n{}", p.dump()));
    assert!(r.contains("hello from instance"), "8080 answered {r:?}");

    // Ctrl-C: the terminal sends SIGINT to runner (the shell waits for it).
    send_signal(pid, "INT");
    let code = p.code(Duration::from_secs(30));
    assert_eq!(code, 0, "Ctrl-C did not end runner with 0\n{}", p.dump());
    let out = p.stdout();
    assert!(
        out.contains("web[0] got signal 2") && out.contains("worker[0] stopping after"),
        "the apps did not stop gracefully\n{}",
        p.dump()
    );
}

#[test]
fn five_minute_tour_runs_as_written() {
    let _g = port_8080();
    if !port_8080_free("tour") {
        return;
    }
    let lines = sh_lines(&blocks_in("Five-minute tour", "sh")[0]);
    let dir = TestDir::new("readme-tour");
    let socket = dir.path().join("runner.sock");
    let mut supervisor: Option<Proc> = None;
    let mut stop_guard = None;
    let mut ran = Vec::new();
    for l in &lines {
        let words: Vec<&str> = l.command.split_whitespace().collect();
        assert_eq!(words.first(), Some(&"runner"), "tour line {l:?}");
        let second = words.get(1).copied().unwrap_or("");
        if second.ends_with(".toml") {
            // `runner FILE` supervises in the foreground: keep it running for the rest.
            let mut p = Proc::spawn(shell(&l.command, &repo(), &socket));
            let mut guard = StopRunnerUnder::new(p.pid());
            wait_healthy(&mut p, &socket);
            guard.pid();
            stop_guard = Some(guard);
            supervisor = Some(p);
            ran.push(l.command.clone());
            continue;
        }
        let (code, out, err) = run_line(&l.command, &repo(), &socket);
        let dump = || {
            supervisor
                .as_ref()
                .map(|p| p.dump())
                .unwrap_or_else(|| "(runner not started yet)".into())
        };
        if second == "--" {
            // "runner exits N, as it did": the program's code becomes runner's.
            let expected: i32 = l
                .comment
                .split("exits ")
                .nth(1)
                .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert_eq!(code, expected, "`{}`: {out}\n{err}", l.command);
            assert!(out.contains("hello"), "`{}` printed {out:?}", l.command);
        } else {
            assert_eq!(
                code,
                0,
                "`{}` exited {code}: {out}\n{err}\n{}",
                l.command,
                dump()
            );
        }
        match words.get(1..) {
            Some(["list"]) => {
                for name in ["web", "worker"] {
                    assert!(out.contains(name), "`runner list` printed:\n{out}");
                }
            }
            Some(["list", "--json"]) => match Json::parse(out.trim()) {
                Ok(Json::Arr(rows)) => {
                    assert_eq!(rows.len(), 3, "list --json: {out}");
                }
                other => panic!("`runner list --json` printed no array: {other:?}\n{out}"),
            },
            Some(["signal", "SIGUSR2", "worker"]) => {
                let p = supervisor.as_ref().expect("runner started before signal");
                wait_for("the worker's SIGUSR2 report", DEADLINE, || {
                    p.stdout().contains("jobs done so far")
                });
            }
            _ => {}
        }
        ran.push(l.command.clone());
    }
    let mut p = supervisor.expect("the tour starts runner on a file");
    // `runner reload web` replaced both web instances; `stop worker; start worker` leaves
    // the worker online again.
    wait_app_status(&dir, "worker", 1, "online", DEADLINE);
    // Like PM2, a reload counts in `restarts`.
    let web = wait_app_status(&dir, "web", 2, "online", DEADLINE);
    assert!(
        web.iter().all(|r| r.i("restarts") == 1),
        "each web instance was reloaded once: {web:?}"
    );
    assert!(
        p.stderr().matches("web[0]: started pid").count() >= 2,
        "reload did not replace web[0]\n{}",
        p.dump()
    );

    // The control protocol's examples, against the same runner.
    protocol_examples(&socket, &mut p);

    let mut guard = stop_guard.expect("a guard for the runner");
    send_signal(guard.pid(), "INT");
    let code = p.code(Duration::from_secs(30));
    assert_eq!(code, 0, "runner exited {code} on Ctrl-C\n{}", p.dump());
    eprintln!("tour ran: {ran:#?}");
}

/// Every request line of the README's protocol block gets `"ok":true`, and a `list` row
/// has every field the README's example reply shows.
fn protocol_examples(socket: &Path, p: &mut Proc) {
    let block = &blocks_in("Control socket", "json")[0];
    let mut n = 0;
    for raw in block.text.lines() {
        let line = raw.split("//").next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let reply = request(socket, line);
        let j = Json::parse(reply.trim()).unwrap_or_else(|e| panic!("{line}: {e}: {reply}"));
        assert!(
            matches!(j.get("ok"), Some(Json::Bool(true))),
            "README request {line} got {reply}\n{}",
            p.dump()
        );
        n += 1;
    }
    assert!(n >= 6, "protocol block has {n} requests");

    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("`{\"ok\":true,\"instances\":[")
        .expect("README shows a list reply");
    let example = &readme[start + 1..];
    let example = &example[..example.find('`').unwrap()];
    let documented = Json::parse(example).unwrap_or_else(|e| panic!("README's reply: {e}"));
    let doc_row = &documented.get("instances").unwrap().as_array().unwrap()[0];
    let reply = request(socket, r#"{"cmd":"list"}"#);
    let real = Json::parse(reply.trim()).unwrap();
    let real_row = &real.get("instances").unwrap().as_array().unwrap()[0];
    let Json::Obj(fields) = doc_row else {
        panic!("README's row is not an object")
    };
    for (key, _) in fields {
        assert!(
            real_row.has(key),
            "README's list reply shows `{key}`, the real one lacks it: {reply}"
        );
    }
}

#[test]
fn ecosystem_file_example_passes_check() {
    let block = &blocks_in("The ecosystem file", "toml")[0];
    let dir = TestDir::new("readme-toml");
    dir.write("server.js", "");
    let file = dir.ecosystem(&block.text);
    let (code, out, err) = run_to_end(&dir, &["check".to_string(), file.display().to_string()]);
    assert_eq!(
        code, 0,
        "the README's ecosystem example fails check:\n{out}\n{err}"
    );
    assert!(out.contains("api"), "check printed:\n{out}");
}

#[test]
fn command_synopsis_matches_help() {
    let block = readme_blocks()
        .into_iter()
        .find(|b| b.section == "Command line" && b.lang.is_empty())
        .expect("the synopsis block");
    let (code, help, _) = run_to_end(&TestDir::new("readme-help"), &["--help"]);
    assert_eq!(code, 0);
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let help_lines: Vec<String> = help.lines().map(squash).collect();
    for l in block.text.lines().filter(|l| !l.trim().is_empty()) {
        // The synopsis is the part before the description's run of spaces.
        let form = squash(l.split("   ").next().unwrap_or(l));
        assert!(
            help_lines.iter().any(|h| h.starts_with(&form)),
            "README's `{form}` is not in runner --help:\n{help}"
        );
    }
}

#[test]
fn the_three_ways_to_say_ready_make_an_instance_online() {
    let blocks = readme_blocks();
    let in_ready = |lang: &str| {
        blocks
            .iter()
            .find(|b| b.section.starts_with("Saying \"ready\"") && b.lang == lang)
            .unwrap_or_else(|| panic!("no {lang} block under Saying \"ready\""))
            .text
            .clone()
    };
    let dir = TestDir::new("readme-ready");
    // The shell script as written, with the two programs it names.
    dir.write_exec("start.sh", &in_ready("sh"));
    dir.write_exec("prepare-things", "#!/bin/sh\ntrue\n");
    dir.write_exec("server", "#!/bin/sh\nexec sleep 1000\n");
    // The Python lines, then the program goes on running.
    dir.write(
        "ready.py",
        &format!("{}\nimport time\ntime.sleep(1000)\n", in_ready("python")),
    );
    // The Node lines inside the smallest server that defines what they use.
    dir.write(
        "ready.js",
        &format!(
            "const server = require('http').createServer((q, r) => r.end('ok'));\n\
             const port = 0;\n{}",
            in_ready("js")
        ),
    );
    let mut apps = Vec::new();
    if have("systemd-notify") {
        apps.push("shell");
    } else {
        eprintln!("SKIP the shell way: systemd-notify is not installed");
    }
    if have("python3") {
        apps.push("python");
    }
    if have("node") {
        apps.push("node");
    }
    let script = |a: &str| match a {
        "shell" => "start.sh",
        "python" => "ready.py",
        _ => "ready.js",
    };
    // A long listen_timeout: only the message can make them online within the test.
    let toml: String = apps
        .iter()
        .map(|a| {
            format!(
                "[[apps]]\nname = \"{a}\"\nscript = \"{}\"\nwait_ready = true\n\
                 listen_timeout = \"10m\"\n\n",
                script(a)
            )
        })
        .collect();
    dir.ecosystem(&toml);
    let mut p = runner_eco(&dir, &[]);
    for a in &apps {
        let rows = wait_app_status(&dir, a, 1, "online", Duration::from_secs(30));
        if *a == "shell" {
            assert_eq!(
                rows[0].s("status_text"),
                "serving",
                "systemd-notify --status did not reach list: {rows:?}"
            );
        }
    }
    eprintln!("online by their README snippets: {apps:?}");
    p.signal("TERM");
    assert_eq!(p.code(Duration::from_secs(20)), 0, "{}", p.dump());
}

#[test]
fn pm2_import_lines_run_as_written() {
    if !have("node") {
        eprintln!("SKIP: node is not installed (import evaluates ecosystem.config.js)");
        return;
    }
    let lines = sh_lines(&blocks_in("Coming from PM2", "sh")[0]);
    let dir = TestDir::new("readme-pm2");
    dir.write("server.js", "");
    // An ecosystem.config.js as PM2's documentation writes them.
    dir.write(
        "ecosystem.config.js",
        "module.exports = {\n  apps: [{\n    name: 'api',\n    script: './server.js',\n    \
         instances: 2,\n    exec_mode: 'cluster',\n    watch: true,\n    \
         max_memory_restart: '300M',\n    env: { NODE_ENV: 'development', PORT: 3000 },\n    \
         env_production: { NODE_ENV: 'production' },\n  }],\n};\n",
    );
    let socket = dir.path().join("runner.sock");
    for l in &lines {
        let (code, out, err) = run_line(&l.command, dir.path(), &socket);
        assert_eq!(code, 0, "`{}` exited {code}: {out}\n{err}", l.command);
    }
    let toml = dir.read("ecosystem.toml");
    for part in [
        "name = \"api\"",
        "instances = 2",
        "max_memory_restart",
        "watch",
    ] {
        assert!(toml.contains(part), "imported file lacks {part}:\n{toml}");
    }
}
