//! Opening a file for an app that runs as another user, with that user's rights.
//!
//! runner usually runs as root; an app running as `nobody` must not get root's rights
//! through a file runner opens on its behalf (`out_file`, `error_file`, `env_file`). An app
//! that can write the folder of its log can replace the log with a link to `/etc/cron.d/x`
//! and have root append its lines there, or point its `.env` at a root-only file and read
//! it in its environment. So, when the app's uid differs from runner's:
//!
//! * the last component is opened with `O_NOFOLLOW`: a symbolic link is refused;
//! * the open runs with the app's file-system identity (`setfsuid`/`setfsgid` and its
//!   supplementary groups, per thread, restored at once): every folder on the way and the
//!   file itself are checked against the app's own rights, so links in parent folders
//!   lead nowhere the app could not go itself, and a file created is the app's own;
//! * only a regular file is accepted (no FIFO, device or socket a path may be swapped for).
//!
//! The per-thread calls are made as raw syscalls: glibc's `setgroups` would apply to every
//! thread of the process, and the unit tests run in threads. When runner is not root it
//! cannot take another identity; it then opens with its own (lesser) rights and the same
//! no-link, regular-file rules.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::config::Credentials;

/// Whether files for an app with `creds` need [`open`]'s care: it runs as another user.
pub fn is_other_user(creds: Option<&Credentials>) -> bool {
    // SAFETY: geteuid has no preconditions.
    creds.is_some_and(|c| c.uid != unsafe { libc::geteuid() })
}

/// Opens `path` with `opts` for an app that runs with `creds`: as runner when the app runs
/// as runner's user, else with the app's rights, never through a final symbolic link, and
/// only a regular file. Errors say which rule refused the file.
pub fn open(path: &Path, opts: &mut OpenOptions, creds: Option<&Credentials>) -> io::Result<File> {
    let Some(c) = creds.filter(|c| is_other_user(Some(c))) else {
        return opts.open(path);
    };
    opts.custom_flags_nofollow();
    let file = {
        let _as = Identity::take(c)?;
        opts.open(path)
    };
    let file = file.map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            io::Error::other(format!(
                "is a symbolic link, which runner does not follow for an app running as uid {} (name the file itself)",
                c.uid
            ))
        } else if e.kind() == io::ErrorKind::PermissionDenied {
            io::Error::new(
                e.kind(),
                format!("{e} (opened with the rights of uid {}, as the app would)", c.uid),
            )
        } else {
            e
        }
    })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other(format!(
            "is not a regular file, which runner requires for an app running as uid {}",
            c.uid
        )));
    }
    Ok(file)
}

/// Reads the whole file at `path` for an app that runs with `creds` (see [`open`]).
pub fn read(path: &Path, creds: Option<&Credentials>) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = open(path, OpenOptions::new().read(true), creds)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self);
}

impl NoFollow for OpenOptions {
    fn custom_flags_nofollow(&mut self) {
        // custom_flags replaces earlier custom flags: keep the ones callers use.
        self.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY);
    }
}

/// The calling thread's file-system identity switched to an app's, until dropped.
struct Identity {
    fsuid: u32,
    fsgid: u32,
    groups: Option<Vec<libc::gid_t>>,
}

impl Identity {
    /// Takes `c`'s identity when runner is root; otherwise keeps runner's own.
    fn take(c: &Credentials) -> io::Result<Identity> {
        // SAFETY: plain syscalls on this thread's credentials; -1 only queries.
        let (fsuid, fsgid) = unsafe {
            (
                libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32,
                libc::syscall(libc::SYS_setfsgid, u32::MAX) as u32,
            )
        };
        let mut id = Identity {
            fsuid,
            fsgid,
            groups: None,
        };
        // SAFETY: as above.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(id);
        }
        id.groups = Some(current_groups()?);
        let groups: Vec<libc::gid_t> = if c.groups.is_empty() {
            vec![c.gid]
        } else {
            c.groups.clone()
        };
        // SAFETY: `groups` is a valid array of its length.
        let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
        if r != 0 {
            id.groups = None;
            return Err(io::Error::last_os_error());
        }
        // SAFETY: setfs* never fail in a way that matters here; the result is checked by
        // querying again.
        unsafe {
            libc::syscall(libc::SYS_setfsgid, c.gid);
            libc::syscall(libc::SYS_setfsuid, c.uid);
            if libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32 != c.uid
                || libc::syscall(libc::SYS_setfsgid, u32::MAX) as u32 != c.gid
            {
                return Err(io::Error::other(format!(
                    "cannot take the file-system rights of uid {} gid {}",
                    c.uid, c.gid
                )));
            }
        }
        Ok(id)
    }
}

impl Drop for Identity {
    fn drop(&mut self) {
        // SAFETY: restores this thread's own earlier identity; root keeps CAP_SETUID and
        // CAP_SETGID while its fsuid is another user's.
        unsafe {
            libc::syscall(libc::SYS_setfsuid, self.fsuid);
            libc::syscall(libc::SYS_setfsgid, self.fsgid);
            if let Some(g) = &self.groups {
                libc::syscall(libc::SYS_setgroups, g.len(), g.as_ptr());
            }
        }
    }
}

fn current_groups() -> io::Result<Vec<libc::gid_t>> {
    // SAFETY: a null buffer with size 0 asks for the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut g = vec![0 as libc::gid_t; n as usize];
    // SAFETY: `g` has room for `n` entries.
    let n = unsafe { libc::getgroups(n, g.as_mut_ptr()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    g.truncate(n as usize);
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn nobody() -> Credentials {
        Credentials {
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
            ..Credentials::default()
        }
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("runner-as-user-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        d
    }

    #[test]
    fn a_link_or_a_root_only_file_is_refused_for_another_user_and_rights_come_back() {
        if !root() {
            eprintln!("SKIP: needs root to take another user's rights");
            return;
        }
        let d = scratch("refuse");
        let secret = d.join("secret");
        std::fs::write(&secret, "TOKEN=root-only\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = d.join(".env");
        symlink(&secret, &link).unwrap();
        let e = read(&link, Some(&nobody())).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = read(&secret, Some(&nobody())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        // A FIFO the user may open (it has a reader) is refused: not a regular file.
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
        std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o666)).unwrap();
        let _reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let e = open(
            &fifo,
            OpenOptions::new().append(true).create(true),
            Some(&nobody()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("regular"), "{e}");
        // runner's own rights are back, and without credentials links are followed.
        assert_eq!(read(&link, None).unwrap(), b"TOKEN=root-only\n");
        // A file the user may create is created as the user's own.
        let log = d.join("out.log");
        let f = open(
            &log,
            OpenOptions::new().append(true).create(true).mode(0o640),
            Some(&nobody()),
        )
        .unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(f.metadata().unwrap().uid(), 65534);
        let _ = std::fs::remove_dir_all(&d);
    }
}
