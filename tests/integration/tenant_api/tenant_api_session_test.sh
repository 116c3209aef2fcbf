#!/usr/bin/env bash
# Issue 18 item 3, the provider's side of an interactive session (docs/tenant-api.md
# "Sessions"), against a running `gpunet provider run` over real TLS. A development
# devnet, the daemon with two declared GPUs, lease A running `sleep 600`, lease B
# whose command ends at once. session.py then upgrades GET /leases/A/session with a
# signed request and runs `echo hi` through the raw frames (OPEN exec, READY, STDOUT,
# EXIT), and checks the refusals: no Upgrade header (426), unsigned (401), a stranger
# (403), the 17th session on a lease (429), a workload that ended (409), and, once B
# is closed, a closed lease (410). Last, closing lease A ends a session open on it.
# Needs root (the daemon).
#   tenant_api_session_test.sh GPUNET REQUEST_TOOL
set -u
HERE="$(dirname "$(realpath "$0")")"
# shellcheck source=tenant_api_daemon.sh
source "$HERE/tenant_api_daemon.sh"
tenant_api_test_start gpunet-tenant-api-session-test "$@"

tenant_api_daemon_up

cat >"$WORK/job_a.yaml" <<'YAML'
version: 1
environment: host
command: ["sh", "-c", "echo up; exec sleep 600"]
YAML
cat >"$WORK/job_b.yaml" <<'YAML'
version: 1
environment: host
command: ["sh", "-c", "echo done"]
YAML
lease_a="$(tenant_api_lease "$WORK/job_a.yaml")" || fail "lease create A"
lease_b="$(tenant_api_lease "$WORK/job_b.yaml")" || fail "lease create B"
# The daemon's view of a lease trails the ledger by up to one reconcile.
for pair in "$lease_a:$WORK/job_a.yaml" "$lease_b:$WORK/job_b.yaml"; do
  submitted() { g lease submit "${pair%%:*}" --manifest "${pair#*:}" --from tenant >"$WORK/submit.txt" 2>&1; }
  wait_for 30 submitted || { fail "lease submit ${pair%%:*}"; cat "$WORK/submit.txt" "$WORK/daemon.log" >&2; exit 1; }
done
up() { g lease logs "$lease_a" --from tenant 2>/dev/null | grep -q '^up'; }
wait_for 30 up || { fail "lease A's workload did not start"; cat "$WORK/daemon.log" >&2; exit 1; }
b_exited() { g -o json lease status "$lease_b" --from tenant 2>/dev/null | grep -q '"exited"'; }
wait_for 30 b_exited || fail "lease B's workload did not end"

CHAIN_ID="$(g -o json status | json_field '["chain_id"]')"
PROVIDER_ADDR="$(lease_field "$lease_a" provider)"
export GPUNET TOOL WORK lease_a lease_b API_PORT CHAIN_ID PROVIDER_ADDR
$PY "$HERE/session.py" || fail "session.py: see its FAIL lines above"

g lease close "$lease_b" --from tenant >/dev/null || fail "lease close B"
b_closed() { [ "$(lease_field "$lease_b" state)" = closed ]; }
wait_for 20 b_closed || fail "lease B did not close"
CASE=closed $PY "$HERE/session.py" || fail "the closed lease's case"

# A session open on A when A closes: the agent stops the workload (its init with it),
# and the relay ends the tenant's connection.
CASE=close_ends $PY "$HERE/session.py" &
watcher=$!
session_open() { [ -e "$WORK/session-open" ] || ! kill -0 "$watcher" 2>/dev/null; }
wait_for 20 session_open || fail "no session opened on lease A before its close"
kill -0 "$watcher" 2>/dev/null || fail "the session on lease A ended before its lease closed"
g lease close "$lease_a" --from tenant >/dev/null || fail "lease close A"
wait "$watcher" || fail "the session open on lease A did not end with the lease"

tenant_api_daemon_down
checks_report "tenant API sessions: exec through the raw frames, every refusal with its status, the session ends with its lease"
