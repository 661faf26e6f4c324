//! How sizes read in vrbulk's output (reports, `plan`, the simulator's messages): binary units,
//! one decimal, the way vSphere shows datastore and disk sizes.

/// Bytes in GiB with one decimal: `40.0 GiB`. For sizes an operator compares with what vSphere
/// shows for a datastore (free space, space a replication needs).
pub fn gib(bytes: i64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Bytes in the largest binary unit that keeps the number at least 1, with one decimal:
/// `1.5 TiB`; plain bytes below 1 KiB.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A link's rate as network people say it: `940 Mbit/s`, `12.5 Mbit/s` below 100, and
/// `2.35 Gbit/s` from 10 Gbit/s up, where the last Mbit/s digits say nothing.
pub fn mbps(rate: f64) -> String {
    if rate >= 10_000.0 {
        format!("{:.2} Gbit/s", rate / 1000.0)
    } else if rate >= 100.0 {
        format!("{rate:.0} Mbit/s")
    } else {
        format!("{rate:.1} Mbit/s")
    }
}

/// What one sync was seen to carry at most: `one sync at most 200 Mbit/s`, or that no sync was
/// seen copying across two looks (syncs shorter than the looks) when it is 0.
pub fn pace(rate: f64) -> String {
    if rate > 0.0 {
        format!("one sync at most {}", mbps(rate))
    } else {
        "no sync seen copying across two looks".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gib_has_one_decimal() {
        assert_eq!(gib(0), "0.0 GiB");
        assert_eq!(gib(40 << 30), "40.0 GiB");
        assert_eq!(gib(3 << 29), "1.5 GiB");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * (1 << 40)), "3.0 TiB");
    }

    #[test]
    fn rates_keep_the_digits_that_mean_something() {
        assert_eq!(mbps(0.0), "0.0 Mbit/s");
        assert_eq!(mbps(12.54), "12.5 Mbit/s");
        assert_eq!(mbps(940.4), "940 Mbit/s");
        assert_eq!(mbps(9_999.0), "9999 Mbit/s");
        assert_eq!(mbps(23_456.0), "23.46 Gbit/s");
    }
}
