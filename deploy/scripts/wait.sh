#!/usr/bin/env bash
# Waits, within one deadline, for NATS and then each app asked for to be
# ready: Beacon's provisioning Job, broadcaster and receiver; UdaConnect's
# PostgreSQL, migrate and provision Jobs, edge, writer, meetings and API. On
# failure it shows why: the pods that are not ready, their events and their
# last log lines.
#
#   KUBECTL="kubectl --context=beacon" deploy/scripts/wait.sh SECONDS APP...
set -euo pipefail

deadline=$(($(date +%s) + $1))
shift
apps=" $* "
read -r -a kubectl <<<"${KUBECTL:-kubectl}"
namespace=beacon

k() { "${kubectl[@]}" -n "$namespace" "$@"; }

left() {
  local seconds=$((deadline - $(date +%s)))
  echo "$((seconds > 1 ? seconds : 1))s"
}

# Events and logs of every pod of APP that is not ready.
explain() {
  local app="$1" pod
  echo "!! $app is not ready. Pods:" >&2
  k get pods -l "app.kubernetes.io/name=$app" -o wide >&2 || true
  for pod in $(k get pods -l "app.kubernetes.io/name=$app" -o name 2>/dev/null); do
    if [ "$(k get "$pod" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = "True" ]; then
      continue
    fi
    echo "--- events of $pod" >&2
    k get events --field-selector "involvedObject.name=${pod#pod/}" --sort-by=.lastTimestamp >&2 || true
    echo "--- logs of $pod" >&2
    k logs "$pod" --all-containers --tail=30 >&2 || true
    k logs "$pod" --all-containers --tail=30 --previous >&2 2>/dev/null || true
  done
  echo "!! more: make status, make logs" >&2
  exit 1
}

wait_for() {
  local app="$1"
  shift
  echo "    $app"
  "$@" >/dev/null || explain "$app"
}

wait_for nats k rollout status statefulset/nats --timeout="$(left)"
if [[ "$apps" == *" beacon "* ]]; then
  wait_for provision k wait --for=condition=complete job/provision --timeout="$(left)"
  wait_for broadcaster k rollout status deployment/broadcaster --timeout="$(left)"
  wait_for receiver k rollout status deployment/receiver --timeout="$(left)"
fi
if [[ "$apps" == *" udaconnect "* ]]; then
  wait_for postgres k rollout status statefulset/postgres --timeout="$(left)"
  wait_for udaconnect-migrate k wait --for=condition=complete job/udaconnect-migrate --timeout="$(left)"
  wait_for udaconnect-provision k wait --for=condition=complete job/udaconnect-provision --timeout="$(left)"
  wait_for udaconnect-ingest k rollout status deployment/udaconnect-ingest --timeout="$(left)"
  wait_for udaconnect-writer k rollout status deployment/udaconnect-writer --timeout="$(left)"
  wait_for udaconnect-meetings k rollout status statefulset/udaconnect-meetings --timeout="$(left)"
  wait_for udaconnect-api k rollout status deployment/udaconnect-api --timeout="$(left)"
fi
