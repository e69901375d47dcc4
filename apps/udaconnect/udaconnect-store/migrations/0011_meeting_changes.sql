-- Which transaction last wrote each meeting, so that a reader can follow
-- the meetings as they change: every row written by a transaction that
-- had not committed in the reader's previous snapshot, and has in its
-- new one (as the connections replica follows the locations). A counter
-- would not do: two transactions may commit in the other order than they
-- took their numbers, and a reader that had seen the later number would
-- skip the earlier one for good.
ALTER TABLE meeting ADD COLUMN IF NOT EXISTS written_by xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS meeting_written_by_idx ON meeting (written_by);
