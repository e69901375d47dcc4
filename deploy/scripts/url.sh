#!/usr/bin/env bash
# Prints the pages' URLs, Beacon's and UdaConnect's (of the apps deployed),
# and, with --open, opens them in the browser when this system can (never
# failing when it cannot). The overlay deployed (dev or prod) is read from
# the namespace's label.
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
# Each app by the Service of its page.
deployed() {
  [ -n "$("${kubectl[@]}" get service "$1" -n beacon --ignore-not-found -o name)" ]
}
beacon_up=false
udaconnect_up=false
if [ -n "$env" ]; then
  deployed receiver && beacon_up=true
  deployed udaconnect-api && udaconnect_up=true
fi
if [ "$beacon_up" = false ] && [ "$udaconnect_up" = false ]; then
  echo "Beacon and UdaConnect are not deployed on minikube profile $profile: make up deploys them" >&2
  exit 1
fi

# UdaConnect's page opened as the organiser: the token in the address's
# fragment, which the browser never sends (the page keeps it and takes it
# out of the address bar). Printed addresses never hold it.
organiser_fragment() {
  local secrets
  secrets="$(dirname "$0")/../base/.secrets/organiser.env"
  [ -f "$secrets" ] || return 0
  local token
  token="$(sed -n 's/^UDACONNECT_ORGANISER_TOKEN=//p' "$secrets")"
  [ -z "$token" ] || printf '#token=%s' "$token"
}

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
    ip=127.0.0.1
  else
    ip="$("${minikube[@]}" ip)"
  fi
  if [ "$beacon_up" = true ]; then
    echo "Beacon's page (Ingress):     http://$ip/"
  fi
  if [ "$udaconnect_up" = true ]; then
    echo "UdaConnect's page (Ingress): http://udaconnect-${ip//./-}.nip.io/ (nip.io resolves it to $ip)"
  fi
  if [ "$(uname -s)" = Darwin ]; then
    echo "They need a tunnel: run \`minikube -p $profile tunnel\` in another terminal (it asks for your password)."
    exit 0
  fi
  [ "$beacon_up" = false ] || open_url "http://$ip/"
  [ "$udaconnect_up" = false ] || open_url "http://udaconnect-${ip//./-}.nip.io/$(organiser_fragment)"
  exit 0
fi

# dev: each page on its NodePort.
services=()
[ "$beacon_up" = false ] || services+=(receiver)
[ "$udaconnect_up" = false ] || services+=(udaconnect-api)
if [ "$(uname -s)" = Darwin ]; then
  tunnel="with the Docker driver, through tunnels that last while this terminal stays open (Ctrl-C closes them)"
  if [ "${#services[@]}" -eq 2 ]; then
    what=(--all)
  else
    what=("${services[0]}")
  fi
  if [ "$open" = "--open" ]; then
    echo "The pages (${services[*]}): minikube opens them ($tunnel)."
    exec "${minikube[@]}" service "${what[@]}" -n beacon
  fi
  echo "The pages (${services[*]}) ($tunnel):"
  exec "${minikube[@]}" service "${what[@]}" -n beacon --url
fi
for service in "${services[@]}"; do
  url="$("${minikube[@]}" service "$service" -n beacon --url | head -n 1)"
  case "$service" in
    receiver) echo "Beacon's page:     $url" ;;
    udaconnect-api) echo "UdaConnect's page: $url (opened as the organiser; \`make organiser-token\` prints the token)" ;;
  esac
  if [ "$service" = udaconnect-api ]; then
    open_url "$url/$(organiser_fragment)"
  else
    open_url "$url"
  fi
done
