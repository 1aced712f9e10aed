//! Where the control socket lives (SPEC section 1): `--socket`, then `RUNNER_SOCKET`, then
//! the ecosystem file's `[runner] socket`, then a default that works as root, as a user
//! session and on a read-only root filesystem.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The environment variable naming the control socket.
pub const ENV_VAR: &str = "RUNNER_SOCKET";
/// The socket name inside the default directories.
pub const FILE_NAME: &str = "runner.sock";

/// The facts the default depends on, gathered once so that the choice itself is pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// `RUNNER_SOCKET`.
    pub runner_socket: Option<OsString>,
    /// `XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<OsString>,
    /// Whether `/run` is writable by us (`access(W_OK)`).
    pub run_writable: bool,
    /// Our effective uid.
    pub uid: u32,
}

impl Env {
    /// Reads the process environment and `/run`.
    pub fn current() -> Env {
        Env {
            runner_socket: std::env::var_os(ENV_VAR),
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR"),
            run_writable: nix::unistd::access("/run", nix::unistd::AccessFlags::W_OK).is_ok(),
            uid: nix::unistd::geteuid().as_raw(),
        }
    }
}

/// The control socket path: `--socket` wins, then `RUNNER_SOCKET`, then the ecosystem
/// file's `[runner] socket` (only the supervisor passes one), then the default.
pub fn resolve(cli: Option<&Path>, file_setting: Option<&Path>) -> PathBuf {
    resolve_with(cli, file_setting, &Env::current())
}

/// [`resolve`] with the environment passed in.
pub fn resolve_with(cli: Option<&Path>, file_setting: Option<&Path>, env: &Env) -> PathBuf {
    if let Some(p) = cli.filter(|p| !p.as_os_str().is_empty()) {
        return p.to_path_buf();
    }
    if let Some(p) = non_empty(env.runner_socket.as_deref()) {
        return PathBuf::from(p);
    }
    if let Some(p) = file_setting.filter(|p| !p.as_os_str().is_empty()) {
        return p.to_path_buf();
    }
    default_path(env)
}

/// The default when nothing names a socket: `/run/runner.sock` when `/run` is writable,
/// else `$XDG_RUNTIME_DIR/runner.sock` (when set, non-empty and absolute, as the XDG spec
/// asks), else `/tmp/runner-<uid>/runner.sock`.
pub fn default_path(env: &Env) -> PathBuf {
    if env.run_writable {
        return Path::new("/run").join(FILE_NAME);
    }
    if let Some(dir) = non_empty(env.xdg_runtime_dir.as_deref()) {
        let dir = Path::new(dir);
        if dir.is_absolute() {
            return dir.join(FILE_NAME);
        }
    }
    private_tmp_dir(env.uid).join(FILE_NAME)
}

/// `/tmp/runner-<uid>`, the last-resort directory, which runner creates with mode 0700.
pub fn private_tmp_dir(uid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/runner-{uid}"))
}

fn non_empty(v: Option<&OsStr>) -> Option<&OsStr> {
    v.filter(|v| !v.is_empty())
}

/// Makes sure the socket's directory is usable before binding. For the
/// `/tmp/runner-<uid>` default the directory is created with mode 0700 when missing, and
/// refused when it is a symlink, not ours, or open to group or others (anyone could
/// otherwise put a socket there before us). For any other path the parent must exist.
pub fn prepare_dir(path: &Path) -> Result<(), String> {
    let uid = nix::unistd::geteuid().as_raw();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => return Ok(()), // a bare file name: the current directory
    };
    if parent == private_tmp_dir(uid) {
        return prepare_private_dir(parent, uid);
    }
    match fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "cannot create the control socket {}: {} is not a directory",
            path.display(),
            parent.display()
        )),
        Err(e) => Err(format!(
            "cannot create the control socket {}: directory {}: {} (create it, or pass --socket)",
            path.display(),
            parent.display(),
            describe(&e)
        )),
    }
}

/// Creates `dir` with mode 0700 or checks that the existing one is private to `uid`.
pub fn prepare_private_dir(dir: &Path, uid: u32) -> Result<(), String> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "cannot create the control socket directory {}: {} (pass --socket)",
                dir.display(),
                describe(&e)
            ))
        }
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| {
        format!(
            "cannot check the control socket directory {}: {}",
            dir.display(),
            describe(&e)
        )
    })?;
    check_private_dir(dir, &meta, uid)
}

