//! Sinks, streams and pipes with real file descriptors. Anything that could block runs
//! under a watchdog, so a blocking write fails the test instead of hanging it.

use super::sink::PIPE_BUF;
use super::*;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Runs `f` on a thread and fails if it hasn't finished within `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(_) => panic!("blocked: not done within {secs} s"),
    }
}

/// A fresh empty directory for one test, removed when dropped.
struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmpdir(name: &str) -> TmpDir {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "runner-logs-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

fn read_all_available(fd: impl std::os::fd::AsFd, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 65536];
    loop {
        match read_pipe(fd.as_fd(), &mut buf) {
            Ok(0) => return true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn nonblocking(fd: impl std::os::fd::AsFd) -> bool {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fl = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).unwrap());
    fl.contains(OFlag::O_NONBLOCK)
}

fn cloexec(fd: impl std::os::fd::AsFd) -> bool {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let fl = FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD).unwrap());
    fl.contains(FdFlag::FD_CLOEXEC)
}

fn numbered(i: usize) -> Vec<u8> {
    // Varying lengths so chunking meets lines at every offset.
    format!("line {i:06} {}\n", "x".repeat(i % 97)).into_bytes()
}

/// Queues numbered lines into `sink` until it reports full and can't flush, then reads
/// the pipe and checks every line arrived whole and in order.
fn stalled_reader_then_drain(mut sink: Sink, r: OwnedFd) {
    let mut n = 0;
    let mut saw_full = false;
    let mut saw_stuck = false;
    // Fill: the reader reads nothing.
    while !(saw_full && saw_stuck) {
        let room = sink.queue(&numbered(n));
        n += 1;
        saw_full |= !room;
        if !sink.flush() {
            saw_stuck = true;
        }
        assert!(n < 10_000_000, "never filled up");
    }
    assert!(sink.pending() > 0);
    assert!(!sink.has_room() || sink.pending() > 0);
    // Drain with flushes in between, until all is through.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        read_all_available(&r, &mut got);
        let done = sink.flush();
        if done {
            read_all_available(&r, &mut got);
            break;
        }
        assert!(Instant::now() < deadline, "didn't drain");
    }
    let want: Vec<u8> = (0..n).flat_map(numbered).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "lines out of order or torn");
    assert_eq!(sink.dropped(), 0);
}

#[test]
fn sink_on_stalled_pipe_never_blocks_reports_full_and_then_delivers_in_order() {
    within(20, || {
        let (r, w) = pipe().unwrap();
        let sink = Sink::stdio(w.as_raw_fd(), 64 * 1024);
        assert_eq!(sink.mode(), WriteMode::NonBlocking);
        assert!(sink.pollable());
        // The shared fd's own description is left blocking.
        assert!(!nonblocking(&w));
        stalled_reader_then_drain(sink, r);
        assert!(!nonblocking(&w));
    });
}

#[test]
fn poll_guarded_fallback_on_stalled_pipe_never_blocks_and_delivers_in_order() {
    within(20, || {
        let (r, w) = pipe().unwrap();
        let sink = Sink::stdio_poll_guarded(w.as_raw_fd(), 64 * 1024);
        assert_eq!(sink.mode(), WriteMode::PollGuarded);
        stalled_reader_then_drain(sink, r);
        assert!(!nonblocking(&w));
    });
}

#[test]
fn poll_guarded_fallback_splits_a_line_longer_than_pipe_buf() {
    within(20, || {
        let (r, w) = pipe().unwrap();
        let mut sink = Sink::stdio_poll_guarded(w.as_raw_fd(), 1 << 20);
        let long = vec![b'z'; 3 * PIPE_BUF + 17];
        let mut want = Vec::new();
        for _ in 0..40 {
            let mut l = long.clone();
            l.push(b'\n');
            sink.queue(&l);
            want.extend_from_slice(&l);
        }
        let mut got = Vec::new();
        while !sink.flush() {
            read_all_available(&r, &mut got);
        }
        read_all_available(&r, &mut got);
        assert!(got == want);
    });
}

