-- `udaconnect meetings-backfill` folds into the meetings the stored
-- locations the stream never brought them (UNFOLDED_LOCATIONS in
-- src/pg/sql.rs): on Kubernetes, udaconnect_meetings reads of a location
-- its id, person, time and position, the columns meeting_position copies
-- already; not its coordinate as sent, its key nor who wrote it. Granted
-- on the partitioned table, through which every read goes. A role that
-- does not exist is skipped, as in 0004.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_meetings') THEN
        GRANT SELECT (id, person_id, creation_time, lat, lon) ON location TO udaconnect_meetings;
    END IF;
END
$$;
