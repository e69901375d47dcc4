-- Who may call: an attendee's link or a phone's token, each for one
-- person, kept only as the SHA-256 digest of the token (the token is shown
-- once, when made, and never stored). Revoking keeps the row, with when.
-- Erasing a person takes their credentials with them.
CREATE TABLE IF NOT EXISTS credential (
    id bigserial PRIMARY KEY,
    person_id integer NOT NULL REFERENCES person (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('attendee', 'device')),
    label text NOT NULL CHECK (char_length(label) BETWEEN 1 AND 100),
    digest bytea NOT NULL UNIQUE CHECK (octet_length(digest) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE INDEX IF NOT EXISTS credential_person_id ON credential (person_id);

-- * udaconnect_api makes, lists and revokes credentials and looks up the
--   callers of the API by digest.
-- * udaconnect_ingest looks up the phones (and the organiser's other
--   callers) by digest; it changes nothing.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_api') THEN
        GRANT SELECT, INSERT (person_id, kind, label, digest) ON credential TO udaconnect_api;
        GRANT UPDATE (revoked_at) ON credential TO udaconnect_api;
        GRANT USAGE ON SEQUENCE credential_id_seq TO udaconnect_api;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_ingest') THEN
        GRANT SELECT ON credential TO udaconnect_ingest;
    END IF;
END
$$;