#[test]
fn sink_on_socket_uses_dontwait_and_never_blocks() {
    within(20, || {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let nb = nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&a, nix::fcntl::FcntlArg::F_SETFL(nb)).unwrap();
        let sink = Sink::stdio(b.as_raw_fd(), 64 * 1024);
        assert_eq!(sink.mode(), WriteMode::Send);
        assert!(!nonblocking(&b));
        stalled_reader_then_drain(sink, a);
    });
}

#[test]
fn sink_on_stopped_terminal_never_blocks() {
    within(20, || {
        let Ok(pty) = nix::pty::openpty(None, None) else {
            eprintln!("no pty available; skipped");
            return;
        };
        let (master, slave) = (pty.master, pty.slave);
        let mut sink = Sink::stdio(slave.as_raw_fd(), 64 * 1024);
        assert_eq!(sink.mode(), WriteMode::NonBlocking);
        assert!(!nonblocking(&slave));
        // Nobody reads the master: the terminal fills up and flush reports it.
        let mut stuck = false;
        for i in 0..100_000 {
            sink.queue(&numbered(i));
            if !sink.flush() {
                stuck = true;
                break;
            }
        }
        assert!(stuck, "a terminal nobody reads should fill up");
        drop(master);
    });
}

#[test]
fn sink_drops_and_counts_when_the_reader_is_gone() {
    within(20, || {
        let (r, w) = pipe().unwrap();
        let mut sink = Sink::stdio(w.as_raw_fd(), 1024);
        drop(r);
        sink.queue(b"nobody hears this\n");
        assert!(sink.flush());
        assert_eq!(sink.pending(), 0);
        assert_eq!(sink.dropped(), 18);
    });
}

#[test]
fn flush_blocking_gives_up_at_the_deadline_and_succeeds_with_a_reader() {
    within(20, || {
        let (r, w) = pipe().unwrap();
        let mut sink = Sink::stdio(w.as_raw_fd(), 1 << 20);
        for i in 0..20_000 {
            sink.queue(&numbered(i));
        }
        let t0 = Instant::now();
        assert!(!sink.flush_blocking(t0 + Duration::from_millis(200)));
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(5));
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            use nix::poll::{poll, PollFd, PollFlags};
            loop {
                let _ = poll(&mut [PollFd::new(r.as_fd(), PollFlags::POLLIN)], 1000u16);
                if read_all_available(&r, &mut got) {
                    return got;
                }
            }
        });
        assert!(sink.flush_blocking(Instant::now() + Duration::from_secs(10)));
        drop(sink);
        drop(w);
        let got = reader.join().unwrap();
        let want: Vec<u8> = (0..20_000).flat_map(numbered).collect();
        assert!(got == want);
    });
}

#[test]
fn file_sink_appends_without_truncating() {
    let d = tmpdir("append");
    let p = d.join("out.log");
    std::fs::write(&p, b"old\n").unwrap();
    let mut s = Sink::file(&p, 1024).unwrap();
    assert_eq!(s.mode(), WriteMode::Direct);
    assert!(!s.pollable());
    s.queue(b"new\n");
    assert!(s.flush());
    // Someone else appends too (O_APPEND: we never overwrite it).
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"other\n").unwrap();
    }
    s.queue(b"newer\n");
    assert!(s.flush());
    assert_eq!(std::fs::read(&p).unwrap(), b"old\nnew\nother\nnewer\n");
}

#[test]
fn file_sink_creates_with_mode_0640_minus_umask() {
    let d = tmpdir("mode");
    let p = d.join("new.log");
    let _s = Sink::file(&p, 1024).unwrap();
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|u| u32::from_str_radix(u.trim(), 8).ok())
        .unwrap_or(0o022);
    assert_eq!(mode, 0o640 & !umask);
    if umask & 0o640 == 0 {
        assert_eq!(mode, 0o640);
    }
}

