//! Instance output through runner (SPEC section 2: `out_file`, `error_file`, `log_prefix`,
//! `time`; README "Logs"): whole lines, prefixes and timestamps, files and their rotation,
//! long lines, binary data, back-pressure from a stalled reader, unopenable files, and the
//! default of handing runner's own fd 1 to the app.
//!
//! The generator is `tests/apps/log_gen.py`; every line it writes is numbered so that loss,
//! duplication, reordering and mid-line interleaving all show.

mod common;

use common::*;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One `[[apps]]` table running `log_gen.py ARGS...`, plus `extra` lines.
fn gen_app(name: &str, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| q(a)).collect();
    format!(
        "[[apps]]\nname = {}\nscript = {}\nargs = [{}]\n{extra}\n",
        q(name),
        q(&app("log_gen.py")),
        args.join(", ")
    )
}

/// The line `log_gen.py` writes for number `i` (without the newline).
fn gen_line(tag: &str, i: usize, width: usize) -> String {
    let mut s = format!("{tag} {i:06}");
    while s.len() < width {
        s.push('.');
    }
    s
}

/// Runs runner on `d`'s ecosystem to its end (the apps exit by themselves).
fn run_all(d: &TestDir) -> Proc {
    let mut p = runner_eco(d, &[]);
    let code = p.code(Duration::from_secs(60));
    assert_eq!(code, 0, "runner exit code\n{}", p.dump());
    p
}

/// runner's stderr without its own `runner:` lines.
fn foreign_stderr(p: &Proc) -> Vec<String> {
    p.stderr()
        .lines()
        .filter(|l| !l.starts_with("runner:"))
        .map(String::from)
        .collect()
}

/// `2026-11-26T16:41:16.123Z` (exactly; 24 bytes).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 24 {
        return false;
    }
    let pat = b"dddd-dd-ddTdd:dd:dd.dddZ";
    b.iter().zip(pat.iter()).all(|(c, p)| match p {
        b'd' => c.is_ascii_digit(),
        other => c == other,
    }) && (1..=12).contains(&s[5..7].parse::<u32>().unwrap())
        && (1..=31).contains(&s[8..10].parse::<u32>().unwrap())
        && s[11..13].parse::<u32>().unwrap() < 24
        && s[14..16].parse::<u32>().unwrap() < 60
        && s[17..19].parse::<u32>().unwrap() < 61
}

/// Splits `name[i] rest` into (i, rest); None when the line does not have that shape.
fn split_prefix<'a>(line: &'a str, name: &str) -> Option<(u32, &'a str)> {
    let rest = line.strip_prefix(name)?.strip_prefix('[')?;
    let close = rest.find("] ")?;
    let i = rest[..close].parse().ok()?;
    Some((i, &rest[close + 2..]))
}

