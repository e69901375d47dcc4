#!/usr/bin/env bash
# Runs the README's quick start the way a newcomer types it, cheaply: each
# `cargo run` line of the first ```sh block, exactly as written, with
# `-- --help` appended. Cargo refuses a command that names no runnable binary
# before it compiles anything, so the check passes as soon as cargo starts
# compiling (or has run the binary's --help) and fails on any error. Each
# `make` line must name a target of the Makefile.
#
#   scripts/check-quickstart.sh [README.md]
set -euo pipefail
cd "$(dirname "$0")/.."

readme="${1:-README.md}"
# The first ```sh (or bash/console) block, comments and prompts stripped.
block="$(awk '/^```(sh|bash|console)[[:space:]]*$/ { f++; next } /^```/ { if (f == 1) exit } f == 1' "$readme" \
  | sed -e 's/[[:space:]]#.*$//' -e 's/^\$ //' -e 's/[[:space:]]*$//' | grep -v '^$' || true)"
if [ -z "$block" ]; then
  echo "check-quickstart: $readme has no \`\`\`sh block" >&2
  exit 1
fi
grep -q '^cargo run' <<<"$block" || {
  echo "check-quickstart: the first shell block of $readme runs nothing with cargo run" >&2
  exit 1
}

# How long cargo may take to resolve the workspace (and fetch the index on a
# fresh machine) before it must have chosen what to run.
deadline_s="${QUICKSTART_DEADLINE_S:-600}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

check_cargo() { # the command line, exactly as the README has it
  local cmd="$1" pid start verdict=""
  # Its own process group, so that stopping it stops the compiler it started.
  setsid bash -c "exec $cmd -- --help" >"$log" 2>&1 </dev/null &
  pid=$!
  start=$SECONDS
  while [ -z "$verdict" ]; do
    if grep -qE '^(error|fatal)' "$log"; then
      verdict=fail
    elif grep -qE '^[[:space:]]*(Compiling|Running|Finished)[[:space:]]' "$log"; then
      verdict=ok
    elif ! kill -0 "$pid" 2>/dev/null; then
      if wait "$pid"; then verdict=ok; else verdict=fail; fi
    elif [ $((SECONDS - start)) -ge "$deadline_s" ]; then
      verdict=timeout
    else
      sleep 0.2
    fi
  done
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  case "$verdict" in
    ok) echo "    ok: $cmd" ;;
    timeout)
      echo "check-quickstart: \`$cmd\` chose nothing to run within ${deadline_s}s:" >&2
      tail -n 20 "$log" >&2
      return 1
      ;;
    *)
      echo "check-quickstart: the README's \`$cmd\` fails:" >&2
      grep -E -A5 '^(error|fatal)' "$log" >&2 || tail -n 20 "$log" >&2
      return 1
      ;;
  esac
}

# Make's database: every target of the Makefile and what it includes.
targets="$(make -pRrq -f Makefile : 2>/dev/null || true)"

check_make() { # `make TARGET...`: each target must exist
  local target
  for target in $1; do
    case "$target" in make | *=*) continue ;; esac
    if ! grep -qE "^${target}:" <<<"$targets"; then
      echo "check-quickstart: the README's \`$1\` names no make target \`$target\`" >&2
      return 1
    fi
  done
  echo "    ok: $1"
}

echo "==> the README's quick start, as typed"
status=0
while IFS= read -r line; do
  case "$line" in
    cargo\ run*) check_cargo "$line" || status=1 ;;
    make\ *) check_make "$line" || status=1 ;;
  esac
done <<<"$block"
exit "$status"
