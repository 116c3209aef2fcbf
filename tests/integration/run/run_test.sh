#!/usr/bin/env bash
# `gpunet run task.yaml` (issue 18 items 2, 8, 9) against a development devnet and
# `gpunet provider run` selling a machine of eight declared GPUs on a 1 GiB disk
# (offer at 2.5 GPN/GPU-h, bidding on): an echo job from the offer (workdir upload
# less .gpunetignore, a secret from the environment, stderr, control sequences made
# harmless, outputs brought back into gpunet-out/LEASE, the settlement printed and
# equal to `lease show`, --timings); outputs that try to escape (links, names with an
# escape or a newline: only the regular file comes back, nothing written outside
# gpunet-out/LEASE); an interactive task (run returns with the ways in, exec works,
# lease close ends it); an upload over the lease's 128 MiB disk share (what to do,
# the lease closed, the settlement); a malformed task (line:col, nothing on the ledger); no funds; no
# terminal and no --yes; nothing fits (the message), then its order gets no bid
# and is refunded; --order (the daemon bids, the award runs the job); --detach;
# Ctrl-C keep and Ctrl-C close under a pty; a provider whose TLS key is not the
# ledger's (refused, skipped); and a provider that does not run (the missed-start
# message, the lease still reserved, no close). Needs root (mknod).
#   run_test.sh GPUNET
set -u
GPUNET="$(realpath "$1")"
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../../util/devnet.sh
source "$HERE/../../util/devnet.sh"
# shellcheck source=../../util/provider_daemon.sh
source "$HERE/../../util/provider_daemon.sh"
devnet_workdir gpunet-run-test
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to make device nodes"; exit 77; }
trap daemon_cleanup EXIT
gpn() { $PY -c "import sys; v=int(sys.argv[1]); print(('%d.%06d' % divmod(v, 10**6)).rstrip('0').rstrip('.'))" "$1"; }
my_leases() { g -o json lease list --tenant "$1" --all | $PY -c "import json,sys; print(len(json.load(sys.stdin)['leases']))"; }
task() {  # $1: file, $2: resources, then the rest of the task's lines on stdin
  { echo "resources: $2"; cat; } >"$1"
}

# --- a development devnet, a provider daemon with eight declared H100s ---
devnet_start_with_genesis '{"development": true}'
# Eight declared GPUs on a machine with the smallest disk one can declare (1 GiB), so a
# GPU's disk share is 128 MiB and an upload over it costs little; the other cases
# write a few bytes.
provider_home "$WORK/phome" 8
{
  provider_yaml_two_h100 | sed -e 's/disk_gib: 500$/disk_gib: 1/' -e 's/^        gpus: 2$/        gpus: 8/'
  echo "  declared_gpus:"
  for minor in 0 1 2 3 4 5 6 7; do printf '    - uuid: GPU-dev-%d\n      minor: %d\n' "$minor" "$minor"; done
  cat <<YAML
  metrics_listen: 127.0.0.1:$(free_port)
  heartbeat_every: 1s
  device_dir: $WORK/dev
  bidding:
    enabled: true
    floor: {H100: 1}
    undercut: 10%
YAML
} >"$PHOME/provider.yaml"
g provider register --config "$PHOME/provider.yaml" --from provider --yes >/dev/null || fail "provider register"
daemon_start "$WORK/daemon.log"
api_up() { curl -sk "https://127.0.0.1:$API_PORT/environments" | grep -q host; }
wait_for 30 api_up || { fail "the daemon's tenant API did not come up"; cat "$WORK/daemon.log" >&2; }
cd "$WORK" || exit 1

# --- a malformed task: its line and column, nothing on the ledger ---
printf 'resources:\n  gpus: H100x2\n  max_price: 3\nrun: echo hi\n' >"$WORK/bad.yaml"
expect_error "malformed task" "bad.yaml:2:9" g run "$WORK/bad.yaml" --from tenant --yes
[ "$(my_leases tenant)" -eq 0 ] || fail "a malformed task left a lease"

# --- no funds: the balance, the deposit, how to fund; nothing sent ---
g keys add broke >/dev/null 2>&1 || fail "keys add broke"
task "$WORK/echo0.yaml" "{gpus: H100:1, max_price: 3}" <<<"run: echo hi"
expect_error "no funds" "gpunet send" g run "$WORK/echo0.yaml" --from broke --yes
grep -q "has 0 GPN but the deposit needs 2.5 GPN" "$WORK/err" || { fail "no funds: no balance and deposit"; cat "$WORK/err" >&2; }
# No terminal and no --yes: refused before money moves.
expect_error "no tty, no --yes" "add --yes" g run "$WORK/echo0.yaml" --from tenant
[ "$(my_leases tenant)" -eq 0 ] || fail "a refused run left a lease"

