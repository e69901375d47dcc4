#!/usr/bin/env bash
# Times migration 0009 (the location table partitioned in place) on a table
# of a given size: an empty database is brought to schema version 7 with the
# migration files (recorded with their checksums, as `udaconnect migrate`
# records them), filled by `udaconnect generate` (the bulk loader the
# benchmarks use), and then `udaconnect migrate` applies 0009 alone, timed.
#
#   DATABASE_URL=postgres://…/empty_db scripts/time-location-partitions.sh 1000000 [udaconnect binary]
#
# The database must be empty (PostGIS available); the binary defaults to
# the release build (`cargo build --release -p udaconnect`).
set -euo pipefail
cd "$(dirname "$0")/.."

locations="${1:?usage: $0 LOCATIONS [udaconnect binary]}"
udaconnect="${2:-${CARGO_TARGET_DIR:-target}/release/udaconnect}"
: "${DATABASE_URL:?set DATABASE_URL to an empty database}"
psql=(psql -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL")

"${psql[@]}" -c "CREATE TABLE udaconnect_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())"
for file in apps/udaconnect/udaconnect-store/migrations/000[1-7]_*.sql; do
  base="$(basename "$file" .sql)"
  version="$((10#${base%%_*}))"
  checksum="$(sha256sum "$file" | cut -d' ' -f1)"
  "${psql[@]}" -1 -f "$file" \
    -c "INSERT INTO udaconnect_migrations (version, name, checksum) VALUES ($version, '${base#*_}', '$checksum')" >/dev/null
done

UDACONNECT_GENERATE_LOCATIONS="$locations" "$udaconnect" generate
"${psql[@]}" -c "CHECKPOINT"
size="$("${psql[@]}" -tA -c "SELECT pg_size_pretty(pg_total_relation_size('location'))")"
echo "location at version 7: $locations rows, $size with its indexes"

started="$(date +%s.%N)"
"$udaconnect" migrate
finished="$(date +%s.%N)"
printf 'udaconnect migrate (0009) took %.1f s\n' "$(echo "$finished - $started" | bc)"
"${psql[@]}" -c "SELECT tableoid::regclass AS partition, count(*) FROM location GROUP BY 1 ORDER BY 1"
