#!/usr/bin/env bash
# `make demo` end to end, then a devnet driven like a user with --output json:
# balances change by exactly amount and fee, proofs verify, JSON parses, and each
# bad input ends with a clear error and exit 1. Each failed check says what it expected.
set -u
GPUNET="$(realpath "$1")"
SRC="${GPUNET_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
devnet_workdir gpunet-cli-test
g() { "$GPUNET" "$@"; }

# --- 1. make demo's script ---
"$SRC/scripts/demo.sh" "$GPUNET" 3.25 >"$WORK/demo.out" 2>&1 || { fail "demo.sh exited $?"; cat "$WORK/demo.out" >&2; }
grep -q '^proof verified against state root [0-9a-f]\{64\} at height [0-9]* (block hash [0-9a-f]\{64\})' "$WORK/demo.out" \
  || fail "demo: no verified proof line"
grep -q '^demo OK' "$WORK/demo.out" || fail "demo: did not finish"
grep -q '^balance  1000003.25 GPN' "$WORK/demo.out" || fail "demo: bob's balance after is not 1000003.25 GPN"

# --- 2. a devnet of our own, JSON everywhere ---
export GPUNET_HOME="$WORK/home" GPUNET_PASSPHRASE=devnet
devnet_start --block-interval-ms 100
[ "$(json_field '["keys"][0]["name"]' <"$WORK/devnet.json")" = alice ] || fail "devnet: first key is not alice"
bob_addr="$(devnet_address bob)"

status="$(g -o json status)" || fail "status"
[ "$(echo "$status" | json_field '["chain_id"]')" = gpunet-devnet ] || fail "status chain_id"
g status | grep -q '^gas        1 ugpn per gas, at most [0-9]* gas a block$' || fail "status: no gas line"
g status | grep -Eq '^time       20[0-9]{2}-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9] UTC$' \
  || fail "status: time is not a UTC date"
bal() { g -o json query account "$1" | json_field '["balance_ugpn"]'; }
alice0="$(bal alice)"; bob0="$(bal "$bob_addr")"
send="$(g -o json send alice "$bob_addr" 2500000ugpn --fee 0.002)" || fail "send json"
[ "$(echo "$send" | json_field '["status"]')" = committed ] || fail "send: not committed: $send"
[ "$(echo "$send" | json_field '["code"]')" = 0 ] || fail "send: code not 0"
[ "$(echo "$send" | json_field '["fee_ugpn"]')" = 2000 ] || fail "send: fee_ugpn not 2000"
hash="$(echo "$send" | json_field '["tx_hash"]')"
height="$(echo "$send" | json_field '["height"]')"
alice1="$(bal alice)"; bob1="$(bal bob)"
[ "$((alice0 - alice1))" -eq 2502000 ] || fail "alice paid $((alice0 - alice1)) ugpn, expected 2500000 + 2000 fee"
[ "$((bob1 - bob0))" -eq 2500000 ] || fail "bob got $((bob1 - bob0)) ugpn, expected 2500000"
tx="$(g -o json query tx "$hash")" || fail "query tx"
[ "$(echo "$tx" | json_field '["tx"]["msgs"][0]["amount_ugpn"]')" = 2500000 ] || fail "query tx amount"
block="$(g -o json query block "$height")" || fail "query block"
echo "$block" | json_field '["txs"]' | grep -q "$hash" || fail "block $height does not list the tx"
g -o json query block latest >/dev/null || fail "query block latest"
proof="$(g -o json query account bob --prove)" || fail "query account --prove"
[ "$(echo "$proof" | json_field '["verified"]')" = True ] || fail "proof json: not verified"
g query account nobody-here-yet >/dev/null 2>&1 && fail "unknown key name accepted"
# An account that never received funds: a verified non-membership proof.
g keys add dave >/dev/null 2>&1 || fail "keys add dave"
g query account dave --prove | grep -q '^proof verified' || fail "non-membership proof of dave did not verify"
g send bob dave 1 --no-wait | grep -q 'Accepted into the mempool' || fail "send --no-wait"
# Without --fee the CLI pays what the node's simulation says the tx uses, plus 20%.
out="$(g send alice dave 1000ugpn)" || fail "send without --fee: $out"
echo "$out" | grep -q "the node's simulation + 20% gas" || fail "send without --fee did not pay the simulated gas: $out"
# A tx the simulation says would fail is not sent: the error names the code, no fee
# is charged and the nonce does not move (closing an order that does not exist).
acct() { g -o json query account alice | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d["balance_ugpn"], d["nonce"])'; }
acct_before="$(acct)"
expect_error "simulated failure" "would fail with unknown_order.*nothing was sent, no fee charged" g order close 999999 --from alice
[ "$(acct)" = "$acct_before" ] || fail "a tx the simulation refused changed alice's balance/nonce: $acct_before -> $(acct)"

