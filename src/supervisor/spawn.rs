//! fork + exec of one instance, with the child set up the way SPEC section 4 asks:
//! its own process group, an empty signal mask, default dispositions, exactly the file
//! descriptors meant for it, and `LISTEN_PID` equal to its own pid.
//!
//! `std::process::Command` is not used: it inherits runner's signal mask (Rust ≥ 1.66)
//! and cannot write the child's own pid into its environment. Everything the child needs
//! is prepared before the fork; between fork and exec the child only makes
//! async-signal-safe system calls on that memory.
//!
//! The child is started with `clone(CLONE_VM | CLONE_VFORK | CLONE_FILES)` on a stack of
//! its own rather than `fork`. Why: fork copies runner's page tables and its whole fd
//! table (two pipes per instance: 10,000 fds at 5,000 instances), and exec then closes
//! every close-on-exec copy one by one — at 5,000 instances that was most of the cost of
//! a spawn, so starting N instances grew with N². Sharing memory and fds costs nothing to
//! set up; the child's first act is `close_range(K, ~0, CLOSE_RANGE_UNSHARE)`, which gives
//! it a table of only fds 0..K, and the fds meant for it are parked in low numbers held in
//! reserve for that ([`Reserve`]), so K stays small however many fds runner holds. Runner
//! is suspended until the child has exec'd (or failed), so nothing it reads changes
//! under it; the child writes only its own pid digits into buffers runner frees after.

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
    pub argv: &'a [OsString],
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
    RESERVE.with(|cell| {
        let mut reserve = cell.borrow_mut();
        if reserve.is_none() {
            *reserve = Reserve::new();
        }
        start_with(req, reserve.as_mut())
    })
}

/// Holds the reserve's low fd numbers now, before runner opens the pipes and sockets of
/// its apps (which would take them): call once at start-up. Spawning works without it.
pub fn reserve_fds() {
    RESERVE.with(|cell| {
        let mut reserve = cell.borrow_mut();
        if reserve.is_none() {
            *reserve = Reserve::new();
        }
    });
}

fn start_with(
    req: SpawnRequest<'_>,
    mut reserve: Option<&mut Reserve>,
) -> Result<Started, SpawnError> {
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
    let (err_read, err_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SpawnError {
            message: format!("cannot create a pipe: {e}"),
            code: 126,
            transient: true,
        })?;
    let mut parked = Parked::new(&req, err_write, reserve.as_deref_mut())?;
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
        err_fd: parked.err_fd,
        keep_below: parked.keep_below(),
        to_default: to_default(),
    };
    let pid = match reserve.as_deref_mut() {
        Some(Reserve {
            stack: stack @ Some(_),
            ..
        }) => match stack.as_mut().map(|s| clone_exec(&plan, s)) {
            Some(Ok(pid)) => Ok(pid),
            // A sandbox that refuses this clone (a seccomp filter, an emulator) refuses
            // it every time: fork from now on.
            Some(Err(e)) if clone_unsupported(&e) => {
                log::warn!("clone(CLONE_VM|CLONE_VFORK) refused ({e}); spawning with fork");
                *stack = None;
                fork_exec(&plan)
            }
            Some(Err(e)) => Err(fork_failed(&e)),
            None => fork_exec(&plan),
        },
        _ => fork_exec(&plan),
    };
    // The child has its own copies now (or never will); runner's must not pile up.
    parked.release(reserve);
    let pid = pid?;
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
/// the child's dup2 calls can never overwrite a source that is still needed: into the
/// reserve's low numbers where they fit, else into the lowest free numbers.
struct Parked {
    /// Runner's copies outside the reserve, closed once the child has started.
    owned: Vec<OwnedFd>,
    /// Reserve slots lent to this spawn, given back once the child has started.
    lent: Vec<RawFd>,
    stdin: Option<RawFd>,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    extra: Vec<RawFd>,
    err_fd: RawFd,
}

