#!/usr/bin/env bash
# The tenant's `gpunet lease` verbs of the tenant API (docs/market-cli.md "Running a
# lease's workload") end to end: a devnet holds a provider whose tenant_api_uri and
# tls_fingerprint point at fake_tenant_api.py over real TLS (MODE http, $2) or at the
# real `gpunet provider api` with fake_tenant_api.py as its agent (MODE agent), a
# tenant leases from it, and the verbs read both from the ledger, pin the key, sign,
# upload in chunks (a cut connection resumes), follow logs and events without gaps or
# repeats, download outputs, delegate to a session key and revoke it; a wrong pin, a
# manifest the lease was not created with and a secret on the command line are
# refused with nothing sent.
set -u
GPUNET="$(realpath "$1")"
SRC="${GPUNET_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}"
EX="$SRC/docs/examples"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
devnet_workdir gpunet-tenant-cli-test
g() { setsid "$GPUNET" "$@" </dev/null; }
requests() { cat "$WORK/api/requests.jsonl" 2>/dev/null; }

# --- 1. a devnet, a TLS key, the fake tenant API ---
export GPUNET_HOME="$WORK/home" GPUNET_PASSPHRASE=devnet
devnet_start --block-interval-ms 100
# The real front (MODE agent) checks signatures in the chain's and provider's scope.
CHAIN_ID="$(g -o json status | json_field '["chain_id"]')"
PROVIDER_ADDR="$(devnet_address provider)"
export CHAIN_ID PROVIDER_ADDR
mkdir -p "$WORK/api"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null || fail "openssl req"
fp="$(openssl x509 -in "$WORK/cert.pem" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)"
# MODE http: the stand-in serves HTTPS itself; agent: the real tenant-facing process
# (`gpunet provider api`) serves, and the stand-in answers its broker frames.
MODE="${2:-http}"
if [ "$MODE" = agent ]; then api_args=(agent "$GPUNET"); else api_args=(http); fi
$PY "$(dirname "$0")/fake_tenant_api.py" "${api_args[@]}" "$WORK/cert.pem" "$WORK/key.pem" "$WORK/api" >"$WORK/api.port" 2>"$WORK/api.err" &
API_PID=$!
trap 'kill $API_PID 2>/dev/null; _devnet_cleanup' EXIT
for _ in $(seq 100); do [ -s "$WORK/api.port" ] && break; sleep 0.1; done
port="$(head -1 "$WORK/api.port")"
[ -n "$port" ] || { fail "the fake tenant API did not start"; cat "$WORK/api.err" >&2; exit 1; }

# --- 2. the provider publishes the API and its key; a tenant leases ---
sed -e "s|^tenant_api:.*|tenant_api: https://127.0.0.1:$port|" -e "s|^tls_fingerprint:.*|tls_fingerprint: $fp|" \
  "$EX/provider.yaml" >"$WORK/provider.yaml"
g provider register --config "$WORK/provider.yaml" --from provider --yes >/dev/null || fail "provider register"
prov="$(devnet_address provider)"
offer="$(g -o json offers | json_field '["offers"][0]["offer_id"]')"
printf 'version: 1\nenvironment: host\ncommand: [sh, -c, "echo hi"]\nsecrets: [HF_TOKEN, DB_PASSWORD]\n' >"$WORK/job.yaml"
printf 'version: 1\nenvironment: host\ncommand: [sh, -c, "echo other"]\n' >"$WORK/other.yaml"
g -o json lease create "$offer" --gpus 1 --deposit 10 --manifest "$WORK/job.yaml" --from tenant --yes >"$WORK/create.json" || fail "lease create"
lease="$(json_field '["ids"]["lease_id"]' <"$WORK/create.json")"
g lease started "$lease" --from operator >/dev/null || fail "lease started"
tenant_pub="$(g -o json keys show tenant | json_field '["public_key"]')"

