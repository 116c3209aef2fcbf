#!/usr/bin/env bash
# `make demo`: the product's whole story on one machine, unattended, in a few minutes.
#  1. A devnet (a development chain); alice sends bob tokens through the CLI: the
#     balances before and after, the block holding the transfer, a verified proof.
#  2. A provider financed by an investor (20% of its earnings) puts one machine with
#     two GPUs on the ledger (`provider apply`) and runs the real daemon (`provider
#     run`): the GPUs are declared on device nodes on a host without NVIDIA, the real
#     ones where NVML finds them.
#  3. A tenant runs a small PyTorch training job (docs/examples/task.yaml): the logs
#     stream, the checkpoint comes back, the lease closes; the settlement (owner,
#     investor, fees burned, the tenant's refund) is printed and checked to the ugpn,
#     and the conservation equation must hold.
#  4. An interactive lease (docs/examples/interactive.yaml): ssh through the config
#     `gpunet ssh-config` writes, a file over scp, and curl through `gpunet forward`
#     to a web server inside the lease. No port is opened on the provider.
# Prints "demo OK" only when every check passed; exits non-zero otherwise, and
# stops every process it started either way.
# usage: scripts/demo.sh path/to/gpunet [amount]   (as root: the sandbox needs it)
# GPUNET_DEMO_FAKE_NVML=build/tests/libfake_nvml.so GPUNET_FAKE_NVML_STATE=state.json
# dry-runs the NVML path on a host without a GPU (tests/util/fake_nvml.cpp).
set -uo pipefail
GPUNET="$(realpath "${1:?usage: demo.sh path/to/gpunet [amount]}")"
AMOUNT="${2:-12.5}"
SRC="$(cd "$(dirname "$0")/.." && pwd)"
EXAMPLES="$SRC/docs/examples"
if [ "$(id -u)" -ne 0 ]; then
  echo "make demo runs a provider's daemon, whose sandbox (bubblewrap, cgroups, GPU device nodes) needs root: run it as root" >&2
  exit 1
fi
# shellcheck source=../tests/util/devnet.sh
source "$SRC/tests/util/devnet.sh"
# shellcheck source=../tests/util/provider_daemon.sh
source "$SRC/tests/util/provider_daemon.sh"
devnet_workdir gpunet-demo
BG_PIDS=()  # gpunet forward and the like: stopped before the daemon and the devnet
demo_cleanup() {
  local pid
  for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  daemon_cleanup
}
trap demo_cleanup EXIT
trap 'exit 130' INT TERM
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() {
  echo "DEMO FAILED: $*" >&2
  if [ -s "$WORK/d.log" ]; then
    echo "--- the provider daemon's log, last 20 lines:" >&2
    tail -20 "$WORK/d.log" >&2
  fi
  exit 1
}
check() { eval "$1" || die "$2"; }
jget() { $PY -c "import json,sys; print(json.load(sys.stdin)$1)"; }
bal() { g -o json query account "$1" | jget '["balance_ugpn"]'; }
burned() { g -o json query conservation | jget '["burned_ugpn"]'; }
fmt() { $PY -c "import sys; v=int(sys.argv[1]); s='-' if v<0 else ''; v=abs(v); print(f'{s}{v//10**6}.{v%10**6:06d} GPN ({s}{v} ugpn)')" "$1"; }

# ---------------------------------------------------------------- 1. the chain
step "Starting gpunet devnet: a development chain (its genesis says so: declared GPUs are allowed)"
devnet_start_with_genesis '{"development": true}'
echo "  RPC $DEVNET_URL, home $GPUNET_HOME; funded keys: alice bob carol provider operator investor tenant"
g status || die "gpunet status"

step "Balances before"
g query account alice && g query account bob

step "gpunet send alice bob $AMOUNT"
g send alice bob "$AMOUNT" --memo "make demo" | tee "$WORK/send.out"
height="$(sed -n 's/^Committed in block \([0-9]*\).*/\1/p' "$WORK/send.out")"
check '[ -n "$height" ]' "the transfer was not committed"

step "Balances after"
g query account alice && g query account bob

step "The block holding the transfer: gpunet query block $height"
g query block "$height"

step "gpunet query account bob --prove"
g query account bob --prove | tee "$WORK/prove.out"
grep -q '^proof verified against state root' "$WORK/prove.out" || die "bob's balance was not proven"

