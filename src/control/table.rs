//! The `runner list` table: one row per instance, fitting 80 columns.

use super::protocol::InstanceInfo;
pub use crate::core::human_bytes;

/// The width the table fits in.
pub const WIDTH: usize = 80;

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Whether `list` should colour its output: stdout is a terminal and `NO_COLOR` is unset
/// or empty (<https://no-color.org>).
pub fn use_color() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    let tty = unsafe { libc::isatty(1) } == 1;
    tty && !matches!(std::env::var_os("NO_COLOR"), Some(v) if !v.is_empty())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// Renders the table. Long names and namespaces are cut with "…" so that every line fits
/// in [`WIDTH`] columns; ANSI colours only when `color` is true. Headers are the words
/// SPEC section 6 uses, so scripts and people read the same table. Instances with an
/// error get a line under the table.
pub fn render(instances: &[InstanceInfo], color: bool) -> String {
    let headers = [
        "id",
        "name",
        "namespace",
        "mode",
        "pid",
        "status",
        "restarts",
        "uptime",
        "cpu",
        "memory",
    ];
    let align = [
        Align::Right,
        Align::Left,
        Align::Left,
        Align::Left,
        Align::Right,
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
    ];
    let rows: Vec<[String; 10]> = instances.iter().map(cells).collect();

    let mut widths = [0usize; 10];
    for (i, h) in headers.iter().enumerate() {
        widths[i] = cols(h);
    }
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(cols(c));
        }
    }
    let gap = fit(&mut widths);
    let mut headers = headers.map(String::from);
    if widths[2] < cols("namespace") {
        headers[2] = "ns".into();
    }

    let mut out = String::new();
    let header: Vec<String> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| pad(&truncate(h, widths[i]), widths[i], align[i]))
        .collect();
    push_line(&mut out, &header, gap, color.then_some("\x1b[1m"));
    if rows.is_empty() {
        out.push_str("no apps\n");
        return out;
    }
    for (row, info) in rows.iter().zip(instances) {
        let mut line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| pad(&truncate(c, widths[i]), widths[i], align[i]))
            .collect();
        if color {
            if let Some(code) = status_color(&info.status) {
                line[5] = format!("{code}{}{RESET}", line[5]);
            }
        }
        push_line(&mut out, &line, gap, None);
    }
    for info in instances {
        if let Some(err) = info.error.as_deref().filter(|e| !e.is_empty()) {
            let text = format!("{} {}: {}", info.id, info.name, one_line(err));
            out.push_str(&truncate(&text, WIDTH));
            out.push('\n');
        }
    }
    out
}

fn push_line(out: &mut String, cells: &[String], gap: usize, style: Option<&str>) {
    let mut line = cells.join(&" ".repeat(gap));
    let trimmed = line.trim_end().len();
    line.truncate(trimmed);
    match style {
        Some(code) => {
            out.push_str(code);
            out.push_str(&line);
            out.push_str(RESET);
        }
        None => out.push_str(&line),
    }
    out.push('\n');
}

/// Shrinks the namespace and name columns, and then the gaps, until the table fits;
/// returns the gap between columns. Each stage starts from the natural widths: first two
/// spaces between columns with readable names (namespace down to its header's width, name
/// down to 12), then one space, then names down to a few characters.
fn fit(widths: &mut [usize; 10]) -> usize {
    const NAME: usize = 1;
    const NAMESPACE: usize = 2;
    let natural = *widths;
    let total = |w: &[usize; 10], gap: usize| w.iter().sum::<usize>() + gap * (w.len() - 1);
    for (gap, ns_floor, name_floor) in [(2, 9, 12), (1, 9, 12), (1, 4, 6), (1, 2, 4)] {
        *widths = natural;
        for (col, floor) in [(NAMESPACE, ns_floor), (NAME, name_floor)] {
            let over = total(widths, gap).saturating_sub(WIDTH);
            let can = widths[col].saturating_sub(floor);
            widths[col] -= over.min(can);
        }
        if total(widths, gap) <= WIDTH {
            return gap;
        }
    }
    1
}

fn cells(i: &InstanceInfo) -> [String; 10] {
    let running = i.pid.is_some();
    let dash = || "-".to_string();
    [
        i.id.to_string(),
        one_line(&i.name),
        one_line(&i.namespace),
        one_line(&i.mode),
        i.pid.map_or_else(dash, |p| p.to_string()),
        one_line(&i.status),
        i.restarts.to_string(),
        if running {
            human_duration(i.uptime_ms)
        } else {
            dash()
        },
        if running { percent(i.cpu) } else { dash() },
        if running {
            human_bytes(i.memory)
        } else {
            dash()
        },
    ]
}

fn status_color(status: &str) -> Option<&'static str> {
    match status {
        "online" => Some(GREEN),
        "launching" | "waiting restart" | "stopping" => Some(YELLOW),
        "errored" => Some(RED),
        "stopped" => Some(DIM),
        _ => None,
    }
}

