#!/usr/bin/env bash
# `gpunet provider run` against a real devnet, with two GPUs answered by the fake
# NVML (tests/util/fake_nvml.cpp, its state file rewritten by the test): a tenant's
# lease is started by the daemon, kept alive by its heartbeats past the heartbeat
# timeout, and closed by it with no_manifest once the manifest timeout passes; the
# daemon SIGKILLed right after setting the GPUs aside and right after LeaseStarted is
# restarted and sends nothing twice; the node stopped for longer than a heartbeat
# interval is waited out (the daemon keeps running and resumes); a GPU that reports
# Xid 79 under a started lease closes that lease and is never set aside again.
# GPUs declared on fake device nodes (mknod) are refused unless the chain's /status
# says "development": true, and accepted when it does. Needs root (mknod).
#   provider_daemon_test.sh GPUNET LIBFAKE_NVML
set -u
GPUNET="$(realpath "$1")"
FAKE_NVML="$(realpath "$2")"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
# shellcheck source=../../util/provider_daemon.sh
source "$(dirname "$0")/../../util/provider_daemon.sh"
devnet_workdir gpunet-provider-daemon-test
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to make device nodes"; exit 77; }
trap daemon_cleanup EXIT

heartbeats() { cat "$1" 2>/dev/null | grep -c 'heartbeat: committed'; }
lease_closed() { [ "$(lease_field "$lease" state)" = closed ]; }
heartbeat_after() { [ "$(heartbeats "$1")" -gt "$2" ]; }

# --- 1. a devnet with short lease timeouts, on a fixed port (it is restarted) ---
devnet_start_with_genesis '{}' '{"lease_start_timeout_ms": 60000, "manifest_timeout_ms": 20000, "heartbeat_timeout_ms": 4000}'

# --- 2. the provider's home: provider.yaml with a daemon section, the operator key ---
provider_home "$WORK/phome" 2
export GPUNET_FAKE_NVML_STATE="$WORK/nvml.json"
nvml_state() {  # $1: the Xids of GPU-fake-0
  cat >"$GPUNET_FAKE_NVML_STATE.new" <<JSON
{"gpus": [{"uuid": "GPU-fake-0", "name": "NVIDIA H100", "minor": 0, "xids": [$1]},
          {"uuid": "GPU-fake-1", "name": "NVIDIA H100", "minor": 1}]}
JSON
  mv "$GPUNET_FAKE_NVML_STATE.new" "$GPUNET_FAKE_NVML_STATE"
}
nvml_state ""
METRICS="127.0.0.1:$(free_port)"
{ provider_yaml_two_h100; cat <<YAML; } >"$PHOME/provider.yaml"
  metrics_listen: $METRICS
  heartbeat_every: 1s
  health_poll: 100ms
  nvml_library: $FAKE_NVML
  device_dir: $WORK/dev
YAML
# The same host with declared GPUs instead of NVML: development chains only.
DHOME="$WORK/dhome"
mkdir -m 711 -p "$DHOME"
cp -rp "$PHOME/keys" "$PHOME/tls" "$DHOME/"
sed '/^  nvml_library:/d' "$PHOME/provider.yaml" >"$DHOME/provider.yaml"
declared_two_gpus_yaml >>"$DHOME/provider.yaml"
g provider register --config "$PHOME/provider.yaml" --from provider --yes >/dev/null || fail "provider register"
offer="$(g -o json offers | json_field '["offers"][0]["offer_id"]')"

# --- 3. started while the node is down: it waits, and SIGTERM is a clean stop ---
devnet_stop
daemon_start "$WORK/d0.log"
waiting() { grep -q 'waiting for the node' "$WORK/d0.log"; }
wait_for 30 waiting || fail "daemon 0 does not say it waits for the node"
kill -TERM "$DAEMON_PID"
daemon_wait_exit
[ "$rc" -eq 0 ] || { fail "SIGTERM while waiting for the node: exit $rc, expected 0"; cat "$WORK/d0.log" >&2; }
devnet_start --block-interval-ms 100

# --- 4. declared GPUs only on a development chain ---
daemon_start "$WORK/declared.log" "$DHOME"
if [ "$(g -o json status | json_field '.get("development", False)')" != True ]; then
  daemon_wait_exit
  [ "$rc" -eq 1 ] || fail "declared GPUs on a chain without the development flag: exit $rc, expected 1"
  grep -q 'development' "$WORK/declared.log" || { fail "refusal does not name the development flag"; cat "$WORK/declared.log" >&2; }