# ---------------------------------------------------------------- 2. the provider
step "The provider's host: a home with the operator key and a TLS identity, and its GPUs"
provider_home "$WORK/phome" 2  # PHOME, TLS_FP, API_PORT; two device nodes in $WORK/dev
[ "$failures" -eq 0 ] || die "the provider home"
gpu_model=H100 gpus=2 vram=80 driver=550.54.15 cuda=12.4 cc=9.0
declaration="$(declared_two_gpus_yaml; echo "  device_dir: $WORK/dev")"
# A dry run of the NVML path on a host without a GPU: GPUNET_DEMO_FAKE_NVML names
# tests' libfake_nvml.so, answering from GPUNET_FAKE_NVML_STATE (tests/util/fake_nvml.cpp),
# whose GPUs' minors must be 0 and 1 (the device nodes made above).
fake_nvml="${GPUNET_DEMO_FAKE_NVML:-}"
if [ -n "$fake_nvml" ]; then
  mkdir -p "$WORK/lib" && ln -sf "$(realpath "$fake_nvml")" "$WORK/lib/libnvidia-ml.so.1"
  export LD_LIBRARY_PATH="$WORK/lib"
  echo "  FAKE NVML: $fake_nvml (a dry run of the NVML path, not a GPU)"
fi
if "$GPUNET" provider gpus >"$WORK/gpus.txt" 2>&1; then
  # NVML found GPUs: the machine is what `provider init` probes on this host.
  GPUNET_PASSPHRASE=devnet g provider init --home "$WORK/probe" --owner provider >/dev/null 2>&1 ||
    die "provider init could not probe this host's GPUs"
  probed() { sed -n "s/^ *$1: *\"\{0,1\}\([^\" ]*\).*/\1/p" "$WORK/probe/provider.yaml" | head -1; }
  gpu_model="$(probed gpu)" vram="$(probed vram_gib)" driver="$(probed driver)"
  cuda="$(probed cuda)" cc="$(probed compute_capability)"
  found="$(probed gpus)"
  gpus=$((found < 2 ? found : 2))
  declaration=""
  [ -z "$fake_nvml" ] || declaration="$(printf '  nvml_library: %s\n  device_dir: %s' "$WORK/lib/libnvidia-ml.so.1" "$WORK/dev")"
  check '[ "$gpus" -ge 1 ]' "NVML lists no GPU"
  echo "  NVML: $found GPU(s) of model $gpu_model; the provider sells $gpus"
else
  echo "  no NVIDIA GPU here ($(head -1 "$WORK/gpus.txt")):"
  echo "  two GPUs declared on device nodes $WORK/dev/nvidia0 and nvidia1 (a development chain only)"
fi
sed -e "s|@API_PORT@|$API_PORT|g" -e "s|@TLS_FP@|$TLS_FP|" -e "s|@NODE_URL@|$DEVNET_URL|" \
  -e "s|@METRICS_PORT@|$(free_port)|" -e "s|@GPU_MODEL@|$gpu_model|g" -e "s|@GPUS@|$gpus|" \
  -e "s|@VRAM_GIB@|$vram|" -e "s|@DRIVER@|$driver|" -e "s|@CUDA@|$cuda|" -e "s|@CC@|$cc|" \
  -e '/^@GPU_DECLARATION@$/d' "$EXAMPLES/demo-provider.yaml" >"$PHOME/provider.yaml"
[ -z "$declaration" ] || echo "$declaration" >>"$PHOME/provider.yaml"
grep -v "^ *#" "$PHOME/provider.yaml" | grep -q "@[A-Z_]*@" && die "provider.yaml: a @NAME@ field left unfilled"
grep -v '^ *#' "$PHOME/provider.yaml" | sed -n '/^payouts/,/^offers/p' | sed '$d'

step "gpunet provider apply --owner provider: the ledger made to match provider.yaml (bond, machine, offer)"
g provider apply --home "$PHOME" --owner provider --yes || die "provider apply"

step "gpunet provider run: the daemon (heartbeats, leases, the sandbox, the tenant API on 127.0.0.1:$API_PORT)"
daemon_start "$WORK/d.log"
heartbeat() { grep -qs 'heartbeat: committed' "$WORK/d.log"; }
wait_for 60 heartbeat || die "the daemon sent no heartbeat within 60 s"
echo "  daemon pid $DAEMON_PID: heartbeat committed"
g offers "gpu=$gpu_model" || die "gpunet offers"

