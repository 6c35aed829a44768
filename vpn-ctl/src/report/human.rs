//! Numbers as a person reads them in text output: dates, durations and
//! byte counts. JSON keeps the raw numbers.

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// 7530 → "2h 5m"; the two largest units.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Unix seconds → "2026-11-30 13:13:35 UTC".
pub fn date(unix: u64) -> String {
    let (y, mo, d) = civil_from_days((unix / 86400) as i64);
    let t = unix % 86400;
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} UTC",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// "received 1.2 MiB, sent 3.4 MiB": a session's traffic, for its last log line.
pub fn traffic(rx_bytes: u64, tx_bytes: u64) -> String {
    format!("received {}, sent {}", bytes(rx_bytes), bytes(tx_bytes))
}

/// "2026-11-30 13:13:35 UTC (2h 5m ago)".
pub fn date_and_age(unix: u64, now: u64) -> String {
    format!(
        "{} ({} ago)",
        date(unix),
        duration(now.saturating_sub(unix))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(192), "3m 12s");
        assert_eq!(duration(7530), "2h 5m");
        assert_eq!(duration(3 * 86400 + 4 * 3600 + 5), "3d 4h");
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(date(1_795_476_014), "2026-11-23 23:20:14 UTC");
        assert_eq!(
            date_and_age(100, 7630),
            "1970-01-01 00:01:40 UTC (2h 5m ago)"
        );
    }
}