#[test]
fn file_sink_is_close_on_exec() {
    let d = tmpdir("cloexec");
    let s = Sink::file(&d.join("x.log"), 1024).unwrap();
    // SAFETY: the sink owns its fd and outlives this borrow.
    assert!(cloexec(unsafe {
        std::os::fd::BorrowedFd::borrow_raw(s.fd())
    }));
    let (r, w) = pipe().unwrap();
    assert!(cloexec(&r) && cloexec(&w));
    assert!(nonblocking(&r));
    assert!(!nonblocking(&w));
}

#[test]
fn file_sink_reopens_after_rename_and_after_delete() {
    let d = tmpdir("rotate");
    let p = d.join("app.log");
    let mut s = Sink::file_checked_every(&p, 1024, Duration::ZERO).unwrap();
    assert!(s.checks_rotation());
    s.queue(b"first\n");
    assert!(s.flush());
    // logrotate: rename, then (maybe later) create.
    std::fs::rename(&p, d.join("app.log.1")).unwrap();
    s.queue(b"second\n");
    assert!(s.flush());
    assert_eq!(std::fs::read(d.join("app.log.1")).unwrap(), b"first\n");
    assert_eq!(std::fs::read(&p).unwrap(), b"second\n");
    // Deleted outright: recreated.
    std::fs::remove_file(&p).unwrap();
    s.queue(b"third\n");
    assert!(s.flush());
    assert_eq!(std::fs::read(&p).unwrap(), b"third\n");
    // Replaced by a new file someone created: that one is used.
    std::fs::rename(&p, d.join("app.log.2")).unwrap();
    std::fs::write(&p, b"created\n").unwrap();
    s.queue(b"fourth\n");
    assert!(s.flush());
    assert_eq!(std::fs::read(&p).unwrap(), b"created\nfourth\n");
    assert_eq!(std::fs::read(d.join("app.log.2")).unwrap(), b"third\n");
}

#[test]
fn file_sink_checks_rotation_no_more_often_than_asked() {
    let d = tmpdir("rotate-slow");
    let p = d.join("app.log");
    let mut s = Sink::file_checked_every(&p, 1024, Duration::from_secs(3600)).unwrap();
    s.queue(b"first\n");
    assert!(s.flush());
    std::fs::rename(&p, d.join("app.log.1")).unwrap();
    s.queue(b"second\n");
    assert!(s.flush());
    // Within the interval the old file keeps getting the lines; no stat, no reopen.
    assert_eq!(
        std::fs::read(d.join("app.log.1")).unwrap(),
        b"first\nsecond\n"
    );
    assert!(!p.exists());
}

#[test]
fn dev_null_is_written_and_never_rotated() {
    let mut s = Sink::file_checked_every(Path::new("/dev/null"), 1024, Duration::ZERO).unwrap();
    assert!(!s.checks_rotation());
    assert_eq!(s.mode(), WriteMode::Direct);
    for _ in 0..3 {
        s.queue(b"gone\n");
        assert!(s.flush());
    }
    assert_eq!(s.dropped(), 0);
}

#[test]
fn fifo_log_path_needs_a_reader_is_written_and_never_rotated() {
    let d = tmpdir("fifo");
    let p = d.join("fifo");
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // No reader: an error right away instead of a hang.
    let e = within(5, {
        let p = p.clone();
        move || Sink::file(&p, 1024).map(|_| ()).unwrap_err()
    });
    assert!(
        e.to_string().contains(&format!("os error {}", libc::ENXIO)),
        "{e}"
    );
    assert!(e.to_string().contains("fifo"), "error names the path: {e}");
    use nix::fcntl::OFlag;
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let r = nix::fcntl::open(&p, flags, nix::sys::stat::Mode::empty()).unwrap();
    let mut s = Sink::file_checked_every(&p, 1024, Duration::ZERO).unwrap();
    assert_eq!(s.mode(), WriteMode::NonBlocking);
    assert!(!s.checks_rotation());
    s.queue(b"through the fifo\n");
    assert!(s.flush());
    let mut got = Vec::new();
    read_all_available(&r, &mut got);
    assert_eq!(got, b"through the fifo\n");
}

