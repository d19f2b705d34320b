#!/usr/bin/env bash
# Installs the system packages and client libraries the tests and benchmarks use.
# Idempotent: each step is skipped when what it installs is already there, so only a
# fresh machine pays. Versions are pinned where a registry is involved.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || apt_pkgs+=("$2"); }
need redis-cli redis-tools
need redis-benchmark redis-tools
need redis-server redis-server
need openssl openssl
need ip iproute2
need iptables iptables
need chromium chromium   # the end-to-end browser check drives Debian's headless Chromium
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  echo "deps: apt-get install ${apt_pkgs[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  # Debian starts redis-server as a service on install; the tests start their own.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server 2>/dev/null || true; fi
  pkill -x redis-server 2>/dev/null || true
fi

REDIS_PY_VERSION=8.1.0
if ! python3 -c "import redis, sys; sys.exit(0 if redis.__version__ == '${REDIS_PY_VERSION}' else 1)" 2>/dev/null; then
  echo "deps: pip install redis==${REDIS_PY_VERSION}"
  python3 -m pip install -q "redis==${REDIS_PY_VERSION}"
fi

for dir in tests/clients/node demo; do
  if [ -f "$dir/package-lock.json" ] && [ ! -d "$dir/node_modules" ]; then
    echo "deps: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
done

# The RESP parser's fuzz targets run on the nightly toolchain with cargo-fuzz.
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "deps: cargo install cargo-fuzz@${CARGO_FUZZ_VERSION}"
  cargo install -q --locked "cargo-fuzz@${CARGO_FUZZ_VERSION}"
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "deps: rustup toolchain install nightly"
  rustup toolchain install nightly --profile minimal
fi
echo "deps: ok"