# --- an echo job from the offer: upload, secret, logs, outputs, settlement ---
mkdir -p "$WORK/job"
echo "hello from the workdir" >"$WORK/job/hello.txt"
echo "do not upload" >"$WORK/job/private.key"
echo "*.key" >"$WORK/job/.gpunetignore"
task "$WORK/echo.yaml" "{gpus: H100:1, max_price: 3}" <<'YAML'
workdir: job
run: |
  cat hello.txt
  ls private.key 2>/dev/null || echo "ignored file not uploaded"
  echo "token has ${#MY_TOKEN} chars"
  echo to-stderr >&2
  printf '\033]0;title\007\033[31mred\033[0m\n'
  mkdir -p out && echo done > out/result.txt
secrets: [MY_TOKEN]
outputs: [out/]
YAML
MY_TOKEN=s3cr3t-value g run "$WORK/echo.yaml" --from tenant --yes --timings >"$WORK/echo.out" 2>"$WORK/echo.err" ||
  { fail "run echo.yaml"; cat "$WORK/echo.out" "$WORK/echo.err" >&2; }
lease="$(sed -n 's/^==> waiting for provider: lease \([0-9]*\)$/\1/p' "$WORK/echo.err")"
[ -n "$lease" ] || fail "no waiting-for-provider phase line"
for phase in leasing "waiting for provider" uploading starting running "downloading outputs" closing; do
  grep -q "^==> $phase" "$WORK/echo.err" || fail "no '$phase' phase line"
done
grep -q "hello from the workdir" "$WORK/echo.out" || fail "the uploaded file was not there"
grep -q "ignored file not uploaded" "$WORK/echo.out" || fail ".gpunetignore not honoured"
grep -q "token has 12 chars" "$WORK/echo.out" || fail "the secret did not reach the workload"
grep -q "s3cr3t-value" "$WORK/echo.out" "$WORK/echo.err" && fail "the secret's value was printed"
grep -q "to-stderr" "$WORK/echo.err" || fail "the workload's stderr was not streamed"
{ grep -qx red "$WORK/echo.out" && ! grep -q $'\033' "$WORK/echo.out"; } ||
  { fail "control sequences not made harmless"; cat -v "$WORK/echo.out" >&2; }
[ "$(cat "$WORK/gpunet-out/$lease/result.txt" 2>/dev/null)" = done ] || fail "the output did not come back to gpunet-out/$lease"
[ "$(lease_field "$lease" state)" = closed ] || fail "lease $lease not closed after the job"
paid="$(gpn "$(lease_field "$lease" paid_ugpn)")"
refunded="$(gpn "$(lease_field "$lease" refunded_ugpn)")"
grep -q "paid $paid GPN to the provider, refunded $refunded GPN" "$WORK/echo.err" ||
  { fail "the settlement printed is not lease show's ($paid paid, $refunded refunded)"; cat "$WORK/echo.err" >&2; }
grep -Eq '^timings lease_committed_ms=[1-9][0-9]* provider_noticed_ms=[1-9][0-9]* manifest_accepted_ms=[1-9][0-9]* sandbox_started_ms=[1-9][0-9]* first_output_ms=[1-9][0-9]*$' "$WORK/echo.err" ||
  fail "no --timings line with every mark"

# --- outputs that try to escape: links and odd names skipped and said; only the
# regular file comes back, nothing is written outside gpunet-out/LEASE ---
mkdir -p "$WORK/esc"
task "$WORK/esc/esc.yaml" "{gpus: H100:1, max_price: 3}" <<'YAML'
run: |
  mkdir -p out
  echo kept > out/regular.txt
  ln -s /etc/passwd out/passwd-link
  ln -s ../../ out/up
  echo x > "out/$(printf 'evil\033]0;owned\007')"
  echo x > "out/$(printf 'new\nline')"
outputs: [out/]
YAML
listing() { find "$WORK/esc" -mindepth 1 -printf '%P %y %s %T@\n' | sort; }
listing >"$WORK/esc-before.txt"
passwd_sum="$(sha256sum /etc/passwd)"
(cd "$WORK/esc" && g run esc.yaml --from tenant --yes >"$WORK/esc.out" 2>"$WORK/esc.err") ||
  { fail "run esc.yaml"; cat "$WORK/esc.out" "$WORK/esc.err" >&2; }
