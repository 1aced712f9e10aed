//! PM2's `log_date_format`: the tokens of day.js's `format()` (PM2 formats with day.js and
//! no plugins), in runner's local time.
//!
//! Tokens: `YYYY YY M MM MMM MMMM D DD d dd ddd dddd H HH h hh m mm s ss SSS Z ZZ A a`
//! (English names, as day.js's default locale), and `[text]` for literal text. Anything
//! else is copied as it is. A run of one token letter is cut greedily into the longest
//! tokens it holds (`YYYYYY` is `YYYY` then `YY`); letters that form no token (a lone `Y`,
//! `S` or `SS`) are literal — day.js prints the UTC offset there, which is surely not what
//! anyone meant.
//!
//! Local time is libc's `localtime_r`: `TZ` when set, else `/etc/localtime`, else UTC —
//! exactly what `date` and Node.js (PM2) use, with no time-zone database in runner.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Year4,
    Year2,
    Month,
    Month2,
    MonthShort,
    MonthLong,
    Day,
    Day2,
    Weekday,
    WeekdayMin,
    WeekdayShort,
    WeekdayLong,
    Hour,
    Hour2,
    Hour12,
    Hour12_2,
    Minute,
    Minute2,
    Second,
    Second2,
    Millis,
    Offset,
    OffsetCompact,
    MeridiemUpper,
    MeridiemLower,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Token(Token),
}

/// A parsed `log_date_format`.
#[derive(Debug, Clone)]
pub struct DateFormat {
    pieces: Vec<Piece>,
    /// Whether the text changes within a second (`SSS`).
    millis: bool,
    /// The last (time key, text) formatted: a burst of lines shares it.
    cache: RefCell<Option<(i64, String)>>,
}

impl PartialEq for DateFormat {
    fn eq(&self, other: &Self) -> bool {
        self.pieces == other.pieces
    }
}

impl Eq for DateFormat {}

/// The token lengths each letter forms, longest first.
fn lengths(c: char) -> &'static [usize] {
    match c {
        'Y' => &[4, 2],
        'M' | 'd' => &[4, 3, 2, 1],
        'D' | 'H' | 'h' | 'm' | 's' | 'Z' => &[2, 1],
        'S' => &[3],
        'A' | 'a' => &[1],
        _ => &[],
    }
}

fn token(c: char, n: usize) -> Option<Token> {
    use Token::*;
    Some(match (c, n) {
        ('Y', 4) => Year4,
        ('Y', 2) => Year2,
        ('M', 1) => Month,
        ('M', 2) => Month2,
        ('M', 3) => MonthShort,
        ('M', 4) => MonthLong,
        ('D', 1) => Day,
        ('D', 2) => Day2,
        ('d', 1) => Weekday,
        ('d', 2) => WeekdayMin,
        ('d', 3) => WeekdayShort,
        ('d', 4) => WeekdayLong,
        ('H', 1) => Hour,
        ('H', 2) => Hour2,
        ('h', 1) => Hour12,
        ('h', 2) => Hour12_2,
        ('m', 1) => Minute,
        ('m', 2) => Minute2,
        ('s', 1) => Second,
        ('s', 2) => Second2,
        ('S', 3) => Millis,
        ('Z', 1) => Offset,
        ('Z', 2) => OffsetCompact,
        ('A', 1) => MeridiemUpper,
        ('a', 1) => MeridiemLower,
        _ => return None,
    })
}

impl DateFormat {
    /// Parses `format`; every string is a valid format (unknown text is literal).
    pub fn parse(format: &str) -> DateFormat {
        let chars: Vec<char> = format.chars().collect();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '[' {
                if let Some(end) = chars[i + 1..].iter().position(|&x| x == ']') {
                    literal.extend(&chars[i + 1..i + 1 + end]);
                    i += end + 2;
                    continue;
                }
            }
            let run = chars[i..].iter().take_while(|&&x| x == c).count();
            let mut left = run;
            while left > 0 {
                match lengths(c).iter().find(|&&n| n <= left) {
                    Some(&n) => {
                        if !literal.is_empty() {
                            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                        }
                        if let Some(t) = token(c, n) {
                            pieces.push(Piece::Token(t));
                        }
                        left -= n;
                    }
                    None => {
                        literal.extend(std::iter::repeat_n(c, left));
                        left = 0;
                    }
                }
            }
            i += run;
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        let millis = pieces.contains(&Piece::Token(Token::Millis));
        // localtime_r is not required to read TZ by itself; tzset makes it so.
        // SAFETY: tzset only (re)reads the TZ variable and the zone file.
        unsafe { tzset() };
        DateFormat {
            pieces,
            millis,
            cache: RefCell::new(None),
        }
    }

