//! systemd's sd_notify protocol, both directions.
//!
//! * [`NotifySocket`]: the `AF_UNIX`/`SOCK_DGRAM` socket runner binds and names in every
//!   instance's `NOTIFY_SOCKET`. `SO_PASSCRED` is on, so the kernel attaches the sender's
//!   pid (`SCM_CREDENTIALS`) to every datagram whether or not the sender sent
//!   credentials; that pid is what attributes a message to an instance.
//! * [`notify`]: runner telling its own parent (e.g. systemd with `Type=notify`).

use std::ffi::OsStr;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::socket::{
    bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr, UnixCredentials,
};

/// Largest datagram read; longer ones are truncated (the partial last line is dropped).
pub const MAX_DATAGRAM: usize = 4096;

/// Most fds one datagram can carry (the kernel's `SCM_MAX_FD`). The control buffer is
/// sized for that so `MSG_CTRUNC` cannot hide fds from us: any passed fds are closed.
const SCM_MAX_FD: usize = 253;

/// The socket apps send `READY=1` etc. to.
#[derive(Debug)]
pub struct NotifySocket {
    fd: OwnedFd,
    path: PathBuf,
    /// A file in the filesystem (not an abstract name): removed again on drop.
    unlink_on_drop: bool,
    buf: Vec<u8>,
    cmsg: Vec<u8>,
}

impl NotifySocket {
    /// Creates a non-blocking, close-on-exec `AF_UNIX`/`SOCK_DGRAM` socket bound at
    /// `path` (a stale file there is removed first), mode 0666 so apps running under
    /// other uids can send, with `SO_PASSCRED` on.
    pub fn bind(path: &Path) -> io::Result<NotifySocket> {
        let fd = Self::socket()?;
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let addr = UnixAddr::new(path)?;
        bind(fd.as_raw_fd(), &addr)?;
        let sock = Self::with(fd, path.to_path_buf(), true);
        // On error `sock` is dropped, which unlinks the path again.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        Ok(sock)
    }

    /// Binds in the abstract namespace, for when no directory is writable (a read-only
    /// root without the control socket): `NOTIFY_SOCKET` is then `@name`, which
    /// libsystemd, `systemd-notify` and the sd_notify libraries accept. Nothing to unlink.
    pub fn bind_abstract(name: &str) -> io::Result<NotifySocket> {
        let fd = Self::socket()?;
        let addr = UnixAddr::new_abstract(name.as_bytes())?;
        bind(fd.as_raw_fd(), &addr)?;
        Ok(Self::with(fd, PathBuf::from(format!("@{name}")), false))
    }

    fn with(fd: OwnedFd, path: PathBuf, unlink_on_drop: bool) -> NotifySocket {
        NotifySocket {
            fd,
            path,
            unlink_on_drop,
            buf: vec![0u8; MAX_DATAGRAM],
            cmsg: nix::cmsg_space!(UnixCredentials, [RawFd; SCM_MAX_FD]),
        }
    }

