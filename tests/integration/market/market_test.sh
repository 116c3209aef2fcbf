#!/usr/bin/env bash
# The market end to end through `gpunet` on a devnet, as a provider and a tenant
# would drive it: JSON outputs parsed and amounts checked to the ugpn, then every
# bad input a user can type ends with a clear error and exit 1 (a tx included but
# failed names its code). Each failed check says what it expected.
set -u
GPUNET="$(realpath "$1")"
SRC="${GPUNET_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}"
EX="$SRC/docs/examples"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
devnet_workdir gpunet-market-test
# g: the CLI with no controlling terminal, so nothing can be asked interactively.
g() { setsid "$GPUNET" "$@" </dev/null; }
bal() { g -o json query account "$1" | json_field '["balance_ugpn"]'; }
rpc_status() { $PY - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
PY
}

# --- 1. devnet ---
export GPUNET_HOME="$WORK/home" GPUNET_PASSPHRASE=devnet
devnet_start --block-interval-ms 100
url="$DEVNET_URL"
# A devnet's genesis marks it a development chain (issue 17), and /status says so.
[ "$($PY -c "import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))['development'])" "$url/status")" = True ] || fail "/status: a devnet is not a development chain"
grep -q '"development": true' "$GPUNET_HOME/config/genesis.json" || fail "devnet genesis: no \"development\": true"
for k in provider operator investor tenant; do
  grep -q "\"$k\"" "$WORK/devnet.json" || fail "devnet does not fund key $k"
done

# --- 2. the provider registers: bond + fee leave the owner's balance exactly ---
p0="$(bal provider)"
g -o json provider register --config "$EX/provider.yaml" --from provider --yes >"$WORK/reg.json" || fail "provider register"
fee="$(json_field '["txs"][0]["fee_ugpn"]' <"$WORK/reg.json")"
[ "$(( p0 - $(bal provider) ))" -eq $(( 1000000000 + fee )) ] || fail "register: provider paid $(( p0 - $(bal provider) )), expected bond 1000000000 + fee $fee"
prov="$(json_field '["provider"]' <"$WORK/reg.json")"
g -o json provider show provider >"$WORK/show.json" || fail "provider show"
[ "$(json_field '["provider"]["machines"]' <"$WORK/show.json")" = 2 ] || fail "provider show: not 2 machines"
[ "$(json_field '["provider"]["bond_ugpn"]' <"$WORK/show.json")" = 1000000000 ] || fail "provider show: bond"
[ "$(json_field '["provider"]["payouts"].__len__()' <"$WORK/show.json")" = 2 ] || fail "provider show: 2 payees"
[ "$(json_field '["provider"]["machine_list"][1]["cuda_version"]' <"$WORK/show.json")" = 12040 ] || fail "machine cuda 12.4 stored as 12040"
g provider list | grep -q "$prov" || fail "provider list does not show $prov"
expect_error "register twice" "provider_exists" g provider register --config "$EX/provider.yaml" --from provider --yes
expect_error "attest --expires 1.5d" "whole days" g attest tier=3 --provider provider --from alice --expires 1.5d
expect_error "attest --expires abcd" "whole days" g attest tier=3 --provider provider --from alice --expires abcdd

# --- 3. offers and the filter ---
g -o json offers >"$WORK/offers.json" || fail "offers"
[ "$(json_field '["offers"].__len__()' <"$WORK/offers.json")" = 1 ] || fail "offers: expected 1"
[ "$(json_field '["offers"][0]["price_ugpn_per_gpu_hour"]' <"$WORK/offers.json")" = 2500000 ] || fail "offer price not 2500000 ugpn"
[ "$(json_field '["offers"][0]["free_gpus"]' <"$WORK/offers.json")" = 16 ] || fail "offer free GPUs not 16"
[ "$(json_field '["offers"][0]["max_hours"]' <"$WORK/offers.json")" = 720 ] || fail "offer max_hours not 720 (provider.yaml)"
[ "$(json_field '["offers"][0]["min_hours"]' <"$WORK/offers.json")" = 1 ] || fail "offer min_hours not 1"
g offers | grep -q "1\.\.720" || { g offers; fail "offers: no HOURS column 1..720"; }
offer="$(json_field '["offers"][0]["offer_id"]' <"$WORK/offers.json")"
[ "$(g -o json offers 'gpu=h100 gpus>=8 price<=2.5 region=eu fabric=infiniband cuda>=12.1' | json_field '["offers"].__len__()')" = 1 ] || fail "the issue's filter does not match"
[ "$(g -o json offers 'price<2.5' | json_field '["offers"].__len__()')" = 0 ] || fail "price<2.5 matched a 2.5 offer"
[ "$(g -o json offers gpu=A100 | json_field '["offers"].__len__()')" = 0 ] || fail "gpu=A100 matched"
[ "$(g -o json offers 'cuda>=12.5' | json_field '["offers"].__len__()')" = 0 ] || fail "cuda>=12.5 matched 12.4"
g offers 'gpu=H100' | grep -q '^OFFER ' || fail "offers table header"
expect_error "bad filter key" "unknown key \"colour\"" g offers colour=red
expect_error "bad filter op" "takes only = or !=" g offers 'region>eu'
expect_error "bad filter price" "at most 6" g offers 'price<=1.0000001'