fn check_private_dir(dir: &Path, meta: &fs::Metadata, uid: u32) -> Result<(), String> {
    if !meta.file_type().is_dir() {
        return Err(format!(
            "refusing to use {} for the control socket: it is not a directory \
             (remove it, or pass --socket)",
            dir.display()
        ));
    }
    if meta.uid() != uid {
        return Err(format!(
            "refusing to use {} for the control socket: it is owned by uid {}, not {} \
             (remove it, or pass --socket)",
            dir.display(),
            meta.uid(),
            uid
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "refusing to use {} for the control socket: its mode is {:o}, \
             open to other users (chmod 700 it, or pass --socket)",
            dir.display(),
            mode
        ));
    }
    Ok(())
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "does not exist".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn env(socket: Option<&str>, xdg: Option<&str>, run: bool) -> Env {
        Env {
            runner_socket: socket.map(OsString::from),
            xdg_runtime_dir: xdg.map(OsString::from),
            run_writable: run,
            uid: 1000,
        }
    }

    #[test]
    fn the_command_line_wins_over_everything() {
        let e = env(Some("/env.sock"), Some("/xdg"), true);
        let p = resolve_with(
            Some(Path::new("/cli.sock")),
            Some(Path::new("/file.sock")),
            &e,
        );
        assert_eq!(p, PathBuf::from("/cli.sock"));
    }

    #[test]
    fn the_environment_wins_over_the_ecosystem_file() {
        let e = env(Some("/env.sock"), None, true);
        let p = resolve_with(None, Some(Path::new("/file.sock")), &e);
        assert_eq!(p, PathBuf::from("/env.sock"));
    }

    #[test]
    fn an_empty_runner_socket_variable_is_ignored() {
        let e = env(Some(""), None, false);
        let p = resolve_with(None, Some(Path::new("/file.sock")), &e);
        assert_eq!(p, PathBuf::from("/file.sock"));
    }

    #[test]
    fn the_default_prefers_run_then_xdg_then_a_private_tmp_dir() {
        assert_eq!(
            resolve_with(None, None, &env(None, Some("/xdg"), true)),
            PathBuf::from("/run/runner.sock")
        );
        assert_eq!(
            resolve_with(None, None, &env(None, Some("/run/user/1000"), false)),
            PathBuf::from("/run/user/1000/runner.sock")
        );
        assert_eq!(
            resolve_with(None, None, &env(None, Some(""), false)),
            PathBuf::from("/tmp/runner-1000/runner.sock")
        );
        assert_eq!(
            resolve_with(None, None, &env(None, None, false)),
            PathBuf::from("/tmp/runner-1000/runner.sock")
        );
    }

    #[test]
    fn a_relative_xdg_runtime_dir_is_ignored() {
        assert_eq!(
            resolve_with(None, None, &env(None, Some("relative/dir"), false)),
            PathBuf::from("/tmp/runner-1000/runner.sock")
        );
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("runner-sp-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_private_dir_is_created_with_mode_0700() {
        let uid = nix::unistd::geteuid().as_raw();
        let d = temp_dir("create");
        prepare_private_dir(&d, uid).unwrap();
        let m = fs::symlink_metadata(&d).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
        // A second call accepts the directory it made.
        prepare_private_dir(&d, uid).unwrap();
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_private_dir_open_to_others_or_not_ours_is_refused() {
        let uid = nix::unistd::geteuid().as_raw();
        let d = temp_dir("open");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        let err = prepare_private_dir(&d, uid).unwrap_err();
        assert!(err.contains("open to other users"), "{err}");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        let err = prepare_private_dir(&d, uid.wrapping_add(1)).unwrap_err();
        assert!(err.contains("owned by uid"), "{err}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symlink_in_place_of_the_private_dir_is_refused() {
        let uid = nix::unistd::geteuid().as_raw();
        let d = temp_dir("link");
        let target = temp_dir("link-target");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&target, &d).unwrap();
        let err = prepare_private_dir(&d, uid).unwrap_err();
        assert!(err.contains("not a directory"), "{err}");
        fs::remove_file(&d).unwrap();
        fs::remove_dir_all(&target).unwrap();
    }

    #[test]
    fn a_missing_parent_directory_is_a_clear_error() {
        let err = prepare_dir(Path::new("/nonexistent-runner-dir/x/runner.sock")).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains("/nonexistent-runner-dir/x"), "{err}");
        prepare_dir(&std::env::temp_dir().join("runner.sock")).unwrap();
    }
}
