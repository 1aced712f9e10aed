//! The client side of the control socket, used by `runner list|status|start|...`. Blocking
//! I/O is fine here: the CLI sends one request and waits for one reply.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};
use nix::sys::time::TimeVal;

use super::protocol::{Reply, Request};
use super::table;

/// How long `list`, `status` and `signal` wait for runner.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest reply line the client accepts.
const MAX_REPLY: usize = 256 * 1024 * 1024;

/// Why a request got no usable reply.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing listens on the socket (ENOENT, ECONNREFUSED).
    NotListening(PathBuf),
    /// The socket exists but we may not connect to it.
    PermissionDenied(PathBuf),
    /// runner did not answer in time.
    Timeout(PathBuf, Duration),
    /// runner answered something that is not a reply, or closed without answering.
    Protocol(PathBuf, String),
    /// Any other I/O failure.
    Io(PathBuf, io::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotListening(p) => write!(
                f,
                "no runner is listening on {} (start one, or pass --socket)",
                p.display()
            ),
            ClientError::PermissionDenied(p) => write!(
                f,
                "permission denied on {} (only runner's user and root may use it)",
                p.display()
            ),
            ClientError::Timeout(p, d) => write!(
                f,
                "runner on {} did not answer within {}s",
                p.display(),
                d.as_secs_f64()
            ),
            ClientError::Protocol(p, m) => {
                write!(f, "unexpected answer from runner on {}: {m}", p.display())
            }
            ClientError::Io(p, e) => write!(f, "cannot talk to runner on {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    fn from_io(path: &Path, e: io::Error, timeout: Option<Duration>) -> ClientError {
        let p = path.to_path_buf();
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ECONNREFUSED) | Some(libc::ENOTSOCK) => {
                return ClientError::NotListening(p)
            }
            Some(libc::EACCES) | Some(libc::EPERM) => return ClientError::PermissionDenied(p),
            _ => {}
        }
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                ClientError::Timeout(p, timeout.unwrap_or_default())
            }
            io::ErrorKind::InvalidData => ClientError::Protocol(p, e.to_string()),
            _ => ClientError::Io(p, e),
        }
    }
}

/// Sends one request to the runner listening on `path` and waits for its reply: at most
/// `timeout` in all when given, else as long as runner takes (a reload may take minutes).
pub fn call(path: &Path, req: &Request, timeout: Option<Duration>) -> Result<Reply, ClientError> {
    let line = call_raw(path, req, timeout)?;
    serde_json::from_slice(&line)
        .map_err(|e| ClientError::Protocol(path.to_path_buf(), e.to_string()))
}

/// [`call`] without parsing: the reply line as received (no newline).
fn call_raw(path: &Path, req: &Request, timeout: Option<Duration>) -> Result<Vec<u8>, ClientError> {
    let timeout = timeout.filter(|t| !t.is_zero());
    let deadline = timeout.map(|t| Instant::now() + t);
    let err = |e: io::Error| ClientError::from_io(path, e, timeout);
    let mut stream = connect(path, timeout).map_err(err)?;
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(Instant::now());
        let left = left.max(Duration::from_millis(1));
        stream.set_write_timeout(Some(left)).map_err(err)?;
    }

    let mut line = serde_json::to_vec(req)
        .map_err(|e| ClientError::Protocol(path.to_path_buf(), e.to_string()))?;
    line.push(b'\n');
    if let Err(e) = stream.write_all(&line) {
        // A refusal (e.g. "permission denied") may already wait in our receive queue even
        // though runner closed before reading what we sent: prefer it to EPIPE.
        let gone = matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET));
        if !gone {
            return Err(err(e));
        }
        return match read_reply(&stream, deadline) {
            Ok(reply) => Ok(reply),
            Err(_) => Err(err(e)),
        };
    }
    read_reply(&stream, deadline).map_err(|e| match e {
        ReadError::Io(e) => err(e),
        ReadError::Protocol(m) => ClientError::Protocol(path.to_path_buf(), m),
    })
}

enum ReadError {
    Io(io::Error),
    Protocol(String),
}

/// Reads one reply line (without its newline), giving up at `deadline`.
fn read_reply(mut stream: &UnixStream, deadline: Option<Instant>) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ReadError::Io(io::ErrorKind::TimedOut.into()));
            }
            stream.set_read_timeout(Some(left)).map_err(ReadError::Io)?;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break buf.len(),
            Ok(n) => {
                let old = buf.len();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = chunk[..n].iter().position(|&b| b == b'\n') {
                    break old + i;
                }
                if buf.len() > MAX_REPLY {
                    return Err(ReadError::Protocol("reply too long".into()));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        }
    };
    buf.truncate(end);
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Err(ReadError::Protocol(
            "runner closed the connection without replying".into(),
        ));
    }
    Ok(buf)
}