# --- 4. order, bid, accept, start, withdraw, deposit, close ---
t0="$(bal tenant)"
g -o json order create "$EX/order.yaml" --from tenant --yes >"$WORK/order.json" || fail "order create"
order="$(json_field '["ids"]["order_id"]' <"$WORK/order.json")"
ofee="$(json_field '["txs"][0]["fee_ugpn"]' <"$WORK/order.json")"
[ "$(( t0 - $(bal tenant) ))" -eq $(( 10000000 + ofee )) ] || fail "order: tenant paid $(( t0 - $(bal tenant) )), expected deposit 10000000 + fee $ofee"
[ "$(g -o json order show "$order" | json_field '["order"]["state"]')" = open ] || fail "order not open"
g order list --tenant tenant | grep -q "^order $order " || fail "order list --tenant"
g -o json bid "$order" --price 2.4 --machines 1 --provider provider --from operator >"$WORK/bid.json" || fail "bid"
bid="$(json_field '["ids"]["bid_id"]' <"$WORK/bid.json")"
[ "$(g -o json bids "$order" | json_field '["bids"][0]["price_ugpn_per_gpu_hour"]')" = 2400000 ] || fail "bids: price"
expect_error "duplicate bid" "duplicate_bid" g bid "$order" --price 2.3 --machines 2 --provider provider --from operator
expect_error "bid by a stranger" "not_operator" g bid "$order" --price 2.3 --machines 1 --provider provider --from tenant
# A withdrawn bid (issue 17) is gone: it cannot be accepted; the provider bids again.
expect_error "withdraw by a stranger" "not_operator" g bid withdraw "$bid" --from tenant
g bid withdraw "$bid" --from operator | grep -q "^bid $bid on order $order withdrawn" || fail "bid withdraw"
[ "$(g -o json bids "$order" | json_field '["bids"].__len__()')" = 0 ] || fail "a withdrawn bid is still listed"
expect_error "accept a withdrawn bid" "no bid $bid" g lease accept "$bid" --from tenant --yes
expect_error "withdraw twice" "unknown_bid" g bid withdraw "$bid" --from operator
expect_error "bid without a price" "give ORDER, --price, --machines and --from" g bid "$order" --machines 1 --from operator
g -o json bid "$order" --price 2.4 --machines 1 --provider provider --from operator >"$WORK/bid.json" || fail "bid again"
bid="$(json_field '["ids"]["bid_id"]' <"$WORK/bid.json")"
expect_error "accept without --yes and no terminal" "add --yes" g lease accept "$bid" --from tenant
expect_error "accept by another key" "not_party.*nothing was sent" g lease accept "$bid" --from investor --yes
g -o json lease accept "$bid" --from tenant --yes >"$WORK/accept.json" || fail "lease accept"
lease="$(json_field '["ids"]["lease_id"]' <"$WORK/accept.json")"
[ "$(g -o json lease show "$lease" | json_field '["lease"]["state"]')" = reserved ] || fail "lease not reserved"
expect_error "start by the tenant" "not_operator.*nothing was sent" g lease started "$lease" --from tenant
g -o json lease started "$lease" --from operator >/dev/null || fail "lease started"
[ "$(g -o json lease show "$lease" | json_field '["lease"]["state"]')" = started ] || fail "lease not started"
sleep 1.5
g provider heartbeat --from operator --provider provider >/dev/null || fail "heartbeat"
expect_error "withdraw by the tenant" "not_operator.*nothing was sent" g lease withdraw "$lease" --from tenant
i0="$(bal investor)"
g -o json lease withdraw "$lease" --from operator >"$WORK/withdraw.json" || fail "withdraw"
paid1="$(json_field '["lease"]["paid_ugpn"]' <"$WORK/withdraw.json")"
[ "$paid1" -gt 0 ] || fail "withdraw paid nothing after 1.5 s"
inv_got=$(( $(bal investor) - i0 ))
[ "$inv_got" -eq $(( paid1 * 2000 / 10000 )) ] || fail "investor got $inv_got of $paid1, expected floor 20%"
esc0="$(g -o json lease show "$lease" | json_field '["lease"]["escrow_ugpn"]')"
g -o json lease deposit "$lease" 2.5 --from tenant --yes >"$WORK/dep.json" || fail "lease deposit"
[ "$(json_field '["lease"]["escrow_ugpn"]' <"$WORK/dep.json")" -eq $(( esc0 + 2500000 )) ] || fail "deposit did not add exactly 2500000 ugpn"
expect_error "deposit without --yes" "add --yes" g lease deposit "$lease" 1 --from tenant
g -o json lease close "$lease" --from tenant >"$WORK/close.json" || fail "lease close"
for f in state deposited_ugpn paid_ugpn refunded_ugpn escrow_ugpn; do eval "L_$f=\"\$(json_field '[\"lease\"][\"$f\"]' <\"$WORK/close.json\")\""; done
[ "$L_state" = closed ] || fail "lease not closed"
[ "$L_escrow_ugpn" = 0 ] || fail "escrow left: $L_escrow_ugpn"
[ $(( L_paid_ugpn + L_refunded_ugpn )) -eq "$L_deposited_ugpn" ] || fail "paid + refunded != deposited"
[ "$L_deposited_ugpn" = 12500000 ] || fail "deposited $L_deposited_ugpn, expected 12500000"
g lease list --tenant tenant --all | grep -q "^lease $lease " || fail "lease list --all"
[ "$(g -o json lease list --provider provider | json_field '["leases"].__len__()')" = 0 ] || fail "closed lease still listed as open"
expect_error "close twice" "lease_state" g lease close "$lease" --from tenant

