#!/usr/bin/env bash
# The sandbox on a real GPU host: detection (NVML, device nodes, driver libraries),
# `gpunet sandbox check`, the GPUs as the provider daemon sees them (`gpunet provider
# gpus`: inventory, health, the idle check, also while a CUDA program holds memory),
# and a CUDA program run inside `gpunet sandbox run` with and without the GPU. Two
# steps:
#
#   scripts/device-gpu-check.sh bundle   # on the build machine, after
#                                        # cmake --build build-gpu --target gpunet
#   scripts/device-gpu-check.sh          # on the GPU machine, as root, in the repo root
#
# `bundle` fills .devbundle/ (git-ignored locally) with the gpunet binary (built with
# RPATH $ORIGIN/../lib), every non-glibc library it needs, and Debian's bwrap,
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

section done
date -u
