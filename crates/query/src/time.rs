//! Time ranges as users type them.
//!
//! | form              | meaning                                                        |
//! |-------------------|----------------------------------------------------------------|
//! | `-1h`             | the last hour before the anchor                                |
//! | `START..END`      | from START (inclusive) to END (exclusive); either may be empty |
//! | `START+DURATION`  | DURATION from START                                            |
//! | `DATE`            | that whole day (UTC)                                           |
//! | `all` or empty    | everything                                                     |
//!
//! A point is absolute — `2024-05-01`, `2024-05-01T10:00`, `2024-05-01 10:00:30`, nfdump's
//! `2024/05/01.10:00:30`, or `@1714557600` (Unix seconds); all UTC, a trailing `Z` allowed —
//! or relative to the anchor: `-90m`, `-7d`, or `now` (the anchor itself). Durations take
//! `ms`, `s`, `m`, `h`, `d` and `w`, and combine (`1h30m`).
//!
//! The anchor is the end of the newest stored bin of the selected links (for a live collector
//! that is now; for imported history it is the end of the data, so `-1h` is its last hour).

use flowdrill_model::time::ms_from_civil;
use std::ops::Range;

/// A time specification that does not parse; the message says which forms are accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "time range '{spec}': {reason}; write -1h, 2024-05-01, 2024-05-01T10:00..2024-05-01T12:00, 2024-05-01T10:00+2h or all"
)]
pub struct TimeError {
    pub spec: String,
    pub reason: String,
}

/// Parses `spec` into `[start, end)` Unix milliseconds, relative points counted from `anchor`.
pub fn parse_range(spec: &str, anchor: u64) -> Result<Range<u64>, TimeError> {
    let err = |reason: String| TimeError {
        spec: spec.to_string(),
        reason,
    };
    let s = spec.trim();
    if s.is_empty() || s == "all" {
        return Ok(0..u64::MAX);
    }
    let range = if let Some((a, b)) = s.split_once("..") {
        let start = if a.trim().is_empty() {
            0
        } else {
            point(a.trim(), anchor).map_err(err)?
        };
        let end = if b.trim().is_empty() {
            u64::MAX
        } else {
            point(b.trim(), anchor).map_err(err)?
        };
        start..end
    } else if let Some(d) = s.strip_prefix('-') {
        let d = duration(d).map_err(err)?;
        anchor.saturating_sub(d)..anchor
    } else if let Some((a, d)) = split_plus(s) {
        let start = point(a, anchor).map_err(err)?;
        start..start.saturating_add(duration(d).map_err(err)?)
    } else if let Some(day) = date(s) {
        day..day + 86_400_000
    } else {
        point(s, anchor).map_err(err)?;
        return Err(err(
            "a single time is not a range: add ..END, +DURATION, or give a date for a whole day"
                .into(),
        ));
    };
    if range.start >= range.end {
        return Err(err("the end is not after the start".into()));
    }
    Ok(range)
}

/// `START+DURATION`, where START itself may contain `+` only in a trailing `+00:00` offset we
/// do not accept anyway: split at the last `+`.
fn split_plus(s: &str) -> Option<(&str, &str)> {
    let i = s.rfind('+')?;
    (i > 0).then(|| (s[..i].trim(), s[i + 1..].trim()))
}

/// A duration such as `90m`, `1h30m`, `7d`, `250ms`.
pub fn duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "'{s}' is not a duration (a number then ms, s, m, h, d or w)"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("'{}' is too large", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "" => return Err(format!("'{s}' needs a unit: ms, s, m, h, d or w")),
            u => return Err(format!("unknown time unit '{u}': use ms, s, m, h, d or w")),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("'{s}' is too long"))?;
    }
    Ok(total)
}

fn point(s: &str, anchor: u64) -> Result<u64, String> {
    if s == "now" {
        return Ok(anchor);
    }
    if let Some(d) = s.strip_prefix('-') {
        return Ok(anchor.saturating_sub(duration(d)?));
    }
    if let Some(secs) = s.strip_prefix('@') {
        let v: u64 = secs
            .parse()
            .map_err(|_| format!("'{s}' is not @UNIX_SECONDS"))?;
        return v
            .checked_mul(1000)
            .ok_or_else(|| format!("'{s}' is too large"));
    }
    datetime(s).ok_or_else(|| format!("'{s}' is not a time"))
}

