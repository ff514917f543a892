//! Time helpers: everything is Unix milliseconds, UTC.

/// Formats Unix ms as `YYYY-MM-DD hh:mm:ss.mmm` (UTC), nfdump's form.
pub fn format_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// `YYYYMMDDhhmm` for a bin start (nfdump's file-name stamp).
pub fn stamp_minutes(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!("{y:04}{mo:02}{d:02}{:02}{:02}", s / 3600, s / 60 % 60)
}

/// Unix ms of a UTC civil date and time.
pub fn ms_from_civil(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> u64 {
    let days = days_from_civil(y, mo, d);
    ((days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1000) as u64
}

/// Howard Hinnant's algorithm: days since 1970-01-01 to (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn formats_known_instants() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00.000");
        // 2024-01-01 00:00:00 UTC, the mix's base time.
        let t = ms_from_civil(2024, 1, 1, 0, 0, 0);
        assert_eq!(t, 1_704_067_200_000);
        assert_eq!(format_ms(t + 61_005), "2024-01-01 00:01:01.005");
        assert_eq!(stamp_minutes(t + 300_000), "202401010005");
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }
}
