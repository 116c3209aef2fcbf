#!/usr/bin/env bash
# provider init -> apply --dry-run (nothing sent) -> apply -> apply again ("nothing
# to do") -> a new price -> apply (offer replaced) -> provider status, through the
# real CLI on a devnet, with balances checked to the ugpn. Then the refusals: an
# existing home, a missing one, a passphrase file others can read.
set -u
GPUNET="$(realpath "$1")"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
devnet_workdir gpunet-provider-setup
# g: the CLI with no controlling terminal, so nothing can be asked interactively.
g() { setsid "$GPUNET" "$@" </dev/null; }
bal() { g -o json query account "$1" | json_field '["balance_ugpn"]'; }

export GPUNET_HOME="$WORK/wallet" GPUNET_PASSPHRASE=devnet
devnet_start --block-interval-ms 100
PH="$WORK/provider-home"
printf 'operator-secret\n' >"$WORK/op.pass"
chmod 600 "$WORK/op.pass"

# --- 1. init: a home with provider.yaml, an operator key, a TLS key ---
g -o json provider init --home "$PH" --owner provider --passphrase-file "$WORK/op.pass" \
  --host 127.0.0.1 --region eu-west --bond 100 >"$WORK/init.json" || fail "provider init"
op="$(json_field '["operator"]["address"]' <"$WORK/init.json")"
fp="$(json_field '["tls_fingerprint"]' <"$WORK/init.json")"
grep -q "^tls_fingerprint: $fp" "$PH/provider.yaml" || fail "init: provider.yaml lacks the fingerprint $fp"
grep -q "^operator: $op" "$PH/provider.yaml" || fail "init: provider.yaml lacks the operator $op"
[ "$(stat -c %a "$PH/tls/key.pem")" = 600 ] || fail "init: tls/key.pem is not 0600"
[ -f "$PH/keys/operator.json" ] || fail "init: no operator key in keys/"
[ ! -e "$WORK/wallet/keys/operator-owner.json" ] || fail "init made an owner key"
cert_fp="$(openssl x509 -in "$PH/tls/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)"
[ "$cert_fp" = "$fp" ] || fail "init: fingerprint $fp is not the SHA-256 of the cert's SPKI ($cert_fp)"
expect_error "init over an existing home" "already a provider home" \
  g provider init --home "$PH" --passphrase-file "$WORK/op.pass"
chmod 644 "$WORK/op.pass"
expect_error "passphrase file others can read" "chmod 600" \
  g provider init --home "$WORK/other" --passphrase-file "$WORK/op.pass"
chmod 600 "$WORK/op.pass"
expect_error "apply without a home" "provider init" g provider apply --home "$WORK/none" --owner provider

# An offer for the machine init found (this host has no NVIDIA GPU: model DEV).
model="$(sed -n 's/^ *gpu: \([^ ]*\).*/\1/p' "$PH/provider.yaml" | head -1)"
printf 'offers:\n  - gpu: %s\n    price: 2.5\n' "$model" >>"$PH/provider.yaml"
g send provider "$op" 5 >/dev/null || fail "funding the operator"

# --- 2. apply --dry-run: the plan and the money, nothing sent ---
p0="$(bal provider)"; o0="$(bal "$op")"
g -o json provider apply --home "$PH" --owner provider --dry-run >"$WORK/dry.json" || fail "apply --dry-run"
[ "$(json_field '["dry_run"]' <"$WORK/dry.json")" = True ] || fail "dry run not marked"
[ "$(json_field '["registered"]' <"$WORK/dry.json")" = False ] || fail "dry run: provider already registered?"
[ "$(json_field '["bond_ugpn"]' <"$WORK/dry.json")" = 100000000 ] || fail "dry run: bond not 100 GPN"
grep -q '+ register provider' "$WORK/dry.json" || fail "dry run: no register line"
[ "$(json_field '["sent"].__len__()' <"$WORK/dry.json")" = 0 ] || fail "dry run sent txs"
[ "$(bal provider)" = "$p0" ] && [ "$(bal "$op")" = "$o0" ] || fail "dry run moved money"
g provider apply --home "$PH" --owner provider --dry-run >"$WORK/dry.txt" || fail "apply --dry-run (text)"
grep -q "dry run: nothing was signed or sent" "$WORK/dry.txt" || fail "dry run text lacks its last line"

