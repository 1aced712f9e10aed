//! fork + exec of one instance, with the child set up the way SPEC section 4 asks:
//! its own process group, an empty signal mask, default dispositions, exactly the file
//! descriptors meant for it, and `LISTEN_PID` equal to its own pid.
//!
//! `std::process::Command` is not used: it inherits runner's signal mask (Rust ≥ 1.66)
//! and cannot write the child's own pid into its environment. Everything the child needs
//! is prepared before the fork; between fork and exec the child only makes
//! async-signal-safe system calls on that memory.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::Credentials;

/// Where the child's stdin comes from.
#[derive(Debug)]
pub enum Stdin {
    /// Runner's own fd 0 (single-program mode: the program may be interactive).
    Inherit,
    /// `/dev/null`: several apps can't share one terminal's input.
    Null,
}

/// Everything needed to start one process.
#[derive(Debug)]
pub struct SpawnRequest<'a> {
    pub program: &'a Path,
    pub argv: &'a [String],
    pub env: Vec<(OsString, OsString)>,
    pub cwd: &'a Path,
    pub credentials: Option<&'a Credentials>,
    pub stdin: Stdin,
    /// Replacements for fds 1 and 2 (None: inherit runner's).
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
    /// Passed as fds 3, 4, ... (listening sockets, then the Node IPC channel).
    pub extra_fds: Vec<RawFd>,
    /// Variables set to the child's own pid (`LISTEN_PID`, `WATCHDOG_PID`), which only
    /// the child knows.
    pub pid_vars: Vec<&'static str>,
    /// Make the child the terminal's foreground process group (single-program mode).
    pub foreground_tty: bool,
}

/// Why a spawn failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnError {
    pub message: String,
    /// 127 when the program does not exist, 126 when it cannot be executed (shell rules).
    pub code: i32,
    /// Short of a resource (processes, fds, memory) rather than a problem of the program.
    pub transient: bool,
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The step of the child's set-up that failed, reported with errno through a pipe.
#[repr(u32)]
#[derive(Clone, Copy)]
enum Stage {
    Fds = 1,
    Groups = 2,
    Gid = 3,
    Uid = 4,
    Chdir = 5,
    Exec = 6,
}

fn stage_name(stage: u32) -> &'static str {
    match stage {
        1 => "setting up file descriptors",
        2 => "setting supplementary groups",
        3 => "switching group",
        4 => "switching user",
        5 => "changing directory",
        _ => "executing",
    }
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString, SpawnError> {
    CString::new(bytes).map_err(|_| SpawnError {
        message: format!("{what} contains a NUL byte"),
        code: 126,
        transient: false,
    })
}

/// Room for any pid (at most 7 digits on Linux, 10 for any i32).
const PID_DIGITS: usize = 10;

/// Starts the process; returns its pid once it has exec'd (or the reason it could not).
pub fn spawn(req: SpawnRequest<'_>) -> Result<i32, SpawnError> {
    start(req)?.outcome()
}

/// A forked child whose exec has not been confirmed yet.
#[derive(Debug)]
pub struct Started {
    pub pid: i32,
    /// Read end of the child's error pipe: EOF once it has exec'd (close-on-exec), or
    /// the failing stage and errno. Readable (never blocks) once the child has exec'd or
    /// exited, so the loop can wait for it like any other event.
    pub exec: OwnedFd,
    program: PathBuf,
    cwd: PathBuf,
}

