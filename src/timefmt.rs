//! How times and lengths of time read in vrbulk's output (status, reports): UTC, to the second,
//! whatever the operator's time zone, so that two sites' reports line up.

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{ms} ms after 1970"),
    }
}

/// A length of time the way an operator reads it: `45s`, `3m 10s`, `2h 05m`, `3d 04h`.
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_renders_unix_milliseconds_as_a_calendar_time() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_999), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(utc(4_107_542_399_000), "2100-02-28 23:59:59 UTC");
    }

    #[test]
    fn spans_read_in_the_two_largest_units() {
        assert_eq!(span(-5), "0s");
        assert_eq!(span(45_000), "45s");
        assert_eq!(span(190_000), "3m 10s");
        assert_eq!(span(7_500_000), "2h 05m");
        assert_eq!(span(273_600_000), "3d 04h");
    }
}