/// Connects with SO_SNDTIMEO set first, so that even the connect to a runner whose backlog
/// is full gives up after `timeout`.
fn connect(path: &Path, timeout: Option<Duration>) -> io::Result<UnixStream> {
    let addr = UnixAddr::new(path).map_err(io::Error::from)?;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    if let Some(t) = timeout {
        let tv = TimeVal::new(
            t.as_secs().try_into().unwrap_or(libc::time_t::MAX),
            t.subsec_micros() as libc::suseconds_t,
        );
        socket::setsockopt(&fd, sockopt::SendTimeout, &tv).map_err(io::Error::from)?;
    }
    loop {
        match socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Err(io::Error::from(io::ErrorKind::TimedOut)),
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    Ok(UnixStream::from(fd))
}

/// One client command of the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// `runner list [--json]`
    List { json: bool },
    /// `runner status`
    Status,
    /// `runner start|stop|restart|reload|delete TARGET`
    Action { verb: String, target: String },
    /// `runner scale NAME N`
    Scale { name: String, instances: u32 },
    /// `runner signal SIGNAL TARGET`
    Signal { signal: String, target: String },
    /// `runner apply`
    Apply,
}

impl ClientCommand {
    /// The request this command sends and how long it waits for the answer (`None`: the
    /// command replies when the work is done, e.g. a reload that takes minutes).
    pub fn request(&self) -> Result<(Request, Option<Duration>), String> {
        Ok(match self {
            ClientCommand::List { .. } => (Request::List, Some(QUERY_TIMEOUT)),
            ClientCommand::Status => (Request::Status, Some(QUERY_TIMEOUT)),
            ClientCommand::Action { verb, target } => {
                let target = target.clone();
                let req = match verb.as_str() {
                    "start" => Request::Start { target },
                    "stop" => Request::Stop { target },
                    "restart" => Request::Restart { target },
                    "reload" => Request::Reload { target },
                    "delete" => Request::Delete { target },
                    other => return Err(format!("unknown command '{other}'")),
                };
                (req, None)
            }
            ClientCommand::Scale { name, instances } => (
                Request::Scale {
                    name: name.clone(),
                    instances: *instances,
                },
                None,
            ),
            ClientCommand::Signal { signal, target } => (
                Request::Signal {
                    signal: signal.clone(),
                    target: target.clone(),
                },
                Some(QUERY_TIMEOUT),
            ),
            ClientCommand::Apply => (Request::Apply, None),
        })
    }
}

/// Runs one CLI command against the runner on `socket`, prints its result and returns the
/// exit code: 0 success, 1 failure (runner said no, or no runner answered), 2 usage error.
pub fn run(socket: &Path, cmd: ClientCommand) -> u8 {
    let (req, timeout) = match cmd.request() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runner: {e}");
            return 2;
        }
    };
    let line = match call_raw(socket, &req, timeout) {
        Ok(line) => line,
        Err(e) => {
            eprintln!("runner: {e}");
            return 1;
        }
    };
    if cmd == (ClientCommand::List { json: true }) {
        if let Some(rows) = instances_as_sent(&line) {
            print_out(&format!("{rows}\n"), false);
            return 0;
        }
    }
    let parsed = serde_json::from_slice::<Reply>(&line)
        .map_err(|e| ClientError::Protocol(socket.to_path_buf(), e.to_string()));
    match parsed {
        Ok(reply) => {
            let out = render(&cmd, &reply, table::use_color());
            print_out(&out.stdout, false);
            print_out(&out.stderr, true);
            out.code
        }
        Err(e) => {
            eprintln!("runner: {e}");
            1
        }
    }
}

