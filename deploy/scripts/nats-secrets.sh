#!/usr/bin/env bash
# Writes the NATS users' passwords, once, as an env file that kustomize turns
# into the `nats-users` Secret. An existing file is kept: the running servers
# and services already use its passwords.
#
#   deploy/scripts/nats-secrets.sh [FILE]   (default deploy/base/.secrets/nats.env)
set -euo pipefail

file="${1:-$(dirname "$0")/../base/.secrets/nats.env}"
if [ -s "$file" ]; then
  exit 0
fi

# 24 random bytes as hex, behind a letter: nats-server reads an env value as
# a config value, and an all-digit one would become a number.
password() {
  printf 'p%s' "$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
}

mkdir -p "$(dirname "$file")"
umask 077
{
  echo "PROVISION_PASSWORD=$(password)"
  echo "BROADCASTER_PASSWORD=$(password)"
  echo "RECEIVER_PASSWORD=$(password)"
} >"$file.tmp"
mv "$file.tmp" "$file"
echo "generated NATS passwords in $file"
