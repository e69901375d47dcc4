-- Every statement the PostGIS store sends, whole, as sent (from sql.rs).
-- Kept by a test: UPDATE_STATEMENTS=1 cargo test -p udaconnect-store statements

-- PERSONS
SELECT id, first_name, last_name, company_name FROM person ORDER BY id;

-- PERSONS_BY_ID
SELECT id, first_name, last_name, company_name FROM person WHERE id = ANY($1);

-- PERSON
SELECT id, first_name, last_name, company_name FROM person WHERE id = $1;

-- SEARCH_PERSONS
SELECT id, first_name, last_name, company_name
FROM person
WHERE id > $1::int8
  AND ($2::text IS NULL
       OR strpos(lower(first_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0
       OR strpos(lower(last_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0
       OR strpos(lower(company_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0)
ORDER BY id
LIMIT $3;

-- SEARCH_PERSONS_NEWEST
SELECT id, first_name, last_name, company_name
FROM person
WHERE id < $1::int8
  AND ($2::text IS NULL
       OR strpos(lower(first_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0
       OR strpos(lower(last_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0
       OR strpos(lower(company_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0)
ORDER BY id DESC
LIMIT $3;

-- CREATE_PERSON
INSERT INTO person (first_name, last_name, company_name) VALUES ($1, $2, $3) RETURNING id;

-- LOCATION
SELECT l.id, l.person_id, l.coordinate, l.point, l.creation_time FROM location l WHERE l.id = $1;

-- INSERT_LOCATIONS
WITH batch AS (
    SELECT *
    FROM unnest($1::int8[], $2::int4[], $3::float8[], $4::float8[], $5::timestamp[], $6::text[])
         WITH ORDINALITY AS b(id, person_id, lon, lat, creation_time, ingest_key, ord)
),
known AS (
    SELECT b.*, EXISTS (SELECT 1 FROM person p WHERE p.id = b.person_id) AS known
    FROM batch b
),
inserted AS (
    INSERT INTO location (id, person_id, coordinate, creation_time, ingest_key)
    SELECT id, person_id, ST_MakePoint(lon, lat), creation_time, ingest_key
    FROM known
    WHERE known
    ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted),
       array(SELECT id FROM known WHERE NOT known ORDER BY ord),
       array(SELECT k.id FROM known k
             WHERE NOT k.known
               AND EXISTS (SELECT 1 FROM erased_person e WHERE e.person_id = k.person_id)
             ORDER BY k.ord);

-- BATCH_PREAMBLE
SELECT 'geometry'::regtype::oid,
       array(SELECT DISTINCT u FROM unnest($1::int4[]) AS u
             WHERE NOT EXISTS (SELECT 1 FROM person p WHERE p.id = u)),
       array(SELECT e.person_id FROM erased_person e WHERE e.person_id = ANY ($1::int4[])),
       array(SELECT l.id FROM location l
             WHERE l.id = ANY ($2::int8[])
               AND l.creation_time >= $4::timestamp AND l.creation_time <= $5::timestamp),
       array(SELECT l.ingest_key FROM location l
             WHERE l.ingest_key = ANY ($3::text[]) AND l.ingest_key IS NOT NULL
               AND l.creation_time >= $4::timestamp AND l.creation_time <= $5::timestamp);

-- COPY_LOCATIONS
COPY location (id, person_id, coordinate, creation_time, ingest_key) FROM STDIN BINARY;

-- FORGET_KEY_CLAIMS
SELECT ingest_key_claim_forget($1::int4[]);

-- ERASE_PERSON
SELECT locations, meeting_positions, meetings, key_claims FROM person_erase($1::int4);

-- HOLD_PERSONS
SELECT person_hold($1::int4[]);

-- PERSON_IDS_AFTER
SELECT id FROM person WHERE id > $1 ORDER BY id;

-- RESERVE_LOCATION_IDS
SELECT nextval('location_id_seq') FROM generate_series(1, $1::int8);

-- ANY_KEY_CLAIMED
SELECT EXISTS (SELECT FROM ingest_key_claim WHERE ingest_key = ANY ($1::text[]));

-- COPY_KEY_CLAIMS
COPY ingest_key_claim (ingest_key, location_id, person_id, lon, lat, creation_time) FROM STDIN BINARY;

-- CLAIM_KEYS
WITH claim AS (
    SELECT *
    FROM unnest($1::text[], $2::int8[], $3::int4[], $4::float8[], $5::float8[], $6::timestamp[])
         AS c(ingest_key, location_id, person_id, lon, lat, creation_time)
),
claimed AS (
    INSERT INTO ingest_key_claim (ingest_key, location_id, person_id, lon, lat, creation_time)
    SELECT ingest_key, location_id, person_id, lon, lat, creation_time
    FROM claim
    ORDER BY ingest_key COLLATE "C"
    ON CONFLICT (ingest_key) DO NOTHING
    RETURNING ingest_key
)
SELECT ingest_key, true AS claimed_now,
       NULL::int8, NULL::int4, NULL::float8, NULL::float8, NULL::timestamp
FROM claimed
UNION ALL
SELECT k.ingest_key, false, k.location_id, k.person_id, k.lon, k.lat, k.creation_time
FROM ingest_key_claim k
JOIN claim c ON c.ingest_key = k.ingest_key;

-- KEY_CLAIMS
SELECT ingest_key, false, location_id, person_id, lon, lat, creation_time FROM ingest_key_claim WHERE ingest_key = ANY ($1::text[]);

-- LOCATIONS_OF
SELECT l.id, l.person_id, l.coordinate, l.point, l.creation_time FROM location l WHERE l.person_id = $1 AND l.creation_time >= $2 AND l.creation_time < $3 AND (l.creation_time, l.id) > ($4, $5::int8) ORDER BY l.creation_time, l.id LIMIT $6;

-- COMPAT_CONNECTIONS
WITH own AS MATERIALIZED (
    SELECT l.id, l.point, l.creation_time, l.lat, l.lon, reach.lat AS reach_lat,
           l.lat - reach.lat AS lat_lo, l.lat + reach.lat AS lat_hi,
           l.lon - reach.lon AS lon_lo, l.lon + reach.lon AS lon_hi,
           111319.49079327357 * 0.99330562000986 / (1.0 - 0.00669437999014 * s.sin2) ^ 1.5
               AS per_lat,
           111319.49079327357 * cos(radians(l.lat)) / sqrt(1.0 - 0.00669437999014 * s.sin2)
               AS per_lon
    FROM location l
    CROSS JOIN LATERAL (SELECT sin(radians(l.lat)) ^ 2 AS sin2) s
    CROSS JOIN LATERAL (
        SELECT $4::float8 * 1.001 / 110574.27 AS lat,
               $4::float8 * 1.001
                   / (111319.49 * cos(radians(least(abs(l.lat) + $4::float8 * 1.001 / 110574.27, 90.0))))
                   AS lon
    ) reach
    WHERE l.person_id = $1 AND l.creation_time >= $2 AND l.creation_time < $3
      AND l.cell IS NOT NULL
),
probe AS MATERIALIZED (
    SELECT own.*,
           CASE WHEN abs(own.lat) + own.reach_lat <= 80.0
                 AND own.lon_lo >= -180.0 AND own.lon_hi <= 180.0
                 AND (location_cell_row(own.lat_hi) - location_cell_row(own.lat_lo) + 1)
                   * (location_cell_col(own.lon_hi) - location_cell_col(own.lon_lo) + 1) <= 64
           THEN ARRAY(
               SELECT location_cell(grid_row, grid_col)
               FROM generate_series(location_cell_row(own.lat_lo), location_cell_row(own.lat_hi))
                        AS grid_row,
                    generate_series(location_cell_col(own.lon_lo), location_cell_col(own.lon_hi))
                        AS grid_col)
           END AS cells
    FROM own
),
pairs AS MATERIALIZED (
    SELECT c.coordinate, c.lat, c.lon, c.own_time, c.person_id, c.id, c.creation_time, c.own_id, c.approx
    FROM probe own
    CROSS JOIN LATERAL (
        SELECT o.coordinate, o.lat, o.lon, own.creation_time AS own_time, o.person_id, o.id, o.creation_time, own.id AS own_id, own.point AS own_point,
               sqrt(((o.lat - own.lat) * own.per_lat) ^ 2 + ((o.lon - own.lon) * own.per_lon) ^ 2)
                   AS approx
        FROM location o
        WHERE o.cell = ANY (own.cells)
          AND o.creation_time >= $2 AND o.creation_time < $5
          AND o.lat >= own.lat_lo AND o.lat <= own.lat_hi
          AND o.lon >= own.lon_lo AND o.lon <= own.lon_hi
          AND o.person_id <> $1
        OFFSET 0
    ) c
    WHERE own.cells IS NOT NULL
      AND (c.approx < $4::float8 * 0.999
           OR (c.approx <= $4::float8 * 1.001
               AND ST_DWithin(c.coordinate::geography(Point, 4326), c.own_point, $4)))
    UNION ALL
    SELECT c.coordinate, c.lat, c.lon, c.own_time, c.person_id, c.id, c.creation_time, c.own_id, c.approx
    FROM probe own
    CROSS JOIN LATERAL (
        SELECT o.coordinate, o.lat, o.lon, own.creation_time AS own_time, o.person_id, o.id, o.creation_time, own.id AS own_id, own.point AS own_point,
               ST_Distance(o.point, own.point, false) AS approx, o.point AS other_point
        FROM location o
        WHERE o.point && _st_expand(own.point, $4::float8 * 1.01)
          AND o.creation_time >= $2 AND o.creation_time < $5
          AND o.person_id <> $1
        OFFSET 0
    ) c
    WHERE own.cells IS NULL
      AND (c.approx < $4::float8 * 0.99
           OR (c.approx <= $4::float8 * 1.01 AND ST_DWithin(c.other_point, c.own_point, $4)))
)
SELECT c.id, c.person_id, c.coordinate, c.lat, c.lon, c.creation_time
FROM pairs c
ORDER BY c.own_time, c.own_id, c.id
LIMIT $6;

-- CONNECTIONS
WITH own AS MATERIALIZED (
    SELECT l.id, l.point, l.creation_time, l.lat, l.lon, reach.lat AS reach_lat,
           l.lat - reach.lat AS lat_lo, l.lat + reach.lat AS lat_hi,
           l.lon - reach.lon AS lon_lo, l.lon + reach.lon AS lon_hi,
           111319.49079327357 * 0.99330562000986 / (1.0 - 0.00669437999014 * s.sin2) ^ 1.5
               AS per_lat,
           111319.49079327357 * cos(radians(l.lat)) / sqrt(1.0 - 0.00669437999014 * s.sin2)
               AS per_lon
    FROM location l
    CROSS JOIN LATERAL (SELECT sin(radians(l.lat)) ^ 2 AS sin2) s
    CROSS JOIN LATERAL (
        SELECT $4::float8 * 1.001 / 110574.27 AS lat,
               $4::float8 * 1.001
                   / (111319.49 * cos(radians(least(abs(l.lat) + $4::float8 * 1.001 / 110574.27, 90.0))))
                   AS lon
    ) reach
    WHERE l.person_id = $1 AND l.creation_time >= $2 AND l.creation_time < $3
      AND l.cell IS NOT NULL
),
probe AS MATERIALIZED (
    SELECT own.*,
           CASE WHEN abs(own.lat) + own.reach_lat <= 80.0
                 AND own.lon_lo >= -180.0 AND own.lon_hi <= 180.0
                 AND (location_cell_row(own.lat_hi) - location_cell_row(own.lat_lo) + 1)
                   * (location_cell_col(own.lon_hi) - location_cell_col(own.lon_lo) + 1) <= 64
           THEN ARRAY(
               SELECT location_cell(grid_row, grid_col)
               FROM generate_series(location_cell_row(own.lat_lo), location_cell_row(own.lat_hi))
                        AS grid_row,
                    generate_series(location_cell_col(own.lon_lo), location_cell_col(own.lon_hi))
                        AS grid_col)
           END AS cells
    FROM own
),
pairs AS MATERIALIZED (
    SELECT c.coordinate, c.person_id, c.id, c.creation_time, c.own_id, c.approx
    FROM probe own
    CROSS JOIN LATERAL (
        SELECT o.coordinate, o.person_id, o.id, o.creation_time, own.id AS own_id, own.point AS own_point,
               sqrt(((o.lat - own.lat) * own.per_lat) ^ 2 + ((o.lon - own.lon) * own.per_lon) ^ 2)
                   AS approx
        FROM location o
        WHERE o.cell = ANY (own.cells)
          AND o.creation_time >= $5 AND o.creation_time <= $6
          AND o.lat >= own.lat_lo AND o.lat <= own.lat_hi
          AND o.lon >= own.lon_lo AND o.lon <= own.lon_hi
          AND o.person_id <> $1
        OFFSET 0
    ) c
    WHERE own.cells IS NOT NULL
      AND (c.approx < $4::float8 * 0.999
           OR (c.approx <= $4::float8 * 1.001
               AND ST_DWithin(c.coordinate::geography(Point, 4326), c.own_point, $4)))
    UNION ALL
    SELECT c.coordinate, c.person_id, c.id, c.creation_time, c.own_id, c.approx
    FROM probe own
    CROSS JOIN LATERAL (
        SELECT o.coordinate, o.person_id, o.id, o.creation_time, own.id AS own_id, own.point AS own_point,
               ST_Distance(o.point, own.point, false) AS approx, o.point AS other_point
        FROM location o
        WHERE o.point && _st_expand(own.point, $4::float8 * 1.01)
          AND o.creation_time >= $5 AND o.creation_time <= $6
          AND o.person_id <> $1
        OFFSET 0
    ) c
    WHERE own.cells IS NULL
      AND (c.approx < $4::float8 * 0.99
           OR (c.approx <= $4::float8 * 1.01 AND ST_DWithin(c.other_point, c.own_point, $4)))
),
contacts AS (
    SELECT person_id, count(*) AS encounters, min(creation_time) AS first_met,
           max(creation_time) AS last_met, min(approx) AS nearest
    FROM pairs
    GROUP BY person_id
),
page AS (
    SELECT *
    FROM contacts
    WHERE $7::int8 IS NULL
       OR encounters < $7
       OR (encounters = $7 AND person_id > $8::int4)
    ORDER BY encounters DESC, person_id
    LIMIT $9
),
closest AS (
    SELECT DISTINCT ON (c.person_id)
           c.person_id, c.id, c.creation_time, c.coordinate::geography(Point, 4326) AS point,
           ST_Distance(c.coordinate::geography(Point, 4326), own.point) AS metres
    FROM pairs c
    JOIN page ON page.person_id = c.person_id
    JOIN probe own ON own.id = c.own_id
    WHERE c.approx <= page.nearest * 1.02 + 1e-6
    ORDER BY c.person_id, metres, c.creation_time, c.id
)
SELECT page.person_id, page.encounters, page.first_met, page.last_met,
       closest.id, closest.creation_time, closest.metres, closest.point,
       p.first_name, p.last_name, p.company_name
FROM page
JOIN closest ON closest.person_id = page.person_id
JOIN person p ON p.id = page.person_id
ORDER BY page.encounters DESC, page.person_id;

-- CONNECTIONS_WITHIN
WITH own AS MATERIALIZED (
    SELECT l.id, l.point, l.creation_time, l.lat, l.lon, reach.lat AS reach_lat,
           l.lat - reach.lat AS lat_lo, l.lat + reach.lat AS lat_hi,
           l.lon - reach.lon AS lon_lo, l.lon + reach.lon AS lon_hi,
           111319.49079327357 * 0.99330562000986 / (1.0 - 0.00669437999014 * s.sin2) ^ 1.5
               AS per_lat,
           111319.49079327357 * cos(radians(l.lat)) / sqrt(1.0 - 0.00669437999014 * s.sin2)
               AS per_lon
    FROM location l
    CROSS JOIN LATERAL (SELECT sin(radians(l.lat)) ^ 2 AS sin2) s
    CROSS JOIN LATERAL (
        SELECT $4::float8 * 1.001 / 110574.27 AS lat,
               $4::float8 * 1.001
                   / (111319.49 * cos(radians(least(abs(l.lat) + $4::float8 * 1.001 / 110574.27, 90.0))))
                   AS lon
    ) reach
    WHERE l.person_id = $1 AND l.creation_time >= $2 AND l.creation_time < $3
      AND l.cell IS NOT NULL
),
probe AS MATERIALIZED (
    SELECT own.*,
           CASE WHEN abs(own.lat) + own.reach_lat <= 80.0
                 AND own.lon_lo >= -180.0 AND own.lon_hi <= 180.0
                 AND (location_cell_row(own.lat_hi) - location_cell_row(own.lat_lo) + 1)
                   * (location_cell_col(own.lon_hi) - location_cell_col(own.lon_lo) + 1) <= 64
           THEN ARRAY(
               SELECT location_cell(grid_row, grid_col)
               FROM generate_series(location_cell_row(own.lat_lo), location_cell_row(own.lat_hi))
                        AS grid_row,
                    generate_series(location_cell_col(own.lon_lo), location_cell_col(own.lon_hi))
                        AS grid_col)
           END AS cells
    FROM own
),
pairs AS MATERIALIZED (
    SELECT c.coordinate, c.person_id, c.id, c.creation_time, c.own_id, c.approx
    FROM probe own
    CROSS JOIN LATERAL (
        SELECT o.coordinate, o.person_id, o.id, o.creation_time, own.id AS own_id, own.point AS own_point,
               sqrt(((o.lat - own.lat) * own.per_lat) ^ 2 + ((o.lon - own.lon) * own.per_lon) ^ 2)
                   AS approx
        FROM location o
        WHERE o.cell = ANY (own.cells)
          AND o.creation_time >= own.creation_time - $5::int8 * interval '1 microsecond'
          AND o.creation_time <= own.creation_time + $5::int8 * interval '1 microsecond'
          AND o.lat >= own.lat_lo AND o.lat <= own.lat_hi
          AND o.lon >= own.lon_lo AND o.lon <= own.lon_hi
          AND o.person_id <> $1
        OFFSET 0
    ) c
    WHERE own.cells IS NOT NULL
      AND (c.approx < $4::float8 * 0.999
           OR (c.approx <= $4::float8 * 1.001
               AND ST_DWithin(c.coordinate::geography(Point, 4326), c.own_point, $4)))
    UNION ALL
    SELECT c.coordinate, c.person_id, c.id, c.creation_time, c.own_id, c.approx
    FROM probe own
    CROSS JOIN LATERAL (
        SELECT o.coordinate, o.person_id, o.id, o.creation_time, own.id AS own_id, own.point AS own_point,
               ST_Distance(o.point, own.point, false) AS approx, o.point AS other_point
        FROM location o
        WHERE o.point && _st_expand(own.point, $4::float8 * 1.01)
          AND o.creation_time >= own.creation_time - $5::int8 * interval '1 microsecond'
          AND o.creation_time <= own.creation_time + $5::int8 * interval '1 microsecond'
          AND o.person_id <> $1
        OFFSET 0
    ) c
    WHERE own.cells IS NULL
      AND (c.approx < $4::float8 * 0.99
           OR (c.approx <= $4::float8 * 1.01 AND ST_DWithin(c.other_point, c.own_point, $4)))
),
contacts AS (
    SELECT person_id, count(*) AS encounters, min(creation_time) AS first_met,
           max(creation_time) AS last_met, min(approx) AS nearest
    FROM pairs
    GROUP BY person_id
),
page AS (
    SELECT *
    FROM contacts
    WHERE $6::int8 IS NULL
       OR encounters < $6
       OR (encounters = $6 AND person_id > $7::int4)
    ORDER BY encounters DESC, person_id
    LIMIT $8
),
closest AS (
    SELECT DISTINCT ON (c.person_id)
           c.person_id, c.id, c.creation_time, c.coordinate::geography(Point, 4326) AS point,
           ST_Distance(c.coordinate::geography(Point, 4326), own.point) AS metres
    FROM pairs c
    JOIN page ON page.person_id = c.person_id
    JOIN probe own ON own.id = c.own_id
    WHERE c.approx <= page.nearest * 1.02 + 1e-6
    ORDER BY c.person_id, metres, c.creation_time, c.id
)
SELECT page.person_id, page.encounters, page.first_met, page.last_met,
       closest.id, closest.creation_time, closest.metres, closest.point,
       p.first_name, p.last_name, p.company_name
FROM page
JOIN closest ON closest.person_id = page.person_id
JOIN person p ON p.id = page.person_id
ORDER BY page.encounters DESC, page.person_id;

-- COUNT_PERSONS
SELECT count(*) FROM person;

-- ESTIMATE_LOCATIONS
SELECT COALESCE(sum(GREATEST(c.reltuples::int8, COALESCE(s.n_live_tup, 0), 0)), 0)::int8
FROM pg_partition_tree('location'::regclass) t
JOIN pg_class c ON c.oid = t.relid
LEFT JOIN pg_stat_user_tables s ON s.relid = t.relid
WHERE t.isleaf;

-- COUNT_LOCATIONS
SELECT count(*) FROM location;

-- ADVANCE_SEQUENCES
SELECT setval('person_id_seq', max_id)
FROM (SELECT max(id) AS max_id FROM person) AS ids
WHERE max_id > (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM person_id_seq);
SELECT setval('location_id_seq', max_id)
FROM (SELECT max(id) AS max_id FROM location) AS ids
WHERE max_id > (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM location_id_seq);;

-- MAINTAIN_LOCATIONS
SELECT created, dropped, default_deleted FROM location_maintain($1::timestamp, $2::int4, $3::int8 * interval '1 microsecond');

-- PRUNE_KEY_CLAIMS
SELECT ingest_key_claim_prune($1::timestamp, $2::int8 * interval '1 microsecond', $3::int4);

-- MAINTAIN_MEETING_POSITIONS
SELECT created, dropped, default_deleted FROM meeting_position_maintain($1::timestamp, $2::int4, $3::int8 * interval '1 microsecond');

-- PRUNE_MEETINGS
SELECT meeting_prune($1::timestamp, $2::int8 * interval '1 microsecond', $3::int4);

-- SNAPSHOT
SELECT pg_current_snapshot()::text, (SELECT count(*) = 2 FROM pg_attribute WHERE attrelid IN ('person'::regclass, 'location'::regclass) AND attname = 'written_by' AND NOT attisdropped), to_regprocedure('location_partitions()') IS NOT NULL, to_regclass('erased_person') IS NOT NULL;

-- REPLICA_HORIZON
SELECT min(COALESCE(extract(epoch FROM lower_bound)::float8, '-Infinity'::float8)) FROM location_partitions();

-- REPLICA_LOCATIONS
SELECT id, person_id, coordinate, lat, lon, creation_time FROM location;

-- REPLICA_PERSONS_SINCE
SELECT id, first_name, last_name, company_name FROM person WHERE written_by >= pg_snapshot_xmin($1::text::pg_snapshot) AND NOT pg_visible_in_snapshot(written_by, $1::text::pg_snapshot);

-- REPLICA_LOCATIONS_SINCE
SELECT id, person_id, coordinate, lat, lon, creation_time FROM location WHERE written_by >= pg_snapshot_xmin($1::text::pg_snapshot) AND NOT pg_visible_in_snapshot(written_by, $1::text::pg_snapshot);

-- ERASED_SINCE
SELECT person_id FROM erased_person WHERE written_by >= pg_snapshot_xmin($1::text::pg_snapshot) AND NOT pg_visible_in_snapshot(written_by, $1::text::pg_snapshot);

-- MEETING_APPLIED
SELECT p.location_id
FROM unnest($1::int8[], $2::timestamp[]) AS sighting(location_id, creation_time)
JOIN meeting_position p
  ON p.location_id = sighting.location_id AND p.creation_time = sighting.creation_time;

-- MEETING_CANDIDATES
SELECT p.location_id, p.person_id, p.creation_time, p.lat, p.lon
FROM unnest($1::int8[], $2::timestamp[], $3::timestamp[]) AS probe(cell, low, high)
CROSS JOIN LATERAL (
    SELECT location_id, person_id, creation_time, lat, lon
    FROM meeting_position
    WHERE cell = probe.cell AND creation_time BETWEEN probe.low AND probe.high
    OFFSET 0) p;

-- MEETING_POSITIONS
INSERT INTO meeting_position (location_id, person_id, creation_time, lat, lon, cell)
SELECT * FROM unnest($1::int8[], $2::int4[], $3::timestamp[], $4::float8[], $5::float8[], $6::int8[])
ON CONFLICT (location_id, creation_time) DO NOTHING;

-- LAST_LOCATION_ID
SELECT COALESCE(max(id), 0)::int8 FROM location;

-- UNFOLDED_LOCATIONS
SELECT l.id, l.person_id, l.creation_time, l.lat, l.lon
FROM location l
WHERE l.id > $1 AND l.id <= $2
  AND NOT EXISTS (
    SELECT FROM meeting_position p
    WHERE p.location_id = l.id AND p.creation_time = l.creation_time
      AND p.location_id > $1 AND p.location_id <= $2)
ORDER BY l.id;

-- MEETINGS_OF_PAIRS
SELECT m.id, m.person_a, m.person_b, m.start_time, m.end_time, m.contacts, m.closest_m, m.closest_at, m.closest_lat, m.closest_lon, m.closest_location_a, m.closest_location_b
FROM unnest($1::int4[], $2::int4[], $3::timestamp[], $4::timestamp[]) AS pair(a, b, low, high)
JOIN meeting m
  ON m.person_a = pair.a AND m.person_b = pair.b
 AND m.start_time <= pair.high AND m.end_time >= pair.low;

-- MEETING_IDS
SELECT nextval('meeting_id_seq') FROM generate_series(1, $1::int4);

-- COPY_MEETINGS
COPY meeting (id, person_a, person_b, start_time, end_time, contacts, closest_m, closest_at, closest_lat, closest_lon, closest_location_a, closest_location_b) FROM STDIN BINARY;

-- UPDATE_MEETINGS
UPDATE meeting SET
    start_time = g.start_time,
    end_time = g.end_time,
    contacts = g.contacts,
    closest_m = g.closest_m,
    closest_at = g.closest_at,
    closest_lat = g.closest_lat,
    closest_lon = g.closest_lon,
    closest_location_a = g.closest_location_a,
    closest_location_b = g.closest_location_b,
    written_by = pg_current_xact_id()
FROM unnest($1::int8[], $2::timestamp[], $3::timestamp[], $4::int8[], $5::float8[],
            $6::timestamp[], $7::float8[], $8::float8[], $9::int8[], $10::int8[])
     AS g(id, start_time, end_time, contacts, closest_m, closest_at, closest_lat,
          closest_lon, closest_location_a, closest_location_b)
WHERE meeting.id = g.id;

-- MEETINGS_WRITTEN_SINCE
SELECT m.id, m.person_a, m.person_b, m.start_time, m.end_time, m.contacts, m.closest_m, m.closest_at, m.closest_lat, m.closest_lon, m.closest_location_a, m.closest_location_b
FROM meeting m
WHERE m.written_by >= pg_snapshot_xmin($1::text::pg_snapshot)
  AND NOT pg_visible_in_snapshot(m.written_by, $1::text::pg_snapshot)
  AND ($2::int4 IS NULL OR m.person_a = $2 OR m.person_b = $2)
ORDER BY m.written_by, m.id
LIMIT $3;

-- CURRENT_SNAPSHOT
SELECT pg_current_snapshot()::text;

-- EVENT_CURSOR
SELECT cursor FROM meeting_event_cursor WHERE publisher = $1;

-- SAVE_EVENT_CURSOR
INSERT INTO meeting_event_cursor (publisher, cursor) VALUES ($1, $2)
ON CONFLICT (publisher) DO UPDATE SET cursor = excluded.cursor, updated_at = now();

-- CREATE_CREDENTIAL
INSERT INTO credential (person_id, kind, label, digest) SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT FROM person WHERE id = $1) RETURNING id, person_id, kind, label, created_at AT TIME ZONE 'UTC', revoked_at AT TIME ZONE 'UTC';

-- CREDENTIAL_BY_DIGEST
SELECT id, person_id, kind, label, created_at AT TIME ZONE 'UTC', revoked_at AT TIME ZONE 'UTC' FROM credential WHERE digest = $1;

-- CREDENTIAL
SELECT id, person_id, kind, label, created_at AT TIME ZONE 'UTC', revoked_at AT TIME ZONE 'UTC' FROM credential WHERE id = $1;

-- CREDENTIALS_OF
SELECT id, person_id, kind, label, created_at AT TIME ZONE 'UTC', revoked_at AT TIME ZONE 'UTC' FROM credential WHERE person_id = $1 ORDER BY id;

-- REVOKE_CREDENTIAL
UPDATE credential SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING id, person_id, kind, label, created_at AT TIME ZONE 'UTC', revoked_at AT TIME ZONE 'UTC';

-- DELETE_MEETINGS
DELETE FROM meeting WHERE id = ANY ($1::int8[]);

-- MEETINGS_OF_PERSON
SELECT * FROM ((SELECT m.id, m.person_a, m.person_b, m.start_time, m.end_time, m.contacts, m.closest_m, m.closest_at, m.closest_lat, m.closest_lon, m.closest_location_a, m.closest_location_b FROM meeting m WHERE m.person_a = $1 AND m.end_time >= $2 AND (m.start_time, m.id) < ($3, $4) ORDER BY m.start_time DESC, m.id DESC LIMIT $5) UNION ALL (SELECT m.id, m.person_a, m.person_b, m.start_time, m.end_time, m.contacts, m.closest_m, m.closest_at, m.closest_lat, m.closest_lon, m.closest_location_a, m.closest_location_b FROM meeting m WHERE m.person_b = $1 AND m.end_time >= $2 AND (m.start_time, m.id) < ($3, $4) ORDER BY m.start_time DESC, m.id DESC LIMIT $5)) AS m ORDER BY start_time DESC, id DESC LIMIT $5;
