//! How an output line is decorated: a timestamp (ISO-8601, or `log_date_format`) and/or
//! `name[instance]`.

use std::time::{SystemTime, UNIX_EPOCH};

use super::datefmt::DateFormat;

/// How lines are decorated (`time` and `log_prefix` of the ecosystem file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decor {
    /// `name[instance]`, e.g. `api[0]`; written followed by one space.
    pub prefix: Option<String>,
    /// Start the line with the UTC time it was read, e.g. `2026-11-26T16:41:16.123Z `.
    pub time: bool,
    /// `log_date_format`: start the line with the local time in this format and `: `, as
    /// PM2 does (`2026-11-26 17:41:16: `). Wins over `time`.
    pub date: Option<DateFormat>,
}

impl Decor {
    /// The decoration for instance `instance` of app `name`, as the two keys ask.
    pub fn for_instance(name: &str, instance: u32, log_prefix: bool, time: bool) -> Decor {
        Decor {
            prefix: log_prefix.then(|| format!("{name}[{instance}]")),
            time,
            date: None,
        }
    }

    /// [`Decor::for_instance`] with a `log_date_format`.
    pub fn with_date_format(mut self, format: Option<&str>) -> Decor {
        self.date = format.map(DateFormat::parse);
        self
    }

    /// Whether this decoration adds nothing.
    pub fn is_plain(&self) -> bool {
        self.prefix.is_none() && !self.time && self.date.is_none()
    }

    /// The decoration without `name[instance]`: what `runner logs` shows after its own
    /// prefix.
    pub fn without_prefix(&self) -> Decor {
        Decor {
            prefix: None,
            time: self.time,
            date: self.date.clone(),
        }
    }

    /// Appends `[TIME ][PREFIX ]line\n` to `out` (no trailing blank when `line` is empty), e.g.
    /// `2026-11-26T16:41:16.123Z api[0] listening on :3000\n`. `line` is copied byte for
    /// byte; it should not contain its newline.
    pub fn format(&self, line: &[u8], now: SystemTime, out: &mut Vec<u8>) {
        if let Some(d) = &self.date {
            d.push(now, out);
            out.extend_from_slice(b": ");
        } else if self.time {
            push_iso8601(now, out);
            out.push(b' ');
        }
        if let Some(p) = &self.prefix {
            out.extend_from_slice(p.as_bytes());
            out.push(b' ');
        }
        if line.is_empty() && !self.is_plain() {
            // No trailing blank after the decoration of an empty line.
            out.pop();
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

/// `t` in UTC as ISO-8601 with millisecond precision: `2023-11-14T22:13:20.500Z`.
pub fn iso8601(t: SystemTime) -> String {
    let mut v = Vec::with_capacity(24);
    push_iso8601(t, &mut v);
    // Only ASCII digits and punctuation were written.
    String::from_utf8_lossy(&v).into_owned()
}

/// Appends the `iso8601` text of `t` to `out` without allocating.
fn push_iso8601(t: SystemTime, out: &mut Vec<u8>) {
    // A burst of lines read at once shares its clock reading: format it once.
    if let Some((_, text, n)) = LAST_AT.with(|c| c.get()).filter(|(at, _, _)| *at == t) {
        out.extend_from_slice(&text[..n]);
        return;
    }
    let start = out.len();
    push_iso8601_uncached(t, out);
    let mut text = [0u8; 32];
    let n = (out.len() - start).min(32);
    text[..n].copy_from_slice(&out[start..start + n]);
    LAST_AT.with(|c| c.set(Some((t, text, n))));
}

fn push_iso8601_uncached(t: SystemTime, out: &mut Vec<u8>) {
    // Milliseconds since the epoch, floored, also before 1970.
    let ms: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            let ceil = if d.as_nanos() % 1_000_000 != 0 { 1 } else { 0 };
            -whole.saturating_add(ceil)
        }
    };
    // A burst of lines shares its millisecond: format it once.
    if let Some(cached) = LAST.with(|c| c.get()).filter(|(at, _, _)| *at == ms) {
        out.extend_from_slice(&cached.1[..cached.2]);
        return;
    }
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, sod % 3600 / 60, sod % 60);
    // Years outside 0..=9999 are printed as they come (a sign and more digits); they
    // don't happen with a sane clock.
    let mut buf = [0u8; 32];
    let mut w = Cursor(&mut buf, 0);
    if (0..=9999).contains(&y) {
        w.num(y, 4);
    } else {
        for b in y.to_string().bytes() {
            w.byte(b);
        }
    }
    w.byte(b'-');
    w.num(m, 2);
    w.byte(b'-');
    w.num(d, 2);
    w.byte(b'T');
    w.num(hh, 2);
    w.byte(b':');
    w.num(mm, 2);
    w.byte(b':');
    w.num(ss, 2);
    w.byte(b'.');
    w.num(milli, 3);
    w.byte(b'Z');
    let n = w.1;
    out.extend_from_slice(&buf[..n]);
    LAST.with(|c| c.set(Some((ms, buf, n))));
}

