-- The bottleneck signals of monitoring/bottlenecks.toml read from the lab's Prometheus
-- while a plan runs (every couple of seconds, each against its limit), kept so a
-- finished run shows the saturation building up as its live view did.
create table signal_samples (
    run_id text not null references runs (id) on delete cascade,
    position integer not null,
    sample text not null,
    primary key (run_id, position)
) without rowid;
