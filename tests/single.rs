//! Single-program mode, `runner -- PROGRAM ARGS` (SPEC sections 1 and 4): tini's rules.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn single(dir: &TestDir, program: &[&str]) -> Proc {
    let mut args = vec!["--"];
    args.extend_from_slice(program);
    runner(dir, &args)
}

#[test]
fn exit_code_zero_passes_through() {
    let d = TestDir::new("exit0");
    let mut p = single(&d, &["sh", "-c", "exit 0"]);
    assert_eq!(p.code(T), 0, "{}", p.dump());
}

#[test]
fn exit_code_three_passes_through() {
    let d = TestDir::new("exit3");
    let mut p = single(&d, &["sh", "-c", "exit 3"]);
    assert_eq!(p.code(T), 3, "{}", p.dump());
}

#[test]
fn killed_by_sigkill_exits_137() {
    let d = TestDir::new("kill9");
    let mut p = single(&d, &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(p.code(T), 137, "{}", p.dump());
}

#[test]
fn killed_by_sigterm_exits_143() {
    let d = TestDir::new("kill15");
    let mut p = single(&d, &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(p.code(T), 143, "{}", p.dump());
}

#[test]
fn missing_program_exits_127_with_message() {
    let d = TestDir::new("missing");
    let prog = d.p("no-such-program");
    let mut p = single(&d, &[&prog]);
    assert_eq!(p.code(T), 127, "{}", p.dump());
    let err = p.stderr();
    assert!(
        err.contains("no-such-program"),
        "stderr should name the program: {err}"
    );
}

#[test]
fn program_not_in_path_exits_127() {
    let d = TestDir::new("notinpath");
    let mut p = single(&d, &["runner-test-no-such-command-xyz"]);
    assert_eq!(p.code(T), 127, "{}", p.dump());
    assert!(
        p.stderr().contains("runner-test-no-such-command-xyz"),
        "{}",
        p.dump()
    );
}

#[test]
fn non_executable_program_exits_126_with_message() {
    let d = TestDir::new("noexec");
    let f = d.write("plain.txt", "#!/bin/sh\nexit 0\n"); // mode 0644
    let f = f.to_string_lossy().into_owned();
    let mut p = single(&d, &[&f]);
    assert_eq!(p.code(T), 126, "{}", p.dump());
    assert!(
        p.stderr().contains("plain.txt"),
        "stderr should name the program: {}",
        p.dump()
    );
}

/// runner -- sigrec.py, recording into `signals` and exiting 0 on SIGTERM, once ready.
fn recorder(d: &TestDir) -> Proc {
    let out = d.p("signals");
    let p = single(d, &["python3", &app("sigrec.py"), &out, "SIGTERM", "0"]);
    d.wait_file("signals.ready");
    p
}

/// Sends `sig` to runner and waits until the program has recorded `name`; returns what it
/// recorded so far (SIGCONT left out: runner continues a stopped program).
fn forward_and_see(d: &TestDir, p: &Proc, sig: &str, name: &str) -> Vec<String> {
    p.signal(sig);
    wait_for(&format!("{name} to reach the program"), DEADLINE, || {
        d.lines("signals").iter().any(|l| l == name)
    });
    d.lines("signals")
        .into_iter()
        .filter(|l| l != "SIGCONT")
        .collect()
}

#[test]
fn every_catchable_signal_is_forwarded_to_the_program() {
    let d = TestDir::new("forward");
    let mut p = recorder(&d);
    // One at a time, each confirmed before the next, so nothing can coalesce.
    let sigs = [
        ("INT", "SIGINT"),
        ("HUP", "SIGHUP"),
        ("USR1", "SIGUSR1"),
        ("USR2", "SIGUSR2"),
        ("WINCH", "SIGWINCH"),
        ("QUIT", "SIGQUIT"),
        ("ALRM", "SIGALRM"),
        ("40", "40"),
        ("TERM", "SIGTERM"),
    ];
    for (i, (sig, name)) in sigs.iter().enumerate() {
        let got = forward_and_see(&d, &p, sig, name);
        assert_eq!(got.len(), i + 1, "each signal exactly once, got {got:?}");
    }
    // The program exits 0 on SIGTERM, and runner with it.
    assert_eq!(p.code(T), 0, "{}", p.dump());
}

#[test]
fn clients_are_served_while_runner_waits_for_signals_and_only_a_sent_sigio_is_forwarded() {
    // Between events runner waits in sigtimedwait, and a client's connection wakes it as
    // a SIGIO the kernel raises for the control socket: that one is runner's own, while
    // a SIGIO some process sends belongs to the program.
    let d = TestDir::new("sigwait");
    let mut p = recorder(&d);
    for _ in 0..3 {
        let list = runner_cmd(d.path(), &["list"]).output().unwrap();
        let text = String::from_utf8_lossy(&list.stdout).into_owned();
        assert!(
            list.status.success() && text.contains("python3"),
            "{text}\n{}",
            p.dump()
        );
    }
    assert_eq!(forward_and_see(&d, &p, "USR1", "SIGUSR1"), ["SIGUSR1"]);
    let got = forward_and_see(&d, &p, "IO", "SIGIO");
    assert_eq!(got, ["SIGUSR1", "SIGIO"], "{}", p.dump());
    p.signal("TERM");
    assert_eq!(p.code(T), 0, "{}", p.dump());
}

/// Signals 32 and 33 are glibc's internal SIGCANCEL and SIGSETXID. glibc's posix_spawn
/// (used by std::process::Command, so by this test harness) starts every child with them
/// ignored, so runner inherits them ignored here. They are checked on their own in
/// `program_gets_default_dispositions_for_signals_32_and_33`.
const GLIBC_INTERNAL: u64 = (1 << 31) | (1 << 32);

fn sig_mask(text: &str, key: &str) -> u64 {
    u64::from_str_radix(&sig_line(text, key), 16).unwrap()
}

fn sig_line(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .trim()
        .to_string()
}

#[test]
fn program_starts_with_empty_mask_and_default_dispositions() {
    let d = TestDir::new("mask");
    let mut p = single(&d, &["cat", "/proc/self/status"]);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let out = p.stdout();
    assert_eq!(sig_mask(&out, "SigBlk"), 0, "{out}");
    assert_eq!(sig_mask(&out, "SigIgn") & !GLIBC_INTERNAL, 0, "{out}");
}

#[test]
fn program_gets_default_dispositions_even_when_runner_inherited_sigint_ignored() {
    let d = TestDir::new("ignint");
    let script = format!("trap '' INT; exec '{RUNNER}' -- cat /proc/self/status");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).current_dir(d.path());
    let mut p = Proc::spawn(cmd);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let out = p.stdout();
    assert_eq!(sig_mask(&out, "SigIgn") & !GLIBC_INTERNAL, 0, "{out}");
    assert_eq!(sig_mask(&out, "SigBlk"), 0, "{out}");
}

#[test]
fn closed_stdin_and_stdout_are_dev_null_for_runner_and_the_program() {
    // Started with fds 0 and 1 closed, runner's own first files (its control socket, its
    // event loop) would take those numbers and the program would inherit them as its stdin
    // and stdout: runner reopens them on /dev/null first, as Rust's runtime would.
    let d = TestDir::new("closedfds");
    let out = d.p("fds");
    let script = format!(
        "exec 0<&- 1>&-; exec '{RUNNER}' --socket '{sock}' -- sh -c \
         'i=$(readlink /proc/$$/fd/0); o=$(readlink /proc/$$/fd/1); echo $i $o > \"{out}\"'",
        sock = d.p("runner.sock"),
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).current_dir(d.path());
    let mut p = Proc::spawn(cmd);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let fds = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(fds, "/dev/null /dev/null\n", "{}", p.dump());
}

#[test]
fn program_gets_empty_mask_even_when_runner_inherited_blocked_and_ignored_signals() {
    let d = TestDir::new("blocked");
    // python3 blocks USR1 and HUP, ignores INT and QUIT, then execs runner.
    let py = format!(
        "import os, signal\n\
         signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1, signal.SIGHUP}})\n\
         signal.signal(signal.SIGINT, signal.SIG_IGN)\n\
         signal.signal(signal.SIGQUIT, signal.SIG_IGN)\n\
         os.execv('{RUNNER}', ['runner', '--', 'cat', '/proc/self/status'])\n"
    );
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(py).current_dir(d.path());
    let mut p = Proc::spawn(cmd);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let out = p.stdout();
    assert_eq!(sig_mask(&out, "SigBlk"), 0, "{out}");
    assert_eq!(sig_mask(&out, "SigIgn") & !GLIBC_INTERNAL, 0, "{out}");
}

#[test]
fn program_gets_default_dispositions_for_signals_32_and_33() {
    // Runner is started by this harness through glibc's posix_spawn, which leaves signals
    // 32 and 33 ignored in runner (see GLIBC_INTERNAL); the child must still get defaults.
    let d = TestDir::new("sig3233");
    let mut p = single(&d, &["cat", "/proc/self/status"]);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let out = p.stdout();
    assert_eq!(sig_line(&out, "SigIgn"), "0000000000000000", "{out}");
}

fn fd_list(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out.split_whitespace().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn program_gets_only_fds_0_1_2() {
    let d = TestDir::new("fds");
    let mut p = single(&d, &["sh", "-c", "ls /proc/$$/fd"]);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    assert_eq!(fd_list(&p.stdout()), ["0", "1", "2"], "{}", p.dump());
}

#[test]
fn program_does_not_inherit_fds_runner_inherited() {
    let d = TestDir::new("fds7");
    let script = format!(
        "exec 7</etc/hostname; exec 9>/dev/null; exec '{RUNNER}' -- sh -c 'ls /proc/$$/fd'"
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).current_dir(d.path());
    let mut p = Proc::spawn(cmd);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    assert_eq!(fd_list(&p.stdout()), ["0", "1", "2"], "{}", p.dump());
}

#[test]
fn program_runs_in_its_own_process_group() {
    let d = TestDir::new("pgid");
    let mut p = single(
        &d,
        &[
            "sh",
            "-c",
            "read pid comm state ppid pgrp rest < /proc/$$/stat; echo $pid $ppid $pgrp",
        ],
    );
    let runner_pgid = stat(p.pid()).map(|s| s.pgid);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let out = p.stdout();
    let f: Vec<i32> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(f.len(), 3, "{out}");
    assert_eq!(f[1], p.pid(), "the program is runner's child");
    assert_eq!(f[2], f[0], "pgid == pid");
    if let Some(rp) = runner_pgid {
        assert_ne!(f[2], rp, "not runner's process group");
    }
}

#[test]
fn arguments_that_look_like_options_pass_through_untouched() {
    let d = TestDir::new("optargs");
    let mut p = single(
        &d,
        &[
            "sh",
            "-c",
            "printf '%s|' \"$0\" \"$@\"",
            "--help",
            "-V",
            "--",
            "--only",
            "x",
        ],
    );
    assert_eq!(p.code(T), 0, "{}", p.dump());
    assert_eq!(p.stdout(), "--help|-V|--|--only|x|", "{}", p.dump());
}

#[test]
fn arguments_that_are_not_utf8_reach_the_program_byte_for_byte() {
    // tini passes argv on as bytes; a file name in Latin-1 is a legitimate argument.
    use std::os::unix::ffi::OsStrExt;
    let d = TestDir::new("bytes");
    let out = d.p("args");
    let mut cmd = Command::new(RUNNER);
    cmd.arg("--socket")
        .arg(d.p("runner.sock"))
        .arg("--")
        .arg("sh")
        .arg("-c")
        .arg("printf '%s|' \"$@\" > \"$0\"")
        .arg(&out)
        .arg(std::ffi::OsStr::from_bytes(b"caf\xe9"))
        .arg(std::ffi::OsStr::from_bytes(b"\xff\xfe x"))
        .current_dir(d.path());
    let mut p = Proc::spawn(cmd);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    let got = std::fs::read(&out).unwrap_or_default();
    assert_eq!(got, b"caf\xe9|\xff\xfe x|", "{}", p.dump());
}

#[test]
fn program_output_goes_to_runner_stdout_and_stderr() {
    let d = TestDir::new("stdio");
    let mut p = single(&d, &["sh", "-c", "echo to-out; echo to-err >&2"]);
    assert_eq!(p.code(T), 0, "{}", p.dump());
    assert!(p.stdout().contains("to-out"), "{}", p.dump());
    assert!(p.stderr().contains("to-err"), "{}", p.dump());
}

#[test]
fn runner_exits_when_program_exits_while_a_grandchild_lingers_in_background() {
    // tini's rule: runner's end is the program's end. A background grandchild that
    // outlives the program must not keep runner alive forever: the exit code is still
    // the program's.
    let d = TestDir::new("linger");
    let mut p = single(&d, &["sh", "-c", "sleep 2 & exit 6"]);
    assert_eq!(p.code(T), 6, "{}", p.dump());
}

/// Like tini, runner adds nothing to the program's output when all goes well: the
/// program's start and end are debug news in this mode (RUNNER_LOG=debug shows them).
#[test]
fn a_program_that_ends_normally_gets_no_line_from_runner() {
    let d = TestDir::new("quiet");
    for (script, code) in [("echo out; echo err >&2; exit 0", 0), ("exit 5", 5)] {
        let mut p = single(&d, &["sh", "-c", script]);
        assert_eq!(p.code(T), code, "{}", p.dump());
        let runner_lines: Vec<String> = p
            .stderr()
            .lines()
            .filter(|l| l.starts_with("runner:"))
            .map(String::from)
            .collect();
        assert!(runner_lines.is_empty(), "{script}: {runner_lines:?}");
    }
    let mut cmd = runner_cmd(d.path(), &["--", "sh", "-c", "exit 0"]);
    cmd.env("RUNNER_LOG", "debug");
    let mut p = Proc::spawn(cmd);
    assert_eq!(p.code(T), 0);
    assert!(p.stderr().contains("started pid"), "{}", p.dump());
}
