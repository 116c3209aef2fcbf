#!/usr/bin/python3
"""Integration tests of the real `gpunet node` process (stdlib only).

  node_test.py rpc|limits|kill9|powerloss GPUNET_BIN TX_HELPER_BIN

rpc:       a signed transfer with wait=committed, then GET /tx, /account, /block,
           /status, /metrics; every kind of bad input gets a clear error while the
           node keeps serving and balances stay unchanged.
kill9:     transfers stream while the node is SIGKILLed at random moments (20+
           rounds): every tx reported committed is still there after restart,
           heights continue, balances add up exactly (per-nonce bookkeeping).
powerloss: the same with GPUNET_FAULT_FS=1 and SIGUSR1 = cut the power (drop
           every unsynced write) and exit.
limits:    node.json rpc_limits with exempt_loopback false and 2 connections per
           address: a third connection from 127.0.0.1 is refused with 429 while a
           client bound to 127.0.0.2 is still served, and a freed slot is reused.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "util"))
import devnet  # noqa: E402  (tests/util/devnet.py)

CHAIN = "itest"
SEEDS = ["%02x" % (i + 1) * 32 for i in range(3)]
SINK_SEED = "ee" * 32
BALANCE = 10**12
FEE = 5000


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Rpc:
    def __init__(self, url):
        self.url = url

    def call(self, method, path, body=None, raw=None, timeout=60):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text.startswith("{") else text)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text

    def get(self, path):
        return self.call("GET", path)

    def post_tx(self, hexstr, wait="committed", timeout_ms=30000):
        return self.call("POST", "/tx", {"tx": hexstr, "wait": wait, "timeout_ms": timeout_ms})


class Env:
    def __init__(self, gpunet, helper):
        self.gpunet, self.helper = gpunet, helper
        self.work = devnet.WorkDir("gpunet-node-it")
        self.home = self.work.sub("home")
        self.addrs = [self.addr(s) for s in SEEDS]
        self.sink = self.addr(SINK_SEED)
        self.node = devnet.Node(gpunet, self.home, self.work.sub("node.log"))
        args = [gpunet, "init", "--home", self.home, "--chain-id", CHAIN, "--block-interval-ms", "20"]
        for a in self.addrs:
            args += ["--fund", "%s=%d" % (a, BALANCE)]
        out = subprocess.run(args, capture_output=True, text=True)
        check(out.returncode == 0, "init failed: " + out.stdout + out.stderr)

    def addr(self, seed):
        return subprocess.run([self.helper, "addr", seed], capture_output=True, text=True,
                              check=True).stdout.strip()

    def sign(self, lines):
        """lines: (seed, nonce, fee, to, amount[, timeout]) -> [(hex, hash)]"""
        text = "".join("%s %s\n" % (CHAIN if len(l) < 7 else l[6], " ".join(str(x) for x in l[:6]))
                       for l in lines)
        out = subprocess.run([self.helper, "sign"], input=text, capture_output=True, text=True,
                             check=True).stdout.split("\n")
        return [tuple(o.split()) for o in out if o]

    def start(self, fault=False, wait_rpc=True):
        url = self.node.start(env={"GPUNET_FAULT_FS": "1"} if fault else None, wait_rpc=wait_rpc)
        self.rpc = Rpc(url)
        return self.rpc

    def stop(self, sig=signal.SIGTERM):
        return self.node.stop(sig)

    def account(self, addr):
        st, j = self.rpc.get("/account/" + addr)
        check(st == 200, "account %s: %s %s" % (addr, st, j))
        return int(j["balance_ugpn"]), j["nonce"]


def expect_rejected(rpc, body_or_hex, status, code, tx_code_name=None, raw=None):
    if raw is not None:
        st, j = rpc.call("POST", "/tx", raw=raw)
    else:
        st, j = rpc.post_tx(body_or_hex, wait="none")
    check(st == status, "expected HTTP %d for %s, got %s %s" % (status, code, st, j))
    check(isinstance(j, dict) and j["error"]["code"] == code, "expected %s, got %s" % (code, j))
    check(j["error"].get("message"), "error without a message: %s" % j)
    if tx_code_name:
        check(j["error"].get("tx_code_name") == tx_code_name,
              "expected tx_code_name %s, got %s" % (tx_code_name, j))
    print("  rejected as expected: %s %s" % (code, j["error"].get("tx_code_name", "")), flush=True)


def bad_sig_of(txhex):
    return txhex[:-2] + ("00" if txhex[-2:] != "00" else "01")


def test_rpc(env):
    rpc = env.start()
    a0, a1 = env.addrs[0], env.addrs[1]
    st, s = rpc.get("/status")
    check(st == 200 and s["chain_id"] == CHAIN and s["engine"] == "solo", "status: %s" % s)
    [(txhex, txhash)] = env.sign([(SEEDS[0], 0, FEE, a1, 12345)])
    st, r = rpc.post_tx(txhex)
    check(st == 200 and r["status"] == "committed" and r["code"] == 0, "send: %s %s" % (st, r))
    check(r["tx_hash"] == txhash and r["height"] >= 1, "send result: %s" % r)
    print("committed at height", r["height"], flush=True)
    st, t = rpc.get("/tx/" + txhash)
    check(st == 200 and t["tx"]["msgs"][0]["amount_ugpn"] == "12345", "tx: %s" % t)
    check(t["receipt"]["code_name"] == "ok" and t["tx"]["from"] == a0, "tx receipt: %s" % t)
    st, b = rpc.get("/block/%d" % r["height"])
    check(st == 200 and txhash in b["txs"], "block: %s" % b)
    st, b2 = rpc.get("/block/latest")
    check(st == 200 and b2["height"] >= r["height"], "block latest: %s" % b2)
    st, p = rpc.get("/account/%s?prove=true" % a1)
    check(st == 200 and p["proof"] and p["header"] and p["balance_ugpn"] == str(BALANCE + 12345),
          "account proof: %s" % p)
    st, m = rpc.get("/metrics")
    check(st == 200 and "gpunet_height" in m and "gpunet_txs_committed_total" in m, "metrics")
    bal0, n0 = env.account(a0)
    bal1, n1 = env.account(a1)
    check(bal0 == BALANCE - 12345 - FEE and n0 == 1, "sender balance %d nonce %d" % (bal0, n0))

    # ---- gas: /status shows the price and the block limit; POST /tx/simulate runs
    # a tx, signed or with an all-zero signature, and commits nothing.
    check(s["gas_price_ugpn"] == "1" and s["block_gas_max"] > 0, "status gas: %s" % s)
    [(sim, _)] = env.sign([(SEEDS[0], 1, FEE, a1, 7)])
    unsigned = sim[:-128] + "00" * 64  # the signature is the encoding's last 64 bytes
    for body in (sim, unsigned):
        st, g = rpc.call("POST", "/tx/simulate", {"tx": body})
        check(st == 200 and g["code_name"] == "ok" and g["gas_used"] > 0
              and int(g["fee_ugpn"]) >= 1000, "simulate: %s %s" % (st, g))
    st, g = rpc.call("POST", "/tx/simulate", {"tx": bad_sig_of(sim)})
    check(st == 200 and g["code_name"] == "bad_signature", "simulate bad signature: %s" % g)
    st, g = rpc.call("POST", "/tx/simulate", {"tx": 5})
    check(st == 400 and g["error"]["code"] == "invalid_argument", "simulate bad body: %s" % g)
    check(env.account(a0) == (bal0, n0) and env.account(a1) == (bal1, n1),
          "a simulation changed state")
    # One simulation runs at a time; /metrics counts those that ran and those
    # turned away (none here: these ran one after another).
    st, m = rpc.get("/metrics")
    check(st == 200 and "\ngpunet_simulations_total 3\n" in m
          and "\ngpunet_simulations_refused_total 0\n" in m, "simulation metrics: %s" % m)

    # ---- bad input: each a clear error; nothing changes
    expect_rejected(rpc, "zz", 400, "invalid_argument")
    expect_rejected(rpc, "0102", 400, "tx_rejected", "malformed")
    expect_rejected(rpc, txhex[: len(txhex) // 2], 400, "tx_rejected", "malformed")
    [(good, _)] = env.sign([(SEEDS[0], 1, FEE, a1, 7)])
    bad_sig = bad_sig_of(good)
    expect_rejected(rpc, bad_sig, 400, "tx_rejected", "bad_signature")
    [(wrong, _)] = env.sign([(SEEDS[0], 1, FEE, a1, 7, 0, "other-chain")])
    expect_rejected(rpc, wrong, 400, "tx_rejected", "wrong_chain")
    [(stale, _)] = env.sign([(SEEDS[0], 0, FEE, a1, 99)])
    expect_rejected(rpc, stale, 400, "tx_rejected", "stale_nonce")
    [(far, _)] = env.sign([(SEEDS[0], 1000, FEE, a1, 7)])
    st, j = rpc.post_tx(far, wait="none")
    check(st == 400 and j["error"]["tx_code_name"] in ("future_nonce", "nonce_gap_too_large"),
          "far nonce: %s" % j)
    [(cheap, _)] = env.sign([(SEEDS[0], 1, 1, a1, 7)])
    expect_rejected(rpc, cheap, 400, "tx_rejected", "fee_too_low")
    [(poor, _)] = env.sign([(SINK_SEED, 0, FEE, a1, 7)])
    expect_rejected(rpc, poor, 400, "tx_rejected", "insufficient_fee_funds")
    [(expired, _)] = env.sign([(SEEDS[0], 1, FEE, a1, 7, 1)])
    st, j = rpc.post_tx(expired, wait="none")
    check(st == 400 and j["error"]["tx_code_name"] == "expired", "expired: %s" % j)
    expect_rejected(rpc, None, 400, "invalid_argument", raw=b"{not json")
    expect_rejected(rpc, None, 400, "invalid_argument", raw=b'{"tx": 5}')
    st, j = rpc.call("POST", "/tx", raw=b'{"tx":"' + b"ab" * (600 * 1024) + b'"}')
    check(st == 413, "huge body: %s" % st)
    print("  rejected as expected: 413 huge body", flush=True)
    # Over-funded transfer: included but failed, fee charged, nonce advanced.
    [(over, overhash)] = env.sign([(SEEDS[0], 1, FEE, a1, BALANCE * 5)])
    st, r = rpc.post_tx(over)
    check(st == 200 and r["status"] == "committed" and r["code_name"] == "insufficient_funds",
          "overspend: %s" % r)
    st, s2 = rpc.get("/status")
    check(st == 200, "node stopped serving")
    b0, nn0 = env.account(a0)
    b1, _ = env.account(a1)
    check(b0 == bal0 - FEE and nn0 == 2 and b1 == bal1,
          "bad input changed state: %d %d %d" % (b0, nn0, b1))
    st, j = rpc.get("/tx/" + "00" * 32)
    check(st == 404 and j["error"]["code"] == "not_found", "missing tx: %s" % j)
    env.node.stop_clean()
    print("rpc: OK", flush=True)


def raw_get(port, source, send=True):
    """A keep-alive connection from `source` to the node with one GET /status answered
    on it (or, with send False, what the node says unasked): (socket, status line,
    bytes). The socket stays open (it holds its per-address slot)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    if send:
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: node\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return sock, data.split(b"\r\n", 1)[0].decode(), data


