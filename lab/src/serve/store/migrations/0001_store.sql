-- The run store: every run the lab knows, whoever started it (`loadlab serve`,
-- `loadlab run --store`, an import of results/<run id>/, or a test created through the
-- results server API), in one table listed by time, experiment, plan and state; the
-- large parts (the summary with its histograms, every second, every step, clients'
-- data points, kept files) in tables of their own, read only for one run.
create table runs (
    id text primary key,
    -- plan: a load run; test: a results-server test (its clients send data points)
    kind text not null check (kind in ('plan', 'test')),
    state text not null check (state in ('created', 'running', 'finished', 'incomplete', 'failed', 'cancelled')),
    -- held, threshold, interrupted, failed, timeout, cancelled, incomplete: the verdict
    -- in one word, for filters and for /metrics
    outcome text,
    -- serve, run, import, api
    source text not null,
    plan text,
    experiment text,
    description text,
    -- RFC 3339, UTC, milliseconds, `Z`: sorts as text in time order
    created_at text not null,
    started_at text,
    finished_at text,
    verdict text,
    exit_code integer,
    breaking_point real,
    broken_rate real,
    reference_rate real,
    p99_at_reference_ms real,
    duration_seconds real,
    target text,
    scenario text,
    error text,
    -- the process that runs it: a run whose process is gone before it finished is
    -- incomplete
    owner_pid integer,
    owner_start_time integer,
    -- the JSON asked to start it; topology.toml and lab.json as used
    request text,
    topology text,
    lab text
);
create index runs_by_time on runs (created_at, id);
create index runs_by_experiment on runs (experiment, created_at, id);
create index runs_by_plan on runs (plan, created_at, id);
create index runs_by_state on runs (state, created_at, id);

-- loadgen's summary.json (the report, with every step's histograms).
create table summaries (
    run_id text primary key references runs (id) on delete cascade,
    summary text not null
);

-- One row per second of each step (loadgen's SecondRow as JSON), appended while the
-- run goes on; a second that two steps share has a row for each, so rows are kept by
-- their position in the run.
create table seconds (
    run_id text not null references runs (id) on delete cascade,
    position integer not null,
    row text not null,
    primary key (run_id, position)
) without rowid;

-- Each step's report (with its verdict and histograms) as it ends.
create table steps (
    run_id text not null references runs (id) on delete cascade,
    position integer not null,
    step text not null,
    primary key (run_id, position)
) without rowid;

-- Clients' data points: a time-stamped named value with labels.
create table datapoints (
    id integer primary key,
    run_id text not null references runs (id) on delete cascade,
    at text not null,
    client text,
    name text not null,
    value real not null,
    labels text not null default '{}'
);
create index datapoints_by_run on datapoints (run_id, id);

-- Files kept with a run (an imported run's metrics.csv and report.html).
create table files (
    run_id text not null references runs (id) on delete cascade,
    name text not null,
    content blob not null,
    primary key (run_id, name)
) without rowid;
