-- UdaConnect's PostgreSQL roles: one login role per target, so that each
-- may do only what it does (the grants are the migrations':
-- apps/udaconnect/udaconnect-store/migrations/0004_roles.sql, and each later
-- migration's for what it adds, such as 0007_key_claims.sql or
-- 0010_meetings_role.sql). The migrate Job's first container runs it on
-- every `make up`, as the superuser the image creates (POSTGRES_USER),
-- before `udaconnect migrate` runs as the owner role:
--
--   psql --no-psqlrc --set=ON_ERROR_STOP=1 --file=roles.sql
--
-- with PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD set, and each
-- role's password in POSTGRES_<ROLE>_PASSWORD (the `udaconnect-postgres`
-- Secret), never on a command line. Running it again changes nothing but
-- the passwords, which are set on every run: a changed Secret takes
-- effect. It all happens in one transaction: nothing or everything.
--
-- What only a superuser may do is done here, so that no target needs one:
-- the extensions the migrations create (`IF NOT EXISTS`, then a no-op for
-- them), the owner role's right to create tables, and the tables an
-- earlier deploy made as the superuser given to the owner role.

\set QUIET on
\getenv migrate_password POSTGRES_MIGRATE_PASSWORD
\getenv api_password POSTGRES_API_PASSWORD
\getenv writer_password POSTGRES_WRITER_PASSWORD
\getenv ingest_password POSTGRES_INGEST_PASSWORD
\getenv meetings_password POSTGRES_MEETINGS_PASSWORD
-- A password not given is empty, which the transaction below refuses.
\if :{?migrate_password} \else \set migrate_password '' \endif
\if :{?api_password} \else \set api_password '' \endif
\if :{?writer_password} \else \set writer_password '' \endif
\if :{?ingest_password} \else \set ingest_password '' \endif
\if :{?meetings_password} \else \set meetings_password '' \endif

BEGIN;
-- Extensions already there, roles already made: no notice for each.
SET LOCAL client_min_messages = warning;
-- Two runs at once (a Job retried while the first still runs) take turns.
DO $$ BEGIN PERFORM pg_advisory_xact_lock(hashtext('udaconnect roles')); END $$;

-- Each login role, with its password: udaconnect_migrate owns the schema
-- and alone changes it; the others are the targets of the same name.
CREATE TEMPORARY TABLE login_role (name, password) ON COMMIT DROP AS VALUES
    ('udaconnect_migrate', :'migrate_password'),
    ('udaconnect_api', :'api_password'),
    ('udaconnect_writer', :'writer_password'),
    ('udaconnect_ingest', :'ingest_password'),
    ('udaconnect_meetings', :'meetings_password');

DO $$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(name, ', ') INTO missing FROM login_role WHERE password = '';
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'no password for %', missing;
    END IF;
END
$$;

SELECT format('CREATE ROLE %I', name)
FROM login_role
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name)
\gexec

-- Plain login roles: none may create roles or databases, replicate, or
-- bypass anything, whatever was set by hand before.
SELECT format(
    'ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L',
    name, password)
FROM login_role
\gexec

-- The database is for these roles: they may connect; nobody else but the
-- superuser, and nobody may make temporary tables (no target does).
SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database())
\gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), name)
FROM login_role
\gexec

-- PostGIS and btree_gist (migrations 0001, 0002): creating them takes a
-- superuser.
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Only the owner role creates objects in the schema. PostgreSQL 15 denies
-- PUBLIC that already; a database upgraded from an older one may not.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CREATE ON SCHEMA public TO udaconnect_migrate;

-- An earlier deploy migrated as the superuser, which then owns the tables
-- and functions: they become the owner role's (the tables' indexes and
-- serial sequences follow), or it could neither change them nor grant on
-- them. The migrations make only tables and SQL functions; those of the
-- extensions (spatial_ref_sys, PostGIS's functions) stay theirs.
SELECT format('ALTER TABLE %s OWNER TO udaconnect_migrate', c.oid::regclass)
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('r', 'p')
  AND c.relowner <> 'udaconnect_migrate'::regrole
  AND NOT EXISTS (
      SELECT FROM pg_depend d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
\gexec
SELECT format('ALTER FUNCTION %s OWNER TO udaconnect_migrate', p.oid::regprocedure)
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND p.proowner <> 'udaconnect_migrate'::regrole
  AND NOT EXISTS (
      SELECT FROM pg_depend d
      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  )
\gexec

COMMIT;
