#!/usr/bin/env bash
# Issue 17 item 10: from the block that creates a lease to its workload's first
# output line, with an echo workload, through real processes: a devnet (100 ms
# blocks), `gpunet provider run` with GPUs declared on a development genesis (device
# nodes, as the daemon tests make them; one per lease), the unprivileged tenant API
# over TLS, the sandbox, and a tenant using the gpunet CLI. docs/provider.md
# ("Performance") says which instants are taken, from which clock, how the total is
# split between the provider, the chain and the tenant, and what the figures were.
#   bench/lease_to_first_output.sh [BUILD] [LEASES]   (default: build 20)
# Needs root (device nodes, the sandbox), as the provider does; skips otherwise.
# Run by `make bench` (scripts/bench.sh), never by `make test`.
set -u
BUILD="${1:-build}"
LEASES="${2:-20}"
# shellcheck source=util/provider_bench.sh
source "$(dirname "$0")/util/provider_bench.sh"
bench_start lease_to_first_output "$BUILD"

# --- the chain, the provider, its daemon ---
bench_provider $((LEASES < 2 ? 2 : LEASES)) '{"manifest_timeout_ms": 60000}'
offer="$(g -o json offers | json_field '["offers"][0]["offer_id"]')"

cat >"$WORK/echo.yaml" <<'YAML'
version: 1
environment: host
command: ["/bin/echo", "first-output-line"]
YAML

# --- the leases, one after another; a bare sandbox start after each ---
# One line of JSON per lease in $WORK/leases.jsonl: the instants of docs/provider.md
# ("Performance").
$PY - "$GPUNET" "$BENCH_SANDBOX" "$WORK" "$PHOME" "$offer" "$LEASES" "$DAEMON_PID" <<'PY' || die "the leases"
import json, os, re, resource, subprocess, sys, time
gpunet, bench_sandbox, work, phome, offer, leases, daemon_pid = sys.argv[1:8]
leases = int(leases)
manifest = work + "/echo.yaml"
tick = os.sysconf("SC_CLK_TCK")

def now_ms():
    return time.time_ns() / 1e6  # CLOCK_REALTIME, the clock of blocks and events

