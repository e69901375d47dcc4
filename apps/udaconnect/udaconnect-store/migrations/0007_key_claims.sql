-- Idempotency keys claimed at the edge, before a location is published, so
-- that the id an edge answers is the id stored, for a client's retries
-- too. The first claim of a key, by any edge, keeps the id it gave the
-- location and the location itself (person, position, time: what a retry
-- is compared with); a later claim is answered with that id, as a retry
-- when it carries the same location, as a conflict when it carries
-- another. A claim is kept for good, as its location is.
CREATE TABLE IF NOT EXISTS ingest_key_claim (
    ingest_key text PRIMARY KEY,
    location_id bigint NOT NULL,
    person_id integer NOT NULL,
    lon double precision NOT NULL,
    lat double precision NOT NULL,
    creation_time timestamp NOT NULL
);

-- The keys stored before claims existed are claimed by their locations:
-- the edge wrote `coordinate` as (longitude, latitude).
INSERT INTO ingest_key_claim (ingest_key, location_id, person_id, lon, lat, creation_time)
SELECT ingest_key, id, person_id, ST_X(coordinate), ST_Y(coordinate), creation_time
FROM location
WHERE ingest_key IS NOT NULL
ORDER BY ingest_key
ON CONFLICT (ingest_key) DO NOTHING;

-- The edge claims keys and reads the claims made before. The writer reads
-- which of a batch's ids and keys are stored already, and copies only the
-- others: a retry published again, or a redelivery, is then no failed
-- COPY (and no error in the server's log).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_ingest') THEN
        GRANT SELECT, INSERT ON ingest_key_claim TO udaconnect_ingest;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_writer') THEN
        GRANT SELECT (id, ingest_key) ON location TO udaconnect_writer;
    END IF;
END
$$;

ANALYZE ingest_key_claim;