/// The numbers of `tick NNNNNN` lines of a file (panics on any other line).
fn ticks(d: &TestDir, file: &str) -> Vec<u64> {
    d.read(file)
        .lines()
        .map(|l| {
            l.strip_prefix("tick ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line in {file}: {l:?}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------

#[test]
fn twenty_thousand_lines_arrive_whole_in_order_and_prefixed() {
    let d = TestDir::new("logs20k");
    d.ecosystem(&gen_app(
        "gen",
        &["bulk", "20000", "L"],
        "autorestart = false\nlog_prefix = true",
    ));
    let p = run_all(&d);
    let out = p.stdout();
    assert!(out.ends_with('\n'), "output does not end with a newline");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 20_000, "line count; stderr:\n{}", p.stderr());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("gen[0] {}", gen_line("L", i, 0)), "line {i}");
    }
    assert!(foreign_stderr(&p).is_empty(), "{}", p.stderr());
}

/// Two instances writing at once: every line whole and each instance's lines in order.
fn two_writers(label: &str, n: usize, width: usize) {
    let d = TestDir::new(label);
    let n_s = n.to_string();
    let w_s = width.to_string();
    d.ecosystem(&gen_app(
        "duo",
        &["lines", &n_s, "I{i}", &w_s],
        "instances = 2\nautorestart = false\nlog_prefix = true",
    ));
    let p = run_all(&d);
    let out = p.stdout();
    let mut next = [0usize; 2];
    let mut count = 0;
    for (k, l) in out.lines().enumerate() {
        let (i, rest) = split_prefix(l, "duo")
            .unwrap_or_else(|| panic!("line {k} has no duo[i] prefix: {:.120?}", l));
        assert!(i < 2, "line {k}: instance {i}");
        let i = i as usize;
        let want = gen_line(&format!("I{i}"), next[i], width);
        assert!(
            rest == want,
            "line {k} of instance {i}: want {:.60?}... ({} bytes), got {:.60?}... ({} bytes)",
            want,
            want.len(),
            rest,
            rest.len()
        );
        next[i] += 1;
        count += 1;
    }
    assert_eq!(next, [n, n], "lines per instance");
    assert_eq!(count, 2 * n);
}

#[test]
fn two_instances_short_lines_never_interleave() {
    two_writers("logsduo", 5000, 0);
}

#[test]
fn two_instances_10k_lines_never_interleave() {
    // 10 KB lines are bigger than PIPE_BUF (4 KiB): each reaches runner in several reads.
    two_writers("logsduo10k", 1000, 10_000);
}

#[test]
fn stdout_and_stderr_are_kept_apart_without_files() {
    let d = TestDir::new("logsapart");
    d.ecosystem(&gen_app(
        "gen",
        &["both", "500"],
        "autorestart = false\nlog_prefix = true",
    ));
    let p = run_all(&d);
    let out: Vec<String> = p.stdout().lines().map(String::from).collect();
    let want_out: Vec<String> = (0..500)
        .map(|i| format!("gen[0] {}", gen_line("out", i, 0)))
        .collect();
    assert_eq!(out, want_out);
    let want_err: Vec<String> = (0..500)
        .map(|i| format!("gen[0] {}", gen_line("err", i, 0)))
        .collect();
    assert_eq!(foreign_stderr(&p), want_err);
}

#[test]
fn out_file_and_error_file_get_their_stream_only() {
    let d = TestDir::new("logsfiles");
    let mut toml = gen_app(
        "plain",
        &["both", "2000"],
        &format!(
            "autorestart = false\nout_file = {}\nerror_file = {}",
            q(&d.p("plain.out")),
            q(&d.p("plain.err"))
        ),
    );
    toml += &gen_app(
        "pre",
        &["both", "2000"],
        &format!(
            "autorestart = false\nlog_prefix = true\nout_file = {}\nerror_file = {}",
            q(&d.p("pre.out")),
            q(&d.p("pre.err"))
        ),
    );
    d.ecosystem(&toml);
    let p = run_all(&d);
    for (file, tag, prefix) in [
        ("plain.out", "out", ""),
        ("plain.err", "err", ""),
        ("pre.out", "out", "pre[0] "),
        ("pre.err", "err", "pre[0] "),
    ] {
        let got: Vec<String> = d.read(file).lines().map(String::from).collect();
        let want: Vec<String> = (0..2000)
            .map(|i| format!("{prefix}{}", gen_line(tag, i, 0)))
            .collect();
        assert_eq!(got.len(), want.len(), "{file}: line count");
        assert_eq!(got, want, "{file}");
    }
    assert_eq!(p.stdout(), "", "runner's stdout");
    assert!(
        foreign_stderr(&p).is_empty(),
        "runner's stderr has app lines:\n{}",
        p.stderr()
    );
}

#[test]
fn out_file_is_created_0640_and_appended_to() {
    let d = TestDir::new("logsappend");
    d.write("a.log", "old line\n");
    d.ecosystem(&gen_app(
        "gen",
        &["lines", "3", "N"],
        &format!(
            "autorestart = false\nout_file = {}\nerror_file = {}",
            q(&d.p("a.log")),
            q(&d.p("new.err"))
        ),
    ));
    run_all(&d);
    assert_eq!(d.read("a.log"), "old line\nN 000000\nN 000001\nN 000002\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path().join("new.err"))
        .expect("error_file created")
        .permissions()
        .mode()
        & 0o777;
    // 0640 minus the umask (whatever it is here): never more than 0640.
    assert_eq!(mode & !0o640, 0, "new.err has mode {mode:o}");
    assert_ne!(mode & 0o600, 0, "new.err has mode {mode:o}");
}

#[test]
fn time_prefixes_every_line_with_an_iso8601_utc_timestamp() {
    let d = TestDir::new("logstime");
    let mut toml = gen_app(
        "both",
        &["lines", "300", "B"],
        "autorestart = false\nlog_prefix = true\ntime = true",
    );
    toml += &gen_app(
        "tonly",
        &["lines", "300", "T"],
        &format!(
            "autorestart = false\ntime = true\nout_file = {}",
            q(&d.p("t.log"))
        ),
    );
    d.ecosystem(&toml);
    let p = run_all(&d);
    let check = |text: &str, rest_of: &dyn Fn(usize) -> String, what: &str| {
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 300, "{what}: {text:.300}");
        let mut last = String::new();
        for (i, l) in lines.iter().enumerate() {
            let (ts, rest) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("{what}: line {i}: {l:?}"));
            assert!(is_timestamp(ts), "{what}: line {i}: bad timestamp in {l:?}");
            assert_eq!(rest, rest_of(i), "{what}: line {i}");
            assert!(
                ts >= last.as_str(),
                "{what}: timestamps go back: {last} then {ts}"
            );
            last = ts.to_string();
        }
    };
    check(
        &p.stdout(),
        &|i| format!("both[0] {}", gen_line("B", i, 0)),
        "stdout",
    );
    check(&d.read("t.log"), &|i| gen_line("T", i, 0), "t.log");
}