else
  declared_up() { grep -q 'GPUs (declared)' "$WORK/declared.log"; }
  wait_for 30 declared_up || { fail "declared GPUs refused on a development chain"; cat "$WORK/declared.log" >&2; }
  kill -TERM "$DAEMON_PID"
  daemon_wait_exit
fi

# --- 5. SIGKILL right after the GPUs are set aside, before LeaseStarted ---
GPUNET_PROVIDER_CRASH_AT=reserved daemon_start "$WORK/d1.log"
# The offer takes leases only while its provider shows proof of life.
wait_for 30 heartbeat_after "$WORK/d1.log" 0 || { fail "daemon 1 sent no heartbeat"; cat "$WORK/d1.log" >&2; }
g -o json lease create "$offer" --gpus 2 --deposit 10 --manifest-hash "$(printf '%064d' 7)" \
  --from tenant --yes >"$WORK/create.json" || fail "lease create"
lease="$(json_field '["ids"]["lease_id"]' <"$WORK/create.json")"
daemon_wait_exit
[ "$rc" -eq 137 ] || { fail "daemon 1: exit $rc, expected 137 (SIGKILL at reserved)"; cat "$WORK/d1.log" >&2; }
[ -f "$PHOME/state/leases/$lease.json" ] || fail "no lease record after reserving"
[ "$(lease_field "$lease" state)" = reserved ] || fail "lease not reserved after the first crash"

# --- 6. restarted: sends LeaseStarted, SIGKILLed right after it committed ---
GPUNET_PROVIDER_CRASH_AT=started daemon_start "$WORK/d2.log"
daemon_wait_exit
[ "$rc" -eq 137 ] || { fail "daemon 2: exit $rc, expected 137 (SIGKILL at started)"; cat "$WORK/d2.log" >&2; }
[ "$(lease_field "$lease" state)" = started ] || fail "lease not started by the daemon"
grep -q "lease $lease: new" "$WORK/d2.log" && fail "daemon 2 set the GPUs aside again"
started_ms="$(lease_field "$lease" started_ms)"

# --- 7. restarted again: nothing twice, heartbeats keep the lease past the timeout ---
daemon_start "$WORK/d3.log"
sleep 6  # > heartbeat_timeout_ms (4 s) + grace
grep -q "LeaseStarted" "$WORK/d3.log" && { fail "daemon 3 sent LeaseStarted again"; cat "$WORK/d3.log" >&2; }
[ "$(lease_field "$lease" state)" = started ] || fail "lease not kept alive by heartbeats"
[ "$(lease_field "$lease" started_ms)" = "$started_ms" ] || fail "started_ms changed"
grep -q "heartbeat: committed" "$WORK/d3.log" || fail "daemon 3 sent no heartbeat"
$PY - "$PHOME/state/daemon-status.json" "$lease" <<'PY' || fail "daemon-status.json"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["mode"] == "nvml", s
assert sorted(g["uuid"] for g in s["gpus"]) == ["GPU-fake-0", "GPU-fake-1"], s
assert all(g["lease_id"] == int(sys.argv[2]) for g in s["gpus"]), s
assert [l["lease_id"] for l in s["leases"]] == [int(sys.argv[2])], s
PY
$PY -c 'import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
  "http://$METRICS/metrics" >"$WORK/metrics.txt" || fail "GET /metrics"
grep -q '^gpunet_provider_heartbeats_total [1-9]' "$WORK/metrics.txt" || fail "/metrics: no heartbeats counted"
grep -q '^gpunet_provider_gpus 2' "$WORK/metrics.txt" || fail "/metrics: gpus is not 2"

# --- 8. the node down for longer than a heartbeat interval: the daemon waits it out ---
heartbeats_before="$(heartbeats "$WORK/d3.log")"
devnet_stop
sleep 3
kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon exited while the node was down"
devnet_start --block-interval-ms 100
wait_for 15 heartbeat_after "$WORK/d3.log" "$heartbeats_before" || fail "no heartbeat after the node came back"
[ "$(grep -c 'node unreachable' "$WORK/d3.log")" -le 1 ] || fail "'node unreachable' logged per retry"
[ "$(lease_field "$lease" state)" = started ] || fail "lease closed across the node's restart"

# --- 9. no manifest: the daemon closes the lease with no_manifest ---
wait_for 40 lease_closed || fail "lease not closed after the manifest timeout"
[ "$(lease_field "$lease" end)" = no_manifest ] || fail "lease end is $(lease_field "$lease" end), expected no_manifest"
[ "$(grep -c "LeaseClose (no manifest): committed" "$WORK/d3.log")" -eq 1 ] || fail "no_manifest close not sent exactly once"
# It never ran a workload, so nothing is kept: its GPUs go back to the pool at once.
record_gone() { [ ! -e "$PHOME/state/leases/$lease.json" ]; }
wait_for 10 record_gone || fail "the closed lease's record (and GPUs) were not released"

