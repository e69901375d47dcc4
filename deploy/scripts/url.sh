#!/usr/bin/env bash
# Prints the page's URL and, with --open, opens it in the browser when this
# system can (never failing when it cannot).
#
#   deploy/scripts/url.sh PROFILE ENV [--open]
#
# dev: the receiver's NodePort, through `minikube service`. On macOS that
# command also opens the browser itself and, with the Docker driver, keeps a
# tunnel open in the foreground, which the page needs.
# prod: the Ingress, on the minikube node's address (Linux) or, on macOS,
# on 127.0.0.1 through `minikube tunnel`.
set -euo pipefail

profile="$1"
env="$2"
open="${3:-}"
minikube=(minikube -p "$profile")

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
  echo "The page: minikube opens it; with the Docker driver keep this terminal open (Ctrl-C closes the tunnel)."
  if [ "$open" = "--open" ]; then
    exec "${minikube[@]}" service receiver -n beacon
  fi
  exec "${minikube[@]}" service receiver -n beacon --url
fi
url="$("${minikube[@]}" service receiver -n beacon --url | head -n 1)"
echo "The page: $url"
open_url "$url"