#[test]
fn renamed_out_file_is_reopened_without_losing_or_duplicating_lines() {
    let d = TestDir::new("logsrotate");
    d.ecosystem(&gen_app(
        "tick",
        &["tick", "100"],
        &format!("out_file = {}", q(&d.p("app.log"))),
    ));
    let mut p = runner_eco(&d, &[]);
    wait_for("5 lines in app.log", T, || d.lines("app.log").len() >= 5);
    // logrotate's create mode: move the file away; the writer must notice by itself.
    std::fs::rename(d.path().join("app.log"), d.path().join("app.log.1")).unwrap();
    wait_for("a new app.log with 5 lines", T, || {
        d.lines("app.log").len() >= 5
    });
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let old = ticks(&d, "app.log.1");
    let new = ticks(&d, "app.log");
    assert!(old.len() >= 5, "renamed file kept its lines: {old:?}");
    let all: Vec<u64> = old.iter().chain(new.iter()).copied().collect();
    let want: Vec<u64> = (0..all.len() as u64).collect();
    assert_eq!(
        all, want,
        "old file {old:?} then new file {new:?} is not one contiguous range"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path().join("app.log"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode & !0o640, 0, "reopened app.log has mode {mode:o}");
}

#[test]
fn a_200k_line_without_newline_is_split_and_kept_whole() {
    const N: usize = 200_000;
    let d = TestDir::new("logslong");
    d.ecosystem(&gen_app(
        "gen",
        &["long", &N.to_string()],
        "autorestart = false\nlog_prefix = true",
    ));
    let p = run_all(&d);
    let out = p.stdout_bytes();
    assert_eq!(out.last(), Some(&b'\n'), "last piece ends with a newline");
    let pieces: Vec<&[u8]> = out[..out.len() - 1].split(|b| *b == b'\n').collect();
    assert!(
        pieces.len() >= N.div_ceil(64 * 1024),
        "{} pieces of {:?} bytes",
        pieces.len(),
        pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
    );
    assert!(pieces.len() <= 10, "{} pieces", pieces.len());
    let mut joined = Vec::new();
    for (k, piece) in pieces.iter().enumerate() {
        let body = piece
            .strip_prefix(b"gen[0] ".as_slice())
            .unwrap_or_else(|| {
                panic!(
                    "piece {k} has no prefix: {:?}",
                    &piece[..piece.len().min(40)]
                )
            });
        assert!(!body.is_empty(), "piece {k} is empty");
        assert!(body.len() <= 64 * 1024, "piece {k}: {} bytes", body.len());
        joined.extend_from_slice(body);
    }
    let want: Vec<u8> = b"0123456789".iter().copied().cycle().take(N).collect();
    assert_eq!(joined.len(), N, "total bytes");
    assert!(joined == want, "content differs");
}

/// The byte strings `log_gen.py binary` writes (each followed by `\n`).
const BINARY: [&[u8]; 3] = [
    b"\xff\xfe\x00\x01bin",
    b"\x00",
    b"caf\xc3\xa9 \xe9t\xe9 \x80\x81\r\t\x1b[0m",
];

#[test]
fn binary_bytes_pass_through_unchanged() {
    let d = TestDir::new("logsbin");
    let mut toml = gen_app("gen", &["binary"], "autorestart = false\nlog_prefix = true");
    toml += &gen_app(
        "tofile",
        &["binary"],
        &format!("autorestart = false\nout_file = {}", q(&d.p("bin.log"))),
    );
    d.ecosystem(&toml);
    let p = run_all(&d);
    let mut want = Vec::new();
    for b in BINARY {
        want.extend_from_slice(b"gen[0] ");
        want.extend_from_slice(b);
        want.push(b'\n');
    }
    assert_eq!(p.stdout_bytes(), want, "runner's stdout");
    let want_file: Vec<u8> = BINARY
        .iter()
        .flat_map(|b| b.iter().chain(b"\n"))
        .copied()
        .collect();
    assert_eq!(
        std::fs::read(d.path().join("bin.log")).unwrap(),
        want_file,
        "bin.log"
    );
}

#[test]
fn a_stalled_stdout_reader_does_not_stall_control_or_signals() {
    let d = TestDir::new("logsstall");
    d.ecosystem(&gen_app(
        "spam",
        &["spam", &d.p("sig")],
        "log_prefix = true\nkill_signal = \"SIGTERM\"\nkill_timeout = 20000",
    ));
    let errf = std::fs::File::create(d.path().join("runner.err")).unwrap();
    let mut child = runner_cmd(d.path(), &[d.p("ecosystem.toml")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(errf)
        .spawn()
        .unwrap();
    let runner_pid = child.id() as i32;
    // Never read while the assertions run.
    let mut stdout = child.stdout.take().unwrap();
    let app_pid: i32 = d.wait_file("sig.ready").trim().parse().unwrap();

    // Let the pipe and runner's buffer fill: the app ends up blocked in its own write.
    let blocked = poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{app_pid}/wchan"))
            .is_ok_and(|w| w.contains("pipe_write") || w.contains("pipe_wait"))
    });
    if !blocked {
        // wchan may be hidden; the app writes MB/s, so the buffers are full by now anyway.
        eprintln!("note: could not see the app blocked in pipe_write");
    }
    let stat_before = stat(runner_pid).unwrap();

    for _ in 0..3 {
        let (code, out, err) = client(&d, &["list", "--json"], Duration::from_secs(10));
        assert_eq!(code, 0, "list failed while stdout is stalled: {out}\n{err}");
        let rows = match Json::parse(out.trim()) {
            Ok(Json::Arr(v)) => v,
            other => panic!("list --json: {other:?}"),
        };
        let rows = rows_of(&rows, "spam");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].s("status"), "online", "{rows:?}");
        assert_eq!(rows[0].i("pid"), app_pid as i64);
    }
    // runner is not spinning while it waits for the reader (generous: < 1 s of CPU in
    // the time the three `list` calls took).
    let stat_after = stat(runner_pid).unwrap();
    let ticks = (stat_after.utime + stat_after.stime) - (stat_before.utime + stat_before.stime);
    assert!(ticks < CLK_TCK, "runner used {ticks} ticks while stalled");

    // SIGTERM to runner still reaches the app, with stdout still unread.
    send_signal(runner_pid, "TERM");
    wait_for("the app to get its kill_signal", T, || {
        std::fs::read_to_string(d.path().join("sig")).is_ok_and(|s| s.contains("SIGTERM"))
    });
    wait_for("the app to be gone", T, || !alive(app_pid));

    // Now drain runner's stdout so that it can flush and exit.
    let reader = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stdout.read_to_end(&mut sink);
        sink
    });
    let exited = poll_until(T, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "runner did not exit after its stdout was drained\n{}",
            d.read("runner.err")
        );
    }
    let status = child.wait().unwrap();
    let out = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{}", d.read("runner.err"));
    // What did come out is still whole, prefixed lines.
    let text = String::from_utf8_lossy(&out);
    // The app was killed mid-write, so its very last line may be cut short (runner adds
    // the newline at EOF); every other line is whole.
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty(), "nothing came out");
    for (k, l) in lines.iter().enumerate() {
        let (i, rest) = split_prefix(l, "spam").unwrap_or_else(|| panic!("garbled: {l:.120?}"));
        assert_eq!(i, 0);
        let n: usize = rest
            .get(5..11)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("line {k} garbled: {l:.120?}"));
        let want = gen_line("spam", n, 100);
        if k + 1 == lines.len() {
            assert!(want.starts_with(rest), "last line garbled: {l:.120?}");
        } else {
            assert_eq!(rest, want, "line {k} garbled");
        }
    }
}

