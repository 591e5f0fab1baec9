//! How values read in the console: event times, durations, byte counts, and the filter
//! syntax shared by every filterable pane.
//!
//! Times come from the events, never from the wall clock of the machine running the console,
//! so a replay shows when things happened and snapshots of the screen are reproducible.

/// `HH:MM:SS.mmm` (UTC) of an event time, when the boot-to-epoch offset is known, else the
/// seconds since boot.
pub fn format_time(ts_ns: u64, boot_offset: Option<i128>) -> String {
    match boot_offset {
        Some(offset) => {
            let unix_ns = i128::from(ts_ns) + offset;
            let unix_ms = unix_ns.div_euclid(1_000_000);
            let ms = unix_ms.rem_euclid(1000);
            let day_s = unix_ms.div_euclid(1000).rem_euclid(86_400);
            format!(
                "{:02}:{:02}:{:02}.{:03}",
                day_s / 3600,
                day_s / 60 % 60,
                day_s % 60,
                ms
            )
        }
        None => format!("{:.3}s", ts_ns as f64 / 1e9),
    }
}

/// A short duration: `850ms`, `12.4s`, `3m05s`, `2h10m`.
pub fn format_duration(ns: u64) -> String {
    let ms = ns / 1_000_000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60)
    }
}

/// A replay position: `m:ss.s`.
pub fn format_position(ns: u64) -> String {
    let tenths = ns / 100_000_000;
    format!("{}:{:02}.{}", tenths / 600, tenths / 10 % 60, tenths % 10)
}

pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A count that fits a narrow column: `999`, `1.2k`, `45k`, `3.1M`.
pub fn format_count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1000..=9_999 => format!("{:.1}k", n as f64 / 1000.0),
        10_000..=999_999 => format!("{}k", n / 1000),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// The first `max` characters of `text` on one line (newlines and tabs become spaces), with
/// an ellipsis when cut.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 3));
    let mut chars = 0;
    let mut last_space = false;
    for c in text.chars() {
        let c = if c.is_whitespace() { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if chars == max {
            out.push('…');
            return out;
        }
        out.push(c);
        chars += 1;
    }
    out
}

/// A filter is whitespace-separated terms; an item matches when each term occurs (ignoring
/// case) in one of its fields.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_come_from_event_clocks() {
        // 2026-11-22 00:52:03.250 UTC as boot offset + monotonic time.
        let unix_ns: i128 = 1_795_308_723_250_000_000;
        let ts_ns = 5_000_000_000u64;
        let offset = unix_ns - i128::from(ts_ns);
        assert_eq!(format_time(ts_ns, Some(offset)), "00:52:03.250");
        assert_eq!(format_time(1_500_000_000, None), "1.500s");
        assert_eq!(format_duration(850_000_000), "850ms");
        assert_eq!(format_duration(185_000_000_000), "3m05s");
        assert_eq!(format_position(65_250_000_000), "1:05.2");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_count(45_300), "45k");
    }

    #[test]
    fn one_line_collapses_and_cuts() {
        assert_eq!(one_line("SELECT *\n  FROM t", 100), "SELECT * FROM t");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("héllo", 5), "héllo");
    }
}
