# What the benchmarks that run a devnet and `gpunet provider run` share
# (bench/lease_to_first_output.sh, bench/run_to_first_output.sh). Sourced, never run
# (scripts/bench.sh runs bench/*.sh only, not this folder):
#
#   source "$(dirname "$0")/util/provider_bench.sh"
#   bench_start lease_to_first_output "$BUILD"   # root or skip; GPUNET, BENCH_SANDBOX; WORK; die
#   bench_provider 20 '{"manifest_timeout_ms": 60000}'   # devnet, provider with 20 declared GPUs, daemon
#   ...
#   bench_stop                                   # the daemon and the devnet, stopped cleanly

# Needs root (device nodes, the sandbox), as the provider does: exits 0 saying it
# skipped otherwise, and 1 when BUILD ($2) lacks gpunet or bench_sandbox. Sources the
# tests' devnet and daemon helpers and makes WORK (/tmp/gpunet-bench-$1-XXXXXX),
# cleaned up on exit with whatever still runs.
bench_start() {
  BENCH_NAME="$1"
  if [ "$(id -u)" -ne 0 ]; then
    echo "$BENCH_NAME: skipped (needs root, as the provider's daemon and sandbox do)"
    exit 0
  fi
  GPUNET="$(realpath "$2/bin/gpunet" 2>/dev/null)"
  BENCH_SANDBOX="$(realpath "$2/bench/bench_sandbox" 2>/dev/null)"
  [ -x "$GPUNET" ] && [ -x "$BENCH_SANDBOX" ] || {
    echo "$BENCH_NAME: build gpunet and bench_sandbox first ($2)" >&2
    exit 1
  }
  local tests
  tests="$(dirname "${BASH_SOURCE[0]}")/../../tests"
  # shellcheck source=../../tests/util/devnet.sh
  source "$tests/util/devnet.sh"
  # shellcheck source=../../tests/util/provider_daemon.sh
  source "$tests/util/provider_daemon.sh"
  devnet_workdir "gpunet-bench-$BENCH_NAME"
  trap daemon_cleanup EXIT  # also unmounts the retained workloads' quota file systems
}

die() {
  echo "$BENCH_NAME: $*" >&2
  [ -f "$WORK/d.log" ] && tail -30 "$WORK/d.log" >&2
  exit 1
}

# A development devnet (genesis params $2, block interval $3 ms: default 100,
# "default" the devnet's own) and a provider whose one machine has $1 H100s declared
# on device nodes, registered from the offer's provider.yaml, its daemon started and
# its first heartbeat committed. A closed lease's GPUs go back once its workload is
# stopped and they pass the idle check; one GPU per lease keeps that wait out of the
# figures: every lease finds a free one at once.
bench_provider() {
  local gpus=$1 i
  [ "$gpus" -le 256 ] || die "at most 256 GPUs (one device node minor each)"
  devnet_start_with_genesis '{"development": true}' "${2:-{\}}" "${3:-}"
  provider_home "$WORK/phome" "$gpus"
  {
    provider_yaml_two_h100 | sed "s/^        gpus: 2\$/        gpus: $gpus/"
    echo "  metrics_listen: 127.0.0.1:$(free_port)"
    echo "  device_dir: $WORK/dev"
    echo "  declared_gpus:"
    for ((i = 0; i < gpus; i++)); do printf '    - uuid: GPU-dev-%d\n      minor: %d\n' "$i" "$i"; done
  } >"$PHOME/provider.yaml"
  grep -q "^        gpus: $gpus\$" "$PHOME/provider.yaml" || die "provider.yaml: the machine's gpus were not set to $gpus"
  g provider register --config "$PHOME/provider.yaml" --from provider --yes >/dev/null || die "provider register"
  daemon_start "$WORK/d.log"
  _bench_heartbeat() { grep -qs 'heartbeat: committed' "$WORK/d.log"; }
  wait_for 60 _bench_heartbeat || die "the daemon sent no heartbeat"
}

# SIGTERM to the daemon (its exit waited for), then the devnet's clean stop.
bench_stop() {
  kill -TERM "$DAEMON_PID"
  daemon_wait_exit
  devnet_stop
}
