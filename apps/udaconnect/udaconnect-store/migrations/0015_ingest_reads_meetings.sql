-- The edge answers each OwnTracks post with whom the phone's person met
-- today, where they met (udaconnect's src/ingest/friends.rs): on
-- Kubernetes, udaconnect_ingest reads the meetings (MEETINGS_OF_PERSON in
-- src/pg/sql.rs), as it reads the persons already (0004). It writes none.
-- A role that does not exist is skipped, as in 0004.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_ingest') THEN
        GRANT SELECT ON meeting TO udaconnect_ingest;
    END IF;
END
$$;
