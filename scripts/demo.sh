#!/usr/bin/env bash
# `make demo`: start a devnet, send tokens alice -> bob through the CLI, show the
# balances before and after, the block holding the transfer and a verified proof of
# bob's new balance. Then the market story, all through the CLI: a provider
# registers two H100 machines with an investor in its payout split, a tenant orders
# 2 GPUs, the provider bids, the tenant accepts, the provider starts the lease,
# time passes, the provider withdraws, the tenant closes; the settlement is printed
# and checked to the ugpn, and the conservation equation must hold. Then stop the
# devnet. Prints "demo OK" only when every check passed; exits non-zero otherwise.
# usage: scripts/demo.sh path/to/gpunet [amount]
set -euo pipefail
GPUNET="$(realpath "${1:?usage: demo.sh path/to/gpunet [amount]}")"
AMOUNT="${2:-12.5}"
SRC="$(cd "$(dirname "$0")/.." && pwd)"
EXAMPLES="$SRC/docs/examples"
PY=/usr/bin/python3
WORK="$(mktemp -d /tmp/gpunet-demo-XXXXXX)"
DEVNET_PID=""
cleanup() {
  if [ -n "$DEVNET_PID" ] && kill -0 "$DEVNET_PID" 2>/dev/null; then
    kill -INT "$DEVNET_PID" 2>/dev/null || true
    wait "$DEVNET_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

export GPUNET_HOME="$WORK/home" GPUNET_PASSPHRASE=devnet
step "Starting gpunet devnet (home $GPUNET_HOME, any free port)"
"$GPUNET" devnet --home "$GPUNET_HOME" --rpc 127.0.0.1:0 --block-interval-ms 200 >"$WORK/devnet.log" 2>&1 &
DEVNET_PID=$!
url=""
for _ in $(seq 1 300); do  # up to 30 s
  url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/devnet.log" | head -1 || true)"
  if [ -n "$url" ] && GPUNET_NODE="$url" "$GPUNET" status >/dev/null 2>&1; then break; fi
  if ! kill -0 "$DEVNET_PID" 2>/dev/null; then
    echo; echo "the devnet exited:" >&2; cat "$WORK/devnet.log" >&2; exit 1; fi
  printf '.'; url=""; sleep 0.1
done
[ -n "$url" ] || { echo; echo "the devnet did not answer /status within 30 s:" >&2; cat "$WORK/devnet.log" >&2; exit 1; }
export GPUNET_NODE="$url"
echo; sed -n '1,/^In another terminal/p' "$WORK/devnet.log" | sed '$d'

step "gpunet status"
"$GPUNET" status

step "Balances before"
"$GPUNET" query account alice
"$GPUNET" query account bob

step "gpunet send alice bob $AMOUNT"
"$GPUNET" send alice bob "$AMOUNT" --memo "make demo" | tee "$WORK/send.out"
height="$(sed -n 's/^Committed in block \([0-9]*\).*/\1/p' "$WORK/send.out")"
[ -n "$height" ] || { echo "the transfer was not committed" >&2; exit 1; }

step "Balances after"
"$GPUNET" query account alice
"$GPUNET" query account bob

step "The block holding the transfer: gpunet query block $height"
"$GPUNET" query block "$height"

step "gpunet query account bob --prove"
"$GPUNET" query account bob --prove | tee "$WORK/prove.out"
grep -q '^proof verified against state root' "$WORK/prove.out"

# ---------------------------------------------------------------- the market
jget() { $PY -c "import json,sys; print(json.load(sys.stdin)$1)"; }
bal() { "$GPUNET" -o json query account "$1" | jget '["balance_ugpn"]'; }
check() { if ! eval "$1"; then echo "CHECK FAILED: $2" >&2; exit 1; fi; }
burned() { "$GPUNET" -o json query conservation | jget '["burned_ugpn"]'; }

step "A provider registers two H100 machines (self-reported), 20% of earnings to an investor"
sed -n '/^operator/,/^policy/p' "$EXAMPLES/provider.yaml"
"$GPUNET" provider register --config "$EXAMPLES/provider.yaml" --from provider --yes
"$GPUNET" provider show provider

step "Offers to rent now, cheapest first: gpunet offers 'gpu=H100 gpus>=8 price<=3 fabric=infiniband cuda>=12.1'"
"$GPUNET" offers 'gpu=H100 gpus>=8 price<=3 fabric=infiniband cuda>=12.1'

provider0="$(bal provider)"; investor0="$(bal investor)"; tenant0="$(bal tenant)"; burned0="$(burned)"

step "The tenant orders 2 GPUs: gpunet order create order.yaml"
grep -v '^#' "$EXAMPLES/order.yaml"
"$GPUNET" order create "$EXAMPLES/order.yaml" --from tenant --yes | tee "$WORK/order.out"
order="$(sed -n 's/^order \([0-9]*\) is open.*/\1/p' "$WORK/order.out")"
check '[ -n "$order" ]' "no order id in the output of order create"
"$GPUNET" order show "$order"

step "The provider's operator bids 2.4 GPN per GPU-hour with machine 1"
"$GPUNET" bid "$order" --price 2.4 --machines 1 --provider provider --from operator | tee "$WORK/bid.out"
bid="$(sed -n 's/^bid \([0-9]*\) placed.*/\1/p' "$WORK/bid.out")"
check '[ -n "$bid" ]' "no bid id in the output of bid"
"$GPUNET" bids "$order"

step "The tenant accepts bid $bid: the lease is awarded"
"$GPUNET" lease accept "$bid" --from tenant --yes | tee "$WORK/accept.out"
lease="$(sed -n 's/^lease \([0-9]*\) reserved.*/\1/p' "$WORK/accept.out")"
check '[ -n "$lease" ]' "no lease id in the output of lease accept"

step "The provider starts lease $lease: billing starts"
"$GPUNET" lease started "$lease" --from operator

step "Time passes (3 s); the provider's heartbeat proves it is up"
sleep 3
"$GPUNET" provider heartbeat --from operator --provider provider

step "The provider withdraws what accrued, split 80/20 between owner and investor"
"$GPUNET" lease withdraw "$lease" --from operator
sleep 1

step "The tenant closes the lease: settled and refunded at once (closing this early, within the start timeout, tops the provider's pay up to the reservation charge)"
"$GPUNET" lease close "$lease" --from tenant

step "Settlement"
"$GPUNET" -o json lease show "$lease" >"$WORK/lease.json"
lf() { jget "[\"lease\"][\"$1\"]" <"$WORK/lease.json"; }
deposited="$(lf deposited_ugpn)"; paid="$(lf paid_ugpn)"; refunded="$(lf refunded_ugpn)"
escrow="$(lf escrow_ugpn)"; state="$(lf state)"
provider_earned=$(( $(bal provider) - provider0 ))
investor_earned=$(( $(bal investor) - investor0 ))
tenant_spent=$(( tenant0 - $(bal tenant) ))
burned_now=$(( $(burned) - burned0 ))
fmt() { $PY -c "import sys; v=int(sys.argv[1]); print(f'{v//10**6}.{v%10**6:06d} GPN ({v} ugpn)')" "$1"; }
echo "  lease state          $state"
echo "  deposited            $(fmt "$deposited")"
echo "  paid to the provider $(fmt "$paid")"
echo "    owner (80%)        $(fmt "$provider_earned")"
echo "    investor (20%)     $(fmt "$investor_earned")"
echo "  refunded to tenant   $(fmt "$refunded")"
echo "  tenant spent         $(fmt "$tenant_spent") (compute and the early-close charge + tx fees)"
echo "  fees burned          $(fmt "$burned_now") (since the order)"
check '[ "$state" = closed ]' "the lease is not closed"
check '[ "$escrow" -eq 0 ]' "escrow left after close: $escrow"
check '[ "$paid" -gt 0 ]' "nothing was paid for 4 s of 2 GPUs"
check '[ $((paid + refunded)) -eq "$deposited" ]' "paid $paid + refunded $refunded != deposited $deposited"
check '[ $((provider_earned + investor_earned)) -eq "$paid" ]' "owner $provider_earned + investor $investor_earned != paid $paid"
# Each payout is split with a floor per payee (the remainder to the owner): the
# withdrawal, the settlement at close and the early-close charge are up to three
# payouts, so the investor may get up to 2 ugpn less than 20% of the total.
share=$((paid * 2000 / 10000))
check '[ "$investor_earned" -le "$share" ] && [ "$investor_earned" -ge $((share - 2)) ]' \
  "investor got $investor_earned, not 20% of $paid (floor per payout)"

step "gpunet query conservation"
"$GPUNET" query conservation

step "Stopping the devnet"
kill -INT "$DEVNET_PID"
wait "$DEVNET_PID"
DEVNET_PID=""
tail -1 "$WORK/devnet.log"
echo; echo "demo OK"
