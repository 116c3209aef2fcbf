#!/usr/bin/env bash
# Issue 18 item 7: from `gpunet run task.yaml` to its echo job's first output line,
# through real processes: a devnet with its default block timing (500 ms) and a
# development genesis, `gpunet provider run` with GPUs declared on device nodes (one
# per run, so no run waits for a closed lease's stop and idle check), the tenant API
# over TLS, the sandbox, and a tenant that types `gpunet run echo.yaml --from tenant
# --yes`: the offer, the lease, the manifest, the logs, the close, all by that one
# command. Each run is timed from the moment the bench starts `gpunet run` to the
# moment its stdout shows the job's line, with the breakdown below, and the bare
# sandbox start of the same run's spec beside it (bench_sandbox --like RUN_DIR).
# docs/provider.md ("Performance") says which instants are taken and why.
#   bench/run_to_first_output.sh [BUILD] [RUNS] [GAP_MS]   (default: build 20 1000)
# GAP_MS: the pause between one run's end and the next run's start. A run that
# starts right after the previous one's close waits for the devnet's next block
# slot (at most one block per 500 ms) before its lease is committed; a pause of a
# second lets each run start, as a developer's would, on a chain with no block
# just made. GAP_MS=0 gives the back-to-back figure.
# Needs root (device nodes, the sandbox), as the provider does; skips otherwise,
# and skips on a build without `gpunet run`. Run by `make bench`, never `make test`.
set -u
BUILD="${1:-build}"
RUNS="${2:-20}"
GAP_MS="${3:-1000}"
# shellcheck source=util/provider_bench.sh
source "$(dirname "$0")/util/provider_bench.sh"
if [ -x "$BUILD/bin/gpunet" ] && ! "$BUILD/bin/gpunet" --help | grep -q '^  run '; then
  echo "run_to_first_output: skipped (this gpunet has no \`gpunet run\`)"
  exit 0
fi
bench_start run_to_first_output "$BUILD"

# --- the chain (default block timing), the provider, its daemon ---
bench_provider $((RUNS < 2 ? 2 : RUNS)) '{}' default

# The job: one line. printf makes it, so the task's own text (which `gpunet run`
# may show) never holds the line it waits for.
mkdir -p "$WORK/tenant"
cat >"$WORK/tenant/echo.yaml" <<'YAML'
resources: {gpus: 1, max_price: 3, hours: 1}
run: printf 'first-%s\n' output-line
YAML

# --- the runs, one after another; a bare sandbox start after each ---
$PY - "$GPUNET" "$BENCH_SANDBOX" "$WORK" "$PHOME" "$RUNS" "$GAP_MS" <<'PY' || die "the runs"
import json, os, re, subprocess, sys, threading, time
gpunet, bench_sandbox, work, phome, runs, gap_ms = sys.argv[1:7]
runs, gap_ms = int(runs), int(gap_ms)

def now_ms():
    return time.time_ns() / 1e6  # CLOCK_REALTIME, the clock of blocks and events

