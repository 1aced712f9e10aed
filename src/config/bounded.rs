//! Running a helper program (`node` for a PM2 file) with a time limit and a bound on what
//! it prints.
//!
//! The child gets its own process group, killed whole at the limit, so a grandchild that
//! holds the output pipes open ends too. Two ways to wait:
//!
//! - [`output`] waits for that one child (by its pid, never `waitpid(-1)`) before the
//!   supervisor's loop runs: start-up, `check`, `import`.
//! - [`start`], [`read_some`] and [`kill_group`] are the pieces the running supervisor
//!   uses for `apply` (`src/supervisor/eval.rs`): its loop reads the pipes, its one reaper
//!   sees the exit, and nothing waits.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Why a run gave up.
#[derive(Debug)]
pub enum Error {
    /// The child ran past the time limit (it and its group were killed).
    TimedOut,
    /// The child printed more than allowed (it and its group were killed).
    TooMuchOutput,
    /// The child couldn't be started.
    Io(io::Error),
}

/// What the child printed and how it ended.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A child started in a process group of its own, its output pipes non-blocking.
pub struct Started {
    pub child: Child,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Starts `cmd` with its stdout and stderr piped to us, as the leader of a new group.
pub fn start(mut cmd: Command) -> Result<Started, Error> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(Error::Io)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(child.id() as i32);
        let _ = child.wait();
        return Err(Error::Io(io::Error::other("no pipes to the child")));
    };
    for fd in [stdout.as_raw_fd(), stderr.as_raw_fd()] {
        // SAFETY: fcntl on fds we own.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
    Ok(Started {
        child,
        stdout,
        stderr,
    })
}

/// SIGKILL to the group the child `pid` leads. The caller must not have reaped it yet
/// (until then neither its pid nor its group id can be reused).
pub fn kill_group(pid: i32) {
    // SAFETY: kill(2) with a negative pid: a process group id, see above.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Reads what a non-blocking pipe holds now into `sink`, stopping early once `sink` holds
/// more than `cap` bytes (a child writing as fast as we read would keep us here); false
/// once the pipe reached its end (or failed, which ends it as well).
pub fn read_some(pipe: &mut dyn Read, sink: &mut Vec<u8>, cap: usize) -> bool {
    let mut buf = [0u8; 64 * 1024];
    while sink.len() <= cap {
        match pipe.read(&mut buf) {
            Ok(0) => return false,
            Ok(k) => sink.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Runs `cmd` to its end, at most `limit` long and `max_output` bytes printed.
pub fn output(cmd: Command, limit: Duration, max_output: usize) -> Result<Output, Error> {
    let deadline = Instant::now() + limit;
    let Started {
        mut child,
        stdout: mut out,
        stderr: mut err,
    } = start(cmd)?;
    let kill = |child: &mut Child| {
        kill_group(child.id() as i32);
        let _ = child.wait();
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let now = Instant::now();
        if now >= deadline {
            kill(&mut child);
            return Err(Error::TimedOut);
        }
        let mut fds = [
            libc::pollfd {
                fd: if out_open { out.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if err_open { err.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = (deadline - now).as_millis().clamp(1, 1000) as libc::c_int;
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            kill(&mut child);
            return Err(Error::Io(e));
        }
        if out_open {
            out_open = read_some(
                &mut out,
                &mut stdout,
                max_output.saturating_sub(stderr.len()),
            );
        }
        if err_open {
            err_open = read_some(
                &mut err,
                &mut stderr,
                max_output.saturating_sub(stdout.len()),
            );
        }
        if stdout.len() + stderr.len() > max_output {
            kill(&mut child);
            return Err(Error::TooMuchOutput);
        }
    }
    // Both pipes closed: the child is ending. Wait for it, still within the limit.
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Ok(Output {
                    status,
                    stdout,
                    stderr,
                })
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                kill(&mut child);
                return Err(Error::TimedOut);
            }
            Err(e) => {
                kill(&mut child);
                // The status was taken elsewhere; report it as a failure, not success.
                return match e.raw_os_error() {
                    Some(libc::ECHILD) => Ok(Output {
                        status: ExitStatus::from_raw(1 << 8),
                        stdout,
                        stderr,
                    }),
                    _ => Err(Error::Io(e)),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn a_child_that_never_ends_is_killed_with_its_group_at_the_limit() {
        let start = Instant::now();
        let r = output(
            sh("sleep 1000 & echo $! > /dev/null; sleep 1000"),
            Duration::from_millis(300),
            1024,
        );
        assert!(matches!(r, Err(Error::TimedOut)));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn endless_output_is_cut() {
        let r = output(sh("yes"), Duration::from_secs(20), 1 << 20);
        assert!(matches!(r, Err(Error::TooMuchOutput)));
    }

    #[test]
    fn a_normal_child_gives_its_output_and_status() {
        let r = output(
            sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(20),
            1024,
        )
        .unwrap();
        assert_eq!(r.stdout, b"out\n");
        assert_eq!(r.stderr, b"err\n");
        assert_eq!(r.status.code(), Some(3));
    }
}
