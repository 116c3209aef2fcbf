#!/usr/bin/env bash
# Issue 17 items 8 and 9: the bad-input list sent to a running `gpunet provider run`
# over real TLS (docs/tenant-api.md "What is refused"). A development devnet, the
# daemon with two declared GPUs, lease A running a workload that plants symlinks in
# its /work and /outputs (it runs as its own uid) and prints a 3 MiB line, lease B
# started but given no manifest. bad_input.py then sends every case: unsigned, badly
# signed, replayed, stale and future requests; a stranger's key; an expired and a
# revoked delegation; a manifest over the limits, not canonical or with another hash;
# upload names with "..", absolute, encoded separators, through the planted symlinks,
# and past the disk quota; output paths that escape; the huge line and a huge
# header; hundreds of connections; long-polls past the per-lease cap. Each case
# checks the status, that the message says what is wrong, that nothing changed, and
# that a well-formed request right after works. Last, the ledger's fingerprint of
# the provider changes while the daemon serves the old key: `gpunet lease status`
# refuses and says a man-in-the-middle is possible. Needs root (the daemon).
#   tenant_api_bad_input_test.sh GPUNET REQUEST_TOOL
set -u
HERE="$(dirname "$(realpath "$0")")"
# shellcheck source=tenant_api_daemon.sh
source "$HERE/tenant_api_daemon.sh"
tenant_api_test_start gpunet-tenant-api-bad-input-test "$@"

# --- a development devnet, the provider with two declared GPUs, the daemon ---
tenant_api_daemon_up "metrics_listen: 127.0.0.1:$(free_port)"

# --- lease A: a workload that plants links to a host folder it cannot see ---
VICTIM="$WORK/victim"
mkdir -m 755 "$VICTIM" && echo TOPSECRET >"$VICTIM/secret.txt" && chmod 644 "$VICTIM/secret.txt"
cat >"$WORK/job_a.yaml" <<YAML
version: 1
environment: host
resources:
  disk_mib: 8
command:
  - sh
  - -c
  - >-
    ln -s $VICTIM /work/dirlink; ln -s $VICTIM/secret.txt /work/filelink;
    ln -s $VICTIM /outputs/dirlink; ln -s $VICTIM/secret.txt /outputs/filelink;
    echo ok > /outputs/ok.txt; echo planted; printf '%3145728s\n' huge-line-end;
    echo after-huge; exec sleep 600
YAML
cat >"$WORK/job_b.yaml" <<'YAML'
version: 1
environment: host
command: ["sh", "-c", "echo lease-b-ran > /outputs/ran.txt; exec sleep 600"]
YAML
cat >"$WORK/job_c.yaml" <<'YAML'
version: 1
environment: host
command: ["sh", "-c", "echo not-the-leases-manifest"]
YAML
lease_a="$(tenant_api_lease "$WORK/job_a.yaml")" || fail "lease create A"
lease_b="$(tenant_api_lease "$WORK/job_b.yaml")" || fail "lease create B"
# The daemon's view of a lease trails the ledger by up to one reconcile (409 "not
# started yet" until then), as in integration_provider_daemon.
submitted() { g lease submit "$lease_a" --manifest "$WORK/job_a.yaml" --from tenant >"$WORK/submit.txt" 2>&1; }
wait_for 30 submitted || { fail "lease submit A"; cat "$WORK/submit.txt" "$WORK/daemon.log" >&2; exit 1; }
planted() { g lease logs "$lease_a" --from tenant 2>/dev/null | grep -q '^planted'; }
wait_for 30 planted || { fail "lease A's workload did not plant its links"; cat "$WORK/daemon.log" >&2; exit 1; }
b_known() { g lease status "$lease_b" --from tenant >/dev/null 2>&1; }
wait_for 20 b_known || fail "the daemon does not serve lease B"

# --- every case of the list, over TLS, with the signing tool ---
RUN_DIR="$PHOME/sandbox/runs/lease-$lease_a"
api_pids() { sed -n 's/.*tenant API: started as pid \([0-9]*\).*/\1/p' "$WORK/daemon.log"; }
api_pid="$(api_pids | tail -1)"
export GPUNET TOOL WORK PHOME VICTIM RUN_DIR lease_a lease_b API_PORT api_pid
CHAIN_ID="$(g -o json status | json_field '["chain_id"]')"
PROVIDER_ADDR="$(lease_field "$lease_a" provider)"
export CHAIN_ID PROVIDER_ADDR
$PY "$HERE/bad_input.py" || fail "bad_input.py: see its FAIL lines above"

# --- revoked: a session key the tenant delegated, then revoked with `lease revoke` ---
g -o json lease grant "$lease_a" --session-key s1 --expires 10m --from tenant >"$WORK/grant.json" ||
  fail "lease grant"
grant_id="$(json_field '["grant_id"]' <"$WORK/grant.json")"
cp -a "$GPUNET_HOME/keys/sessions" "$WORK/sessions-copy"
g lease status "$lease_a" --session s1 >/dev/null || fail "the delegated session key is refused"
g lease revoke "$lease_a" "$grant_id" --from tenant >/dev/null || fail "lease revoke"
SESSION_DIR="$WORK/sessions-copy" CASE=revoked $PY "$HERE/bad_input.py" || fail "the revoked grant's case"

# --- the wrong TLS key: the ledger's fingerprint changes, the daemon serves the old key ---
mkdir -m 711 "$WORK/other"
other_fp="$(provider_tls_identity "$WORK/other")"
sed "s/^tls_fingerprint: .*/tls_fingerprint: $other_fp/" "$PHOME/provider.yaml" >"$WORK/rotated.yaml"
g provider update --config "$WORK/rotated.yaml" --from provider >/dev/null || fail "provider update"
fp_changed() { [ "$(g -o json provider show "$PROVIDER_ADDR" 2>/dev/null | grep -c "$other_fp")" -gt 0 ]; }
wait_for 10 fp_changed || fail "the ledger does not show the new fingerprint"
expect_error "a TLS peer whose key is not the ledger's" "man-in-the-middle" \
  "$GPUNET" lease status "$lease_a" --from tenant
grep -q "$other_fp" "$WORK/err" || fail "the refusal does not name the ledger's fingerprint"

[ "$(api_pids | wc -l)" -eq 1 ] || fail "the tenant-facing process was restarted: pids $(api_pids | xargs)"
# The tenant's close stops the workloads (SIGTERM would leave them running).
for lease in "$lease_a" "$lease_b"; do g lease close "$lease" --from tenant >/dev/null || fail "lease close $lease"; done
tenant_api_daemon_down
checks_report "tenant API bad input: every case refused with its status and message, nothing changed, the daemon kept serving"
