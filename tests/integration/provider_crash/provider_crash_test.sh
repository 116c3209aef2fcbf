#!/usr/bin/env bash
# The provider daemon's crash campaign (issue 17 items 4 and 9; docs/provider.md "Crash
# safety"). A real devnet, `gpunet provider run` with two GPUs from the fake NVML, and
# real sandboxed workloads submitted through the tenant API (`gpunet lease submit`).
# Each workload prints "tick <marker> <n>" every 100 ms, its marker fixed when it
# starts. The daemon is SIGKILLed at every fixed crash point of provider/engine.h's
# kCrashPoints ($GPUNET_PROVIDER_CRASH_AT) in the order a lease meets them, then by an
# external `kill -KILL` after a random delay (seeded: the seed is printed, CRASH_SEED=N
# replays it) while a lease runs and another goes through its life, and restarted after
# each kill. After every restart:
# each workload is the same one still running (one marker, one process, its counter
# rising), every lease stays `started` with its started_ms unchanged (heartbeats resume
# before heartbeat_timeout_ms), and no LeaseStarted or workload start happens twice; a
# manifest accepted before a crash is launched after it; the tenant's events tell each
# step of the crashed leases once; the tenant's close stops the workload and frees its
# GPUs for the next lease (no orphan).
# Skipped (77) without root (mknod, the sandbox).
#   provider_crash_test.sh GPUNET LIBFAKE_NVML [RANDOM_KILLS]   (default 3; make crash-campaign)
set -u
GPUNET="$(realpath "$1")"
FAKE_NVML="$(realpath "$2")"
RANDOM_KILLS="${3:-3}"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
# shellcheck source=../../util/provider_daemon.sh
source "$(dirname "$0")/../../util/provider_daemon.sh"
devnet_workdir gpunet-provider-crash-test
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (device nodes, the sandbox)"; exit 77; }
# daemon_cleanup, after keeping the daemon logs and the workloads' run files in
# $CRASH_KEEP_LOGS when it is set.
crash_cleanup() {
  if [ -n "${CRASH_KEEP_LOGS:-}" ]; then
    mkdir -p "$CRASH_KEEP_LOGS" && cp "$WORK"/d*.log "$CRASH_KEEP_LOGS/" 2>/dev/null
    (cd "$PHOME/sandbox" 2>/dev/null &&
      find runs -path '*/fs' -prune -o -type f -size -1000k -exec cp --parents {} "$CRASH_KEEP_LOGS/" \;)
  fi
  daemon_cleanup
}
trap crash_cleanup EXIT

SEED="${CRASH_SEED:-$((($(date +%s%N) / 1000) % 1000000))}"
RANDOM=$SEED
echo "provider crash campaign: seed $SEED (replay: CRASH_SEED=$SEED), $RANDOM_KILLS random kills"

# --- a devnet (heartbeat timeout 8 s, room for a slow ASan start), the provider home, 2 GPUs ---
devnet_start_with_genesis '{}' '{"lease_start_timeout_ms": 60000, "manifest_timeout_ms": 120000, "heartbeat_timeout_ms": 8000}'
provider_home "$WORK/phome" 2
export GPUNET_FAKE_NVML_STATE="$WORK/nvml.json"
cat >"$GPUNET_FAKE_NVML_STATE" <<'JSON'
{"gpus": [{"uuid": "GPU-fake-0", "name": "NVIDIA H100", "minor": 0},
          {"uuid": "GPU-fake-1", "name": "NVIDIA H100", "minor": 1}]}
JSON
{ provider_yaml_two_h100; cat <<YAML; } >"$PHOME/provider.yaml"
  metrics_listen: 127.0.0.1:$(free_port)
  heartbeat_every: 1s
  health_poll: 100ms
  nvml_library: $FAKE_NVML
  device_dir: $WORK/dev
YAML
g provider register --config "$PHOME/provider.yaml" --from provider --yes >/dev/null || fail "provider register"
offer="$(g -o json offers | json_field '["offers"][0]["offer_id"]')"
for w in wA wB; do  # one workload per lease, told apart by its word
  cat >"$WORK/job-$w.yaml" <<YAML
version: 1
environment: host
command: ["sh", "-c", "w=$w; m=\$(date +%s%N); i=0; while :; do i=\$((i+1)); echo \"tick \$m \$i\"; sleep 0.1; done"]
YAML
done

