//! `cron_restart` expressions: parsing, and the next civil time and instant they match.
//!
//! Pure: the caller passes the time zone and the wall-clock instant to search from, so
//! this is tested with fixed times and zones and never reads a clock.
//!
//! Syntax (PM2 uses croner, which follows Vixie cron): 5 fields `min hour dom month dow`
//! or 6 with seconds first; `*`, `?`, numbers, `a-b`, `*/n`, `a-b/n`, `a/n`, lists with
//! `,`, month and day names (`JAN`, `MON`), day of week 0-7 (0 and 7 are Sunday), and the
//! nicknames `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly`.
//! As in Vixie cron, when both day fields are restricted a day matching either counts.

use crate::tz::{Civil, Local, TimeZone};

/// A parsed expression. Each field is a bit set of the values it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// The day fields as written start with `*` (or `?`): unrestricted for Vixie's rule.
    days_star: bool,
    weekdays_star: bool,
    /// The hour field is `*`: the expression runs every hour, so it also runs in the
    /// hour a DST change repeats.
    hours_star: bool,
}

/// How far ahead a match is searched for before the expression counts as never matching
/// (Feb 29 on a given weekday can be 28 years away; nothing sensible is further).
const SEARCH_YEARS: i32 = 30;

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: MONTHS,
};
const WEEKDAY: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: DAYS,
};

impl CronExpr {
    /// Parses an expression; the error says which field is wrong and why.
    pub fn parse(text: &str) -> Result<CronExpr, String> {
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => {
                return Err(format!(
                    "unknown nickname `{trimmed}` (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)"
                ))
            }
            _ => trimmed,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest): (&str, &[&str]) = match parts.len() {
            5 => ("0", &parts[..]),
            6 => (parts[0], &parts[1..]),
            n => {
                return Err(format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, found {n}"
                ))
            }
        };
        let seconds = field(sec, &SECOND)?;
        let minutes = field(rest[0], &MINUTE)?;
        let hours = field(rest[1], &HOUR)?;
        let days = field(rest[2], &DAY)?;
        let months = field(rest[3], &MONTH)?;
        let mut weekdays = field(rest[4], &WEEKDAY)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        let star = |s: &str| s.starts_with('*') || s.starts_with('?');
        let expr = CronExpr {
            text: trimmed.to_string(),
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_star: star(rest[2]),
            weekdays_star: star(rest[4]),
            hours_star: rest[1] == "*" || rest[1] == "?",
        };
        // Feb 30 and the like: refuse now rather than never run.
        let reference = Civil::new(2000, 1, 1, 0, 0, 0);
        if expr.next_civil_after(reference).is_none() {
            return Err("this date never occurs".to_string());
        }
        Ok(expr)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn day_matches(&self, d: Civil) -> bool {
        let dom = self.days & (1 << d.day) != 0;
        let dow = self.weekdays & (1 << d.weekday()) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first civil time strictly after `after` (to the second) that matches.
    pub fn next_civil_after(&self, after: Civil) -> Option<Civil> {
        let limit = after.year.saturating_add(SEARCH_YEARS);
        let mut t = step(after, 1);
        while t.year <= limit {
            if self.months & (1 << t.month) == 0 {
                t = t.next_month();
            } else if !self.day_matches(t) {
                t = t.next_day();
            } else if self.hours & (1 << t.hour) == 0 {
                t = step(t, 3600);
            } else if self.minutes & (1 << t.minute) == 0 {
                t = step(t, 60);
            } else if self.seconds & (1 << t.second) == 0 {
                t = step(t, 1);
            } else {
                return Some(t);
            }
        }
        None
    }

    /// The first instant (seconds since the epoch) strictly after `after` at which the
    /// expression matches in `tz`.
    ///
    /// Daylight saving: a civil time that a jump forward skips runs as much later as the
    /// jump (02:30 runs at 03:30 when 02:00 becomes 03:00), so no run is lost. A civil time
    /// that a jump back repeats runs once, at its first occurrence, unless the hour field
    /// is `*`: then it runs in both passes, as an hourly job should.
    pub fn next_after(&self, tz: &TimeZone, after: i64) -> Option<i64> {
        let first = self.next_after_forward(tz, after);
        let second = self.second_pass(tz, after);
        match (first, second) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// During the first pass of a repeated hour, an hourly expression also runs in the
    /// second pass, at civil times that are not after the current one.
    fn second_pass(&self, tz: &TimeZone, after: i64) -> Option<i64> {
        let civil = tz.to_civil(after);
        let in_fold = matches!(tz.resolve(civil), Local::Fold { .. });
        if !self.hours_star || !in_fold {
            return None;
        }
        // No time zone repeats more than a few hours.
        let mut c = Civil::from_seconds(civil.seconds() - 3 * 3600);
        loop {
            c = self.next_civil_after(c)?;
            if c > civil {
                return None;
            }
            if let Local::Fold { later, .. } = tz.resolve(c) {
                if later > after {
                    return Some(later);
                }
            }
        }
    }

    fn next_after_forward(&self, tz: &TimeZone, after: i64) -> Option<i64> {
        let mut civil = tz.to_civil(after);
        // Each step moves `civil` forward; a handful covers any DST transition.
        for _ in 0..1000 {
            let c = self.next_civil_after(civil)?;
            match tz.resolve(c) {
                Local::Unique(t) | Local::Gap { before: t, .. } => {
                    if t > after {
                        return Some(t);
                    }
                }
                Local::Fold { earlier, later } => {
                    if earlier > after {
                        return Some(earlier);
                    }
                    if self.hours_star && later > after {
                        return Some(later);
                    }
                }
            }
            civil = c;
        }
        None
    }
}

/// The local time zone: `TZ`, else `/etc/localtime`, else UTC. The only function here
/// that looks outside (the environment and the zoneinfo files); an error says why the
/// zone could not be found, and the caller falls back to UTC.
pub fn local_zone() -> Result<TimeZone, String> {
    TimeZone::local()
}

/// The local zone, or UTC with a warning logged when it cannot be found.
pub fn local_zone_or_utc() -> TimeZone {
    local_zone().unwrap_or_else(|e| {
        log::warn!("cron_restart: cannot find the local time zone ({e}); using UTC");
        TimeZone::utc()
    })
}

/// A fire time as people read it: local civil time with its offset and zone name.
pub fn show(tz: &TimeZone, at: i64) -> String {
    let t = tz.to_civil(at);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {} ({})",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        crate::tz::show_offset(tz.offset_at(at)),
        tz.name()
    )
}

