#!/usr/bin/env bash
# The bft engine in the real process: `gpunet init --engine bft`, a one-validator
# chain commits blocks, a transfer sent with the CLI commits, then kill -9 at a
# random moment and a restart from the WAL and the sign guard: heights continue,
# the transfer is still there, the balance is exact. Each failed check says what.
set -u
GPUNET="$(realpath "$1")"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
devnet_workdir gpunet-bft-test
die() { echo "FAIL: $*" >&2; [ -f "$WORK/node.log" ] && tail -20 "$WORK/node.log" >&2; exit 1; }
export GPUNET_HOME="$WORK/home" GPUNET_PASSPHRASE=bft-test

height() { "$GPUNET" -o json status | json_field '["latest_height"]'; }
wait_height() {  # wait until the height is at least $1
  for _ in $(seq 1 300); do
    h="$(height 2>/dev/null)" && [ -n "$h" ] && [ "$h" -ge "$1" ] && return 0
    sleep 0.1
  done
  die "height did not reach $1 (at ${h:-?})"
}

alice="$("$GPUNET" -o json keys add alice | json_field '["address"]')" || die "keys add alice"
bob="$("$GPUNET" -o json keys add bob | json_field '["address"]')" || die "keys add bob"
"$GPUNET" init --home "$GPUNET_HOME" --engine bft --rpc 127.0.0.1:0 --block-interval-ms 100 \
  --fund "$alice=1000000000" >"$WORK/init.out" 2>&1 || { cat "$WORK/init.out"; die "init --engine bft"; }
grep -q '"engine": "bft"' "$GPUNET_HOME/config/node.json" || fail "node.json does not say engine bft"
# Without --development (issue 17) a chain is not a development chain; with it, it is.
grep -q '"development": false' "$GPUNET_HOME/config/genesis.json" || fail "init: genesis not development: false"
"$GPUNET" init --home "$WORK/dev" --development >"$WORK/dev.out" 2>&1 || { cat "$WORK/dev.out"; fail "init --development"; }
grep -q '"development": true' "$WORK/dev/config/genesis.json" || fail "init --development: genesis not development: true"
# An unknown engine is refused with the choices.
"$GPUNET" init --home "$WORK/other" --engine raft >"$WORK/out" 2>&1 && fail "init --engine raft succeeded"

devnet_node_start
wait_height 3
[ "$("$GPUNET" -o json status | json_field '["engine"]')" = bft ] || fail "status engine is not bft"
[ -s "$GPUNET_HOME/data/sign_guard" ] || fail "no sign guard file after signing"
[ -e "$GPUNET_HOME/data/bft.wal" ] || fail "no WAL file"

send="$("$GPUNET" -o json send alice "$bob" 2500000ugpn --fee 0.002)" || die "send"
[ "$(echo "$send" | json_field '["status"]')" = committed ] || fail "send not committed: $send"
tx_height="$(echo "$send" | json_field '["height"]')"
tx_hash="$(echo "$send" | json_field '["tx_hash"]')"

# kill -9 at a random moment, three times; heights continue after each restart.
for round in 1 2 3; do
  before="$(height)" || die "status before kill $round"
  sleep "0.$((RANDOM % 9 + 1))"
  devnet_kill
  devnet_node_start
  grep -q 'engine stopped' "$WORK/node.log" && die "engine stopped after restart $round"
  wait_height $((before + 2))
done

bal="$("$GPUNET" -o json query account "$bob" | json_field '["balance_ugpn"]')" || fail "query bob"
[ "$bal" = 2500000 ] || fail "bob's balance is $bal, expected 2500000"
at="$("$GPUNET" -o json query tx "$tx_hash" | json_field '["height"]')" || fail "query tx"
[ "$at" = "$tx_height" ] || fail "the transfer is at height $at after restarts, was $tx_height"

devnet_stop
"$GPUNET" node --home "$GPUNET_HOME" --replay-check >"$WORK/replay.out" 2>&1 || { cat "$WORK/replay.out" >&2; fail "replay-check"; }

checks_report "bft node test OK"