def must(*args):
    r = subprocess.run([gpunet, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("gpunet %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r.stdout

out = open(work + "/runs.jsonl", "w")
seen = set()
for i in range(runs):
    time.sleep(gap_ms / 1000)
    r = {}
    r["run_started"] = now_ms()
    p = subprocess.Popen([gpunet, "run", "echo.yaml", "--from", "tenant", "--yes", "--timings"], cwd=work + "/tenant",
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = []
    t = threading.Thread(target=lambda: err.append(p.stderr.read()))
    t.start()
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.rstrip("\n").endswith("first-output-line"):
            r["tenant_first_line"] = now_ms()
            break
    rest = p.stdout.read()
    p.wait()
    t.join()
    if "tenant_first_line" not in r or p.returncode != 0:
        sys.exit("run %d: gpunet run: exit %s\n%s%s%s" % (i, p.returncode, "".join(lines), rest, "".join(err)))
    r["run_exited"] = now_ms()
    # gpunet run's own marks (--timings): ms since it began, by its clock.
    m = re.search(r"^timings (.*)$", rest + "".join(err), re.M)
    if not m:
        sys.exit("run %d: gpunet run --timings printed no timings line" % i)
    r["run_timings"] = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    leases = json.loads(must("-o", "json", "lease", "list", "--from", "tenant", "--all"))["leases"]
    new = [l["lease_id"] for l in leases if l["lease_id"] not in seen]
    if len(new) != 1:
        sys.exit("run %d: %d new leases, expected 1" % (i, len(new)))
    lease = str(new[0])
    seen.add(new[0])
    r["lease"] = int(lease)
    ledger = json.loads(must("-o", "json", "lease", "show", lease))["lease"]
    if ledger["state"] != "closed":
        sys.exit("run %d: lease %s is %s after gpunet run ended" % (i, lease, ledger["state"]))
    r["block_created"] = ledger["created_ms"]
    r["block_started"] = ledger["started_ms"]
    for e in json.loads(must("-o", "json", "lease", "events", lease, "--from", "tenant"))["events"]:
        r.setdefault("event_" + e["kind"], e["time_ms"])
    run_dir = "%s/sandbox/runs/lease-%s/" % (phome, lease)
    r["runtime_start_spec_written"] = os.stat(run_dir + "spec.json").st_mtime_ns / 1e6
    r["provider_log_written"] = os.stat(run_dir + "stdout.log").st_mtime_ns / 1e6
    b = subprocess.run([bench_sandbox, "--like", run_dir, "1"], capture_output=True, text=True)
    m = re.search(r"sandbox_start_ms=([0-9.]+)", b.stdout)
    if b.returncode != 0 or not m:
        sys.exit("bench_sandbox --like %s: exit %d: %s%s" % (run_dir, b.returncode, b.stdout, b.stderr))
    r["bare_sandbox_start_ms"] = float(m.group(1))
    out.write(json.dumps(r) + "\n")
    out.flush()
PY

# --- the figures ---
$PY - "$WORK" "$GAP_MS" <<'PY' || die "the figures"
import json, math, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/runs.jsonl")]

def pct(values, p):  # nearest rank: p95 of 20 is the 19th smallest
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]

# Each part, in ms, between consecutive instants (docs/provider.md, "Performance").
parts = [
    ("lease_committed", "gpunet run starts -> the block holding its MsgLeaseCreate (offers, "
     "/environments, the tx's simulation, the block)", lambda r: r["block_created"] - r["run_started"]),
    ("provider_noticed", "-> the daemon's `reserved` event", lambda r: r["event_reserved"] - r["block_created"]),
    ("lease_started", "-> the daemon's `started` event (MsgLeaseStarted's block)",
     lambda r: r["event_started"] - r["event_reserved"]),
    ("manifest_accepted", "-> Runtime::Start writes spec.json (the manifest through the tenant API)",
     lambda r: r["runtime_start_spec_written"] - r["event_started"]),
    ("sandbox_started", "-> the job's line on the provider's disk (stdout.log)",
     lambda r: r["provider_log_written"] - r["runtime_start_spec_written"]),
    ("first_output", "-> gpunet run prints it (the logs through the tenant API)",
     lambda r: r["tenant_first_line"] - r["provider_log_written"]),
]
total = [r["tenant_first_line"] - r["run_started"] for r in rows]
bare = [r["bare_sandbox_start_ms"] for r in rows]
print("run_to_first_output_ms_p50=%.0f p95=%.0f sandbox_start_ms=%.0f" % (
    statistics.median(total), pct(total, 95), statistics.median(bare)))
after = [r["run_exited"] - r["tenant_first_line"] for r in rows]
print("  runs=%d gap_ms=%s; after the line, gpunet run took p50=%.0f ms more (outputs, the close, its block)" % (
    len(rows), sys.argv[2], statistics.median(after)))
for name, what, f in parts:
    v = [f(r) for r in rows]
    print("  %-18s p50=%6.1f p95=%6.1f  %s" % (name, statistics.median(v), pct(v, 95), what))
# The same marks as gpunet run itself saw them (--timings: since it began), for the
# parts only the client knows: when it learnt of each step.
marks = ["lease_committed_ms", "provider_noticed_ms", "manifest_accepted_ms", "sandbox_started_ms", "first_output_ms"]
print("  gpunet run --timings (ms since it began, p50): " + " ".join(
    "%s=%.0f" % (k[:-3], statistics.median(r["run_timings"][k] for r in rows)) for k in marks))
PY
rc=$?
bench_stop
exit $rc