/// `runner logs`: prints each line as `name[instance] line` on stdout (stderr lines in red
/// on a terminal), a `runner: N lines dropped` notice on stderr when runner had to drop
/// lines for this client, and with `follow` keeps printing until runner goes away or the
/// user stops it. Exit code as [`run`].
pub fn logs(
    socket: &Path,
    target: String,
    lines: usize,
    follow: bool,
    stream: Option<String>,
) -> u8 {
    let req = Request::Logs {
        target,
        lines,
        follow,
        stream,
    };
    let timeout = (!follow).then_some(QUERY_TIMEOUT);
    let deadline = timeout.map(|t| Instant::now() + t);
    let fail = |e: ClientError| {
        eprintln!("runner: {e}");
        1
    };
    let err = |e: io::Error| ClientError::from_io(socket, e, timeout);
    let mut conn = match connect(socket, timeout) {
        Ok(c) => c,
        Err(e) => return fail(err(e)),
    };
    let mut line = match serde_json::to_vec(&req) {
        Ok(l) => l,
        Err(e) => return fail(ClientError::Protocol(socket.to_path_buf(), e.to_string())),
    };
    line.push(b'\n');
    if let Err(e) = conn.write_all(&line) {
        return fail(err(e));
    }
    let color = table::use_color();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
                return fail(ClientError::Timeout(socket.to_path_buf(), QUERY_TIMEOUT));
            }
        }
        let n = match conn.read(&mut chunk) {
            Ok(0) => {
                let _ = out.flush();
                if follow {
                    eprintln!("runner: runner on {} has exited", socket.display());
                    return 0;
                }
                return fail(ClientError::Protocol(
                    socket.to_path_buf(),
                    "runner closed the connection without replying".into(),
                ));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return fail(err(e)),
        };
        pending.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            let obj = &pending[start..start + i];
            start += i + 1;
            match log_event(obj, color) {
                LogEvent::Line(text) => {
                    if out.write_all(text.as_bytes()).is_err() {
                        // The reader went away (`runner logs | head`): done.
                        return 0;
                    }
                }
                LogEvent::Notice(text) => {
                    let _ = out.flush();
                    eprint!("{text}");
                }
                LogEvent::Done(code, text) => {
                    let _ = out.flush();
                    eprint!("{text}");
                    return code;
                }
            }
        }
        pending.drain(..start);
        if pending.len() > MAX_REPLY {
            return fail(ClientError::Protocol(
                socket.to_path_buf(),
                "line too long".into(),
            ));
        }
        if out.flush().is_err() {
            return 0;
        }
    }
}

/// One object of a `logs` answer, as the CLI shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// Text for stdout, newline included.
    Line(String),
    /// Text for stderr (dropped lines).
    Notice(String),
    /// The final reply: exit code and text for stderr (empty on success).
    Done(u8, String),
}

/// Turns one JSON object of a `logs` answer into what the CLI prints.
pub fn log_event(obj: &[u8], color: bool) -> LogEvent {
    let v: serde_json::Value = match serde_json::from_slice(obj) {
        Ok(v) => v,
        Err(e) => {
            return LogEvent::Done(1, format!("runner: unexpected answer from runner: {e}\n"))
        }
    };
    if let Ok(l) = serde_json::from_value::<super::protocol::LogLine>(v.clone()) {
        let text = format!("{}[{}] {}", l.name, l.instance, l.line);
        return LogEvent::Line(if color && l.stream == "err" {
            format!("\x1b[31m{text}\x1b[0m\n")
        } else {
            format!("{text}\n")
        });
    }
    if let Some(n) = v.get("dropped").and_then(|n| n.as_u64()) {
        let s = if n == 1 { "" } else { "s" };
        return LogEvent::Notice(format!(
            "runner: {n} line{s} dropped (this client did not keep up)\n"
        ));
    }
    match serde_json::from_value::<Reply>(v) {
        Ok(r) if r.ok => LogEvent::Done(0, String::new()),
        Ok(r) => {
            let e = r.error.as_deref().unwrap_or("request failed");
            LogEvent::Done(1, format!("runner: {e}\n"))
        }
        Err(e) => LogEvent::Done(1, format!("runner: unexpected answer from runner: {e}\n")),
    }
}

/// What a command prints for a reply, kept apart from printing so it can be tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

/// The instances of a successful `list` reply exactly as runner wrote them, for `list
/// --json`: parsing 5,000 rows only to print them again was most of the client's time.
/// The bytes are what [`render`] would print (runner writes compact JSON, as it does);
/// None for anything else (an error), which goes through [`render`].
fn instances_as_sent(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ListReply<'a> {
        ok: bool,
        #[serde(borrow, default)]
        instances: Option<&'a serde_json::value::RawValue>,
    }
    let reply: ListReply<'_> = serde_json::from_slice(line).ok()?;
    if !reply.ok {
        return None;
    }
    Some(reply.instances.map_or("[]", |r| r.get()).to_string())
}