# --- helpers ---
runs=0
kills=0
LOG=""
# Starts daemon run N+1 (its log $WORK/d<N>.log), crashing at point $1 when given.
start() {
  runs=$((runs + 1))
  LOG="$WORK/d$runs.log"
  STARTED_AT_MS="$(now_ms)"
  if [ -n "${1:-}" ]; then
    GPUNET_PROVIDER_CRASH_AT="$1" daemon_start "$LOG"
  else
    daemon_start "$LOG"
  fi
}
# Waits for the daemon to SIGKILL itself at point $1.
crashed_at() {
  daemon_wait_exit
  if [ "$rc" -eq 137 ] && grep -q "crash point $1: SIGKILL" "$LOG"; then
    kills=$((kills + 1))
  else
    fail "run $runs: exit $rc, expected a SIGKILL at crash point $1"
    tail -20 "$LOG" >&2
  fi
}
now_ms() { echo $((${EPOCHREALTIME//[.,]/} / 1000)); }
# A random kill: SIGKILL the running daemon 0.1..2.6 s after its start (at once when
# that moment has passed).
kill_randomly() {
  local ms=$((100 + RANDOM % 2500)) left
  left=$((STARTED_AT_MS + ms - $(now_ms)))
  [ "$left" -gt 0 ] && sleep "$((left / 1000)).$(printf '%03d' $((left % 1000)))"
  if kill -KILL "$DAEMON_PID" 2>/dev/null; then kills=$((kills + 1)); fi
  echo "run $runs: SIGKILL $(($(now_ms) - STARTED_AT_MS)) ms after its start (drawn: $ms)"
  daemon_wait_exit
}
all_logs() { cat "$WORK"/d*.log; }
count() { all_logs | grep -c -- "$1"; }
heartbeat_in_log() { grep -q 'heartbeat: committed' "$LOG"; }
lease_is() { [ "$(lease_field "$1" state)" = "$2" ]; }
# The workload of lease $1 ("" when none): its stdout.log in the runtime's run dir.
stdout_of() { find "$PHOME" -path "*lease-$1/*" -name stdout.log 2>/dev/null | head -1; }
ticks() { local f; f="$(stdout_of "$1")"; [ -n "$f" ] && grep '^tick ' "$f"; }
last_tick() { ticks "$1" | tail -1 | cut -d' ' -f3; }
markers() { ticks "$1" | cut -d' ' -f2 | sort -u | wc -l; }
# Running instances of the workload with word $1: its shells whose parent is not one
# (a fork about to exec date or sleep still shows the shell's command line).
instances() {
  local pids p ppid n=0
  pids=" $(pgrep -f "^sh -c w=$1;" | tr '\n' ' ') "
  for p in $pids; do
    ppid="$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ')" || continue
    [ -n "$ppid" ] && [[ "$pids" != *" $ppid "* ]] && n=$((n + 1))
  done
  echo "$n"
}
ticking_past() { local t; t="$(last_tick "$1")"; [ -n "$t" ] && [ "$t" -gt "$2" ]; }
gpu_holder() { $PY -c 'import json,sys; print(sorted(g["lease_id"] for g in json.load(open(sys.argv[1]))["gpus"]))' "$PHOME/state/daemon-status.json"; }

declare -A STARTED_MS WORD
# After a restart: for each started lease, still started with the same started_ms, one
# LeaseStarted at most in all runs' logs; for each running workload, the same instance,
# alone, still ticking.
check_leases() {
  local id what="$1"
  for id in "${!STARTED_MS[@]}"; do
    lease_is "$id" started || fail "$what: lease $id is $(lease_field "$id" state), expected started"
    [ "$(lease_field "$id" started_ms)" = "${STARTED_MS[$id]}" ] || fail "$what: lease $id's started_ms changed"
    [ "$(count "lease $id: LeaseStarted: committed")" -le 1 ] || fail "$what: LeaseStarted of lease $id sent twice"
    [ "$(count "workload lease-$id started")" -le 1 ] || fail "$what: lease $id's workload started twice"
    [ -n "${WORD[$id]:-}" ] || continue
    local before
    before="$(last_tick "$id")"
    wait_for 10 ticking_past "$id" "${before:-0}" || fail "$what: lease $id's workload does not tick on"
    [ "$(markers "$id")" -eq 1 ] || fail "$what: lease $id's workload started $(markers "$id") times"
    [ "$(instances "${WORD[$id]}")" -eq 1 ] || fail "$what: $(instances "${WORD[$id]}") instances of lease $id's workload"
  done
}
# Restarted with no crash point: it heartbeats, and check_leases finds every lease still
# started, so the heartbeats resumed before the ledger's fault deadline.
restart_and_check() {
  start ""
  wait_for 20 heartbeat_in_log || fail "$1: the restarted daemon sends no heartbeat"
  check_leases "$1"
}
# The tenant submits lease $1's manifest $2 until the daemon dies at crash point $3
# (its answer never comes: the daemon dies inside the request).
submit_until_crash() {
  local deadline=$((SECONDS + 20))
  until grep -q "crash point $3: SIGKILL" "$LOG"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    submit "$1" "$2" && { fail "lease $1's submit answered before the crash at $3"; return 1; }
    sleep 0.2
  done
}
create_lease() {  # $1: GPUs, $2: manifest file; prints the lease id
  g -o json lease create "$offer" --gpus "$1" --deposit 10 --manifest "$2" --from tenant --yes |
    json_field '["ids"]["lease_id"]'
}
submit() { g lease submit "$1" --manifest "$2" --from tenant >"$WORK/submit.txt" 2>&1; }

# --- 1. every fixed crash point, in the order a lease meets them ---
start heartbeat_sent  # the first pass heartbeats at once: killed with it in flight
crashed_at heartbeat_sent
start reserved
wait_for 20 heartbeat_in_log || fail "run $runs sent no heartbeat"
A="$(create_lease 1 "$WORK/job-wA.yaml")" || fail "lease create A"
crashed_at reserved
lease_is "$A" reserved || fail "lease $A not reserved after the crash at reserved"
[ -f "$PHOME/state/leases/$A.json" ] || fail "no record of lease $A after reserved"
start started
crashed_at started
lease_is "$A" started || fail "lease $A not started after the crash at started"
STARTED_MS[$A]="$(lease_field "$A" started_ms)"
start manifest_accepted
# The tenant's submit dies with the daemon; the manifest it sent is kept.
submit_until_crash "$A" "$WORK/job-wA.yaml" manifest_accepted
crashed_at manifest_accepted
[ -z "$(stdout_of "$A")" ] || fail "lease $A's workload launched before the crash at manifest_accepted"
start started_sent  # launches A's kept manifest; B's LeaseStarted dies in flight
WORD[$A]=wA
B="$(create_lease 1 "$WORK/job-wB.yaml")" || fail "lease create B"
crashed_at started_sent
launched() { [ -n "$(stdout_of "$A")" ]; }
wait_for 5 launched || fail "lease $A's kept manifest was not launched after the restart"
lease_started() { lease_is "$1" started; }
wait_for 10 lease_started "$B" || fail "lease $B's LeaseStarted sent before the crash did not commit"
STARTED_MS[$B]="$(lease_field "$B" started_ms)"
check_leases "after started_sent"
start workload_launched
submit_until_crash "$B" "$WORK/job-wB.yaml" workload_launched
crashed_at workload_launched
WORD[$B]=wB
restart_and_check "after workload_launched"
grep -q "lease $B: re-attached to its running workload" "$LOG" || fail "lease $B's workload was not adopted"

# --- 2. the tenant closes A: its workload stops, its GPU is free for the next lease ---
kill -KILL "$DAEMON_PID" && kills=$((kills + 1))
daemon_wait_exit
# The withdraw schedule's mark says the last withdrawal was long ago: the first pass
# withdraws what A and B earned.
echo 1 >"$PHOME/state/last-withdraw-ms"
start withdraw_sent
crashed_at withdraw_sent
start workload_stopped
g lease close "$A" --from tenant >/dev/null || fail "tenant lease close A"
crashed_at workload_stopped
unset "STARTED_MS[$A]" "WORD[$A]"
[ "$(instances wA)" -eq 0 ] || fail "lease $A's workload still runs after its stop"
start gpus_idle
crashed_at gpus_idle
restart_and_check "after gpus_idle"
a_free() { [ "$(gpu_holder)" = "[0, $B]" ]; }
wait_for 10 a_free || fail "lease $A's GPU not back in the pool: holders $(gpu_holder)"
[ -f "$PHOME/state/leases/$A.json" ] || fail "lease $A's record (its outputs' retention) is gone"

# --- 3. random kills while B runs and a lease X_k on the other GPU goes through its
# life: created, its manifest submitted (retried by the tenant until accepted), started,
# then closed; each kill lands in one half, followed by a restart and the checks ---
submit_retrying() {
  local deadline=$((SECONDS + 30))
  until g lease submit "$1" --manifest "$2" --from tenant >"$WORK/submit-$1.txt" 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}
x_gone() { [ "$(instances "$XW")" -eq 0 ] && [ "$(gpu_holder)" = "[0, $B]" ]; }
X=""
for ((k = 1; k <= RANDOM_KILLS; k++)); do
  if [ -z "$X" ]; then
    XW="wX$k"
    sed "s/w=wA;/w=$XW;/" "$WORK/job-wA.yaml" >"$WORK/job-$XW.yaml"
    X="$(create_lease 1 "$WORK/job-$XW.yaml")" || fail "lease create X$k"
    submit_retrying "$X" "$WORK/job-$XW.yaml" &
    submitter=$!
    kill_randomly
    restart_and_check "after random kill $k (lease $X starting)"
    wait "$submitter" || { fail "lease $X's manifest never accepted"; cat "$WORK/submit-$X.txt" >&2; }
    STARTED_MS[$X]="$(lease_field "$X" started_ms)"
    WORD[$X]="$XW"
    check_leases "lease $X running"
  else
    g lease close "$X" --from tenant >/dev/null || fail "tenant lease close $X"
    unset "STARTED_MS[$X]" "WORD[$X]"
    kill_randomly
    restart_and_check "after random kill $k (lease $X closing)"
    wait_for 15 x_gone || fail "lease $X: after its close $(instances "$XW") instances run, GPU holders $(gpu_holder)"
    X=""
  fi
done
if [ -n "$X" ]; then
  g lease close "$X" --from tenant >/dev/null || fail "tenant lease close $X"
  unset "STARTED_MS[$X]" "WORD[$X]"
  wait_for 15 x_gone || fail "lease $X: after its close $(instances "$XW") instances run, GPU holders $(gpu_holder)"
fi

# --- 4. what the tenant read: each step of A and B told once, whatever the crashes hid ---
events_of() {
  g -o json lease events "$1" --from tenant 2>/dev/null |
    $PY -c 'import json,sys; print(" ".join(e["kind"] for e in json.load(sys.stdin)["events"]))'
}
told_once() {  # lease $1, kinds $2...
  local id="$1" kinds kind
  kinds=" $(events_of "$id") "
  shift
  for kind in "$@"; do
    [ "$(grep -o " $kind " <<<"$kinds" | wc -l)" -eq 1 ] || fail "lease $id's events: $kind not once in:$kinds"
  done
}
told_once "$A" reserved started manifest_accepted workload_running closed workload_stopped
told_once "$B" reserved started manifest_accepted workload_running

# --- 5. B closed too: both GPUs at once for the next lease, long before retention ends ---
g lease close "$B" --from tenant >/dev/null || fail "tenant lease close B"
b_free() { [ "$(gpu_holder)" = "[0, 0]" ]; }
wait_for 15 b_free || fail "lease $B's GPU not back in the pool: holders $(gpu_holder)"
[ "$(instances wB)" -eq 0 ] || fail "lease $B's workload still runs after the close"
unset "STARTED_MS[$B]" "WORD[$B]"
C="$(g -o json lease create "$offer" --gpus 2 --deposit 10 --manifest-hash "$(printf '%064d' 9)" \
  --from tenant --yes | json_field '["ids"]["lease_id"]')" || fail "lease create C"
wait_for 15 lease_started "$C" || fail "lease $C (both GPUs) not started: holders $(gpu_holder)"
g lease close "$C" --from tenant >/dev/null || fail "tenant lease close C"
c_gone() { [ ! -e "$PHOME/state/leases/$C.json" ] && [ "$(gpu_holder)" = "[0, 0]" ]; }
wait_for 15 c_gone || fail "lease $C not released after its close"
kill -TERM "$DAEMON_PID"
daemon_wait_exit
[ "$rc" -eq 0 ] || fail "exit $rc on SIGTERM, expected 0"
[ "$(count 'LeaseStarted (already done')" -eq 0 ] || fail "a LeaseStarted was sent for a started lease"
devnet_stop
[ "$kills" -ge 10 ] || fail "only $kills SIGKILLs, expected at least 10"
[ "$failures" -eq 0 ] || { echo "--- last daemon log ($LOG):" >&2; tail -40 "$LOG" >&2; echo "seed $SEED" >&2; }
checks_report "provider crash campaign: $kills SIGKILLs ($RANDOM_KILLS random, seed $SEED), workloads survive, nothing twice, no orphan"
