#!/usr/bin/env bash
# Issue 18 items 3, 8 and 9: the interactive verbs against a real `gpunet provider
# run` (devnet, the daemon with declared GPUs, the real sandbox, the in-sandbox init),
# one lease with an interactive manifest (no command):
#   - `gpunet exec`: output, stderr apart, stdin (3 MB whole), exit codes (a signal:
#     128+N), -t on a pty;
#   - `gpunet cp` a file and a folder both ways;
#   - `gpunet forward` + curl to `python3 -m http.server` in the lease;
#   - `gpunet shell` under a pty driver (pty_shell.py): the size follows a resize,
#     Ctrl-C interrupts a sleep and the shell stays, the exit code, the mode restored;
#   - `gpunet ssh-config`: ssh runs a command and scp copies a file both ways through
#     the generated config (ProxyCommand = gpunet ssh-proxy, host key checked), rsync
#     -e 'ssh -F CONFIG' a folder both ways, and
#     the ledger key is refused as the identity;
#   - the host is out of reach: a port the host listens on at 127.0.0.1 is refused
#     from exec, and a forward to it finds nothing listening (the message says so);
#   - after the lease closed, exec is refused with the 410 message.
# Needs root (the daemon, device nodes), ssh, scp and curl; skipped (77) otherwise.
#   interactive_test.sh GPUNET
set -u
GPUNET="$(realpath "$1")"
HERE="$(dirname "$(realpath "$0")")"
# shellcheck source=../../util/devnet.sh
source "$HERE/../../util/devnet.sh"
# shellcheck source=../../util/provider_daemon.sh
source "$HERE/../../util/provider_daemon.sh"
# shellcheck source=../tenant_api/tenant_api_daemon.sh
source "$HERE/../tenant_api/tenant_api_daemon.sh"
devnet_workdir gpunet-interactive-test
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (the provider daemon, device nodes)"; exit 77; }
for tool in ssh scp ssh-keygen curl /usr/sbin/sshd; do
  command -v "$tool" >/dev/null || { echo "SKIP: no $tool"; exit 77; }
done
HOST_SERVER_PID=""
cleanup() {
  [ -n "$HOST_SERVER_PID" ] && kill "$HOST_SERVER_PID" 2>/dev/null
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null; done
  daemon_cleanup
}
trap cleanup EXIT

# --- a development devnet, the daemon with two declared GPUs, an interactive lease ---
tenant_api_daemon_up "metrics_listen: 127.0.0.1:$(free_port)"
cat >"$WORK/machine.yaml" <<'YAML'
version: 1
environment: host
command: []
YAML
lease="$(tenant_api_lease "$WORK/machine.yaml")" || fail "lease create"
g lease submit "$lease" --manifest "$WORK/machine.yaml" --from tenant >"$WORK/submit.txt" 2>&1 ||
  { fail "lease submit"; cat "$WORK/submit.txt" "$WORK/daemon.log" >&2; exit 1; }
# One delegation, so the verbs below sign without the tenant key's passphrase.
g lease grant "$lease" --session-key laptop --from tenant >/dev/null || fail "lease grant"
# Each call bounded, so a session that hangs fails its check instead of the suite.
x() { timeout 30 "$GPUNET" exec "$lease" "$@"; }  # stdin is the caller's
gcp() { timeout 60 setsid "$GPUNET" cp "$@" </dev/null; }
running() { x -n -- true 2>/dev/null; }
wait_for 30 running || { fail "no exec session on the interactive lease"; x -n -- true; cat "$WORK/daemon.log" >&2; exit 1; }

# --- exec: output, stderr apart, stdin, exit codes ---
out="$(x -n -- sh -c 'echo out; echo err >&2' 2>"$WORK/err.txt")" || fail "exec: exit $?"
[ "$out" = out ] || fail "exec: stdout is '$out'"
[ "$(cat "$WORK/err.txt")" = err ] || fail "exec: stderr is '$(cat "$WORK/err.txt")'"
[ "$(printf 'from-stdin\n' | x -- cat)" = from-stdin ] || fail "exec: stdin did not reach the command"
x -n -- sh -c 'exit 3'
[ $? -eq 3 ] || fail "exec: exit 3 not passed on"
x -n -- sh -c 'kill -TERM $$'
[ $? -eq 143 ] || fail "exec: a command killed by SIGTERM is not 143"
x -n -- /no/such/command 2>/dev/null
rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 255 ] || fail "exec: a missing command exits $rc"
[ "$(x -n -- sh -c 'echo $HOME; pwd')" = "$(printf '/work\n/work')" ] || fail "exec: not in /work"
head -c 3000000 /dev/urandom >"$WORK/big.bin"
[ "$(x -- sha256sum <"$WORK/big.bin" | cut -d' ' -f1)" = "$(sha256sum <"$WORK/big.bin" | cut -d' ' -f1)" ] ||
  fail "exec: 3 MB through stdin did not arrive whole"
x -t -n -- tty | grep -q '^/dev/pts/' || fail "exec -t: the command has no pty"