impl std::fmt::Display for CronExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The start of the next second, minute or hour (`unit` 1, 60, 3600) after `t`.
fn step(t: Civil, unit: i64) -> Civil {
    let secs = t.seconds();
    Civil::from_seconds(secs - secs.rem_euclid(unit) + unit)
}

/// One field: a comma-separated list of `*`, `N`, `A-B`, each with an optional `/STEP`.
fn field(text: &str, f: &Field) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| {
                    format!("{} field: step `{s}` in `{item}` is not a number", f.name)
                })?;
                if step == 0 {
                    return Err(format!("{} field: step 0 in `{item}`", f.name));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (f.min, f.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, f, item)?, value(b, f, item)?)
        } else {
            let v = value(range, f, item)?;
            // `5/15` means from 5 to the end, every 15.
            (v, if step.is_some() { f.max } else { v })
        };
        if lo > hi {
            return Err(format!(
                "{} field: range `{item}` goes backwards ({lo} > {hi})",
                f.name
            ));
        }
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn value(s: &str, f: &Field, item: &str) -> Result<u32, String> {
    if s.is_empty() {
        return Err(format!("{} field: `{item}` is missing a number", f.name));
    }
    if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        // Months are numbered from 1, days of the week from 0.
        return Ok(i as u32 + f.min);
    }
    let v: u32 = s.parse().map_err(|_| {
        format!(
            "{} field: `{s}` is not a number{} (L, W and # are not supported)",
            f.name,
            if f.names.is_empty() { "" } else { " or a name" }
        )
    })?;
    if v < f.min || v > f.max {
        return Err(format!(
            "{} field: {v} is out of range {}-{}",
            f.name, f.min, f.max
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Day(i32, u8, u8);

    fn date(y: i32, m: u8, d: u8) -> Day {
        Day(y, m, d)
    }

    impl Day {
        fn at(&self, h: u8, mi: u8, s: u8, _nanos: u32) -> Civil {
            Civil::new(self.0, self.1, self.2, h, mi, s)
        }
    }

    fn next(expr: &str, from: Civil) -> Civil {
        CronExpr::parse(expr)
            .unwrap()
            .next_civil_after(from)
            .unwrap()
    }

    #[test]
    fn five_fields_run_at_second_zero_and_six_fields_have_seconds_first() {
        let t = date(2024, 5, 10).at(12, 0, 0, 0);
        assert_eq!(next("* * * * *", t), date(2024, 5, 10).at(12, 1, 0, 0));
        assert_eq!(next("*/3 * * * * *", t), date(2024, 5, 10).at(12, 0, 3, 0));
        assert_eq!(
            next("*/3 * * * * *", date(2024, 5, 10).at(12, 0, 58, 0)),
            date(2024, 5, 10).at(12, 1, 0, 0)
        );
    }

    #[test]
    fn daily_job_rolls_over_month_and_year_ends() {
        let t = date(2024, 12, 31).at(3, 0, 0, 0);
        assert_eq!(next("0 3 * * *", t), date(2025, 1, 1).at(3, 0, 0, 0));
        assert_eq!(
            next("@monthly", date(2024, 1, 31).at(0, 0, 0, 0)),
            date(2024, 2, 1).at(0, 0, 0, 0)
        );
    }

    #[test]
    fn names_ranges_lists_and_steps() {
        // Weekdays at 9:30, Monday to Friday.
        let sat = date(2024, 6, 1).at(10, 0, 0, 0);
        assert_eq!(
            next("30 9 * * MON-FRI", sat),
            date(2024, 6, 3).at(9, 30, 0, 0)
        );
        assert_eq!(
            next("0 0 1 jan,Jul *", sat),
            date(2024, 7, 1).at(0, 0, 0, 0)
        );
        assert_eq!(
            next("0 8-18/5 * * *", sat),
            date(2024, 6, 1).at(13, 0, 0, 0)
        );
        assert_eq!(next("0 0 * * 7", sat), date(2024, 6, 2).at(0, 0, 0, 0));
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        // The 15th, or any Monday: from Saturday June 1st 2024, Monday June 3rd comes first.
        let sat = date(2024, 6, 1).at(0, 0, 0, 0);
        assert_eq!(next("0 0 15 * 1", sat), date(2024, 6, 3).at(0, 0, 0, 0));
        assert_eq!(next("0 0 15 * *", sat), date(2024, 6, 15).at(0, 0, 0, 0));
    }

    #[test]
    fn leap_day_is_found_years_ahead() {
        let t = date(2025, 3, 1).at(0, 0, 0, 0);
        assert_eq!(next("0 0 29 2 *", t), date(2028, 2, 29).at(0, 0, 0, 0));
    }

    #[test]
    fn bad_expressions_say_which_field_and_why() {
        let err = |s: &str| CronExpr::parse(s).unwrap_err();
        assert!(err("61 * * * *").contains("minute field: 61 is out of range 0-59"));
        assert!(err("* * *").contains("expected 5 fields"));
        assert!(err("0 0 30 2 *").contains("never occurs"));
        assert!(err("*/0 * * * *").contains("step 0"));
        assert!(err("0 0 L * *").contains("not a number"));
        assert!(err("0 0 * * FOO").contains("day of week field"));
        assert!(err("5-1 * * * *").contains("backwards"));
        assert!(err("@often").contains("unknown nickname"));
    }

    fn new_york() -> TimeZone {
        TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap()
    }

    fn ts(tz: &TimeZone, dt: Civil) -> i64 {
        tz.resolve(dt).earlier()
    }

    #[test]
    fn a_time_skipped_by_dst_runs_as_much_later_as_the_jump() {
        let tz = new_york();
        let e = CronExpr::parse("30 2 * * *").unwrap();
        // 2024-03-10: 02:00 EST becomes 03:00 EDT.
        let from = ts(&tz, date(2024, 3, 10).at(1, 0, 0, 0));
        let fire = e.next_after(&tz, from).unwrap();
        assert_eq!(tz.to_civil(fire), date(2024, 3, 10).at(3, 30, 0, 0));
        let again = e.next_after(&tz, fire).unwrap();
        assert_eq!(tz.to_civil(again), date(2024, 3, 11).at(2, 30, 0, 0));
    }

    #[test]
    fn a_time_repeated_by_dst_runs_once_unless_the_hour_is_a_wildcard() {
        let tz = new_york();
        // 2024-11-03: 02:00 EDT becomes 01:00 EST; 01:30 happens twice.
        let from = ts(&tz, date(2024, 11, 3).at(0, 0, 0, 0));
        let daily = CronExpr::parse("30 1 * * *").unwrap();
        let first = daily.next_after(&tz, from).unwrap();
        let second = daily.next_after(&tz, first).unwrap();
        assert_eq!(tz.to_civil(second), date(2024, 11, 4).at(1, 30, 0, 0));
        let hourly = CronExpr::parse("30 * * * *").unwrap();
        let a = hourly.next_after(&tz, first - 1);
        let a = a.unwrap();
        assert_eq!(a, first);
        let b = hourly.next_after(&tz, a).unwrap();
        assert_eq!(b - a, 3600);
        assert_eq!(tz.to_civil(b), date(2024, 11, 3).at(1, 30, 0, 0));
    }

    #[test]
    fn next_instant_is_strictly_after_even_exactly_on_a_match() {
        let e = CronExpr::parse("*/3 * * * * *").unwrap();
        let at = ts(&TimeZone::utc(), date(2024, 1, 1).at(0, 0, 3, 0));
        let n = e.next_after(&TimeZone::utc(), at).unwrap();
        assert_eq!(n - at, 3);
    }

    fn paris() -> Option<TimeZone> {
        let bytes = std::fs::read("/usr/share/zoneinfo/Europe/Paris").ok()?;
        TimeZone::tzif("Europe/Paris", &bytes).ok()
    }

    #[test]
    fn paris_spring_gap_runs_daily_job_an_hour_later_and_hourly_jobs_once() {
        let Some(tz) = paris() else {
            eprintln!("no zoneinfo for Europe/Paris; skipped");
            return;
        };
        // 2025-03-30: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
        let from = ts(&tz, date(2025, 3, 30).at(1, 0, 0, 0));
        let daily = CronExpr::parse("30 2 * * *").unwrap();
        let fire = daily.next_after(&tz, from).unwrap();
        assert_eq!(tz.to_civil(fire), date(2025, 3, 30).at(3, 30, 0, 0));
        assert_eq!(show(&tz, fire), "2025-03-30 03:30:00 +02 (Europe/Paris)");
        let again = daily.next_after(&tz, fire).unwrap();
        assert_eq!(tz.to_civil(again), date(2025, 3, 31).at(2, 30, 0, 0));
        // Hourly at :30: 01:30, then the skipped 02:30 as 03:30, then 04:30 (03:30 is one run).
        let hourly = CronExpr::parse("30 * * * *").unwrap();
        let a = hourly.next_after(&tz, from).unwrap();
        let b = hourly.next_after(&tz, a).unwrap();
        let c = hourly.next_after(&tz, b).unwrap();
        assert_eq!(tz.to_civil(a), date(2025, 3, 30).at(1, 30, 0, 0));
        assert_eq!(tz.to_civil(b), date(2025, 3, 30).at(3, 30, 0, 0));
        assert_eq!(tz.to_civil(c), date(2025, 3, 30).at(4, 30, 0, 0));
    }

    #[test]
    fn paris_autumn_fold_runs_daily_job_once_and_hourly_jobs_in_both_passes() {
        let Some(tz) = paris() else {
            return;
        };
        // 2025-10-26: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        let from = ts(&tz, date(2025, 10, 26).at(1, 0, 0, 0));
        let daily = CronExpr::parse("30 2 * * *").unwrap();
        let first = daily.next_after(&tz, from).unwrap();
        assert_eq!(show(&tz, first), "2025-10-26 02:30:00 +02 (Europe/Paris)");
        let next = daily.next_after(&tz, first).unwrap();
        assert_eq!(tz.to_civil(next), date(2025, 10, 27).at(2, 30, 0, 0));
        let hourly = CronExpr::parse("30 * * * *").unwrap();
        let a = hourly.next_after(&tz, from).unwrap();
        let b = hourly.next_after(&tz, a).unwrap();
        let c = hourly.next_after(&tz, b).unwrap();
        let d = hourly.next_after(&tz, c).unwrap();
        assert_eq!(show(&tz, a), "2025-10-26 01:30:00 +02 (Europe/Paris)");
        assert_eq!(show(&tz, b), "2025-10-26 02:30:00 +02 (Europe/Paris)");
        assert_eq!(show(&tz, c), "2025-10-26 02:30:00 +01 (Europe/Paris)");
        assert_eq!(show(&tz, d), "2025-10-26 03:30:00 +01 (Europe/Paris)");
        assert_eq!((b - a, c - b, d - c), (3600, 3600, 3600));
        // Past the zone file's table the footer rule gives the same answer.
        let far = ts(&tz, date(2090, 10, 29).at(1, 0, 0, 0));
        let f1 = hourly.next_after(&tz, far).unwrap();
        let f2 = hourly.next_after(&tz, f1).unwrap();
        let f3 = hourly.next_after(&tz, f2).unwrap();
        assert_eq!(show(&tz, f3), "2090-10-29 02:30:00 +01 (Europe/Paris)");
    }
}