# --- 5. rent now from the offer; the provider closes ---
# A hand-written JSON manifest (any key order, whitespace, a non-ASCII character):
# the ledger gets the hash of its canonical form (docs/manifest.md), which Python's
# json.dumps writes byte for byte once the defaults are filled in.
printf '{\n  "version": 1, "environment": "host",\n  "command": ["sh", "-c", "echo h\xc3\xa9llo \\"w\\""],\n  "env": {"B": "2", "A": "1"}, "network": "egress"\n}\n' >"$WORK/job.json"
g -o json lease create "$offer" --gpus 4 --deposit 10 --manifest "$WORK/job.json" --from tenant --yes >"$WORK/create.json" || fail "lease create"
lease2="$(json_field '["ids"]["lease_id"]' <"$WORK/create.json")"
# A list a page at a time: the hint under a full page names the cursor for the next.
g lease list --tenant tenant --all --limit 1 >"$WORK/page1" || fail "lease list --limit 1"
{ grep -q "^lease $lease " "$WORK/page1" && grep -q "add --after $lease for the next page" "$WORK/page1"; } \
  || { fail "lease list --limit 1: not lease $lease with a hint for the next page"; cat "$WORK/page1" >&2; }
g lease list --tenant tenant --all --after "$lease" | grep -q "^lease $lease2 " || fail "lease list --after $lease"
g lease list --tenant tenant --all --after 0 | grep -q "^lease $lease " || fail "lease list --after 0: not from the start"
expect_error "--after not a number" "must be a number 0, 1, 2" g order list --after +5
g -o json lease show "$lease2" >"$WORK/l2.json"
[ "$(json_field '["lease"]["gpus"]' <"$WORK/l2.json")" = 4 ] || fail "lease create: 4 GPUs"
[ "$(json_field '["lease"]["rate_ugpn_per_hour"]' <"$WORK/l2.json")" = 10000000 ] || fail "lease create: rate 4 x 2.5 GPN"
# The offer's max_hours (720, provider.yaml) rides on the lease: 7,200 GPN in all at 10 GPN/h.
[ "$(json_field '["lease"]["max_hours"]' <"$WORK/l2.json")" = 720 ] || fail "lease create: max_hours 720 from the offer"
g lease show "$lease2" | grep -q "max hours   720" || fail "lease show: no max hours line"
expect_error "deposit past max_hours" "deposit_over_max.*can take at most 7190000000 ugpn more" g lease deposit "$lease2" 7191 --from tenant --yes
expected_hash="$($PY -c '
import hashlib, json, sys
m = {"command": [], "env": {}, "network": "none", "outputs_dir": "/outputs", "ports": [],
     "resources": {}, "secrets": [], "stop_grace_ms": 10000, "workdir": "/work"}