thread_local! {
    /// The last clock reading formatted, its text and length.
    static LAST_AT: std::cell::Cell<Option<(SystemTime, [u8; 32], usize)>> = const { std::cell::Cell::new(None) };
    /// The last millisecond formatted, its text and length.
    static LAST: std::cell::Cell<Option<(i64, [u8; 32], usize)>> = const { std::cell::Cell::new(None) };
}

/// A tiny fixed-size writer for the timestamp.
struct Cursor<'a>(&'a mut [u8; 32], usize);

impl Cursor<'_> {
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.0.get_mut(self.1) {
            *slot = b;
            self.1 += 1;
        }
    }
    /// `v` (non-negative) zero-padded to `width` digits.
    fn num(&mut self, v: i64, width: u32) {
        let mut div = 10i64.pow(width - 1);
        let v = v.rem_euclid(div * 10);
        while div > 0 {
            self.byte(b'0' + (v / div % 10) as u8);
            div /= 10;
        }
    }
}

/// (year, month 1-12, day 1-31) of the day `z` days after 1970-01-01 in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
pub(super) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: i64) -> SystemTime {
        if ms >= 0 {
            UNIX_EPOCH + Duration::from_millis(ms as u64)
        } else {
            UNIX_EPOCH - Duration::from_millis((-ms) as u64)
        }
    }

    #[test]
    fn iso8601_of_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(at(1_700_000_000_500)), "2023-11-14T22:13:20.500Z");
        // A leap day, the last millisecond of a leap year, and the year-2000 rules.
        assert_eq!(iso8601(at(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(at(1_735_689_599_999)), "2024-12-31T23:59:59.999Z");
        assert_eq!(iso8601(at(4_107_542_400_000)), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn iso8601_floors_sub_millisecond_and_handles_before_epoch() {
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_micros(1_999)),
            "1970-01-01T00:00:00.001Z"
        );
        assert_eq!(iso8601(at(-1)), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            iso8601(UNIX_EPOCH - Duration::from_micros(1)),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn decor_plain_passes_the_line_with_a_newline() {
        let mut out = Vec::new();
        Decor::default().format(b"\xffraw\r", UNIX_EPOCH, &mut out);
        assert_eq!(out, b"\xffraw\r\n");
    }

    #[test]
    fn decor_prefix_only() {
        let mut out = Vec::new();
        Decor::for_instance("api", 3, true, false).format(b"hi", UNIX_EPOCH, &mut out);
        assert_eq!(out, b"api[3] hi\n");
    }

    #[test]
    fn decor_time_only() {
        let mut out = Vec::new();
        let d = Decor {
            prefix: None,
            time: true,
            date: None,
        };
        d.format(b"hi", at(1_700_000_000_500), &mut out);
        assert_eq!(out, b"2023-11-14T22:13:20.500Z hi\n");
    }

    #[test]
    fn decor_time_then_prefix_and_appends() {
        let mut out = b"before\n".to_vec();
        let d = Decor::for_instance("api", 0, true, true);
        d.format(b"", at(1_700_000_000_500), &mut out);
        assert_eq!(out, b"before\n2023-11-14T22:13:20.500Z api[0]\n");
        let mut out = Vec::new();
        d.format(b"x", at(0), &mut out);
        assert_eq!(out, b"1970-01-01T00:00:00.000Z api[0] x\n");
    }
}
