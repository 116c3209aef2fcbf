#!/usr/bin/env bash
# The sandbox on a real GPU host: detection (NVML, device nodes, driver libraries),
# `gpunet sandbox check`, the GPUs as the provider daemon sees them (`gpunet provider
# gpus`: inventory, health, the idle check, also while a CUDA program holds memory),
# a CUDA program run inside `gpunet sandbox run` with and without the GPU, and the
# provider daemon end to end on the real NVML (a devnet, `provider init`/`apply`/`run`,
# a tenant's lease whose workload reports its GPU, the close and the idle check;
# GPUNET_DEVCHECK_FAKE_NVML runs that part with the fake NVML on a host without a
# GPU: docs/sandbox.md). Two steps:
#
#   scripts/device-gpu-check.sh bundle   # on the build machine, after
#                                        # cmake --build build-gpu --target gpunet
#   scripts/device-gpu-check.sh          # on the GPU machine, as root, in the repo root
#
# `bundle` fills .devbundle/ (git-ignored locally) with the gpunet binary (built with
# RPATH $ORIGIN/../lib) and gpunet-init beside it, every non-glibc library it needs, and Debian's bwrap,
# mkfs.ext4 and mount with theirs: the GPU machine is another distribution with no
# package manager. The check installs the bundle under $GPUNET_DEV_PREFIX (default
# /opt/gpunet-dev, readable by the workload uids), uses the host's own bwrap/mkfs.ext4
# /mount when it has them, and writes its log to $OUT (default ./.devcheck-out).
# Without a GPU, nvcc or sandbox support it says so and goes on: every step's output
# is the result.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
bundle=$here/.devbundle
mode=${1:-check}