# --- 3. bad input: clear error, exit 1 ---
expect_error "unknown key" "no such key" g send mallory bob 1
expect_error "unknown recipient" "no such key" g send alice mallory 1
expect_error "bad address" "not a valid gpn1 address" g send alice gpn1qqqqbad 1
expect_error "7 decimals" "7 decimals" g send alice bob 1.0000001
expect_error "negative" "negative" g send alice bob -5
expect_error "zero" "is 0" g send alice bob 0
expect_error "overflow" "larger than any balance" g send alice bob 99999999999999999999
carol_before="$(g -o json query account carol | json_field '["balance_ugpn"]')"
expect_error "insufficient funds" "insufficient_funds.*nothing was sent, no fee charged" g send carol bob 2000000
[ "$(g -o json query account carol | json_field '["balance_ugpn"]')" = "$carol_before" ] || fail "a refused send charged carol"
expect_error "fee too low (node rejection)" "rejected the transaction (fee_too_low, code 8)" g send alice bob 1 --fee 1ugpn
expect_error "wrong passphrase" "passphrase" env GPUNET_PASSPHRASE=wrong "$GPUNET" send alice bob 1
expect_error "bad tx hash" "not a tx hash" g query tx 1234
expect_error "unknown tx" "" g query tx "$(printf '%064d' 0)"
expect_error "bad height" "must be a block height" g query block -3
expect_error "node unreachable" "cannot reach the node" g --node http://127.0.0.1:1 status
expect_error "node unreachable (send)" "is \`gpunet node\` or \`gpunet devnet\` running" g --node http://127.0.0.1:1 send alice bob 1
g -o json --node http://127.0.0.1:1 status >"$WORK/out" 2>/dev/null
[ "$(json_field '["error"]["code"]' <"$WORK/out")" = unavailable ] || fail "json error for an unreachable node"
# A node whose answer breaks the RPC contract (a provider whose open_leases is a
# string): the client library says which field, and gpunet exits 1 with that
# message, never an uncaught exception. A stand-in node: python3's http.server.
cat >"$WORK/bad_node.py" <<'PYEOF'
import http.server, json, sys
a = sys.argv[2]
provider = {"owner": a, "operator": a, "tenant_api_uri": "https://x", "tls_fingerprint": "ab" * 32,
            "region": "eu", "payouts": [{"payee": a, "bp": 10000}],
            "policy": {"allow": [], "deny": []}, "active": True, "bond_ugpn": "1",
            "unbonding": [], "registered_ms": 1, "last_heartbeat_ms": 1,
            "last_heartbeat_height": 1, "heartbeat_deadline_ms": 0, "sites": 0, "machines": 0,
            "open_offers": 0, "open_leases": "none", "started_leases": 0}
body = json.dumps({"height": 1, "time_ms": 1, "provider": provider}).encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
PYEOF
$PY "$WORK/bad_node.py" "$WORK/bad_node.port" "$bob_addr" &
bad_node_pid=$!
for _ in $(seq 1 100); do [ -s "$WORK/bad_node.port" ] && break; sleep 0.05; done
bad_node="http://127.0.0.1:$(cat "$WORK/bad_node.port" 2>/dev/null)"
expect_error "malformed node answer" "answer to GET /market/provider/$bob_addr does not follow the RPC contract: field \"provider.open_leases\" is not a non-negative integer number" \
  g --node "$bad_node" provider show "$bob_addr"
grep -qi "terminate\|exception" "$WORK/err" && fail "malformed node answer: an exception escaped: $(cat "$WORK/err")"
g -o json --node "$bad_node" provider show "$bob_addr" >"$WORK/out" 2>/dev/null
[ "$?" -eq 1 ] || fail "malformed node answer (json): exit is not 1"
[ "$(json_field '["error"]["code"]' <"$WORK/out")" = corrupt ] || fail "malformed node answer: json error code is not corrupt"
kill "$bad_node_pid" 2>/dev/null; wait "$bad_node_pid" 2>/dev/null

g --help | grep -q devnet || fail "--help does not list devnet"
g send --help | grep -q 'gpunet send alice bob 12.5' || fail "send --help has no example"

# --- 4. clean stop ---
devnet_stop

checks_report "integration_cli: all checks passed"