# --- cp: a file and a folder, both ways ---
mkdir -p "$WORK/up/sub" && echo one >"$WORK/up/a.txt" && head -c 300000 /dev/urandom >"$WORK/up/sub/blob"
gcp "$WORK/up/a.txt" "$lease:" || fail "cp: file up"
[ "$(x -n -- cat /work/a.txt)" = one ] || fail "cp: the file did not arrive in /work"
gcp "$WORK/up/a.txt" "$lease:renamed.txt" && [ "$(x -n -- cat renamed.txt)" = one ] || fail "cp: file up under another name"
gcp "$WORK/up" "$lease:" 2>"$WORK/cp.err" && fail "cp: a folder without -r was copied"
grep -q -- "-r" "$WORK/cp.err" || fail "cp: the folder refusal does not say -r"
gcp -r "$WORK/up" "$lease:tree" || fail "cp -r: folder up"
mkdir "$WORK/down"
gcp -r "$lease:tree" "$WORK/down/" || fail "cp -r: folder down"
cmp -s "$WORK/up/sub/blob" "$WORK/down/tree/sub/blob" || fail "cp -r: the folder came back different"
gcp "$lease:renamed.txt" "$WORK/down/r.txt" && [ "$(cat "$WORK/down/r.txt")" = one ] || fail "cp: file down"
gcp "$lease:nothing-here" "$WORK/down/" 2>"$WORK/cp.err" && fail "cp: a missing file was copied"
grep -q "no nothing-here on the lease" "$WORK/cp.err" || fail "cp: a missing file's message: $(cat "$WORK/cp.err")"

# --- forward: curl to a web server in the lease ---
x -n -- sh -c 'echo served-from-lease > /work/index.html'
"$GPUNET" exec "$lease" -n -- python3 -m http.server 8000 --bind 127.0.0.1 --directory /work >/dev/null 2>&1 &
LOCAL="$(free_port)"
"$GPUNET" forward "$lease" "8000:$LOCAL" >"$WORK/forward.txt" 2>"$WORK/forward.err" &
FORWARD_PID=$!
served() { curl -sf "http://127.0.0.1:$LOCAL/index.html" 2>/dev/null | grep -q served-from-lease; }
wait_for 20 served || fail "forward: curl did not get the lease's page"
grep -q "forwarding http://127.0.0.1:$LOCAL -> lease $lease port 8000" "$WORK/forward.txt" || fail "forward: its line: $(cat "$WORK/forward.txt")"
"$GPUNET" forward "$lease" "8000:$LOCAL" 2>"$WORK/busy.err" && fail "forward: a busy local port was taken"
grep -q "in use" "$WORK/busy.err" || fail "forward: a busy port's message: $(cat "$WORK/busy.err")"
kill "$FORWARD_PID"

# --- the host is out of reach: exec and forward to a port it listens on ---
HOST_PORT="$(free_port)"
$PY -m http.server "$HOST_PORT" --bind 127.0.0.1 --directory "$WORK" >/dev/null 2>&1 &
HOST_SERVER_PID=$!
host_up() { curl -sf -o /dev/null "http://127.0.0.1:$HOST_PORT/"; }
wait_for 10 host_up || fail "the host's own server did not start"
x -n -- python3 -c "
import socket, sys
try:
    socket.create_connection(('127.0.0.1', $HOST_PORT), timeout=3)
except OSError as e:
    print('refused', e); sys.exit(0)
print('REACHED the host'); sys.exit(1)" >"$WORK/reach.txt" 2>&1 || fail "exec reached the host's 127.0.0.1:$HOST_PORT: $(cat "$WORK/reach.txt")"
LOCAL2="$(free_port)"
"$GPUNET" forward "$lease" "$HOST_PORT:$LOCAL2" >/dev/null 2>"$WORK/forward2.err" &
FORWARD_PID=$!
listening() { $PY -c "import socket; socket.create_connection(('127.0.0.1', $LOCAL2), timeout=1)" 2>/dev/null; }
wait_for 10 listening || fail "forward 2 did not listen"
curl -s -m 10 "http://127.0.0.1:$LOCAL2/" >"$WORK/forward2.body" 2>/dev/null
[ -s "$WORK/forward2.body" ] && fail "forward reached the host's 127.0.0.1:$HOST_PORT"
said() { grep -q "nothing listens on port $HOST_PORT" "$WORK/forward2.err"; }
wait_for 10 said || fail "forward to a port nothing listens on: the message: $(cat "$WORK/forward2.err")"
kill "$FORWARD_PID"

# --- shell under a pty: resize, Ctrl-C, the exit code, the terminal restored ---
timeout 100 $PY "$HERE/pty_shell.py" "$GPUNET" "$lease" || fail "gpunet shell (see above)"