# --- 3. apply: registered, bond + owner fees from the owner, the rest from the operator ---
g -o json provider apply --home "$PH" --owner provider --yes >"$WORK/apply.json" || fail "apply"
owner_fees="$($PY -c 'import json,sys; print(sum(int(t["fee_ugpn"]) for t in json.load(sys.stdin)["sent"] if t["signer"]=="owner"))' <"$WORK/apply.json")"
op_fees="$($PY -c 'import json,sys; print(sum(int(t["fee_ugpn"]) for t in json.load(sys.stdin)["sent"] if t["signer"]=="operator"))' <"$WORK/apply.json")"
[ "$(( p0 - $(bal provider) ))" -eq $(( 100000000 + owner_fees )) ] || fail "apply: owner paid $(( p0 - $(bal provider) )), expected bond + $owner_fees"
[ "$(( o0 - $(bal "$op") ))" -eq "$op_fees" ] || fail "apply: operator paid $(( o0 - $(bal "$op") )), expected $op_fees"
g -o json provider show provider >"$WORK/show.json" || fail "provider show"
[ "$(json_field '["provider"]["operator"]' <"$WORK/show.json")" = "$op" ] || fail "ledger operator is not init's key"
[ "$(json_field '["provider"]["tls_fingerprint"]' <"$WORK/show.json")" = "$fp" ] || fail "ledger fingerprint differs"
offer1="$(g -o json offers | json_field '["offers"][0]["offer_id"]')"

# --- 4. apply again: nothing to do, nothing sent ---
p1="$(bal provider)"; o1="$(bal "$op")"
g provider apply --home "$PH" --owner provider --yes >"$WORK/again.txt" || fail "apply again"
grep -q "nothing to do" "$WORK/again.txt" || fail "second apply is not 'nothing to do'"
[ "$(bal provider)" = "$p1" ] && [ "$(bal "$op")" = "$o1" ] || fail "second apply moved money"
# Without --owner: the provider whose operator is provider.yaml's.
[ "$(g -o json provider apply --home "$PH" --dry-run | json_field '["nothing_to_do"]')" = True ] || fail "apply without --owner"

# --- 5. a new price: the offer is closed and created anew, by the operator alone ---
sed -i 's/^    price: 2.5$/    price: 3/' "$PH/provider.yaml"
g -o json provider apply --home "$PH" --owner provider --yes >"$WORK/price.json" || fail "apply new price"
[ "$(json_field '["steps"].__len__()' <"$WORK/price.json")" = 2 ] || fail "price change: not close + create"
grep -q "replaces offer $offer1" "$WORK/price.json" || fail "price change: no 'replaces offer $offer1'"
[ "$(bal provider)" = "$p1" ] || fail "price change: the owner paid"
g -o json offers >"$WORK/offers.json" || fail "offers"
[ "$(json_field '["offers"].__len__()' <"$WORK/offers.json")" = 1 ] || fail "not exactly one open offer"
[ "$(json_field '["offers"][0]["price_ugpn_per_gpu_hour"]' <"$WORK/offers.json")" = 3000000 ] || fail "offer price not 3 GPN"
[ "$(json_field '["offers"][0]["offer_id"]' <"$WORK/offers.json")" != "$offer1" ] || fail "offer not replaced"

# --- 6. status: ledger side, daemon not running, then a fresh daemon status ---
g -o json provider status --home "$PH" >"$WORK/status.json" || fail "provider status"
[ "$(json_field '["registered"]' <"$WORK/status.json")" = True ] || fail "status: not registered"
[ "$(json_field '["bond_ugpn"]' <"$WORK/status.json")" = 100000000 ] || fail "status: bond"
[ "$(json_field '["daemon_running"]' <"$WORK/status.json")" = False ] || fail "status: daemon running?"
[ "$(json_field '["offers"][0]["price_ugpn_per_gpu_hour"]' <"$WORK/status.json")" = 3000000 ] || fail "status: offer"
[ "$(json_field '["operator"]["balance_ugpn"]' <"$WORK/status.json")" = "$(bal "$op")" ] || fail "status: operator balance"
[ "$(json_field '["operator"]["low_balance"]' <"$WORK/status.json")" = False ] || fail "status: 5 GPN flagged low"
g provider status --home "$PH" | grep -q "daemon not running" || fail "status text: daemon not running"
now_ms="$(( $(date +%s) * 1000 ))"
printf '{"updated_ms":%s,"mode":"declared","gpus":[{"uuid":"GPU-dev-0","model":"DEV","healthy":false,"problems":["xid 79"],"lease_id":0}],"leases":[]}\n' \
  "$now_ms" >"$PH/state/daemon-status.json"