elease="$(sed -n 's/^==> waiting for provider: lease \([0-9]*\)$/\1/p' "$WORK/esc.err")"
[ -n "$elease" ] || fail "esc: no lease"
[ "$(find "$WORK/esc/gpunet-out" -mindepth 1 -printf '%P %y\n' | sort | tr '\n' ,)" = "$elease d,$elease/regular.txt f," ] ||
  { fail "esc: gpunet-out holds more than the regular file"; find "$WORK/esc/gpunet-out" >&2; }
[ "$(cat "$WORK/esc/gpunet-out/$elease/regular.txt" 2>/dev/null)" = kept ] || fail "esc: the regular file did not come back"
listing | grep -v '^gpunet-out' | diff "$WORK/esc-before.txt" - >&2 || fail "esc: something outside gpunet-out/$elease changed"
[ "$(sha256sum /etc/passwd)" = "$passwd_sum" ] || fail "esc: /etc/passwd changed"
grep -q "skipped: passwd-link is a symbolic link" "$WORK/esc.err" || fail "esc: the link to /etc/passwd was not said skipped"
grep -q "skipped: up is a symbolic link" "$WORK/esc.err" || fail "esc: the link to ../../ was not said skipped"
[ "$(grep -c 'skipped: path ".*" holds a control byte' "$WORK/esc.err")" -eq 2 ] ||
  fail "esc: the names with an escape and a newline were not both said skipped"
grep skipped "$WORK/esc.err" | grep -q $'\033' && fail "esc: a skipped name's escape sequence reached the terminal"
[ "$(lease_field "$elease" state)" = closed ] || fail "esc: lease $elease not closed"

# --- an interactive task (no run): run returns once it runs, says how to reach it;
# the lease stays open; exec works on it; lease close ends it ---
task "$WORK/machine.yaml" "{gpus: H100:1, max_price: 3}" <<<"environment: host"
timeout 60 setsid "$GPUNET" run "$WORK/machine.yaml" --from tenant --yes </dev/null >"$WORK/machine.out" 2>"$WORK/machine.err" ||
  { fail "run machine.yaml"; cat "$WORK/machine.err" >&2; }
mlease="$(sed -n 's/^==> waiting for provider: lease \([0-9]*\)$/\1/p' "$WORK/machine.err")"
for line in "an interactive machine" "gpunet shell $mlease" "gpunet exec $mlease" "gpunet ssh-config $mlease" \
  "gpunet forward $mlease PORT" "gpunet lease close $mlease"; do
  grep -q "$line" "$WORK/machine.err" || { fail "interactive run: no \"$line\""; cat "$WORK/machine.err" >&2; }
done
[ "$(lease_field "$mlease" state)" = started ] || fail "interactive run: lease $mlease not left running"
[ "$(timeout 30 setsid "$GPUNET" exec "$mlease" --from tenant -n -- sh -c 'echo exec-$((1+1))' </dev/null)" = exec-2 ] ||
  fail "interactive run: gpunet exec on lease $mlease"
g lease close "$mlease" --from tenant >/dev/null || fail "interactive run: lease close"
[ "$(lease_field "$mlease" state)" = closed ] || fail "interactive run: lease $mlease not closed"

# --- an upload over the lease's disk share (128 MiB): what to do, the lease closed,
# the settlement printed as the ledger has it; the job never ran ---
mkdir -p "$WORK/bigjob"
truncate -s 160M "$WORK/bigjob/data.bin"
task "$WORK/bigjob.yaml" "{gpus: H100:1, max_price: 3}" <<<$'workdir: bigjob\nrun: echo never-runs'
expect_error "an upload over the disk" "does not fit the lease's disk" g run "$WORK/bigjob.yaml" --from tenant --yes
grep -q ".gpunetignore" "$WORK/err" || { fail "upload over the disk: no way out said"; cat "$WORK/err" >&2; }
grep -q never-runs "$WORK/out" "$WORK/err" && fail "upload over the disk: the job ran"
blease="$(sed -n 's/^==> waiting for provider: lease \([0-9]*\)$/\1/p' "$WORK/err")"
[ "$(lease_field "$blease" state)" = closed ] || fail "upload over the disk: lease $blease not closed"
paid="$(lease_field "$blease" paid_ugpn)"
refunded="$(lease_field "$blease" refunded_ugpn)"
[ $((paid + refunded)) -eq "$(lease_field "$blease" deposited_ugpn)" ] ||
  fail "upload over the disk: paid $paid + refunded $refunded is not the deposit"
