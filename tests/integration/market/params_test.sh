#!/usr/bin/env bash
# The CLI judges by the chain's market rules (GET /status "market_params"), not by
# a default genesis's: on a devnet whose genesis raises the minimum bond and lowers
# the shortest bid window, `provider register` refuses a bond the defaults allow
# before sending anything, and `order create` sends a bid window the defaults refuse.
set -u
GPUNET="$(realpath "$1")"
SRC="${GPUNET_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}"
EX="$SRC/docs/examples"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
devnet_workdir gpunet-params-test
g() { setsid "$GPUNET" "$@" </dev/null; }
bal() { g -o json query account "$1" | json_field '["balance_ugpn"]'; }

# --- 1. a devnet home, then its genesis rewritten with other market rules ---
export GPUNET_HOME="$WORK/home" GPUNET_PASSPHRASE=devnet
devnet_start --block-interval-ms 100
devnet_stop
$PY - "$GPUNET_HOME/config/genesis.json" <<'PY'
import json, sys
path = sys.argv[1]
genesis = json.load(open(path))
genesis["params"]["provider_bond_min_ugpn"] = "2000000000"  # 2000 GPN; default 100
genesis["params"]["bid_window_min_ms"] = 200                # default 1000
json.dump(genesis, open(path, "w"), indent=2)
PY
rm -rf "${GPUNET_HOME:?}/data" && mkdir -m 700 "$GPUNET_HOME/data"
devnet_start --block-interval-ms 100

# --- 2. the node publishes them ---
g -o json status >"$WORK/status.json" || fail "status"
[ "$(json_field '["market_params"]["provider_bond_min_ugpn"]' <"$WORK/status.json")" = 2000000000 ] ||
  fail "status: market_params.provider_bond_min_ugpn is not \"2000000000\""
[ "$(json_field '["market_params"]["bid_window_min_ms"]' <"$WORK/status.json")" = 200 ] ||
  fail "status: market_params.bid_window_min_ms is not 200"
g status | grep -q 'bond >= 2000 GPN' || fail "status text: no chain minimum bond"

# --- 3. a 1000 GPN bond: the defaults allow it, this chain does not; nothing is sent ---
p0="$(bal provider)"
expect_error "register under the chain's minimum bond" "minimum bond of 2000 GPN" \
  g provider register --config "$EX/provider.yaml" --from provider --yes
[ "$(bal provider)" = "$p0" ] || fail "register: the provider's balance changed"

# --- 4. a 500 ms bid window: the defaults refuse it, this chain takes it ---
cp "$EX/manifest.yaml" "$WORK/"
sed 's/^bid_window: .*/bid_window: 500ms/' "$EX/order.yaml" >"$WORK/order.yaml"
g -o json order create "$WORK/order.yaml" --from tenant --yes >"$WORK/order.json" 2>"$WORK/order.err" ||
  { fail "order create with a 500 ms bid window"; cat "$WORK/order.json" "$WORK/order.err" >&2; }

devnet_stop
checks_report "params: the CLI follows the chain's market rules"
