//! Local time for `cron_restart`: civil dates, and the zone rules that map instants to them.
//!
//! A zone is read from a TZif file (RFC 8536, versions 1 to 4: the transition table, then
//! the POSIX `TZ` rule of its footer for instants after the table) or from a POSIX `TZ`
//! string such as `EST5EDT,M3.2.0,M11.1.0`. This replaces a general date-time crate that
//! cost 280 KB of code, all of it mapped into memory by runner in every mode (issue 18);
//! cron needs only offsets, civil fields and the gaps and folds of DST changes.
//!
//! Instants are whole seconds since the Unix epoch. Leap-second records (`right/` zones)
//! are skipped: civil time here is POSIX time, as in cron and libc.

use std::path::Path;

/// A civil (wall-clock) time, to the second, without a zone. Fields compare in order, so
/// `Ord` is chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Civil {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl Civil {
    /// A civil time from its fields; the caller keeps them in range.
    pub fn new(year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Civil {
        Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    /// The civil time `secs` seconds after 1970-01-01 00:00:00 (on the same clock face).
    pub fn from_seconds(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rest = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil::new(
            year,
            month,
            day,
            (rest / 3600) as u8,
            (rest / 60 % 60) as u8,
            (rest % 60) as u8,
        )
    }

    /// Seconds since 1970-01-01 00:00:00 on the same clock face (no zone applied).
    pub fn seconds(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// Day of the week, 0 for Sunday to 6 for Saturday.
    pub fn weekday(&self) -> u8 {
        (days_from_civil(self.year, self.month, self.day) + 4).rem_euclid(7) as u8
    }

    /// Midnight of the next day.
    pub fn next_day(&self) -> Civil {
        Civil::from_seconds((days_from_civil(self.year, self.month, self.day) + 1) * 86_400)
    }

    /// Midnight of the first day of the next month.
    pub fn next_month(&self) -> Civil {
        if self.month == 12 {
            Civil::new(self.year + 1, 1, 1, 0, 0, 0)
        } else {
            Civil::new(self.year, self.month + 1, 1, 0, 0, 0)
        }
    }
}

fn is_leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Number of days in a month of a year.
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the well-known era/day-of-era method).
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month, day)
}

/// The current time in whole seconds since the Unix epoch (0 if the clock is before it).
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The instants a civil time names in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// It happens once.
    Unique(i64),
    /// A jump forward skips it: `before` reads it with the offset before the jump (so it
    /// falls after the jump), `after` with the offset after it.
    Gap { before: i64, after: i64 },
    /// A jump back repeats it: `earlier` is its first pass, `later` its second.
    Fold { earlier: i64, later: i64 },
}

impl Local {
    /// The first instant it names; in a gap, the instant as far after the jump as the
    /// civil time is after its start (02:30 in a 02:00 → 03:00 jump is 03:30).
    pub fn earlier(self) -> i64 {
        match self {
            Local::Unique(t) => t,
            Local::Gap { before, .. } => before,
            Local::Fold { earlier, .. } => earlier,
        }
    }

    /// The last instant it names; the same as `earlier` outside a fold.
    pub fn later(self) -> i64 {
        match self {
            Local::Fold { later, .. } => later,
            other => other.earlier(),
        }
    }
}

/// A time zone: a name for people, and the rules giving the UTC offset of each instant.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeZone {
    name: String,
    rules: Rules,
}

#[derive(Debug, Clone, PartialEq)]
enum Rules {
    Posix(Posix),
    Table {
        /// Transition instants, ascending, and the index into `offsets` each starts.
        at: Vec<i64>,
        kind: Vec<u8>,
        offsets: Vec<i32>,
        /// The footer's rule for instants after the last transition.
        footer: Option<Posix>,
    },
}

impl TimeZone {
    /// Coordinated Universal Time.
    pub fn utc() -> TimeZone {
        TimeZone {
            name: "UTC".to_string(),
            rules: Rules::Posix(Posix { std: 0, dst: None }),
        }
    }

