//! `runner logs` (SPEC sections 1 and 6), `log_date_format` and PM2's per-instance log file
//! naming (`merge_logs`), with real processes.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An app running `sh -c SCRIPT`.
fn sh_app(name: &str, script: &str, extra: &str) -> String {
    format!(
        "[[apps]]\nname = {}\nscript = \"sh\"\nargs = [\"-c\", {}]\n{extra}\n",
        q(name),
        q(script)
    )
}

/// `runner logs ARGS...` against `d`'s runner: (exit code, stdout, stderr).
fn logs(d: &TestDir, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    let out = runner_cmd(d.path(), &all)
        .stdin(Stdio::null())
        .output()
        .expect("run runner logs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `runner logs ARGS` prints a line equal to `want`; returns its stdout.
fn wait_logs(d: &TestDir, args: &[&str], want: &str) -> String {
    let mut last = String::new();
    let ok = poll_until(T, || {
        let (code, out, _) = logs(d, args);
        last = out;
        code == 0 && last.lines().any(|l| l == want)
    });
    assert!(
        ok,
        "`runner logs {args:?}` never showed {want:?}; last:\n{last}"
    );
    last
}

const HUNDRED: &str =
    "i=0; while [ $i -lt 100 ]; do echo \"line $i\"; echo \"oops $i\" >&2; i=$((i+1)); done; exec sleep 1000";

#[test]
fn logs_lines_prints_the_apps_last_lines_and_out_err_filter() {
    let d = TestDir::new("logscmd-lines");
    let mut toml = sh_app("api", HUNDRED, "");
    toml += &sh_app("other", "echo other line; exec sleep 1000", "");
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    wait_logs(&d, &["api", "--out", "--lines", "1"], "api[0] line 99");
    wait_logs(&d, &["api", "--err", "--lines", "1"], "api[0] oops 99");

    let (code, out, err) = logs(&d, &["api", "--lines", "5", "--out"]);
    assert_eq!(code, 0, "{err}");
    let want: Vec<String> = (95..100).map(|i| format!("api[0] line {i}")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "stderr: {err}");

    let (_, out, _) = logs(&d, &["api", "--lines", "3", "--err"]);
    let want: Vec<String> = (97..100).map(|i| format!("api[0] oops {i}")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);

    // Both streams: 5 lines in all, from both, none from the other app.
    let (_, out, _) = logs(&d, &["api", "--lines", "5"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("api[0] ")), "{out}");
    // stdout and stderr are separate pipes, read in turn: the last 5 read may all come
    // from one of them, but the very last is the last of one stream.
    let last = lines[4];
    assert!(
        last == "api[0] line 99" || last == "api[0] oops 99",
        "{out}"
    );

    // The output still reached runner's own stdout and stderr.
    assert!(p.stdout().lines().any(|l| l == "line 99"));
    assert!(p.stderr().lines().any(|l| l == "oops 99"));

    // All apps by default; an unknown target is an error.
    let out = wait_logs(&d, &[], "other[0] other line");
    assert!(out.contains("api[0] "), "{out}");
    let (code, _, err) = logs(&d, &["nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("nope"), "{err}");
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn logs_of_several_instances_by_name_id_and_namespace() {
    let d = TestDir::new("logscmd-inst");
    let script = "echo \"hi from $NODE_APP_INSTANCE\"; exec sleep 1000";
    let mut toml = sh_app("api", script, "instances = 2\nnamespace = \"back\"");
    toml += &sh_app("web", script, "");
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    // Each instance writes when the scheduler runs it: wait for both lines.
    wait_logs(&d, &["api"], "api[1] hi from 1");
    let out = wait_logs(&d, &["api"], "api[0] hi from 0");
    assert!(out.lines().any(|l| l == "api[1] hi from 1"), "{out}");
    assert!(!out.contains("web"), "{out}");
    // Instance ids are those of `list`: api is 0 and 1, web is 2.
    let (_, out, _) = logs(&d, &["1"]);
    assert_eq!(out, "api[1] hi from 1\n");
    wait_logs(&d, &["2"], "web[0] hi from 0");
    let (_, out, _) = logs(&d, &["back"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    p.signal("TERM");
    p.wait(T);
}

/// Reads the follower's stdout until `n` lines arrived (or the deadline).
fn read_lines(r: &mut impl BufRead, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    let mut line = String::new();
    while got.len() < n {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => got.push(line.trim_end_matches('\n').to_string()),
        }
    }
    got
}

#[test]
fn follow_streams_new_lines_whole_and_in_order() {
    let d = TestDir::new("logscmd-follow");
    // 200-byte numbered lines every 10 ms.
    let script = "i=0; while true; do printf 'n %06d %0190d\\n' $i 0; i=$((i+1)); sleep 0.01; done";
    d.ecosystem(&sh_app("api", script, "log_prefix = true"));
    let mut p = runner_eco(&d, &[]);
    wait_for("a first line", T, || {
        logs(&d, &["api", "--lines", "1"])
            .1
            .starts_with("api[0] n ")
    });
    let mut follower = runner_cmd(d.path(), &["logs", "api", "--lines", "2", "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(follower.stdout.take().unwrap());
    let got = read_lines(&mut r, 150);
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(got.len(), 150, "{got:?}");
    let mut prev: Option<u64> = None;
    for l in &got {
        let rest = l
            .strip_prefix("api[0] n ")
            .unwrap_or_else(|| panic!("{l:?}"));
        let (num, pad) = rest.split_once(' ').unwrap();
        assert_eq!(pad, format!("{:0190}", 0), "a cut or mixed line: {l:?}");
        let n: u64 = num.parse().unwrap();
        if let Some(p) = prev {
            assert_eq!(n, p + 1, "lost or reordered around {l:?}");
        }
        prev = Some(n);
    }
    // runner is still fine with the follower gone.
    let (code, _, _) = logs(&d, &["api", "--lines", "1"]);
    assert_eq!(code, 0);
    p.signal("TERM");
    p.wait(T);
}

/// Runs the `flood` app (N lines as fast as it can once `go` exists, then exits), with
/// or without a follower that reads nothing until the app is done. Returns the app's own
/// time for its writes and what the follower got.
fn flood(tag: &str, lines: usize, stuck_follower: bool) -> (Duration, Option<Vec<u8>>) {
    let d = TestDir::new(tag);
    let gen = app("log_gen.py");
    let script = format!(
        "while [ ! -e go ]; do sleep 0.02; done; s=$(date +%s%N); python3 {} bulk {lines} x; \
         e=$(date +%s%N); echo $((e - s)) > took",
        q(&gen)
    );
    // `keep` keeps runner up after the flood ends, so the follower can read what it has.
    let mut toml = sh_app(
        "flood",
        &script,
        "autorestart = false\nout_file = \"flood.log\"",
    );
    toml += &sh_app("keep", "exec sleep 1000", "");
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    wait_app_status(&d, "flood", 1, "online", T);
    let follower = stuck_follower.then(|| {
        let s = UnixStream::connect(d.path().join("runner.sock")).unwrap();
        (&s).write_all(b"{\"cmd\":\"logs\",\"target\":\"flood\",\"lines\":0,\"follow\":true}\n")
            .unwrap();
        s
    });
    // Let runner register the follower before the flood starts.
    let (code, _, _) = logs(&d, &["flood", "--lines", "0"]);
    assert_eq!(code, 0);
    d.write("go", "");
    let took = d.wait_file_within("took", Duration::from_secs(120));
    let took = Duration::from_nanos(took.trim().parse().unwrap());
    let got = follower.map(|s| {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = Vec::new();
        let _ = (&s).read_to_end(&mut buf);
        buf
    });
    p.signal("TERM");
    assert_eq!(p.code(Duration::from_secs(60)), 0, "{}", p.dump());
    wait_for("every line in flood.log", T, || {
        d.read("flood.log").lines().count() == lines
    });
    (took, got)
}

#[test]
fn a_follower_that_never_reads_does_not_slow_the_app() {
    const N: usize = 300_000;
    let (alone, _) = flood("logscmd-flood0", N, false);
    let (followed, got) = flood("logscmd-flood1", N, true);
    eprintln!("app wrote {N} lines in {alone:?} alone, {followed:?} with a stuck follower");
    // Generous: the machine is shared; a follower that blocked the app would hold it until
    // the test's timeout instead.
    assert!(
        followed < alone * 3 + Duration::from_secs(3),
        "alone {alone:?}, with a stuck follower {followed:?}"
    );
    // What the follower got: whole lines in order, and a notice of what it lost.
    let got = got.unwrap();
    // The read stopped at a timeout, maybe mid-line: only whole lines count.
    let whole = got.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&got[..whole]);
    let mut prev: Option<u64> = None;
    let mut dropped = 0;
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
        if let Some(n) = v.get("dropped") {
            dropped += n.as_u64().unwrap();
            prev = None;
            continue;
        }
        let line = v["line"].as_str().unwrap();
        let n: u64 = line.strip_prefix("x ").unwrap().parse().unwrap();
        if let Some(p) = prev {
            assert_eq!(n, p + 1, "out of order without a drop notice: {line}");
        }
        prev = Some(n);
    }
    assert!(
        dropped > 0,
        "a follower that never read lost nothing? got {} bytes: {:?} ... {:?}",
        got.len(),
        text.lines().next(),
        text.lines().last()
    );
}

#[test]
fn log_date_format_prefixes_lines_in_local_time() {
    let d = TestDir::new("logscmd-date");
    let script = "echo hello; echo oops >&2; echo; exec sleep 1000";
    d.ecosystem(&sh_app(
        "api",
        script,
        "out_file = \"out.log\"\nerror_file = \"err.log\"\n\
         log_date_format = \"[on] YYYY-MM-DD HH:mm:ss.SSS Z\"",
    ));
    // POSIX TZ: "IST-5:30" is UTC+05:30, with no zone file needed.
    let mut cmd = runner_cmd(d.path(), &[d.p("ecosystem.toml")]);
    cmd.env("TZ", "IST-5:30");
    let mut p = Proc::spawn(cmd);
    let out = d.wait_lines("out.log", 2);
    let err = d.wait_lines("err.log", 1);
    // "on 2026-12-05 07:13:20.123 +05:30: hello"
    let rest_of = |l: &str| -> Option<String> {
        let b = l.as_bytes();
        let digits =
            |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
        let ok = l.starts_with("on ")
            && digits(3..7)
            && b.get(7) == Some(&b'-')
            && digits(8..10)
            && b.get(10) == Some(&b'-')
            && digits(11..13)
            && b.get(13) == Some(&b' ')
            && digits(14..16)
            && b.get(16) == Some(&b':')
            && digits(17..19)
            && b.get(19) == Some(&b':')
            && digits(20..22)
            && b.get(22) == Some(&b'.')
            && digits(23..26)
            && l.get(26..34) == Some(" +05:30:");
        ok.then(|| l[34..].to_string())
    };
    assert_eq!(rest_of(&out[0]).as_deref(), Some(" hello"), "{out:?}");
    assert_eq!(rest_of(&err[0]).as_deref(), Some(" oops"), "{err:?}");
    // An empty line gets the timestamp and the colon, no trailing blank.
    assert_eq!(rest_of(&out[1]).as_deref(), Some(""), "{out:?}");
    // The hour is local: 5:30 ahead of UTC.
    let utc_hour: u32 = {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        ((secs + 5 * 3600 + 1800) % 86_400 / 3600) as u32
    };
    let hour: u32 = out[0][14..16].parse().unwrap();
    assert!(
        hour == utc_hour || (hour + 1) % 24 == utc_hour,
        "{hour} vs {utc_hour}: {out:?}"
    );
    // `runner logs` shows the same stamp after its own prefix.
    let shown = wait_logs(
        &d,
        &["api", "--out", "--lines", "2"],
        &format!("api[0] {}", out[0]),
    );
    assert!(shown.contains(&out[0]));
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn per_instance_log_files_follow_pm2_naming() {
    let d = TestDir::new("logscmd-naming");
    let script = "echo \"hi $NODE_APP_INSTANCE\"; exec sleep 1000";
    // ids: a = 0, 1 (instances = 2: one file each), b = 2 (instances unset: merged),
    // c = 3, 4 (merge_logs = true), e = 5 (cluster: split even alone), f = 6, 7 (a
    // path not ending in .log is shared, as in PM2).
    let mut toml = sh_app("a", script, "instances = 2\nout_file = \"a.log\"");
    toml += &sh_app("b", script, "out_file = \"b.log\"");
    toml += &sh_app(
        "c",
        script,
        "instances = 2\nmerge_logs = true\nout_file = \"c.log\"",
    );
    toml += &sh_app(
        "e",
        script,
        "exec_mode = \"cluster\"\nout_file = \"e-9.log\"\nerror_file = \"e.err.log\"",
    );
    toml += &sh_app("f", script, "instances = 2\nout_file = \"f.out\"");
    d.ecosystem(&toml);
    let mut p = runner_eco(&d, &[]);
    assert_eq!(d.wait_lines("a-0.log", 1), ["hi 0"]);
    assert_eq!(d.wait_lines("a-1.log", 1), ["hi 1"]);
    assert_eq!(d.wait_lines("b.log", 1), ["hi 0"]);
    let mut c = d.wait_lines("c.log", 2);
    c.sort();
    assert_eq!(c, ["hi 0", "hi 1"]);
    // `-NUMBER.log` is replaced, as PM2's /-[0-9]+\.log$/ does.
    assert_eq!(d.wait_lines("e-5.log", 1), ["hi 0"]);
    wait_for("e's error file", T, || d.exists("e.err-5.log"));
    let mut f = d.wait_lines("f.out", 2);
    f.sort();
    assert_eq!(f, ["hi 0", "hi 1"]);
    for absent in ["a.log", "c-3.log", "b-2.log", "e-9.log", "f-6.out"] {
        assert!(!d.exists(absent), "{absent} should not exist");
    }
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn single_program_mode_says_it_keeps_no_lines() {
    let d = TestDir::new("logscmd-single");
    let mut p = runner(&d, &["--", "sleep", "1000"]);
    let mut last = (0, String::new(), String::new());
    let ok = poll_until(T, || {
        last = logs(&d, &[]);
        last.2.contains("straight through")
    });
    assert!(ok, "{last:?}");
    assert_eq!(last.0, 1);
    p.signal("TERM");
    p.wait(T);
}

#[test]
fn logs_usage_errors_exit_2() {
    let d = TestDir::new("logscmd-usage");
    for args in [
        &["logs", "--lines"][..],
        &["logs", "--lines", "many"],
        &["logs", "a", "b"],
        &["list", "--follow"],
    ] {
        let out = runner_cmd(d.path(), args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // Without a runner: a clear error, exit 1.
    let (code, _, err) = logs(&d, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no runner is listening"), "{err}");
}
