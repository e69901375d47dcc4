-- What `udaconnect meetings` may do (0008 made its tables). On Kubernetes
-- it connects as udaconnect_meetings, which
-- deploy/base/udaconnect/postgres/roles.sql creates; its statements
-- (MEETING_*, MEETINGS_OF_PAIRS, UPSERT_MEETINGS, DELETE_MEETINGS in
-- src/pg/sql.rs) need exactly this:
--
-- * meeting_position: it reads which locations are folded in already and
--   those near the new ones, and records the new ones (INSERT ... ON
--   CONFLICT DO NOTHING needs no UPDATE).
-- * meeting: it reads the pairs' meetings, writes new and grown ones
--   (INSERT ... ON CONFLICT DO UPDATE needs INSERT and UPDATE) and deletes
--   those taken into another.
-- * meeting_id_seq: ids for new meetings (nextval).
--
-- Nothing on person, location or the claims: the locations come from the
-- stream, with their persons. A role that does not exist is skipped, as in
-- 0004.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_meetings') THEN
        GRANT SELECT, INSERT ON meeting_position TO udaconnect_meetings;
        GRANT SELECT, INSERT, UPDATE, DELETE ON meeting TO udaconnect_meetings;
        GRANT USAGE ON SEQUENCE meeting_id_seq TO udaconnect_meetings;
    END IF;
END
$$;