def cli(*args):
    return subprocess.run([gpunet, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)

def must(*args):
    r = cli(*args)
    if r.returncode != 0:
        sys.exit("gpunet %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r.stdout

def cpu_ms(pids):
    """User+system CPU of these processes and their reaped children."""
    total = 0
    for pid in pids:
        try:
            fields = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total * 1000.0 / tick

def children_cpu_ms():  # every gpunet CLI run and bench_sandbox this driver waited for
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (u.ru_utime + u.ru_stime) * 1000.0

def daemon_pids():
    pids = [daemon_pid]
    for line in subprocess.run(["ps", "-o", "pid=,ppid=", "-e"], capture_output=True, text=True).stdout.splitlines():
        pid, ppid = line.split()
        if ppid == daemon_pid:
            pids.append(pid)  # the tenant-facing process
    return pids

out = open(work + "/leases.jsonl", "w")
pids = daemon_pids()
cpu0, cli0 = cpu_ms(pids), children_cpu_ms()
bare, bare_cpu = {}, 0.0
for i in range(leases):
    r = {}
    created = json.loads(must("-o", "json", "lease", "create", offer, "--gpus", "1", "--deposit", "10",
                              "--manifest", manifest, "--from", "tenant", "--yes"))
    lease = created["ids"]["lease_id"]
    r["lease"] = int(lease)
    # The tenant follows the lease's events and submits once the provider says started.
    # Before the daemon has seen the lease its API answers 404: the tenant asks again.
    r["events_404"] = 0
    while "tenant_saw_started" not in r:
        events = subprocess.Popen([gpunet, "-o", "json", "lease", "events", lease, "-f", "--from", "tenant"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        line = ""
        for line in events.stdout:
            try:
                kind = json.loads(line)["kind"]
            except ValueError:
                break  # not an event: the command failed
            if kind == "started":
                r["tenant_saw_started"] = now_ms()
                break
        if "tenant_saw_started" in r:
            events.kill()
            events.wait()
            break
        rest, err = events.stdout.read(), events.stderr.read()  # it failed: why
        events.wait()
        err = line + rest + err  # with -o json, the error is JSON on stdout
        if "not a lease of this" not in err or r["events_404"] >= 100:
            sys.exit("lease %s: lease events: %s" % (lease, err.strip()))
        r["events_404"] += 1
        time.sleep(0.01)
    # The daemon's view may trail the ledger by one reconcile: 409 "not started yet".
    r["submit_first"] = None
    r["submit_409"] = 0
    while True:
        t = now_ms()
        if r["submit_first"] is None:
            r["submit_first"] = t
        s = cli("lease", "submit", lease, "--manifest", manifest, "--from", "tenant")
        if s.returncode == 0:
            r["submit_ok"] = t
            break
        if "not started" not in s.stderr or r["submit_409"] >= 100:
            sys.exit("lease %s: submit: %s" % (lease, s.stderr.strip()))
        r["submit_409"] += 1
    logs = subprocess.Popen([gpunet, "lease", "logs", lease, "-f", "--from", "tenant"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    first = logs.stdout.readline()
    r["tenant_first_line"] = now_ms()
    if first.strip() != "first-output-line":
        sys.exit("lease %s: first output line %r" % (lease, first))
    logs.wait()
    for e in json.loads(must("-o", "json", "lease", "events", lease, "--from", "tenant"))["events"]:
        r.setdefault("event_" + e["kind"], e["time_ms"])
    ledger = json.loads(must("-o", "json", "lease", "show", lease))["lease"]
    r["block_created"] = ledger["created_ms"]
    r["block_started"] = ledger["started_ms"]
    # Runtime::Start writes spec.json first; echo writes one line, so the log's last
    # change is when that line reached the provider's disk (file times: CLOCK_REALTIME
    # at the kernel's tick).
    run_dir = "%s/sandbox/runs/lease-%s/" % (phome, lease)
    r["runtime_start_spec_written"] = os.stat(run_dir + "spec.json").st_mtime_ns / 1e6
    r["provider_log_written"] = os.stat(run_dir + "stdout.log").st_mtime_ns / 1e6
    # The tenant CLI's fixed cost for one signed request (start, key, ledger read,
    # TLS, the broker): a status read, timed here.
    t = now_ms()
    must("lease", "status", lease, "--from", "tenant")
    r["cli_status_ms"] = now_ms() - t
    must("lease", "close", lease, "--from", "tenant")
    out.write(json.dumps(r) + "\n")
    out.flush()
    # The baseline, interleaved: Runtime::Start of this lease's very spec and runtime
    # options (its run dir's spec.json and options.json), no daemon, to its first
    # output; and of bench_sandbox's own small echo (16 MiB disk, 256 MiB memory).
    for key, args in (("bare_like", ["--like", run_dir, "1"]), ("bare_small", ["1", "none"])):
        c = children_cpu_ms()
        b = subprocess.run([bench_sandbox, *args], capture_output=True, text=True)
        bare_cpu += children_cpu_ms() - c
        m = re.search(r"sandbox_start_ms=([0-9.]+)", b.stdout)
        if b.returncode != 0 or not m:
            sys.exit("bench_sandbox %s: exit %d: %s%s" % (" ".join(args), b.returncode, b.stdout, b.stderr))
        bare.setdefault(key, []).append(float(m.group(1)))
json.dump({"leases": leases, "daemon_cpu_ms": cpu_ms(pids) - cpu0,
           "tenant_cli_cpu_ms": children_cpu_ms() - cli0 - bare_cpu, "bare_sandbox_cpu_ms": bare_cpu,
           "bare_sandbox_start_ms": bare}, open(work + "/run.json", "w"))
PY

# --- the figures ---
$PY - "$WORK" <<'PY' || die "the figures"
import json, math, statistics, sys
work = sys.argv[1]
rows = [json.loads(l) for l in open(work + "/leases.jsonl")]
run = json.load(open(work + "/run.json"))

def pct(values, p):  # nearest rank: p95 of 20 is the 19th smallest
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]

# Each part, in ms, from consecutive instants (bench/README.md).
parts = [
    ("notice", "provider", lambda r: r["event_reserved"] - r["block_created"]),
    ("lease_started_tx", "chain", lambda r: r["event_started"] - r["event_reserved"]),
    ("tenant_submit", "tenant", lambda r: r["submit_first"] - r["event_started"]),
    ("submit_refused_409", "provider", lambda r: r["submit_ok"] - r["submit_first"]),
    ("manifest", "provider", lambda r: r["runtime_start_spec_written"] - r["submit_ok"]),
    ("sandbox_start", "provider", lambda r: r["provider_log_written"] - r["runtime_start_spec_written"]),
    ("output_to_tenant", "tenant", lambda r: r["tenant_first_line"] - r["provider_log_written"]),
]
total = [r["tenant_first_line"] - r["block_created"] for r in rows]
share = {w: [sum(f(r) for _, who, f in parts if who == w) for r in rows] for w in ("provider", "chain", "tenant")}
bare = statistics.median(run["bare_sandbox_start_ms"]["bare_like"])
bare_small = statistics.median(run["bare_sandbox_start_ms"]["bare_small"])
p50, p95 = statistics.median(total), pct(total, 95)
n = len(rows)
print("lease_to_first_output_ms_p50=%.0f p95=%.0f sandbox_start_ms=%.0f" % (p50, p95, bare))
print("  ratio_p50=%.1f provider_ms_p50=%.0f provider_ms_p95=%.0f provider_ratio_p50=%.1f "
      "chain_ms_p50=%.0f tenant_ms_p50=%.0f leases=%d submits_refused_409=%d sandbox_start_small_ms=%.0f" % (
          p50 / bare, statistics.median(share["provider"]), pct(share["provider"], 95),
          statistics.median(share["provider"]) / bare, statistics.median(share["chain"]),
          statistics.median(share["tenant"]), n, sum(r["submit_409"] for r in rows), bare_small))
print("  cpu_ms_per_lease: daemon=%.0f tenant_cli=%.0f (per bare start: bench_sandbox=%.0f; "
      "none counts the sandbox's supervisor) events_404=%d" % (
          run["daemon_cpu_ms"] / n, run["tenant_cli_cpu_ms"] / n,
          run["bare_sandbox_cpu_ms"] / (2 * n), sum(r["events_404"] for r in rows)))
others = [("(tenant CLI, one signed status read)", "", lambda r: r["cli_status_ms"]),
          ("(events persisted after the output)", "", lambda r: r["event_workload_running"] - r["provider_log_written"])]
for name, who, f in parts + others:
    v = [f(r) for r in rows]
    print("  %-20s %-8s p50=%6.1f p95=%6.1f" % (name, who, statistics.median(v), pct(v, 95)))
PY
rc=$?
bench_stop
exit $rc
