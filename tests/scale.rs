//! Many instances (issue 21). In a file of its own: cargo runs the tests of one file in
//! parallel, and 2,000 processes starting and stopping at once would starve the timing of
//! the other stop tests.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Issue 21: stopping N instances used to cost N x (processes on the host) — 14.6 s for
/// 1,000 — so `docker stop` killed runner in the middle of its own graceful stop. This
/// guards the behaviour (every instance gets its kill_signal once, runner exits 0 within
/// a generous bound); the growth itself is measured by bench/scale.sh.
#[test]
fn a_thousand_instances_each_get_their_kill_signal_and_runner_exits() {
    const N: usize = 1000;
    let d = TestDir::new("stop1000");
    // The trap runs as soon as the signal arrives because the shell waits in `wait`.
    let script = d.write_exec(
        "inst.sh",
        &format!(
            "#!/bin/sh\nout={}\ntrap 'echo TERM > \"$out/got.$NODE_APP_INSTANCE\"; exit 0' TERM\n\
             sleep 1000 &\necho $$ > \"$out/up.$NODE_APP_INSTANCE\"\nwait $!\n",
            d.p("marks")
        ),
    );
    std::fs::create_dir_all(d.p("marks")).unwrap();
    d.ecosystem(&format!(
        "[[apps]]\nname = \"many\"\nscript = {}\ninterpreter = \"none\"\ninstances = {N}\n\
         kill_signal = \"SIGTERM\"\nkill_timeout = 60000\n",
        q(&script.to_string_lossy())
    ));
    let marks = |prefix: &str| {
        std::fs::read_dir(d.p("marks"))
            .map(|it| {
                it.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .count()
            })
            .unwrap_or(0)
    };
    let mut p = runner_eco(&d, &[]);
    wait_for("every instance up", Duration::from_secs(180), || {
        marks("up.") == N
    });
    let started = Instant::now();
    p.signal("TERM");
    assert_eq!(p.code(Duration::from_secs(30)), 0, "{}", p.dump());
    let took = started.elapsed();
    let got = marks("got.");
    assert_eq!(
        got, N,
        "{got} of {N} instances got SIGTERM (stop took {took:?})"
    );
    for i in 0..N {
        assert_eq!(
            d.lines(&format!("marks/got.{i}")),
            vec!["TERM"],
            "instance {i}"
        );
    }
}