if [ "$mode" = bundle ]; then
  set -e
  build=${GPUNET_BUILD:-$here/build-gpu}
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/sbin" "$bundle/lib"
  cp "$build/bin/gpunet" "$bundle/bin/gpunet"
  strip --strip-unneeded "$bundle/bin/gpunet"
  # The in-sandbox init every sandbox runs, found beside gpunet (static: no libraries).
  cp "$build/bin/gpunet-init" "$bundle/bin/gpunet-init"
  for t in bwrap mkfs.ext4 mount; do cp -L "$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v $t)" "$bundle/sbin/"; done
  for f in "$bundle/bin/gpunet" "$bundle"/sbin/*; do
    ldd "$f" | awk '/=> \//{print $3}' | while read -r lib; do
      case $(basename "$lib") in
        libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | libresolv.so* | ld-linux*) ;;
        *) [ -e "$bundle/lib/$(basename "$lib")" ] || cp -L "$lib" "$bundle/lib/" ;;
      esac
    done
  done
  readelf -d "$bundle/bin/gpunet" | grep -q 'RPATH.*\$ORIGIN/../lib' ||
    { echo "gpunet lacks RPATH \$ORIGIN/../lib: configure build-gpu with" \
      "-DCMAKE_BUILD_RPATH='\$ORIGIN/../lib' -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags"; exit 1; }
  grep -qx '/.devbundle/' "$here/.git/info/exclude" 2>/dev/null || echo '/.devbundle/' >>"$here/.git/info/exclude"
  du -sh "$bundle"; ls "$bundle/lib"
  exit 0
fi

OUT=${OUT:-$here/.devcheck-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/check.log") 2>&1
prefix=${GPUNET_DEV_PREFIX:-/opt/gpunet-dev}
section() { printf '\n=== %s ===\n' "$*"; }
run() { echo "\$ $*"; timeout 120 "$@"; echo "[exit $?]"; }

section host
date -u
uname -a
id
head -2 /etc/os-release 2>/dev/null
run nvidia-smi -L
nvidia-smi --query-gpu=name,uuid,driver_version,memory.total,persistence_mode --format=csv 2>&1
ls -la /dev/nvidia* 2>&1
ls /proc/driver/nvidia/gpus/ 2>&1 && cat /proc/driver/nvidia/gpus/*/information 2>&1
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
cat /etc/ld.so.conf.d/*.conf 2>/dev/null | grep -v '^#' | tr '\n' ' '; echo
ls /usr/local/nvidia/lib64 2>&1 | grep -E 'libcuda|libnvidia-ml' | tr '\n' ' '; echo
ldconfig -p 2>&1 | grep -E 'libcuda\.|libnvidia-ml' || echo "(ld.so.cache lists no libcuda/libnvidia-ml)"
grep -E 'cgroup' /proc/self/mounts || echo "(no cgroup file system mounted)"
echo "self cgroup: $(tr '\n' ' ' </proc/self/cgroup)"
ls -la /dev/loop-control 2>&1
grep -wE 'loop|ext4' /proc/devices /proc/filesystems 2>&1
echo "user ns: $(cat /proc/sys/user/max_user_namespaces 2>&1)"

if [ ! -f "$bundle/bin/gpunet" ]; then
  echo "no $bundle/bin/gpunet: run '$0 bundle' on the build machine and carry .devbundle"
  exit 1
fi

section install
rm -rf "$prefix"
mkdir -p "$prefix" "$prefix/job"
cp -a "$bundle/." "$prefix/"
chmod -R a+rX "$prefix"
chmod 755 "$prefix"/bin/* "$prefix"/sbin/*
chmod 755 "$prefix"
chmod o+x "$(dirname "$prefix")"
for t in bwrap mkfs.ext4 mount; do
  have=""
  for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do [ -x "$d/$t" ] && have="$d/$t" && break; done
  if [ -n "$have" ]; then
    echo "$t: the host's $have ($("$have" --version 2>&1 | head -1))"
  else
    # Debian's binary through the host's loader with the bundle's libraries (not
    # LD_LIBRARY_PATH, which bwrap would pass on into the sandbox).
    printf '#!/bin/sh\nexec /lib64/ld-linux-x86-64.so.2 --library-path %s/lib %s/sbin/%s "$@"\n' \
      "$prefix" "$prefix" "$t" >"/usr/local/bin/$t"
    chmod 755 "/usr/local/bin/$t"
    echo "$t: bundled Debian $t via /usr/local/bin/$t ($("/usr/local/bin/$t" --version 2>&1 | head -1))"
  fi
done
G=$prefix/bin/gpunet
run "$G" --version

section "gpunet sandbox check"
run "$G" sandbox check
"$G" -o json sandbox check >"$OUT/sandbox-check.json" 2>&1
echo "(json in sandbox-check.json)"
grep -q '"cgroups": "none"' "$OUT/sandbox-check.json" && grep -qw cgroup2 /proc/filesystems &&
  { section "no cgroups mounted: mounting cgroup2 at /sys/fs/cgroup and checking again";
    mount -t cgroup2 none /sys/fs/cgroup && run "$G" sandbox check &&
      "$G" -o json sandbox check >"$OUT/sandbox-check.json" 2>&1; }

# On a pure cgroup v2 host the workloads' cgroups go below the caller's; a non-root
# cgroup that holds processes cannot enable controllers for children, so (as a
# systemd unit with Delegate=yes would) start from the root cgroup.
if grep -qx '0::/.\+' /proc/self/cgroup && [ "$(grep -c . /proc/self/cgroup)" = 1 ] &&
  echo $$ >/sys/fs/cgroup/cgroup.procs 2>/dev/null; then
  section "cgroup v2: moved this shell to the root cgroup; checking again"
  run "$G" sandbox check
  "$G" -o json sandbox check >"$OUT/sandbox-check.json" 2>&1
fi

section "gpunet provider gpus (inventory, health, idle check)"
run "$G" provider gpus
"$G" -o json provider gpus >"$OUT/provider-gpus.json" 2>&1
echo "(json, with NVML's raw answers, in provider-gpus.json)"

uuid=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); g=d["nvml"]["gpus"]; print(g[0]["uuid"] if g else "")' "$OUT/sandbox-check.json" 2>/dev/null)
allow=$(python3 -c 'import json,sys; print("--allow-unenforced" if json.load(open(sys.argv[1]))["cannot_enforce"] else "")' "$OUT/sandbox-check.json" 2>/dev/null)
echo "GPU from NVML: ${uuid:-none}; flags: ${allow:-(all limits enforced)}"

section "CUDA program"
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
cat >"$prefix/job/cuda_check.cu" <<'EOF'
// Allocates, runs a kernel, checks every element, prints the GPU it ran on. With an
// argument N it then holds 1 GiB more for N seconds (for the idle check).
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <cuda_runtime.h>
__global__ void Fill(int* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = i * 3 + 1;
}
int main(int argc, char** argv) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("cuda_check: no usable GPU: %s (%d devices)\n", cudaGetErrorString(e), count);
    return 2;
  }
  cudaDeviceProp p{};
  cudaGetDeviceProperties(&p, 0);
  const int n = 1 << 20;
  int* d = nullptr;
  if ((e = cudaMalloc(&d, n * sizeof(int))) != cudaSuccess) {
    std::printf("cuda_check: cudaMalloc: %s\n", cudaGetErrorString(e));
    return 3;
  }
  Fill<<<(n + 255) / 256, 256>>>(d, n);
  static int h[1 << 20];
  if ((e = cudaMemcpy(h, d, n * sizeof(int), cudaMemcpyDeviceToHost)) != cudaSuccess) {
    std::printf("cuda_check: kernel/copy: %s\n", cudaGetErrorString(e));
    return 3;
  }
  for (int i = 0; i < n; ++i)
    if (h[i] != i * 3 + 1) {
      std::printf("cuda_check: wrong value at %d: %d\n", i, h[i]);
      return 4;
    }
  char uuid[64];
  std::snprintf(uuid, sizeof uuid, "%02x%02x%02x%02x", (unsigned char)p.uuid.bytes[0],
                (unsigned char)p.uuid.bytes[1], (unsigned char)p.uuid.bytes[2],
                (unsigned char)p.uuid.bytes[3]);
  std::printf("cuda_check: OK on %s (uuid %s..., %d SMs, %zu MiB), %d device(s) visible\n",
              p.name, uuid, p.multiProcessorCount, p.totalGlobalMem >> 20, count);
  if (argc > 1) {
    void* big = nullptr;
    if ((e = cudaMalloc(&big, 1ull << 30)) != cudaSuccess || (e = cudaMemset(big, 1, 1ull << 30)) != cudaSuccess ||
        (e = cudaDeviceSynchronize()) != cudaSuccess) {
      std::printf("cuda_check: holding 1 GiB: %s\n", cudaGetErrorString(e));
      return 3;
    }
    std::printf("cuda_check: holding 1 GiB for %s s\n", argv[1]);
    std::fflush(stdout);
    sleep(std::atoi(argv[1]));
  }
  cudaFree(d);
  return 0;
}
EOF
have_prog=""
if [ -n "$nvcc" ]; then
  run "$nvcc" --version
  run "$nvcc" -O2 -arch=sm_90 -cudart static -o "$prefix/job/cuda_check" "$prefix/job/cuda_check.cu"
  [ -x "$prefix/job/cuda_check" ] && have_prog=1 && chmod 755 "$prefix/job/cuda_check"
  [ -n "$have_prog" ] && ldd "$prefix/job/cuda_check"
  [ -n "$have_prog" ] && run "$prefix/job/cuda_check"
  if [ -n "$have_prog" ]; then
    section "provider gpus while a CUDA program holds 1 GiB (the idle check must say NOT idle)"
    "$prefix/job/cuda_check" 30 >"$OUT/cuda-hold.log" 2>&1 &
    holder=$!
    for _ in $(seq 120); do grep -q 'holding\|cuda_check: [a-z]' "$OUT/cuda-hold.log" && break; sleep 0.5; done
    cat "$OUT/cuda-hold.log"
    run "$G" provider gpus
    "$G" -o json provider gpus >"$OUT/provider-gpus-busy.json" 2>&1
    kill "$holder" 2>/dev/null
    wait "$holder"
    section "provider gpus after it ended (idle again)"
    run "$G" provider gpus
  fi
else
  echo "no nvcc on this host: the sandbox runs below use a shell instead of the CUDA program"
fi
if [ -n "$have_prog" ]; then
  prog=(/job/cuda_check)
else
  prog=(sh -c 'echo "no CUDA program"; exit 2')
fi

S=(--state-dir "$prefix/state" --memory 4G --pids 512 --disk 256M $allow
  --ro-bind "$prefix/job:/job")
inside='ls /dev; echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-} LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"; id -u;
  if command -v nvidia-smi >/dev/null; then nvidia-smi -L; else echo "(no nvidia-smi inside)"; fi
  ls -la /dev/nvidia* 2>&1; "$@"; rc=$?; echo "[program exit $rc]"; exit $rc'

section "sandbox run WITH the GPU (--gpus ${uuid:-<none found>})"
if [ -n "$uuid" ]; then
  run "$G" sandbox run "${S[@]}" --gpus "$uuid" --id gpu-yes --keep -- sh -c "$inside" sh "${prog[@]}"
  if [ ! -d "$prefix/state/runs/gpu-yes" ] && [ -z "$allow" ]; then
    section "it did not start: again with --allow-unenforced"
    S+=(--allow-unenforced)
    run "$G" sandbox run "${S[@]}" --gpus "$uuid" --id gpu-yes --keep -- sh -c "$inside" sh "${prog[@]}"
  fi
  status=$(cat "$prefix/state/runs/gpu-yes/status.json" 2>/dev/null)
  echo "status.json: $status"
  if [ -n "$have_prog" ] && ! grep -q '"exit_code": *0' <<<"$status"; then
    section "the CUDA program failed in the sandbox: again with /sys read-only (does CUDA need it?)"
    run "$G" sandbox run "${S[@]}" --gpus "$uuid" --id gpu-sys --ro-bind /sys:/sys -- sh -c "$inside" sh "${prog[@]}"
  fi
  echo "--- supervisor.log"
  cat "$prefix/state/runs/gpu-yes/supervisor.log" 2>&1 | tr ' ' '\n' | grep -E '^/dev/nvidia|nvidia|libcuda|NOT|bwrap:' | sort -u | head -60
  umount "$prefix/state/runs/gpu-yes/fs" 2>/dev/null
  rm -rf "$prefix/state/runs/gpu-yes"
else
  echo "skipped: NVML reported no GPU"
fi

section "sandbox run WITHOUT --gpus (must not reach the GPU)"
run "$G" sandbox run "${S[@]}" --id gpu-no -- sh -c "$inside" sh "${prog[@]}"

section "sandbox run with a GPU this host does not have"
run "$G" sandbox run "${S[@]}" --gpus GPU-00000000-0000-0000-0000-000000000000 -- true

# The provider daemon on this host's real NVML, end to end: a devnet (100 ms blocks),
# a provider home from `provider init` (its TLS identity; NVML probed for real),
# `provider apply`, `provider run`, a tenant's lease whose workload reports the GPU it
# got, `provider status`, the tenant's close and the idle check after. Every wait is
# bounded. GPUNET_DEVCHECK_FAKE_NVML=/path/libfake_nvml.so (with GPUNET_FAKE_NVML_STATE,
# tests/util/fake_nvml.cpp) runs it on a host without a GPU: init's probe and the
# daemon load the fake, and the daemon finds the GPUs' device nodes under $W/dev.
section "provider daemon on the real NVML (devnet, init, apply, run, a lease, close)"
W=$prefix/daemon
DPID="" NPID=""
daemon_section() {
  local fake=${GPUNET_DEVCHECK_FAKE_NVML:-} url api gpu minor lease offer i job
  rm -rf "$W" && mkdir -p "$W" && chmod 711 "$W"
  export GPUNET_HOME=$W/home GPUNET_PASSPHRASE=devnet
  # The whole section has 300 s: each wait and each command gets what is left of it.
  local deadline=$((SECONDS + 300))
  cap() { local left=$((deadline - SECONDS)); [ "$left" -lt "$1" ] && echo $((left > 1 ? left : 1)) || echo "$1"; }
  # step COMMAND...: as `run`, at most 60 s (less when the section's time runs out).
  step() { echo "\$ $*"; timeout "$(cap 60)" "$@"; echo "[exit $?]"; }
  # wait_until SECONDS WHAT COMMAND...: polls every 0.5 s; says what it waited for.
  wait_until() {
    local n=$(($(cap "$1") * 2)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
      n=$((n - 1))
      [ "$n" -gt 0 ] || { echo "TIMEOUT: $what"; return 1; }
      sleep 0.5
    done
    echo "ok: $what"
  }
  if [ -n "$fake" ]; then
    echo "FAKE NVML: $fake, state ${GPUNET_FAKE_NVML_STATE:-<unset>} (a dry run, not a GPU check)"
    mkdir -p "$W/lib" && ln -sf "$fake" "$W/lib/libnvidia-ml.so.1"
  fi
  "$G" -o json devnet --home "$GPUNET_HOME" --rpc 127.0.0.1:0 --block-interval-ms 100 \
    >"$W/devnet.json" 2>"$W/devnet.err" &
  NPID=$!
  wait_until 60 "the devnet answers" grep -q rpc_url "$W/devnet.json" ||
    { cat "$W/devnet.err"; return 1; }
  url=$(grep -o '"rpc_url": *"[^"]*"' "$W/devnet.json" | sed 's/.*"\([^"]*\)"$/\1/')
  export GPUNET_NODE=$url
  wait_until 30 "the node at $url has blocks" timeout 10 "$G" status || return 1
  api=127.0.0.1:$((20000 + RANDOM % 20000))
  echo "\$ gpunet provider init --home $W/phome --listen $api --host 127.0.0.1 --owner provider"
  LD_LIBRARY_PATH=${fake:+$W/lib} timeout "$(cap 60)" "$G" provider init --home "$W/phome" --region dev \
    --listen "$api" --host 127.0.0.1 --owner provider
  echo "[exit $?]"
  [ -f "$W/phome/provider.yaml" ] || { echo "no provider.yaml: stopping this section"; return 1; }
  # init leaves the offers commented out (the operator sets the price) and metrics on a
  # fixed port: this check sells its GPUs at 1 GPN, metrics on the port after the API's.
  gpu=$(sed -n 's/^ *gpu: \([A-Za-z0-9]*\).*/\1/p' "$W/phome/provider.yaml" | head -1)
  sed -i -e 's/^# offers:/offers:/' -e "s/^#   - gpu: .*/  - gpu: $gpu/" \
    -e 's/^#     price: .*/    price: 1/' \
    -e "s/^\(  metrics_listen:\).*/\1 127.0.0.1:$((${api#*:} + 1))/" "$W/phome/provider.yaml"
  if [ -n "$fake" ]; then
    printf '  nvml_library: %s\n  device_dir: %s\n' "$fake" "$W/dev" >>"$W/phome/provider.yaml"
    mkdir -p -m 711 "$W/dev"
    for minor in $(grep -o '"minor": *[0-9]*' "${GPUNET_FAKE_NVML_STATE:-/dev/null}" | grep -o '[0-9]*$'); do
      mknod -m 666 "$W/dev/nvidia$minor" c 195 "$minor"
    done
  fi
  grep -v '^ *#' "$W/phome/provider.yaml" | grep -v '^$' >"$OUT/provider.yaml"
  cat "$OUT/provider.yaml"
  grep -q '^ *gpus: [1-9]' "$W/phome/provider.yaml" || { echo "init found no GPU: stopping this section"; return 1; }
  op=$(sed -n 's/^operator: *\(gpn1[0-9a-z]*\).*/\1/p' "$W/phome/provider.yaml")
  step "$G" send provider "$op" 10
  step "$G" provider apply --home "$W/phome" --owner provider --yes
  : >"$OUT/daemon.log"
  setsid "$G" provider run --home "$W/phome" </dev/null >>"$OUT/daemon.log" 2>&1 &
  DPID=$!
  echo "provider run: pid $DPID, log in daemon.log"
  # Up (or gone): its first heartbeat, or its exit.
  beat_or_gone() { grep -q 'heartbeat: committed' "$OUT/daemon.log" || ! kill -0 "$DPID"; }
  wait_until 60 "the daemon's first heartbeat (or its exit)" beat_or_gone &&
    grep -q 'heartbeat: committed' "$OUT/daemon.log" ||
    { echo "the daemon sent no heartbeat:"; tail -20 "$OUT/daemon.log"; return 1; }
  offer=$(timeout 30 "$G" -o json offers | grep -o '"offer_id": *"\?[0-9]*' | head -1 | grep -o '[0-9]*$')
  echo "offer: ${offer:-none}"
  [ -n "$offer" ] || return 1
  # The workload: PyTorch if this host's python3 has it, else the CUDA program built
  # above, else nvidia-smi -L; nvidia-smi -L first in any case (the GPUs it sees).
  cat >"$W/job.sh" <<'JOB'
