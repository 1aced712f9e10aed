//! Cluster mode: runner binds each `listen` address once and hands the listening sockets
//! to every instance with systemd's socket-activation protocol (fds from 3,
//! `LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`). The kernel spreads connections over
//! the instances; the sockets stay open in runner across reloads, so no connection is
//! refused while instances are replaced.
//!
//! A Node.js app in cluster mode also gets, for every `listen()` it makes, a socket from
//! here ([`Listeners::node_socket`], asked for over the Node IPC channel): bound once per
//! app and listen key, the same for every instance, kept until the app is removed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::socket::{
    bind as sys_bind, listen as sys_listen, setsockopt, socket, sockopt, AddressFamily, Backlog,
    SockFlag, SockType, SockaddrStorage, UnixAddr,
};
use serde_json::Value;

use crate::config::{AppSpec, ExecMode, ListenAddr};
use crate::node_ipc::cluster::{Query, Target};

/// Sockets one app's workers may have runner bind: an app that listens on ever new
/// ports cannot make runner hold fds without bound.
pub const MAX_NODE_SOCKETS: usize = 64;

/// Room for bursts of connections while instances are busy or being replaced; the
/// kernel caps it at net.core.somaxconn.
const BACKLOG: i32 = 4096;

/// The listening sockets of every cluster app, by app name.
#[derive(Debug, Default)]
pub struct Listeners {
    by_app: HashMap<String, Vec<OwnedFd>>,
    /// Sockets bound for Node workers: app name → Node's listen key → socket.
    node: HashMap<String, HashMap<String, NodeSocket>>,
}

/// A socket bound for the `listen()` of a Node app's workers.
#[derive(Debug)]
struct NodeSocket {
    fd: OwnedFd,
    /// The first worker's server data (TLS ticket keys), given to every worker.
    data: Value,
    /// A Unix socket file runner created, removed with the socket (as Node's primary does).
    path: Option<PathBuf>,
}

impl Drop for NodeSocket {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Listeners {
    /// Binds every app's `listen` addresses; the first failure names the app and address.
    pub fn bind_all(apps: &[AppSpec]) -> Result<Listeners, String> {
        let mut l = Listeners::default();
        for spec in apps {
            l.ensure(spec)?;
        }
        Ok(l)
    }

    /// Binds the app's sockets if that has not happened yet (an app added by `apply`).
    pub fn ensure(&mut self, spec: &AppSpec) -> Result<(), String> {
        if spec.exec_mode != ExecMode::Cluster
            || spec.listen.is_empty()
            || self.by_app.contains_key(&spec.name)
        {
            return Ok(());
        }
        let mut fds = Vec::new();
        for addr in &spec.listen {
            let fd = bind(addr)
                .map_err(|e| format!("app `{}`: cannot listen on {addr}: {e}", spec.name))?;
            log::info!("{}: listening on {addr}", spec.name);
            fds.push(fd);
        }
        self.by_app.insert(spec.name.clone(), fds);
        Ok(())
    }

    /// The fds to pass to an instance of `app`, in `listen` order.
    pub fn fds(&self, app: &str) -> Vec<i32> {
        self.by_app
            .get(app)
            .map(|v| v.iter().map(|fd| fd.as_raw_fd()).collect())
            .unwrap_or_default()
    }

    /// Closes the sockets of an app that is gone.
    pub fn forget(&mut self, app: &str) {
        self.by_app.remove(app);
        self.node.remove(app);
    }

