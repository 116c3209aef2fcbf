#!/usr/bin/env bash
# Installs the Debian 12 packages gpunet needs to build, test and run, and only
# those that are missing. Safe to run again; does nothing when all are present.
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git python3
  clang-19 libclang-rt-19-dev clang-format clang-tidy-19
  libsodium-dev librocksdb-dev libboost-dev libssl-dev libabsl-dev nlohmann-json3-dev libcli11-dev
  libfmt-dev libspdlog-dev libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  libseccomp-dev libjemalloc-dev bubblewrap slirp4netns uidmap podman runc
  python3-mnemonic curl iproute2 procps e2fsprogs util-linux
  nftables busybox-static
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to apt-get install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
