#!/usr/bin/env bash
# Prints the beacon image tag: a hash of what the image is made of (the
# Dockerfile and the sources compiled into the binary: Cargo.toml,
# Cargo.lock, crates/, apps/, tools/). The same sources give the same tag; any change gives
# a new one, which `make up` builds and rolls out.
set -euo pipefail
cd "$(dirname "$0")/../.."

if command -v sha256sum >/dev/null; then
  sha() { sha256sum; }
else
  sha() { shasum -a 256; }
fi

# Each file's hash next to its name, in a stable order, hashed again.
find Dockerfile .dockerignore Cargo.toml Cargo.lock crates apps tools -type f ! -path '*/target/*' \
  | LC_ALL=C sort \
  | while IFS= read -r file; do printf '%s  %s\n' "$(sha <"$file" | cut -c1-64)" "$file"; done \
  | sha | cut -c1-12
