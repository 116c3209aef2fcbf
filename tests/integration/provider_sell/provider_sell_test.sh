#!/usr/bin/env bash
# Selling (issue 17 items 3, 4 and 9): `gpunet provider run` with two declared GPUs
# on a development devnet bids on an order it can serve (at max price less
# undercut); the tenant accepts, the daemon starts the lease, and the order's lease
# lives its whole life with real processes: the tenant submits the order's manifest
# through the tenant API at once (`lease submit` waits for the start), reads the
# workload's first output line, downloads its output file and sees its events;
# heartbeats keep the lease and the daemon withdraws its earnings every
# withdraw_every (the payout account's balance rises); the tenant's close stops
# the workload and its GPU is free for the next bid. A lease from the offer takes
# the machine's other GPU and the daemon withdraws its bid on a second order;
# `provider drain` closes the offer, withdraws the bids and marks the home, and a
# new order gets no bid. Needs root (mknod).
#   provider_sell_test.sh GPUNET
set -u
GPUNET="$(realpath "$1")"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
# shellcheck source=../../util/provider_daemon.sh
source "$(dirname "$0")/../../util/provider_daemon.sh"
devnet_workdir gpunet-provider-sell-test
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to make device nodes"; exit 77; }
trap daemon_cleanup EXIT
my_bids() {  # $1: order id -> the provider's bid ids on it
  g -o json bids "$1" | $PY -c "import json,sys; print(' '.join(str(b['bid_id']) for b in json.load(sys.stdin)['bids'] if b['provider']=='$PROVIDER'))"
}
has_bid() { [ -n "$(my_bids "$1")" ]; }
no_bid() { [ -z "$(my_bids "$1")" ]; }
order_create() {  # $1: gpus per machine, $2: the manifest line of order.yaml -> order id
  cat >"$WORK/order.yaml" <<YAML
requirements:
  gpu: H100
  gpus_per_machine: $1
max_price: 3
deposit: 10
$2
bid_window: 60s
YAML
  g -o json order create "$WORK/order.yaml" --from tenant --yes | json_field '["ids"]["order_id"]'
}
fake_hash() { echo "manifest_hash: $(printf '%064d' "$1")"; }
balance() { g -o json query account "$1" | json_field '["balance_ugpn"]'; }
heartbeats() { grep -c 'heartbeat: committed' "$WORK/daemon.log"; }
events() { g -o json lease events "$lease" --from tenant 2>/dev/null; }

# --- a development devnet ---
devnet_start_with_genesis '{"development": true}'
PROVIDER="$(devnet_address provider)"

# --- the provider's home: two declared GPUs, bidding on ---
provider_home "$WORK/phome" 2
{ provider_yaml_two_h100; declared_two_gpus_yaml; cat <<YAML; } >"$PHOME/provider.yaml"
  metrics_listen: 127.0.0.1:$(free_port)
  heartbeat_every: 1s
  device_dir: $WORK/dev
  bidding:
    enabled: true
    floor: {H100: 1}
    undercut: 10%
  withdraw_every: 2s
YAML
# The order's workload: its first line, its GPU, an output file, then it runs on
# until the tenant closes the lease.
cat >"$WORK/job.yaml" <<'YAML'
version: 1
environment: host
command: ["sh", "-c", "echo hello-from-order; echo \"gpus=$CUDA_VISIBLE_DEVICES\"; echo done > /outputs/result.txt; exec sleep 300"]
YAML
g provider register --config "$PHOME/provider.yaml" --from provider --yes >/dev/null || fail "provider register"
g -o json offers | grep -q '"declared": true' || fail "gpunet offers does not mark the declared machine's offer"
offer="$(g -o json offers | json_field '["offers"][0]["offer_id"]')"
daemon_start "$WORK/daemon.log"

# --- an order with a real manifest: the daemon bids 2.7 (3 less 10%); accepted, the lease starts ---
o1="$(order_create 1 "manifest: $WORK/job.yaml")"
wait_for 20 has_bid "$o1" || { fail "no bid on order $o1"; cat "$WORK/daemon.log" >&2; }
price="$(g -o json bids "$o1" | json_field '["bids"][0]["price_ugpn_per_gpu_hour"]')"
[ "$price" = 2700000 ] || fail "bid price $price, expected 2700000"
sleep 1  # another reconcile: still one bid on the order
[ "$(my_bids "$o1" | wc -w)" -eq 1 ] || fail "more than one bid on order $o1"
o2="$(order_create 1 "$(fake_hash 2)")"
wait_for 20 has_bid "$o2" || fail "no bid on order $o2"
paid_before="$(balance provider)"
g -o json lease accept "$(my_bids "$o1")" --from tenant --yes >"$WORK/accept.json" || fail "lease accept"
lease="$(json_field '["ids"]["lease_id"]' <"$WORK/accept.json")"