m.update(json.load(open(sys.argv[1], encoding="utf-8")))
c = json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
print(hashlib.blake2b(c, digest_size=32).hexdigest())' "$WORK/job.json")"
[ "$(json_field '["lease"]["manifest_hash"]' <"$WORK/l2.json")" = "$expected_hash" ] || fail "manifest hash is not BLAKE2b-256 of job.json's canonical form"
[ "$(g -o json manifest check "$WORK/job.json" | json_field '["manifest_hash"]')" = "$expected_hash" ] || fail "manifest check: not the lease's hash"
g manifest check "$WORK/job.json" --canonical >"$WORK/job.canonical" || fail "manifest check --canonical"
[ "$($PY -c 'import hashlib,sys; print(hashlib.blake2b(open(sys.argv[1],"rb").read(), digest_size=32).hexdigest())' "$WORK/job.canonical")" = "$expected_hash" ] || fail "manifest check --canonical: not the hashed bytes"
expect_error "deposit under one hour" "under one hour" g lease create "$offer" --gpus 4 --deposit 9.999999 --manifest "$EX/manifest.yaml" --from tenant --yes
printf 'version: 1\nenvironment: host\nimage: x\n' >"$WORK/bad-job.yaml"
expect_error "manifest with an unknown field" "bad-job.yaml: image: unknown field" g lease create "$offer" --gpus 4 --deposit 10 --manifest "$WORK/bad-job.yaml" --from tenant --yes
expect_error "more GPUs than a machine has" "no_capacity" g lease create "$offer" --gpus 9 --deposit 100 --manifest-hash "$expected_hash" --from tenant --yes
expect_error "deregister with an open lease" "open_leases" g provider deregister --from provider --yes
# A provider closing a reservation pays the penalty (10 GPN: one hour at 10 GPN/h),
# and the CLI says so before it sends.
g lease close "$lease2" --from operator >"$WORK/close2.out" || fail "provider closes lease 2"
grep -q "pays the tenant a penalty of 10 GPN" "$WORK/close2.out" \
  || { fail "lease close by the provider does not state the penalty"; cat "$WORK/close2.out" >&2; }
[ "$(g -o json lease show "$lease2" | json_field '["lease"]["penalty_ugpn"]')" = 10000000 ] || fail "lease 2: no 10 GPN penalty"

# --- 5b. the bond, offers closing, deregistration ---
g -o json provider bond 10 --from provider --yes >/dev/null || fail "provider bond"
g -o json provider unbond 5 --from provider >/dev/null || fail "provider unbond"
[ "$(g -o json provider show provider | json_field '["provider"]["bond_ugpn"]')" = 995000000 ] || fail "bond after the 10 GPN penalty, +10 -5 GPN is not 995 GPN"
expect_error "claim before the unbonding delay" "nothing_to_claim.*nothing was sent" g provider claim --from provider
# With --fee nothing is simulated: the tx is sent, included, fails and pays its fee.
expect_error "close an offer of another provider" "FAILED" g offer close "$offer" --from tenant --provider provider --fee 0.01
g offer close "$offer" --from operator --provider provider >/dev/null || fail "offer close"
[ "$(g -o json offers | json_field '["offers"].__len__()')" = 0 ] || fail "a closed offer is still listed"
expect_error "lease from a closed offer" "offer_closed" g lease create "$offer" --gpus 1 --deposit 10 --manifest-hash "$expected_hash" --from tenant --yes

# --- 5c. an order's provider requirements (issue 14): an excluded provider cannot bid ---
cp "$EX/manifest.yaml" "$WORK/manifest.yaml"
{ cat "$EX/order.yaml"; printf 'providers:\n  exclude: [provider]\n'; } >"$WORK/order-excl.yaml"
g -o json order create "$WORK/order-excl.yaml" --from tenant --yes >"$WORK/order-excl.json" || fail "order create with providers.exclude"
order_x="$(json_field '["ids"]["order_id"]' <"$WORK/order-excl.json")"
[ "$(g -o json order show "$order_x" | json_field '["order"]["providers"]["excluded"][0]')" = "$prov" ] || fail "order show: excluded provider"
expect_error "bid by an excluded provider" "provider_unqualified" g bid "$order_x" --price 2.4 --machines 1 --provider provider --from operator
g order close "$order_x" --from tenant >/dev/null || fail "order close"

