-- `location` partitioned by day (of `creation_time`, UTC), so that old
-- locations go as whole tables (a retention drops a day at a time, never
-- deleting rows) and each day's indexes stay the size of a day.
--
-- The table is converted in place, keeping every row as it is (ids, the
-- sequence, `written_by`): the existing table becomes one partition,
-- `location_history`, for every time before tomorrow (UTC), and is
-- attached after a CHECK constraint proves its rows fit, so converting
-- reads the table once and rewrites nothing; only the two unique indexes
-- that now need the time (below) are built anew. `location_default`
-- takes a row no other partition does (a time far in the past or the
-- future), so none is ever refused; the days ahead get their own
-- partitions, created by `location_maintain` below, which the writers run
-- at start and periodically.
--
-- A unique index of a partitioned table must hold the partition key:
--
-- * The primary key is (id, creation_time). Ids still come from one
--   sequence, so no two rows share one; a row stored again (a redelivery,
--   a retry the edge published again under the id it claimed first) has
--   the same id and time, so the key still finds it.
-- * The idempotency keys are unique with their time. `ingest_key_claim`
--   gives each key one id and one location (time included) before it is
--   published, so the rows of a key always share their time; the index
--   is what stops one stored twice, as before.

ALTER TABLE location RENAME TO location_history;
ALTER INDEX location_person_time_idx RENAME TO location_history_person_time_idx;
ALTER INDEX location_point_time_idx RENAME TO location_history_point_time_idx;
ALTER INDEX location_cell_time_idx RENAME TO location_history_cell_time_idx;
ALTER INDEX location_written_by_idx RENAME TO location_history_written_by_idx;
DROP INDEX location_ingest_key_idx;

-- The primary key on the id alone goes (the partitioned table's holds the
-- time too), and the foreign key to `person` makes way for the partitioned
-- table's, which takes it over when the table is attached, without
-- checking its rows again. Their names are the server's defaults in the
-- original's database, so they are read, not assumed.
DO $$
DECLARE
    old record;
BEGIN
    FOR old IN
        SELECT conname, contype FROM pg_constraint
        WHERE conrelid = 'location_history'::regclass AND contype IN ('p', 'f')
    LOOP
        IF old.contype = 'p' THEN
            EXECUTE format('ALTER TABLE location_history DROP CONSTRAINT %I', old.conname);
        ELSE
            EXECUTE format('ALTER TABLE location_history RENAME CONSTRAINT %I TO %I',
                           old.conname, 'location_history_' || old.conname);
        END IF;
    END LOOP;
END
$$;

-- The columns, defaults and generated expressions of 0001 to 0006.
CREATE TABLE location (
    id bigint NOT NULL DEFAULT nextval('location_id_seq'),
    person_id integer NOT NULL,
    coordinate geometry NOT NULL,
    creation_time timestamp NOT NULL DEFAULT now(),
    point geography(Point, 4326)
        GENERATED ALWAYS AS (coordinate::geography(Point, 4326)) STORED,
    ingest_key text,
    lat float8
        GENERATED ALWAYS AS (ST_Y(coordinate::geography(Point, 4326)::geometry)) STORED,
    lon float8
        GENERATED ALWAYS AS (ST_X(coordinate::geography(Point, 4326)::geometry)) STORED,
    cell int8
        GENERATED ALWAYS AS (location_cell(
            location_cell_row(ST_Y(coordinate::geography(Point, 4326)::geometry)),
            location_cell_col(ST_X(coordinate::geography(Point, 4326)::geometry)))) STORED,
    written_by xid8 DEFAULT pg_current_xact_id(),
    CONSTRAINT location_pkey PRIMARY KEY (id, creation_time),
    CONSTRAINT location_person_id_fkey FOREIGN KEY (person_id) REFERENCES person (id)
) PARTITION BY RANGE (creation_time);

-- The sequence goes with the table, not with the partition that was the
-- table (which a retention drops one day).
ALTER SEQUENCE location_id_seq OWNED BY location.id;

