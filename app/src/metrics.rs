//! Metric names and histogram buckets: one place, so the dashboards in `monitoring/`
//! and the code agree. Names follow `device_api_<thing>_<unit>`.

pub const REQUESTS: &str = "device_api_requests_total";
pub const REQUEST_DURATION: &str = "device_api_request_duration_seconds";
pub const REQUESTS_IN_FLIGHT: &str = "device_api_requests_in_flight";
pub const MEASUREMENTS_INGESTED: &str = "device_api_measurements_ingested_total";
pub const BATCH_ROWS: &str = "device_api_batch_rows";
pub const BATCH_COMMIT_DURATION: &str = "device_api_batch_commit_duration_seconds";
pub const BATCH_FAILURES: &str = "device_api_batch_failures_total";
pub const INGEST_QUEUE_DEPTH: &str = "device_api_ingest_queue_depth";
pub const POOL_SIZE: &str = "device_api_db_pool_connections";
pub const POOL_IN_USE: &str = "device_api_db_pool_in_use_connections";
pub const POOL_IDLE: &str = "device_api_db_pool_idle_connections";
pub const POOL_IN_USE_SECONDS: &str = "device_api_db_pool_in_use_seconds";
pub const POOL_MAX: &str = "device_api_db_pool_max_connections";
pub const POOL_ACQUIRE_DURATION: &str = "device_api_db_pool_acquire_duration_seconds";
pub const STORAGE_ENGINE: &str = "device_api_storage_engine_info";
pub const DATABASE_UP: &str = "device_api_database_up";
pub const CONNECTIONS_OPEN: &str = "device_api_connections_open";
pub const CONNECTIONS_REFUSED: &str = "device_api_connections_refused_total";
pub const CONNECTION_TIMEOUTS: &str = "device_api_connection_timeouts_total";

/// Latency buckets (seconds): 100 µs to 10 s, dense where an API's SLO usually sits.
const LATENCY: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
    5.0, 10.0,
];
/// Batch sizes (rows).
const ROWS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];

/// Every histogram with its buckets, for the recorder.
pub fn histograms() -> [(&'static str, &'static [f64]); 4] {
    [
        (REQUEST_DURATION, LATENCY),
        (BATCH_COMMIT_DURATION, LATENCY),
        (POOL_ACQUIRE_DURATION, LATENCY),
        (BATCH_ROWS, ROWS),
    ]
}

/// Help texts, shown as `# HELP` lines.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(REQUESTS, "HTTP requests answered, by route, method and status");
    describe_histogram!(REQUEST_DURATION, Unit::Seconds, "HTTP request duration, by route, method and status");
    describe_gauge!(REQUESTS_IN_FLIGHT, "HTTP requests being handled");
    describe_counter!(MEASUREMENTS_INGESTED, "Measurements committed to the database");
    describe_histogram!(BATCH_ROWS, "Rows per group-commit batch");
    describe_histogram!(BATCH_COMMIT_DURATION, Unit::Seconds, "Time to write and commit one batch");
    describe_counter!(BATCH_FAILURES, "Batches not committed, by reason (unavailable, failed, split)");
    describe_gauge!(INGEST_QUEUE_DEPTH, "Requests waiting for a writer");
    describe_gauge!(POOL_SIZE, "Open database connections");
    describe_gauge!(POOL_IN_USE, "Database connections checked out");
    describe_gauge!(POOL_IDLE, "Idle database connections");
    describe_gauge!(
        POOL_IN_USE_SECONDS,
        Unit::Seconds,
        "Connections in use added up over time (sampled every 10 ms); its rate is the average in use"
    );
    describe_gauge!(POOL_MAX, "Most database connections the pool may open");
    describe_histogram!(POOL_ACQUIRE_DURATION, Unit::Seconds, "Time a request waited for a database connection");
    describe_gauge!(STORAGE_ENGINE, "1 for the engine that stores measurement (label engine)");
    describe_gauge!(DATABASE_UP, "1 when the last readiness check reached the migrated database");
    describe_gauge!(CONNECTIONS_OPEN, "Client connections open");
    describe_counter!(CONNECTIONS_REFUSED, "Connections answered 503 because --max-connections were open");
    describe_counter!(
        CONNECTION_TIMEOUTS,
        "Requests and connections cut off by a timeout, by phase (header_read, body_read, keep_alive)"
    );
}
