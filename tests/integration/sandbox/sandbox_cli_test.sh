#!/usr/bin/env bash
# Drives `gpunet sandbox` like a provider: check, a normal run with its exit code,
# an OOM kill reported on one line, a podman run and `environments`, and --help.
# Needs root; skips otherwise.
set -u
GPUNET=${1:?usage: sandbox_cli_test.sh path/to/gpunet}
if [ "$(id -u)" -ne 0 ]; then echo "SKIPPED: needs root"; exit 0; fi
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
devnet_workdir gpunet-cli
STATE="$WORK"
chmod 0711 "$STATE"

"$GPUNET" sandbox check | grep -q "memory limit:" || fail "check prints no memory line"
"$GPUNET" -o json sandbox check | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert "cannot_enforce" in d and "cgroups" in d' \
  || fail "check --output json is not the documented object"

out=$("$GPUNET" sandbox run --state-dir "$STATE" --id cli-ok --env GREETING=hi -- sh -c 'echo "$GREETING from $(id -u)"; echo to-err >&2; exit 5' 2>"$WORK/err")
rc=$?
err=$(cat "$WORK/err")
[ "$rc" -eq 5 ] || fail "exit code $rc, want 5"
[[ "$out" == "hi from "* ]] || fail "stdout '$out'"
[[ "$err" == *to-err* ]] || fail "stderr '$err'"
[ ! -e "$STATE/runs/cli-ok" ] || fail "run dir left behind without --keep"

err=$("$GPUNET" sandbox run --state-dir "$STATE" --id cli-oom --memory 48M -- /usr/bin/python3 -c 'x = bytearray(b"\x01") * (400 << 20)' 2>&1 >/dev/null)
rc=$?
[ "$rc" -eq 137 ] || fail "OOM exit code $rc, want 137"
[[ "$err" == *"killed: out of memory (limit 48M)"* ]] || fail "OOM line missing: $err"

# The podman backend through the same verb (an image made here, never pulled), and
# `sandbox environments` listing it; skipped where podman cannot run.
if command -v podman >/dev/null && command -v runc >/dev/null && [ -x /bin/busybox ]; then
  IMAGE="localhost/gpunet-cli-busybox:$$"
  USERNS=$((1950000000 + ($$ % 100) * 65536 * 8))
  mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/tmp" "$WORK/rootfs/outputs" "$WORK/rootfs/proc" \
    "$WORK/rootfs/sys" "$WORK/rootfs/dev" "$WORK/rootfs/etc"
  cp /bin/busybox "$WORK/rootfs/bin/" && ln -s busybox "$WORK/rootfs/bin/sh"
  tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" . && podman import -q "$WORK/rootfs.tar" "$IMAGE" >/dev/null \
    || fail "podman import"
  "$GPUNET" -o json sandbox environments --podman-userns-base "$USERNS" \
    | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert any(e["name"]==sys.argv[1] and e["backend"]=="podman" for e in d["environments"]), d' "$IMAGE" \
    || fail "environments does not list $IMAGE"
  out=$("$GPUNET" sandbox run --state-dir "$STATE" --id cli-podman --image "$IMAGE" --podman-userns-base "$USERNS" \
    --env GREETING=hi -- sh -c 'echo "$GREETING in $PWD"; exit 4')
  rc=$?
  [ "$rc" -eq 4 ] || fail "podman exit code $rc, want 4"
  [ "$out" = "hi in /work" ] || fail "podman stdout '$out'"
  [ ! -e "$STATE/runs/cli-podman" ] || fail "podman run dir left behind"
  podman rmi "$IMAGE" >/dev/null 2>&1
else
  echo "podman part SKIPPED: podman, runc or /bin/busybox missing"
fi

"$GPUNET" sandbox run --memory 12Q -- true 2>&1 | grep -q "unknown unit" || fail "bad size not explained"
"$GPUNET" sandbox run --help | grep -q "Examples:" || fail "run --help has no examples"
checks_report "sandbox CLI: all passed"
