//! Every statement the PostGIS store sends, in one place, so that the
//! queries can be read (and `EXPLAIN`ed) as a whole. Some are composed from
//! shared parts below; `statements.sql`, beside this file, holds every
//! statement whole, exactly as sent, and a test keeps it so
//! (`UPDATE_STATEMENTS=1 cargo test -p udaconnect-store statements` writes
//! it anew after a change).
//!
//! A location is read as [`location_columns!`]: its id, person,
//! `coordinate` (whose raw X/Y the original API shows) and `point` (the
//! position distances are measured on), both as PostGIS sends them in
//! binary (EWKB, decoded by [`super::wkb`], no function call per row),
//! and its time; or, where the grid's index holds all of it, with
//! `point`'s `lat` and `lon` in place of `point`.

/// The columns [`super::rows::location`] reads, of the table aliased `$t`.
macro_rules! location_columns {
    ($t:literal) => {
        concat!(
            $t,
            ".id, ",
            $t,
            ".person_id, ",
            $t,
            ".coordinate, ",
            $t,
            ".point, ",
            $t,
            ".creation_time"
        )
    };
}

/// The persons' columns [`super::rows::person`] reads.
macro_rules! select_persons {
    () => {
        "SELECT id, first_name, last_name, company_name FROM person"
    };
}

pub const PERSONS: &str = concat!(select_persons!(), " ORDER BY id");

pub const PERSONS_BY_ID: &str = concat!(select_persons!(), " WHERE id = ANY($1)");

pub const PERSON: &str = concat!(select_persons!(), " WHERE id = $1");

