-- What each target's role may do, given by the schema's owner. On
-- Kubernetes every target connects as a role of its own, which
-- deploy/base/udaconnect/postgres/roles.sql creates, and the migrate Job
-- applies this as udaconnect_migrate, the owner. Each role gets exactly
-- what its target's statements (crates/connect-store/src/pg/sql.rs) need:
--
-- * udaconnect_api, the query API: reads persons and locations (both
--   APIs, the live counts) and creates persons, whose ids come from
--   person_id_seq. It writes no location: the edge takes them and the
--   writers store them.
-- * udaconnect_ingest, the edge: reads the persons, to check each location
--   against them, and takes location ids from location_id_seq.
-- * udaconnect_writer: inserts locations with the ids the edge took (so no
--   sequence), skipping those whose person (by id) does not exist.
--
-- Nobody but the owner may change or drop a table, and nobody may update,
-- delete or truncate. A role that does not exist is skipped: with one user
-- for everything (locally, most tests) this changes nothing.
--
-- No ALTER DEFAULT PRIVILEGES: a table a later migration adds is no
-- target's until that migration grants what the targets do with it, so
-- access is only ever widened by a migration that says so.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_api') THEN
        GRANT SELECT ON person, location TO udaconnect_api;
        GRANT INSERT (first_name, last_name, company_name) ON person TO udaconnect_api;
        GRANT USAGE ON SEQUENCE person_id_seq TO udaconnect_api;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_ingest') THEN
        GRANT SELECT ON person TO udaconnect_ingest;
        GRANT USAGE ON SEQUENCE location_id_seq TO udaconnect_ingest;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_writer') THEN
        GRANT SELECT (id) ON person TO udaconnect_writer;
        GRANT INSERT (id, person_id, coordinate, creation_time, ingest_key) ON location
            TO udaconnect_writer;
    END IF;
END
$$;
