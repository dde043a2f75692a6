-- Retention: drops the measurement history older than a cutoff a whole chunk or day
-- partition at a time (dropping a table is quick and leaves no dead rows behind, unlike
-- DELETE), then the hourly rollup of the hours that no longer hold any row, so
-- /statistics keeps describing what is stored. device-api calls it every hour when
-- --retention is set; the cutoff is always older than the oldest time it accepts.
--
-- Returns how many chunks or partitions it dropped. A chunk or partition that reaches
-- past the cutoff is kept whole, and so is the rollup of its hours.
CREATE FUNCTION loadlab_drop_measurements_before(cutoff timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    dropped integer := 0;
    kept_from timestamptz;
    part record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'measurement'::regclass) THEN
        -- Native: the day partitions are named measurement_YYYYMMDD (UTC days).
        FOR part IN
            SELECT c.oid::regclass AS name,
                   (to_date(substring(c.relname FROM 13), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC') AS day_start
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'measurement'::regclass AND c.relname ~ '^measurement_[0-9]{8}$'
            ORDER BY c.relname
        LOOP
            IF part.day_start + interval '1 day' <= cutoff THEN
                EXECUTE format('DROP TABLE %s', part.name);
                dropped := dropped + 1;
            ELSIF kept_from IS NULL THEN
                kept_from := part.day_start;
            END IF;
        END LOOP;
    ELSE
        -- TimescaleDB: drop_chunks drops the chunks that end at or before the cutoff.
        SELECT count(*) INTO dropped FROM drop_chunks('measurement', older_than => cutoff);
        SELECT min(range_start) INTO kept_from
        FROM timescaledb_information.chunks
        WHERE hypertable_schema = current_schema() AND hypertable_name = 'measurement';
    END IF;
    -- least() ignores a NULL: no chunk left means nothing is stored before the cutoff.
    DELETE FROM measurement_hourly WHERE hour + interval '1 hour' <= least(kept_from, cutoff);
    RETURN dropped;
END
$$;
