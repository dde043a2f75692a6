//! Value parsers for loadgen's options: every number is checked for being finite and
//! in its range, every duration for being positive and bounded, every URL, method and
//! header for being valid, so bad input is refused at the command line (exit 2) with
//! the option, the value and what is allowed, before anything starts.

use std::time::Duration;

use hyper::Method;
use hyper::header::{HeaderName, HeaderValue};

/// Highest rate loadgen will schedule, requests/s.
pub const MAX_RATE: f64 = 10_000_000.0;
/// Longest run, step, period or think time.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most users, devices or requests in flight.
pub const MAX_LANES: u64 = 1_000_000;

/// A number in a range, each end open or closed.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub min: f64,
    pub min_open: bool,
    pub max: f64,
    pub max_open: bool,
}

impl Range {
    pub const fn closed(min: f64, max: f64) -> Self {
        Self { min, min_open: false, max, max_open: false }
    }

    /// (min, max]
    pub const fn above(min: f64, max: f64) -> Self {
        Self { min, min_open: true, max, max_open: false }
    }

    fn contains(&self, value: f64) -> bool {
        let low = if self.min_open { value > self.min } else { value >= self.min };
        let high = if self.max_open { value < self.max } else { value <= self.max };
        value.is_finite() && low && high
    }

    fn describe(&self) -> String {
        format!(
            "{}{}, {}{}",
            if self.min_open { "(" } else { "[" },
            number(self.min),
            number(self.max),
            if self.max_open { ")" } else { "]" }
        )
    }

    /// Parses `text` as a number in this range; `what` names the quantity.
    pub fn parse(&self, text: &str, what: &str) -> Result<f64, String> {
        let value: f64 =
            text.trim().parse().map_err(|_| format!("not a number; give {what} in {}", self.describe()))?;
        if !self.contains(value) {
            return Err(format!("out of range; give {what} in {}", self.describe()));
        }
        Ok(value)
    }
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{}", value as i64) } else { format!("{value}") }
}

/// A rate for a schedule: (0, 10,000,000] requests/s.
pub fn rate(text: &str) -> Result<f64, String> {
    Range::above(0.0, MAX_RATE).parse(text, "requests/s")
}

/// A rate that may be zero (where a ramp starts).
pub fn rate_or_zero(text: &str) -> Result<f64, String> {
    Range::closed(0.0, MAX_RATE).parse(text, "requests/s")
}

/// A growth factor for the breakpoint search: (1, 100].
pub fn factor(text: &str) -> Result<f64, String> {
    Range::above(1.0, 100.0).parse(text, "a factor")
}

/// A percentage: [0, 100].
pub fn percent(text: &str) -> Result<f64, String> {
    Range::closed(0.0, 100.0).parse(text, "a percentage")
}

/// A jitter percentage: [0, 90] (a period may shrink to a tenth, never to nothing).
pub fn jitter_percent(text: &str) -> Result<f64, String> {
    Range::closed(0.0, 90.0).parse(text, "a percentage")
}

/// A quantile: (0, 1].
pub fn quantile(text: &str) -> Result<f64, String> {
    Range::above(0.0, 1.0).parse(text, "a quantile (0.99 for p99)")
}

/// A fraction of a rate: (0, 1].
pub fn fraction(text: &str) -> Result<f64, String> {
    Range::above(0.0, 1.0).parse(text, "a fraction")
}

/// A whole number in [min, max].
pub fn count<T: TryFrom<u64>>(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let value: u64 = text.trim().parse().map_err(|_| format!("not a whole number; give one in [{min}, {max}]"))?;
        if !(min..=max).contains(&value) {
            return Err(format!("out of range; give a whole number in [{min}, {max}]"));
        }
        T::try_from(value).map_err(|_| format!("out of range; give a whole number in [{min}, {max}]"))
    }
}

/// A duration such as `10s`, `250ms`, `1h`: above zero, at most 30 days.
pub fn duration(text: &str) -> Result<Duration, String> {
    let value = humantime::parse_duration(text.trim()).map_err(|error| format!("{error} (e.g. 10s, 250ms, 1h)"))?;
    if value.is_zero() || value > MAX_DURATION {
        return Err("out of range; give a duration above 0 and at most 30 days".into());
    }
    Ok(value)
}

/// A duration that may be zero (think time), at most an hour.
pub fn pause(text: &str) -> Result<Duration, String> {
    let value = humantime::parse_duration(text.trim()).map_err(|error| format!("{error} (e.g. 0s, 25s)"))?;
    if value > Duration::from_secs(3600) {
        return Err("out of range; give a pause of at most 1h".into());
    }
    Ok(value)
}

