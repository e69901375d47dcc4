-- The original UdaConnect's schema, so that a fresh database starts where
-- a database created by the original already is. `IF NOT EXISTS` leaves
-- such a database (and its rows) as it is.
CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE IF NOT EXISTS person (
    id SERIAL PRIMARY KEY,
    first_name VARCHAR NOT NULL,
    last_name VARCHAR NOT NULL,
    company_name VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS location (
    id SERIAL PRIMARY KEY,
    person_id INT NOT NULL,
    coordinate GEOMETRY NOT NULL,
    creation_time TIMESTAMP NOT NULL DEFAULT NOW(),
    FOREIGN KEY (person_id) REFERENCES person(id)
);
CREATE INDEX IF NOT EXISTS coordinate_idx ON location (coordinate);
CREATE INDEX IF NOT EXISTS creation_time_idx ON location (creation_time);
