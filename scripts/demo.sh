#!/usr/bin/env bash
# `make demo`: start a devnet, send tokens alice -> bob through the CLI, show the
# balances before and after, the block holding the transfer and a verified proof of
# bob's new balance; then stop the devnet. Exits non-zero when any step fails.
# usage: scripts/demo.sh path/to/gpunet [amount]
set -euo pipefail
GPUNET="$(realpath "${1:?usage: demo.sh path/to/gpunet [amount]}")"
AMOUNT="${2:-12.5}"
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

step "Stopping the devnet"
kill -INT "$DEVNET_PID"
wait "$DEVNET_PID"
DEVNET_PID=""
tail -1 "$WORK/devnet.log"
echo; echo "demo OK"
