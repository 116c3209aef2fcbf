#!/usr/bin/env bash
# Money running out (issue 18 items 4 and 9), with the real daemon on a devnet whose
# node runs on a shifted clock (clock_shift.cpp: the ledger's time jumps towards a
# lease's paid_until instead of the hour the smallest deposit pays for; the daemon,
# the workloads and the client keep the real clock):
#   - lease A's workload traps SIGTERM and prints when it came: it comes no earlier
#     than its grace (4 s) before paid_until, the workload ends cleanly within the
#     grace, one funds_ending event, and the ledger closes the lease as expired;
#   - `gpunet logs A -f` follows both streams across a SIGKILL and restart of the
#     daemon (every line once, in order), warns of the funds' end, and exits non-zero
#     saying the lease closed because its funds ran out;
#   - lease B, watched by `gpunet lease watch B --auto-topup 3`: topped up by an hour
#     (2.5 GPN) when its funds end within 10 minutes — so no SIGTERM while A's comes —
#     then by what is left of the cap (0.5), then never again; the watch ends (0) when
#     the tenant closes B; meanwhile `lease list` notes that B's funds end soon.
# Needs root (device nodes, sandboxes).
#   money_test.sh GPUNET LIBCLOCK_SHIFT
set -u
GPUNET="$(realpath "$1")"
CLOCK_SHIFT="$(realpath "$2")"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
# shellcheck source=../../util/provider_daemon.sh
source "$(dirname "$0")/../../util/provider_daemon.sh"
devnet_workdir gpunet-money-test
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to make device nodes"; exit 77; }
LOGS_PID="" WATCH_PID=""
money_cleanup() {
  [ -n "$LOGS_PID" ] && kill -KILL "$LOGS_PID" 2>/dev/null
  [ -n "$WATCH_PID" ] && kill -KILL "$WATCH_PID" 2>/dev/null
  daemon_cleanup
}
trap money_cleanup EXIT

SHIFT_FILE="$WORK/clock_shift_ms"
echo 0 >"$SHIFT_FILE"
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Moves the node's clock so that the ledger's time is $1 (ms) now.
ledger_time_is() { echo $(($1 - $(now_ms))) >"$SHIFT_FILE.new" && mv "$SHIFT_FILE.new" "$SHIFT_FILE"; }
ugpn() { lease_field "$1" "$2"; }

# --- 1. a devnet (the node on the shifted clock), the provider and its daemon ---
# Heartbeats are kept up across the jumps by a timeout longer than any jump.
GPUNET_TEST_CLOCK_SHIFT_FILE="$SHIFT_FILE" LD_PRELOAD="$CLOCK_SHIFT" \
  devnet_start_with_genesis '{"development": true}' '{"heartbeat_timeout_ms": 14400000}'
provider_home "$WORK/phome" 2
{ provider_yaml_two_h100; cat <<YAML; declared_two_gpus_yaml; } >"$PHOME/provider.yaml"
  heartbeat_every: 1s
  device_dir: $WORK/dev
YAML
g provider register --config "$PHOME/provider.yaml" --from provider --yes >/dev/null || fail "provider register"
offer="$(g -o json offers | json_field '["offers"][0]["offer_id"]')"
daemon_start "$WORK/d1.log"
heartbeat_seen() { grep -q 'heartbeat: committed' "$1"; }
wait_for 30 heartbeat_seen "$WORK/d1.log" || { fail "the daemon sent no heartbeat"; cat "$WORK/d1.log" >&2; exit 1; }