    /// A zone from a POSIX `TZ` rule such as `CET-1CEST,M3.5.0,M10.5.0/3` or `IST-5:30`.
    pub fn posix(text: &str) -> Result<TimeZone, String> {
        Ok(TimeZone {
            name: "local".to_string(),
            rules: Rules::Posix(Posix::parse(text)?),
        })
    }

    /// A zone from the bytes of a TZif file; `name` is what `name()` returns.
    pub fn tzif(name: &str, bytes: &[u8]) -> Result<TimeZone, String> {
        Ok(TimeZone {
            name: name.to_string(),
            rules: parse_tzif(bytes)?,
        })
    }

    /// The zone's IANA name (`Europe/Paris`), or `local` when it has none.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Seconds east of UTC at an instant.
    pub fn offset_at(&self, t: i64) -> i32 {
        match &self.rules {
            Rules::Posix(p) => p.offset_at(t),
            Rules::Table {
                at,
                kind,
                offsets,
                footer,
            } => {
                let n = at.partition_point(|&x| x <= t);
                match (n, footer) {
                    (0, Some(f)) if at.is_empty() => f.offset_at(t),
                    // Before the first transition: the first local time type (RFC 8536 3.2).
                    (0, _) => offsets[0],
                    (n, Some(f)) if n == at.len() => f.offset_at(t),
                    (n, _) => offsets[usize::from(kind[n - 1])],
                }
            }
        }
    }

    /// The civil time at an instant.
    pub fn to_civil(&self, t: i64) -> Civil {
        Civil::from_seconds(t + i64::from(self.offset_at(t)))
    }

    /// The instant or instants a civil time names.
    pub fn resolve(&self, c: Civil) -> Local {
        let wall = c.seconds();
        // The offsets a day either side are the two in play: zones change at most once
        // around any civil time (the few historical double changes within a day read as a gap).
        let before = self.offset_at(wall - 86_400);
        let after = self.offset_at(wall + 86_400);
        let fits = |o: i32| self.offset_at(wall - i64::from(o)) == o;
        let at = |o: i32| wall - i64::from(o);
        match (fits(before), before != after && fits(after)) {
            (true, true) => Local::Fold {
                earlier: at(before).min(at(after)),
                later: at(before).max(at(after)),
            },
            (true, false) => Local::Unique(at(before)),
            (false, true) => Local::Unique(at(after)),
            (false, false) => Local::Gap {
                before: at(before),
                after: at(after),
            },
        }
    }

    /// The local zone: `TZ` (`:`, a path, a zone name under `$TZDIR` or
    /// /usr/share/zoneinfo, or a POSIX rule; empty means UTC), else `/etc/localtime`.
    pub fn local() -> Result<TimeZone, String> {
        match std::env::var_os("TZ") {
            None => {
                let path = Path::new("/etc/localtime");
                let name = std::fs::read_link(path)
                    .ok()
                    .and_then(|p| name_from_path(&p.to_string_lossy()).map(str::to_string))
                    .unwrap_or_else(|| "local".to_string());
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("TZ is not set and /etc/localtime: {e}"))?;
                TimeZone::tzif(&name, &bytes).map_err(|e| format!("/etc/localtime: {e}"))
            }
            Some(v) => {
                let v = v
                    .into_string()
                    .map_err(|_| "TZ is not valid UTF-8".to_string())?;
                TimeZone::from_tz_var(&v)
            }
        }
    }

    /// The zone a `TZ` value names.
    pub fn from_tz_var(value: &str) -> Result<TimeZone, String> {
        let v = value.strip_prefix(':').unwrap_or(value);
        if v.is_empty() {
            return Ok(TimeZone::utc());
        }
        if v.starts_with('/') {
            let bytes = std::fs::read(v).map_err(|e| format!("TZ={value}: {v}: {e}"))?;
            let name = name_from_path(v).unwrap_or("local");
            return TimeZone::tzif(name, &bytes).map_err(|e| format!("TZ={value}: {e}"));
        }
        let dir = std::env::var("TZDIR").unwrap_or_else(|_| "/usr/share/zoneinfo".to_string());
        let file = format!("{dir}/{v}");
        // A name never climbs out of the zoneinfo folder.
        let looks_like_name = !v.split('/').any(|p| p == "..");
        let read = if looks_like_name {
            std::fs::read(&file)
        } else {
            Err(std::io::ErrorKind::InvalidInput.into())
        };
        match read {
            Ok(bytes) => TimeZone::tzif(v, &bytes).map_err(|e| format!("TZ={value}: {file}: {e}")),
            Err(e) => match TimeZone::posix(v) {
                Ok(z) => Ok(z),
                Err(_) if v == "UTC" || v == "Etc/UTC" || v == "GMT" => Ok(TimeZone::utc()),
                Err(posix) => Err(format!(
                    "TZ={value}: {file}: {e}, and it is not a POSIX TZ rule either ({posix})"
                )),
            },
        }
    }
}