/// A timeout: above zero, at most an hour.
pub fn timeout(text: &str) -> Result<Duration, String> {
    let value = duration(text)?;
    if value > Duration::from_secs(3600) {
        return Err("out of range; give a timeout above 0 and at most 1h".into());
    }
    Ok(value)
}

/// `MIN..MAX` pauses, MIN ≤ MAX.
pub fn pause_range(text: &str) -> Result<(Duration, Duration), String> {
    let (min, max) = text.split_once("..").ok_or("expected MIN..MAX, e.g. 25s..35s")?;
    let (min, max) = (pause(min)?, pause(max)?);
    if min > max {
        return Err("MIN is above MAX".into());
    }
    Ok((min, max))
}

/// An HTTP or HTTPS URL with a host.
pub fn url(text: &str) -> Result<String, String> {
    crate::http::Target::parse(text).map(|_| text.to_string())
}

/// An HTTP method (a token: letters, digits and `!#$%&'*+-.^_|~`).
pub fn method(text: &str) -> Result<Method, String> {
    Method::from_bytes(text.as_bytes()).map_err(|_| "not an HTTP method (a token such as GET, POST, PURGE)".to_string())
}

/// `Name: value`.
pub fn header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text.split_once(':').ok_or("expected `Name: value`")?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("`{}` is not a header name", name.trim()))?;
    // The message's framing is loadgen's: Content-Length from --body, no other coding.
    if name == hyper::header::CONTENT_LENGTH || name == hyper::header::TRANSFER_ENCODING {
        return Err(format!("`{name}` is set by loadgen from --body; it cannot be given"));
    }
    let value = HeaderValue::from_str(value.trim()).map_err(|_| "the value has characters a header cannot carry")?;
    Ok((name, value))
}

/// The points of `--stages`: (ramp duration, rate reached).
#[derive(Clone, Debug, PartialEq)]
pub struct Stages(pub Vec<(Duration, f64)>);

/// `DURATION:RATE,…` ramps.
pub fn stages(text: &str) -> Result<Stages, String> {
    let stages = text
        .split(',')
        .map(|stage| {
            let (length, to) = stage.split_once(':').ok_or_else(|| format!("`{stage}`: expected DURATION:RATE"))?;
            let length = duration(length).map_err(|error| format!("`{stage}`: {error}"))?;
            let to = rate_or_zero(to).map_err(|error| format!("`{stage}`: {error}"))?;
            Ok((length, to))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let total: Duration = stages.iter().map(|(length, _)| *length).sum();
    if total > MAX_DURATION {
        return Err("the stages last more than 30 days".into());
    }
    Ok(Stages(stages))
}

/// An address to listen on, or `none`.
pub fn listen(text: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| "not an address such as 127.0.0.1:8089, or `none`".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_outside_their_range_are_refused_in_words() {
        for bad in ["inf", "-inf", "NaN", "0", "-5", "1e12", "x", ""] {
            let error = rate(bad).unwrap_err();
            assert!(error.contains("(0, 10000000]"), "{bad}: {error}");
        }
        assert_eq!(rate("1e3"), Ok(1000.0));
        assert!(factor("1").is_err() && factor("0.5").is_err() && factor("1.5").is_ok());
        assert!(quantile("2").is_err() && quantile("0").is_err() && quantile("1").is_ok());
        assert!(percent("-1").is_err() && percent("1000").is_err() && percent("99.5").is_ok());
        assert!(count::<u32>(1, 10)("0").is_err() && count::<u32>(1, 10)("-1").is_err());
        assert_eq!(count::<u32>(1, 10)("10"), Ok(10));
    }

    #[test]
    fn durations_are_positive_and_bounded() {
        assert!(duration("0s").is_err());
        assert!(duration("99999999999h").is_err());
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(pause_range("0s..0s"), Ok((Duration::ZERO, Duration::ZERO)));
        assert!(pause_range("2s..1s").is_err());
        assert!(stages("10s:inf").is_err());
        assert!(stages("1s:100,0s:5").is_err());
    }

    #[test]
    fn methods_urls_and_headers_are_checked() {
        assert!(method("BAD METHOD").is_err());
        assert!(method("").is_err());
        assert_eq!(method("PURGE").unwrap().as_str(), "PURGE");
        assert!(url("").is_err());
        assert!(url("http://127.0.0.1:8080/").is_ok());
        assert!(header("X-Y: z").is_ok());
        assert!(header("bad header: z").is_err());
        assert!(header("nocolon").is_err());
    }
}
