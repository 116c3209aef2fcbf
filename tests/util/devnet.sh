# The one way the shell integration tests start a `gpunet devnet` or `gpunet node`,
# wait for it, stop it and check what they see. Sourced, never run:
#
#   GPUNET="$(realpath "$1")"                        # the binary under test
#   source "$(dirname "$0")/../../util/devnet.sh"
#   devnet_workdir gpunet-cli-test                   # WORK=/tmp/gpunet-cli-test-XXXXXX
#   export GPUNET_HOME="$WORK/home" GPUNET_PASSPHRASE=devnet
#   devnet_start --block-interval-ms 100             # exports GPUNET_NODE
#   bob="$(devnet_address bob)"
#   ... checks: fail "what went wrong", json_field '["x"]' <file, expect_error ...
#   devnet_stop                                      # SIGTERM must end it, exit 0, in 30 s
#   checks_report "integration_cli: all checks passed"
#
# On exit, whatever the path, a process still running is stopped (SIGTERM, then
# SIGKILL after 10 s) and $WORK is removed. A devnet or node that does not become
# ready within DEVNET_START_TIMEOUT_S (60) or exits first ends the test with its
# output: a test never hangs on a node that will not start.
#
# Variables it sets: WORK, DEVNET_PID (the running process, "" when none),
# DEVNET_URL (its RPC URL, also exported as GPUNET_NODE), failures (the count of
# failed checks).

PY=/usr/bin/python3
DEVNET_START_TIMEOUT_S="${DEVNET_START_TIMEOUT_S:-60}"
DEVNET_STOP_TIMEOUT_S="${DEVNET_STOP_TIMEOUT_S:-30}"
DEVNET_PID=""
DEVNET_WHAT=""
DEVNET_URL=""
failures=0

# A failed check: the test goes on and checks_report fails it at the end.
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# Prints a field of the JSON on stdin, as Python writes it: json_field '["keys"][0]'.
json_field() { $PY -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# A command that must fail with exit 1 and an error message containing $2 (grep -i).
expect_error() {
  local what="$1" words="$2"
  shift 2
  "$@" >"$WORK/out" 2>"$WORK/err" </dev/null
  local rc=$?
  if [ "$rc" -ne 1 ]; then
    fail "$what: exit $rc, expected 1"
    cat "$WORK/out" "$WORK/err" >&2
    return
  fi
  grep -q '^error: ' "$WORK/err" || fail "$what: no 'error:' line"
  grep -qi -- "$words" "$WORK/err" || {
    fail "$what: message lacks '$words'"
    cat "$WORK/err" >&2
  }
}

# The end of a test: exit 1 naming the count of failed checks, or print $1.
checks_report() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  echo "$1"
}

# WORK: a new directory /tmp/$1-XXXXXX, removed on exit with any process left running.
devnet_workdir() {
  WORK="$(mktemp -d "/tmp/$1-XXXXXX")" || {
    echo "FAIL: cannot create a work directory under /tmp" >&2
    exit 1
  }
  trap _devnet_cleanup EXIT
}

# Starts `gpunet -o json devnet --home $GPUNET_HOME --rpc 127.0.0.1:0 "$@"` with its
# JSON in $WORK/devnet.json and its stderr in $WORK/devnet.err; returns once the
# JSON is complete and the RPC answers. DEVNET_RPC=host:port replaces 127.0.0.1:0
# (a test that restarts the devnet under a client that keeps its URL).
devnet_start() {
  _devnet_require_idle
  "$GPUNET" -o json devnet --home "${GPUNET_HOME:?set GPUNET_HOME first}" --rpc "${DEVNET_RPC:-127.0.0.1:0}" "$@" \
    >"$WORK/devnet.json" 2>"$WORK/devnet.err" &
  DEVNET_PID=$!
  DEVNET_WHAT="gpunet devnet"
  _devnet_wait _devnet_json_ready "$WORK/devnet.err"
  DEVNET_URL="$(json_field '["rpc_url"]' <"$WORK/devnet.json")"
  _devnet_wait_rpc "$WORK/devnet.err"
}

