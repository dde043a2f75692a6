//! The servers' ports against the kernel's ephemeral range: the range Linux picks the
//! local port of an outgoing connection from. The driver's clients open thousands of
//! connections, so a server port inside that range can be taken by one of them in the
//! fraction of a second between an unstable server's stop and its restart, and the
//! restart fails with "Address already in use".

/// Where Linux keeps the range, as `LOW<whitespace>HIGH`.
pub const EPHEMERAL_RANGE_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The ephemeral range in force, as `LOW–HIGH`, when the `count` ports from `base`
/// overlap it; `None` when they do not, or the range cannot be read.
pub fn ephemeral_overlap(base: u16, count: u16) -> Option<String> {
    let range = std::fs::read_to_string(EPHEMERAL_RANGE_FILE).ok()?;
    overlap(&range, base, count)
}

fn overlap(range: &str, base: u16, count: u16) -> Option<String> {
    let mut bounds = range.split_whitespace().map(str::parse::<u32>);
    let (Some(Ok(low)), Some(Ok(high))) = (bounds.next(), bounds.next()) else {
        return None;
    };
    let (first, last) = (u32::from(base), u32::from(base) + u32::from(count.max(1)) - 1);
    (first <= high && last >= low).then(|| format!("{low}–{high}"))
}

#[cfg(test)]
mod tests {
    use super::overlap;

    #[test]
    fn blocks_inside_or_astride_the_range_overlap_it() {
        let linux = "32768\t60999\n";
        assert_eq!(overlap(linux, 50000, 4).as_deref(), Some("32768–60999"));
        assert_eq!(overlap(linux, 32765, 4).as_deref(), Some("32768–60999"), "the last port is inside");
        assert_eq!(overlap(linux, 60999, 4).as_deref(), Some("32768–60999"), "the first port is inside");
        assert_eq!(overlap(linux, crate::driver::DEFAULT_BASE_PORT, 4), None, "the default block is below it");
        assert_eq!(overlap(linux, 32764, 4), None, "32764–32767 ends just below");
        assert_eq!(overlap(linux, 61000, 4), None);
        assert_eq!(overlap("garbage", 50000, 4), None);
    }
}
