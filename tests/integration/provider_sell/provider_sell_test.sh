#!/usr/bin/env bash
# Selling (issue 17 item 3): `gpunet provider run` with two declared GPUs on a
# development devnet bids on an order it can serve (at max price less undercut);
# the tenant accepts and the daemon starts the lease; a lease from the offer takes
# the machine's other GPUs and the daemon withdraws its bid on a second order;
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
order_create() {  # $1: gpus per machine, $2: manifest hash digit -> order id
  cat >"$WORK/order.yaml" <<YAML
requirements:
  gpu: H100
  gpus_per_machine: $1
max_price: 3
deposit: 10
manifest_hash: $(printf '%064d' "$2")
bid_window: 60s
YAML
  g -o json order create "$WORK/order.yaml" --from tenant --yes | json_field '["ids"]["order_id"]'
}

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
YAML
g provider register --config "$PHOME/provider.yaml" --from provider --yes >/dev/null || fail "provider register"
g -o json offers | grep -q '"declared": true' || fail "gpunet offers does not mark the declared machine's offer"
offer="$(g -o json offers | json_field '["offers"][0]["offer_id"]')"
daemon_start "$WORK/daemon.log"

# --- an order: the daemon bids 2.7 (3 less 10%); accepted, the lease starts ---
o1="$(order_create 1 1)"
wait_for 20 has_bid "$o1" || { fail "no bid on order $o1"; cat "$WORK/daemon.log" >&2; }
price="$(g -o json bids "$o1" | json_field '["bids"][0]["price_ugpn_per_gpu_hour"]')"
[ "$price" = 2700000 ] || fail "bid price $price, expected 2700000"
sleep 1  # another reconcile: still one bid on the order
[ "$(my_bids "$o1" | wc -w)" -eq 1 ] || fail "more than one bid on order $o1"
o2="$(order_create 1 2)"
wait_for 20 has_bid "$o2" || fail "no bid on order $o2"
g -o json lease accept "$(my_bids "$o1")" --from tenant --yes >"$WORK/accept.json" || fail "lease accept"
lease="$(json_field '["ids"]["lease_id"]' <"$WORK/accept.json")"
started() { [ "$(g -o json lease show "$lease" | json_field '["lease"]["state"]')" = started ]; }
wait_for 20 started || { fail "the accepted lease $lease was not started"; cat "$WORK/daemon.log" >&2; }

# --- a lease from the offer takes the other GPU: the bid on order 2 is withdrawn ---
g -o json lease create "$offer" --gpus 1 --deposit 10 --manifest-hash "$(printf '%064d' 3)" \
  --from tenant --yes >/dev/null || fail "lease create from the offer"
wait_for 20 no_bid "$o2" || { fail "bid on order $o2 not withdrawn once the machine was taken"; cat "$WORK/daemon.log" >&2; }

# --- drain: offers closed, bids withdrawn, a new order gets no bid ---
g -o json lease close "$lease" --from tenant >/dev/null || fail "lease close"
g provider drain --home "$PHOME" >"$WORK/drain.out" 2>&1 || { fail "provider drain"; cat "$WORK/drain.out" >&2; }
[ -f "$PHOME/state/draining" ] || fail "no draining mark"
[ "$(g -o json offers | json_field '["offers"]')" = "[]" ] || fail "offers still open after drain"
g -o json provider status --home "$PHOME" | grep -q '"draining": true' || fail "provider status does not say draining"
o3="$(order_create 1 4)"
sleep 2  # several reconciles
no_bid "$o3" || fail "a draining daemon bid on order $o3"
expect_error "apply while draining" "draining" g provider apply --home "$PHOME" --yes

kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
DAEMON_PID=""
devnet_stop
[ "$failures" -eq 0 ] || { echo "--- daemon log:" >&2; cat "$WORK/daemon.log" >&2; }
checks_report "provider selling: bid, accept, start, withdraw on a taken machine, drain"