# The address of the devnet's funded key $1 (alice, bob, ..., tenant).
devnet_address() {
  $PY - "$WORK/devnet.json" "$1" <<'PY'
import json, sys
keys = [k["address"] for k in json.load(open(sys.argv[1]))["keys"] if k["name"] == sys.argv[2]]
if not keys:
    sys.exit("devnet_address: the devnet has no key named " + sys.argv[2])
print(keys[0])
PY
}

# Starts `gpunet node --home $GPUNET_HOME "$@"`, its stdout and stderr appended to
# $WORK/node.log (one log across restarts); returns once it has printed a new
# "RPC: <url>" line and the RPC answers.
devnet_node_start() {
  _devnet_require_idle
  _devnet_rpc_lines_before="$(_devnet_rpc_lines)"
  "$GPUNET" node --home "${GPUNET_HOME:?set GPUNET_HOME first}" "$@" >>"$WORK/node.log" 2>&1 &
  DEVNET_PID=$!
  DEVNET_WHAT="gpunet node"
  _devnet_wait _devnet_node_ready "$WORK/node.log"
  DEVNET_URL="$(sed -n 's/^RPC: \([^ ]*\).*/\1/p' "$WORK/node.log" | tail -1)"
  _devnet_wait_rpc "$WORK/node.log"
}

# SIGTERM: a clean stop, which must end the process with exit 0 within
# DEVNET_STOP_TIMEOUT_S (30); one still running then fails the check and is killed.
devnet_stop() {
  [ -n "$DEVNET_PID" ] || {
    fail "devnet_stop: nothing is running"
    return
  }
  kill -TERM "$DEVNET_PID"
  local deadline_us=$(($(_devnet_now_us) + DEVNET_STOP_TIMEOUT_S * 1000000))
  while kill -0 "$DEVNET_PID" 2>/dev/null; do
    if [ "$(_devnet_now_us)" -ge "$deadline_us" ]; then
      fail "$DEVNET_WHAT still running ${DEVNET_STOP_TIMEOUT_S} s after SIGTERM; killed"
      devnet_kill
      return
    fi
    sleep 0.1
  done
  wait "$DEVNET_PID"
  local rc=$?
  DEVNET_PID=""
  [ "$rc" -eq 0 ] || fail "$DEVNET_WHAT exited $rc on SIGTERM, expected 0"
}

# SIGKILL: a crash at this moment. Nothing to check but that it is gone.
devnet_kill() {
  [ -n "$DEVNET_PID" ] || return 0
  kill -KILL "$DEVNET_PID"
  wait "$DEVNET_PID" 2>/dev/null
  DEVNET_PID=""
}

# ---- internals ----

# The time in microseconds. EPOCHREALTIME's decimal point is the locale's: a comma
# in some, so both are dropped.
_devnet_now_us() { echo "${EPOCHREALTIME//[.,]/}"; }

_devnet_require_idle() {
  if [ -n "$DEVNET_PID" ]; then
    echo "FAIL: $DEVNET_WHAT (pid $DEVNET_PID) is still running; stop it before starting another" >&2
    exit 1
  fi
}

# How many "RPC: <url>" lines the node log holds (0 before the first start).
_devnet_rpc_lines() {
  local n
  n="$(grep -c '^RPC: ' "$WORK/node.log" 2>/dev/null)"
  echo "${n:-0}"
}

# Count first, then read the URL: the other order could read the previous node's
# URL when the new one prints between the two reads.
_devnet_node_ready() { [ "$(_devnet_rpc_lines)" -gt "$_devnet_rpc_lines_before" ]; }

_devnet_json_ready() { $PY -c 'import json,sys; json.load(open(sys.argv[1]))' "$WORK/devnet.json" 2>/dev/null; }

