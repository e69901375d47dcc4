-- The retention for the meetings too. `meeting_position` holds a row for
-- every location the meetings were computed from, so it is as large as
-- `location`: it is partitioned by day (of `creation_time`, UTC) as 0009
-- did for `location`, and a retention drops its old days whole, never
-- deleting rows. `meeting` holds a row per pair and period (far fewer):
-- its rows that ended before the retention's cutoff are deleted, a
-- bounded batch at a time.
--
-- The table is converted in place, as `location` was: the existing table
-- becomes the partition `meeting_position_history`, for every time before
-- tomorrow (UTC), attached after a CHECK constraint proves its rows fit;
-- only the primary key, which now holds the time, is built anew.
-- `meeting_position_default` takes a row no other partition does; the
-- days ahead get their own partitions, created by
-- `meeting_position_maintain` below, which the writers run with
-- `location_maintain`.
--
-- The primary key is (location_id, creation_time): a location's time
-- never changes, and the meetings target passes it with the id, so a
-- location folded in again is found by both and skipped as before.

ALTER TABLE meeting_position RENAME TO meeting_position_history;
ALTER INDEX meeting_position_cell_time_idx RENAME TO meeting_position_history_cell_time_idx;

-- The primary key on the id alone goes (the partitioned table's holds the
-- time too); its name is read, not assumed.
DO $$
DECLARE
    old record;
BEGIN
    FOR old IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'meeting_position_history'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE meeting_position_history DROP CONSTRAINT %I', old.conname);
    END LOOP;
END
$$;

-- The columns of 0008.
CREATE TABLE meeting_position (
    location_id bigint NOT NULL,
    person_id integer NOT NULL,
    creation_time timestamp NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    cell bigint NOT NULL,
    CONSTRAINT meeting_position_pkey PRIMARY KEY (location_id, creation_time)
) PARTITION BY RANGE (creation_time);

-- 0008's index, on every partition; the history's own is taken as it is.
CREATE INDEX meeting_position_cell_time_idx
    ON meeting_position (cell, creation_time) INCLUDE (location_id, person_id, lat, lon);

CREATE TABLE meeting_position_default PARTITION OF meeting_position DEFAULT;

-- The partitions other than the default one, with their bounds (NULL
-- for MINVALUE), from the catalog, as `location_partitions()`.
CREATE FUNCTION meeting_position_partitions()
    RETURNS TABLE (partition regclass, lower_bound timestamp, upper_bound timestamp)
    LANGUAGE sql STABLE
    SET search_path = public, pg_temp
    SET datestyle = 'ISO, YMD'
    BEGIN ATOMIC
        SELECT c.oid::regclass,
               substring(pg_get_expr(c.relpartbound, c.oid) FROM $re$FROM \('([^']*)'\)$re$)::timestamp,
               substring(pg_get_expr(c.relpartbound, c.oid) FROM $re$TO \('([^']*)'\)$re$)::timestamp
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'meeting_position'::regclass
          AND NOT c.relpartbound IS NULL
          AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT';
    END;