impl Started {
    /// Reads the exec result (blocks until the child has exec'd or failed).
    pub fn outcome(self) -> Result<i32, SpawnError> {
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < buf.len() {
            match nix::unistd::read(&self.exec, &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        if got < buf.len() {
            return Ok(self.pid);
        }
        let stage = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
        Err(failure(stage, errno, &self.program, &self.cwd))
    }
}

/// The error a child reported from `stage`, in words a user can act on.
fn failure(stage: u32, errno: i32, program: &Path, cwd: &Path) -> SpawnError {
    let err = std::io::Error::from_raw_os_error(errno);
    let code = if stage == Stage::Exec as u32 && errno == libc::ENOENT {
        127
    } else {
        126
    };
    let what = match stage {
        5 => format!("{} {}: {err}", stage_name(stage), cwd.display()),
        6 => format!("{} {}: {err}", stage_name(stage), program.display()),
        _ => format!("{}: {err}", stage_name(stage)),
    };
    // exec can fail for want of memory too (E2BIG is the program's, ENOMEM/EAGAIN not).
    let transient = matches!(
        errno,
        libc::ENOMEM | libc::EAGAIN | libc::EMFILE | libc::ENFILE
    );
    SpawnError {
        message: what,
        code,
        transient,
    }
}

/// Forks the child and returns at once; [`Started::outcome`] tells whether it exec'd.
pub fn start(req: SpawnRequest<'_>) -> Result<Started, SpawnError> {
    let program = cstring(req.program.as_os_str().as_bytes(), "the program path")?;
    let argv: Vec<CString> = req
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes(), "an argument"))
        .collect::<Result<_, _>>()?;
    let mut envs: Vec<CString> = Vec::with_capacity(req.env.len() + 1);
    for (k, v) in &req.env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        envs.push(cstring(&kv, "an environment variable")?);
    }
    // The digits are written by the child, which alone knows its pid; the buffer is
    // padded so a shorter pid simply ends the string early with a NUL.
    let mut pid_var_at: Vec<(usize, usize)> = Vec::new();
    for name in &req.pid_vars {
        let mut buf = format!("{name}=").into_bytes();
        let prefix = buf.len();
        buf.extend(std::iter::repeat_n(b'0', PID_DIGITS));
        pid_var_at.push((envs.len(), prefix));
        envs.push(cstring(&buf, name)?);
    }
    let cwd = cstring(req.cwd.as_os_str().as_bytes(), "the working directory")?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = envs.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY (in the child): each pointer is inside a CString that outlives the fork, at
    // the first of PID_DIGITS digits.
    let pid_slots: Vec<*mut u8> = pid_var_at
        .iter()
        .map(|(i, prefix)| unsafe { (envs[*i].as_ptr() as *mut u8).add(*prefix) })
        .collect();
    let groups: Vec<libc::gid_t> = req
        .credentials
        .map(|c| c.groups.iter().map(|g| *g as libc::gid_t).collect())
        .unwrap_or_default();
    let creds = req.credentials.and_then(|c| {
        let same =
            nix::unistd::geteuid().as_raw() == c.uid && nix::unistd::getegid().as_raw() == c.gid;
        (!same).then_some((c.uid, c.gid))
    });

    let null_fd: Option<OwnedFd> = match req.stdin {
        Stdin::Null => Some(open_dev_null()?),
        Stdin::Inherit => None,
    };
    // Park every fd the child gets above the target range first, so that the dup2 calls
    // in the child can never overwrite a source that is still needed.
    let n_extra = req.extra_fds.len() as RawFd;
    let floor = 3 + n_extra;
    let mut parked: Vec<OwnedFd> = Vec::with_capacity(req.extra_fds.len() + 3);
    let mut park = |fd: RawFd| -> Result<RawFd, SpawnError> {
        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor) };
        if new < 0 {
            return Err(SpawnError {
                message: format!(
                    "cannot duplicate fd {fd}: {}",
                    std::io::Error::last_os_error()
                ),
                code: 126,
                transient: true,
            });
        }
        // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
        parked.push(unsafe { OwnedFd::from_raw_fd(new) });
        Ok(new)
    };
    let stdin_src = match &null_fd {
        Some(fd) => Some(park(fd.as_raw_fd())?),
        None => None,
    };
    let stdout_src = match req.stdout {
        Some(fd) => Some(park(fd)?),
        None => None,
    };
    let stderr_src = match req.stderr {
        Some(fd) => Some(park(fd)?),
        None => None,
    };
    let extra_src: Vec<RawFd> = req
        .extra_fds
        .iter()
        .map(|fd| park(*fd))
        .collect::<Result<_, _>>()?;

    let (err_read, err_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SpawnError {
            message: format!("cannot create a pipe: {e}"),
            code: 126,
            transient: true,
        })?;

    // SAFETY: the child only calls async-signal-safe functions on memory prepared above,
    // then execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SpawnError {
            message: format!("fork failed: {}", std::io::Error::last_os_error()),
            code: 126,
            transient: true,
        });
    }
    if pid == 0 {
        unsafe {
            child(ChildPlan {
                program: program.as_ptr(),
                argv: argv_ptrs.as_ptr(),
                envp: env_ptrs.as_ptr(),
                cwd: cwd.as_ptr(),
                pid_slots: &pid_slots,
                groups: &groups,
                creds,
                stdin: stdin_src,
                stdout: stdout_src,
                stderr: stderr_src,
                extra: &extra_src,
                foreground_tty: req.foreground_tty,
                err_fd: err_write.as_raw_fd(),
                sigrtmax: libc::SIGRTMAX(),
            })
        }
    }
    drop(err_write);
    drop(parked);
    Ok(Started {
        pid,
        exec: err_read,
        program: req.program.to_path_buf(),
        cwd: req.cwd.to_path_buf(),
    })
}

