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
devnet_workdir gpunet-provider-sell-test
g() { setsid "$GPUNET" "$@" </dev/null; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to make device nodes"; exit 77; }

DAEMON_PID=""
sell_cleanup() {
  [ -n "$DAEMON_PID" ] && kill -KILL "$DAEMON_PID" 2>/dev/null
  _devnet_cleanup
}
trap sell_cleanup EXIT
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # $1 s for "$2..." to succeed
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
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
export GPUNET_HOME="$WORK/home" GPUNET_PASSPHRASE=devnet
DEVNET_RPC="127.0.0.1:$(free_port)"
export DEVNET_RPC
devnet_start --block-interval-ms 100
devnet_stop
$PY - "$GPUNET_HOME/config/genesis.json" <<'PY'
import json, sys
path = sys.argv[1]
genesis = json.load(open(path))
genesis["development"] = True
json.dump(genesis, open(path, "w"), indent=2)
PY
rm -rf "${GPUNET_HOME:?}/data" && mkdir -m 700 "$GPUNET_HOME/data"
devnet_start --block-interval-ms 100
PROVIDER="$(devnet_address provider)"

# --- the provider's home: two declared GPUs, bidding on ---
PHOME="$WORK/phome"
chmod 711 "$WORK"  # the workloads' uids pass through to $PHOME/sandbox
mkdir -m 711 "$PHOME" "$WORK/dev" && mkdir -m 700 "$PHOME/keys"
cp -p "$GPUNET_HOME/keys/operator.json" "$PHOME/keys/" || fail "copy the operator key"
TLS_FP="$(provider_tls_identity "$PHOME")" || fail "make the TLS identity"
API_PORT="$(free_port)"
for minor in 0 1; do mknod -m 666 "$WORK/dev/nvidia$minor" c 195 "$minor"; done
{ provider_yaml_two_h100; cat <<YAML; } >"$PHOME/provider.yaml"
  metrics_listen: 127.0.0.1:$(free_port)
  heartbeat_every: 1s
  device_dir: $WORK/dev
  declared_gpus:
    - uuid: GPU-dev-0
      minor: 0
    - uuid: GPU-dev-1
      minor: 1
  bidding:
    enabled: true
    floor: {H100: 1}
    undercut: 10%
YAML
g provider register --config "$PHOME/provider.yaml" --from provider --yes >/dev/null || fail "provider register"
g -o json offers | grep -q '"declared": true' || fail "gpunet offers does not mark the declared machine's offer"
offer="$(g -o json offers | json_field '["offers"][0]["offer_id"]')"
setsid "$GPUNET" provider run --home "$PHOME" </dev/null 2>>"$WORK/daemon.log" &
DAEMON_PID=$!

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
