-- Where the meetings' events on the bus have got to: the meetings target
-- publishes every meeting written (as the live streams read them, by
-- snapshot) and records here the snapshot it has published up to, so that
-- a process that restarts, or another one, goes on from there; what it
-- publishes again after a crash has the same message id and is dropped by
-- the broker.
CREATE TABLE IF NOT EXISTS meeting_event_cursor (
    publisher text PRIMARY KEY,
    cursor text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_meetings') THEN
        GRANT SELECT, INSERT, UPDATE ON meeting_event_cursor TO udaconnect_meetings;
    END IF;
END
$$;