def test_limits(env):
    path = os.path.join(env.home, "config", "node.json")
    with open(path) as f:
        config = json.load(f)
    config["rpc_limits"] = {"exempt_loopback": False, "connections_per_address_max": 2}
    with open(path, "w") as f:
        json.dump(config, f)
    # No readiness request: it would hold one of the two slots of 127.0.0.1 until
    # the node noticed its close.
    rpc = env.start(wait_rpc=False)
    port = int(rpc.url.rsplit(":", 1)[1].split("/")[0])
    held = []
    for _ in range(2):
        sock, status, _ = raw_get(port, "127.0.0.1")
        check(status.startswith("HTTP/1.1 200"), "connection within the cap: %s" % status)
        held.append(sock)
    sock, status, data = raw_get(port, "127.0.0.1", send=False)  # refused at accept
    check(status.startswith("HTTP/1.1 429") and b"limit_exceeded" in data and b"127.0.0.1" in data,
          "a third connection from 127.0.0.1 was not refused with 429: %s" % data[:300])
    sock.close()
    print("  third connection from 127.0.0.1: %s" % status, flush=True)
    other, status, _ = raw_get(port, "127.0.0.2")
    check(status.startswith("HTTP/1.1 200"), "127.0.0.2 was not served: %s" % status)
    other.close()
    # A closed connection frees its slot: 127.0.0.1 is served again.
    held.pop().close()
    for _ in range(100):
        sock, status, _ = raw_get(port, "127.0.0.1")
        sock.close()
        if status.startswith("HTTP/1.1 200"):
            break
        time.sleep(0.05)  # the server notices the close asynchronously
    check(status.startswith("HTTP/1.1 200"), "a freed slot was not reused: %s" % status)
    for sock in held:
        sock.close()
    env.node.stop_clean()
    print("limits: OK", flush=True)


