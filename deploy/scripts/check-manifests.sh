#!/usr/bin/env bash
# Renders every overlay with kustomize, as `make up` would apply it, and checks
# it with no cluster: every object belongs to the platform or to one app
# (`make up APPS=...` applies by that label), schemas (kubernetes-validate
# --strict), security (checkov), style (yamllint); then the Dockerfile
# (hadolint) and these scripts (ShellCheck). Tools come from .tools/ (deploy/scripts/tools.sh).
# The rendered manifests are left in target/deploy/ for a closer look.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The oldest Kubernetes the manifests need (the preStop sleep action) and a
# current one.
K8S_VERSIONS="1.30.0 1.35.0"
OVERLAYS="dev prod"

deploy/scripts/tools.sh
export PATH="$PWD/.tools/bin:$PWD/.tools/venv/bin:$PATH"
# checkov offline: no mapping download, no policy download.
export BC_SKIP_MAPPING=TRUE

# The overlays' Secrets are generated from these files, as `make up` does.
deploy/scripts/secrets.sh >/dev/null

out=target/deploy
mkdir -p "$out"
rendered=()
for overlay in $OVERLAYS; do
  echo "==> kustomize: rendering overlays/$overlay"
  kubectl kustomize "deploy/overlays/$overlay" >"$out/$overlay.yaml"
  rendered+=("$out/$overlay.yaml")
done

echo "==> part-of: every object is the platform's, Beacon's or UdaConnect's"
python3 - "${rendered[@]}" <<'PY'
import sys
import yaml

parts = {"platform", "beacon", "udaconnect"}
stray = [
    f"{path}: {doc['kind']} {doc['metadata']['name']}"
    for path in sys.argv[1:]
    for doc in yaml.safe_load_all(open(path))
    if (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") not in parts
]
if stray:
    sys.exit("no app.kubernetes.io/part-of label in " + ", ".join(sorted(parts)) + ":\n  " + "\n  ".join(stray))
PY

for version in $K8S_VERSIONS; do
  echo "==> kubernetes-validate --strict: Kubernetes $version"
  kubernetes-validate --strict --quiet --kubernetes-version "$version" "${rendered[@]}"
done

echo "==> checkov: rendered manifests and Dockerfile (skips in deploy/checkov.yaml)"
if ! report="$(checkov --config-file deploy/checkov.yaml "${rendered[@]/#/--file=}" --file=Dockerfile)"; then
  echo "$report"
  exit 1
fi
echo "$report" | grep -E "scan results|checks:"

echo "==> yamllint: deploy/"
yamllint --strict -c deploy/yamllint.yaml deploy/

echo "==> hadolint: Dockerfile"
hadolint Dockerfile

echo "==> shellcheck: deploy/scripts, scripts, .ci/run"
shellcheck deploy/scripts/*.sh scripts/*.sh .ci/run

echo "==> manifests ok"