echo "gpus=$CUDA_VISIBLE_DEVICES"
if command -v nvidia-smi >/dev/null; then nvidia-smi -L; fi
if python3 -c 'import torch' 2>/dev/null; then
  python3 -c 'import torch
n = torch.cuda.device_count()
print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", n)
for i in range(n):
    p = torch.cuda.get_device_properties(i)
    print("torch device", i, p.name, getattr(p, "uuid", "?"))
x = torch.randn(4096, 4096, device="cuda")
print("torch matmul on", x.device, "sum", float((x @ x).sum()))'
elif [ -x "$1/job/cuda_check" ]; then "$1/job/cuda_check"
else echo "no torch and no CUDA program in the sandbox: nvidia-smi -L above is the check"
fi
echo workload-done
JOB
  # The script goes inline (sh -c): the host environment's /tmp is not the host's.
  printf '{"version": 1, "environment": "host", "command": ["sh", "-c", "%s", "job", "%s"]}\n' \
    "$(awk '{gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); printf "%s\\n", $0}' "$W/job.sh")" "$prefix" >"$W/job.yaml"
  cat "$W/job.sh"
  timeout "$(cap 60)" "$G" -o json lease create "$offer" --gpus 1 --deposit 10 --manifest "$W/job.yaml" --from tenant --yes \
    >"$W/create.json" 2>&1
  grep -E "lease_id|error|message" "$W/create.json" | head -5
  lease=$(grep -o '"lease_id": *"\?[0-9]*' "$W/create.json" | head -1 | grep -o '[0-9]*$')
  [ -n "$lease" ] || { echo "no lease made"; return 1; }
  started() { timeout 10 "$G" -o json lease show "$lease" | grep -q '"state": *"started"'; }
  wait_until 60 "lease $lease started by the daemon" started || { tail -20 "$OUT/daemon.log"; return 1; }
  grep "lease $lease: new" "$OUT/daemon.log"
  gpu=$(sed -n "s/.*lease $lease: new (reserved), GPUs set aside: \([^ ,]*\).*/\1/p" "$OUT/daemon.log" | head -1)
  echo "the lease's GPU: ${gpu:-unknown}"
  step "$G" lease submit "$lease" --manifest "$W/job.yaml" --from tenant
  logs_done() { timeout 30 "$G" lease logs "$lease" --from tenant >"$W/logs.txt" 2>&1 && grep -q workload-done "$W/logs.txt"; }
  wait_until 120 "the workload's output through the tenant API" logs_done
  cp "$W/logs.txt" "$OUT/lease-logs.txt"
  echo "--- lease logs"; cat "$W/logs.txt"
  timeout 30 "$G" lease logs "$lease" --stderr --from tenant >"$OUT/lease-stderr.txt" 2>&1
  echo "--- lease logs --stderr (last lines)"; tail -5 "$OUT/lease-stderr.txt"
  if [ -n "$gpu" ] && grep -qx "gpus=$gpu" "$W/logs.txt"; then
    echo "ok: the workload got $gpu"
  else
    echo "FAIL: the workload's CUDA_VISIBLE_DEVICES is not the lease's GPU ${gpu:-?}"
  fi
  if grep -q '^GPU [0-9]*:' "$W/logs.txt"; then
    i=$(grep -c '^GPU [0-9]*:' "$W/logs.txt")
    { [ "$i" = 1 ] && grep -q "UUID: $gpu)" "$W/logs.txt"; } &&
      echo "ok: nvidia-smi in the workload sees only $gpu" ||
      echo "FAIL: nvidia-smi in the workload sees $i GPU(s), not only $gpu"
  fi
  step "$G" provider status --home "$W/phome"
  timeout 30 "$G" -o json provider status --home "$W/phome" >"$OUT/provider-status.json" 2>&1
  cp "$W/phome/state/daemon-status.json" "$OUT/daemon-status.json" 2>/dev/null
  echo "(json in provider-status.json, daemon-status.json)"
  step "$G" lease close "$lease" --from tenant
  closed() { timeout 10 "$G" -o json lease show "$lease" | grep -q '"state": *"closed"'; }
  wait_until 30 "lease $lease closed" closed
  freed() { grep -B4 "\"uuid\": \"$gpu\"" "$W/phome/state/daemon-status.json" | grep -q '"lease_id": 0'; }
  wait_until 30 "the daemon gave $gpu back (daemon-status.json: no lease on it)" freed
  cp "$W/phome/state/daemon-status.json" "$OUT/daemon-status-after.json" 2>/dev/null
  section "provider gpus after the lease closed (the idle check)"
  LD_LIBRARY_PATH=${fake:+$W/lib} step "$G" provider gpus
}
daemon_section
echo "[daemon section exit $?]"
# Stops what the section started: the daemon (its workloads' supervisors too), their
# mounts, the devnet.
[ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null && { timeout 30 tail --pid="$DPID" -f /dev/null; kill -KILL "$DPID" 2>/dev/null; }
for p in $(pgrep -f "sandbox supervise --run-dir $W/"); do kill -KILL "$p"; done
grep " $W/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
[ -n "$NPID" ] && kill -TERM "$NPID" 2>/dev/null && { timeout 20 tail --pid="$NPID" -f /dev/null; kill -KILL "$NPID" 2>/dev/null; }
unset GPUNET_HOME GPUNET_NODE GPUNET_PASSPHRASE

section done
date -u
