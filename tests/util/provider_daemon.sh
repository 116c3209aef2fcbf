# Helpers for the shell tests that run `gpunet provider run` against a devnet
# (tests/integration/provider_daemon, provider_sell, and those after them). Sourced
# after util/devnet.sh, never run:
#
#   source "$(dirname "$0")/../../util/devnet.sh"
#   source "$(dirname "$0")/../../util/provider_daemon.sh"
#   devnet_workdir gpunet-x-test
#   trap daemon_cleanup EXIT                   # kills a daemon left running, then the devnet
#   devnet_start_with_genesis '{"development": true}' '{"manifest_timeout_ms": 20000}'
#   provider_home "$WORK/phome" 2              # keys, TLS identity, 2 device nodes
#   { provider_yaml_two_h100; declared_two_gpus_yaml; echo "  device_dir: $WORK/dev"; } >"$PHOME/provider.yaml"
#   daemon_start "$WORK/d.log"                 # DAEMON_PID; env before the call passes through
#   wait_for 20 some_check || fail "..."
#   tenant_reads_workload "$lease" first-line "gpus=GPU-0$"   # logs, GPU, result.txt
#   daemon_wait_exit; [ "$rc" -eq 0 ]
#
# Variables: DAEMON_PID ("" when none), PHOME, TLS_FP and API_PORT (provider_home),
# rc (daemon_wait_exit).

DAEMON_PID=""
g() { setsid "$GPUNET" "$@" </dev/null; }

# On exit: kills a daemon left running and the supervisors of workloads still
# running under $WORK (SIGTERM leaves workloads running, and a test that fails
# before its leases close would leave them for good), unmounts what its workloads
# left mounted under $WORK (a closed lease's quota file system stays mounted while
# its outputs are retained, an hour at least: left mounted, its loop device and
# $WORK outlived the test), then stops the devnet and removes $WORK.
daemon_cleanup() {
  local pid
  [ -n "$DAEMON_PID" ] && kill -KILL "$DAEMON_PID" 2>/dev/null
  for pid in $(pgrep -f "sandbox supervise --run-dir $WORK/"); do kill -KILL "$pid"; done
  grep " $WORK/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  [ -n "${PHOME:-}" ] && _remove_cgroup_scope "$PHOME/sandbox"
  _devnet_cleanup
}

# The runtime puts a state dir's workload cgroups under gpunet/<FNV-1a 64 of the
# state dir's path> in each hierarchy (runtime::ScopeCgroupParents), one scope per
# test run: remove what is left empty of the scope of state dir $1.
_remove_cgroup_scope() {
  local scope d
  scope="$($PY -c 'import sys
h = 14695981039346656037
for c in sys.argv[1].encode():
    h = ((h ^ c) * 1099511628211) % 2**64
print("%016x" % h)' "$1")"
  for d in /sys/fs/cgroup/*/gpunet/"$scope" /sys/fs/cgroup/gpunet/"$scope" \
    /sys/fs/cgroup/*/*/gpunet/"$scope"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}

# A free TCP port on 127.0.0.1.
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to $1 s for the command "$2..." to succeed (polls every 0.2 s).
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# A field of `gpunet lease show $1`'s lease: lease_field 7 state.
lease_field() { g -o json lease show "$1" | json_field "[\"lease\"][\"$2\"]"; }

# The tenant's reads of lease $1's workload through the tenant API: its first output
# line $2 (`lease logs`, waited for up to 30 s), a line matching $3 (the GPUs it
# got), and its output file result.txt, which must say "done" (`lease outputs`,
# listed then downloaded to $WORK/result.txt). Each miss is a fail.
tenant_reads_workload() {
  _logs_have() { g lease logs "$1" --from tenant 2>/dev/null | grep -q "$2"; }
  _outputs_list() { g lease outputs "$1" --from tenant 2>/dev/null | grep -q result.txt; }
  wait_for 30 _logs_have "$1" "$2" || fail "lease $1: the workload's first output line did not reach the tenant"
  _logs_have "$1" "$3" || fail "lease $1: the workload did not get its GPU ($3)"
  wait_for 30 _outputs_list "$1" || fail "lease $1: the workload's output file is not listed"
  g lease outputs "$1" result.txt -o "$WORK/result.txt" --from tenant >/dev/null 2>&1 || fail "lease $1: lease outputs download"
  [ "$(cat "$WORK/result.txt" 2>/dev/null)" = done ] || fail "lease $1: downloaded output is not the workload's"
}