/// `Europe/Paris` from `/usr/share/zoneinfo/Europe/Paris`.
fn name_from_path(path: &str) -> Option<&str> {
    path.rsplit_once("zoneinfo/")
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty())
}

/// Formats an offset as `+01`, `+05:30` or `-00:25:21` (seconds only when not zero).
pub fn show_offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    match (m, s) {
        (0, 0) => format!("{sign}{h:02}"),
        (m, 0) => format!("{sign}{h:02}:{m:02}"),
        (m, s) => format!("{sign}{h:02}:{m:02}:{s:02}"),
    }
}

/// A POSIX `TZ` rule: a standard offset and, optionally, a daylight one with its dates.
#[derive(Debug, Clone, PartialEq)]
struct Posix {
    /// Seconds east of UTC (POSIX writes west: `EST5` is -5 h).
    std: i32,
    dst: Option<Dst>,
}

#[derive(Debug, Clone, PartialEq)]
struct Dst {
    offset: i32,
    /// When daylight time starts, in standard local time, and ends, in daylight local time.
    start: (Day, i32),
    end: (Day, i32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Day {
    /// `Jn`: day 1 to 365, February 29 never counted.
    Julian(u16),
    /// `n`: day 0 to 365, February 29 counted.
    Zero(u16),
    /// `Mm.w.d`: weekday `d` (0 Sunday) of week `w` (1 to 5, 5 the last) of month `m`.
    Month(u8, u8, u8),
}

impl Day {
    /// Seconds from 1970-01-01 to midnight of this day in `year`, on the clock face.
    fn midnight(self, year: i32) -> i64 {
        let jan1 = days_from_civil(year, 1, 1);
        let days = match self {
            Day::Julian(n) => {
                let n = i64::from(n) - 1;
                jan1 + n + i64::from(is_leap(year) && n >= 59)
            }
            Day::Zero(n) => jan1 + i64::from(n),
            Day::Month(m, w, d) => {
                let first = days_from_civil(year, m, 1);
                let first_wd = (first + 4).rem_euclid(7) as u8;
                let mut day = 1 + (7 + d - first_wd) % 7 + (w - 1) * 7;
                while day > days_in_month(year, m) {
                    day -= 7;
                }
                first + i64::from(day) - 1
            }
        };
        days * 86_400
    }
}

impl Posix {
    fn offset_at(&self, t: i64) -> i32 {
        let Some(d) = &self.dst else {
            return self.std;
        };
        let year = Civil::from_seconds(t + i64::from(self.std)).year;
        let start = d.start.0.midnight(year) + i64::from(d.start.1) - i64::from(self.std);
        let end = d.end.0.midnight(year) + i64::from(d.end.1) - i64::from(d.offset);
        let in_dst = if start <= end {
            (start..end).contains(&t)
        } else {
            // Southern hemisphere: daylight time spans the new year.
            !(end..start).contains(&t)
        };
        if in_dst {
            d.offset
        } else {
            self.std
        }
    }

    fn parse(text: &str) -> Result<Posix, String> {
        let mut p = Cursor {
            s: text.as_bytes(),
            i: 0,
        };
        p.name()?;
        let std = -p.time(true)?.ok_or("missing the standard time offset")?;
        if p.done() {
            return Ok(Posix { std, dst: None });
        }
        p.name()?;
        let offset = match p.time(true)? {
            Some(o) => -o,
            None => std + 3600,
        };
        // Without dates, the US rules (what glibc assumes).
        let (start, end) = if p.done() {
            ((Day::Month(3, 2, 0), 7200), (Day::Month(11, 1, 0), 7200))
        } else {
            p.expect(b',')?;
            let start = p.date()?;
            p.expect(b',')?;
            let end = p.date()?;
            (start, end)
        };
        if !p.done() {
            return Err(format!("unexpected `{}`", &text[p.i..]));
        }
        Ok(Posix {
            std,
            dst: Some(Dst { offset, start, end }),
        })
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn done(&self) -> bool {
        self.i == self.s.len()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.i + 1))
        }
    }

