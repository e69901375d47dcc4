-- Which transaction wrote each person and location, so that a process
-- holding them in memory (the API's connections index) can catch up on
-- exactly the rows committed since it last looked.
--
-- A reader remembers the snapshot it last read under; the rows it has not
-- seen are those whose writer that snapshot does not show as committed
-- (`pg_visible_in_snapshot`). Ids or times would not do: a transaction
-- that took an id earlier may commit later, and one that commits late
-- carries whatever times its phones sent.
--
-- Rows written before this migration keep NULL: a reader loads all rows
-- once, when it starts. The default is set apart from adding the column so
-- that adding it rewrites nothing. `xid8` is 64 bits and never wraps; the
-- index serves "written by a transaction at or after the snapshot's
-- oldest", which is where every unseen row is.
ALTER TABLE person ADD COLUMN IF NOT EXISTS written_by xid8;
ALTER TABLE person ALTER COLUMN written_by SET DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS person_written_by_idx ON person (written_by);

ALTER TABLE location ADD COLUMN IF NOT EXISTS written_by xid8;
ALTER TABLE location ALTER COLUMN written_by SET DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS location_written_by_idx ON location (written_by);