grep -q "paid $(gpn "$paid") GPN to the provider, refunded $(gpn "$refunded") GPN" "$WORK/err" ||
  { fail "upload over the disk: the settlement printed is not lease show's"; cat "$WORK/err" >&2; }
rm -rf "$WORK/bigjob"

# --- nothing fits: which requirement excluded the offer; the order gets no bid: refunded ---
task "$WORK/big.yaml" "{gpus: H100:16, max_price: 3}" <<<"run: echo hi"
before="$(g -o json query account tenant | json_field '["balance_ugpn"]')"
expect_error "nothing fits, no bid" "refunded" g run "$WORK/big.yaml" --from tenant --yes --bid-window 1s
grep -q "has machines of at most 8 GPU(s) < gpus 16 per machine" "$WORK/err" || { fail "nothing fits: the requirement is not named"; cat "$WORK/err" >&2; }
after="$(g -o json query account tenant | json_field '["balance_ugpn"]')"
[ $((before - after)) -lt 100000 ] || fail "the unbid order's deposit was not refunded ($before -> $after)"

# --- --order: the daemon bids (2.7 = 3 less 10%), the award runs the job ---
task "$WORK/order.yaml" "{gpus: H100:1, max_price: 3}" <<<"run: echo from-the-order"
# With -o json: stdout is the answer alone (the job's output goes to stderr).
g -o json run "$WORK/order.yaml" --from tenant --yes --order --bid-window 3s >"$WORK/order.json" 2>"$WORK/order.err" ||
  { fail "run --order"; cat "$WORK/order.json" "$WORK/order.err" >&2; }
grep -q "from-the-order" "$WORK/order.err" || fail "--order: the job's output"
grep -q "awarded: lease" "$WORK/order.err" || fail "--order: no award"
olease="$(json_field '["lease_id"]' <"$WORK/order.json")"
[ "$(json_field '["settlement"]["paid_ugpn"]' <"$WORK/order.json")" = "$(lease_field "$olease" paid_ugpn)" ] ||
  fail "-o json: the settlement is not lease show's"
[ "$(json_field '["exit_code"]' <"$WORK/order.json")" = 0 ] || fail "-o json: exit_code"
[ "$(json_field '["timings"]["first_output_ms"] > 0' <"$WORK/order.json")" = True ] || fail "-o json: no first_output_ms"

# --- --detach: returns once running, says how to come back and what needs lease watch ---
task "$WORK/long.yaml" "{gpus: H100:1, max_price: 3}" <<<'run: echo job-is-ready; exec sleep 120'
g run "$WORK/long.yaml" --from tenant --yes --detach >"$WORK/detach.out" 2>"$WORK/detach.err" ||
  { fail "run --detach"; cat "$WORK/detach.err" >&2; }
dlease="$(sed -n 's/^==> waiting for provider: lease \([0-9]*\)$/\1/p' "$WORK/detach.err")"
grep -q "gpunet logs $dlease -f" "$WORK/detach.err" || fail "--detach: no way back"
grep -q "close_on_exit now needs \`gpunet lease watch $dlease\`" "$WORK/detach.err" || fail "--detach: close_on_exit not mentioned"
[ "$(lease_field "$dlease" state)" = started ] || fail "--detach: lease $dlease not running"
g lease close "$dlease" --from tenant >/dev/null || fail "close the detached lease"