/// `$1` ids above this, `$2` the text (or null), `$3` the limit.
/// Case-insensitive with ICU's full lower-casing, as Rust's `to_lowercase`
/// does, whatever the database's collation. The cursor is always given
/// (below every id on the first page), so that the index starts each
/// page at it whatever the plan, as [`MEETINGS_OF_PERSON`]'s.
pub const SEARCH_PERSONS: &str = r#"
SELECT id, first_name, last_name, company_name
FROM person
WHERE id > $1::int8
  AND ($2::text IS NULL
       OR strpos(lower(first_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0
       OR strpos(lower(last_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0
       OR strpos(lower(company_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0)
ORDER BY id
LIMIT $3"#;

/// [`SEARCH_PERSONS`] newest first: ids below `$1`, descending.
pub const SEARCH_PERSONS_NEWEST: &str = r#"
SELECT id, first_name, last_name, company_name
FROM person
WHERE id < $1::int8
  AND ($2::text IS NULL
       OR strpos(lower(first_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0
       OR strpos(lower(last_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0
       OR strpos(lower(company_name COLLATE "und-x-icu"), lower($2 COLLATE "und-x-icu")) > 0)
ORDER BY id DESC
LIMIT $3"#;

pub const CREATE_PERSON: &str = "INSERT INTO person (first_name, last_name, company_name) \
     VALUES ($1, $2, $3) RETURNING id";

pub const LOCATION: &str = concat!(
    "SELECT ",
    location_columns!("l"),
    " FROM location l WHERE l.id = $1"
);

/// One statement per batch: rows of unknown persons are skipped, ids or
/// idempotency keys already stored (or earlier in the batch) are left
/// alone. Returns how many were stored, the ids of unknown persons' rows,
/// and of those the ids of erased persons' rows, in batch order.
pub const INSERT_LOCATIONS: &str = r#"
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
             ORDER BY k.ord)"#;

/// Before a batch is copied: the geometry type's oid (for the binary
/// `COPY`), which of the persons `$1` do not exist, which of them were
/// erased (migration 0016), and which of the ids
/// `$2` and the idempotency keys `$3` are stored already (a redelivery, a
/// retry published again), so that the copy leaves them out. Only the
/// partitions of the batch's times, `[$4, $5]`, are read: a row stored
/// again has the time it was stored with (its id and key are unique with
/// their time, migration 0009), and the planner leaves the other days out.
pub const BATCH_PREAMBLE: &str = r#"
SELECT 'geometry'::regtype::oid,
       array(SELECT DISTINCT u FROM unnest($1::int4[]) AS u
             WHERE NOT EXISTS (SELECT 1 FROM person p WHERE p.id = u)),
       array(SELECT e.person_id FROM erased_person e WHERE e.person_id = ANY ($1::int4[])),
       array(SELECT l.id FROM location l
             WHERE l.id = ANY ($2::int8[])
               AND l.creation_time >= $4::timestamp AND l.creation_time <= $5::timestamp),
       array(SELECT l.ingest_key FROM location l
             WHERE l.ingest_key = ANY ($3::text[]) AND l.ingest_key IS NOT NULL
               AND l.creation_time >= $4::timestamp AND l.creation_time <= $5::timestamp)"#;

/// A batch none of whose ids or keys is stored yet: the columns in the
/// order [`super::batch`] writes them.
pub const COPY_LOCATIONS: &str =
    "COPY location (id, person_id, coordinate, creation_time, ingest_key) FROM STDIN BINARY";

/// The claims of the keys of the erased among persons `$1` forgotten
/// (migration 0016): how many.
pub const FORGET_KEY_CLAIMS: &str = "SELECT ingest_key_claim_forget($1::int4[])";

/// Erases person `$1` (migration 0016): one row of what was removed, none
/// if there is no such person.
pub const ERASE_PERSON: &str = "SELECT locations, meeting_positions, meetings, key_claims \
     FROM person_erase($1::int4)";

/// The persons `$1` that exist held until the transaction ends, and
/// those of them erased (migration 0016).
pub const HOLD_PERSONS: &str = "SELECT person_hold($1::int4[])";

/// Every person id above `$1`, ascending.
pub const PERSON_IDS_AFTER: &str = "SELECT id FROM person WHERE id > $1 ORDER BY id";

pub const RESERVE_LOCATION_IDS: &str =
    "SELECT nextval('location_id_seq') FROM generate_series(1, $1::int8)";

/// Whether any of the keys `$1` is claimed: when none is, the request's
/// claims are copied in ([`COPY_KEY_CLAIMS`]) instead of sorted out one by
/// one ([`CLAIM_KEYS`]).
pub const ANY_KEY_CLAIMED: &str =
    "SELECT EXISTS (SELECT FROM ingest_key_claim WHERE ingest_key = ANY ($1::text[]))";

/// The claims of keys nobody holds, in bytewise key order (two edges
/// copying or claiming the same keys at once take their locks in the same
/// order, [`CLAIM_KEYS`]'s); it fails as a
/// whole on a key another edge claimed since [`ANY_KEY_CLAIMED`].
pub const COPY_KEY_CLAIMS: &str = "COPY ingest_key_claim \
     (ingest_key, location_id, person_id, lon, lat, creation_time) FROM STDIN BINARY";

/// One statement per request: claims the keys `$1` (each once, in key
/// order, so that two edges claiming the same keys at once take their
/// locks in the same order; bytewise, the order of [`COPY_KEY_CLAIMS`]'s
/// rows, whatever the database's collation) for the locations of ids `$2`, persons `$3`,
/// positions `$4`/`$5` (longitude, latitude) and times `$6`. Returns the
/// keys claimed now, and the claims held before the statement began.
///
/// A key that another edge claims at the same moment is neither: the
/// insert waits for that edge's claim to commit and then leaves the key
/// alone, but the statement reads as of its start; [`KEY_CLAIMS`] reads
/// those afterwards.
pub const CLAIM_KEYS: &str = r#"
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
JOIN claim c ON c.ingest_key = k.ingest_key"#;

/// The claims of the keys `$1`, in [`CLAIM_KEYS`]'s columns.
pub const KEY_CLAIMS: &str = "SELECT ingest_key, false, location_id, person_id, lon, lat, \
     creation_time FROM ingest_key_claim WHERE ingest_key = ANY ($1::text[])";

/// Which of the locations `$1[i]` of time `$2[i]` the meetings were
/// computed from already (the time finds the day's partition).
pub const MEETING_APPLIED: &str = r#"
SELECT p.location_id
FROM unnest($1::int8[], $2::timestamp[]) AS sighting(location_id, creation_time)
JOIN meeting_position p
  ON p.location_id = sighting.location_id AND p.creation_time = sighting.creation_time"#;

/// The locations the meetings were computed from that lie in cell `$1[i]`
/// with a time in `[$2[i], $3[i]]`, for each `i`: one index probe each,
/// whatever the planner makes of the table. As a plain join, at 30 M
/// folded in and 7,900 probes it was planned as a hash join over all of
/// `meeting_position` (13 s, past the statement timeout, on every try),
/// while the probes take 170 ms; `OFFSET 0` keeps the lateral read from
/// being flattened into such a join.
pub const MEETING_CANDIDATES: &str = r#"
SELECT p.location_id, p.person_id, p.creation_time, p.lat, p.lon
FROM unnest($1::int8[], $2::timestamp[], $3::timestamp[]) AS probe(cell, low, high)
CROSS JOIN LATERAL (
    SELECT location_id, person_id, creation_time, lat, lon
    FROM meeting_position
    WHERE cell = probe.cell AND creation_time BETWEEN probe.low AND probe.high
    OFFSET 0) p"#;

/// Records locations (ids `$1`, persons `$2`, times `$3`, latitudes `$4`,
/// longitudes `$5`, cells `$6`) as computed from.
pub const MEETING_POSITIONS: &str = r#"
INSERT INTO meeting_position (location_id, person_id, creation_time, lat, lon, cell)
SELECT * FROM unnest($1::int8[], $2::int4[], $3::timestamp[], $4::float8[], $5::float8[], $6::int8[])
ON CONFLICT (location_id, creation_time) DO NOTHING"#;

/// The highest location id stored.
pub const LAST_LOCATION_ID: &str = "SELECT COALESCE(max(id), 0)::int8 FROM location";

/// The stored locations with ids in `($1, $2]` the meetings were not
/// computed from yet, in id order (each partition's primary key finds the
/// window, and `meeting_position`'s the ones folded in). The window is
/// said on both sides: without it on `meeting_position` the planner may
/// sort all of it for a merge anti-join, every window, so that a
/// backfill slows as it goes (4.3 s a window at 9.5 M folded in, 40 ms
/// with it).
pub const UNFOLDED_LOCATIONS: &str = r#"
SELECT l.id, l.person_id, l.creation_time, l.lat, l.lon
FROM location l
WHERE l.id > $1 AND l.id <= $2
  AND NOT EXISTS (
    SELECT FROM meeting_position p
    WHERE p.location_id = l.id AND p.creation_time = l.creation_time
      AND p.location_id > $1 AND p.location_id <= $2)
ORDER BY l.id"#;

macro_rules! meeting_columns {
    ($alias:literal) => {
        concat!(
            $alias,
            ".id, ",
            $alias,
            ".person_a, ",
            $alias,
            ".person_b, ",
            $alias,
            ".start_time, ",
            $alias,
            ".end_time, ",
            $alias,
            ".contacts, ",
            $alias,
            ".closest_m, ",
            $alias,
            ".closest_at, ",
            $alias,
            ".closest_lat, ",
            $alias,
            ".closest_lon, ",
            $alias,
            ".closest_location_a, ",
            $alias,
            ".closest_location_b"
        )
    };
}

/// The meetings of persons `$1[i]` and `$2[i]` that overlap
/// `[$3[i], $4[i]]`, for each `i`.
pub const MEETINGS_OF_PAIRS: &str = concat!(
    "SELECT ",
    meeting_columns!("m"),
    r#"
FROM unnest($1::int4[], $2::int4[], $3::timestamp[], $4::timestamp[]) AS pair(a, b, low, high)
JOIN meeting m
  ON m.person_a = pair.a AND m.person_b = pair.b
 AND m.start_time <= pair.high AND m.end_time >= pair.low"#
);

/// `$1` fresh meeting ids.
pub const MEETING_IDS: &str = "SELECT nextval('meeting_id_seq') FROM generate_series(1, $1::int4)";

/// Writes meetings that did not exist before, under the ids
/// [`MEETING_IDS`] gave them: the columns in the order the fold writes
/// them (`written_by` takes its default, the writing transaction).
pub const COPY_MEETINGS: &str = "COPY meeting (id, person_a, person_b, start_time, end_time, \
     contacts, closest_m, closest_at, closest_lat, closest_lon, closest_location_a, \
     closest_location_b) FROM STDIN BINARY";

/// Writes meetings that grew, by id: ids `$1`, period `$2`/`$3`, contacts
/// `$4`, closest distance `$5`, time `$6`, place `$7`/`$8` (latitude,
/// longitude) and locations `$9`/`$10`.
pub const UPDATE_MEETINGS: &str = r#"
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
WHERE meeting.id = g.id"#;

/// The meetings written by transactions not committed in snapshot `$1`
/// (as text) and committed now, of person `$2` or (null) everyone's, in
/// the order of their transactions, at most `$3`.
pub const MEETINGS_WRITTEN_SINCE: &str = concat!(
    "SELECT ",
    meeting_columns!("m"),
    r#"
FROM meeting m
WHERE m.written_by >= pg_snapshot_xmin($1::text::pg_snapshot)
  AND NOT pg_visible_in_snapshot(m.written_by, $1::text::pg_snapshot)
  AND ($2::int4 IS NULL OR m.person_a = $2 OR m.person_b = $2)
ORDER BY m.written_by, m.id
LIMIT $3"#
);

/// The snapshot a reader of the store's changes (the meetings written,
/// the persons erased) starts from.
pub const CURRENT_SNAPSHOT: &str = "SELECT pg_current_snapshot()::text";

/// Where publisher `$1` has published the meetings' events up to.
pub const EVENT_CURSOR: &str = "SELECT cursor FROM meeting_event_cursor WHERE publisher = $1";

/// Records that publisher `$1` has published up to `$2`.
pub const SAVE_EVENT_CURSOR: &str = r#"
INSERT INTO meeting_event_cursor (publisher, cursor) VALUES ($1, $2)
ON CONFLICT (publisher) DO UPDATE SET cursor = excluded.cursor, updated_at = now()"#;

/// The credentials' columns [`super::credentials`] reads.
macro_rules! credential_columns {
    () => {
        "id, person_id, kind, label, created_at AT TIME ZONE 'UTC', revoked_at AT TIME ZONE 'UTC'"
    };
}

/// Stores a credential of person `$1` if the person exists (no row
/// otherwise).
pub const CREATE_CREDENTIAL: &str = concat!(
    "INSERT INTO credential (person_id, kind, label, digest) \
     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT FROM person WHERE id = $1) \
     RETURNING ",
    credential_columns!()
);

/// The credential whose token's digest is `$1`.
pub const CREDENTIAL_BY_DIGEST: &str = concat!(
    "SELECT ",
    credential_columns!(),
    " FROM credential WHERE digest = $1"
);

/// Credential `$1`.
pub const CREDENTIAL: &str = concat!(
    "SELECT ",
    credential_columns!(),
    " FROM credential WHERE id = $1"
);

/// Person `$1`'s credentials, by id.
pub const CREDENTIALS_OF: &str = concat!(
    "SELECT ",
    credential_columns!(),
    " FROM credential WHERE person_id = $1 ORDER BY id"
);

/// Revokes credential `$1` unless it is revoked already; the credential.
pub const REVOKE_CREDENTIAL: &str = concat!(
    "UPDATE credential SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING ",
    credential_columns!()
);

/// Removes the meetings `$1` (taken into others).
pub const DELETE_MEETINGS: &str = "DELETE FROM meeting WHERE id = ANY ($1::int8[])";

macro_rules! meetings_of_person_side {
    ($side:literal) => {
        concat!(
            "(SELECT ",
            meeting_columns!("m"),
            " FROM meeting m WHERE m.",
            $side,
            " = $1 AND m.end_time >= $2 AND (m.start_time, m.id) < ($3, $4) \
             ORDER BY m.start_time DESC, m.id DESC LIMIT $5)"
        )
    };
}

/// Person `$1`'s meetings ending at or after `$2` whose (start, id) is
/// below (`$3`, `$4`), most recent first, at most `$5`: the person's
/// meetings as the first and as the second of the two, each read in
/// order from its index, merged. The page's end and its cursor are one
/// bound ([`MeetingQuery::below`]), so that the index starts each page
/// where it begins however the statement is planned; as two conditions,
/// one of them optional, a generic plan filtered the cursor and read
/// every earlier page again.
///
/// [`MeetingQuery::below`]: udaconnect_domain::meeting::MeetingQuery::below
pub const MEETINGS_OF_PERSON: &str = concat!(
    "SELECT * FROM (",
    meetings_of_person_side!("person_a"),
    " UNION ALL ",
    meetings_of_person_side!("person_b"),
    ") AS m ORDER BY start_time DESC, id DESC LIMIT $5"
);

/// `$1` person, `[$2, $3)` times, (time, id) above (`$4`, `$5`), `$6`
/// limit. The start and the cursor are one bound
/// ([`LocationRange::above`]), which the index scan starts at whatever
/// the plan (as [`MEETINGS_OF_PERSON`]); `$2` stays for the partitions.
///
/// [`LocationRange::above`]: udaconnect_domain::query::LocationRange::above
pub const LOCATIONS_OF: &str = concat!(
    "SELECT ",
    location_columns!("l"),
    " FROM location l \
     WHERE l.person_id = $1 AND l.creation_time >= $2 AND l.creation_time < $3 \
       AND (l.creation_time, l.id) > ($4, $5::int8) \
     ORDER BY l.creation_time, l.id LIMIT $6"
);

/// The start of each of [`pairs_sql!`]'s two searches: the columns of
/// `pairs`, and those of its search up to the approximate distance.
macro_rules! pairs_search {
    ($carry:literal, $carried:literal) => {
        concat!(
            "SELECT ",
            $carried,
            " c.person_id, c.id, c.creation_time, c.own_id, c.approx
    FROM probe own
    CROSS JOIN LATERAL (
        SELECT ",
            $carry,
            " o.person_id, o.id, o.creation_time, own.id AS own_id, own.point AS own_point,"
        )
    };
}

/// The pairs both connection queries count: the person `$1`'s own
/// locations in `[$2, $3)` (`own`, one row each with its search box, in
/// `probe`) and every other person's location within `$4` metres of one,
/// at a time that satisfies `$time` (which may use `own.creation_time`), as
/// `pairs` (the other's person, id and time, the own location's id, and an
/// approximate distance in metres), with more of the other's columns
/// (or the own location's) before them: `$carry` as the search reads them
/// (of `o` and `own`) and `$carried` as `pairs` has them (of `c`), each
/// followed by a comma. Both must carry the other's `coordinate`.
///
/// Most own locations are searched on the grid of migration 0005: the
/// cells their box covers, read from the index over (cell, time), which
/// holds every column the search reads, so no candidate costs a heap page.
/// The box is the one [`udaconnect_domain::geodesic::search_boxes`]
/// computes: a degree of latitude is at least 110,574.27 m, one of
/// longitude at least 111,319.49 m times the cosine of the box's farthest
/// latitude, with a 0.1% margin. A candidate is measured flat, on the
/// ellipsoid's radii of curvature at the own latitude (`per_lat` and
/// `per_lon`, metres per degree). Within a box of at most 64 cells (0.3 km)
/// below 80° the radii vary by less than 0.013% and the error of the flat
/// measure is below that: a candidate under 99.9% of the distance flat is
/// surely within it on the spheroid, one over 100.1% surely not, and only
/// those in between are measured on the spheroid (`ST_DWithin`, the
/// original's test, on the other's point made from the `coordinate` the
/// search carries, `coordinate::geography(Point, 4326)`, the very
/// expression `point` is generated by: no second read of the row. Read
/// back by (id, time) instead, on the partitioned table the planner probed
/// the GiST over (point, time) by the time alone, its whole depth for each
/// pair).
///
/// The others are searched through the GiST over (point, time) instead
/// where the grid does not fit: a box across the antimeridian, beyond 80°,
/// or of more than 64 cells (a large distance). There a candidate is
/// measured on the sphere first (mean radius): over the few kilometres such
/// a search spans, spheroid distances are within 0.56% of sphere ones (the
/// radii of curvature of WGS 84 lie between 0.9944 and 1.0045 times the
/// mean radius), so only those between 99% and 101% of the distance are
/// measured on the spheroid. The index is probed with the 101% radius so
/// that none of those is missed.
///
/// An own location whose coordinate is not a number (a row written by
/// hand: it has no cell) meets no one, as no one meets it, in both stores.
///
/// The `OFFSET 0` keeps each search's subquery whole, so each candidate's
/// approximate distance is computed once, not once per use.
macro_rules! pairs_sql {
    ($time:literal, $carry:literal, $carried:literal) => {
        concat!(
            "own AS MATERIALIZED (
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
    ",
            pairs_search!($carry, $carried),
            "
               sqrt(((o.lat - own.lat) * own.per_lat) ^ 2 + ((o.lon - own.lon) * own.per_lon) ^ 2)
                   AS approx
        FROM location o
        WHERE o.cell = ANY (own.cells)
          AND ",
            $time,
            "
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
    ",
            pairs_search!($carry, $carried),
            "
               ST_Distance(o.point, own.point, false) AS approx, o.point AS other_point
        FROM location o
        WHERE o.point && _st_expand(own.point, $4::float8 * 1.01)
          AND ",
            $time,
            "
          AND o.person_id <> $1
        OFFSET 0
    ) c
    WHERE own.cells IS NULL
      AND (c.approx < $4::float8 * 0.99
           OR (c.approx <= $4::float8 * 1.01 AND ST_DWithin(c.other_point, c.own_point, $4)))
)"
        )
    };
}

/// The original's rows in one statement: `$1` person, own times in
/// `[$2, $3)`, others' in `[$2, $5)`, `$4` metres, at most `$6` rows. The
/// pairs are decided by `ST_DWithin` on `geography`, on the spheroid, as
/// the original's query does (see [`pairs_sql!`]); the original built each
/// own point anew from its X/Y with SRID 4326, which is exactly the own
/// row's `point`. The other locations are read as the search found them:
/// id, person, `coordinate`, `point`'s `lat` and `lon` as floats, time
/// ([`super::rows::found_location`]), from the grid's index alone, with
/// the own location's time to order them by (one sort, no join).
pub const COMPAT_CONNECTIONS: &str = concat!(
    "WITH ",
    pairs_sql!(
        "o.creation_time >= $2 AND o.creation_time < $5",
        "o.coordinate, o.lat, o.lon, own.creation_time AS own_time,",
        "c.coordinate, c.lat, c.lon, c.own_time,"
    ),
    "
SELECT c.id, c.person_id, c.coordinate, c.lat, c.lon, c.creation_time
FROM pairs c
ORDER BY c.own_time, c.own_id, c.id
LIMIT $6"
);

/// The v2 contacts, from the [`pairs_sql!`] with the others' time condition
/// `$time`. Parameters: `$1` person, `[$2, $3)` own times, `$4` metres,
/// then the time condition's, then the cursor (encounters, person id, or
/// nulls) and the limit, numbered from `$after_encounters`.
///
/// `pairs` carries the other's `coordinate` (from the grid's index, which
/// includes it) and no more, which keeps it narrow: at a hundred thousand
/// pairs and more it is written to disk past `work_mem`. The few pairs
/// measured on the spheroid make their point from it. The approximate distance
/// also picks each contact's closest: the spheroid distance is measured
/// only for the page's contacts and only for pairs whose approximate
/// distance is within 2% of the contact's nearest, which surely includes
/// the pair closest on the spheroid.
macro_rules! connections_sql {
    ($time:literal, $after_encounters:literal, $after_person:literal, $limit:literal) => {
        concat!(
            "WITH ",
            pairs_sql!($time, "o.coordinate,", "c.coordinate,"),
            ",
contacts AS (
    SELECT person_id, count(*) AS encounters, min(creation_time) AS first_met,
           max(creation_time) AS last_met, min(approx) AS nearest
    FROM pairs
    GROUP BY person_id
),
page AS (
    SELECT *
    FROM contacts
    WHERE ",
            $after_encounters,
            "::int8 IS NULL
       OR encounters < ",
            $after_encounters,
            "
       OR (encounters = ",
            $after_encounters,
            " AND person_id > ",
            $after_person,
            "::int4)
    ORDER BY encounters DESC, person_id
    LIMIT ",
            $limit,
            "
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
ORDER BY page.encounters DESC, page.person_id"
        )
    };
}

/// Without `within`: the others' times in `[$5, $6]`.
pub const CONNECTIONS: &str = connections_sql!(
    "o.creation_time >= $5 AND o.creation_time <= $6",
    "$7",
    "$8",
    "$9"
);

/// With `within`: `$5` microseconds either side of the own location.
pub const CONNECTIONS_WITHIN: &str = connections_sql!(
    "o.creation_time >= own.creation_time - $5::int8 * interval '1 microsecond'
          AND o.creation_time <= own.creation_time + $5::int8 * interval '1 microsecond'",
    "$6",
    "$7",
    "$8"
);

pub const COUNT_PERSONS: &str = "SELECT count(*) FROM person";

/// The locations by the statistics, summed over the table's partitions
/// (migration 0009): for each, the live-row count every committed insert
/// moves (within a second), or, if larger, the planner's estimate kept by
/// `ANALYZE` (the live count starts from zero again after a crash; a
/// partition never analysed estimates -1).
pub const ESTIMATE_LOCATIONS: &str = "
SELECT COALESCE(sum(GREATEST(c.reltuples::int8, COALESCE(s.n_live_tup, 0), 0)), 0)::int8
FROM pg_partition_tree('location'::regclass) t
JOIN pg_class c ON c.oid = t.relid
LEFT JOIN pg_stat_user_tables s ON s.relid = t.relid
WHERE t.isleaf";

pub const COUNT_LOCATIONS: &str = "SELECT count(*) FROM location";

/// Moves both sequences past the largest id, never backwards.
pub const ADVANCE_SEQUENCES: &str = "
SELECT setval('person_id_seq', max_id)
FROM (SELECT max(id) AS max_id FROM person) AS ids
WHERE max_id > (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM person_id_seq);
SELECT setval('location_id_seq', max_id)
FROM (SELECT max(id) AS max_id FROM location) AS ids
WHERE max_id > (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM location_id_seq);
";

/// The location table's upkeep at `$1`: partitions for `$2` days ahead,
/// and with a retention of `$3` microseconds (or null) the days past it
/// dropped. No row when another process is doing it meanwhile.
pub const MAINTAIN_LOCATIONS: &str = "SELECT created, dropped, default_deleted \
     FROM location_maintain($1::timestamp, $2::int4, $3::int8 * interval '1 microsecond')";

/// At most `$3` idempotency keys' claims past the retention of `$2`
/// microseconds at `$1` deleted: how many.
pub const PRUNE_KEY_CLAIMS: &str = "SELECT ingest_key_claim_prune($1::timestamp, \
     $2::int8 * interval '1 microsecond', $3::int4)";

/// The meetings' positions' upkeep at `$1`, as [`MAINTAIN_LOCATIONS`]'s
/// (migration 0013). No row when another process is doing it meanwhile.
pub const MAINTAIN_MEETING_POSITIONS: &str = "SELECT created, dropped, default_deleted \
     FROM meeting_position_maintain($1::timestamp, $2::int4, $3::int8 * interval '1 microsecond')";

/// At most `$3` meetings that ended before the cutoff of the retention of
/// `$2` microseconds at `$1` deleted: how many.
pub const PRUNE_MEETINGS: &str = "SELECT meeting_prune($1::timestamp, \
     $2::int8 * interval '1 microsecond', $3::int4)";

/// The snapshot the replica's read runs under (the transaction's, taken by
/// its first statement), as text; whether both tables record who wrote
/// their rows (migration 0006): before, rows written after the load could
/// not be told from those before; and whether the location table is
/// partitioned (migration 0009), so that [`REPLICA_HORIZON`] can be read;
/// and whether erasures are recorded (migration 0016), so that
/// [`ERASED_SINCE`] can be. From the catalog, which every role reads.
pub const SNAPSHOT: &str = "SELECT pg_current_snapshot()::text, \
     (SELECT count(*) = 2 FROM pg_attribute \
      WHERE attrelid IN ('person'::regclass, 'location'::regclass) \
        AND attname = 'written_by' AND NOT attisdropped), \
     to_regprocedure('location_partitions()') IS NOT NULL, \
     to_regclass('erased_person') IS NOT NULL";

/// Where the oldest partition of the location table starts, in seconds
/// since 1970 (-Infinity for the history partition): it moves only when a
/// retention drops partitions, whose rows the replica must then forget.
pub const REPLICA_HORIZON: &str = "SELECT min(COALESCE(extract(epoch FROM lower_bound)::float8, \
     '-Infinity'::float8)) FROM location_partitions()";

/// The locations' columns [`super::rows::found_location`] reads.
macro_rules! select_found_locations {
    () => {
        "SELECT id, person_id, coordinate, lat, lon, creation_time FROM location"
    };
}

pub const REPLICA_LOCATIONS: &str = select_found_locations!();

/// What a transaction the snapshot `$1` (as text) does not show as
/// committed wrote: every such transaction is at or past the snapshot's
/// oldest, so the index on `written_by` finds its rows.
macro_rules! written_since {
    () => {
        " WHERE written_by >= pg_snapshot_xmin($1::text::pg_snapshot) \
         AND NOT pg_visible_in_snapshot(written_by, $1::text::pg_snapshot)"
    };
}

pub const REPLICA_PERSONS_SINCE: &str = concat!(select_persons!(), written_since!());

pub const REPLICA_LOCATIONS_SINCE: &str = concat!(select_found_locations!(), written_since!());

/// The persons erased by transactions not committed in snapshot `$1` (as
/// text) and committed now: for the replica, and for any reader of the
/// erasures.
pub const ERASED_SINCE: &str = concat!("SELECT person_id FROM erased_person", written_since!());

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement, named, in the order of this file.
    const STATEMENTS: [(&str, &str); 57] = [
        ("PERSONS", PERSONS),
        ("PERSONS_BY_ID", PERSONS_BY_ID),
        ("PERSON", PERSON),
        ("SEARCH_PERSONS", SEARCH_PERSONS),
        ("SEARCH_PERSONS_NEWEST", SEARCH_PERSONS_NEWEST),
        ("CREATE_PERSON", CREATE_PERSON),
        ("LOCATION", LOCATION),
        ("INSERT_LOCATIONS", INSERT_LOCATIONS),
        ("BATCH_PREAMBLE", BATCH_PREAMBLE),
        ("COPY_LOCATIONS", COPY_LOCATIONS),
        ("FORGET_KEY_CLAIMS", FORGET_KEY_CLAIMS),
        ("ERASE_PERSON", ERASE_PERSON),
        ("HOLD_PERSONS", HOLD_PERSONS),
        ("PERSON_IDS_AFTER", PERSON_IDS_AFTER),
        ("RESERVE_LOCATION_IDS", RESERVE_LOCATION_IDS),
        ("ANY_KEY_CLAIMED", ANY_KEY_CLAIMED),
        ("COPY_KEY_CLAIMS", COPY_KEY_CLAIMS),
        ("CLAIM_KEYS", CLAIM_KEYS),
        ("KEY_CLAIMS", KEY_CLAIMS),
        ("LOCATIONS_OF", LOCATIONS_OF),
        ("COMPAT_CONNECTIONS", COMPAT_CONNECTIONS),
        ("CONNECTIONS", CONNECTIONS),
        ("CONNECTIONS_WITHIN", CONNECTIONS_WITHIN),
        ("COUNT_PERSONS", COUNT_PERSONS),
        ("ESTIMATE_LOCATIONS", ESTIMATE_LOCATIONS),
        ("COUNT_LOCATIONS", COUNT_LOCATIONS),
        ("ADVANCE_SEQUENCES", ADVANCE_SEQUENCES),
        ("MAINTAIN_LOCATIONS", MAINTAIN_LOCATIONS),
        ("PRUNE_KEY_CLAIMS", PRUNE_KEY_CLAIMS),
        ("MAINTAIN_MEETING_POSITIONS", MAINTAIN_MEETING_POSITIONS),
        ("PRUNE_MEETINGS", PRUNE_MEETINGS),
        ("SNAPSHOT", SNAPSHOT),
        ("REPLICA_HORIZON", REPLICA_HORIZON),
        ("REPLICA_LOCATIONS", REPLICA_LOCATIONS),
        ("REPLICA_PERSONS_SINCE", REPLICA_PERSONS_SINCE),
        ("REPLICA_LOCATIONS_SINCE", REPLICA_LOCATIONS_SINCE),
        ("ERASED_SINCE", ERASED_SINCE),
        ("MEETING_APPLIED", MEETING_APPLIED),
        ("MEETING_CANDIDATES", MEETING_CANDIDATES),
        ("MEETING_POSITIONS", MEETING_POSITIONS),
        ("LAST_LOCATION_ID", LAST_LOCATION_ID),
        ("UNFOLDED_LOCATIONS", UNFOLDED_LOCATIONS),
        ("MEETINGS_OF_PAIRS", MEETINGS_OF_PAIRS),
        ("MEETING_IDS", MEETING_IDS),
        ("COPY_MEETINGS", COPY_MEETINGS),
        ("UPDATE_MEETINGS", UPDATE_MEETINGS),
        ("MEETINGS_WRITTEN_SINCE", MEETINGS_WRITTEN_SINCE),
        ("CURRENT_SNAPSHOT", CURRENT_SNAPSHOT),
        ("EVENT_CURSOR", EVENT_CURSOR),
        ("SAVE_EVENT_CURSOR", SAVE_EVENT_CURSOR),
        ("CREATE_CREDENTIAL", CREATE_CREDENTIAL),
        ("CREDENTIAL_BY_DIGEST", CREDENTIAL_BY_DIGEST),
        ("CREDENTIAL", CREDENTIAL),
        ("CREDENTIALS_OF", CREDENTIALS_OF),
        ("REVOKE_CREDENTIAL", REVOKE_CREDENTIAL),
        ("DELETE_MEETINGS", DELETE_MEETINGS),
        ("MEETINGS_OF_PERSON", MEETINGS_OF_PERSON),
    ];

    /// `statements.sql` as these statements make it.
    fn render() -> String {
        let mut text = String::from(
            "-- Every statement the PostGIS store sends, whole, as sent (from sql.rs).\n\
             -- Kept by a test: UPDATE_STATEMENTS=1 cargo test -p udaconnect-store statements\n",
        );
        for (name, statement) in STATEMENTS {
            text.push_str(&format!("\n-- {name}\n{};\n", statement.trim()));
        }
        text
    }

    #[test]
    fn statements_sql_holds_every_statement_whole() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pg/statements.sql");
        let rendered = render();
        if std::env::var_os("UPDATE_STATEMENTS").is_some() {
            std::fs::write(&path, &rendered).expect("write statements.sql");
        }
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            kept == rendered,
            "{} is not what sql.rs sends: run UPDATE_STATEMENTS=1 cargo test -p udaconnect-store statements",
            path.display()
        );
    }
}
