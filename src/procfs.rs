//! Processes, process trees, memory and CPU as seen in `/proc`.
//!
//! Everything here tolerates processes vanishing mid-read: a process that is gone
//! or unreadable is simply absent, and nothing panics on what `/proc` returns.
//! Only `/proc/PID/stat` is read (one small file per process), so one pass over
//! `/proc` for all instances stays cheap enough to run every second.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::{sysconf, Pid, SysconfVar};

/// One process as seen in /proc/PID/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// Process state letter: b'R', b'S', b'D', b'Z', b'T'...
    pub state: u8,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// starttime in clock ticks after boot; tells a reused pid apart.
    pub start_ticks: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

impl ProcInfo {
    /// Whether the process has exited and only awaits reaping (or is being torn down).
    pub fn is_zombie(&self) -> bool {
        // 'X' (dead) and 'x' are transient states after 'Z'; they hold no more
        // resources than a zombie does.
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Parse the contents of /proc/PID/stat (comm may contain spaces and parentheses: split at the LAST ')').
pub fn parse_stat(text: &str) -> Option<ProcInfo> {
    parse_stat_bytes(text.as_bytes())
}

/// Same as [`parse_stat`] on raw bytes: comm is arbitrary bytes (prctl PR_SET_NAME), not UTF-8.
pub fn parse_stat_bytes(text: &[u8]) -> Option<ProcInfo> {
    let lparen = text.iter().position(|&b| b == b'(')?;
    let rparen = text.iter().rposition(|&b| b == b')')?;
    if rparen < lparen {
        return None;
    }
    let pid = parse_i64(trim(&text[..lparen]))?;
    let pid = i32::try_from(pid).ok().filter(|&p| p > 0)?;

    // Index i in `rest` is proc(5) field number i + 3 (field 3 is the state).
    let mut fields = text[rparen + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let state_field = fields.next()?;
    if state_field.len() != 1 {
        return None;
    }
    let state = state_field[0];
    let ppid = parse_i32(fields.next()?)?; // 4
    let pgid = parse_i32(fields.next()?)?; // 5
    let sid = parse_i32(fields.next()?)?; // 6
    let mut fields = fields.skip(7); // 7..=13
    let utime = parse_u64(fields.next()?)?; // 14
    let stime = parse_u64(fields.next()?)?; // 15
    let mut fields = fields.skip(6); // 16..=21
    let start_ticks = parse_u64(fields.next()?)?; // 22
    let _vsize = fields.next()?; // 23
                                 // Older kernels printed rss as a signed long; a negative value means nothing useful.
    let rss_pages = parse_i64(fields.next()?)?.max(0) as u64; // 24

    Some(ProcInfo {
        pid,
        ppid,
        pgid,
        sid,
        state,
        cpu_ticks: utime.saturating_add(stime),
        start_ticks,
        rss_bytes: rss_pages.saturating_mul(page_size()),
    })
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

fn parse_i64(b: &[u8]) -> Option<i64> {
    match b.split_first() {
        Some((b'-', digits)) => {
            let n = parse_u64(digits)?;
            // i64::MIN's magnitude doesn't fit in i64; no stat field goes there anyway.
            i64::try_from(n).ok().map(|n| -n)
        }
        _ => i64::try_from(parse_u64(b)?).ok(),
    }
}

fn parse_i32(b: &[u8]) -> Option<i32> {
    i32::try_from(parse_i64(b)?).ok()
}

/// Reads /proc/PID/stat into `buf` (cleared first), reusing `path` and `buf` across calls
/// so that a full scan allocates next to nothing.
fn read_stat_into(pid: i32, path: &mut String, buf: &mut Vec<u8>) -> Option<ProcInfo> {
    path.clear();
    buf.clear();
    let mut file = match proc_dir() {
        Some(dir) => {
            // Relative to an open /proc: one path component less to look up per process.
            let _ = write!(path, "{pid}/stat\0");
            // SAFETY: `path` is NUL-terminated just above and `dir` is our open directory.
            let fd = unsafe {
                libc::openat(
                    dir,
                    path.as_ptr() as *const libc::c_char,
                    libc::O_RDONLY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return None;
            }
            // SAFETY: `fd` was just opened and is owned by nobody else.
            unsafe { std::fs::File::from_raw_fd(fd) }
        }
        None => {
            let _ = write!(path, "/proc/{pid}/stat");
            std::fs::File::open(path.as_str()).ok()?
        }
    };
    // One read of a stack buffer: the line is ~300 bytes and procfs hands it out whole.
    // `read_to_end` added a statx, an lseek and a second read per process, which was most
    // of `list` at 5,000 instances (3 syscalls instead of 6).
    let mut chunk = [0u8; 1024];
    loop {
        // A process can exit between open and read (ESRCH); that's just "gone".
        let n = file.read(&mut chunk).ok()?;
        buf.extend_from_slice(&chunk[..n]);
        if n == 0 || (n < chunk.len() && buf.ends_with(b"\n")) {
            break;
        }
    }
    let info = parse_stat_bytes(buf)?;
    // The file names the process; if it disagrees, something odd is mounted on /proc.
    (info.pid == pid).then_some(info)
}

/// Read one process; None if it's gone or unreadable.
pub fn read(pid: i32) -> Option<ProcInfo> {
    if pid <= 0 {
        return None;
    }
    let mut path = String::with_capacity(24);
    let mut buf = Vec::with_capacity(512);
    read_stat_into(pid, &mut path, &mut buf)
}

/// Calls `f` for every readable process in /proc until it returns false.
/// Returns false when /proc itself can't be listed (not mounted, no permission).
fn scan(mut f: impl FnMut(ProcInfo) -> bool) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    let mut path = String::with_capacity(24);
    let mut buf = Vec::with_capacity(512);
    for entry in dir {
        // An entry erroring mid-listing is a process that vanished; keep going.
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid <= 0 {
            continue;
        }
        if let Some(info) = read_stat_into(pid, &mut path, &mut buf) {
            if !f(info) {
                break;
            }
        }
    }
    true
}

/// Every process visible in /proc at one moment (approximately: the scan isn't atomic).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    procs: HashMap<i32, ProcInfo>,
    children: HashMap<i32, Vec<i32>>,
    groups: HashMap<i32, Vec<i32>>,
    complete: bool,
}

impl Snapshot {
    /// Scans /proc once; never fails (an unreadable /proc gives an empty, incomplete snapshot).
    pub fn take() -> Snapshot {
        let mut procs = Vec::with_capacity(256);
        let complete = scan(|p| {
            procs.push(p);
            true
        });
        let mut snap = Snapshot::from_procs(procs);
        snap.complete = complete;
        snap
    }

    /// Builds a snapshot from given processes (for tests and callers that filter).
    pub fn from_procs(procs: Vec<ProcInfo>) -> Snapshot {
        let mut map = HashMap::with_capacity(procs.len());
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        let mut groups: HashMap<i32, Vec<i32>> = HashMap::new();
        for p in procs {
            // A duplicate pid can only come from a caller; the last one wins, and the
            // indexes must not list it twice.
            if map.insert(p.pid, p).is_none() {
                children.entry(p.ppid).or_default().push(p.pid);
                groups.entry(p.pgid).or_default().push(p.pid);
            }
        }
        Snapshot {
            procs: map,
            children,
            groups,
            complete: true,
        }
    }

    /// False when /proc couldn't be listed, so an empty result means "unknown", not "gone".
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The process `pid`, if it was seen.
    pub fn get(&self, pid: i32) -> Option<&ProcInfo> {
        self.procs.get(&pid)
    }

    /// Number of processes seen.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether no process was seen.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// All processes seen, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &ProcInfo> {
        self.procs.values()
    }

    /// `root`, its descendants, and every member of group `pgid` with theirs; no zombies, sorted.
    pub fn tree(&self, root: i32, pgid: i32) -> Vec<i32> {
        self.tree_including(root, pgid, &[])
    }

    /// Like [`tree`](Self::tree), plus remembered `(pid, start_ticks)` members still alive and theirs.
    ///
    /// Why: once the main process and a middle parent have died, a setsid'd grandchild is
    /// re-parented to runner and belongs neither to the group nor to the ppid chain; only
    /// remembering it from an earlier snapshot (e.g. when the stop signal was sent) keeps
    /// it in the tree until it is really gone.
    pub fn tree_including(&self, root: i32, pgid: i32, remembered: &[(i32, u64)]) -> Vec<i32> {
        // The common case, one process alone in its group with no children (`list` asks
        // for every instance): no walk, no allocation beyond the answer.
        if remembered.is_empty() && root > 0 && root == pgid && root != own_pid() {
            let lone = !self.children.contains_key(&root)
                && self
                    .groups
                    .get(&pgid)
                    .is_none_or(|m| m.iter().all(|&p| p == root));
            if lone {
                return match self.procs.get(&root) {
                    Some(info) if !info.is_zombie() => vec![root],
                    _ => Vec::new(),
                };
            }
        }
        let mut seeds: Vec<i32> = Vec::new();
        // pid 0 is the kernel's "parent" of init and kthreadd: as a root it would pull in
        // every process on the system.
        if root > 0 && self.procs.contains_key(&root) {
            seeds.push(root);
        }
        // pgid 0 is what kernel threads report; it's never an instance's group.
        if pgid > 0 {
            if let Some(members) = self.groups.get(&pgid) {
                seeds.extend_from_slice(members);
            }
        }
        for &(pid, start) in remembered {
            if self.get(pid).is_some_and(|p| p.start_ticks == start) {
                seeds.push(pid);
            }
        }

        // The tree is used to send signals: never let it contain runner itself (e.g. a
        // wrong pgid), or a treekill would kill the supervisor and, through its
        // children, every other app.
        let me = own_pid();
        let mut seen: HashSet<i32> = HashSet::new();
        let mut stack = seeds;
        let mut out = Vec::new();
        while let Some(pid) = stack.pop() {
            // The visited set also guards against ppid cycles, which a non-atomic scan
            // with pid reuse could in theory produce.
            if pid == me || !seen.insert(pid) {
                continue;
            }
            let Some(info) = self.procs.get(&pid) else {
                continue;
            };
            if !info.is_zombie() {
                out.push(pid);
            }
            if let Some(kids) = self.children.get(&pid) {
                stack.extend_from_slice(kids);
            }
        }
        out.sort_unstable();
        out
    }

    /// Non-zombie members of process group `pgid`, sorted (an instance's leftovers after its main process died).
    pub fn group(&self, pgid: i32) -> Vec<i32> {
        if pgid <= 0 {
            return Vec::new();
        }
        let mut out: Vec<i32> = self
            .groups
            .get(&pgid)
            .map(|m| {
                m.iter()
                    .copied()
                    .filter(|pid| self.procs.get(pid).is_some_and(|p| !p.is_zombie()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    /// Sum of rss_bytes and cpu_ticks over `pids` (missing pids count 0).
    ///
    /// RSS counts pages shared between processes (fork's copy-on-write, shared
    /// libraries) once per process, so the sum over-estimates the tree's real
    /// footprint — the same measure PM2 and `ps` users expect.
    pub fn usage(&self, pids: &[i32]) -> (u64, u64) {
        pids.iter()
            .filter_map(|pid| self.procs.get(pid))
            .fold((0u64, 0u64), |(rss, cpu), p| {
                (
                    rss.saturating_add(p.rss_bytes),
                    cpu.saturating_add(p.cpu_ticks),
                )
            })
    }
}

impl Snapshot {
    /// Records `info` as the current state of its process, keeping the indexes right.
    fn upsert(&mut self, info: ProcInfo) {
        if let Some(old) = self.procs.insert(info.pid, info) {
            if old.ppid == info.ppid && old.pgid == info.pgid {
                return;
            }
            unlink(&mut self.children, old.ppid, old.pid);
            unlink(&mut self.groups, old.pgid, old.pid);
        }
        self.children.entry(info.ppid).or_default().push(info.pid);
        self.groups.entry(info.pgid).or_default().push(info.pid);
    }

    /// Forgets a process that is gone.
    fn remove(&mut self, pid: i32) {
        if let Some(old) = self.procs.remove(&pid) {
            unlink(&mut self.children, old.ppid, pid);
            unlink(&mut self.groups, old.pgid, pid);
        }
    }
}

fn unlink(index: &mut HashMap<i32, Vec<i32>>, key: i32, pid: i32) {
    if let Some(v) = index.get_mut(&key) {
        if let Some(pos) = v.iter().position(|p| *p == pid) {
            v.swap_remove(pos);
        }
        if v.is_empty() {
            index.remove(&key);
        }
    }
}

/// The most recently created pid, from /proc/loadavg (in the reader's pid namespace).
fn last_pid() -> Option<i32> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().nth(4)?.parse().ok()
}

/// Whether `pid` is a thread-group leader: a thread's id also opens /proc/TID, but a
/// thread is not a process to signal or count.
fn is_process(pid: i32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status_field(&text, "Tgid").and_then(|v| v.parse::<i32>().ok()) == Some(pid)
}

/// The value of field `name` (`Tgid`, `SigIgn`, ...) in a `/proc/PID/status` text, trimmed.
pub fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// A view of /proc kept up to date at a cost that follows the trees asked about, not the
/// host: one full scan at first, then only the pids created since the last look (pids are
/// handed out in increasing order; /proc/loadavg names the last one), and fresh reads of
/// the members of each tree asked for. A process that exits stays in the view until a
/// tree read finds it gone or the next full scan; processes cannot join a tree except by
/// being created in it, so the view never misses a member.
///
/// Why: reading every /proc/PID/stat for each stop made stopping N instances cost
/// N x (host processes) — 14.6 s for 1,000 instances.
#[derive(Debug, Default)]
pub struct Tracker {
    view: Snapshot,
    last_pid: Option<i32>,
    /// Size of the view after the last full scan: a view that grew far beyond it holds
    /// mostly dead entries, and a full scan is cheaper than keeping them.
    scanned: usize,
    path: String,
    buf: Vec<u8>,
}

impl Tracker {
    /// Brings the view up to date with the processes created since the last call.
    pub fn refresh(&mut self) {
        let now = last_pid();
        let incremental = match (self.last_pid, now) {
            (Some(before), Some(now)) if self.view.complete => {
                let new = i64::from(now) - i64::from(before);
                // A wrap (pids reused), or so many new pids that a scan costs less.
                (0..=(4 * self.scanned as i64 + 1024)).contains(&new)
                    && self.view.len() <= 2 * self.scanned + 1024
            }
            _ => false,
        };
        if incremental {
            let (Some(before), Some(now)) = (self.last_pid, now) else {
                return;
            };
            for pid in before.saturating_add(1)..=now {
                if let Some(info) = read_stat_into(pid, &mut self.path, &mut self.buf) {
                    if is_process(pid) {
                        self.view.upsert(info);
                    }
                }
            }
        } else {
            self.view = Snapshot::take();
            self.scanned = self.view.len();
        }
        self.last_pid = now;
    }

    /// `root`'s tree (as [`Snapshot::tree_including`]) with every member read afresh:
    /// those gone are dropped, a reused pid is not a member.
    pub fn tree(&mut self, root: i32, pgid: i32, remembered: &[(i32, u64)]) -> Vec<ProcInfo> {
        self.refresh();
        self.tree_now(root, pgid, remembered)
    }

    /// [`tree`](Self::tree) without looking for new processes first: for many trees
    /// read one after the other, after one [`refresh`](Self::refresh).
    pub fn tree_now(&mut self, root: i32, pgid: i32, remembered: &[(i32, u64)]) -> Vec<ProcInfo> {
        if !self.view.complete {
            // No /proc listing: a full scan each time is all there is (and it is empty).
            return Vec::new();
        }
        let mut out = Vec::new();
        for pid in self.view.tree_including(root, pgid, remembered) {
            let known = self.view.get(pid).map(|p| p.start_ticks);
            match read_stat_into(pid, &mut self.path, &mut self.buf) {
                Some(info) if Some(info.start_ticks) == known => {
                    self.view.upsert(info);
                    if !info.is_zombie() {
                        out.push(info);
                    }
                }
                Some(info) => self.view.upsert(info),
                None => self.view.remove(pid),
            }
        }
        out
    }
}

/// /proc, opened once (close-on-exec) for the per-process reads; None if it can't be.
fn proc_dir() -> Option<RawFd> {
    static DIR: OnceLock<Option<OwnedFd>> = OnceLock::new();
    DIR.get_or_init(|| {
        // SAFETY: a plain open of a constant NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c"/proc".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        // SAFETY: `fd` was just opened and is owned by nobody else.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    })
    .as_ref()
    .map(AsRawFd::as_raw_fd)
}

fn own_pid() -> i32 {
    // Read once: getpid was a syscall per tree read (5,000 per `list`). runner never
    // forks without exec'ing, so the value cannot go stale in the process that uses it.
    static PID: OnceLock<i32> = OnceLock::new();
    // std::process::id() is a u32 that always fits: pid_max is at most 2^22.
    *PID.get_or_init(|| i32::try_from(std::process::id()).unwrap_or(0))
}

/// Clock ticks per second (sysconf(_SC_CLK_TCK)), fallback 100.
pub fn clock_ticks_per_sec() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 100,
    })
}

/// Memory page size in bytes (sysconf(_SC_PAGESIZE)), fallback 4096.
pub fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 4096,
    })
}

/// CPU use in percent of one CPU, from a tick delta over a wall-clock interval (0 when the interval is empty).
pub fn cpu_percent(delta_ticks: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    delta_ticks as f64 / clock_ticks_per_sec() as f64 / secs * 100.0
}

/// Whether `pid` still is the process that started at `start_ticks` (guards against pid reuse before signalling a remembered pid).
///
/// A zombie still is that process: its pid can't be reused until it's reaped.
pub fn is_same_process(pid: i32, start_ticks: u64) -> bool {
    read(pid).is_some_and(|p| p.start_ticks == start_ticks)
}

/// Whether any process (not a zombie) is left in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    if pgid <= 0 {
        // kill(0, ..) and kill(-1, ..) mean "my group" and "everyone": never a real answer.
        return false;
    }
    if pgid > 1 {
        // Cheap pre-check: ESRCH means not even a zombie is left. EPERM still means
        // someone is there (e.g. a member that changed uid).
        if kill(Pid::from_raw(-pgid), None) == Err(Errno::ESRCH) {
            return false;
        }
    }
    // kill() also succeeds on zombies, which hold nothing and will be reaped; confirm.
    let mut alive = false;
    let listed = scan(|p| {
        if p.pgid == pgid && !p.is_zombie() {
            alive = true;
            return false;
        }
        true
    });
    // Without /proc we can't tell zombies apart; trust kill(), which said "present".
    alive || !listed
}