#[test]
fn an_out_file_in_a_missing_directory_is_an_ecosystem_error() {
    let d = TestDir::new("logsnodir");
    d.write("notadir", "a regular file\n");
    let mut toml = gen_app(
        "bad",
        &["tick", "100"],
        &format!("out_file = {}", q(&d.p("notadir/out.log"))),
    );
    toml += &gen_app(
        "bad2",
        &["tick", "100"],
        &format!("error_file = {}", q(&d.p("missing/err.log"))),
    );
    toml += "[[apps]]\nname = \"good\"\nscript = \"sleep\"\nargs = \"1000\"\n";
    d.ecosystem(&toml);
    let (code, out, err) = run_to_end(&d, &[d.p("ecosystem.toml")]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("out_file") && err.contains("notadir"), "{err}");
    assert!(
        err.contains("error_file") && err.contains("missing"),
        "{err}"
    );
    assert!(started_pids(&err, "good").is_empty(), "{err}");
}

/// `mkfifo PATH`.
fn mkfifo(path: &str) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success(), "mkfifo {path}");
}

#[test]
fn an_unopenable_out_file_is_reported_and_other_apps_keep_running() {
    let d = TestDir::new("logsbadfile");
    // A FIFO nobody reads cannot be opened for writing without blocking (ENXIO): the
    // config check passes, the open at spawn fails, even for root.
    mkfifo(&d.p("fifo"));
    let mut toml = gen_app(
        "bad",
        &["tick", "100"],
        &format!("out_file = {}\nrestart_delay = 200", q(&d.p("fifo"))),
    );
    toml += "[[apps]]\nname = \"good\"\nscript = \"sleep\"\nargs = \"1000\"\n";
    let unprivileged = status_field(std::process::id() as i32, "Uid")
        .is_some_and(|u| u.split_whitespace().nth(1) != Some("0"));
    if unprivileged {
        // A directory that is not writable only stops a process without CAP_DAC_OVERRIDE.
        std::fs::create_dir_all(d.path().join("ro")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.path().join("ro"), std::fs::Permissions::from_mode(0o555))
            .unwrap();
        toml += &gen_app(
            "badro",
            &["tick", "100"],
            &format!(
                "error_file = {}\nrestart_delay = 200",
                q(&d.p("ro/err.log"))
            ),
        );
    }
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    wait_app_status(&d, "good", 1, "online", T);
    let mut last = Vec::new();
    let reported = poll_until(T, || {
        let Some(rows) = try_list(&d) else {
            return false;
        };
        last = rows_of(&rows, "bad");
        last.iter().any(|r| r.s("error").contains("out_file"))
    });
    assert!(
        reported,
        "no error naming out_file in list; last: {last:?}\n{}",
        p.dump()
    );
    let e = last[0].s("error");
    assert!(e.contains("fifo"), "the error does not name the file: {e}");
    assert!(last.iter().all(|r| r.s("status") != "online"), "{last:?}");
    if unprivileged {
        wait_for("badro's error", T, || {
            try_list(&d).is_some_and(|rows| {
                rows_of(&rows, "badro")
                    .iter()
                    .any(|r| r.s("error").contains("error_file"))
            })
        });
    }
    // runner is still up and still supervising `good`.
    assert!(!p.has_exited(), "runner exited\n{}", p.dump());
    let good = wait_app_status(&d, "good", 1, "online", T);
    assert!(alive(good[0].i("pid") as i32));
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn every_app_writes_through_runner_and_single_program_mode_inherits_fd_1() {
    // Ecosystem mode: an app without log keys gets pipes too, so that `runner logs` has its
    // lines; they still end up on runner's stdout/stderr, undecorated.
    let d = TestDir::new("logsinherit");
    let toml = gen_app("raw", &["tick", "50"], "");
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    let raw = wait_app_status(&d, "raw", 1, "online", T)[0].i("pid") as i32;
    let runner_out = fd_link(p.pid(), 1).expect("runner's fd 1");
    let raw_out = fd_link(raw, 1).expect("raw's fd 1");
    assert!(raw_out.starts_with("pipe:"), "{raw_out}");
    assert_ne!(raw_out, runner_out);
    assert_ne!(fd_link(raw, 2).unwrap(), fd_link(p.pid(), 2).unwrap());
    wait_for("raw's ticks on runner's stdout", T, || {
        p.stdout().lines().any(|l| l == "tick 000002")
    });
    p.signal("TERM");
    p.wait(T);

    // `runner -- PROGRAM` stays zero-copy, as tini: the program has runner's own fds.
    let d = TestDir::new("logsinherit1");
    let mut p = runner(&d, &["--", "sleep", "1000"]);
    let mut child = None;
    wait_for("the sleep child", T, || {
        child = children(p.pid()).first().map(|c| c.pid);
        child.is_some()
    });
    let child = child.unwrap();
    wait_for("the child to exec sleep", T, || {
        std::fs::read_to_string(format!("/proc/{child}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    assert_eq!(fd_link(child, 1), fd_link(p.pid(), 1), "child's fd 1");
    assert_eq!(fd_link(child, 2), fd_link(p.pid(), 2), "child's fd 2");
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn an_instances_last_lines_come_before_runner_logs_its_exit() {
    let d = TestDir::new("logsorder");
    d.ecosystem(&gen_app(
        "gen",
        &["both", "2000"],
        "autorestart = false\nlog_prefix = true",
    ));
    let p = run_all(&d);
    let err = p.stderr();
    let pid = started_pids(&err, "gen")[0];
    let lines: Vec<&str> = err.lines().collect();
    let last_app = lines
        .iter()
        .rposition(|l| *l == "gen[0] err 001999")
        .unwrap_or_else(|| panic!("last line missing:\n{err}"));
    let exit_line = lines
        .iter()
        .position(|l| {
            l.starts_with("runner:") && l.contains(&format!("pid {pid} ")) && !l.contains("started")
        })
        .unwrap_or_else(|| panic!("no exit line for pid {pid}:\n{err}"));
    assert!(
        last_app < exit_line,
        "runner logged the exit (line {exit_line}: {}) before the app's last line (line {last_app})",
        lines[exit_line]
    );
}