/// Turns a reply into what the command prints and its exit code.
pub fn render(cmd: &ClientCommand, reply: &Reply, color: bool) -> Output {
    let mut out = Output {
        stdout: String::new(),
        stderr: String::new(),
        code: if reply.ok { 0 } else { 1 },
    };
    let line = |s: &str| format!("{}\n", s.trim_end_matches('\n'));
    match (cmd, reply.ok) {
        (ClientCommand::List { json }, true) => {
            let instances = reply.instances.as_deref().unwrap_or(&[]);
            if *json {
                match serde_json::to_string(instances) {
                    Ok(s) => out.stdout = line(&s),
                    Err(e) => {
                        out.stderr = format!("runner: cannot encode the list: {e}\n");
                        out.code = 1;
                    }
                }
            } else {
                out.stdout = table::render(instances, color);
            }
        }
        (ClientCommand::Status, _) => {
            // The message ("3/3 online") is the answer either way.
            if let Some(m) = &reply.message {
                out.stdout = line(m);
            }
            if let Some(e) = &reply.error {
                out.stderr = line(&format!("runner: {e}"));
            }
        }
        (_, true) => {
            if let Some(m) = &reply.message {
                out.stdout = line(m);
            }
        }
        (_, false) => {
            if let Some(m) = &reply.message {
                out.stdout = line(m);
            }
            let e = reply.error.as_deref().unwrap_or("request failed");
            out.stderr = line(&format!("runner: {e}"));
        }
    }
    out
}

