#!/usr/bin/env bash
# Prints the page's URL and, with --open, opens it in the browser when this
# system can (never failing when it cannot). The overlay deployed (dev or
# prod) is read from the namespace's label.
#
#   KUBECTL="kubectl --context=beacon" deploy/scripts/url.sh PROFILE [--open]
#
# dev: the receiver's NodePort, through `minikube service`. On macOS that
# command also opens the browser itself and, with the Docker driver, keeps a
# tunnel open in the foreground, which the page needs.
# prod: the Ingress, on the minikube node's address (Linux) or, on macOS,
# on 127.0.0.1 through `minikube tunnel`.
set -euo pipefail

profile="$1"
open="${2:-}"
minikube=(minikube -p "$profile")
read -r -a kubectl <<<"${KUBECTL:-kubectl}"
env="$("${kubectl[@]}" get namespace beacon --ignore-not-found -o jsonpath='{.metadata.labels.beacon/overlay}')"
if [ -z "$env" ]; then
  echo "Beacon is not deployed on minikube profile $profile: make up deploys it" >&2
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
    echo "The page (Ingress): http://127.0.0.1/"
    echo "It needs a tunnel: run \`minikube -p $profile tunnel\` in another terminal (it asks for your password)."
    exit 0
  fi
  url="http://$("${minikube[@]}" ip)/"
  echo "The page (Ingress): $url"
  open_url "$url"
  exit 0
fi

if [ "$(uname -s)" = Darwin ]; then
  tunnel="with the Docker driver, through a tunnel that lasts while this terminal stays open (Ctrl-C closes it)"
  if [ "$open" = "--open" ]; then
    echo "The page: minikube opens it ($tunnel)."
    exec "${minikube[@]}" service receiver -n beacon
  fi
  echo "The page's address ($tunnel):"
  exec "${minikube[@]}" service receiver -n beacon --url
fi
url="$("${minikube[@]}" service receiver -n beacon --url | head -n 1)"
echo "The page: $url"
open_url "$url"