fn open_dev_null() -> Result<OwnedFd, SpawnError> {
    nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| SpawnError {
        message: format!("cannot open /dev/null: {e}"),
        code: 126,
        // Out of fds is the system's state, not the program's fault.
        transient: matches!(
            e,
            nix::errno::Errno::EMFILE | nix::errno::Errno::ENFILE | nix::errno::Errno::ENOMEM
        ),
    })
}

struct ChildPlan<'a> {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    pid_slots: &'a [*mut u8],
    groups: &'a [libc::gid_t],
    creds: Option<(u32, u32)>,
    stdin: Option<RawFd>,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    extra: &'a [RawFd],
    foreground_tty: bool,
    err_fd: RawFd,
    /// Computed before the fork: glibc's SIGRTMAX() is a function call.
    sigrtmax: libc::c_int,
}

/// Runs in the forked child. Async-signal-safe calls only; never returns.
unsafe fn child(plan: ChildPlan<'_>) -> ! {
    let fail = |stage: Stage| -> ! {
        let errno = *libc::__errno_location();
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
        buf[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(plan.err_fd, buf.as_ptr() as *const libc::c_void, buf.len());
        libc::_exit(127);
    };

    libc::setpgid(0, 0);
    if plan.foreground_tty {
        // SIGTTOU is ignored (inherited from runner), so this works from a background group.
        libc::tcsetpgrp(0, libc::getpid());
    }
    // Runner's handlers vanish at exec, but what it ignores (SIGTTIN, SIGTTOU, SIGPIPE)
    // would stay ignored: give the program the defaults it expects.
    // The raw system call, because glibc's wrappers refuse signals 32 and 33 (its own
    // SIGCANCEL/SIGSETXID), which posix_spawn callers hand down ignored. An all-zero
    // kernel sigaction is SIG_DFL with no flags and an empty mask in every layout.
    let dfl = [0u64; 4];
    for sig in 1..=plan.sigrtmax {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());

    for (src, dst) in [(plan.stdin, 0), (plan.stdout, 1), (plan.stderr, 2)] {
        if let Some(src) = src {
            if libc::dup2(src, dst) < 0 {
                fail(Stage::Fds);
            }
        }
    }
    for (i, src) in plan.extra.iter().enumerate() {
        // dup2 clears close-on-exec on the new fd: these are the only ones that survive.
        if libc::dup2(*src, 3 + i as RawFd) < 0 {
            fail(Stage::Fds);
        }
    }

    if let Some((uid, gid)) = plan.creds {
        if libc::setgroups(plan.groups.len(), plan.groups.as_ptr()) < 0 {
            fail(Stage::Groups);
        }
        if libc::setgid(gid) < 0 {
            fail(Stage::Gid);
        }
        if libc::setuid(uid) < 0 {
            fail(Stage::Uid);
        }
    }
    if libc::chdir(plan.cwd) < 0 {
        fail(Stage::Chdir);
    }
    let pid = libc::getpid();
    for slot in plan.pid_slots {
        write_pid_digits(*slot, pid);
    }
    libc::execve(plan.program, plan.argv, plan.envp);
    fail(Stage::Exec)
}

/// Writes `pid` in decimal at `dst` and NUL-terminates it, within PID_DIGITS bytes.
unsafe fn write_pid_digits(dst: *mut u8, pid: libc::pid_t) {
    let mut digits = [0u8; PID_DIGITS];
    let mut n = pid.max(0) as u32;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 || len == PID_DIGITS {
            break;
        }
    }
    for i in 0..len {
        *dst.add(i) = digits[len - 1 - i];
    }
    if len < PID_DIGITS {
        *dst.add(len) = 0;
    }
}