g -o json provider status --home "$PH" >"$WORK/status2.json" || fail "status with a daemon"
[ "$(json_field '["daemon_running"]' <"$WORK/status2.json")" = True ] || fail "status: fresh daemon status not read"
g provider status --home "$PH" | grep -q "UNHEALTHY: xid 79" || fail "status text: unhealthy GPU not shown"

old_ms="$(( now_ms - 3600000 ))"
sed -i "s/\"updated_ms\":$now_ms/\"updated_ms\":$old_ms/" "$PH/state/daemon-status.json"
g provider status --home "$PH" | grep -q "daemon not running (its status is 1 h" || fail "status: an hour-old daemon status not called stale"

# --- 7. a lease on the offer: status lists it; apply leaves its machine alone ---
prov="$(json_field '["provider"]' <"$WORK/status.json")"
offer2="$(json_field '["offers"][0]["offer_id"]' <"$WORK/offers.json")"
GPUNET_PASSPHRASE=operator-secret g --home "$PH" provider heartbeat --from operator --provider "$prov" >/dev/null || fail "operator heartbeat"
g -o json lease create "$offer2" --gpus 1 --deposit 10 --manifest-hash "$(printf '%064d' 0)" --from tenant --yes >"$WORK/lease.json" || fail "lease create"
tenant="$(g -o json keys show tenant | json_field '["address"]')"
g -o json provider status --home "$PH" >"$WORK/status3.json" || fail "status with a lease"
[ "$(json_field '["leases"].__len__()' <"$WORK/status3.json")" = 1 ] || fail "status: the lease is not listed"
[ "$(json_field '["leases"][0]["tenant"]' <"$WORK/status3.json")" = "$tenant" ] || fail "status: lease tenant"
[ "$(json_field '["leases"][0]["state"]' <"$WORK/status3.json")" = reserved ] || fail "status: lease state"
sed -i 's/^        driver: "none"/        driver: "560.1"/' "$PH/provider.yaml"
g provider apply --home "$PH" --owner provider --yes >"$WORK/leased.txt" || fail "apply with a leased machine"
grep -q "! machine 1: 1 GPU(s) are leased" "$WORK/leased.txt" || fail "apply: leased machine not held back"
grep -q "nothing to do" "$WORK/leased.txt" || fail "apply: sent something for a leased machine"

# An operator with less than a day of heartbeat fees is warned about.
poor="$WORK/poor-home"
g -o json provider init --home "$poor" --passphrase-file "$WORK/op.pass" --host 127.0.0.1 >/dev/null || fail "second init"
g provider status --home "$poor" >"$WORK/poor.txt" || fail "status of an unregistered provider"
grep -q "not registered" "$WORK/poor.txt" || fail "status: unregistered provider not said"
grep -q "WARNING" "$WORK/poor.txt" || fail "status: no WARNING for an operator without funds"
printf 'offers:\n  - gpu: %s\n    price: 1\n' "$model" >>"$poor/provider.yaml"
a0="$(bal alice)"
expect_error "apply with an unfunded operator" "insufficient funds, nothing was sent" \
  g provider apply --home "$poor" --owner alice --yes --passphrase-file "$WORK/op.pass"
[ "$(bal alice)" = "$a0" ] || fail "apply with an unfunded operator moved the owner's money"
g -o json provider show alice >/dev/null 2>&1 && fail "apply with an unfunded operator registered alice"

devnet_stop
checks_report "integration_provider_setup: all checks passed"