def stream_rounds(env, rounds, fault):
    senders = SEEDS
    committed = {}  # hash -> (sender index, nonce)
    max_height = 0
    for rnd in range(rounds):
        rpc = env.start(fault=fault)
        st, s = rpc.get("/status")
        check(st == 200, "status after restart")
        check(s["latest_height"] >= max_height,
              "height went back: %d < %d" % (s["latest_height"], max_height))
        max_height = s["latest_height"]
        for h in list(committed):
            st, t = rpc.get("/tx/" + h)
            check(st == 200 and t["receipt"]["code"] == 0,
                  "round %d: committed tx %s lost after restart: %s %s" % (rnd, h, st, t))
        # Balances add up from the nonces alone.
        total_sent = 0
        for i, a in enumerate(env.addrs):
            bal, nonce = env.account(a)
            amounts = sum(1000 + n for n in range(nonce))
            total_sent += amounts
            check(bal == BALANCE - amounts - FEE * nonce,
                  "round %d: sender %d balance %d with nonce %d" % (rnd, i, bal, nonce))
        sink_bal, _ = env.account(env.sink)
        check(sink_bal == total_sent, "round %d: sink has %d, senders sent %d" % (rnd, sink_bal, total_sent))

        stop = threading.Event()

        def sender(i):
            _, nonce = env.account(env.addrs[i])
            while not stop.is_set():
                [(hx, hh)] = env.sign([(senders[i], nonce, FEE, env.sink, 1000 + nonce)])
                try:
                    st, r = env.rpc.post_tx(hx, timeout_ms=10000)
                except Exception:
                    return  # node died
                if st == 200 and r.get("status") == "committed":
                    committed[hh] = (i, nonce)
                    nonce += 1
                elif st == 400:
                    return
        threads = [threading.Thread(target=sender, args=(i,)) for i in range(len(senders))]
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.2, 1.0))
        rc = env.stop(signal.SIGUSR1 if fault else signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        expect_rc = 99 if fault else -signal.SIGKILL
        check(rc == expect_rc, "round %d: node exit code %s, expected %s" % (rnd, rc, expect_rc))
        print("round %d: killed (rc %s), %d txs committed so far, height >= %d" %
              (rnd, rc, len(committed), max_height), flush=True)
    rpc = env.start(fault=False)
    for h in committed:
        st, _ = rpc.get("/tx/" + h)
        check(st == 200, "final: committed tx %s lost" % h)
    check(len(committed) > rounds, "too few txs committed (%d) to mean anything" % len(committed))
    env.stop()
    out = subprocess.run([env.gpunet, "node", "--home", env.home, "--replay-check"],
                         capture_output=True, text=True)
    check(out.returncode == 0, "replay check failed: " + out.stdout + out.stderr)
    print(out.stdout.strip(), flush=True)
    print("%s: OK (%d rounds, %d committed txs all present)" % ("powerloss" if fault else "kill9",
                                                              rounds, len(committed)), flush=True)


def main():
    mode, gpunet, helper = sys.argv[1:4]
    env = Env(gpunet, helper)
    ok = False
    try:
        if mode == "rpc":
            test_rpc(env)
        elif mode == "limits":
            test_limits(env)
        elif mode == "kill9":
            stream_rounds(env, 22, fault=False)
        elif mode == "powerloss":
            stream_rounds(env, 20, fault=True)
        else:
            fail("unknown mode " + mode)
        ok = True
    finally:
        env.node.kill()
        env.work.finish(ok)


if __name__ == "__main__":
    main()