# --- Ctrl-C under a terminal: keep, then close ---
# ctrl_c ANSWER EXPECTED_RC EXPECTED_STATE LINE: runs long.yaml on a pty, Ctrl-C once
# the job runs, answers; checks the exit status, the lease's state and a line said.
ctrl_c() {
  local out="$WORK/ctrl-c-$1.out" rc lease
  $PY "$HERE/ctrl_c.py" "job-is-ready" "$1" "$GPUNET" run "$WORK/long.yaml" --from tenant --yes >"$out" 2>&1
  rc=$?
  [ "$rc" -eq "$2" ] || { fail "Ctrl-C $1: exit $rc, expected $2"; cat "$out" >&2; }
  lease="$(sed -n 's/^==> waiting for provider: lease \([0-9]*\).*$/\1/p' "$out" | tr -d '\r')"
  [ "$(lease_field "$lease" state)" = "$3" ] || fail "Ctrl-C $1: lease $lease not $3"
  grep -q "${4//LEASE/$lease}" "$out" || { fail "Ctrl-C $1: no \"$4\""; cat "$out" >&2; }
  [ "$3" = closed ] || g lease close "$lease" --from tenant >/dev/null || fail "close the kept lease"
}
ctrl_c k 0 started "lease LEASE keeps running"
ctrl_c c 130 closed "GPN to the provider, refunded"
# SIGINT with no terminal to ask on: it closes.
setsid "$GPUNET" run "$WORK/long.yaml" --from tenant --yes </dev/null >"$WORK/int.out" 2>"$WORK/int.err" &
run_pid=$!
job_ready() { grep -q job-is-ready "$WORK/int.out"; }
wait_for 30 job_ready || fail "SIGINT without a terminal: the job did not start"
kill -INT "$run_pid"
rc=0
wait "$run_pid" || rc=$?
[ "$rc" -eq 130 ] || { fail "SIGINT without a terminal: exit $rc, expected 130"; cat "$WORK/int.err" >&2; }
ilease="$(sed -n 's/^==> waiting for provider: lease \([0-9]*\)$/\1/p' "$WORK/int.err")"
grep -q "no terminal to ask on: closing the lease" "$WORK/int.err" || fail "SIGINT without a terminal: not said"
[ "$(lease_field "$ilease" state)" = closed ] || fail "SIGINT without a terminal: lease $ilease not closed"

# --- a provider that does not run: the message, the lease stays reserved, no close ---
# Its daemon is down; a stand-in still lists its environments (so run leases).
kill -TERM "$DAEMON_PID"
daemon_wait_exit
envs_pid=""
trap 'kill $envs_pid 2>/dev/null; daemon_cleanup' EXIT
# First with a key that is not the ledger's: refused before anything is asked of it,
# the offer skipped, the order gets no bid and is refunded.
provider_tls_identity "$WORK/other" >/dev/null || fail "make another TLS identity"
$PY "$HERE/envs_only.py" "$API_PORT" "$WORK/other/tls/cert.pem" "$WORK/other/tls/key.pem" &
envs_pid=$!
api_listens() { $PY -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$API_PORT" 2>/dev/null; }
wait_for 10 api_listens || fail "the stand-in tenant API did not come up"
expect_error "a provider whose key is not the ledger's" "refunded" \
  g run "$WORK/echo0.yaml" --from tenant --yes --bid-window 1s
grep -q "skipping provider .*presented a TLS key whose SHA-256 SPKI fingerprint is" "$WORK/err" ||
  { fail "a provider with another TLS key was not refused"; cat "$WORK/err" >&2; }
kill "$envs_pid"
wait "$envs_pid" 2>/dev/null
# Then with its own key: run leases and waits.
$PY "$HERE/envs_only.py" "$API_PORT" "$PHOME/tls/cert.pem" "$PHOME/tls/key.pem" &
envs_pid=$!
wait_for 10 api_up || fail "the stand-in tenant API did not come up"
task "$WORK/none.yaml" "{gpus: H100:1, max_price: 3}" <<<"run: echo never"
setsid "$GPUNET" run "$WORK/none.yaml" --from tenant --yes </dev/null >"$WORK/none.out" 2>"$WORK/none.err" &
run_pid=$!
said() { grep -q "has not started lease" "$WORK/none.err"; }
wait_for 30 said || { fail "no message about a provider that does not start"; cat "$WORK/none.err" >&2; }
grep -q "the whole deposit 2.5 GPN comes back to you" "$WORK/none.err" || fail "the refund is not stated"
grep -q "gpunet run waits" "$WORK/none.err" || fail "run does not say it waits"
kill -TERM "$run_pid"
wait "$run_pid" 2>/dev/null
nlease="$(sed -n 's/^==> waiting for provider: lease \([0-9]*\)$/\1/p' "$WORK/none.err")"
[ "$(lease_field "$nlease" state)" = reserved ] || fail "the unstarted lease $nlease was closed"
[ "$(lease_field "$nlease" paid_ugpn)" = 0 ] || fail "the unstarted lease $nlease paid a charge"

kill "$envs_pid"
devnet_stop
[ "$failures" -eq 0 ] || { echo "--- daemon log:" >&2; tail -50 "$WORK/daemon.log" >&2; }
checks_report "gpunet run: an echo job from an offer (upload, secret, logs, outputs, settlement, timings), outputs that try to escape, an interactive task, an upload over the disk share, malformed task, no funds, no tty, nothing fits (refunded order), --order, --detach, Ctrl-C keep and close, a provider that does not start"