    /// A zone abbreviation: three or more letters, or `<...>` (which may hold digits and signs).
    fn name(&mut self) -> Result<(), String> {
        let start = self.i;
        if self.peek() == Some(b'<') {
            while let Some(c) = self.peek() {
                self.i += 1;
                if c == b'>' {
                    return Ok(());
                }
            }
            return Err("unclosed `<` in a zone abbreviation".to_string());
        }
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        if self.i - start < 3 {
            return Err(format!(
                "expected a zone abbreviation of 3 letters or more at byte {}",
                start + 1
            ));
        }
        Ok(())
    }

    fn number(&mut self, max: u32) -> Result<Option<u32>, String> {
        let start = self.i;
        let mut n: u32 = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            n = n.saturating_mul(10).saturating_add(u32::from(c - b'0'));
            self.i += 1;
        }
        if self.i == start {
            return Ok(None);
        }
        if n > max {
            return Err(format!("{n} is out of range (at most {max})"));
        }
        Ok(Some(n))
    }

    /// `[+-]hh[:mm[:ss]]` in seconds; hours up to 167 as RFC 8536 allows in rule times.
    fn time(&mut self, signed: bool) -> Result<Option<i32>, String> {
        let mut sign = 1;
        if signed || self.peek() == Some(b'-') {
            match self.peek() {
                Some(b'-') => {
                    sign = -1;
                    self.i += 1;
                }
                Some(b'+') => self.i += 1,
                _ => {}
            }
        }
        let Some(h) = self.number(167)? else {
            return if sign == -1 {
                Err("a sign with no hours".to_string())
            } else {
                Ok(None)
            };
        };
        let mut secs = h * 3600;
        for unit in [60, 1] {
            if self.peek() != Some(b':') {
                break;
            }
            self.i += 1;
            let v = self.number(59)?.ok_or("expected a number after `:`")?;
            secs += v * unit;
        }
        Ok(Some(sign * secs as i32))
    }

    /// `Jn`, `n` or `Mm.w.d`, with an optional `/time` (default 02:00).
    fn date(&mut self) -> Result<(Day, i32), String> {
        let day = match self.peek() {
            Some(b'J') => {
                self.i += 1;
                match self.number(365)? {
                    Some(n) if n >= 1 => Day::Julian(n as u16),
                    _ => return Err("`J` needs a day from 1 to 365".to_string()),
                }
            }
            Some(b'M') => {
                self.i += 1;
                let m = self.number(12)?.filter(|&m| m >= 1);
                self.expect(b'.')?;
                let w = self.number(5)?.filter(|&w| w >= 1);
                self.expect(b'.')?;
                let d = self.number(6)?;
                match (m, w, d) {
                    (Some(m), Some(w), Some(d)) => Day::Month(m as u8, w as u8, d as u8),
                    _ => return Err("`Mm.w.d` needs m 1-12, w 1-5, d 0-6".to_string()),
                }
            }
            _ => Day::Zero(
                self.number(365)?
                    .ok_or("expected a date (`Mm.w.d`, `Jn` or `n`)")? as u16,
            ),
        };
        let time = if self.peek() == Some(b'/') {
            self.i += 1;
            self.time(false)?.ok_or("expected a time after `/`")?
        } else {
            7200
        };
        Ok((day, time))
    }
}