    fn socket() -> io::Result<OwnedFd> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        // Set before bind so no datagram can arrive without credentials.
        setsockopt(&fd, sockopt::PassCred, &true)?;
        Ok(fd)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads what is queued, at most `budget` datagrams: a flood can't hold the loop. Each
    /// datagram comes with its sender's pid and uid (SCM_CREDENTIALS, vouched for by the
    /// kernel) and the fds it passed, kept open until the caller drops them — a sender
    /// such as `systemd-notify` waits for its barrier fd to close before it exits, so
    /// holding them keeps the sender's /proc entry readable while it is attributed.
    /// Datagrams from a uid `uid_allowed` rejects are dropped here, before anyone reads
    /// /proc for them. The bool is true when the budget ran out with more maybe queued.
    pub fn drain_bounded(
        &mut self,
        budget: usize,
        uid_allowed: &dyn Fn(u32) -> bool,
    ) -> (Vec<Received>, bool) {
        let mut out = Vec::new();
        for _ in 0..budget {
            match self.recv_one(uid_allowed) {
                Ok(Some(item)) => out.push(item),
                Ok(None) => continue, // dropped datagram
                Err(Errno::EAGAIN) => return (out, false),
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("notify socket {}: recvmsg: {e}", self.path.display());
                    return (out, false);
                }
            }
        }
        (out, true)
    }

    /// Every queued datagram's sender pid and message, passed fds closed (tests).
    pub fn drain(&mut self) -> Vec<(i32, Message)> {
        let mut all = Vec::new();
        loop {
            let (got, more) = self.drain_bounded(1024, &|_| true);
            all.extend(got.into_iter().map(|r| (r.pid, r.message)));
            if !more {
                return all;
            }
        }
    }

    fn recv_one(&mut self, uid_allowed: &dyn Fn(u32) -> bool) -> Result<Option<Received>, Errno> {
        let fd = self.fd.as_raw_fd();
        let mut iov = [IoSliceMut::new(&mut self.buf)];
        let msg = recvmsg::<()>(
            fd,
            &mut iov,
            Some(&mut self.cmsg[..]),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        )?;
        let bytes = msg.bytes;
        let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
        let mut cred: Option<(i32, u32)> = None;
        let mut fds = Vec::new();
        match msg.cmsgs() {
            Ok(cmsgs) => {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::ScmCredentials(c) => cred = Some((c.pid(), c.uid())),
                        ControlMessageOwned::ScmRights(raw_fds) => {
                            for raw in raw_fds {
                                // SAFETY: the kernel just installed these fds for us
                                // (close-on-exec); nobody else owns them.
                                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                            }
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => log::debug!("notify socket: control data truncated: {e}"),
        }
        let (pid, uid) = match cred {
            Some((p, u)) if p > 0 => (p, u),
            _ => {
                log::debug!("notify socket: datagram without sender pid dropped");
                return Ok(None);
            }
        };
        if !uid_allowed(uid) {
            log::debug!("notify socket: datagram from uid {uid}, which runs no instance, dropped");
            return Ok(None);
        }
        let mut data = &self.buf[..bytes.min(self.buf.len())];
        if truncated {
            log::debug!(
                "notify socket: datagram from pid {pid} over {MAX_DATAGRAM} bytes truncated"
            );
            data = match data.iter().rposition(|&b| b == b'\n') {
                Some(i) => &data[..i],
                None => &[],
            };
        }
        Ok(Some(Received {
            pid,
            message: parse(data),
            fds,
        }))
    }
}

/// One datagram: its sender, its message, and the fds it passed (closed when dropped).
#[derive(Debug)]
pub struct Received {
    pub pid: i32,
    pub message: Message,
    pub fds: Vec<OwnedFd>,
}

impl AsFd for NotifySocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl mio::event::Source for NotifySocket {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).deregister(registry)
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// One parsed sd_notify datagram. Flags are set only by the exact value `1`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Message {
    pub ready: bool,
    pub stopping: bool,
    pub reloading: bool,
    pub watchdog: bool,
    pub status: Option<String>,
    pub mainpid: Option<i32>,
    pub errno: Option<i32>,
}

/// Parses newline-separated `KEY=VALUE` assignments (systemd's protocol). Unknown keys,
/// lines without `=` and unparsable numbers are ignored; invalid UTF-8 in `STATUS=` is
/// replaced lossily. A later assignment of the same key wins.
pub fn parse(datagram: &[u8]) -> Message {
    let mut m = Message::default();
    for line in datagram.split(|&b| b == b'\n') {
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (key, value) = (&line[..eq], &line[eq + 1..]);
        match key {
            b"READY" => m.ready = value == b"1",
            b"STOPPING" => m.stopping = value == b"1",
            b"RELOADING" => m.reloading = value == b"1",
            b"WATCHDOG" => m.watchdog = value == b"1",
            b"STATUS" => m.status = Some(String::from_utf8_lossy(value).into_owned()),
            b"MAINPID" => m.mainpid = parse_int(value).filter(|&p| p > 0),
            b"ERRNO" => m.errno = parse_int(value).filter(|&e| e >= 0),
            _ => {}
        }
    }
    m
}

