-- The device-collection schema. The original tables keep their names and column types
-- (device, measurement, command); device_state and measurement_hourly are kept up to
-- date by the write path so /command and /statistics never scan the measurement history.

-- A device is only its id; the id is also its credential (the servant-auth-cookie).
CREATE TABLE device (
    id uuid PRIMARY KEY
);

-- Unused, as in the original; kept so the schema stays compatible with it.
CREATE TABLE command (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id uuid NOT NULL REFERENCES device (id),
    issued_at timestamptz NOT NULL DEFAULT now(),
    body jsonb NOT NULL
);

-- measurement is time-partitioned: a TimescaleDB hypertable (1-day chunks until
-- device-api sets the interval it derives from --expected-ingest-rate) or native range
-- partitions of one day each, made ahead of need by
-- loadlab_ensure_measurement_partitions() (called by device-api at start and every
-- hour). The default partition only catches rows outside the made ranges, which
-- validation keeps from happening.
--
-- device-api decides the engine before it migrates (--storage, and whether the server
-- preloads TimescaleDB) and passes it in the session setting loadlab.storage
-- ('timescaledb' or 'native'). Without it (another migration tool), TimescaleDB is
-- used when it is installed and preloaded. The preload is checked first because
-- CREATE EXTENSION timescaledb without it ends the session (FATAL, which no exception
-- handler catches): the loader's settings exist only where the library is preloaded.
DO $$
DECLARE
    wanted text := coalesce(nullif(current_setting('loadlab.storage', true), ''), 'auto');
BEGIN
    IF wanted NOT IN ('auto', 'timescaledb', 'native') THEN
        RAISE EXCEPTION 'loadlab.storage is %, expected timescaledb or native', wanted;
    END IF;
    IF wanted = 'auto' THEN
        wanted := CASE
            WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN 'timescaledb'
            WHEN EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
                 AND current_setting('timescaledb.bgw_launcher_poll_time', true) IS NOT NULL THEN 'timescaledb'
            ELSE 'native'
        END;
    END IF;
    IF wanted = 'timescaledb' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        CREATE TABLE measurement (
            device_id    uuid             NOT NULL REFERENCES device (id),
            time         timestamptz      NOT NULL,
            charge_now   integer          NOT NULL,
            charge_full  integer          NOT NULL,
            charge_rate  double precision NOT NULL,
            ambient_temp double precision NOT NULL,
            water_temp   double precision NOT NULL,
            water_level  integer          NOT NULL
        );
        PERFORM create_hypertable('measurement', 'time', chunk_time_interval => interval '1 day');
    ELSE
        CREATE TABLE measurement (
            device_id    uuid             NOT NULL REFERENCES device (id),
            time         timestamptz      NOT NULL,
            charge_now   integer          NOT NULL,
            charge_full  integer          NOT NULL,
            charge_rate  double precision NOT NULL,
            ambient_temp double precision NOT NULL,
            water_temp   double precision NOT NULL,
            water_level  integer          NOT NULL
        ) PARTITION BY RANGE (time);
        CREATE TABLE measurement_default PARTITION OF measurement DEFAULT;
        -- BRIN: nearly free to maintain on append-mostly time data, and enough for
        -- the range scans Grafana makes over raw measurements.
        CREATE INDEX measurement_time_brin ON measurement USING brin (time);
    END IF;
END
$$;

-- Creates the missing one-day partitions of measurement for [first_day, last_day].
-- Returns how many it created. A day whose rows already sit in the default partition
-- is skipped with a warning instead of failing the caller.
CREATE FUNCTION loadlab_ensure_measurement_partitions(first_day date, last_day date)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date := first_day;
    partition_name text;
    created integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'measurement'::regclass) THEN
        RETURN 0; -- a hypertable: TimescaleDB makes its own chunks
    END IF;
    WHILE day <= last_day LOOP
        partition_name := format('measurement_%s', to_char(day, 'YYYYMMDD'));
        IF to_regclass(partition_name) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF measurement FOR VALUES FROM (%L) TO (%L)',
                    partition_name,
                    (day::timestamp AT TIME ZONE 'UTC'),
                    ((day + 1)::timestamp AT TIME ZONE 'UTC'));
                created := created + 1;
            EXCEPTION WHEN check_violation THEN
                RAISE WARNING 'partition % not created: rows for that day are in measurement_default', partition_name;
            END;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN created;
END
$$;

-- The latest measurement of each device, maintained by the write path. /command reads
-- one row of it; /statistics sums it.
CREATE TABLE device_state (
    device_id    uuid             PRIMARY KEY REFERENCES device (id),
    time         timestamptz      NOT NULL,
    charge_now   integer          NOT NULL,
    charge_full  integer          NOT NULL,
    charge_rate  double precision NOT NULL,
    ambient_temp double precision NOT NULL,
    water_temp   double precision NOT NULL,
    water_level  integer          NOT NULL
);

-- Per-hour rollup of measurement, maintained by the write path. Each batch writer adds
-- to its own row (writer) so concurrent writers never wait on each other's row locks;
-- readers sum over writers. Count, sum and sum of squares are enough for the mean and
-- the population standard deviation, and add up across writers and hours.
CREATE TABLE measurement_hourly (
    hour                   timestamptz      NOT NULL,
    writer                 smallint         NOT NULL,
    measurement_count      bigint           NOT NULL,
    water_temp_sum         double precision NOT NULL,
    water_temp_sum_squares double precision NOT NULL,
    PRIMARY KEY (hour, writer)
);
