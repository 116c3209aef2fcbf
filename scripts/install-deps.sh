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
  openssh-server openssh-client rsync python3-torch
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
# openssh-server is here for the sshd a lease starts inside its own sandbox
# (`gpunet ssh-config`, docs/cli.md); the product opens no port on the host. So when
# this script is what installs it, its postinst must not start a host sshd, nor
# enable one at boot: a policy-rc.d that refuses every start while apt runs (unless
# the host has one already), then the units disabled. A host that had
# openssh-server before keeps its sshd as it was: it is not in "missing".
new_sshd=0
policy=/usr/sbin/policy-rc.d
own_policy=0
for p in "${missing[@]}"; do [ "$p" = openssh-server ] && new_sshd=1; done
if [ "$new_sshd" -eq 1 ] && [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# install-deps.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
remove_policy() { if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap remove_policy EXIT
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
if [ "$new_sshd" -eq 1 ]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  fi
  # Not under systemd (a container): the policy kept it from starting; one started
  # by some other means is stopped by its pid file.
  if [ -s /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null; then
    kill "$(cat /run/sshd.pid)" || true
  fi
  echo "install-deps: openssh-server installed for the sshd inside leases; no sshd runs on this host"
fi