/// Where `name` is found: a path with a slash as given, else the first executable in PATH.
pub fn resolve_program(name: &OsStr) -> Result<PathBuf, SpawnError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(SpawnError {
            message: "empty program name".into(),
            code: 127,
            transient: false,
        });
    }
    if bytes.contains(&b'/') {
        let p = PathBuf::from(name);
        return match std::fs::metadata(&p) {
            Err(_) => Err(SpawnError {
                message: format!("{}: not found", p.display()),
                code: 127,
                transient: false,
            }),
            Ok(m) if m.is_dir() || !is_executable(&p) => Err(SpawnError {
                message: format!("{}: not executable", p.display()),
                code: 126,
                transient: false,
            }),
            Ok(_) => Ok(p),
        };
    }
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    let mut found_not_exec = None;
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if let Ok(m) = std::fs::metadata(&candidate) {
            if m.is_file() && is_executable(&candidate) {
                return Ok(candidate);
            }
            found_not_exec.get_or_insert(candidate);
        }
    }
    match found_not_exec {
        Some(p) => Err(SpawnError {
            message: format!("{}: not executable", p.display()),
            code: 126,
            transient: false,
        }),
        None => Err(SpawnError {
            message: format!("{}: not found in PATH", name.to_string_lossy()),
            code: 127,
            transient: false,
        }),
    }
}

fn is_executable(p: &Path) -> bool {
    nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// Marks every fd above 2 that runner inherited close-on-exec, so that nothing its
/// caller leaked reaches the apps (tini, dumb-init and catatonit all pass them on).
pub fn cloexec_inherited_fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &str) -> OsString {
        OsString::from(v)
    }

    #[test]
    fn pid_digits_fill_the_buffer_and_terminate() {
        let mut buf = [b'x'; PID_DIGITS];
        unsafe { write_pid_digits(buf.as_mut_ptr(), 4_194_303) };
        assert_eq!(&buf[..8], b"4194303\0");
        let mut buf = [b'x'; PID_DIGITS];
        unsafe { write_pid_digits(buf.as_mut_ptr(), 7) };
        assert_eq!(&buf[..2], b"7\0");
    }

    #[test]
    fn a_missing_program_is_127_and_a_directory_is_126() {
        assert_eq!(
            resolve_program(&os("no-such-program-xyz"))
                .unwrap_err()
                .code,
            127
        );
        assert_eq!(resolve_program(&os("/no/such/file")).unwrap_err().code, 127);
        assert_eq!(resolve_program(&os("/tmp")).unwrap_err().code, 126);
        assert!(resolve_program(&os("sh")).is_ok());
    }
}