# --- 2. two leases of one GPU, one hour's deposit each (2.5 GPN at 2.5 GPN/GPU-h) ---
cat >"$WORK/a.yaml" <<'YAML'
version: 1
environment: host
stop_grace_ms: 4000
command: ["sh", "-c", "trap 'echo sigterm-at $(date +%s%3N) >&2; sleep 1; echo clean-exit >&2; exit 0' TERM; i=0; while :; do i=$((i+1)); echo line-$i; [ $((i % 10)) -eq 0 ] && echo err-$i >&2; sleep 0.1; done"]
YAML
cat >"$WORK/b.yaml" <<'YAML'
version: 1
environment: host
stop_grace_ms: 4000
command: ["sh", "-c", "trap 'echo sigterm >&2; exit 0' TERM; while :; do sleep 0.2; done"]
YAML
create() {
  g -o json lease create "$offer" --gpus 1 --deposit 2.5 --manifest "$1" --from tenant --yes |
    json_field '["ids"]["lease_id"]'
}
A="$(create "$WORK/a.yaml")" || fail "lease create A"
B="$(create "$WORK/b.yaml")" || fail "lease create B"
started() { [ "$(lease_field "$1" state)" = started ]; }
wait_for 20 started "$A" && wait_for 20 started "$B" || { fail "leases not started"; exit 1; }
g lease submit "$A" --manifest "$WORK/a.yaml" --from tenant >/dev/null 2>&1 || fail "lease submit A"
g lease submit "$B" --manifest "$WORK/b.yaml" --from tenant >/dev/null 2>&1 || fail "lease submit B"
PA="$(lease_field "$A" paid_until_ms)"
PB="$(lease_field "$B" paid_until_ms)"

# --- 3. logs -f of A, lease watch of B ---
setsid "$GPUNET" logs "$A" -f --from tenant </dev/null >"$WORK/a.out" 2>"$WORK/a.err" &
LOGS_PID=$!
setsid "$GPUNET" lease watch "$B" --auto-topup 3 --every 200ms --from tenant </dev/null \
  >"$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH_PID=$!
lines() { grep -c '^line-' "$WORK/a.out" 2>/dev/null; }
lines_over() { [ "$(lines)" -gt "$1" ]; }
wait_for 20 lines_over 5 || { fail "logs -f shows no lines of A"; cat "$WORK/a.err" >&2; }

# --- 4. the daemon SIGKILLed and restarted under the follow ---
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=""
sleep 1
before="$(lines)"
daemon_start "$WORK/d2.log"
wait_for 30 lines_over $((before + 10)) || fail "logs -f did not resume after the daemon's restart"

# --- 5. B's funds end within 10 minutes: the watch tops it up by an hour ---
ledger_time_is $((PB - 300000))
deposited() { [ "$(ugpn "$B" deposited_ugpn)" = "$1" ]; }
wait_for 20 deposited 5000000 || fail "lease watch did not top B up by an hour (deposited $(ugpn "$B" deposited_ugpn))"

# --- 6. A's funds end: SIGTERM its grace before, then expired ---
ledger_time_is $((PA - 6000))
logs_done() { ! kill -0 "$LOGS_PID" 2>/dev/null; }
wait_for 40 logs_done || fail "logs -f did not end when A closed"
logs_rc=0
wait "$LOGS_PID" || logs_rc=$?
LOGS_PID=""
shift_ms="$(cat "$SHIFT_FILE")"
[ "$(lease_field "$A" state)/$(lease_field "$A" end)" = closed/expired ] ||
  fail "lease A is $(lease_field "$A" state)/$(lease_field "$A" end), expected closed/expired"
[ "$logs_rc" -ne 0 ] || fail "logs -f exited 0 when the lease closed under it"
grep -q "lease $A closed: its funds ran out at .* (expired)" "$WORK/a.err" ||
  fail "logs -f did not say why the lease closed"
grep -q "funds end at" "$WORK/a.err" || fail "logs -f gave no funds warning"
grep -q "provider unreachable, retrying" "$WORK/a.err" || fail "logs -f did not say the provider was unreachable"
term="$(sed -n 's/^sigterm-at \([0-9]*\)$/\1/p' "$WORK/a.err" | head -1)"
if [ -z "$term" ]; then
  fail "A's workload saw no SIGTERM"