# Polls `$1` until it succeeds; ends the test with the last lines of $2 when the
# process exits first or DEVNET_START_TIMEOUT_S pass.
_devnet_wait() {
  local ready="$1" output="$2" deadline_us=$(($(_devnet_now_us) + DEVNET_START_TIMEOUT_S * 1000000))
  until "$ready"; do
    if ! kill -0 "$DEVNET_PID" 2>/dev/null; then
      wait "$DEVNET_PID"
      _devnet_give_up "$DEVNET_WHAT exited with status $? before it was ready" "$output"
    fi
    [ "$(_devnet_now_us)" -lt "$deadline_us" ] ||
      _devnet_give_up "$DEVNET_WHAT was not ready after ${DEVNET_START_TIMEOUT_S} s" "$output"
    sleep 0.1
  done
}

# Returns once GET $DEVNET_URL/status answers 200; exports GPUNET_NODE.
_devnet_wait_rpc() {
  [ -n "$DEVNET_URL" ] || _devnet_give_up "$DEVNET_WHAT printed no RPC URL" "$1"
  $PY - "$DEVNET_URL/status" "$DEVNET_START_TIMEOUT_S" <<'PY' || _devnet_give_up "$DEVNET_WHAT: its RPC at $DEVNET_URL does not answer" "$1"
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
            if r.status == 200:
                sys.exit(0)
            why = "HTTP %d" % r.status
    except OSError as e:
        why = str(e)
    if time.monotonic() > deadline:
        sys.exit("GET %s: %s" % (sys.argv[1], why))
    time.sleep(0.1)
PY
  export GPUNET_NODE="$DEVNET_URL"
}

_devnet_give_up() {
  echo "FAIL: $1; its output ($2), last 40 lines:" >&2
  tail -40 "$2" >&2
  exit 1
}

_devnet_cleanup() {
  if [ -n "$DEVNET_PID" ] && kill -0 "$DEVNET_PID" 2>/dev/null; then
    kill -TERM "$DEVNET_PID"
    for _ in $(seq 1 100); do
      kill -0 "$DEVNET_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$DEVNET_PID" 2>/dev/null
    wait "$DEVNET_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}

# A provider home's tenant-API TLS identity, as `gpunet provider init` makes it
# (an ECDSA P-256 key, 0600, and a self-signed certificate in a 0700 tls/), for
# tests that write provider.yaml by hand. Prints the key's fingerprint, the SHA-256
# of its DER SubjectPublicKeyInfo: provider.yaml's tls_fingerprint.
#   fp="$(provider_tls_identity "$PHOME")"
provider_tls_identity() {
  mkdir -m 700 -p "$1/tls" &&
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1/tls/key.pem" 2>/dev/null &&
    chmod 600 "$1/tls/key.pem" &&
    openssl req -new -x509 -key "$1/tls/key.pem" -out "$1/tls/cert.pem" -days 30 \
      -subj /CN=127.0.0.1 2>/dev/null &&
    openssl pkey -in "$1/tls/key.pem" -pubout -outform DER | sha256sum | cut -d' ' -f1
}

# The provider.yaml both daemon tests start from: one site, one machine of two
# H100s, one public offer, and the daemon section's first lines (node, the tenant
# API on $API_PORT, api_user nobody); the caller appends the rest of `daemon:`.
# Uses $API_PORT, $TLS_FP and $DEVNET_URL.
provider_yaml_two_h100() {
  cat <<YAML
operator: operator
tenant_api: https://127.0.0.1:$API_PORT
tls_fingerprint: $TLS_FP
region: eu-west
bond: 1000
payouts:
  - to: provider
    share: 100%
sites:
  - id: 1
    fabric: ethernet
    bandwidth_gbps: 100
    machines:
      - id: 1
        gpu: H100
        gpus: 2
        vram_gib: 80
        link: pcie
        driver: 550.54.15
        cuda: "12.4"
        compute_capability: "9.0"
        cpu_cores: 16
        memory_gib: 64
        disk_gib: 500
offers:
  - gpu: H100
    price: 2.5
daemon:
  node: $DEVNET_URL
  listen: 127.0.0.1:$API_PORT
  api_user: nobody
YAML
}
