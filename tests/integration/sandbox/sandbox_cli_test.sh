#!/usr/bin/env bash
# Drives `gpunet sandbox` like a provider: check, a normal run with its exit code,
# an OOM kill reported on one line, and --help. Needs root; skips otherwise.
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

"$GPUNET" sandbox run --memory 12Q -- true 2>&1 | grep -q "unknown unit" || fail "bad size not explained"
"$GPUNET" sandbox run --help | grep -q "Examples:" || fail "run --help has no examples"
checks_report "sandbox CLI: all passed"