impl Parked {
    fn new(
        req: &SpawnRequest<'_>,
        err_write: OwnedFd,
        mut reserve: Option<&mut Reserve>,
    ) -> Result<Parked, SpawnError> {
        let mut parked = Parked {
            owned: Vec::with_capacity(req.extra_fds.len() + 4),
            lent: Vec::new(),
            stdin: None,
            stdout: None,
            stderr: None,
            extra: Vec::with_capacity(req.extra_fds.len()),
            err_fd: -1,
        };
        let floor = 3 + req.extra_fds.len() as RawFd;
        // A copy of /dev/null per spawn only when there is no reserve to lend its own.
        let own_null = match (&req.stdin, reserve.as_deref()) {
            (Stdin::Null, None) => Some(open_dev_null()?),
            _ => None,
        };
        let null_fd = match req.stdin {
            Stdin::Null => own_null
                .as_ref()
                .map(AsRawFd::as_raw_fd)
                .or_else(|| reserve.as_deref().map(|r| r.null.as_raw_fd())),
            Stdin::Inherit => None,
        };
        // On an error the slots lent so far go back through `release`.
        let result = (|| {
            let mut park = |fd: RawFd| parked.park(fd, floor, reserve.as_deref_mut());
            let stdin = null_fd.map(&mut park).transpose()?;
            let stdout = req.stdout.map(&mut park).transpose()?;
            let stderr = req.stderr.map(&mut park).transpose()?;
            let extra = req
                .extra_fds
                .iter()
                .map(|fd| park(*fd))
                .collect::<Result<Vec<_>, _>>()?;
            let err_fd = park(err_write.as_raw_fd())?;
            Ok((stdin, stdout, stderr, extra, err_fd))
        })();
        match result {
            Ok((stdin, stdout, stderr, extra, err_fd)) => {
                parked.stdin = stdin;
                parked.stdout = stdout;
                parked.stderr = stderr;
                parked.extra = extra;
                parked.err_fd = err_fd;
                Ok(parked)
            }
            Err(e) => {
                parked.release(reserve);
                Err(e)
            }
        }
    }

    /// A close-on-exec copy of `fd` at `floor` or above, in a reserve slot if one is free.
    fn park(
        &mut self,
        fd: RawFd,
        floor: RawFd,
        reserve: Option<&mut Reserve>,
    ) -> Result<RawFd, SpawnError> {
        if let Some(slot) = reserve.and_then(|r| r.lend(fd, floor)) {
            self.lent.push(slot);
            return Ok(slot);
        }
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
        self.owned.push(unsafe { OwnedFd::from_raw_fd(new) });
        Ok(new)
    }

    /// The child keeps fds below this (runner's 0, 1, 2 and everything parked) when it
    /// unshares the fd table; the rest are runner's own.
    fn keep_below(&self) -> RawFd {
        let parked = [self.stdin, self.stdout, self.stderr, Some(self.err_fd)];
        parked
            .into_iter()
            .flatten()
            .chain(self.extra.iter().copied())
            .max()
            .unwrap_or(0)
            .max(2)
            + 1
    }

    /// Closes runner's copies and gives the lent slots back to the reserve.
    fn release(&mut self, reserve: Option<&mut Reserve>) {
        self.owned.clear();
        let lent = std::mem::take(&mut self.lent);
        match reserve {
            Some(r) => {
                for slot in lent {
                    r.give_back(slot);
                }
            }
            // Lent slots imply a reserve; without one, close them rather than leak.
            None => {
                for slot in lent {
                    // SAFETY: the slot is ours and nothing else refers to it.
                    unsafe { libc::close(slot) };
                }
            }
        }
    }
}

/// How many low fd numbers are held for parking: stdin, stdout, stderr, the exec error
/// pipe, and room for a few listening sockets and the Node IPC channel. A spawn that
/// needs more parks the rest in the lowest free numbers (correct, only slower).
const RESERVE_SLOTS: usize = 16;
/// The child's stack: it runs only [`child`] (small frames, no allocation) before exec.
const CHILD_STACK: usize = 64 * 1024;

thread_local! {
    static RESERVE: std::cell::RefCell<Option<Reserve>> = const { std::cell::RefCell::new(None) };
}

/// Low fd numbers kept open on /dev/null, each replaced by an fd meant for a child while
/// it is started and put back after, and the stack the child runs on.
struct Reserve {
    null: OwnedFd,
    /// Slots holding /dev/null now, free to lend, in increasing order.
    free: Vec<RawFd>,
    stack: Option<ChildStack>,
}

impl Reserve {
    fn new() -> Option<Reserve> {
        let null = open_dev_null().ok()?;
        let mut free = Vec::with_capacity(RESERVE_SLOTS);
        for _ in 0..RESERVE_SLOTS {
            // SAFETY: F_DUPFD_CLOEXEC only reads our own fd; the result is ours.
            let fd = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
            if fd < 0 {
                break;
            }
            free.push(fd);
        }
        free.sort_unstable();
        Some(Reserve {
            null,
            free,
            // valgrind (scripts/order-single.sh) cannot follow clone(CLONE_VM) and ends
            // the whole process on it; RUNNER_SPAWN=fork spawns as before.
            stack: if std::env::var_os("RUNNER_SPAWN").is_some_and(|v| v == "fork") {
                None
            } else {
                ChildStack::new()
            },
        })
    }