# --- 6. unknown ids, bad YAML, bad names ---
expect_error "unknown lease" "no lease 999" g lease show 999
expect_error "unknown order" "no order 999" g order show 999
expect_error "unknown bids order" "no order 999" g bids 999
expect_error "unknown bid" "no bid 999" g lease accept 999 --from tenant --yes
expect_error "unknown offer" "no offer 999" g lease create 999 --gpus 1 --deposit 10 --manifest-hash "$expected_hash" --from tenant --yes
expect_error "bad id" "must be a number" g lease show abc
expect_error "unknown provider" "no provider" g provider show investor
expect_error "unknown signer" "no key \"mallory\"" g order create "$EX/order.yaml" --from mallory --yes
printf 'operator: operator\nsites: [\n' >"$WORK/broken.yaml"
expect_error "malformed yaml" "broken.yaml:" g provider register --config "$WORK/broken.yaml" --from provider --yes
sed 's/gpus: 8/gpus: eight/' "$EX/provider.yaml" >"$WORK/eight.yaml"
expect_error "bad number in yaml" "sites\[0\].machines\[0\].gpus: \"eight\" is not a whole number" g provider update --config "$WORK/eight.yaml" --from provider
sed 's/share: 20%/share: 10%/' "$EX/provider.yaml" >"$WORK/splits.yaml"
expect_error "splits not 100%" "add up to 90.00%" g provider update --config "$WORK/splits.yaml" --from provider
cp "$EX/manifest.yaml" "$WORK/manifest.yaml"; sed 's/^deposit: 10/deposit: 5/' "$EX/order.yaml" >"$WORK/order-low.yaml"
expect_error "order deposit under one hour" "under one hour" g order create "$WORK/order-low.yaml" --from tenant --yes
sed 's/^manifest: manifest.yaml/manifest: missing.yaml/' "$EX/order.yaml" >"$WORK/order-nomanifest.yaml"
expect_error "missing manifest" "manifest: the manifest .*missing.yaml does not exist" g order create "$WORK/order-nomanifest.yaml" --from tenant --yes
expect_error "order without --yes" "add --yes" g order create "$EX/order.yaml" --from tenant

# --- 7. the RPC's own refusals ---
[ "$(rpc_status "$url/market/lease/abc")" = 400 ] || fail "GET /market/lease/abc: not 400"
[ "$(rpc_status "$url/market/lease/999")" = 404 ] || fail "GET /market/lease/999: not 404"
[ "$(rpc_status "$url/market/leases")" = 400 ] || fail "GET /market/leases without tenant/provider: not 400"
[ "$(rpc_status "$url/market/offers?limit=0")" = 400 ] || fail "limit=0: not 400"
[ "$(rpc_status "$url/market/offers?limit=1001")" = 400 ] || fail "limit=1001 (over the cap): not 400"
[ "$(rpc_status "$url/market/orders?after=x")" = 400 ] || fail "after=x: not 400"
[ "$(rpc_status "$url/market/provider/gpn1bad")" = 400 ] || fail "bad provider address: not 400"

# --- 8. conservation after all of it ---
g -o json query conservation >"$WORK/cons.json" || fail "query conservation"
[ "$(json_field '["holds"]' <"$WORK/cons.json")" = True ] || fail "conservation does not hold"
[ "$(json_field '["escrow_ugpn"]' <"$WORK/cons.json")" = 0 ] || fail "escrow left with every lease closed and no open order"
[ $(( $(json_field '["bonds_ugpn"]' <"$WORK/cons.json") + $(json_field '["unbonding_ugpn"]' <"$WORK/cons.json") )) -eq 1000000000 ] \
  || fail "bonds + unbonding are not the 1010 GPN bonded less lease 2's 10 GPN penalty"
g provider deregister --from provider --yes >/dev/null || fail "deregister"
g provider show provider | grep -q '(deregistered)' || fail "provider show does not say deregistered"
[ "$(g -o json query conservation | json_field '["holds"]')" = True ] || fail "conservation after deregistration"

devnet_stop
checks_report "integration_market: all checks passed"
