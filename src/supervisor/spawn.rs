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

/// Why a spawn failed, in words a user can act on: the core's own type, so the shell
/// hands it over as it is.
pub use crate::core::SpawnFailure as SpawnError;

/// The step of the child's set-up that failed, reported with errno through a pipe.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Fds = 1,
    Groups = 2,
    Gid = 3,
    Uid = 4,
    Chdir = 5,
    Exec = 6,
}

impl Stage {
    /// The stage a child reported; an unknown number (never written) counts as exec.
    fn from_wire(n: u32) -> Stage {
        match n {
            1 => Stage::Fds,
            2 => Stage::Groups,
            3 => Stage::Gid,
            4 => Stage::Uid,
            5 => Stage::Chdir,
            _ => Stage::Exec,
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Stage::Fds => "setting up file descriptors",
            Stage::Groups => "setting supplementary groups",
            Stage::Gid => "switching group",
            Stage::Uid => "switching user",
            Stage::Chdir => "changing directory",
            Stage::Exec => "executing",
        }
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
        let stage = Stage::from_wire(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]));
        let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
        Err(failure(stage, errno, &self.program, &self.cwd))
    }
}

/// The error a child reported from `stage`, in words a user can act on.
fn failure(stage: Stage, errno: i32, program: &Path, cwd: &Path) -> SpawnError {
    let err = std::io::Error::from_raw_os_error(errno);
    let code = if stage == Stage::Exec && errno == libc::ENOENT {
        127
    } else {
        126
    };
    let doing = stage.doing();
    let what = match stage {
        Stage::Chdir => format!("{doing} {}: {err}", cwd.display()),
        Stage::Exec => format!("{doing} {}: {err}", program.display()),
        _ => format!("{doing}: {err}"),
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
    let image = ExecImage::prepare(&req)?;
    let groups: Vec<libc::gid_t> = req
        .credentials
        .map(|c| c.groups.iter().map(|g| *g as libc::gid_t).collect())
        .unwrap_or_default();
    let creds = req.credentials.and_then(|c| {
        let same =
            nix::unistd::geteuid().as_raw() == c.uid && nix::unistd::getegid().as_raw() == c.gid;
        (!same).then_some((c.uid, c.gid))
    });
    let parked = Parked::new(&req)?;
    let (err_read, err_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SpawnError {
            message: format!("cannot create a pipe: {e}"),
            code: 126,
            transient: true,
        })?;
    let plan = ChildPlan {
        program: image.program.as_ptr(),
        argv: image.argv_ptrs.as_ptr(),
        envp: image.env_ptrs.as_ptr(),
        cwd: image.cwd.as_ptr(),
        pid_slots: &image.pid_slots,
        groups: &groups,
        creds,
        stdin: parked.stdin,
        stdout: parked.stdout,
        stderr: parked.stderr,
        extra: &parked.extra,
        foreground_tty: req.foreground_tty,
        err_fd: err_write.as_raw_fd(),
        sigrtmax: libc::SIGRTMAX(),
    };
    let pid = fork_exec(plan)?;
    // The child has its own copies now; runner's must not pile up.
    drop(err_write);
    drop(parked);
    Ok(Started {
        pid,
        exec: err_read,
        program: req.program.to_path_buf(),
        cwd: req.cwd.to_path_buf(),
    })
}

/// What execve needs, built before the fork: the child may not allocate.
struct ExecImage {
    program: CString,
    cwd: CString,
    /// Owners of the bytes `argv_ptrs` points into (heap data: moving them moves no byte).
    _argv: Vec<CString>,
    /// `NAME=value\0` entries, owners of what `env_ptrs` and `pid_slots` point into.
    _envs: Vec<Vec<u8>>,
    argv_ptrs: Vec<*const libc::c_char>,
    env_ptrs: Vec<*const libc::c_char>,
    /// Where the child writes its own pid (`LISTEN_PID=`, ...): PID_DIGITS bytes each.
    pid_slots: Vec<*mut u8>,
}

impl ExecImage {
    fn prepare(req: &SpawnRequest<'_>) -> Result<ExecImage, SpawnError> {
        let program = cstring(req.program.as_os_str().as_bytes(), "the program path")?;
        let argv: Vec<CString> = req
            .argv
            .iter()
            .map(|a| cstring(a.as_bytes(), "an argument"))
            .collect::<Result<_, _>>()?;
        let mut envs: Vec<Vec<u8>> = Vec::with_capacity(req.env.len() + req.pid_vars.len());
        for (k, v) in &req.env {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            envs.push(cstring(&kv, "an environment variable")?.into_bytes_with_nul());
        }
        // The digits are written by the child, which alone knows its pid; the buffer is
        // padded so a shorter pid simply ends the string early with a NUL.
        let mut pid_var_at: Vec<(usize, usize)> = Vec::new();
        for name in &req.pid_vars {
            let mut buf = format!("{name}=").into_bytes();
            let prefix = buf.len();
            buf.extend(std::iter::repeat_n(b'0', PID_DIGITS));
            pid_var_at.push((envs.len(), prefix));
            envs.push(cstring(&buf, name)?.into_bytes_with_nul());
        }
        let cwd = cstring(req.cwd.as_os_str().as_bytes(), "the working directory")?;
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        // Vec::as_mut_ptr: every pointer below is derived from the same mutable
        // provenance, so writing through a pid slot does not invalidate the env pointers.
        let mut env_ptrs: Vec<*const libc::c_char> = envs
            .iter_mut()
            .map(|e| e.as_mut_ptr() as *const libc::c_char)
            .collect();
        env_ptrs.push(std::ptr::null());
        let pid_slots: Vec<*mut u8> = pid_var_at
            .iter()
            // SAFETY: `prefix + PID_DIGITS` bytes plus the NUL are inside `envs[i]`
            // (built just above), so the offset stays within the allocation.
            .map(|(i, prefix)| unsafe { envs[*i].as_mut_ptr().add(*prefix) })
            .collect();
        Ok(ExecImage {
            program,
            cwd,
            _argv: argv,
            _envs: envs,
            argv_ptrs,
            env_ptrs,
            pid_slots,
        })
    }
}

/// The fds the child gets, duplicated above their targets (0, 1, 2, then 3...) so that
/// the child's dup2 calls can never overwrite a source that is still needed.
struct Parked {
    /// Runner's copies, closed once the child has forked.
    _owned: Vec<OwnedFd>,
    stdin: Option<RawFd>,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    extra: Vec<RawFd>,
}

impl Parked {
    fn new(req: &SpawnRequest<'_>) -> Result<Parked, SpawnError> {
        let null_fd: Option<OwnedFd> = match req.stdin {
            Stdin::Null => Some(open_dev_null()?),
            Stdin::Inherit => None,
        };
        let floor = 3 + req.extra_fds.len() as RawFd;
        let mut owned: Vec<OwnedFd> = Vec::with_capacity(req.extra_fds.len() + 3);
        let mut park = |fd: RawFd| -> Result<RawFd, SpawnError> {
            // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads `fd` (an fd the caller keeps open
            // for the call, or an invalid number the kernel refuses with EBADF).
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
            owned.push(unsafe { OwnedFd::from_raw_fd(new) });
            Ok(new)
        };
        let stdin = null_fd
            .as_ref()
            .map(|fd| park(fd.as_raw_fd()))
            .transpose()?;
        let stdout = req.stdout.map(&mut park).transpose()?;
        let stderr = req.stderr.map(&mut park).transpose()?;
        let extra = req
            .extra_fds
            .iter()
            .map(|fd| park(*fd))
            .collect::<Result<_, _>>()?;
        Ok(Parked {
            _owned: owned,
            stdin,
            stdout,
            stderr,
            extra,
        })
    }
}

/// Forks; the child runs [`child`] and never returns here.
fn fork_exec(plan: ChildPlan<'_>) -> Result<i32, SpawnError> {
    // SAFETY: runner is single-threaded, so the child's copy of the address space has no
    // lock held by another thread; the child only makes async-signal-safe calls on
    // memory prepared before this point (ChildPlan), then execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SpawnError {
            message: format!("fork failed: {}", std::io::Error::last_os_error()),
            code: 126,
            transient: true,
        });
    }
    if pid == 0 {
        // SAFETY: as above; every pointer in `plan` points into memory that the fork
        // copied and nothing frees before execve or _exit.
        unsafe { child(plan) }
    }
    Ok(pid)
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
///
/// # Safety
/// Call only in the child of a fork of a single-threaded process, with every pointer in
/// `plan` valid (NUL-terminated strings, NULL-terminated arrays, PID_DIGITS-byte slots).
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
///
/// # Safety
/// `dst` must be valid for writes of PID_DIGITS bytes.
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
        // SAFETY: F_GETFD/F_SETFD only change the flags of an fd number of our own; one
        // that was /proc's listing fd itself (closed since) fails with EBADF, harmlessly.
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
        // SAFETY: `buf` is PID_DIGITS bytes long.
        unsafe { write_pid_digits(buf.as_mut_ptr(), 4_194_303) };
        assert_eq!(&buf[..8], b"4194303\0");
        let mut buf = [b'x'; PID_DIGITS];
        // SAFETY: `buf` is PID_DIGITS bytes long.
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
