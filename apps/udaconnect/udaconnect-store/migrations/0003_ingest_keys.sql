-- Idempotency keys from the clients of the ingest edge: a phone that
-- retries a location it got no answer for sends it again with the same
-- key, perhaps to another edge that gives it another id; the key makes it
-- stored once. Locations without a key (the original's, the API's) need
-- none, so the index covers only the rows that have one.
ALTER TABLE location ADD COLUMN IF NOT EXISTS ingest_key text;
CREATE UNIQUE INDEX IF NOT EXISTS location_ingest_key_idx ON location (ingest_key)
    WHERE ingest_key IS NOT NULL;