#[test]
fn sinks_share_one_sink_per_file_however_it_is_named() {
    let d = tmpdir("sinks");
    let p = d.join("shared.log");
    let mut sinks = Sinks::with_reopen_check(1024, Duration::ZERO);
    let a = sinks.get_or_open(Dest::File(p.clone())).unwrap();
    let b = sinks.get_or_open(Dest::File(p.clone())).unwrap();
    let c = sinks
        .get_or_open(Dest::File(d.join(".").join("shared.log")))
        .unwrap();
    std::os::unix::fs::symlink(&p, d.join("link.log")).unwrap();
    let e = sinks.get_or_open(Dest::File(d.join("link.log"))).unwrap();
    let other = sinks.get_or_open(Dest::File(d.join("other.log"))).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a, e);
    assert_ne!(a, other);
    assert_eq!(sinks.iter().count(), 2);
    assert_eq!(sinks.by_fd(sinks.get(other).fd()), Some(other));
    let err = sinks
        .get_or_open(Dest::File(d.join("missing-dir").join("x.log")))
        .unwrap_err();
    assert!(err.to_string().contains("missing-dir"), "{err}");
}

#[test]
fn stream_decorates_lines_and_drains_everything_at_eof() {
    within(20, || {
        let d = tmpdir("stream");
        let p = d.join("out.log");
        let mut sinks = Sinks::new(SINK_CAP);
        let id = sinks.get_or_open(Dest::File(p.clone())).unwrap();
        let (r, w) = pipe().unwrap();
        let mut s = Stream::new(r, Decor::for_instance("api", 1, true, true), id);
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        assert_eq!(s.pump(&mut sinks, t), Pump::Empty);
        let w = std::fs::File::from(w);
        use std::io::Write;
        (&w).write_all(b"hello\r\nbin\xff\x00ary\npart").unwrap();
        assert_eq!(s.pump(&mut sinks, t), Pump::Empty);
        (&w).write_all(b"ial").unwrap();
        // The instance exits: the write end closes and the unterminated rest comes out.
        drop(w);
        assert_eq!(s.pump(&mut sinks, t), Pump::Eof);
        assert!(s.is_eof());
        assert!(sinks.flush_all());
        let ts = "2023-11-14T22:13:20.500Z";
        let want = format!("{ts} api[1] hello\r\n{ts} api[1] bin\u{0}ary\n{ts} api[1] partial\n");
        let mut want = want.into_bytes();
        // The 0xff byte, which isn't UTF-8, passes unchanged.
        let pos = want.windows(3).position(|x| x == b"bin").unwrap() + 3;
        want.insert(pos, 0xff);
        assert_eq!(std::fs::read(&p).unwrap(), want);
    });
}