# --- 3. environments (unsigned), status, submit ---
g -o json lease environments provider >"$WORK/env.json" || fail "lease environments"
[ "$(json_field '["environments"][1]["name"]' <"$WORK/env.json")" = "pytorch:2.3" ] || fail "environments: not the provider's list"
g lease environments "$prov" | grep -q "host  (sandbox)" || fail "environments: text"
grep -q '"target": "/environments", "signer": ""' "$WORK/api/requests.jsonl" || fail "environments was signed"
g -o json lease status "$lease" --from tenant >"$WORK/status.json" || fail "lease status"
[ "$(json_field '["workload"]["state"]' <"$WORK/status.json")" = running ] || fail "status: workload state"
requests | tail -1 | grep -q "\"signer\": \"$tenant_pub\"" || fail "status: not signed by the tenant key"
g lease status "$lease" --from tenant | grep -q "^  step       running$" || fail "status: text"
n0="$(requests | wc -l)"
expect_error "submit another manifest" "was created with manifest_hash.*it was created with .*job.yaml" \
  g lease submit "$lease" --manifest "$WORK/other.yaml" --from tenant
[ "$(requests | wc -l)" = "$n0" ] || fail "a refused submit sent a request"
g lease submit "$lease" --manifest "$WORK/job.yaml" --from tenant >"$WORK/submit.out" || fail "lease submit"
grep -q "gpunet lease secrets $lease HF_TOKEN=@FILE DB_PASSWORD=@FILE" "$WORK/submit.out" || { fail "submit: no hint to set the secrets"; cat "$WORK/submit.out" >&2; }
g manifest check "$WORK/job.yaml" --canonical >"$WORK/job.canonical" || fail "manifest check --canonical"
requests | tail -1 | $PY -c 'import json,sys; r=json.loads(sys.stdin.read()); sys.exit(r["body"] != open(sys.argv[1]).read())' "$WORK/job.canonical" \
  || fail "submit did not send the canonical JSON"

# --- 4. a wrong pin: the MITM warning, nothing sent ---
sed -i "s|^tls_fingerprint:.*|tls_fingerprint: $(printf '%064d' 0)|" "$WORK/provider.yaml"
g provider update --config "$WORK/provider.yaml" --from provider >/dev/null || fail "provider update"
n0="$(requests | wc -l)"
expect_error "wrong pin" "man-in-the-middle is possible" g lease status "$lease" --from tenant
[ "$(requests | wc -l)" = "$n0" ] || fail "a request went to an unpinned key"
sed -i "s|^tls_fingerprint:.*|tls_fingerprint: $fp|" "$WORK/provider.yaml"
g provider update --config "$WORK/provider.yaml" --from provider >/dev/null || fail "provider update back"

# --- 5. secrets: from a file, the environment, never argv ---
printf 's3cret\n' >"$WORK/hf"
expect_error "secret in argv" "never goes on the command line" g lease secrets "$lease" HF_TOKEN=s3cret --from tenant
expect_error "secret to prompt without a terminal" "no terminal" g lease secrets "$lease" DB_PASSWORD --from tenant
DB_PASSWORD='p@ss w"d' g lease secrets "$lease" "HF_TOKEN=@$WORK/hf" --from-env DB_PASSWORD --from tenant >"$WORK/secrets.out" || fail "lease secrets"
grep -q "every secret is set" "$WORK/secrets.out" || fail "secrets: not said that all are set"
requests | tail -1 | grep -qF '"body": "{\"DB_PASSWORD\":\"p@ss w\\\"d\",\"HF_TOKEN\":\"s3cret\"}"' || { fail "secrets body"; requests | tail -1 >&2; }

# --- 6. upload: a folder, two chunks for the big file, the second cut once ---
mkdir -p "$WORK/data/sub"
head -c $((8 * 1024 * 1024 + 100000)) /dev/urandom >"$WORK/data/big.bin"
printf 'small' >"$WORK/data/sub/a b.txt"
: >"$WORK/data/empty"
echo $((8 * 1024 * 1024)) >"$WORK/api/drop_put_at"
g lease upload "$lease" "$WORK/data" in --from tenant >"$WORK/up.out" 2>"$WORK/up.err" || { fail "lease upload"; cat "$WORK/up.err" >&2; }
grep -q "asking where to resume" "$WORK/up.err" || fail "upload: the cut chunk was not resumed"
$PY - "$WORK/api/files.json" "$WORK/data" <<'PY' || fail "upload: the provider's bytes differ"
import hashlib, json, sys
got = json.load(open(sys.argv[1]))
want = {"in/big.bin": "big.bin", "in/sub/a b.txt": "sub/a b.txt", "in/empty": "empty"}
for remote, local in want.items():
    if got.get(remote) != hashlib.sha256(open(sys.argv[2] + "/" + local, "rb").read()).hexdigest():
        sys.exit("%s differs" % remote)