# --- ssh-config: ssh and scp through the generated config ---
ssh-keygen -q -t ed25519 -N '' -f "$WORK/id_ed25519" || fail "ssh-keygen"
timeout 30 "$GPUNET" ssh-config "$lease" --identity "$GPUNET_HOME/keys/tenant.json" 2>"$WORK/ledger.err" && fail "ssh-config took the ledger key"
grep -q "ledger key\|keystore" "$WORK/ledger.err" || fail "ssh-config: the ledger key's refusal: $(cat "$WORK/ledger.err")"
timeout 30 "$GPUNET" ssh-config "$lease" --identity "$WORK/id_ed25519" >"$WORK/ssh-config.txt" || fail "ssh-config"
CONFIG="$GPUNET_HOME/ssh/config"
grep -q "ssh -F $CONFIG gpunet-$lease" "$WORK/ssh-config.txt" || fail "ssh-config does not say how to use it"
timeout 30 "$GPUNET" ssh-config "$lease" --identity "$WORK/id_ed25519" >/dev/null || fail "ssh-config again"
[ "$(grep -c "^Host gpunet-$lease\$" "$CONFIG")" -eq 1 ] || fail "ssh-config duplicated the Host block"
[ "$(grep -c "^gpunet-$lease " "$GPUNET_HOME/ssh/known_hosts")" -eq 1 ] || fail "known_hosts has not one line for the lease"
S=(-F "$CONFIG" -o BatchMode=yes -o ConnectTimeout=20)
[ "$(timeout 30 ssh "${S[@]}" "gpunet-$lease" 'echo ssh-ran-$((2+3))' </dev/null 2>"$WORK/ssh.err")" = ssh-ran-5 ] ||
  fail "ssh through the config: $(tail -5 "$WORK/ssh.err")"
echo scp-up >"$WORK/scp.txt"
timeout 30 scp "${S[@]}" -q "$WORK/scp.txt" "gpunet-$lease:/work/scp.txt" 2>"$WORK/scp.err" || fail "scp up: $(tail -3 "$WORK/scp.err")"
[ "$(x -n -- cat /work/scp.txt)" = scp-up ] || fail "scp up: the file is not in the lease"
timeout 30 scp "${S[@]}" -q "gpunet-$lease:/work/a.txt" "$WORK/scp-down.txt" 2>"$WORK/scp.err" || fail "scp down: $(tail -3 "$WORK/scp.err")"
[ "$(cat "$WORK/scp-down.txt" 2>/dev/null)" = one ] || fail "scp down: not the lease's file"
# rsync over ssh through the same config: a folder up, then back down, whole.
if command -v rsync >/dev/null; then
  mkdir -p "$WORK/rs/sub" && echo rsync-one >"$WORK/rs/a.txt" && head -c 200000 /dev/urandom >"$WORK/rs/sub/blob"
  timeout 30 rsync -a -e "ssh ${S[*]}" "$WORK/rs/" "gpunet-$lease:/work/rs/" 2>"$WORK/rsync.err" </dev/null ||
    fail "rsync up: $(tail -3 "$WORK/rsync.err")"
  [ "$(x -n -- sha256sum /work/rs/sub/blob | cut -d' ' -f1)" = "$(sha256sum <"$WORK/rs/sub/blob" | cut -d' ' -f1)" ] ||
    fail "rsync up: the folder is not whole in the lease"
  x -n -- sh -c 'echo made-in-lease > /work/rs/sub/new.txt'
  timeout 30 rsync -a -e "ssh ${S[*]}" "gpunet-$lease:/work/rs/" "$WORK/rs-back/" 2>"$WORK/rsync.err" </dev/null ||
    fail "rsync down: $(tail -3 "$WORK/rsync.err")"
  cmp -s "$WORK/rs/sub/blob" "$WORK/rs-back/sub/blob" && [ "$(cat "$WORK/rs-back/a.txt")" = rsync-one ] &&
    [ "$(cat "$WORK/rs-back/sub/new.txt" 2>/dev/null)" = made-in-lease ] || fail "rsync down: the folder came back different"
else
  echo "note: no rsync here; its check skipped"
fi
# A host key that is not the lease's: ssh refuses (host-key checking stays on).
sed -i "s|^gpunet-$lease .*|gpunet-$lease $(cut -d' ' -f1,2 "$WORK/id_ed25519.pub")|" "$GPUNET_HOME/ssh/known_hosts"
timeout 30 ssh "${S[@]}" "gpunet-$lease" true </dev/null 2>/dev/null && fail "ssh accepted a host key that is not the lease's"

# --- after the close: exec is refused with the 410 message ---
g lease close "$lease" --from tenant >/dev/null || fail "lease close"
closed() { ! x -n -- true 2>"$WORK/closed.err" && grep -q "closed" "$WORK/closed.err"; }
wait_for 20 closed || fail "exec after the close: $(cat "$WORK/closed.err")"
x -n -- true 2>/dev/null
[ $? -eq 255 ] || fail "exec after the close does not exit 255"

tenant_api_daemon_down
checks_report "interactive: exec, cp, forward, shell on a pty, ssh, scp and rsync through ssh-config, the host out of reach, exec after the close"