    /// The socket for a Node worker's `listen()`: the one bound for the same listen key
    /// before, else a `listen` address runner pre-bound that matches, else a new one.
    /// Returns a copy of the fd to pass and the server data to answer with, or the errno
    /// `listen()` fails with (a failure is not remembered: the next worker retries).
    pub fn node_socket(&mut self, spec: &AppSpec, q: &Query) -> Result<(OwnedFd, Value), Errno> {
        let app = self.node.entry(spec.name.clone()).or_default();
        if let Some(s) = app.get(&q.key) {
            return Ok((s.fd.try_clone().map_err(io_errno)?, s.data.clone()));
        }
        let prebound = self.by_app.get(&spec.name).and_then(|fds| {
            let i = match &q.target {
                Target::Fd(n) => usize::try_from(*n).ok()?.checked_sub(3)?,
                t => spec.listen.iter().position(|l| matches_listen(l, t))?,
            };
            fds.get(i)
        });
        if let (Target::Fd(_), None) = (&q.target, prebound) {
            return Err(Errno::EBADF);
        }
        if app.len() >= MAX_NODE_SOCKETS {
            log::warn!(
                "{}: a worker asked for more than {MAX_NODE_SOCKETS} listening sockets; refused",
                spec.name
            );
            return Err(Errno::EMFILE);
        }
        let (fd, path) = match prebound {
            Some(fd) => (fd.try_clone().map_err(io_errno)?, None),
            None => bind_target(&q.target, q.backlog)?,
        };
        let data = q.data.clone();
        let copy = fd.try_clone().map_err(io_errno)?;
        if path.is_some() || prebound.is_none() {
            log::info!("{}: listening on {} for its workers", spec.name, q.target);
        }
        app.insert(
            q.key.clone(),
            NodeSocket {
                fd,
                data: data.clone(),
                path,
            },
        );
        Ok((copy, data))
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Whether a Node `listen()` target is a `listen` address runner bound already.
fn matches_listen(l: &ListenAddr, t: &Target) -> bool {
    match (l, t) {
        (ListenAddr::Tcp(a), Target::Tcp { ip, port, .. }) => {
            a.port() == *port
                && *port != 0
                && match ip {
                    None => a.ip().is_unspecified(),
                    Some(ip) => a.ip() == *ip,
                }
        }
        (ListenAddr::Unix(p), Target::Unix(q)) => p == q,
        _ => false,
    }
}

/// Binds what a Node worker asked for the way Node's own primary would (libuv's
/// options: `SO_REUSEADDR`, dual-stack `::` first for "any address"), and listens
/// so connections queue even while no worker is up.
fn bind_target(t: &Target, backlog: i32) -> Result<(OwnedFd, Option<PathBuf>), Errno> {
    match t {
        Target::Tcp { ip: None, port, .. } => {
            let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), *port);
            match bind_inet(SockType::Stream, any6, false, true, Some(backlog)) {
                // No IPv6 on this host: Node falls back to IPv4.
                Err(Errno::EAFNOSUPPORT | Errno::EADDRNOTAVAIL) => {
                    let any4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *port);
                    bind_inet(SockType::Stream, any4, false, true, Some(backlog))
                }
                other => other,
            }
            .map(|fd| (fd, None))
        }
        Target::Tcp {
            ip: Some(ip),
            port,
            v6only,
        } => bind_inet(
            SockType::Stream,
            SocketAddr::new(*ip, *port),
            *v6only,
            true,
            Some(backlog),
        )
        .map(|fd| (fd, None)),
        Target::Udp {
            ip,
            port,
            reuse_addr,
            v6only,
        } => bind_inet(
            SockType::Datagram,
            SocketAddr::new(*ip, *port),
            *v6only,
            *reuse_addr,
            None,
        )
        .map(|fd| (fd, None)),
        Target::Unix(path) => {
            let fd = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )?;
            let addr = UnixAddr::new(path.as_path())?;
            sys_bind(fd.as_raw_fd(), &addr)?;
            sys_listen(&fd, Backlog::new(backlog).unwrap_or(Backlog::MAXCONN))?;
            Ok((fd, Some(path.clone())))
        }
        Target::Fd(_) => Err(Errno::EBADF),
        Target::Invalid(e) => Err(*e),
    }
}

fn bind_inet(
    ty: SockType,
    addr: SocketAddr,
    v6only: bool,
    reuse_addr: bool,
    backlog: Option<i32>,
) -> Result<OwnedFd, Errno> {
    let family = if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(family, ty, SockFlag::SOCK_CLOEXEC, None)?;
    if reuse_addr {
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &v6only)?;
    }
    sys_bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    if let Some(b) = backlog {
        sys_listen(&fd, Backlog::new(b).unwrap_or(Backlog::MAXCONN))?;
    }
    Ok(fd)
}

fn bind(addr: &ListenAddr) -> std::io::Result<OwnedFd> {
    let fd: OwnedFd = match addr {
        // std sets SO_REUSEADDR and close-on-exec, which is what a restarted runner needs.
        ListenAddr::Tcp(a) => std::net::TcpListener::bind(a)?.into(),
        ListenAddr::Unix(path) => {
            remove_stale_socket(path)?;
            std::os::unix::net::UnixListener::bind(path)?.into()
        }
    };
    // A second listen() only raises the backlog std chose.
    // SAFETY: plain listen(2) on a socket we own.
    unsafe { libc::listen(fd.as_raw_fd(), BACKLOG) };
    Ok(fd)
}

/// A socket file left by an earlier run is replaced; any other file is left alone.
fn remove_stale_socket(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        )),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn cluster_app(listen: Vec<ListenAddr>) -> AppSpec {
        let mut a = AppSpec::with_defaults(
            "api",
            PathBuf::from("/bin/true"),
            vec!["true".into()],
            PathBuf::from("/"),
        );
        a.exec_mode = ExecMode::Cluster;
        a.listen = listen;
        a
    }

    #[test]
    fn binds_once_and_reports_a_taken_address_with_the_app_and_address() {
        let app = cluster_app(vec![ListenAddr::Tcp("127.0.0.1:0".parse().unwrap())]);
        let l = Listeners::bind_all(std::slice::from_ref(&app)).unwrap();
        assert_eq!(l.fds("api").len(), 1);
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let clash = cluster_app(vec![ListenAddr::Tcp(
            format!("127.0.0.1:{port}").parse().unwrap(),
        )]);
        let err = Listeners::bind_all(&[clash]).unwrap_err();
        assert!(
            err.contains("app `api`") && err.contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }

    #[test]
    fn a_stale_unix_socket_is_replaced_but_a_regular_file_is_not() {
        let dir = std::env::temp_dir().join(format!("runner-cluster-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let sock = dir.join("s.sock");
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        assert!(Listeners::bind_all(&[cluster_app(vec![ListenAddr::Unix(sock.clone())])]).is_ok());
        let file = dir.join("plain");
        std::fs::write(&file, b"keep").unwrap();
        assert!(Listeners::bind_all(&[cluster_app(vec![ListenAddr::Unix(file.clone())])]).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