/// Non-zombie processes whose process group is `pgid`, sorted (one scan of /proc).
pub fn orphans_of_group(pgid: i32) -> Vec<i32> {
    if pgid <= 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    scan(|p| {
        if p.pgid == pgid && !p.is_zombie() {
            out.push(p.pid);
        }
        true
    });
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    const SAMPLE: &str = "4242 ((a) b)) S 1 4242 4242 0 -1 4194560 123 0 0 0 7 3 0 0 20 0 1 0 98765 12345678 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    fn p(pid: i32, ppid: i32, pgid: i32, state: u8) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            pgid,
            sid: pgid,
            state,
            cpu_ticks: pid as u64,
            start_ticks: 1000 + pid as u64,
            rss_bytes: 4096 * pid as u64,
        }
    }

    #[test]
    fn parse_comm_with_spaces_and_parens() {
        let info = parse_stat(SAMPLE).expect("parses");
        assert_eq!(
            info,
            ProcInfo {
                pid: 4242,
                ppid: 1,
                pgid: 4242,
                sid: 4242,
                state: b'S',
                cpu_ticks: 10,
                start_ticks: 98765,
                rss_bytes: 250 * page_size(),
            }
        );
    }

    #[test]
    fn parse_kernel_thread() {
        let line = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 5 0 0 20 0 1 0 2 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0";
        let info = parse_stat(line).expect("parses");
        assert_eq!(info.pid, 2);
        assert_eq!(info.ppid, 0);
        assert_eq!(info.pgid, 0);
        assert_eq!(info.state, b'S');
        assert_eq!(info.cpu_ticks, 5);
        assert_eq!(info.start_ticks, 2);
        assert_eq!(info.rss_bytes, 0);
    }

    #[test]
    fn parse_non_utf8_comm() {
        let mut bytes =
            b"77 (\xff\xfe x) R 1 77 77 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 3 0".to_vec();
        bytes.push(b'\n');
        let info = parse_stat_bytes(&bytes).expect("parses");
        assert_eq!(info.pid, 77);
        assert_eq!(info.state, b'R');
        assert_eq!(info.rss_bytes, 3 * page_size());
    }

    #[test]
    fn parse_garbage() {
        for bad in [
            "",
            "garbage",
            "12 (x)",
            "12 (x) S",
            ") 12 ( S 1 1 1",
            "abc (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 3",
            "12 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0", // truncated before rss
            "12 (x) S one 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 3",
            "12 (x) S 1 1 1 0 -1 0 0 0 0 0 99999999999999999999999 1 0 0 20 0 1 0 5 0 3",
            "0 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 3",
            "-5 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 3",
            "12 (x) SS 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 3",
        ] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    fn synthetic() -> Snapshot {
        Snapshot::from_procs(vec![
            p(1, 0, 1, b'S'),
            // Instance: main 100 in group 100.
            p(100, 1, 100, b'S'),
            p(101, 100, 100, b'S'),
            p(102, 101, 100, b'R'),
            // setsid'd grandchild: own group and session, still a descendant by ppid.
            p(103, 101, 103, b'S'),
            p(104, 103, 103, b'S'),
            // Group member whose parent died: re-parented to 1, found via pgid.
            p(110, 1, 100, b'S'),
            p(111, 110, 111, b'S'),
            // Zombie child of the main process.
            p(120, 100, 100, b'Z'),
            // Unrelated processes.
            p(200, 1, 200, b'S'),
            p(201, 200, 200, b'S'),
            p(300, 1, 300, b'S'),
        ])
    }

    #[test]
    fn tree_of_instance() {
        let s = synthetic();
        assert_eq!(s.tree(100, 100), vec![100, 101, 102, 103, 104, 110, 111]);
        // Main process gone: the group (and what hangs off it) is what's left.
        assert_eq!(s.tree(999, 100), vec![100, 101, 102, 103, 104, 110, 111]);
        // Subtree only.
        assert_eq!(s.tree(103, 103), vec![103, 104]);
        assert_eq!(s.tree(200, 200), vec![200, 201]);
        assert_eq!(s.tree(999, 999), Vec::<i32>::new());
        // pid/pgid 0 must not pull in the whole system.
        assert_eq!(s.tree(0, 0), Vec::<i32>::new());
        assert_eq!(s.group(100), vec![100, 101, 102, 110]);
    }

    #[test]
    fn tree_including_remembered() {
        // Main and middle parent died: the setsid'd 103 was re-parented to 1.
        let s = Snapshot::from_procs(vec![
            p(1, 0, 1, b'S'),
            p(103, 1, 103, b'S'),
            p(104, 103, 103, b'S'),
            p(500, 1, 500, b'S'),
        ]);
        assert_eq!(s.tree(100, 100), Vec::<i32>::new());
        assert_eq!(s.tree_including(100, 100, &[(103, 1103)]), vec![103, 104]);
        // Same pid, another process (reused): not ours.
        assert_eq!(s.tree_including(100, 100, &[(500, 1)]), Vec::<i32>::new());
    }

    #[test]
    fn tree_never_contains_self() {
        let me = own_pid();
        let s = Snapshot::from_procs(vec![p(me, 1, 50, b'S'), p(me + 1, me, 60, b'S')]);
        assert_eq!(s.tree(me, 50), Vec::<i32>::new());
    }

    #[test]
    fn usage_sums() {
        let s = synthetic();
        assert_eq!(s.usage(&[101, 102]), (4096 * 203, 203));
        assert_eq!(s.usage(&[101, 999]), (4096 * 101, 101));
        assert_eq!(s.usage(&[]), (0, 0));
    }

    #[test]
    fn self_is_readable() {
        let me = own_pid();
        let info = read(me).expect("own stat");
        assert_eq!(info.pid, me);
        assert_eq!(info.pgid, nix::unistd::getpgrp().as_raw());
        assert!(info.rss_bytes > 0);
        assert!(is_same_process(me, info.start_ticks));
        assert!(!is_same_process(me, info.start_ticks + 1));
        assert!(!is_same_process(0, info.start_ticks));
        let snap = Snapshot::take();
        assert!(snap.is_complete());
        assert_eq!(snap.get(me).map(|p| p.start_ticks), Some(info.start_ticks));
        assert!(clock_ticks_per_sec() > 0);
        assert!(page_size() >= 4096);
    }

    fn poll(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + deadline;
        loop {
            if f() {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn real_tree_and_group() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let pid = child.id() as i32;

        let mut tree = Vec::new();
        let mut snap = Snapshot::default();
        let found = poll(Duration::from_secs(5), || {
            snap = Snapshot::take();
            tree = snap.tree(pid, pid);
            // Both sleeps forked and exec'd (until exec they're copies of sh).
            tree.len() == 3
                && tree
                    .iter()
                    .all(|&t| t == pid || snap.get(t).is_some_and(|p| p.ppid == pid))
        });
        let (rss, _cpu) = snap.usage(&tree);
        let group = orphans_of_group(pid);
        let alive_before = group_alive(pid);

        let _ = kill(Pid::from_raw(-pid), nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();

        assert!(found, "tree of sh: {tree:?}");
        assert!(tree.contains(&pid));
        assert!(rss > 0);
        assert_eq!(group, tree);
        assert!(alive_before);
        // The sleeps may linger as zombies until init reaps them; they must not count.
        assert!(
            poll(Duration::from_secs(10), || !group_alive(pid)),
            "group {pid} still alive"
        );
        assert!(orphans_of_group(pid).is_empty());
    }

    #[test]
    fn group_alive_edge_cases() {
        assert!(!group_alive(0));
        assert!(!group_alive(-1));
        assert!(orphans_of_group(0).is_empty());
        // Our own group is alive (we're in it).
        assert!(group_alive(nix::unistd::getpgrp().as_raw()));
    }

    #[test]
    fn cpu_percent_math() {
        let hz = clock_ticks_per_sec();
        let pct = cpu_percent(hz, Duration::from_secs(2));
        assert!((pct - 50.0).abs() < 1e-9);
        assert_eq!(cpu_percent(10, Duration::ZERO), 0.0);
    }
}
