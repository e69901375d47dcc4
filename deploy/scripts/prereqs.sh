#!/usr/bin/env bash
# Checks what `make up` needs before it changes anything, and says how to get
# what is missing.
#
#   deploy/scripts/prereqs.sh ENV
set -euo pipefail

env="${1:-}"
case "$env" in
  dev | prod) ;;
  *)
    echo "ENV must be dev or prod (got '$env'): make up ENV=prod" >&2
    exit 2
    ;;
esac

if ! command -v minikube >/dev/null; then
  cat >&2 <<'MSG'
minikube is not installed. Install it, then run `make up` again:
  https://minikube.sigs.k8s.io/docs/start/
  macOS: brew install minikube
  Linux: curl -LO https://storage.googleapis.com/minikube/releases/latest/minikube-linux-amd64
         sudo install minikube-linux-amd64 /usr/local/bin/minikube
minikube also needs a driver, such as Docker, Podman, KVM or QEMU (see the page above).
MSG
  exit 1
fi

# The manifests use the preStop sleep action: Kubernetes 1.30, minikube 1.33.
version="$(minikube version --short 2>/dev/null || true)"
if [[ "$version" =~ ^v?([0-9]+)\.([0-9]+) ]]; then
  major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
  if [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 33 ]; }; then
    echo "minikube $version is too old: 1.33 or later is needed (https://minikube.sigs.k8s.io/docs/start/)" >&2
    exit 1
  fi
fi

echo "==> prerequisites: minikube $version, ENV=$env"
