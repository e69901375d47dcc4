#!/usr/bin/env bash
# Writes the passwords, once each, as env files that kustomize turns into
# Secrets: DIR/nats.env (the `nats-users` Secret: one password per NATS user),
# DIR/postgres.env (the `udaconnect-postgres` Secret: the superuser's,
# POSTGRES_PASSWORD, and one per UdaConnect role,
# POSTGRES_<ROLE>_PASSWORD, which deploy/base/udaconnect/postgres/roles.sql
# reads) and DIR/organiser.env (the `udaconnect-organiser` Secret:
# UdaConnect's organiser token, UDACONNECT_ORGANISER_TOKEN, which may do
# everything on its API; `make organiser-token` prints it). A password
# already in its file is kept: the running servers and services use it. One
# missing from an existing file (a user added since) is appended.
#
#   deploy/scripts/secrets.sh [DIR]   (default deploy/base/.secrets)
set -euo pipefail

dir="${1:-$(dirname "$0")/../base/.secrets}"

# 24 random bytes as hex, behind a letter: nats-server reads an env value as
# a config value, and an all-digit one would become a number. Hex is also
# safe inside a database URL.
password() {
  printf 'p%s' "$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
}

# 32 random bytes as hex: a token of 64 characters (UdaConnect wants 32 at
# least), as `openssl rand -hex 32` makes.
token() {
  od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

# ensure FILE KEY...: appends KEY=<new password> for each KEY not in FILE
# (KEY=<new token> for a KEY ending in _TOKEN).
ensure() {
  local file="$1" key added=()
  shift
  touch "$file"
  for key in "$@"; do
    if ! grep -q "^$key=" "$file"; then
      case "$key" in
        *_TOKEN) echo "$key=$(token)" >>"$file" ;;
        *) echo "$key=$(password)" >>"$file" ;;
      esac
      added+=("$key")
    fi
  done
  if [ "${#added[@]}" -gt 0 ]; then
    echo "generated ${added[*]} in $file"
  fi
}

mkdir -p "$dir"
umask 077
ensure "$dir/nats.env" \
  PROVISION_PASSWORD BROADCASTER_PASSWORD RECEIVER_PASSWORD \
  UDACONNECT_PROVISION_PASSWORD UDACONNECT_INGEST_PASSWORD UDACONNECT_WRITER_PASSWORD \
  UDACONNECT_MEETINGS_PASSWORD
ensure "$dir/postgres.env" \
  POSTGRES_PASSWORD \
  POSTGRES_MIGRATE_PASSWORD POSTGRES_API_PASSWORD POSTGRES_WRITER_PASSWORD POSTGRES_INGEST_PASSWORD \
  POSTGRES_MEETINGS_PASSWORD
ensure "$dir/organiser.env" UDACONNECT_ORGANISER_TOKEN