/// Reads a TZif file: the 64-bit table of version 2 and later (else the 32-bit one), and
/// the footer rule.
fn parse_tzif(b: &[u8]) -> Result<Rules, String> {
    let bad = |what: &str| format!("not a valid TZif file ({what})");
    let header = |at: usize| -> Result<[usize; 6], String> {
        let h = b.get(at..at + 44).ok_or_else(|| bad("truncated header"))?;
        if &h[..4] != b"TZif" {
            return Err(bad("no TZif magic"));
        }
        let mut c = [0usize; 6];
        for (k, v) in c.iter_mut().enumerate() {
            let o = 20 + k * 4;
            *v = u32::from_be_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]) as usize;
        }
        Ok(c)
    };
    let body_len = |c: &[usize; 6], time: usize| {
        let [isut, isstd, leap, times, types, chars] = *c;
        times * time + times + types * 6 + chars + leap * (time + 4) + isstd + isut
    };
    let v1 = header(0)?;
    let version = b[4];
    let (c, start, time) = if version >= b'2' {
        let second = 44 + body_len(&v1, 4);
        (header(second)?, second + 44, 8)
    } else {
        (v1, 44, 4)
    };
    let [_, _, _, times, types, _] = c;
    let body = b
        .get(start..start + body_len(&c, time))
        .ok_or_else(|| bad("truncated body"))?;
    if types == 0 {
        return Err(bad("no local time types"));
    }
    let mut at = Vec::with_capacity(times);
    for k in 0..times {
        let s = &body[k * time..(k + 1) * time];
        at.push(if time == 8 {
            i64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
        } else {
            i64::from(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        });
    }
    let kind = body[times * time..times * time + times].to_vec();
    if kind.iter().any(|&k| usize::from(k) >= types) {
        return Err(bad("a transition names a missing type"));
    }
    let t0 = times * time + times;
    let offsets = (0..types)
        .map(|k| {
            let s = &body[t0 + k * 6..t0 + k * 6 + 4];
            i32::from_be_bytes([s[0], s[1], s[2], s[3]])
        })
        .collect();
    let mut footer = None;
    if version >= b'2' {
        let rest = &b[start + body.len()..];
        let text = rest
            .strip_prefix(b"\n")
            .and_then(|r| r.iter().position(|&c| c == b'\n').map(|e| &r[..e]))
            .ok_or_else(|| bad("no footer"))?;
        if !text.is_empty() {
            let text = std::str::from_utf8(text).map_err(|_| bad("footer is not text"))?;
            footer = Some(Posix::parse(text).map_err(|e| bad(&format!("footer `{text}`: {e}")))?);
        }
    }
    Ok(Rules::Table {
        at,
        kind,
        offsets,
        footer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> Option<TimeZone> {
        let bytes = std::fs::read(format!("/usr/share/zoneinfo/{name}")).ok()?;
        Some(TimeZone::tzif(name, &bytes).unwrap())
    }

    fn utc(y: i32, mo: u8, d: u8, h: u8, mi: u8) -> i64 {
        Civil::new(y, mo, d, h, mi, 0).seconds()
    }

    #[test]
    fn civil_dates_round_trip_through_seconds() {
        for secs in [
            -62_135_596_800,
            -86_401,
            -1,
            0,
            951_782_400,
            1_709_164_799,
            4_102_444_800,
        ] {
            assert_eq!(Civil::from_seconds(secs).seconds(), secs);
        }
        assert_eq!(Civil::from_seconds(0), Civil::new(1970, 1, 1, 0, 0, 0));
        assert_eq!(
            Civil::from_seconds(951_782_400),
            Civil::new(2000, 2, 29, 0, 0, 0)
        );
        assert_eq!(Civil::new(2024, 6, 1, 0, 0, 0).weekday(), 6);
        assert_eq!(Civil::new(1970, 1, 1, 0, 0, 0).weekday(), 4);
        assert_eq!(
            Civil::new(2024, 2, 28, 5, 0, 0).next_day(),
            Civil::new(2024, 2, 29, 0, 0, 0)
        );
        assert_eq!(
            Civil::new(2024, 12, 31, 5, 0, 0).next_month(),
            Civil::new(2025, 1, 1, 0, 0, 0)
        );
    }

    #[test]
    fn posix_rules_give_offsets_either_side_of_each_change() {
        let ny = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        // 2024-03-10 07:00 UTC is 02:00 EST, when clocks go to 03:00 EDT.
        assert_eq!(ny.offset_at(utc(2024, 3, 10, 7, 0) - 1), -5 * 3600);
        assert_eq!(ny.offset_at(utc(2024, 3, 10, 7, 0)), -4 * 3600);
        // 2024-11-03 06:00 UTC is 02:00 EDT, when clocks go back to 01:00 EST.
        assert_eq!(ny.offset_at(utc(2024, 11, 3, 6, 0) - 1), -4 * 3600);
        assert_eq!(ny.offset_at(utc(2024, 11, 3, 6, 0)), -5 * 3600);
        let india = TimeZone::posix("IST-5:30").unwrap();
        assert_eq!(india.offset_at(0), 19_800);
        // Southern hemisphere: daylight time over the new year.
        let sydney = TimeZone::posix("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        assert_eq!(sydney.offset_at(utc(2024, 1, 15, 0, 0)), 11 * 3600);
        assert_eq!(sydney.offset_at(utc(2024, 7, 15, 0, 0)), 10 * 3600);
        let quoted = TimeZone::posix("<+0330>-3:30").unwrap();
        assert_eq!(quoted.offset_at(0), 12_600);
        let julian = TimeZone::posix("XST3XDT,J60/0,J300").unwrap();
        // J60 is March 1st, leap year or not.
        assert_eq!(
            julian.to_civil(utc(2024, 3, 1, 3, 0)),
            Civil::new(2024, 3, 1, 1, 0, 0)
        );
    }

    #[test]
    fn bad_posix_rules_say_why() {
        assert!(TimeZone::posix("Europe/Paris").is_err());
        assert!(TimeZone::posix("EST").unwrap_err().contains("offset"));
        assert!(TimeZone::posix("EST5EDT,M13.1.0,M11.1.0").is_err());
        assert!(TimeZone::posix("EST5EDT,M3.2.0").is_err());
        assert!(TimeZone::posix("E5").is_err());
    }

    #[test]
    fn paris_from_zoneinfo_matches_known_offsets_in_and_past_its_table() {
        let Some(paris) = zone("Europe/Paris") else {
            eprintln!("no /usr/share/zoneinfo/Europe/Paris; skipped");
            return;
        };
        assert_eq!(paris.name(), "Europe/Paris");
        assert_eq!(paris.offset_at(utc(2024, 1, 15, 12, 0)), 3600);
        assert_eq!(paris.offset_at(utc(2024, 7, 15, 12, 0)), 7200);
        // 2024-03-31 01:00 UTC: 02:00 CET becomes 03:00 CEST.
        assert_eq!(paris.offset_at(utc(2024, 3, 31, 1, 0) - 1), 3600);
        assert_eq!(paris.offset_at(utc(2024, 3, 31, 1, 0)), 7200);
        // Far past any table: the footer rule (last Sunday of March and of October).
        assert_eq!(paris.offset_at(utc(2100, 3, 28, 1, 0) - 1), 3600);
        assert_eq!(paris.offset_at(utc(2100, 3, 28, 1, 0)), 7200);
        assert_eq!(paris.offset_at(utc(2100, 10, 31, 1, 0) - 1), 7200);
        assert_eq!(paris.offset_at(utc(2100, 10, 31, 1, 0)), 3600);
        // 1900: local mean time before the first transition (+00:09:21).
        assert_eq!(paris.offset_at(utc(1880, 1, 1, 0, 0)), 561);
    }

    #[test]
    fn paris_gap_and_fold_name_the_right_instants() {
        let Some(paris) = zone("Europe/Paris") else {
            return;
        };
        // 02:30 on 2024-03-31 does not exist: read with CET it is 01:30 UTC (03:30 CEST).
        let gap = paris.resolve(Civil::new(2024, 3, 31, 2, 30, 0));
        assert_eq!(
            gap,
            Local::Gap {
                before: utc(2024, 3, 31, 1, 30),
                after: utc(2024, 3, 31, 0, 30)
            }
        );
        assert_eq!(
            paris.to_civil(gap.earlier()),
            Civil::new(2024, 3, 31, 3, 30, 0)
        );
        // 02:30 on 2024-10-27 happens twice: 00:30 UTC (CEST), then 01:30 UTC (CET).
        let fold = paris.resolve(Civil::new(2024, 10, 27, 2, 30, 0));
        assert_eq!(
            fold,
            Local::Fold {
                earlier: utc(2024, 10, 27, 0, 30),
                later: utc(2024, 10, 27, 1, 30)
            }
        );
        assert_eq!(
            paris.resolve(Civil::new(2024, 10, 27, 3, 0, 0)),
            Local::Unique(utc(2024, 10, 27, 2, 0))
        );
        assert_eq!(
            paris.resolve(Civil::new(2024, 10, 27, 1, 59, 59)),
            Local::Unique(utc(2024, 10, 26, 23, 59) + 59)
        );
    }

    #[test]
    fn zones_without_changes_and_version_one_files_read() {
        if let Some(tokyo) = zone("Asia/Tokyo") {
            assert_eq!(tokyo.offset_at(utc(2024, 7, 1, 0, 0)), 9 * 3600);
            assert_eq!(tokyo.offset_at(utc(2200, 7, 1, 0, 0)), 9 * 3600);
        }
        if let Some(u) = zone("Etc/UTC") {
            assert_eq!(u.offset_at(utc(2024, 7, 1, 0, 0)), 0);
        }
        // The same table cut down to version 1 (no 64-bit section, no footer).
        let Ok(bytes) = std::fs::read("/usr/share/zoneinfo/Europe/Paris") else {
            return;
        };
        let mut v1 = bytes.clone();
        v1[4] = 0;
        let old = TimeZone::tzif("old", &v1).unwrap();
        assert_eq!(old.offset_at(utc(2024, 7, 15, 12, 0)), 7200);
    }

    #[test]
    fn broken_files_are_errors_not_panics() {
        let Ok(bytes) = std::fs::read("/usr/share/zoneinfo/Europe/Paris") else {
            return;
        };
        for cut in [0, 3, 20, 44, 60, 200, bytes.len() - 1] {
            assert!(TimeZone::tzif("x", &bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(
            TimeZone::tzif("x", b"not a zone file at all, but long enough to be read").is_err()
        );
    }

    #[test]
    fn tz_values_name_files_zones_and_rules() {
        assert_eq!(TimeZone::from_tz_var("").unwrap().name(), "UTC");
        assert_eq!(TimeZone::from_tz_var(":").unwrap().name(), "UTC");
        let rule = TimeZone::from_tz_var("IST-5:30").unwrap();
        assert_eq!((rule.name(), rule.offset_at(0)), ("local", 19_800));
        assert!(TimeZone::from_tz_var("No/Such_Zone")
            .unwrap_err()
            .contains("No/Such_Zone"));
        assert!(TimeZone::from_tz_var("../../etc/passwd").is_err());
        if zone("Europe/Paris").is_some() {
            let z = TimeZone::from_tz_var(":Europe/Paris").unwrap();
            assert_eq!(z.name(), "Europe/Paris");
            let p = TimeZone::from_tz_var("/usr/share/zoneinfo/Europe/Paris").unwrap();
            assert_eq!(p.name(), "Europe/Paris");
        }
    }

    #[test]
    fn offsets_show_like_iso_8601_short_forms() {
        assert_eq!(show_offset(3600), "+01");
        assert_eq!(show_offset(0), "+00");
        assert_eq!(show_offset(19_800), "+05:30");
        assert_eq!(show_offset(-18_000), "-05");
        assert_eq!(show_offset(561), "+00:09:21");
    }
}
