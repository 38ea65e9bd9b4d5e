#!/usr/bin/env bash
# Installs every build and test dependency of tokenway that is missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail

want=(build-essential cmake ninja-build ccache pkg-config python3 curl
      libboost1.81-dev libsimdjson-dev libyaml-cpp-dev libcli11-dev libxxhash-dev
      libgtest-dev libgmock-dev libbenchmark-dev prometheus chromium libssl-dev libhiredis-dev libre2-dev libutf8proc-dev libhnswlib-dev
      redis-server python3-yaml libgrpc++-dev libprotobuf-dev protobuf-compiler
      protobuf-compiler-grpc)
if [[ "${1:-}" == "--bench" ]]; then
  want+=(nginx-light wrk gnuplot-nox)
fi
if [[ "${1:-}" == "--fuzz" ]]; then
  want+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kubectl (with kustomize) renders deploy/kubernetes in the deploy_kustomize test; Debian's
# kubernetes-client only when no kubectl is on the PATH already.
if ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi
# Node.js and npm are only needed by the OpenAI SDK compatibility test.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "tokenway: missing packages. Run as root:" >&2
  echo "  apt-get update && $cmd" >&2
  exit 1
fi
echo "tokenway: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
