#!/usr/bin/env bash
# Prints the pages' URLs, Beacon's and UdaConnect's, and, with --open, opens
# them in the browser when this system can (never failing when it cannot).
# The overlay deployed (dev or prod) is read from the namespace's label.
#
#   KUBECTL="kubectl --context=beacon" deploy/scripts/url.sh PROFILE [--open]
#
# dev: the receiver's and UdaConnect API's NodePorts, through `minikube
# service`. On macOS that command also opens the browser itself and, with
# the Docker driver, keeps a tunnel open in the foreground, which the pages
# need.
# prod: the Ingress, on the minikube node's address (Linux) or, on macOS,
# on 127.0.0.1 through `minikube tunnel`; UdaConnect on its nip.io host
# name for that address.
set -euo pipefail

profile="$1"
open="${2:-}"
minikube=(minikube -p "$profile")
read -r -a kubectl <<<"${KUBECTL:-kubectl}"
env="$("${kubectl[@]}" get namespace beacon --ignore-not-found -o jsonpath='{.metadata.labels.beacon/overlay}')"
if [ -z "$env" ]; then
  echo "Beacon and UdaConnect are not deployed on minikube profile $profile: make up deploys them" >&2
  exit 1
fi

open_url() {
  [ "$open" = "--open" ] || return 0
  if [ "$(uname -s)" = Darwin ]; then
    open "$1" >/dev/null 2>&1 || true
  elif command -v xdg-open >/dev/null && { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }; then
    xdg-open "$1" >/dev/null 2>&1 || true
  fi
}

if [ "$env" = prod ]; then
  if [ "$(uname -s)" = Darwin ]; then
    echo "Beacon's page (Ingress):     http://127.0.0.1/"
    echo "UdaConnect's page (Ingress): http://udaconnect-127-0-0-1.nip.io/"
    echo "They need a tunnel: run \`minikube -p $profile tunnel\` in another terminal (it asks for your password)."
    exit 0
  fi
  ip="$("${minikube[@]}" ip)"
  beacon="http://$ip/"
  udaconnect="http://udaconnect-${ip//./-}.nip.io/"
  echo "Beacon's page (Ingress):     $beacon"
  echo "UdaConnect's page (Ingress): $udaconnect (nip.io resolves it to $ip)"
  open_url "$beacon"
  open_url "$udaconnect"
  exit 0
fi

if [ "$(uname -s)" = Darwin ]; then
  tunnel="with the Docker driver, through tunnels that last while this terminal stays open (Ctrl-C closes them)"
  if [ "$open" = "--open" ]; then
    echo "Beacon's page (receiver) and UdaConnect's (udaconnect-api): minikube opens them ($tunnel)."
    exec "${minikube[@]}" service --all -n beacon
  fi
  echo "Beacon's page (receiver) and UdaConnect's (udaconnect-api) ($tunnel):"
  exec "${minikube[@]}" service --all -n beacon --url
fi
beacon="$("${minikube[@]}" service receiver -n beacon --url | head -n 1)"
udaconnect="$("${minikube[@]}" service udaconnect-api -n beacon --url | head -n 1)"
echo "Beacon's page:     $beacon"
echo "UdaConnect's page: $udaconnect"
open_url "$beacon"
open_url "$udaconnect"