/// `45s`, `12m`, `3h`, `2d`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `0.3%`; a value that is not a number shows as `-`.
pub fn percent(cpu: f64) -> String {
    if cpu.is_finite() {
        format!("{:.1}%", cpu.max(0.0))
    } else {
        "-".into()
    }
}

/// Terminal columns of `s`, counting each char as one (names are not expected to hold
/// double-width characters).
fn cols(s: &str) -> usize {
    s.chars().count()
}

/// Cuts `s` to `width` columns, ending with "…" when something was cut.
fn truncate(s: &str, width: usize) -> String {
    if cols(s) <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut t: String = s.chars().take(width - 1).collect();
    t.push('…');
    t
}

fn pad(s: &str, width: usize, align: Align) -> String {
    let fill = " ".repeat(width.saturating_sub(cols(s)));
    match align {
        Align::Left => format!("{s}{fill}"),
        Align::Right => format!("{fill}{s}"),
    }
}

/// Replaces control characters, so that a name cannot break the table or the terminal.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u32, name: &str, status: &str) -> InstanceInfo {
        InstanceInfo {
            id,
            name: name.into(),
            namespace: "default".into(),
            mode: "cluster".into(),
            pid: Some(4_194_303),
            status: status.into(),
            restarts: 12,
            uptime_ms: 3 * 3600 * 1000 + 5,
            cpu: 0.25,
            memory: 13_002_342,
            instance: id,
            status_text: None,
            error: None,
        }
    }

    fn widths(s: &str) -> Vec<usize> {
        s.lines().map(|l| l.chars().count()).collect()
    }

    #[test]
    fn a_plain_table_has_no_escape_codes_and_human_units() {
        let t = render(&[info(0, "api", "online")], false);
        assert!(!t.contains('\x1b'), "{t:?}");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("id  name"), "{t}");
        assert!(
            lines[0].contains("restarts") && lines[0].contains("memory"),
            "{t}"
        );
        for cell in [
            "api", "default", "cluster", "4194303", "online", "12", "3h", "0.2%", "12.4M",
        ] {
            assert!(lines[1].contains(cell), "{cell} missing in {t}");
        }
    }

    #[test]
    fn long_names_are_cut_to_fit_80_columns() {
        let long = "a-very-long-application-name-that-goes-on-and-on-and-on-forever";
        let mut i = info(1234, long, "waiting restart");
        i.namespace = "a-namespace-that-is-also-much-too-long".into();
        i.restarts = 4_000_000_000;
        i.memory = u64::MAX;
        i.cpu = 1234.5;
        let t = render(&[i.clone(), info(2, "web", "online")], false);
        for w in widths(&t) {
            assert!(w <= WIDTH, "line of {w} columns:\n{t}");
        }
        assert!(t.contains('…'), "{t}");
        assert!(t.contains("waiting restart"), "{t}");
        // The colour codes do not count as columns.
        let colored = render(&[i], true);
        let plain: String = strip_ansi(&colored);
        for w in widths(&plain) {
            assert!(w <= WIDTH, "line of {w} columns:\n{plain}");
        }
    }

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut esc = false;
        for c in s.chars() {
            match (esc, c) {
                (false, '\x1b') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    }

    #[test]
    fn colour_marks_the_status_only_when_asked() {
        let t = render(
            &[
                info(0, "a", "online"),
                info(1, "b", "errored"),
                info(2, "c", "launching"),
            ],
            true,
        );
        assert!(t.contains("\x1b[32monline"), "{t:?}");
        assert!(t.contains("\x1b[31merrored"), "{t:?}");
        assert!(t.contains("\x1b[33mlaunching"), "{t:?}");
    }

    #[test]
    fn an_empty_list_says_no_apps() {
        let t = render(&[], false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("id"));
        assert_eq!(lines[1], "no apps");
    }

    #[test]
    fn a_stopped_instance_shows_dashes_and_its_error() {
        let mut i = info(3, "worker", "errored");
        i.pid = None;
        i.error = Some("exited with code 1\nand more".into());
        let t = render(&[i], false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].contains(" - "), "{t}");
        assert_eq!(lines[2], "3 worker: exited with code 1?and more");
    }

    #[test]
    fn units_are_human() {
        assert_eq!(human_duration(45_000), "45s");
        assert_eq!(human_duration(12 * 60_000 + 59_999), "12m");
        assert_eq!(human_duration(3 * 3_600_000), "3h");
        assert_eq!(human_duration(2 * 86_400_000 + 1), "2d");
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1024), "1.0K");
        assert_eq!(human_bytes(13_002_342), "12.4M");
        assert_eq!(human_bytes(512 * 1024 * 1024), "512M");
        assert_eq!(human_bytes(1024 * 1024 * 1024 - 1), "1.0G");
        assert_eq!(human_bytes(u64::MAX), "16.0E");
        assert_eq!(percent(0.3), "0.3%");
        assert_eq!(percent(f64::NAN), "-");
    }
}
