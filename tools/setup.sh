#!/usr/bin/env bash
# Installs the Debian packages legate's build and tests need, only those missing.
# Idempotent: a second run installs nothing and takes well under a second.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config python3 npm
  # libraries (see docs/architecture.md for why each)
  libevent-dev libprotobuf-dev protobuf-compiler libabsl-dev libyaml-dev
  libspdlog-dev libfmt-dev libre2-dev libc-ares-dev libxxhash-dev
  libgoogle-perftools-dev
  # tests
  libgtest-dev libgmock-dev curl socat netcat-openbsd procps prometheus dnsmasq-base
  iptables iproute2
  # benchmarks (bench/run.py: the peers and the load generator)
  nginx-light libnginx-mod-stream haproxy wrk nghttp2-client
  # the relays beside them (bench/relay.c, and bench/relay_uring.c on io_uring)
  liburing-dev
  # profiling (bench/profile.py)
  valgrind strace
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# A node/npm installed outside Debian (e.g. nvm) serves as well as Debian's npm.
if [[ " ${missing[*]} " == *" npm "* ]] && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm}")
  read -r -a missing <<<"${missing[*]}"
fi

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
