//! Cluster mode: runner binds each `listen` address once and hands the listening sockets
//! to every instance with systemd's socket-activation protocol (fds from 3,
//! `LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`). The kernel spreads connections over
//! the instances; the sockets stay open in runner across reloads, so no connection is
//! refused while instances are replaced.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::config::{AppSpec, ExecMode, ListenAddr};

/// Room for bursts of connections while instances are busy or being replaced; the
/// kernel caps it at net.core.somaxconn.
const BACKLOG: i32 = 4096;

/// The listening sockets of every cluster app, by app name.
#[derive(Debug, Default)]
pub struct Listeners {
    by_app: HashMap<String, Vec<OwnedFd>>,
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
    }
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
