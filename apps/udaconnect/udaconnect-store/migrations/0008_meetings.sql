-- Meetings: who was with whom, from when to when (udaconnect_domain's
-- meeting module defines them). `meeting_position` holds every location
-- the meetings have been computed from, by the grid cell meetings look
-- positions up in and time: a location is folded in once (its id is the
-- key), and matched against exactly the locations folded in before it.
-- `meeting` holds the meetings; the two persons with the lower id first.
CREATE TABLE IF NOT EXISTS meeting_position (
    location_id bigint PRIMARY KEY,
    person_id integer NOT NULL,
    creation_time timestamp NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    cell bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS meeting_position_cell_time_idx
    ON meeting_position (cell, creation_time) INCLUDE (location_id, person_id, lat, lon);

CREATE TABLE IF NOT EXISTS meeting (
    id bigserial PRIMARY KEY,
    person_a integer NOT NULL,
    person_b integer NOT NULL,
    start_time timestamp NOT NULL,
    end_time timestamp NOT NULL,
    contacts bigint NOT NULL,
    closest_m double precision NOT NULL,
    closest_at timestamp NOT NULL,
    closest_lat double precision NOT NULL,
    closest_lon double precision NOT NULL,
    closest_location_a bigint NOT NULL,
    closest_location_b bigint NOT NULL,
    CHECK (person_a < person_b),
    CHECK (start_time <= end_time),
    CHECK (contacts > 0)
);
CREATE INDEX IF NOT EXISTS meeting_pair_idx ON meeting (person_a, person_b, start_time);
CREATE INDEX IF NOT EXISTS meeting_a_recent_idx ON meeting (person_a, start_time DESC, id DESC);
CREATE INDEX IF NOT EXISTS meeting_b_recent_idx ON meeting (person_b, start_time DESC, id DESC);

-- The query API reads meetings. The target that computes them, if it
-- connects as a role of its own, is granted by the deployment that
-- creates that role.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_api') THEN
        GRANT SELECT ON meeting TO udaconnect_api;
    END IF;
END
$$;