# A devnet on a fixed port (so it can be restarted) whose genesis has the top-level
# members of the JSON object $1 and the params of $2 merged in, making a block at
# most every $3 ms (default 100; "default": the devnet's own timing); exports
# DEVNET_RPC, GPUNET_HOME ($WORK/home) and GPUNET_PASSPHRASE.
devnet_start_with_genesis() {
  local blocks=(--block-interval-ms "${3:-100}")
  [ "${3:-}" = default ] && blocks=()
  export GPUNET_HOME="$WORK/home" GPUNET_PASSPHRASE=devnet
  DEVNET_RPC="127.0.0.1:$(free_port)"
  export DEVNET_RPC
  devnet_start "${blocks[@]}"
  devnet_stop
  $PY - "$GPUNET_HOME/config/genesis.json" "$1" "${2:-{\}}" <<'PY'
import json, sys
path = sys.argv[1]
genesis = json.load(open(path))
genesis.update(json.loads(sys.argv[2]))
genesis["params"].update(json.loads(sys.argv[3]))
json.dump(genesis, open(path, "w"), indent=2)
PY
  rm -rf "${GPUNET_HOME:?}/data" && mkdir -m 700 "$GPUNET_HOME/data"
  devnet_start "${blocks[@]}"
}

# A provider home at $1 with the devnet's operator key, a TLS identity and $2 fake
# GPU device nodes in $WORK/dev (nvidia0..). Sets PHOME, TLS_FP and API_PORT (for
# provider_yaml_two_h100). $WORK becomes 0711: the workloads' uids pass through it.
provider_home() {
  PHOME="$1"
  chmod 711 "$WORK"
  mkdir -m 711 "$PHOME" && mkdir -m 700 "$PHOME/keys"
  cp -p "$GPUNET_HOME/keys/operator.json" "$PHOME/keys/" || fail "copy the operator key"
  TLS_FP="$(provider_tls_identity "$PHOME")" || fail "make the TLS identity"
  API_PORT="$(free_port)"
  mkdir -p -m 711 "$WORK/dev"
  local minor
  for ((minor = 0; minor < $2; minor++)); do
    [ -e "$WORK/dev/nvidia$minor" ] || mknod -m 666 "$WORK/dev/nvidia$minor" c 195 "$minor"
  done
}

# provider.yaml's `daemon.declared_gpus` for provider_yaml_two_h100's two GPUs, on
# the device nodes provider_home made (`device_dir: $WORK/dev`; development chains only).
declared_two_gpus_yaml() {
  cat <<YAML
  declared_gpus:
    - uuid: GPU-dev-0
      minor: 0
    - uuid: GPU-dev-1
      minor: 1
YAML
}

# Starts `gpunet provider run --home ${2:-$PHOME}` in the background, its stderr
# appended to $1; sets DAEMON_PID.
daemon_start() {
  setsid "$GPUNET" provider run --home "${2:-$PHOME}" </dev/null 2>>"$1" &
  DAEMON_PID=$!
}

# Waits for the daemon to end (at most 30 s, then SIGKILL); its exit status in rc.
daemon_wait_exit() {
  local deadline=$((SECONDS + 30))
  while kill -0 "$DAEMON_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  kill -KILL "$DAEMON_PID" 2>/dev/null
  rc=0
  wait "$DAEMON_PID" || rc=$?
  DAEMON_PID=""
}