# ---------------------------------------------------------------- 3. a training job
provider0="$(bal provider)" investor0="$(bal investor)" tenant0="$(bal tenant)" burned0="$(burned)"
# The tenant's project folder: the task files and what they upload, as a developer has them.
TENANT_DIR="$WORK/tenant"
mkdir -p "$TENANT_DIR"
cp -r "$EXAMPLES/task.yaml" "$EXAMPLES/train" "$EXAMPLES/interactive.yaml" "$EXAMPLES/site" "$TENANT_DIR/"
if [ "$gpu_model" != H100 ]; then  # NVML found another model: the tenant asks for it
  sed -i "s/^\(  gpus: \)H100:1/\1$gpu_model:1/" "$TENANT_DIR/task.yaml" "$TENANT_DIR/interactive.yaml"
  grep -q "gpus: $gpu_model:1" "$TENANT_DIR/task.yaml" || die "task.yaml: could not ask for $gpu_model"
fi
step "The tenant's task: docs/examples/task.yaml (and train/train.py)"
grep -v '^#' "$TENANT_DIR/task.yaml"
g task check "$TENANT_DIR/task.yaml" >/dev/null || die "gpunet task check"

# The lease's id, from `gpunet lease list --from tenant --all`: the newest one.
newest_lease() { g -o json lease list --from tenant --all | $PY -c 'import json,sys; print(max(int(l["lease_id"]) for l in json.load(sys.stdin)["leases"]))'; }

step "gpunet run task.yaml --from tenant --yes"
(cd "$TENANT_DIR" && g run task.yaml --from tenant --yes) | tee "$WORK/run.out"
[ "${PIPESTATUS[0]}" -eq 0 ] || die "gpunet run failed"
lease="$(newest_lease)"
model="$(find "$TENANT_DIR" -name model.pt | head -1)"
check '[ -n "$lease" ]' "which lease ran the job is unknown"
grep -q '^torch .*, training on ' "$WORK/run.out" || die "the job did not say where it trains"
grep -q '^step .* val_loss ' "$WORK/run.out" || die "the job printed no loss"
check '[ -n "$model" ] && [ -s "$model" ]' "the checkpoint did not come back"
step "The checkpoint came back: $model"
$PY - "$model" <<'PY' || die "the checkpoint does not load"
import sys, torch
c = torch.load(sys.argv[1], map_location="cpu")
h = c["history"]
print("  step %d, %d tensors; held-out loss %.5f at step %d -> %.5f at step %d" % (
    c["step"], len(c["model"]), h[0][2], h[0][0], h[-1][2], h[-1][0]))
if not h[-1][2] < h[0][2] / 4:
    sys.exit("the held-out loss did not fall")
PY

step "Settlement of lease $lease"
wait_for 30 eval "[ \"\$(lease_field $lease state)\" = closed ]" || die "lease $lease is not closed"
g -o json lease show "$lease" >"$WORK/lease.json"
lf() { jget "[\"lease\"][\"$1\"]" <"$WORK/lease.json"; }
deposited="$(lf deposited_ugpn)" paid="$(lf paid_ugpn)" refunded="$(lf refunded_ugpn)"
escrow="$(lf escrow_ugpn)" state="$(lf state)"
provider_earned=$(($(bal provider) - provider0))
investor_earned=$(($(bal investor) - investor0))
tenant_spent=$((tenant0 - $(bal tenant)))
burned_now=$(($(burned) - burned0))
echo "  lease state          $state"
echo "  deposited            $(fmt "$deposited")"
echo "  paid to the provider $(fmt "$paid") (a lease closed within its first 10 minutes, its"
echo "                       start deadline, pays at least the reservation charge: docs/market.md)"
echo "    owner (80%)        $(fmt "$provider_earned")"
echo "    investor (20%)     $(fmt "$investor_earned")"
echo "  refunded to tenant   $(fmt "$refunded")"
echo "  tenant spent         $(fmt "$tenant_spent") (the GPU time and the tenant's tx fees)"
echo "  fees burned          $(fmt "$burned_now") (every tx since the lease: the tenant's and the daemon's)"
check '[ "$state" = closed ]' "the lease is not closed"
check '[ "$escrow" -eq 0 ]' "escrow left after close: $escrow"
check '[ "$paid" -gt 0 ]' "nothing was paid for the job's GPU time"
check '[ "$refunded" -gt 0 ]' "nothing was refunded for the hour the job did not use"
check '[ $((paid + refunded)) -eq "$deposited" ]' "paid $paid + refunded $refunded != deposited $deposited"
check '[ $((provider_earned + investor_earned)) -eq "$paid" ]' "owner $provider_earned + investor $investor_earned != paid $paid"
check '[ "$tenant_spent" -gt "$paid" ] && [ "$tenant_spent" -lt $((paid + 1000000)) ]' \
  "the tenant spent $tenant_spent for $paid of GPU time"