else
  lead=$((PA - (term + shift_ms)))
  echo "SIGTERM came ${lead} ms before paid_until (grace 4000 ms)"
  [ "$lead" -le 4000 ] || fail "SIGTERM came ${lead} ms before paid_until, more than the grace"
  [ "$lead" -gt 0 ] || fail "SIGTERM came ${lead} ms before paid_until: not before it"
fi
grep -q '^clean-exit$' "$WORK/a.err" || fail "A's workload did not finish its SIGTERM handler within the grace"
# Every line once, in order, across the restart.
$PY - "$WORK/a.out" <<'PY' || fail "logs -f lost or repeated lines"
import sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l]
want = ["line-%d" % i for i in range(1, len(lines) + 1)]
assert lines == want, [x for x in zip(lines, want) if x[0] != x[1]][:3]
PY
grep -q '^err-' "$WORK/a.err" || fail "logs -f did not show stderr"
# Followed after the close: everything once more, then the same reason, non-zero.
if g logs "$A" -f --from tenant >"$WORK/a2.out" 2>"$WORK/a2.err"; then
  fail "logs -f of a closed lease exited 0"
fi
grep -q "lease $A closed: its funds ran out at .* (expired)" "$WORK/a2.err" ||
  fail "logs -f of a closed lease did not say why it closed"
cmp -s "$WORK/a.out" "$WORK/a2.out" || fail "logs -f of a closed lease did not show the same output"
g -o json lease events "$A" --from tenant >"$WORK/a.events" || fail "lease events A"
[ "$(grep -o '"funds_ending"' "$WORK/a.events" | wc -l)" -eq 1 ] || fail "not one funds_ending event for A"
grep -q "SIGTERM sent, grace 4 s" "$WORK/a.events" || fail "the funds_ending event does not say the grace"
grep -q '"funds_ending"' <(g -o json lease events "$B" --from tenant) && fail "B got a funds_ending event"
started "$B" || fail "lease B (topped up) is not running on"

# --- 7. the cap: the rest of it (0.5 GPN), then nothing more ---
PB="$(lease_field "$B" paid_until_ms)"
ledger_time_is $((PB - 300000))
wait_for 20 deposited 5500000 || fail "lease watch did not top B up by the rest of its cap (deposited $(ugpn "$B" deposited_ugpn))"
PB="$(lease_field "$B" paid_until_ms)"
ledger_time_is $((PB - 300000))
cap_said() { grep -q "reached its cap" "$WORK/watch.err"; }
wait_for 20 cap_said || fail "lease watch did not say its cap was reached"
deposited 5500000 || fail "lease watch deposited past its cap ($(ugpn "$B" deposited_ugpn))"
# lease list notes a lease whose funds end within 10 minutes (by the ledger's time).
g lease list --tenant tenant | grep -q "funds end .*(within 10 minutes): gpunet lease deposit $B" ||
  fail "lease list: no funds-end note for B"
[ "$(g -o json lease list --tenant tenant | json_field '["leases"][0]["funds_end_ms"]')" = "$PB" ] ||
  fail "lease list -o json: funds_end_ms is not B's paid_until_ms"

# --- 8. the tenant closes B: the watch ends, saying so ---
g lease close "$B" --from tenant >/dev/null || fail "lease close B"
watch_done() { ! kill -0 "$WATCH_PID" 2>/dev/null; }
wait_for 20 watch_done || fail "lease watch did not end when B closed"
watch_rc=0
wait "$WATCH_PID" || watch_rc=$?
WATCH_PID=""
[ "$watch_rc" -eq 0 ] || fail "lease watch exit $watch_rc, expected 0"
grep -q "lease $B closed: the tenant closed it" "$WORK/watch.out" || fail "lease watch did not say why B closed"

kill -TERM "$DAEMON_PID"
daemon_wait_exit
if [ "$failures" -ne 0 ]; then
  for f in a.err watch.out watch.err d2.log; do echo "--- $f:" >&2; tail -30 "$WORK/$f" >&2; done
fi
checks_report "money: the funds-end SIGTERM with its grace, expiry, logs -f across a daemon SIGKILL and a close, lease watch's top-ups within its cap"