/// Prints without panicking on a closed pipe (`runner list | head -1`).
fn print_out(text: &str, stderr: bool) {
    if text.is_empty() {
        return;
    }
    let _ = if stderr {
        io::stderr().lock().write_all(text.as_bytes())
    } else {
        let mut o = io::stdout().lock();
        o.write_all(text.as_bytes()).and_then(|_| o.flush())
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::InstanceInfo;
    use std::io::{BufRead, BufReader};

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("runner-cl-{}-{tag}.sock", std::process::id()))
    }

    #[test]
    fn no_socket_file_means_no_runner_is_listening() {
        let p = temp_path("missing");
        let _ = std::fs::remove_file(&p);
        let e = call(&p, &Request::List, Some(Duration::from_secs(1))).unwrap_err();
        assert!(matches!(e, ClientError::NotListening(_)), "{e:?}");
        let msg = e.to_string();
        assert_eq!(
            msg,
            format!(
                "no runner is listening on {} (start one, or pass --socket)",
                p.display()
            )
        );
    }

    #[test]
    fn a_stale_socket_file_means_no_runner_is_listening() {
        let p = temp_path("stale");
        let _ = std::fs::remove_file(&p);
        drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
        let e = call(&p, &Request::Status, Some(Duration::from_secs(1))).unwrap_err();
        assert!(matches!(e, ClientError::NotListening(_)), "{e:?}");
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn no_runner_exits_1() {
        let p = temp_path("run-missing");
        let _ = std::fs::remove_file(&p);
        assert_eq!(run(&p, ClientCommand::Status), 1);
    }

    #[test]
    fn a_silent_runner_times_out() {
        let p = temp_path("silent");
        let _ = std::fs::remove_file(&p);
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let e = call(&p, &Request::List, Some(Duration::from_millis(200))).unwrap_err();
        assert!(matches!(e, ClientError::Timeout(..)), "{e:?}");
        assert!(e.to_string().contains("did not answer within 0.2s"), "{e}");
        drop(l);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn garbage_from_the_socket_is_a_protocol_error() {
        let p = temp_path("garbage");
        let _ = std::fs::remove_file(&p);
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            s.write_all(b"hello\n").unwrap();
        });
        let e = call(&p, &Request::List, Some(Duration::from_secs(5))).unwrap_err();
        assert!(matches!(e, ClientError::Protocol(..)), "{e:?}");
        t.join().unwrap();
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_runner_that_trickles_bytes_still_times_out_on_time() {
        let p = temp_path("trickle");
        let _ = std::fs::remove_file(&p);
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            for _ in 0..40 {
                if s.write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        let start = Instant::now();
        let e = call(&p, &Request::List, Some(Duration::from_millis(300))).unwrap_err();
        assert!(matches!(e, ClientError::Timeout(..)), "{e:?}");
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
        t.join().unwrap();
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_reply_is_read_back_over_a_real_socket() {
        let p = temp_path("echo");
        let _ = std::fs::remove_file(&p);
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(&s);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "{\"cmd\":\"stop\",\"target\":\"api\"}\n");
            (&s).write_all(b"{\"ok\":true,\"message\":\"stopped api\"}\n")
                .unwrap();
        });
        let req = Request::Stop {
            target: "api".into(),
        };
        let reply = call(&p, &req, None).unwrap();
        assert_eq!(reply, Reply::ok("stopped api"));
        t.join().unwrap();
        let _ = std::fs::remove_file(&p);
    }

    fn info() -> InstanceInfo {
        InstanceInfo {
            id: 0,
            name: "api".into(),
            namespace: "default".into(),
            mode: "fork".into(),
            pid: Some(42),
            status: "online".into(),
            restarts: 0,
            uptime_ms: 1000,
            cpu: 0.5,
            memory: 1024,
            instance: 0,
            status_text: None,
            error: None,
        }
    }

    #[test]
    fn list_json_prints_the_instances_array_on_one_line() {
        let reply = Reply::instances(vec![info()]);
        let out = render(&ClientCommand::List { json: true }, &reply, false);
        assert_eq!(out.code, 0);
        assert!(out.stdout.starts_with("[{\"id\":0,"), "{}", out.stdout);
        assert!(out.stdout.ends_with("}]\n"));
        let back: Vec<InstanceInfo> = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(back, vec![info()]);
        let empty = render(&ClientCommand::List { json: true }, &Reply::ok(""), false);
        assert_eq!(empty.stdout, "[]\n");
    }

    #[test]
    fn list_json_passes_the_rows_through_byte_for_byte() {
        let mut busy = info();
        busy.cpu = 12.3;
        busy.error = Some("last exit: \"quoted\" \u{e9}".into());
        for reply in [
            Reply::instances(vec![info(), busy]),
            Reply::instances(vec![]),
            Reply::ok(""),
        ] {
            let line = crate::control::server::encode(&reply);
            let rendered = render(&ClientCommand::List { json: true }, &reply, false);
            let passed = instances_as_sent(&line).map(|r| format!("{r}\n"));
            assert_eq!(passed.as_deref(), Some(rendered.stdout.as_str()));
        }
        let refused = crate::control::server::encode(&Reply::error("no"));
        assert_eq!(
            instances_as_sent(&refused),
            None,
            "errors go through render"
        );
    }

    #[test]
    fn status_exit_code_follows_ok() {
        let good = render(&ClientCommand::Status, &Reply::ok("3/3 online"), false);
        assert_eq!((good.stdout.as_str(), good.code), ("3/3 online\n", 0));
        let bad = Reply {
            ok: false,
            message: Some("2/3 online".into()),
            ..Reply::default()
        };
        let bad = render(&ClientCommand::Status, &bad, false);
        assert_eq!((bad.stdout.as_str(), bad.code), ("2/3 online\n", 1));
    }

    #[test]
    fn a_refused_action_prints_the_error_on_stderr_and_exits_1() {
        let cmd = ClientCommand::Action {
            verb: "stop".into(),
            target: "nope".into(),
        };
        let out = render(
            &cmd,
            &Reply::error("no app or namespace named 'nope'"),
            false,
        );
        assert_eq!(out.code, 1);
        assert_eq!(out.stderr, "runner: no app or namespace named 'nope'\n");
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn an_unknown_verb_is_a_usage_error() {
        let cmd = ClientCommand::Action {
            verb: "explode".into(),
            target: "x".into(),
        };
        assert!(cmd.request().is_err());
        assert_eq!(run(Path::new("/nonexistent"), cmd), 2);
    }

    #[test]
    fn log_objects_print_with_their_prefix_and_notices_go_to_stderr() {
        let line = br#"{"id":3,"name":"api","instance":1,"stream":"out","line":"hello"}"#;
        assert_eq!(
            log_event(line, false),
            LogEvent::Line("api[1] hello\n".into())
        );
        let err = br#"{"id":3,"name":"api","instance":1,"stream":"err","line":"bad"}"#;
        assert_eq!(
            log_event(err, true),
            LogEvent::Line("\x1b[31mapi[1] bad\x1b[0m\n".into())
        );
        assert_eq!(
            log_event(br#"{"dropped":12}"#, false),
            LogEvent::Notice("runner: 12 lines dropped (this client did not keep up)\n".into())
        );
        assert_eq!(
            log_event(br#"{"ok":true}"#, false),
            LogEvent::Done(0, String::new())
        );
        assert_eq!(
            log_event(br#"{"ok":false,"error":"no app"}"#, false),
            LogEvent::Done(1, "runner: no app\n".into())
        );
        assert!(matches!(log_event(b"nope", false), LogEvent::Done(1, _)));
    }

    #[test]
    fn long_running_commands_wait_without_timeout() {
        let reload = ClientCommand::Action {
            verb: "reload".into(),
            target: "api".into(),
        };
        assert_eq!(reload.request().unwrap().1, None);
        assert_eq!(ClientCommand::Apply.request().unwrap().1, None);
        assert_eq!(
            ClientCommand::Status.request().unwrap().1,
            Some(QUERY_TIMEOUT)
        );
    }
}