-- The indexes of 0002, 0003, 0005 and 0006, on every partition; the
-- history's own are taken as they are.
CREATE INDEX location_person_time_idx ON location (person_id, creation_time);
CREATE INDEX location_point_time_idx ON location USING gist (point, creation_time);
CREATE INDEX location_cell_time_idx
    ON location (cell, creation_time) INCLUDE (lat, lon, person_id, id, coordinate);
CREATE INDEX location_written_by_idx ON location (written_by);
CREATE UNIQUE INDEX location_ingest_key_idx ON location (ingest_key, creation_time)
    WHERE ingest_key IS NOT NULL;

CREATE TABLE location_default PARTITION OF location DEFAULT;

-- The partitions other than the default one, with their bounds (NULL
-- for MINVALUE), from the catalog.
CREATE FUNCTION location_partitions()
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
        WHERE i.inhparent = 'location'::regclass
          AND NOT c.relpartbound IS NULL
          AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT';
    END;

-- The start of the first day a retention keeps at `at`: rows (and claims)
-- of the days before are dropped. `at` no later than the database's clock:
-- a caller's clock ahead of it expires nothing early.
CREATE FUNCTION location_retention_cutoff(at timestamp, retention interval)
    RETURNS timestamp
    LANGUAGE sql VOLATILE
    RETURN date_trunc('day', least(at, clock_timestamp() AT TIME ZONE 'UTC') - retention);

