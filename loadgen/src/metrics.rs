//! loadgen's own metrics, exported on `--listen` so Prometheus sees the generator's
//! side of the story: what it offered, what came back, and whether it kept up.

pub const REQUESTS: &str = "loadgen_requests_total";
pub const LATENCY: &str = "loadgen_latency_seconds";
pub const SCHEDULE_LAG: &str = "loadgen_schedule_lag_seconds";
pub const DROPPED: &str = "loadgen_dropped_total";
pub const IN_FLIGHT: &str = "loadgen_in_flight_requests";
pub const CURRENT_STEP_RATE: &str = "loadgen_offered_rate";
pub const STEP: &str = "loadgen_current_step";
pub const BREAKING_POINT: &str = "loadgen_breaking_point_rate";

const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const LAG_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

pub fn histograms() -> [(&'static str, &'static [f64]); 2] {
    [(LATENCY, LATENCY_BUCKETS), (SCHEDULE_LAG, LAG_BUCKETS)]
}

pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(REQUESTS, "Requests completed, by scenario, request, outcome and segment");
    describe_histogram!(LATENCY, Unit::Seconds, "Latency from the due time (corrected for coordinated omission)");
    describe_histogram!(SCHEDULE_LAG, Unit::Seconds, "How late the generator sent requests (its own saturation)");
    describe_counter!(DROPPED, "Requests due but not sent: the in-flight cap was reached");
    describe_gauge!(IN_FLIGHT, "Requests in flight");
    describe_gauge!(CURRENT_STEP_RATE, "Rate this instance offers now, requests/s");
    describe_gauge!(STEP, "Index of the step running now");
    describe_gauge!(BREAKING_POINT, "Highest rate that held the SLO (after a breakpoint run)");
}