/// `YYYY-MM-DD` or `YYYY/MM/DD`: midnight UTC.
fn date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 10 || !(b[4] == b'-' && b[7] == b'-' || b[4] == b'/' && b[7] == b'/') {
        return None;
    }
    let y: i64 = s[0..4].parse().ok()?;
    let mo: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&mo) || !(1..=days_in(y, mo)).contains(&d)
    {
        return None;
    }
    Some(ms_from_civil(y, mo, d, 0, 0, 0))
}

fn days_in(y: i64, mo: u32) -> u32 {
    match mo {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A date, then `T`, a space or `.` (nfdump), then `HH[:MM[:SS[.mmm]]]`, optional `Z`.
fn datetime(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    if s.len() < 10 {
        return None;
    }
    let day = date(s.get(..10)?)?;
    if s.len() == 10 {
        return Some(day);
    }
    let sep = s.as_bytes()[10];
    if !matches!(sep, b'T' | b' ' | b'.') {
        return None;
    }
    let time = &s[11..];
    let (hms, frac) = match time.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (time, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let num = |p: &str, max: u64| -> Option<u64> {
        let v: u64 = p.parse().ok()?;
        (v <= max).then_some(v)
    };
    let h = num(parts[0], 23)?;
    let m = parts.get(1).map_or(Some(0), |p| num(p, 59))?;
    let sec = parts.get(2).map_or(Some(0), |p| num(p, 59))?;
    let ms = match frac {
        None => 0,
        Some(f) if (1..=3).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u64>().ok()? * 10u64.pow(3 - f.len() as u32)
        }
        Some(_) => return None,
    };
    Some(day + h * 3_600_000 + m * 60_000 + sec * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;
    // 2024-05-01T00:00:00Z
    const MAY1: u64 = 1_714_521_600_000;

    #[test]
    fn absolute_forms_agree() {
        let a = MAY1 + 10 * 3_600_000;
        for s in [
            "2024-05-01T10:00..2024-05-01T12:00",
            "2024-05-01 10:00:00..2024-05-01 12:00:00",
            "2024/05/01.10:00:00..2024/05/01.12:00:00",
            "2024-05-01T10Z..2024-05-01T12:00:00.000Z",
            "@1714557600..@1714564800",
            "2024-05-01T10:00+2h",
            "2024-05-01T10:00+1h60m",
        ] {
            assert_eq!(parse_range(s, 0).unwrap(), a..a + 7_200_000, "{s}");
        }
        assert_eq!(parse_range("2024-05-01", 0).unwrap(), MAY1..MAY1 + DAY);
        assert_eq!(
            parse_range("2024-05-01T10:00:00.25..", 0).unwrap(),
            a + 250..u64::MAX
        );
    }

    #[test]
    fn relative_forms_count_back_from_the_anchor() {
        let anchor = MAY1 + DAY;
        assert_eq!(
            parse_range("-1h", anchor).unwrap(),
            anchor - 3_600_000..anchor
        );
        assert_eq!(
            parse_range("-7d", anchor).unwrap(),
            anchor - 7 * DAY..anchor
        );
        assert_eq!(
            parse_range("-2h..-1h", anchor).unwrap(),
            anchor - 7_200_000..anchor - 3_600_000
        );
        assert_eq!(
            parse_range("-90m..now", anchor).unwrap(),
            anchor - 5_400_000..anchor
        );
        assert_eq!(parse_range("", anchor).unwrap(), 0..u64::MAX);
        assert_eq!(parse_range("all", anchor).unwrap(), 0..u64::MAX);
        // Before the epoch saturates at 0 rather than wrapping.
        assert_eq!(parse_range("-1w", 1000).unwrap(), 0..1000);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (s, want) in [
            ("-1y", "unknown time unit 'y'"),
            ("-h", "not a duration"),
            ("-10", "needs a unit"),
            ("2024-13-01", "is not a time"),
            ("2024-02-30", "is not a time"),
            ("2024-05-01T25:00..", "is not a time"),
            ("2024-05-01T10:00", "a single time is not a range"),
            ("2024-05-02..2024-05-01", "the end is not after the start"),
            ("yesterday", "is not a time"),
            ("-99999999999999999999d", "too large"),
        ] {
            let e = parse_range(s, MAY1).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
            assert!(e.contains("write -1h"), "{e}");
        }
        assert_eq!(duration("1h30m").unwrap(), 5_400_000, "durations combine");
    }
}
