//! Durations, memory sizes and signal names as users write them.

use std::time::Duration;

use nix::sys::signal::Signal;

/// The longest duration accepted: what fits in a u64 of nanoseconds (about 584 years),
/// so that deadline arithmetic downstream can never overflow.
const MAX_NANOS: u128 = u64::MAX as u128;

/// A decimal number split into an exact fraction `numerator / 10^scale`.
/// Returns None for anything that is not `DIGITS[.DIGITS]` or is absurdly long.
fn decimal(s: &str) -> Option<(u128, u32)> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // More digits than this cannot be meaningful and would overflow u128.
    let frac = frac.trim_end_matches('0');
    if int.len() + frac.len() > 30 {
        return None;
    }
    let mut n: u128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        n = n.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    Some((n, frac.len() as u32))
}

/// Splits "1.5s" into ("1.5", "s"), allowing spaces in between.
fn number_and_unit(v: &str) -> (&str, &str) {
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    (&v[..end], v[end..].trim_start())
}

/// Parses a duration: plain digits are milliseconds (PM2's unit), otherwise a number
/// with `ms`, `s`, `m` or `h` (decimals allowed: "1.5s").
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{v}` is not a duration: expected milliseconds or a number with a unit (ms, s, m, h), like \"500ms\" or \"1.5s\""
        )
    };
    let t = v.trim();
    if t.starts_with('-') {
        return Err(format!("`{v}` is not a duration: it must not be negative"));
    }
    let (num, unit) = number_and_unit(t);
    let nanos_per_unit: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(bad()),
    };
    let (n, scale) = decimal(num).ok_or_else(bad)?;
    let nanos = n
        .checked_mul(nanos_per_unit)
        .map(|x| x / 10u128.pow(scale))
        .filter(|x| *x <= MAX_NANOS)
        .ok_or_else(|| format!("`{v}` is too long a duration"))?;
    Ok(Duration::from_nanos(nanos as u64))
}

/// A duration given as an integer: milliseconds.
pub(crate) fn duration_from_millis(ms: i64) -> Result<Duration, String> {
    if ms < 0 {
        return Err(format!("`{ms}` is not a duration: it must not be negative"));
    }
    let nanos = (ms as u128) * 1_000_000;
    if nanos > MAX_NANOS {
        return Err(format!("`{ms}` is too long a duration"));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// Parses a memory size: plain digits are bytes; `K`, `M`, `G`, `T` (optionally followed
/// by `B` or `iB`, any case) are powers of 1024. "1.5G" is allowed and rounds down.
pub fn parse_size(v: &str) -> Result<u64, String> {
    let bad =
        || format!("`{v}` is not a size: expected bytes or a number with K, M or G, like \"500M\"");
    let t = v.trim();
    if t.starts_with('-') {
        return Err(format!("`{v}` is not a size: it must not be negative"));
    }
    let (num, unit) = number_and_unit(t);
    let unit = unit.to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let multiplier: u128 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad()),
    };
    let (n, scale) = decimal(num).ok_or_else(bad)?;
    n.checked_mul(multiplier)
        .map(|x| x / 10u128.pow(scale))
        .and_then(|x| u64::try_from(x).ok())
        .ok_or_else(|| format!("`{v}` is too large a size"))
}

/// Parses a signal by name ("SIGTERM", "TERM", "term") or number ("15").
pub fn parse_signal(s: &str) -> Option<Signal> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i32 = t.parse().ok()?;
        return Signal::try_from(n).ok();
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().ok()
}

/// "1500ms", "5s", "2m": the shortest exact way to write a duration, for `runner check`.
pub(crate) fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    for (unit, per) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ] {
        if nanos >= per && nanos % per == 0 {
            return format!("{}{unit}", nanos / per);
        }
    }
    if nanos == 0 {
        return "0ms".to_string();
    }
    format!("{}us", d.as_micros())
}

/// "500M", "1G", "1536K", or bytes: the shortest exact way to write a size.
pub(crate) fn format_size(bytes: u64) -> String {
    for (unit, per) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes >= per && bytes % per == 0 {
            return format!("{}{unit}", bytes / per);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_with_and_without_units() {
        assert_eq!(parse_duration("500"), Ok(ms(500)));
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration(" 3 s "), Ok(ms(3000)));
        assert_eq!(parse_duration("1S"), Ok(ms(1000)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("0"), Ok(ms(0)));
        assert_eq!(parse_duration("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(
            parse_duration("1.000000000000000000000000000s"),
            Ok(ms(1000))
        );
    }

    #[test]
    fn bad_durations_name_the_value() {
        for v in ["", "abc", "5x", "1.2.3s", ".", "s", "5 s s", "1e3"] {
            let e = parse_duration(v).unwrap_err();
            assert!(e.contains(&format!("`{v}`")), "{v}: {e}");
        }
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
        assert!(parse_duration("99999999999999999999h")
            .unwrap_err()
            .contains("too long"));
        assert!(parse_duration("9999999999999999999999999999999999999999").is_err());
        assert!(duration_from_millis(-1).is_err());
        assert!(duration_from_millis(i64::MAX).is_err());
        assert_eq!(duration_from_millis(1600), Ok(ms(1600)));
    }

    #[test]
    fn sizes_are_powers_of_1024() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512K"), Ok(512 * 1024));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("500mb"), Ok(500 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("10B"), Ok(10));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
    }

    #[test]
    fn bad_sizes_name_the_value() {
        for v in ["", "M", "5X", "-5M", "5MM", "1.2.3G"] {
            let e = parse_size(v).unwrap_err();
            assert!(e.contains(&format!("`{v}`")), "{v}: {e}");
        }
        assert!(parse_size("99999999999G")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn signals_by_name_short_name_lowercase_or_number() {
        assert_eq!(parse_signal("SIGTERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("TERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("term"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("sigusr2"), Some(Signal::SIGUSR2));
        assert_eq!(parse_signal("15"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("99999999999"), None);
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal(""), None);
    }

    #[test]
    fn formatting_round_trips_for_check_output() {
        assert_eq!(format_duration(ms(1600)), "1600ms");
        assert_eq!(format_duration(ms(5000)), "5s");
        assert_eq!(format_duration(ms(120_000)), "2m");
        assert_eq!(format_duration(ms(0)), "0ms");
        assert_eq!(format_size(500 << 20), "500M");
        assert_eq!(format_size(1000), "1000");
    }
}
