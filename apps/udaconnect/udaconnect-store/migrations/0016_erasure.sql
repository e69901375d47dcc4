-- Erasure: an attendee's data is theirs (udaconnect_domain's erasure
-- module). `person_erase` removes a person and every row about them in
-- one transaction: their locations (every partition), the meetings'
-- record of those locations, every meeting either side, the claims of
-- their idempotency keys, and the person; and it records the id in
-- `erased_person`, the tombstones. Person ids come from `person_id_seq`
-- and are never given out again, so the id names the person for good.
--
-- The tombstones tell the writers a location of an erased person (still
-- on the bus when the erasure ran) from one of a person who never
-- existed: the first is dropped, with the claims of its keys, the second
-- set aside as before. Their `written_by` lets a process that holds
-- persons in memory (an edge, the connections replica, the live streams)
-- read the erasures committed since its previous snapshot, as 0006 and
-- 0011 let it read the rows written.
CREATE TABLE erased_person (
    person_id integer PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now(),
    written_by xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX erased_person_written_by_idx ON erased_person (written_by);

-- A person's rows, found by their id: the locations by 0002's index, the
-- meetings by 0008's; the meetings' positions (on every partition) and
-- the claims by these.
CREATE INDEX meeting_position_person_idx ON meeting_position (person_id);
CREATE INDEX ingest_key_claim_person_idx ON ingest_key_claim (person_id);

-- Erases person `erased`: one row of what was removed, or none if there is
-- no such person (there never was, or they were erased already).
--
-- The person's row is locked first (FOR UPDATE), which waits for every
-- transaction holding it FOR KEY SHARE: a writer whose rows of theirs
-- passed the foreign key's check, a meetings fold about to write them
-- (`person_hold` below). In READ COMMITTED each statement after that sees
-- what those committed; and none can start meanwhile. A writer's copy
-- checked after the erasure finds the person gone and stores the batch
-- without their rows; a fold finds them gone and starts again without
-- them. So no row of theirs is left behind, whenever the others commit.
CREATE FUNCTION person_erase(erased integer)
    RETURNS TABLE (locations bigint, meeting_positions bigint, meetings bigint, key_claims bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM FROM person WHERE id = erased FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM location WHERE person_id = erased;
    GET DIAGNOSTICS locations = ROW_COUNT;
    DELETE FROM meeting_position WHERE person_id = erased;
    GET DIAGNOSTICS meeting_positions = ROW_COUNT;
    DELETE FROM meeting WHERE person_a = erased OR person_b = erased;
    GET DIAGNOSTICS meetings = ROW_COUNT;
    DELETE FROM ingest_key_claim WHERE person_id = erased;
    GET DIAGNOSTICS key_claims = ROW_COUNT;
    DELETE FROM person WHERE id = erased;
    INSERT INTO erased_person (person_id) VALUES (erased);
    RETURN NEXT;
END
$$;

-- The persons of `persons` that exist, held (FOR KEY SHARE, as a foreign
-- key's check holds them) until the calling transaction ends; returns
-- those of `persons` that were erased. A meetings fold calls it before it
-- writes anything of them and passes the erased over: an erasure waits
-- for the fold to commit, or the fold (serializable) finds the row it
-- would hold deleted since its snapshot and starts again, then finds the
-- person erased.
CREATE FUNCTION person_hold(persons integer[])
    RETURNS SETOF integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM FROM person WHERE id = ANY (persons) ORDER BY id FOR KEY SHARE;
    RETURN QUERY SELECT person_id FROM erased_person WHERE person_id = ANY (persons);
END
$$;

-- The claims of the erased among `persons` forgotten: claims an edge made
-- for their locations before it learned of the erasure, which the writer
-- forgets as it drops those locations. How many.
CREATE FUNCTION ingest_key_claim_forget(persons integer[])
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
DECLARE
    forgotten bigint;
BEGIN
    DELETE FROM ingest_key_claim k
    USING erased_person e
    WHERE e.person_id = k.person_id AND k.person_id = ANY (persons);
    GET DIAGNOSTICS forgotten = ROW_COUNT;
    RETURN forgotten;
END
$$;

REVOKE EXECUTE ON FUNCTION person_erase(integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION person_hold(integer[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION ingest_key_claim_forget(integer[]) FROM PUBLIC;

-- The API erases (through the function alone: it still deletes nothing
-- itself) and reads the erasures, for its replica and its live streams;
-- the edge reads them, to refuse the persons erased; the writer reads
-- which of a batch's persons were erased and forgets their claims; the
-- meetings target holds the persons it folds.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_api') THEN
        GRANT EXECUTE ON FUNCTION person_erase(integer) TO udaconnect_api;
        GRANT SELECT ON erased_person TO udaconnect_api;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_ingest') THEN
        GRANT SELECT ON erased_person TO udaconnect_ingest;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_writer') THEN
        GRANT SELECT (person_id) ON erased_person TO udaconnect_writer;
        GRANT EXECUTE ON FUNCTION ingest_key_claim_forget(integer[]) TO udaconnect_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_meetings') THEN
        GRANT EXECUTE ON FUNCTION person_hold(integer[]) TO udaconnect_meetings;
    END IF;
END
$$;
