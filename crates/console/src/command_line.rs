//! `:` command mode: jump by name instead of by arrow keys. `:agent KEY` (or part of an
//! agent's key or name), `:finding F3` (an id, dashes and case ignored: `inc-1`, `F-3`),
//! `:time 01:55:44` (a time of day as the panes show it, UTC) and `:+30s` / `:-2m` (relative
//! to the replay's playhead). Short forms: `:a`, `:f`, `:t`.
//!
//! This module only reads the text; the app resolves names against what it shows and
//! turns a time into a seek. The grammar is four words and a clock, so it is parsed by hand.

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Select and open the agent whose key or name matches.
    Agent(String),
    /// Select and open the finding with this id.
    Finding(String),
    /// Go to a time of day (nanoseconds since midnight, UTC).
    ClockTime(u64),
    /// Move the replay by this many nanoseconds.
    Relative(i64),
}

/// What the commands are, for the hint line and errors.
pub const SYNTAX: &str = "agent KEY · finding ID · time HH:MM:SS · +30s";

pub fn parse(text: &str) -> Result<Command, String> {
    let text = text.trim();
    let (word, rest) = text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(w, r)| (w, r.trim()));
    match word {
        "" => Err(format!("commands: {SYNTAX}")),
        "agent" | "a" => non_empty(rest, "agent KEY").map(Command::Agent),
        "finding" | "f" => non_empty(rest, "finding ID").map(Command::Finding),
        "time" | "t" => time(rest),
        _ if rest.is_empty() && (word.starts_with(['+', '-']) || word.contains(':')) => time(word),
        _ => Err(format!("unknown command {word:?} (commands: {SYNTAX})")),
    }
}

fn non_empty(rest: &str, usage: &str) -> Result<String, String> {
    if rest.is_empty() {
        Err(format!("usage: {usage}"))
    } else {
        Ok(rest.to_string())
    }
}

fn time(text: &str) -> Result<Command, String> {
    let usage = || format!("{text:?} is not a time: HH:MM[:SS[.mmm]], +30s, -500ms, +2m");
    if let Some(sign) = text.chars().next().filter(|c| *c == '+' || *c == '-') {
        let ns = duration_ns(&text[1..]).ok_or_else(usage)?;
        let ns = i64::try_from(ns).map_err(|_| usage())?;
        return Ok(Command::Relative(if sign == '-' { -ns } else { ns }));
    }
    let (clock, fraction) = text.split_once('.').unwrap_or((text, ""));
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len()) || fraction.len() > 9 {
        return Err(usage());
    }
    let number = |s: &str, max: u64| -> Option<u64> {
        (!s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
            .filter(|n| *n <= max)
    };
    let hours = number(parts[0], 23).ok_or_else(usage)?;
    let minutes = number(parts[1], 59).ok_or_else(usage)?;
    let seconds = match parts.get(2) {
        Some(s) => number(s, 59).ok_or_else(usage)?,
        None => 0,
    };
    let fraction_ns = if fraction.is_empty() {
        0
    } else if fraction.bytes().all(|b| b.is_ascii_digit()) {
        format!("{fraction:0<9}")
            .parse::<u64>()
            .map_err(|_| usage())?
    } else {
        return Err(usage());
    };
    Ok(Command::ClockTime(
        ((hours * 60 + minutes) * 60 + seconds) * 1_000_000_000 + fraction_ns,
    ))
}

/// `30s`, `1.5s`, `500ms`, `2m`, `1h`: a duration in nanoseconds.
fn duration_ns(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" | "" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let ns = value * scale;
    (0.0..9.2e18).contains(&ns).then_some(ns as u64)
}

/// The time in nanoseconds since boot (as events carry it) of `clock_ns` past midnight on the
/// day closest to `reference_ns`, given `boot_offset` (Unix time minus boot time): a capture
/// that runs over midnight still finds `23:59:58` and `00:00:02`.
pub fn clock_to_event_time(clock_ns: u64, reference_ns: u64, boot_offset: i128) -> Option<u64> {
    const DAY: i128 = 86_400_000_000_000;
    let reference_unix = i128::from(reference_ns) + boot_offset;
    let midnight = reference_unix.div_euclid(DAY) * DAY;
    let best = [-DAY, 0, DAY]
        .into_iter()
        .map(|day| midnight + day + i128::from(clock_ns))
        .min_by_key(|unix| (unix - reference_unix).abs())?;
    u64::try_from(best - boot_offset).ok()
}

/// Ids compared the way people type them: `F3`, `f-3` and `f3` are one id.
pub fn same_id(typed: &str, id: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    norm(typed) == norm(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_their_short_forms() {
        assert_eq!(
            parse("agent incident"),
            Ok(Command::Agent("incident".into()))
        );
        assert_eq!(parse(" a  k8s:x "), Ok(Command::Agent("k8s:x".into())));
        assert_eq!(parse("finding F3"), Ok(Command::Finding("F3".into())));
        assert_eq!(parse("f inc-1"), Ok(Command::Finding("inc-1".into())));
        assert_eq!(
            parse("time 01:55:44"),
            Ok(Command::ClockTime((3600 + 55 * 60 + 44) * 1_000_000_000))
        );
        assert_eq!(
            parse("01:55:44.410"),
            Ok(Command::ClockTime(
                (3600 + 55 * 60 + 44) * 1_000_000_000 + 410_000_000
            ))
        );
        assert_eq!(parse("t 23:05"), Ok(Command::ClockTime(83_100_000_000_000)));
        assert_eq!(parse("+30s"), Ok(Command::Relative(30_000_000_000)));
        assert_eq!(parse("-500ms"), Ok(Command::Relative(-500_000_000)));
        assert_eq!(parse("time +2m"), Ok(Command::Relative(120_000_000_000)));
        for bad in [
            "",
            "agent",
            "jump x",
            "time 25:00",
            "time 1:2:3:4",
            "+3x",
            "t 10:60",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn clock_times_land_on_the_nearest_day_and_ids_ignore_dashes() {
        let offset = 1_700_000_000_000_000_000i128; // some Unix time minus boot time
        let day = 86_400_000_000_000u64;
        // The reference is 23:59:00 on some day; 00:01:00 is two minutes later, next day.
        let midnight_unix = (offset + 10 * day as i128).div_euclid(day as i128) * day as i128;
        let reference = (midnight_unix + 86_340_000_000_000 - offset) as u64;
        let later = clock_to_event_time(60_000_000_000, reference, offset).unwrap();
        assert_eq!(later - reference, 120_000_000_000);
        let earlier = clock_to_event_time(86_280_000_000_000, reference, offset).unwrap();
        assert_eq!(reference - earlier, 60_000_000_000);
        assert!(same_id("F3", "f-3"));
        assert!(same_id("INC-1", "inc-1"));
        assert!(!same_id("f3", "f-30"));
    }
}