fn parse_int(v: &[u8]) -> Option<i32> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// Sends `message` to the socket named by a `NOTIFY_SOCKET` value: an absolute path or
/// an abstract name (`@name`). Non-blocking: a full receiver queue is an `EAGAIN` error,
/// never a stall of the event loop. Errors are returned, never panics.
pub fn notify(notify_socket: &OsStr, message: &str) -> io::Result<()> {
    let bytes = notify_socket.as_bytes();
    let sock = UnixDatagram::unbound()?; // close-on-exec (std)
    sock.set_nonblocking(true)?;
    match bytes.first() {
        Some(b'/') => {
            sock.send_to(message.as_bytes(), Path::new(notify_socket))?;
        }
        Some(b'@') if bytes.len() > 1 => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])?;
            sock.send_to_addr(message.as_bytes(), &addr)?;
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported NOTIFY_SOCKET {:?}", notify_socket),
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "runner-notify-{tag}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Drains until `n` messages arrived or 5 s passed.
    fn drain_n(sock: &mut NotifySocket, n: usize) -> Vec<(i32, Message)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            got.extend(sock.drain());
            std::thread::sleep(Duration::from_millis(10));
        }
        got
    }

    #[test]
    fn parse_ready() {
        let m = parse(b"READY=1");
        assert!(m.ready);
        assert_eq!(
            m,
            Message {
                ready: true,
                ..Default::default()
            }
        );
        assert!(!parse(b"READY=0").ready);
        assert!(!parse(b"READY").ready);
    }

    #[test]
    fn parse_status_with_equals_and_multiple_lines() {
        let m = parse(b"READY=1\nSTATUS=a=b c=d\nMAINPID=42\nERRNO=5\nWATCHDOG=1\nFOO=bar\n");
        assert_eq!(
            m,
            Message {
                ready: true,
                watchdog: true,
                status: Some("a=b c=d".into()),
                mainpid: Some(42),
                errno: Some(5),
                ..Default::default()
            }
        );
        let m = parse(b"STOPPING=1\nRELOADING=1");
        assert!(m.stopping && m.reloading && !m.ready);
    }

    #[test]
    fn parse_garbage_does_not_panic() {
        let _ = parse(b"");
        let _ = parse(b"\n\n\n===\n=\n");
        let _ = parse(&[0xff, 0xfe, b'=', 0x80, b'\n', 0]);
        let m = parse(b"STATUS=\xff\xfeok\nMAINPID=abc\nERRNO=-3\nMAINPID=99999999999");
        assert_eq!(m.status.as_deref(), Some("\u{fffd}\u{fffd}ok"));
        assert_eq!(m.mainpid, None);
        assert_eq!(m.errno, None);
        let all: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let _ = parse(&all);
    }

    #[test]
    fn round_trip_from_self() {
        let dir = tempdir("self");
        let path = dir.join("notify.sock");
        std::fs::write(&path, b"stale").unwrap(); // stale file is replaced
        let mut sock = NotifySocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        assert!(sock.drain().is_empty());
        let tx = UnixDatagram::unbound().unwrap();
        tx.send_to(b"READY=1\nSTATUS=hi", &path).unwrap();
        tx.send_to(b"STOPPING=1", &path).unwrap();
        let got = drain_n(&mut sock, 2);
        let me = std::process::id() as i32;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, me);
        assert!(got[0].1.ready);
        assert_eq!(got[0].1.status.as_deref(), Some("hi"));
        assert_eq!(
            got[1],
            (
                me,
                Message {
                    stopping: true,
                    ..Default::default()
                }
            )
        );
        drop(sock);
        assert!(!path.exists(), "socket file unlinked on drop");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn oversized_datagram_keeps_complete_lines() {
        let dir = tempdir("big");
        let path = dir.join("n.sock");
        let mut sock = NotifySocket::bind(&path).unwrap();
        let mut msg = b"READY=1\nSTATUS=".to_vec();
        msg.extend(std::iter::repeat_n(b'x', 10_000));
        let tx = UnixDatagram::unbound().unwrap();
        tx.send_to(&msg, &path).unwrap();
        let got = drain_n(&mut sock, 1);
        assert_eq!(got.len(), 1);
        assert!(got[0].1.ready);
        assert_eq!(got[0].1.status, None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn passed_fds_are_closed() {
        use nix::sys::socket::{sendmsg, ControlMessage};
        let dir = tempdir("fds");
        let path = dir.join("n.sock");
        let mut sock = NotifySocket::bind(&path).unwrap();
        let tx = UnixDatagram::unbound().unwrap();
        let marker = dir.join("passed-fd-marker");
        let f = std::fs::File::create(&marker).unwrap();
        let fds = [f.as_raw_fd()];
        let addr = UnixAddr::new(&path).unwrap();
        let iov = [io::IoSlice::new(b"FDSTORE=1\nREADY=1")];
        sendmsg(
            tx.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&addr),
        )
        .unwrap();
        drop(f);
        let got = drain_n(&mut sock, 1);
        assert_eq!(got.len(), 1);
        assert!(got[0].1.ready);
        let leaked = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .any(|target| target == marker);
        assert!(!leaked, "fd passed with the datagram must be closed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn round_trip_from_python_child() {
        let dir = tempdir("py");
        let path = dir.join("n.sock");
        let mut sock = NotifySocket::bind(&path).unwrap();
        let child = Command::new("python3")
            .arg("-c")
            .arg(
                "import os,socket;s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM);\
                 s.sendto(b'READY=1\\nSTATUS=py',os.environ['NOTIFY_SOCKET'])",
            )
            .env("NOTIFY_SOCKET", &path)
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("python3 not available; skipped");
            return;
        };
        let pid = child.id() as i32;
        let got = drain_n(&mut sock, 1);
        assert!(child.wait().unwrap().success());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, pid);
        assert!(got[0].1.ready);
        assert_eq!(got[0].1.status.as_deref(), Some("py"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Runs `systemd-notify --ready --status=...` (optionally as another uid) while
    /// draining — systemd >= 246 waits on a `BARRIER=1` round trip (an fd we must close)
    /// before exiting — and returns (its pid, exit status, messages received).
    fn run_systemd_notify(
        uid: Option<u32>,
    ) -> (i32, std::process::ExitStatus, Vec<(i32, Message)>) {
        use std::os::unix::process::CommandExt;
        let dir = tempdir("sdn");
        let path = dir.join("n.sock");
        let mut sock = NotifySocket::bind(&path).unwrap();
        let mut cmd = Command::new("/usr/bin/systemd-notify");
        cmd.args(["--ready", "--status=from systemd-notify"])
            .env("NOTIFY_SOCKET", &path);
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        let mut child = cmd.spawn().unwrap();
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        let status = loop {
            got.extend(sock.drain());
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "systemd-notify hung");
            std::thread::sleep(Duration::from_millis(5));
        };
        got.extend(sock.drain());
        let _ = std::fs::remove_dir_all(&dir);
        (pid, status, got)
    }

    #[test]
    fn round_trip_from_systemd_notify() {
        if !Path::new("/usr/bin/systemd-notify").exists() {
            eprintln!("systemd-notify not available; skipped");
            return;
        }
        let me = std::process::id() as i32;
        let root = nix::unistd::geteuid().is_root();
        let mut uids = vec![None];
        if root {
            uids.push(Some(65534));
        }
        for uid in uids {
            let (pid, status, got) = run_systemd_notify(uid);
            eprintln!("systemd-notify as uid {uid:?}: pid {pid}, {status}; received {got:?}");
            assert!(status.success(), "{status}");
            let ready: Vec<_> = got.iter().filter(|(_, m)| m.ready).collect();
            assert_eq!(ready.len(), 1);
            assert_eq!(ready[0].1.status.as_deref(), Some("from systemd-notify"));
            // systemd-notify attributes the message to its *parent* (the app's shell,
            // here the test) by sending forged SCM_CREDENTIALS, which needs privilege
            // (root / CAP_SYS_ADMIN); unprivileged, the kernel refuses and it falls back
            // to its own pid. Either way: the app's process or a descendant.
            if uid.is_none() && root {
                assert_eq!(ready[0].0, me, "privileged: parent's pid");
            } else if uid.is_some() {
                assert_eq!(ready[0].0, pid, "unprivileged: its own pid");
            } else {
                assert!(ready[0].0 == me || ready[0].0 == pid);
            }
        }
    }

    #[test]
    fn notify_to_path_and_abstract() {
        let dir = tempdir("out");
        let path = dir.join("parent.sock");
        let mut sock = NotifySocket::bind(&path).unwrap();
        notify(path.as_os_str(), "READY=1\nSTATUS=up").unwrap();
        let got = drain_n(&mut sock, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, std::process::id() as i32);
        assert!(got[0].1.ready);
        assert_eq!(got[0].1.status.as_deref(), Some("up"));

        // Abstract namespace: receiver bound with std, credentials not needed here.
        use std::os::linux::net::SocketAddrExt;
        let name = format!("runner-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        notify(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");

        assert!(notify(OsStr::new("relative/path"), "READY=1").is_err());
        assert!(notify(OsStr::new(""), "READY=1").is_err());
        assert!(notify(OsStr::new("@"), "READY=1").is_err());
        assert!(notify(dir.join("missing.sock").as_os_str(), "READY=1").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