# Each payout is split with a floor per payee (the remainder to the owner); the
# lease is paid in at most a few payouts, so the investor may get a few ugpn less.
share=$((paid * 2000 / 10000))
check '[ "$investor_earned" -le "$share" ] && [ "$investor_earned" -ge $((share - 3)) ]' \
  "investor got $investor_earned, not 20% of $paid (floor per payout)"

step "gpunet query conservation"
g query conservation | tee "$WORK/conservation.out" || die "the conservation equation does not hold"

# ---------------------------------------------------------------- 4. an interactive lease
step "An interactive machine (docs/examples/interactive.yaml): gpunet run interactive.yaml --from tenant --yes --detach"
grep -v '^#' "$TENANT_DIR/interactive.yaml"
(cd "$TENANT_DIR" && g run interactive.yaml --from tenant --yes --detach) || die "gpunet run --detach"
ilease="$(newest_lease)"
check '[ "$ilease" != "$lease" ]' "no new lease for the interactive machine"

step "gpunet ssh-config $ilease: an OpenSSH host entry whose ProxyCommand is gpunet itself"
ssh-keygen -q -t ed25519 -N '' -C demo-tenant -f "$WORK/id_ed25519" || die "ssh-keygen"
g ssh-config "$ilease" --identity "$WORK/id_ed25519" --from tenant | tee "$WORK/ssh-config.out" ||
  die "gpunet ssh-config"
ssh_config="$GPUNET_HOME/ssh/config" host="gpunet-$ilease"
grep -q "^Host $host\$" "$ssh_config" || die "no Host $host in $ssh_config"
sed -n "/^Host $host\$/,/^\$/p" "$ssh_config"
step "ssh -F $ssh_config $host: a command inside the lease"
ssh -F "$ssh_config" -o BatchMode=yes "$host" 'echo "inside: uid $(id -u) on lease $GPUNET_LEASE_ID, CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"; ls /work' |
  tee "$WORK/ssh.out" || die "ssh through the ProxyCommand"
grep -q "^inside: uid [0-9]* on lease $ilease," "$WORK/ssh.out" || die "ssh did not run inside lease $ilease"
step "scp: a file to the lease and back"
head -c 100000 /dev/urandom >"$WORK/blob.bin"
scp -q -F "$ssh_config" -o BatchMode=yes "$WORK/blob.bin" "$host:/work/blob.bin" || die "scp to the lease"
scp -q -F "$ssh_config" -o BatchMode=yes "$host:/work/blob.bin" "$WORK/blob.back" || die "scp from the lease"
cmp "$WORK/blob.bin" "$WORK/blob.back" || die "the file came back changed"
echo "  100000 bytes to /work/blob.bin and back, identical"
step "gpunet forward $ilease 8000: the web server inside the lease, on 127.0.0.1 here"
local_port="$(free_port)"
"$GPUNET" forward "$ilease" "8000:$local_port" --from tenant </dev/null >"$WORK/forward.log" 2>&1 &
BG_PIDS+=($!)
page() { curl -fsS --max-time 5 "http://127.0.0.1:$local_port/index.html" >"$WORK/page.html" 2>/dev/null; }
wait_for 30 page || die "curl through gpunet forward got no page"
cat "$WORK/forward.log"
echo "\$ curl http://127.0.0.1:$local_port/index.html"
cat "$WORK/page.html"
grep -q 'served from inside a gpunet lease' "$WORK/page.html" || die "the page is not the lease's"
step "gpunet lease close $ilease"
g lease close "$ilease" --from tenant || die "lease close"

step "Stopping the provider's daemon and the devnet"
for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
BG_PIDS=()
kill -TERM "$DAEMON_PID"
daemon_wait_exit
check '[ "$rc" -eq 0 ]' "the daemon exited $rc on SIGTERM"
devnet_stop
[ "$failures" -eq 0 ] || die "$failures check(s) failed"
echo
echo "demo OK"
