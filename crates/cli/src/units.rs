//! Parsing and printing of durations, sizes and counts on the command line.

use anyhow::{Result, bail};

/// `90s`, `15m`, `1h`, `7d`, `500ms`, or plain seconds.
pub fn parse_duration_ms(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("'{s}' is not a duration (try 90s, 15m, 1h, 7d)"))?;
    let mult = match unit {
        "" | "s" => 1000.0,
        "ms" => 1.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        "w" => 7.0 * 86_400_000.0,
        _ => bail!("'{s}': unknown duration unit '{unit}' (use ms, s, m, h, d, w)"),
    };
    Ok((n * mult).round() as u64)
}

/// `1000`, `10k`, `2.5M`, `1G` (powers of 1000).
pub fn parse_count(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('M') => (&s[..s.len() - 1], 1e6),
        Some('G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    let n: f64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| anyhow::anyhow!("'{s}' is not a count (try 100000, 100k, 2.5M)"))?;
    Ok((n * mult).round() as u64)
}

/// A human-readable quantity with SI prefixes: 1.2 k, 34.5 M.
pub fn si(v: f64) -> String {
    let a = v.abs();
    let (d, p) = if a >= 1e12 {
        (1e12, " T")
    } else if a >= 1e9 {
        (1e9, " G")
    } else if a >= 1e6 {
        (1e6, " M")
    } else if a >= 1e3 {
        (1e3, " k")
    } else {
        return if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        };
    };
    format!("{:.1}{p}", v / d)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn durations_and_counts_parse() {
        assert_eq!(parse_duration_ms("90s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("1h").unwrap(), 3_600_000);
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("15").unwrap(), 15_000);
        assert!(parse_duration_ms("1y").is_err());
        assert_eq!(parse_count("2.5M").unwrap(), 2_500_000);
        assert_eq!(parse_count("100k").unwrap(), 100_000);
        assert!(parse_count("lots").is_err());
        assert_eq!(si(1234.0), "1.2 k");
        assert_eq!(si(12.0), "12");
    }
}