    /// Puts a close-on-exec copy of `fd` in a free slot at `floor` or above.
    fn lend(&mut self, fd: RawFd, floor: RawFd) -> Option<RawFd> {
        let at = self.free.iter().position(|&s| s >= floor)?;
        let slot = self.free[at];
        // dup3 replaces the slot's /dev/null at once: the number is never free for a
        // moment, so nothing else can take it.
        // SAFETY: dup3 only reads `fd` and replaces our own slot.
        if unsafe { libc::dup3(fd, slot, libc::O_CLOEXEC) } < 0 {
            return None;
        }
        self.free.remove(at);
        Some(slot)
    }

    /// Puts /dev/null back in a lent slot (closing the copy it held).
    fn give_back(&mut self, slot: RawFd) {
        // SAFETY: as in `lend`.
        if unsafe { libc::dup3(self.null.as_raw_fd(), slot, libc::O_CLOEXEC) } < 0 {
            // The copy must not stay open (a pipe's write end would never see EOF): the
            // slot is lost to the reserve instead.
            // SAFETY: the slot is ours.
            unsafe { libc::close(slot) };
            return;
        }
        let at = self.free.partition_point(|&s| s < slot);
        self.free.insert(at, slot);
    }
}

/// An mmap'd stack for the child, with a guard page below it, reused by every spawn:
/// runner is suspended until the child has exec'd or exited, so one is never shared.
struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    fn new() -> Option<ChildStack> {
        let page = crate::procfs::page_size() as usize;
        let len = CHILD_STACK + page;
        // SAFETY: an anonymous private mapping of our own; checked for MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        // The lowest page faults instead of letting an overflow write runner's memory.
        // SAFETY: the first page of the mapping made just above.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            // SAFETY: unmapping what we mapped.
            unsafe { libc::munmap(base, len) };
            return None;
        }
        Some(ChildStack { base, len })
    }

    /// The stack's top (it grows down), 16-byte aligned as the ABI wants.
    fn top(&mut self) -> *mut libc::c_void {
        // SAFETY: one past the end of our mapping, never dereferenced as such.
        let end = unsafe { (self.base as *mut u8).add(self.len) };
        (end as usize & !15) as *mut libc::c_void
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no child runs on it (spawns are synchronous).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Starts the child with shared memory and fds (see the module comment); it runs
/// [`child`], and runner resumes once it has exec'd or exited.
fn clone_exec(plan: &ChildPlan<'_>, stack: &mut ChildStack) -> std::io::Result<i32> {
    extern "C" fn entry(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the `&ChildPlan` given to clone below, alive while runner is
        // suspended (CLONE_VFORK) in the call that holds it.
        unsafe { child(&*(arg as *const ChildPlan<'_>), true) }
    }
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES | libc::SIGCHLD;
    // SAFETY: the child runs on its own stack and, sharing runner's memory, only makes
    // async-signal-safe system calls on memory prepared before this point (ChildPlan);
    // it never returns from `entry`. Runner is single-threaded and blocks every signal it
    // handles (no handler can run in the child), and CLONE_VFORK keeps it suspended until
    // the child has exec'd or exited, so the plan, the stack and the fd table stay as
    // they are meanwhile.
    let pid = unsafe {
        libc::clone(
            entry,
            stack.top(),
            flags,
            plan as *const ChildPlan<'_> as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(pid)
}

/// Errors that say this kind of clone is not allowed here at all, rather than that the
/// system is short of something.
fn clone_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EPERM)
    )
}

fn fork_failed(e: &std::io::Error) -> SpawnError {
    SpawnError {
        // "fork" as users know it (and as `ulimit -u` errors are searched for).
        message: format!("fork failed: {e}"),
        code: 126,
        transient: true,
    }
}

/// Forks; the child runs [`child`] and never returns here. Used when there is no reserve
/// (no /dev/null, no memory for a stack).
fn fork_exec(plan: &ChildPlan<'_>) -> Result<i32, SpawnError> {
    // SAFETY: runner is single-threaded, so the child's copy of the address space has no
    // lock held by another thread; the child only makes async-signal-safe calls on
    // memory prepared before this point (ChildPlan), then execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(fork_failed(&std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: as above; every pointer in `plan` points into memory that the fork
        // copied and nothing frees before execve or _exit.
        unsafe { child(plan, false) }
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
    /// Every fd the child keeps is below this: see [`Parked::keep_below`].
    keep_below: RawFd,
    /// The signals whose disposition the child must set back to the default: see
    /// [`to_default`].
    to_default: u64,
}

/// Runs in the new child. Async-signal-safe calls only; never returns. `shared_fds`: the
/// child still shares runner's fd table (clone), and must leave it before touching it.
///
/// # Safety
/// Call only in the child of a fork or clone of a single-threaded process, with every
/// pointer in `plan` valid (NUL-terminated strings, NULL-terminated arrays,
/// PID_DIGITS-byte slots).
unsafe fn child(plan: &ChildPlan<'_>, shared_fds: bool) -> ! {
    let fail = |stage: Stage| -> ! {
        let errno = *libc::__errno_location();
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
        buf[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(plan.err_fd, buf.as_ptr() as *const libc::c_void, buf.len());
        libc::_exit(127);
    };

    if shared_fds {
        // A table of its own with only fds 0..keep_below copied (Linux 5.9); before that,
        // a copy of the whole table. Until this succeeds every dup2 or close would act on
        // runner's fds.
        let first = plan.keep_below as libc::c_uint;
        let own = libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        ) == 0
            || libc::unshare(libc::CLONE_FILES) == 0;
        if !own {
            fail(Stage::Fds);
        }
    }
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
    for sig in 1..=64 {
        if plan.to_default & (1u64 << (sig - 1)) != 0 {
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
        // The raw system calls: glibc's wrappers apply the change to every thread of the
        // process it believes it is in, and a clone child shares runner's memory, so it
        // would believe it is runner. The child is one thread; the kernel's call is exact.
        if libc::syscall(libc::SYS_setgroups, plan.groups.len(), plan.groups.as_ptr()) < 0 {
            fail(Stage::Groups);
        }
        if libc::syscall(libc::SYS_setgid, gid) < 0 {
            fail(Stage::Gid);
        }
        if libc::syscall(libc::SYS_setuid, uid) < 0 {
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

/// The signals a child must set back to SIG_DFL, as a mask (bit N-1 for signal N): those
/// runner ignores (exec would keep them ignored) or has a handler for (which must not run
/// in a child sharing runner's memory once it unblocks signals). Asked of the kernel once,
/// one `rt_sigaction` query per signal: runner's dispositions do not change after start-up
/// (`signals::install`), and setting those few rather than all 64 saves a system call per
/// signal on every spawn. The raw system call, as in the child: glibc's wrapper refuses
/// 32 and 33, which a `posix_spawn` caller may hand down ignored.
///
/// Why not `/proc/self/status` (`SigIgn`, `SigCgt`), as before: the kernel formats the
/// whole status text for it, which measured ~1.3% of every `runner -- PROGRAM` start
/// (`perf record`, 300 starts), more than these 62 queries; and a bare PID 1 without
/// /proc had to reset all 64.
fn to_default() -> u64 {
    static MASK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MASK.get_or_init(|| {
        let mut mask = 0u64;
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            // The kernel's sigaction: the handler first (SIG_DFL is 0), then flags,
            // restorer and mask in whatever layout; 32 bytes hold every layout's.
            let mut old = [0u64; 4];
            // SAFETY: a query (no new action) into a buffer large enough for the
            // kernel's struct sigaction, with the kernel's sigset size.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    std::ptr::null::<u64>(),
                    old.as_mut_ptr(),
                    8usize,
                )
            };
            // A signal that cannot be asked about is reset anyway: that costs one call.
            if r != 0 || old[0] != 0 {
                mask |= 1u64 << (sig - 1);
            }
        }
        mask
    })
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
    // One system call (Linux 5.11) instead of listing /proc/self/fd and two fcntl calls
    // per fd: this runs on every start, where runner is compared with tini. Runner's own
    // fds at this point are close-on-exec already.
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on fds of our own.
    let all = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if all == 0 {
        return;
    }
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
    fn the_signals_to_reset_are_those_not_at_their_default() {
        let mask = to_default();
        // This process ignores SIGPIPE (Rust's test harness does), so it is to be reset.
        assert_ne!(mask & (1 << (libc::SIGPIPE - 1)), 0);
        assert_eq!(mask & (1 << (libc::SIGKILL - 1)), 0);
        assert_eq!(mask & (1 << (libc::SIGSTOP - 1)), 0);
        // It agrees with what the kernel shows in /proc: ignored or caught, nothing else.
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            crate::procfs::status_field(&status, name).and_then(|v| u64::from_str_radix(v, 16).ok())
        };
        if let (Some(ign), Some(cgt)) = (field("SigIgn"), field("SigCgt")) {
            let unchangeable = (1u64 << (libc::SIGKILL - 1)) | (1u64 << (libc::SIGSTOP - 1));
            assert_eq!(mask, (ign | cgt) & !unchangeable);
        }
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