# --- its whole life: submitted at once (submit waits for the provider's start) ---
g lease submit "$lease" --manifest "$WORK/job.yaml" --from tenant >"$WORK/submit.out" 2>"$WORK/submit.err" ||
  { fail "lease submit right after accept"; cat "$WORK/submit.out" "$WORK/submit.err" >&2; }
[ "$(lease_field "$lease" state)" = started ] || fail "lease $lease accepted by submit before it started"
[ "$(wc -l <"$WORK/submit.err")" -le 1 ] || { fail "submit's wait said more than one line"; cat "$WORK/submit.err" >&2; }
heartbeats_started="$(heartbeats)"
tenant_reads_workload "$lease" hello-from-order "gpus=GPU-dev-[01]$"
events >"$WORK/events.json" || fail "lease events"
for kind in reserved started manifest_accepted workload_running; do
  grep -q "\"$kind\"" "$WORK/events.json" || fail "no $kind event for the tenant"
done
# Heartbeats keep it, and the daemon withdraws its earnings every 2 s to the payee.
withdrawn() { [ "$(lease_field "$lease" paid_ugpn)" -gt 0 ] && [ "$(balance provider)" -gt "$paid_before" ]; }
wait_for 15 withdrawn || { fail "no withdrawal of lease $lease's earnings to the payout account"; grep withdraw "$WORK/daemon.log" >&2; }
grep -q "withdraw of 1 leases: committed" "$WORK/daemon.log" || fail "the daemon logged no withdrawal"
[ "$(heartbeats)" -gt "$heartbeats_started" ] || fail "no heartbeat while the lease ran"
[ "$(lease_field "$lease" state)" = started ] || fail "lease $lease no longer started"

# --- a lease from the offer takes the other GPU: the bid on order 2 is withdrawn ---
g -o json lease create "$offer" --gpus 1 --deposit 10 --manifest-hash "$(printf '%064d' 3)" \
  --from tenant --yes >/dev/null || fail "lease create from the offer"
wait_for 20 no_bid "$o2" || { fail "bid on order $o2 not withdrawn once the machine was taken"; cat "$WORK/daemon.log" >&2; }

# --- the tenant closes the order's lease: its workload stops, its GPU is free for the next bid ---
g lease close "$lease" --from tenant >/dev/null || fail "tenant lease close"
stopped() { events | grep -q '"workload_stopped"'; }
wait_for 20 stopped || { fail "the daemon did not stop the workload of the closed lease"; g lease status "$lease" --from tenant >&2; }
g lease logs "$lease" --from tenant 2>/dev/null | grep -q hello-from-order || fail "logs not readable after the close"
o4="$(order_create 1 "$(fake_hash 5)")"
# The offer's lease holds the other GPU: only the closed lease's can serve order 4.
wait_for 20 has_bid "$o4" || fail "no bid on order $o4 with the GPU the closed lease freed"

# --- drain: offers closed, bids withdrawn, a new order gets no bid ---
g provider drain --home "$PHOME" >"$WORK/drain.out" 2>&1 || { fail "provider drain"; cat "$WORK/drain.out" >&2; }
[ -f "$PHOME/state/draining" ] || fail "no draining mark"
[ "$(g -o json offers | json_field '["offers"]')" = "[]" ] || fail "offers still open after drain"
g -o json provider status --home "$PHOME" | grep -q '"draining": true' || fail "provider status does not say draining"
no_bid "$o4" || fail "drain did not withdraw the bid on order $o4"
o3="$(order_create 1 "$(fake_hash 4)")"
sleep 2  # several reconciles
no_bid "$o3" || fail "a draining daemon bid on order $o3"
expect_error "apply while draining" "draining" g provider apply --home "$PHOME" --yes

kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
DAEMON_PID=""
devnet_stop
[ "$failures" -eq 0 ] || { echo "--- daemon log:" >&2; cat "$WORK/daemon.log" >&2; }
checks_report "provider selling: bid, accept, an order's lease's whole life (submit, logs, outputs, events, withdrawals, close, its GPU bid again), withdraw on a taken machine, drain"