    /// Appends `t` formatted in local time to `out`.
    pub fn push(&self, t: SystemTime, out: &mut Vec<u8>) {
        let ms = millis_since_epoch(t);
        let key = if self.millis { ms } else { ms.div_euclid(1000) };
        if let Ok(cache) = self.cache.try_borrow() {
            if let Some((k, text)) = cache.as_ref() {
                if *k == key {
                    out.extend_from_slice(text.as_bytes());
                    return;
                }
            }
        }
        let text = self.render(ms);
        out.extend_from_slice(text.as_bytes());
        if let Ok(mut cache) = self.cache.try_borrow_mut() {
            *cache = Some((key, text));
        }
    }

    /// `t` formatted, as a string (tests, `runner check`).
    pub fn format(&self, t: SystemTime) -> String {
        self.render(millis_since_epoch(t))
    }

    fn render(&self, ms: i64) -> String {
        let lt = local_time(ms.div_euclid(1000));
        let milli = ms.rem_euclid(1000);
        let mut s = String::with_capacity(32);
        use std::fmt::Write;
        let h12 = if lt.hour % 12 == 0 { 12 } else { lt.hour % 12 };
        for p in &self.pieces {
            let _ = match p {
                Piece::Literal(l) => s.write_str(l),
                Piece::Token(t) => match t {
                    Token::Year4 => write!(s, "{:04}", lt.year),
                    Token::Year2 => write!(s, "{:02}", lt.year.rem_euclid(100)),
                    Token::Month => write!(s, "{}", lt.month),
                    Token::Month2 => write!(s, "{:02}", lt.month),
                    Token::MonthShort => s.write_str(&MONTHS[month_index(lt.month)][..3]),
                    Token::MonthLong => s.write_str(MONTHS[month_index(lt.month)]),
                    Token::Day => write!(s, "{}", lt.day),
                    Token::Day2 => write!(s, "{:02}", lt.day),
                    Token::Weekday => write!(s, "{}", lt.weekday),
                    Token::WeekdayMin => s.write_str(&WEEKDAYS[lt.weekday % 7][..2]),
                    Token::WeekdayShort => s.write_str(&WEEKDAYS[lt.weekday % 7][..3]),
                    Token::WeekdayLong => s.write_str(WEEKDAYS[lt.weekday % 7]),
                    Token::Hour => write!(s, "{}", lt.hour),
                    Token::Hour2 => write!(s, "{:02}", lt.hour),
                    Token::Hour12 => write!(s, "{h12}"),
                    Token::Hour12_2 => write!(s, "{h12:02}"),
                    Token::Minute => write!(s, "{}", lt.minute),
                    Token::Minute2 => write!(s, "{:02}", lt.minute),
                    Token::Second => write!(s, "{}", lt.second),
                    Token::Second2 => write!(s, "{:02}", lt.second),
                    Token::Millis => write!(s, "{milli:03}"),
                    Token::Offset => s.write_str(&offset(lt.offset, true)),
                    Token::OffsetCompact => s.write_str(&offset(lt.offset, false)),
                    Token::MeridiemUpper => s.write_str(if lt.hour < 12 { "AM" } else { "PM" }),
                    Token::MeridiemLower => s.write_str(if lt.hour < 12 { "am" } else { "pm" }),
                },
            };
        }
        s
    }
}

fn month_index(month: u32) -> usize {
    (month.clamp(1, 12) - 1) as usize
}

/// `+05:30` (colon) or `+0530`.
fn offset(secs: i64, colon: bool) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let m = secs.abs() / 60;
    if colon {
        format!("{sign}{:02}:{:02}", m / 60, m % 60)
    } else {
        format!("{sign}{:02}{:02}", m / 60, m % 60)
    }
}

fn millis_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            let ceil = i64::from(d.as_nanos() % 1_000_000 != 0);
            -whole.saturating_add(ceil)
        }
    }
}

/// A broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Local {
    year: i64,
    month: u32,
    day: u32,
    weekday: usize,
    hour: u32,
    minute: u32,
    second: u32,
    /// Seconds east of UTC.
    offset: i64,
}

extern "C" {
    fn tzset();
}

