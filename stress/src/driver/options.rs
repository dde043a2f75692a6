//! `grpc-stress driver`'s options, each checked by its parser (a bad value exits 2
//! with one line naming the option).

use std::path::PathBuf;
use std::time::Duration;

use super::matrix::{PATTERNS, SERVERS};
use crate::units::{parse_bytes, parse_duration_range as parse_range, positive_bytes, positive_duration};

/// Options of `grpc-stress driver`.
#[derive(Clone, Debug, clap::Args)]
pub struct DriverOptions {
    /// How long to run.
    #[arg(long, default_value = "60s", value_parser = positive_duration)]
    pub duration: Duration,

    /// Where logs, certificates, charts and summary.json go (default:
    /// ./grpc-stress-<unix time>).
    #[arg(long)]
    pub working_dir: Option<PathBuf>,

    /// Draw one SVG per stable component (live heap and RSS over time) and an HTML
    /// summary linking them.
    #[arg(long)]
    pub gen_charts: bool,

    /// Verbose: the driver logs each stop and restart; children log at debug level.
    #[arg(short, long)]
    pub verbose: bool,

    /// Memory ceiling of each server process (live heap and RSS).
    #[arg(long, default_value = "400MiB", value_parser = positive_bytes)]
    pub server_ceiling: u64,

    /// Memory ceiling of each client process (live heap and RSS).
    #[arg(long, default_value = "60MiB", value_parser = positive_bytes)]
    pub client_ceiling: u64,

    /// A stable component leaks when its live heap grows faster than this per second
    /// (with a significant trend) after the warm-up.
    #[arg(long, default_value = "64KiB", value_parser = parse_bytes)]
    pub leak_threshold: u64,

    /// Samples before this are left out of leak detection (start-up allocation).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,

    /// Interval between memory samples.
    #[arg(long, default_value = "250ms", value_parser = positive_duration)]
    pub sample_interval: Duration,

    /// First server port; the four servers use it and the next three. The default
    /// lies below Linux's ephemeral range (32768–60999), so no outgoing connection can
    /// hold a server's port while it restarts; a block inside the range in force
    /// (/proc/sys/net/ipv4/ip_local_port_range) is warned about at start.
    #[arg(long, default_value_t = DEFAULT_BASE_PORT, value_parser = parse_base_port)]
    pub base_port: u16,

    /// Servers to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = SERVERS.map(|(name, _, _)| name), value_parser = parse_server)]
    pub servers: Vec<String>,

    /// Client patterns to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = PATTERNS.map(|(name, _)| name), value_parser = parse_pattern)]
    pub patterns: Vec<String>,

    /// Client stabilities to run (comma-separated: stable, unstable).
    #[arg(long, value_delimiter = ',', default_values = STABILITIES, value_parser = parse_stability)]
    pub client_stabilities: Vec<String>,

    /// Unstable components are stopped after a random time in this range (MIN..MAX,
    /// MIN above 0).
    #[arg(long, default_value = "16s..20s", value_parser = parse_kill_interval)]
    pub kill_interval: (Duration, Duration),

    /// …and started again after a random delay in this range.
    #[arg(long, default_value = "200ms..500ms", value_parser = parse_range)]
    pub restart_delay: (Duration, Duration),

    /// Debugging leak detection: make a component leak, NAME=BYTES_PER_SECOND.
    #[arg(long, hide = true, value_parser = parse_debug_leak)]
    pub debug_leak: Vec<(String, u64)>,
}

/// The first port of the default block, 25000–25003.
pub const DEFAULT_BASE_PORT: u16 = 25000;

/// `--client-stabilities` values.
const STABILITIES: [&str; 2] = ["stable", "unstable"];

fn parse_base_port(text: &str) -> Result<u16, String> {
    let highest = u16::MAX - (SERVERS.len() as u16 - 1);
    match text.parse::<u16>() {
        Ok(port) if (1..=highest).contains(&port) => Ok(port),
        _ => Err(format!(
            "must be a port from 1 to {highest} (the {} servers use it and the ports after it)",
            SERVERS.len()
        )),
    }
}

fn one_of(text: &str, what: &str, names: &[&str]) -> Result<String, String> {
    if names.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(format!("not a {what}; one of: {}", names.join(", ")))
    }
}

fn parse_server(text: &str) -> Result<String, String> {
    one_of(text, "server", &SERVERS.map(|(name, _, _)| name))
}

fn parse_pattern(text: &str) -> Result<String, String> {
    one_of(text, "client pattern", &PATTERNS.map(|(name, _)| name))
}

fn parse_stability(text: &str) -> Result<String, String> {
    one_of(text, "stability", &STABILITIES)
}

fn parse_kill_interval(text: &str) -> Result<(Duration, Duration), String> {
    let (low, high) = parse_range(text)?;
    if low.is_zero() {
        return Err("MIN must be more than 0 (a range such as 16s..20s)".into());
    }
    Ok((low, high))
}

fn parse_debug_leak(text: &str) -> Result<(String, u64), String> {
    let (name, rate) = text.split_once('=').ok_or("expected NAME=BYTES_PER_SECOND")?;
    Ok((name.to_string(), parse_bytes(rate)?))
}