#[test]
fn streams_sharing_a_file_never_interleave_mid_line() {
    within(20, || {
        let d = tmpdir("interleave");
        let p = d.join("all.log");
        let mut sinks = Sinks::new(SINK_CAP);
        let id = sinks.get_or_open(Dest::File(p.clone())).unwrap();
        let (r0, w0) = pipe().unwrap();
        let (r1, w1) = pipe().unwrap();
        let mut s0 = Stream::new(r0, Decor::for_instance("a", 0, true, false), id);
        let mut s1 = Stream::new(r1, Decor::for_instance("a", 1, true, false), id);
        let (w0, w1) = (std::fs::File::from(w0), std::fs::File::from(w1));
        use std::io::Write;
        let now = SystemTime::now();
        for i in 0..100 {
            // Each write carries the end of one line and the start of the next.
            (&w0)
                .write_all(format!("0-{i}\n0-{}-", i + 1).as_bytes())
                .unwrap();
            (&w1)
                .write_all(format!("1-{i}\n1-{}-", i + 1).as_bytes())
                .unwrap();
            s0.pump(&mut sinks, now);
            s1.pump(&mut sinks, now);
            sinks.flush_all();
        }
        drop((w0, w1));
        assert_eq!(s0.pump(&mut sinks, now), Pump::Eof);
        assert_eq!(s1.pump(&mut sinks, now), Pump::Eof);
        assert!(sinks.flush_all());
        let text = String::from_utf8(std::fs::read(&p).unwrap()).unwrap();
        let mut counts = [0usize; 2];
        for line in text.lines() {
            let inst = if line.starts_with("a[0] 0-") {
                0
            } else if line.starts_with("a[1] 1-") {
                1
            } else {
                panic!("torn or mixed line: {line:?}")
            };
            counts[inst] += 1;
        }
        assert_eq!(counts, [101, 101]);
    });
}

#[test]
fn stream_stops_reading_when_its_sink_is_full_and_resumes_without_loss() {
    within(30, || {
        // runner's stdout is a pipe whose reader is slow.
        let (out_r, out_w) = pipe().unwrap();
        let mut sinks = Sinks::new(8 * 1024);
        let sink = Sink::stdio(out_w.as_raw_fd(), 8 * 1024);
        sinks.sinks.push(sink);
        let id = SinkId(0);
        // The instance writes 1 MiB of numbered lines from a thread; it blocks while runner
        // doesn't read (back-pressure), as it would on a slow terminal.
        let (r, w) = pipe().unwrap();
        let total = 20_000;
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::File::from(w);
            for i in 0..total {
                w.write_all(&numbered(i)).unwrap();
            }
        });
        let mut s = Stream::with_max_line(r, Decor::default(), id, MAX_LINE);
        let mut got = Vec::new();
        let mut saw_full = false;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "stuck");
            let p = s.pump(&mut sinks, SystemTime::now());
            saw_full |= p == Pump::Full;
            // Nothing ever grows past cap + one read's worth.
            assert!(sinks.pending() <= 8 * 1024 + READ_CHUNK + 1024);
            sinks.flush_all();
            // The slow reader: only now and then, and only some.
            if saw_full || p == Pump::Eof {
                let mut buf = [0u8; 3000];
                if let Ok(n) = read_pipe(&out_r, &mut buf) {
                    got.extend_from_slice(&buf[..n]);
                }
            }
            if p == Pump::Eof && sinks.flush_all() {
                read_all_available(&out_r, &mut got);
                break;
            }
            if p == Pump::Empty {
                std::thread::yield_now();
            }
        }
        writer.join().unwrap();
        assert!(
            saw_full,
            "the sink never filled up; the test proves nothing"
        );
        let want: Vec<u8> = (0..total).flat_map(numbered).collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want);
    });
}

#[test]
fn overlong_lines_from_a_stream_are_split_into_decorated_pieces() {
    within(20, || {
        let d = tmpdir("long");
        let p = d.join("out.log");
        let mut sinks = Sinks::new(SINK_CAP);
        let id = sinks.get_or_open(Dest::File(p.clone())).unwrap();
        let (r, w) = pipe().unwrap();
        let mut s = Stream::with_max_line(r, Decor::for_instance("x", 0, true, false), id, 10);
        let w = std::fs::File::from(w);
        use std::io::Write;
        (&w).write_all(b"0123456789abcdefghij__\nok\n").unwrap();
        drop(w);
        assert_eq!(s.pump(&mut sinks, SystemTime::now()), Pump::Eof);
        assert!(sinks.flush_all());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "x[0] 0123456789\nx[0] abcdefghij\nx[0] __\nx[0] ok\n"
        );
    });
}