# --- 10. a GPU fails (Xid 79) under a started lease: the daemon closes that lease ---
g -o json lease create "$offer" --gpus 1 --deposit 10 --manifest-hash "$(printf '%064d' 8)" \
  --from tenant --yes >"$WORK/create2.json" || fail "lease create (2)"
lease="$(json_field '["ids"]["lease_id"]' <"$WORK/create2.json")"
lease_started() { [ "$(lease_field "$lease" state)" = started ]; }
wait_for 20 lease_started || fail "lease $lease not started"
grep -q "lease $lease: new (reserved), GPUs set aside: GPU-fake-0" "$WORK/d3.log" || fail "lease $lease is not on GPU-fake-0"
nvml_state 79
wait_for 20 lease_closed || fail "lease $lease not closed after its GPU failed"
[ "$(lease_field "$lease" end)" = provider_closed ] || fail "lease $lease end: $(lease_field "$lease" end), expected provider_closed"
grep -q "lease $lease: LeaseClose (a GPU of the lease is unhealthy): committed" "$WORK/d3.log" || fail "no close for the failed GPU"
# The failed GPU never goes to a new lease: one of 1 GPU takes the healthy one.
# This lease runs a real workload, end to end through the tenant API (item 9): the
# tenant's verbs over TLS pinned to the ledger's fingerprint, the unprivileged
# tenant-facing process, the broker, the sandbox, and back.
cat >"$WORK/job.yaml" <<'YAML'
version: 1
environment: host
command: ["sh", "-c", "echo hello-from-lease; echo \"gpus=$CUDA_VISIBLE_DEVICES\"; echo done > /outputs/result.txt"]
YAML
g -o json lease create "$offer" --gpus 1 --deposit 10 --manifest "$WORK/job.yaml" \
  --from tenant --yes >"$WORK/create3.json" || fail "lease create (3)"
lease="$(json_field '["ids"]["lease_id"]' <"$WORK/create3.json")"
wait_for 20 lease_started || fail "lease $lease not started"
grep -q "lease $lease: new (reserved), GPUs set aside: GPU-fake-1" "$WORK/d3.log" || fail "lease $lease is not on the healthy GPU-fake-1"
api_user="$(ps -o user= -p "$(pgrep -f 'provider api --broker-fds' | head -1)" 2>/dev/null | tr -d ' ')"
[ "$api_user" = nobody ] || fail "the tenant-facing process runs as '$api_user', expected nobody"
g lease environments provider >"$WORK/envs.txt" || fail "lease environments"
grep -q host "$WORK/envs.txt" || fail "environments do not list host"
# `lease submit` waits while the daemon's view of the lease trails the ledger.
g lease submit "$lease" --manifest "$WORK/job.yaml" --from tenant >"$WORK/submit.txt" 2>&1 ||
  { fail "lease submit"; cat "$WORK/submit.txt" >&2; }
tenant_reads_workload "$lease" hello-from-lease "gpus=GPU-fake-1$"
# A second manifest with other bytes, and a stranger's key, are refused; the lease goes on.
g lease submit "$lease" --manifest "$WORK/job.yaml" --from provider >/dev/null 2>&1 && fail "a stranger's submit was accepted"
g -o json lease events "$lease" --from tenant >"$WORK/events.json" || fail "lease events"
for kind in reserved started manifest_accepted workload_running; do
  grep -q "\"$kind\"" "$WORK/events.json" || fail "no $kind event for the tenant"
done
g lease close "$lease" --from tenant >/dev/null || fail "tenant lease close"
stopped() { grep -q "\"workload_stopped\"\|\"closed\"" <(g -o json lease events "$lease" --from tenant 2>/dev/null); }
wait_for 20 stopped || fail "the daemon did not see the tenant's close"

# --- 11. SIGTERM: a clean stop ---
kill -TERM "$DAEMON_PID"
daemon_wait_exit
[ "$rc" -eq 0 ] || fail "daemon exit $rc on SIGTERM, expected 0"
grep -q "workloads keep running" "$WORK/d3.log" || fail "no stop line"
devnet_stop
[ "$failures" -eq 0 ] || { echo "--- daemon 3 log:" >&2; cat "$WORK/d3.log" >&2; }
checks_report "provider daemon: started, heartbeats, crash restarts, node outage, no_manifest close, a failed GPU closes its lease, a workload end to end through the tenant API"