-- The partitions' upkeep, as `location_maintain` does it for `location`
-- (the same arguments, the same cutoff, `location_retention_cutoff`), in
-- one transaction, at most one at a time (the others find it busy and
-- return no row):
--
-- * A partition for each day from `at`'s to `days_ahead` days later that
--   none covers yet, the default partition's rows of that day moved into
--   it first.
-- * With a `retention` (at least a day): every partition that ends by the
--   cutoff dropped whole, and the default partition's rows before the
--   cutoff deleted.
CREATE FUNCTION meeting_position_maintain(at timestamp, days_ahead integer, retention interval)
    RETURNS TABLE (created integer, dropped integer, default_deleted bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
    SET datestyle = 'ISO, YMD'
    SET lock_timeout = '5s'
AS $$
DECLARE
    day timestamp;
    part text;
    cutoff timestamp;
    expired regclass;
BEGIN
    IF at IS NULL OR days_ahead IS NULL OR days_ahead NOT BETWEEN 0 AND 366 THEN
        RAISE EXCEPTION 'meeting_position_maintain: a time and 0 to 366 days ahead are needed'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retention < interval '1 day' THEN
        RAISE EXCEPTION 'meeting_position_maintain: a retention is at least a day'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_try_advisory_xact_lock(6144107548989345331) THEN
        RETURN;
    END IF;
    created := 0;
    dropped := 0;
    default_deleted := 0;

    FOR day IN
        SELECT d FROM generate_series(date_trunc('day', at),
                                      date_trunc('day', at) + days_ahead * interval '1 day',
                                      interval '1 day') AS d
        WHERE NOT EXISTS (
            SELECT FROM meeting_position_partitions() p
            WHERE (p.lower_bound IS NULL OR p.lower_bound < d + interval '1 day')
              AND p.upper_bound > d)
    LOOP
        part := 'meeting_position_p' || to_char(day, 'YYYYMMDD');
        EXECUTE format('CREATE TABLE %I (LIKE meeting_position INCLUDING DEFAULTS)', part);
        EXECUTE format(
            'WITH moved AS (
                 DELETE FROM meeting_position_default
                 WHERE creation_time >= $1 AND creation_time < $2
                 RETURNING location_id, person_id, creation_time, lat, lon, cell)
             INSERT INTO %I (location_id, person_id, creation_time, lat, lon, cell)
             SELECT location_id, person_id, creation_time, lat, lon, cell FROM moved',
            part)
            USING day, day + interval '1 day';
        EXECUTE format('ALTER TABLE meeting_position ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       part, day, day + interval '1 day');
        created := created + 1;
    END LOOP;

    IF retention IS NOT NULL THEN
        cutoff := location_retention_cutoff(at, retention);
        FOR expired IN
            SELECT p.partition FROM meeting_position_partitions() p
            WHERE p.upper_bound <= cutoff
            ORDER BY p.upper_bound
        LOOP
            EXECUTE format('DROP TABLE %s', expired);
            dropped := dropped + 1;
        END LOOP;
        DELETE FROM meeting_position_default WHERE creation_time < cutoff;
        GET DIAGNOSTICS default_deleted = ROW_COUNT;
    END IF;
    RETURN NEXT;
END
$$;

-- Meetings that ended before a retention's cutoff, at most `max_rows` of
-- them per call (one short transaction each; the caller calls again while
-- it returns `max_rows`). A meeting is one row per pair and period, so a
-- day's are few next to its locations: deleting them is cheap, and the
-- table keeps its one sequence of ids and its indexes as they are.
CREATE INDEX meeting_end_time_idx ON meeting (end_time);

CREATE FUNCTION meeting_prune(at timestamp, retention interval, max_rows integer)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
DECLARE
    pruned bigint;
BEGIN
    IF at IS NULL OR retention IS NULL OR retention < interval '1 day'
       OR max_rows IS NULL OR max_rows < 1 THEN
        RAISE EXCEPTION 'meeting_prune: a time, a retention of at least a day and a positive count are needed'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM meeting
    WHERE id IN (
        SELECT id FROM meeting
        WHERE end_time < location_retention_cutoff(at, retention)
        LIMIT max_rows
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS pruned = ROW_COUNT;
    RETURN pruned;
END
$$;

-- The existing table as the partition of every time before tomorrow:
-- rows stamped later go into the partitioned table first; the CHECK
-- constraint proves the rest fit (one read of the table), so attaching
-- reads nothing again.
DO $$
DECLARE
    tomorrow timestamp := date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day';
BEGIN
    WITH moved AS (
        DELETE FROM meeting_position_history
        WHERE creation_time >= tomorrow
        RETURNING location_id, person_id, creation_time, lat, lon, cell)
    INSERT INTO meeting_position (location_id, person_id, creation_time, lat, lon, cell)
    SELECT location_id, person_id, creation_time, lat, lon, cell FROM moved;
    EXECUTE format('ALTER TABLE meeting_position_history ADD CONSTRAINT meeting_position_history_range CHECK (creation_time < %L)',
                   tomorrow);
    EXECUTE format('ALTER TABLE meeting_position ATTACH PARTITION meeting_position_history FOR VALUES FROM (MINVALUE) TO (%L)',
                   tomorrow);
    ALTER TABLE meeting_position_history DROP CONSTRAINT meeting_position_history_range;
END
$$;

-- Today and the week ahead, until the writers take over.
SELECT meeting_position_maintain((now() AT TIME ZONE 'UTC')::timestamp, 7, NULL);

-- The upkeep is the writers' only.
REVOKE EXECUTE ON FUNCTION meeting_position_maintain(timestamp, integer, interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meeting_prune(timestamp, interval, integer) FROM PUBLIC;

-- What 0010 granted on the table, now on the partitioned one; the
-- partitions are reached through it only. The writers run the upkeep,
-- which reads and writes nothing of the meetings' otherwise.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_meetings') THEN
        GRANT SELECT, INSERT ON meeting_position TO udaconnect_meetings;
        REVOKE ALL ON meeting_position_history FROM udaconnect_meetings;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_writer') THEN
        GRANT EXECUTE ON FUNCTION meeting_position_maintain(timestamp, integer, interval)
            TO udaconnect_writer;
        GRANT EXECUTE ON FUNCTION meeting_prune(timestamp, interval, integer)
            TO udaconnect_writer;
    END IF;
END
$$;

ANALYZE meeting_position;
