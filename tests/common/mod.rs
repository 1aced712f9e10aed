//! Shared helpers for the black-box tests of the `runner` binary.
//!
//! Everything here uses std only: processes are signalled with the `kill` command and
//! inspected through /proc. Nothing sleeps a fixed time to assert: conditions are polled
//! with a generous deadline.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const RUNNER: &str = env!("CARGO_BIN_EXE_runner");

/// Default deadline for "eventually" conditions.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// Directory of the helper apps.
pub fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("apps")
}

/// Absolute path of a helper app, as a string for ecosystem files.
pub fn app(name: &str) -> String {
    let p = apps_dir().join(name);
    assert!(p.exists(), "missing helper app {}", p.display());
    p.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------
// Temporary directories

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir; removed on drop unless the test failed
/// (kept for post-mortem then, and its path is printed).
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "runner-test-{name}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path()/name`, as a string for ecosystem files and arguments.
    pub fn p(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn write_exec(&self, name: &str, content: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.write(name, content);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Writes `ecosystem.toml` and returns its path.
    pub fn ecosystem(&self, toml: &str) -> PathBuf {
        self.write("ecosystem.toml", toml)
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path.join(name).exists()
    }

    /// The file's content, or "" when it does not exist (yet).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path.join(name)).unwrap_or_default()
    }

    /// Non-empty lines of the file.
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.read(name)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    /// Waits until the file exists and is not empty; returns its content.
    pub fn wait_file(&self, name: &str) -> String {
        self.wait_file_within(name, DEADLINE)
    }

    pub fn wait_file_within(&self, name: &str, deadline: Duration) -> String {
        wait_for(&format!("file {name} to be written"), deadline, || {
            !self.read(name).trim().is_empty()
        });
        self.read(name)
    }

    /// Waits until the file has at least `n` non-empty lines; returns them.
    pub fn wait_lines(&self, name: &str, n: usize) -> Vec<String> {
        wait_for(&format!("{n} lines in {name}"), DEADLINE, || {
            self.lines(name).len() >= n
        });
        self.lines(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("test dir kept: {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Polling

/// Polls `cond` every 20 ms until it holds; panics with `what` after `deadline`.
pub fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` until it holds or `deadline` passes; returns whether it held.
pub fn poll_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// Running runner

/// A running process (runner, or a wrapper around it) with stdout and stderr captured by
/// background threads.
pub struct Proc {
    child: Option<Child>,
    pid: i32,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
}

fn pump(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

impl Proc {
    /// Spawns `cmd` with stdin null and stdout/stderr captured.
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            pump(child.stdout.take().unwrap(), out.clone()),
            pump(child.stderr.take().unwrap(), err.clone()),
        ];
        Proc {
            pid: child.id() as i32,
            child: Some(child),
            out,
            err,
            readers,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// Sends a signal (name without SIG, or number) with the `kill` command.
    pub fn signal(&self, sig: &str) {
        assert!(
            self.status.is_none(),
            "signalling a process that was already waited for"
        );
        send_signal(self.pid, sig);
    }

    /// Whether the process has exited (reaps it when it has).
    pub fn has_exited(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        match self.child.as_mut().unwrap().try_wait() {
            Ok(Some(st)) => {
                self.status = Some(st);
                true
            }
            _ => false,
        }
    }

    /// Waits for the exit within `deadline`; on timeout kills it and panics with its output.
    pub fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        while !self.has_exited() {
            if Instant::now() >= end {
                let _ = self.child.as_mut().unwrap().kill();
                let _ = self.child.as_mut().unwrap().wait();
                self.finish_readers();
                panic!(
                    "process {} did not exit within {deadline:?}\n--- stdout:\n{}\n--- stderr:\n{}",
                    self.pid,
                    self.stdout(),
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.finish_readers();
        self.status.unwrap()
    }

    /// Waits for the exit and returns the exit code (panics when killed by a signal).
    pub fn code(&mut self, deadline: Duration) -> i32 {
        let st = self.wait(deadline);
        match st.code() {
            Some(c) => c,
            None => panic!(
                "process {} was killed by a signal: {st:?}\n{}",
                self.pid,
                self.stderr()
            ),
        }
    }

    /// Output readers end once every holder of the pipes (runner and its apps) is gone;
    /// don't wait for leftover apps forever.
    fn finish_readers(&mut self) {
        let end = Instant::now() + Duration::from_secs(2);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < end {
            thread::sleep(Duration::from_millis(10));
        }
        for r in std::mem::take(&mut self.readers) {
            if r.is_finished() {
                let _ = r.join();
            }
        }
    }

    /// stderr, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                if let Ok(None) = child.try_wait() {
                    // Give runner a chance to stop its apps, then force.
                    send_signal(self.pid, "TERM");
                    let end = Instant::now() + Duration::from_secs(3);
                    while Instant::now() < end {
                        if let Ok(Some(_)) = child.try_wait() {
                            return;
                        }
                        thread::sleep(Duration::from_millis(20));
                    }
                    send_signal(self.pid, "TERM");
                    let end = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < end {
                        if let Ok(Some(_)) = child.try_wait() {
                            return;
                        }
                        thread::sleep(Duration::from_millis(20));
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

/// A `Command` for runner with the given arguments, run in `cwd`.
pub fn runner_cmd<S: AsRef<std::ffi::OsStr>>(cwd: &Path, args: &[S]) -> Command {
    let mut cmd = Command::new(RUNNER);
    cmd.args(args).current_dir(cwd).env_remove("RUNNER_LOG");
    // Keep every test's control socket apart (when the build has one).
    cmd.env("RUNNER_SOCKET", cwd.join("runner.sock"));
    cmd
}

/// Starts runner with `args` in `dir`.
pub fn runner<S: AsRef<std::ffi::OsStr>>(dir: &TestDir, args: &[S]) -> Proc {
    Proc::spawn(runner_cmd(dir.path(), args))
}

/// Starts runner on `dir/ecosystem.toml`.
pub fn runner_eco(dir: &TestDir, extra: &[&str]) -> Proc {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.push(dir.p("ecosystem.toml"));
    runner(dir, &args)
}

/// Runs runner to completion (deadline 20 s); returns (code, stdout, stderr).
pub fn run_to_end<S: AsRef<std::ffi::OsStr>>(dir: &TestDir, args: &[S]) -> (i32, String, String) {
    let mut p = runner(dir, args);
    let code = p.code(Duration::from_secs(20));
    (code, p.stdout(), p.stderr())
}

// ---------------------------------------------------------------------------------------
// Signals and /proc

/// `kill -SIG pid` through the `kill` command (SIG: a name without SIG, or a number).
pub fn send_signal(pid: i32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .expect("cannot run kill");
    let _ = st; // the process may already be gone
}

/// The fields of /proc/PID/stat the tests look at.
#[derive(Debug, Clone)]
pub struct Stat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub utime: u64,
    pub stime: u64,
    pub starttime: u64,
}

pub fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // rest[0] = state (field 3), rest[1] = ppid (4), pgrp (5), session (6), ...
    // utime = field 14 -> rest[11], stime = 15 -> rest[12], starttime = 22 -> rest[19]
    Some(Stat {
        pid,
        comm,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        pgid: rest.get(2)?.parse().ok()?,
        sid: rest.get(3)?.parse().ok()?,
        utime: rest.get(11)?.parse().ok()?,
        stime: rest.get(12)?.parse().ok()?,
        starttime: rest.get(19)?.parse().ok()?,
    })
}

/// Every process visible in /proc.
pub fn all_procs() -> Vec<Stat> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                if let Some(s) = stat(pid) {
                    v.push(s);
                }
            }
        }
    }
    v
}

/// Children of `pid` (by ppid).
pub fn children(pid: i32) -> Vec<Stat> {
    all_procs().into_iter().filter(|p| p.ppid == pid).collect()
}

/// Zombie children of `pid`.
pub fn zombie_children(pid: i32) -> Vec<i32> {
    children(pid)
        .into_iter()
        .filter(|p| p.state == 'Z')
        .map(|p| p.pid)
        .collect()
}

/// Whether `pid` is alive (exists and is neither a zombie nor dead).
pub fn alive(pid: i32) -> bool {
    matches!(stat(pid), Some(s) if s.state != 'Z' && s.state != 'X')
}

/// A process identity robust to pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId {
    pub pid: i32,
    pub start: u64,
}

impl ProcId {
    /// The identity of a live process (panics when it is not alive).
    pub fn of(pid: i32) -> ProcId {
        let s = stat(pid).unwrap_or_else(|| panic!("process {pid} does not exist"));
        ProcId {
            pid,
            start: s.starttime,
        }
    }

    /// Still this very process, and not a zombie.
    pub fn alive(&self) -> bool {
        matches!(stat(self.pid), Some(s) if s.starttime == self.start && s.state != 'Z' && s.state != 'X')
    }

    /// Still this very process, in any state (zombies included).
    pub fn exists(&self) -> bool {
        matches!(stat(self.pid), Some(s) if s.starttime == self.start)
    }
}

/// A line `Key:\tvalue` of /proc/PID/status.
pub fn status_field(pid: i32, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("{key}:"))
            .map(|v| v.trim().to_string())
    })
}

/// Clock ticks per second for utime/stime (100 on every Linux this runs on).
pub const CLK_TCK: u64 = 100;

/// Pids of the instances runner logged as started (`NAME[i]: started pid N`), in order.
pub fn started_pids(stderr: &str, app: &str) -> Vec<i32> {
    let prefix = format!("{app}[");
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("runner: "))
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.split("started pid ").nth(1))
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// Parses a file of `KEY=VALUE` lines (the output of `env`).
pub fn parse_env(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Milliseconds timestamps, one per line (as `stamp.sh` writes them).
pub fn stamps(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------
// JSON (a minimal reader for `runner list --json`; std only)

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at {}", p.i));
        }
        Ok(v)
    }

    /// The member `key` of an object (None for other values or a missing key).
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    /// An integral number.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Json::Num(n) if n.fract() == 0.0 => Some(*n as i64),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Json>> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// `self[key]` as a string ("" when missing or not a string).
    pub fn s(&self, key: &str) -> String {
        self.get(key)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// `self[key]` as an integer (-1 when missing, null or not an integer).
    pub fn i(&self, key: &str) -> i64 {
        self.get(key).and_then(Json::as_i64).unwrap_or(-1)
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> Result<(), String> {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(format!("expected {lit} at {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            None => Err("unexpected end".into()),
            Some(b'n') => self.eat("null").map(|_| Json::Null),
            Some(b't') => self.eat("true").map(|_| Json::Bool(true)),
            Some(b'f') => self.eat("false").map(|_| Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(v));
                }
                loop {
                    v.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(v));
                        }
                        _ => return Err(format!("bad array at {}", self.i)),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut m = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    self.eat(":")?;
                    let v = self.value()?;
                    m.push((k, v));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => return Err(format!("bad object at {}", self.i)),
                    }
                }
            }
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                    .map(Json::Num)
                    .ok_or_else(|| format!("bad number at {start}"))
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat("\"")?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("unterminated escape")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(
                                self.s.get(self.i..self.i + 4).ok_or("bad \\u")?,
                            )
                            .map_err(|e| e.to_string())?;
                            let cp = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            self.i += 4;
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Client commands against a running runner (the socket is `dir/runner.sock`)

/// Runs a client command (`list`, `status`, `reload api`, ...) of runner in `dir` with a
/// deadline; returns (code, stdout, stderr). Code -1 when killed by a signal.
pub fn client(dir: &TestDir, args: &[&str], deadline: Duration) -> (i32, String, String) {
    let mut p = Proc::spawn(runner_cmd(dir.path(), args));
    let st = p.wait(deadline);
    (st.code().unwrap_or(-1), p.stdout(), p.stderr())
}

/// `runner list --json` parsed; None when the command fails or prints no JSON array.
pub fn try_list(dir: &TestDir) -> Option<Vec<Json>> {
    let (code, out, _) = client(dir, &["list", "--json"], Duration::from_secs(10));
    if code != 0 {
        return None;
    }
    match Json::parse(out.trim()) {
        Ok(Json::Arr(v)) => Some(v),
        _ => None,
    }
}

/// `runner list --json` parsed (panics when it fails).
pub fn list(dir: &TestDir) -> Vec<Json> {
    let (code, out, err) = client(dir, &["list", "--json"], Duration::from_secs(10));
    assert_eq!(code, 0, "runner list --json failed: {out}\n{err}");
    match Json::parse(out.trim()) {
        Ok(Json::Arr(v)) => v,
        other => panic!("runner list --json printed no array: {other:?}\n{out}"),
    }
}

/// The rows of `list --json` for app `name`.
pub fn rows_of(rows: &[Json], name: &str) -> Vec<Json> {
    rows.iter()
        .filter(|r| r.s("name") == name)
        .cloned()
        .collect()
}

/// Waits until `runner list` answers (the control socket is up).
pub fn wait_listening(dir: &TestDir) {
    wait_for("runner to answer on its control socket", DEADLINE, || {
        try_list(dir).is_some()
    });
}

/// Waits until every instance of `name` (at least `n` of them) has `status`; returns rows.
pub fn wait_app_status(
    dir: &TestDir,
    name: &str,
    n: usize,
    status: &str,
    deadline: Duration,
) -> Vec<Json> {
    let mut last = Vec::new();
    let ok = poll_until(deadline, || {
        if let Some(rows) = try_list(dir) {
            last = rows_of(&rows, name);
            last.len() >= n && last.iter().all(|r| r.s("status") == status)
        } else {
            false
        }
    });
    assert!(ok, "timed out after {deadline:?} waiting for {n} instance(s) of {name} to be {status}; last: {last:?}");
    last
}

/// Pids of the instances of `name` in `list --json` (running ones only), sorted.
pub fn pids_of(dir: &TestDir, name: &str) -> Vec<i64> {
    let mut v: Vec<i64> = rows_of(&list(dir), name)
        .iter()
        .map(|r| r.i("pid"))
        .filter(|p| *p > 0)
        .collect();
    v.sort();
    v
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// One HTTP/1.0 GET on a fresh connection to 127.0.0.1:port; the whole response.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::Write;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    if !text.starts_with("HTTP/1.") || !text.contains(" 200 ") {
        return Err(std::io::Error::other(format!("bad response: {text:?}")));
    }
    Ok(text)
}

/// Milliseconds since the epoch (to compare with `date +%s%3N` stamps).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Whether a program is found in PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// Raw output and file descriptors (tests/logs.rs)

impl Proc {
    /// Everything captured from stdout so far, as bytes (no UTF-8 assumption).
    pub fn stdout_bytes(&self) -> Vec<u8> {
        self.out.lock().unwrap().clone()
    }

    /// Everything captured from stderr so far, as bytes.
    pub fn stderr_bytes(&self) -> Vec<u8> {
        self.err.lock().unwrap().clone()
    }
}

/// Where `/proc/PID/fd/FD` points (`pipe:[123]`, `/dev/null`, a path), if readable.
pub fn fd_link(pid: i32, fd: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}
