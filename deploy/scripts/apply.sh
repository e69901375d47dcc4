#!/usr/bin/env bash
# Applies overlays/ENV with the image just built: the objects SELECTOR
# selects (the platform and the apps asked for, by their `part-of` label).
# The image tag goes into a generated kustomization (deploy/.build/ENV,
# git-ignored) that wraps the overlay, so the committed manifests never
# change.
#
#   KUBECTL="kubectl --context=beacon" deploy/scripts/apply.sh ENV TAG SELECTOR
set -euo pipefail
cd "$(dirname "$0")/../.."

env="$1"
tag="$2"
selector="$3"
read -r -a kubectl <<<"${KUBECTL:-kubectl}"
namespace=beacon

build="deploy/.build/$env"
mkdir -p "$build"
cat >"$build/kustomization.yaml" <<YAML
# Written by \`make up\`: overlays/$env with the image it built.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../overlays/$env
images:
  - name: beacon
    newTag: "$tag"
YAML

# dev and prod differ in kind, not only in size (one NATS server or a
# cluster): switching starts afresh rather than converting.
current="$("${kubectl[@]}" get namespace "$namespace" --ignore-not-found \
  -o jsonpath='{.metadata.labels.beacon/overlay}')"
if [ -n "$current" ] && [ "$current" != "$env" ]; then
  echo "==> switching from $current to $env: deleting the $current deployment first"
  "${kubectl[@]}" delete namespace "$namespace" --wait=true
fi

# A Job cannot be changed once created: replace each of these apps', so that
# the streams are provisioned and the schema migrated again with this image
# and these settings.
"${kubectl[@]}" delete job -n "$namespace" -l "$selector" --ignore-not-found --wait=true >/dev/null
"${kubectl[@]}" apply -k "$build" -l "$selector"