-- The partitions' upkeep, run by the writers (as the schema's owner, so
-- that the writers' role needs no power over the schema), all in one
-- transaction, at most one at a time (the others find it busy and return
-- no row):
--
-- * A partition for each day from `at`'s to `days_ahead` days later that
--   none covers yet. Rows of that day in the default partition (stored
--   while the day had no partition) are moved into it first, keeping
--   everything they hold; the table is attached, which holds off no reader
--   or writer of the other partitions.
-- * With a `retention` (at least a day): every partition that ends by the
--   cutoff dropped whole (`DROP TABLE`, so the space returns at once),
--   and the default partition's rows before the cutoff deleted (those
--   stored after their day's partition had been dropped: a few at most).
--
-- A lock another session holds (a long query) makes it fail after the
-- `lock_timeout` instead of queueing every statement behind it; the
-- next run does it.
CREATE FUNCTION location_maintain(at timestamp, days_ahead integer, retention interval)
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
        RAISE EXCEPTION 'location_maintain: a time and 0 to 366 days ahead are needed'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retention < interval '1 day' THEN
        RAISE EXCEPTION 'location_maintain: a retention is at least a day'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_try_advisory_xact_lock(6144107548989345330) THEN
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
            SELECT FROM location_partitions() p
            WHERE (p.lower_bound IS NULL OR p.lower_bound < d + interval '1 day')
              AND p.upper_bound > d)
    LOOP
        part := 'location_p' || to_char(day, 'YYYYMMDD');
        EXECUTE format('CREATE TABLE %I (LIKE location INCLUDING DEFAULTS INCLUDING GENERATED)', part);
        EXECUTE format(
            'WITH moved AS (
                 DELETE FROM location_default
                 WHERE creation_time >= $1 AND creation_time < $2
                 RETURNING id, person_id, coordinate, creation_time, ingest_key, written_by)
             INSERT INTO %I (id, person_id, coordinate, creation_time, ingest_key, written_by)
             SELECT id, person_id, coordinate, creation_time, ingest_key, written_by FROM moved',
            part)
            USING day, day + interval '1 day';
        EXECUTE format('ALTER TABLE location ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       part, day, day + interval '1 day');
        created := created + 1;
    END LOOP;

    IF retention IS NOT NULL THEN
        cutoff := location_retention_cutoff(at, retention);
        FOR expired IN
            SELECT p.partition FROM location_partitions() p
            WHERE p.upper_bound <= cutoff
            ORDER BY p.upper_bound
        LOOP
            EXECUTE format('DROP TABLE %s', expired);
            dropped := dropped + 1;
        END LOOP;
        DELETE FROM location_default WHERE creation_time < cutoff;
        GET DIAGNOSTICS default_deleted = ROW_COUNT;
    END IF;
    RETURN NEXT;
END
$$;

-- Claims of keys older than a retention's cutoff, at most `max_rows` of
-- them per call (one short transaction each; the caller calls again while
-- it returns `max_rows`). `ingest_key_claim` is not partitioned: its key
-- is the idempotency key alone, which `ON CONFLICT (ingest_key)` needs.
CREATE INDEX ingest_key_claim_time_idx ON ingest_key_claim (creation_time);

CREATE FUNCTION ingest_key_claim_prune(at timestamp, retention interval, max_rows integer)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
DECLARE
    pruned bigint;
BEGIN
    IF at IS NULL OR retention IS NULL OR retention < interval '1 day'
       OR max_rows IS NULL OR max_rows < 1 THEN
        RAISE EXCEPTION 'ingest_key_claim_prune: a time, a retention of at least a day and a positive count are needed'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM ingest_key_claim
    WHERE ingest_key IN (
        SELECT ingest_key FROM ingest_key_claim
        WHERE creation_time < location_retention_cutoff(at, retention)
        LIMIT max_rows
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS pruned = ROW_COUNT;
    RETURN pruned;
END
$$;

-- The existing table as the partition of every time before tomorrow:
-- rows stamped later (clocks ahead, rows written by hand) go into the
-- partitioned table first, keeping everything they hold; the CHECK
-- constraint proves the rest fit (one read of the table), so attaching
-- reads nothing again.
DO $$
DECLARE
    tomorrow timestamp := date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day';
BEGIN
    WITH moved AS (
        DELETE FROM location_history
        WHERE creation_time >= tomorrow
        RETURNING id, person_id, coordinate, creation_time, ingest_key, written_by)
    INSERT INTO location (id, person_id, coordinate, creation_time, ingest_key, written_by)
    SELECT id, person_id, coordinate, creation_time, ingest_key, written_by FROM moved;
    EXECUTE format('ALTER TABLE location_history ADD CONSTRAINT location_history_range CHECK (creation_time < %L)',
                   tomorrow);
    EXECUTE format('ALTER TABLE location ATTACH PARTITION location_history FOR VALUES FROM (MINVALUE) TO (%L)',
                   tomorrow);
    ALTER TABLE location_history DROP CONSTRAINT location_history_range;
END
$$;

-- Today and the week ahead, until the writers take over.
SELECT location_maintain((now() AT TIME ZONE 'UTC')::timestamp, 7, NULL);

-- Functions are executable by everyone unless revoked; the upkeep is the
-- writers' only.
REVOKE EXECUTE ON FUNCTION location_maintain(timestamp, integer, interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION ingest_key_claim_prune(timestamp, interval, integer) FROM PUBLIC;

-- What 0004 and 0007 granted on the table, now on the partitioned one;
-- the partitions are reached through it only. The writers also read the
-- time, so that looking for the rows of a batch stored already reads the
-- batch's days only, and run the upkeep.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_api') THEN
        GRANT SELECT ON location TO udaconnect_api;
        REVOKE ALL ON location_history FROM udaconnect_api;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_writer') THEN
        GRANT INSERT (id, person_id, coordinate, creation_time, ingest_key) ON location
            TO udaconnect_writer;
        GRANT SELECT (id, creation_time, ingest_key) ON location TO udaconnect_writer;
        REVOKE ALL ON location_history FROM udaconnect_writer;
        GRANT EXECUTE ON FUNCTION location_maintain(timestamp, integer, interval)
            TO udaconnect_writer;
        GRANT EXECUTE ON FUNCTION ingest_key_claim_prune(timestamp, interval, integer)
            TO udaconnect_writer;
    END IF;
END
$$;

ANALYZE location;
