# Sourced by the tenant_api integration tests (it sources tests/util/devnet.sh and
# tests/util/provider_daemon.sh): the daemon they all run against, and its end.
#
#   tenant_api_test_start WORKDIR_NAME GPUNET TOOL  # sets GPUNET, TOOL, WORK; root or skip
#   tenant_api_daemon_up [EXTRA_YAML_LINE...]  # devnet, provider, daemon; sets offer
#   lease="$(tenant_api_lease MANIFEST)"        # a 1-GPU lease of the offer
#   tenant_api_daemon_down                      # workloads stopped, SIGTERM, exit 0

# shellcheck source=../../util/devnet.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../util/devnet.sh"
# shellcheck source=../../util/provider_daemon.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../util/provider_daemon.sh"

# The test's arguments (the gpunet binary, the request tool), its work dir; exits 77
# (skipped) without root, and cleans up after the daemon on exit.
tenant_api_test_start() {
  GPUNET="$(realpath "$2")"
  TOOL="$(realpath "$3")"
  devnet_workdir "$1"
  [ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (the provider daemon, device nodes)"; exit 77; }
  trap daemon_cleanup EXIT
}

# A development devnet, the provider with two declared GPUs (heartbeat every second,
# each argument one more line of its daemon: section), registered, and the daemon
# running with its first heartbeat committed. Sets offer (its offer id).
tenant_api_daemon_up() {
  devnet_start_with_genesis '{"development": true}' '{"manifest_timeout_ms": 600000}'
  provider_home "$WORK/phome" 2
  {
    provider_yaml_two_h100
    declared_two_gpus_yaml
    echo "  device_dir: $WORK/dev"
    echo "  heartbeat_every: 1s"
    local line
    for line in "$@"; do echo "  $line"; done
  } >"$PHOME/provider.yaml"
  g provider register --config "$PHOME/provider.yaml" --from provider --yes >/dev/null ||
    fail "provider register"
  offer="$(g -o json offers | json_field '["offers"][0]["offer_id"]')"
  daemon_start "$WORK/daemon.log"
  _heartbeat() { grep -q 'heartbeat: committed' "$WORK/daemon.log" || ! kill -0 "$DAEMON_PID"; }
  wait_for 30 _heartbeat && kill -0 "$DAEMON_PID" ||
    { fail "the daemon sent no heartbeat"; cat "$WORK/daemon.log" >&2; exit 1; }
}

# Creates a lease of one GPU on the offer for the manifest file $1; prints its id.
tenant_api_lease() {
  g -o json lease create "$offer" --gpus 1 --deposit 10 --manifest "$1" --from tenant --yes |
    json_field '["ids"]["lease_id"]'
}

# The leases are closed: their workloads stop, then the daemon ends with 0 on SIGTERM;
# the devnet stops. The daemon log's tail when a check failed.
tenant_api_daemon_down() {
  kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon is gone"
  _stopped() { ! pgrep -f "sandbox supervise --run-dir $WORK/" >/dev/null; }
  wait_for 20 _stopped || fail "the workloads did not stop after their leases closed"
  kill -TERM "$DAEMON_PID"
  daemon_wait_exit
  [ "$rc" -eq 0 ] || fail "daemon exit $rc on SIGTERM, expected 0"
  devnet_stop
  [ "$failures" -eq 0 ] || { echo "--- daemon log (last 60 lines):" >&2; tail -60 "$WORK/daemon.log" >&2; }
}