fn local_time(secs: i64) -> Local {
    let t = secs as libc::time_t;
    // SAFETY: an all-zero tm is a valid value; localtime_r fills it or fails.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to a time_t and a tm owned by this frame.
    let ok = !unsafe { libc::localtime_r(&t, &mut tm) }.is_null();
    if !ok {
        // Out of range for the C library: fall back to UTC arithmetic.
        return utc(secs);
    }
    Local {
        year: i64::from(tm.tm_year) + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        weekday: tm.tm_wday.rem_euclid(7) as usize,
        hour: tm.tm_hour as u32,
        minute: tm.tm_min as u32,
        second: tm.tm_sec as u32,
        offset: tm.tm_gmtoff as i64,
    }
}

fn utc(secs: i64) -> Local {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = super::decor::civil_from_days(days);
    Local {
        year: y,
        month: m as u32,
        day: d as u32,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as usize,
        hour: (sod / 3600) as u32,
        minute: (sod % 3600 / 60) as u32,
        second: (sod % 60) as u32,
        offset: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// The tests run in whatever zone the machine has: compare against libc's own
    /// offset for the instant, and check the UTC fallback separately.
    fn offset_at(ms: u64) -> i64 {
        local_time((ms / 1000) as i64).offset
    }

    #[test]
    fn every_token_in_utc_fallback() {
        let l = utc(1_700_000_000); // 2023-11-14T22:13:20Z, a Tuesday
        assert_eq!(
            (l.year, l.month, l.day, l.weekday, l.hour, l.minute, l.second),
            (2023, 11, 14, 2, 22, 13, 20)
        );
    }

    #[test]
    fn tokens_render_like_dayjs() {
        let t = 1_700_000_000_500u64;
        let f = DateFormat::parse("YYYY-MM-DD HH:mm:ss.SSS");
        let l = local_time((t / 1000) as i64);
        let want = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.500",
            l.year, l.month, l.day, l.hour, l.minute, l.second
        );
        assert_eq!(f.format(at(t)), want);
        let off = offset_at(t);
        let z = DateFormat::parse("Z|ZZ").format(at(t));
        assert_eq!(z, format!("{}|{}", offset(off, true), offset(off, false)));
    }

    #[test]
    fn names_twelve_hour_clock_and_short_forms() {
        let f = DateFormat::parse("dddd ddd dd d MMMM MMM M D YY h hh A a H m s");
        let t = 1_700_000_000_500u64;
        let l = local_time((t / 1000) as i64);
        let h12 = if l.hour % 12 == 0 { 12 } else { l.hour % 12 };
        let day = WEEKDAYS[l.weekday];
        let mon = MONTHS[(l.month - 1) as usize];
        let ap = if l.hour < 12 { "AM" } else { "PM" };
        let want = format!(
            "{day} {} {} {} {mon} {} {} {} {:02} {h12} {h12:02} {ap} {} {} {} {}",
            &day[..3],
            &day[..2],
            l.weekday,
            &mon[..3],
            l.month,
            l.day,
            l.year % 100,
            ap.to_lowercase(),
            l.hour,
            l.minute,
            l.second
        );
        assert_eq!(f.format(at(t)), want);
    }

    #[test]
    fn brackets_and_unknown_letters_are_literal() {
        let f = DateFormat::parse("[YYYY at] HH[h] Y SS x [xyz");
        let t = 1_700_000_000_500u64;
        let l = local_time((t / 1000) as i64);
        assert_eq!(
            f.format(at(t)),
            format!("YYYY at {:02}h Y SS x [xyz", l.hour)
        );
    }

    #[test]
    fn long_runs_are_cut_greedily() {
        let f = DateFormat::parse("YYYYYY");
        assert_eq!(
            f.pieces,
            vec![Piece::Token(Token::Year4), Piece::Token(Token::Year2)]
        );
    }

    #[test]
    fn the_cache_follows_the_clock() {
        let f = DateFormat::parse("ss.SSS");
        let mut out = Vec::new();
        f.push(at(1_000), &mut out);
        out.push(b' ');
        f.push(at(1_000), &mut out);
        out.push(b' ');
        f.push(at(2_345), &mut out);
        let text = String::from_utf8(out).unwrap();
        let parts: Vec<&str> = text.split(' ').collect();
        assert_eq!(parts[0], parts[1]);
        assert!(parts[2].ends_with(".345"), "{text}");
    }

    #[test]
    fn offsets_have_sign_hours_and_minutes() {
        assert_eq!(offset(0, true), "+00:00");
        assert_eq!(offset(19_800, true), "+05:30");
        assert_eq!(offset(-18_000, false), "-0500");
    }
}