PY
requests | grep -q '"target": "/leases/'"$lease"'/files/in/sub/a%20b.txt?offset=0"' || fail "upload: the name was not percent-encoded"
n0="$(requests | grep -c '"method": "PUT"')"
g lease upload "$lease" "$WORK/data" in --from tenant 2>"$WORK/up2.err" >/dev/null || fail "upload again"
[ "$(requests | grep -c '"method": "PUT"')" = "$n0" ] || fail "upload again sent chunks the provider holds"
grep -q "already there" "$WORK/up2.err" || fail "upload again: not said"
ln -s /etc/passwd "$WORK/data/link"
expect_error "upload a link" "symbolic link" g lease upload "$lease" "$WORK/data" in --from tenant

# --- 7. logs and events: paged, followed, each byte and event once ---
g lease logs "$lease" --from tenant >"$WORK/logs.out" || fail "lease logs"
$PY -c 'import sys; sys.exit(open(sys.argv[1],"rb").read() != b"".join(b"line %d\n" % i for i in range(1, 2001)))' "$WORK/logs.out" || fail "logs: not every line once"
[ "$(g lease logs "$lease" --stderr -f --from tenant)" = warn ] || fail "logs --stderr -f"
g -o json lease events "$lease" --from tenant >"$WORK/events.json" || fail "lease events"
[ "$(json_field '["events"].__len__()' <"$WORK/events.json")" = 4 ] || fail "events: not all 4"
g lease events "$lease" -f --from tenant >"$WORK/events.out" || fail "lease events -f"
[ "$(wc -l <"$WORK/events.out")" = 4 ] && grep -q "#4  lease_closed" "$WORK/events.out" || { fail "events -f: not each event once, ending at the close"; cat "$WORK/events.out" >&2; }

# --- 8. outputs: list, one file, all ---
g lease outputs "$lease" --from tenant | grep -q "file  3  result.txt" || fail "outputs list"
(cd "$WORK" && g lease outputs "$lease" run/model.bin --from tenant >/dev/null) || fail "outputs PATH"
$PY -c 'import sys; sys.exit(open(sys.argv[1],"rb").read() != bytes(range(256)) * 40000)' "$WORK/model.bin" || fail "outputs PATH: bytes differ"
g lease outputs "$lease" -o "$WORK/results" --from tenant >/dev/null 2>"$WORK/outputs.err" || fail "outputs -o DIR"
grep -q "skipped escape (a symlink)" "$WORK/outputs.err" || fail "outputs -o DIR: the symlink was not reported"
! grep -q "skipped run" "$WORK/outputs.err" || fail "outputs -o DIR: a directory of the tree was reported as skipped"
[ "$(cat "$WORK/results/result.txt")" = 42 ] && [ -f "$WORK/results/run/model.bin" ] && [ ! -e "$WORK/results/run/model.bin.part" ] || fail "outputs -o DIR: files"

# --- 9. a session key: no passphrase afterwards; revoked ---
expect_error "no signer" "gpunet lease grant $lease --session-key" env -u GPUNET_PASSPHRASE setsid "$GPUNET" lease status "$lease"
g -o json lease grant "$lease" --session-key laptop --expires 2h --from tenant >"$WORK/grant.json" || fail "lease grant"
grant_id="$(json_field '["grant_id"]' <"$WORK/grant.json")"
session_pub="$(json_field '["public_key"]' <"$WORK/grant.json")"
[ "$(stat -c %a "$GPUNET_HOME/keys/sessions/laptop.key")" = 600 ] || fail "session key file not 0600"
env -u GPUNET_PASSPHRASE setsid "$GPUNET" lease status "$lease" </dev/null >/dev/null || fail "status with the session key"
requests | tail -1 | grep -q "\"signer\": \"$session_pub\", \"grant\": \"[0-9a-f]" || fail "not signed by the session key with its grant"
g -o json lease revoke "$lease" "$grant_id" --from tenant >"$WORK/revoke.json" || fail "lease revoke"
[ "$(json_field '["revoked"]' <"$WORK/revoke.json")" = "$grant_id" ] || fail "revoke: answer"
[ ! -e "$GPUNET_HOME/keys/sessions/laptop.lease-$lease.grant" ] || fail "revoked grant still stored"
expect_error "revoke unknown" "no grant" g lease revoke "$lease" "$grant_id" --from tenant

kill "$API_PID" 2>/dev/null
devnet_stop
checks_report "integration_tenant_cli ($MODE): all checks passed"
