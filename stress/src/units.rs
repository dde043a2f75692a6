//! Command-line units: byte sizes such as `400MiB`, and optional addresses (`none`).

use std::net::SocketAddr;
use std::time::Duration;

/// Parses `400MiB`, `60M`, `1.5GiB`, `4096`. K/M/G and KiB/MiB/GiB are both powers of
/// 1024 (memory ceilings are about RAM); `KB`/`MB`/`GB` are powers of 1000.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{text}` is not a size such as 400MiB"))?;
    let multiplier: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KiB" | "k" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => return Err(format!("unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)")),
    };
    Ok((number * multiplier) as u64)
}

/// A size above zero (a ceiling).
pub fn positive_bytes(text: &str) -> Result<u64, String> {
    match parse_bytes(text)? {
        0 => Err("must be more than 0 bytes (a size such as 400MiB)".into()),
        bytes => Ok(bytes),
    }
}

/// A count of at least 1.
pub fn positive_u32(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) | Err(_) => Err(format!("must be a whole number from 1 to {}", u32::MAX)),
        Ok(count) => Ok(count),
    }
}

/// A limit of at least 1.
pub fn positive_usize(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) | Err(_) => Err(format!("must be a whole number from 1 to {}", usize::MAX)),
        Ok(count) => Ok(count),
    }
}

/// A duration above zero (an interval, a timeout).
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| format!("{error} (a duration such as 250ms)"))?;
    if duration.is_zero() {
        return Err("must be more than 0 (a duration such as 250ms)".into());
    }
    Ok(duration)
}

/// An address, or `none` to turn the listener off.
pub fn parse_optional_address(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|error| format!("`{text}`: {error} (an address such as 127.0.0.1:50052, or none)"))
}

/// Parses a duration range `MIN..MAX`, e.g. `16s..20s` or `25s..35s`.
pub fn parse_duration_range(text: &str) -> Result<(Duration, Duration), String> {
    let (low, high) = text.split_once("..").ok_or_else(|| format!("`{text}` is not a range such as 16s..20s"))?;
    let low = humantime::parse_duration(low).map_err(|error| format!("`{low}`: {error}"))?;
    let high = humantime::parse_duration(high).map_err(|error| format!("`{high}`: {error}"))?;
    if low > high {
        return Err(format!("`{text}`: the low end is above the high end"));
    }
    Ok((low, high))
}

/// Formats bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("400MiB").unwrap(), 400 * 1024 * 1024);
        assert_eq!(parse_bytes("60M").unwrap(), 60 * 1024 * 1024);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("2KB").unwrap(), 2000);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
        assert!(positive_bytes("0MiB").is_err());
        assert_eq!(positive_bytes("1KiB").unwrap(), 1024);
    }

    #[test]
    fn positive_durations() {
        assert_eq!(positive_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(positive_duration("0s").unwrap_err().contains("more than 0"));
        assert!(positive_duration("soon").is_err());
    }

    #[test]
    fn duration_ranges() {
        assert_eq!(parse_duration_range("25s..35s").unwrap(), (Duration::from_secs(25), Duration::from_secs(35)));
        assert!(parse_duration_range("35s..25s").is_err());
        assert!(parse_duration_range("25s").is_err());
    }
}
