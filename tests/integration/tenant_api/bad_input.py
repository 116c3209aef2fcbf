"""The cases of integration_tenant_api_bad_input (tenant_api_bad_input_test.sh sets
the environment: the daemon runs, lease A's workload has planted its links, lease B
has no manifest). Each case sends one bad request over TLS to the tenant API and
checks its status, that its message says what is wrong, that nothing changed, and
that a well-formed request right after is served. Prints a FAIL line per failed
check and exits 1 if any. CASE=revoked runs only the revoked grant's case."""

import hashlib
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

E = os.environ
PORT = int(E["API_PORT"])
A, B = E["lease_a"], E["lease_b"]
WORK, VICTIM, RUN_DIR = E["WORK"], E["VICTIM"], E["RUN_DIR"]
failures = 0


def fail(what):
    global failures
    failures += 1
    print("FAIL: " + what, file=sys.stderr)


def tls():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The pinning is the CLI's (its own case below); this tool reaches the daemon.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=30))


def read_answer(sock):
    data = b""
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or len(lines[0].split(" ")) < 2:
        return 0, {}, b""
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "") == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return int(lines[0].split(" ")[1]), headers, body


def send(method, target, headers=(), body=b""):
    """(status, message or body text, headers, raw body) of one request."""
    text = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, target)
    for name, value in headers:
        text += "%s: %s\r\n" % (name, value)
    text += "Content-Length: %d\r\n\r\n" % len(body)
    sock = tls()
    try:
        sock.sendall(text.encode("latin-1") + body)
        status, answer_headers, raw = read_answer(sock)
    finally:
        sock.close()
    message = raw.decode("utf-8", "replace")
    try:
        message = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        pass
    return status, message, answer_headers, raw


def sign(method, target, body=b"", lease=A, signer=("--key", "tenant"), extra=()):
    with tempfile.NamedTemporaryFile(dir=WORK, delete=False) as f:
        f.write(body)
    args = [E["TOOL"], "sign", "--chain-id", E["CHAIN_ID"], "--provider", E["PROVIDER_ADDR"],
            "--lease", str(lease), "--method", method, "--target", target, "--body-file", f.name]
    if signer[0] == "--key":
        args += ["--home", E["GPUNET_HOME"]]
    args += list(signer) + list(extra)
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    os.unlink(f.name)
    return [tuple(line.split(": ", 1)) for line in out.splitlines()]


def signed(method, target, body=b"", sent_target=None, chunk=False, **kw):
    headers = sign(method, target, body, **kw)
    if chunk:
        headers.append(("Gpunet-Chunk-Sha256", hashlib.sha256(body).hexdigest()))
    return send(method, sent_target or target, headers, body)


def serving(after):
    status, message, _, _ = signed("GET", "/leases/%s" % A)
    if status != 200:
        fail("after %s, a well-formed status request got %d: %s" % (after, status, message))


def expect(case, answer, status, *words):
    got, message = answer[0], answer[1]
    if got != status:
        fail("%s: status %d, expected %d (%s)" % (case, got, status, message[:300]))
    for word in words:
        if word.lower() not in message.lower():
            fail("%s: the message lacks '%s': %s" % (case, word, message[:300]))
    print("ok %-44s %d %s" % (case, got, message[:150].replace("\n", " ")))
    serving(case)


def listing(path):
    return sorted(os.listdir(path))


def upload(name, data, offset=0, **kw):
    return signed("PUT", "/leases/%s/files/%s?offset=%d" % (A, name, offset), data, chunk=True, **kw)


# ---- the signature ----
def signature_cases():
    target = "/leases/%s" % A
    expect("unsigned", send("GET", target), 401, "not signed")
    body = canonical(os.path.join(WORK, "job_b.yaml"))
    expect("an unsigned manifest", send("POST", "/leases/%s/manifest" % B, body=body), 401,
           "not signed")
    expect("an unsigned upload", send("PUT", "/leases/%s/files/unsigned.txt?offset=0" % A, [
        ("Gpunet-Chunk-Sha256", hashlib.sha256(b"x").hexdigest())], b"x"), 401, "not signed")
    if os.path.exists(os.path.join(RUN_DIR, "fs/work/unsigned.txt")):
        fail("an unsigned upload left a file")
    expect("wrong signature", signed("GET", target, extra=["--bad-signature"]), 401, "signature")
    expect("signed for another target",
           signed("GET", target + "/events", sent_target=target), 401, "signature")
    expect("signed for another lease", signed("GET", "/leases/%s" % B, lease=B,
                                               sent_target=target), 401, "signature")
    expect("stale timestamp", signed("GET", target, extra=["--timestamp-offset-ms", "-120000"]),
           401, "clock")
    expect("future timestamp", signed("GET", target, extra=["--timestamp-offset-ms", "120000"]),
           401, "clock")
    expect("a stranger's key", signed("GET", target, signer=("--key", "bob")), 403)
    expect("a stranger's upload", upload("stranger.txt", b"x", signer=("--key", "bob")), 403)
    if os.path.exists(os.path.join(RUN_DIR, "fs/work/stranger.txt")):
        fail("a stranger's refused upload left a file")


def replay_case():
    first = upload("replay.txt", b"a")
    expect("upload (well-formed)", first, 200)
    headers = sign("PUT", "/leases/%s/files/replay.txt?offset=1" % A, b"b")
    headers.append(("Gpunet-Chunk-Sha256", hashlib.sha256(b"b").hexdigest()))
    again = "/leases/%s/files/replay.txt?offset=1" % A
    expect("upload at offset 1 (well-formed)", send("PUT", again, headers, b"b"), 200)
    expect("the same request replayed", send("PUT", again, headers, b"b"), 401, "replay")
    with open(os.path.join(RUN_DIR, "fs/work/replay.txt"), "rb") as f:
        if f.read() != b"ab":
            fail("the replayed upload acted twice (the file is not 'ab')")


# ---- delegation ----
SEED = "11" * 32


def grant_file(expires_ms):
    path = os.path.join(WORK, "grant-%d.hex" % expires_ms)
    subprocess.run([E["TOOL"], "grant", "--home", E["GPUNET_HOME"], "--key", "tenant",
                    "--chain-id", E["CHAIN_ID"], "--provider", E["PROVIDER_ADDR"], "--lease", A,
                    "--session-seed", SEED, "--expires-ms", str(expires_ms), "--out", path],
                   check=True)
    return path


def session(path):
    return ("--session-seed", SEED, "--grant-file", path)


def expired_grant_start():
    path = grant_file(int(time.time() * 1000) + 3000)
    expect("a delegated key within its grant", signed("GET", "/leases/%s" % A,
                                                      signer=session(path)), 200)
    return path


def expired_grant_end(path):
    expires_ms = int(path.rsplit("-", 1)[1].split(".")[0])
    while time.time() * 1000 < expires_ms + 200:
        time.sleep(0.1)
    expect("an expired delegation", signed("GET", "/leases/%s" % A, signer=session(path)),
           403, "expired")


def revoked_case():
    signer = ("--session-dir", E["SESSION_DIR"], "--session", "s1")
    expect("a revoked delegation", signed("GET", "/leases/%s" % A, signer=signer), 403, "revoked")


# ---- the manifest (lease B has none yet) ----
def canonical(path):
    return subprocess.run([E["GPUNET"], "manifest", "check", path, "--canonical"], check=True,
                          capture_output=True).stdout


def manifest_cases():
    target = "/leases/%s/manifest" % B
    big = canonical(os.path.join(WORK, "job_b.yaml"))
    big = big[:-1] + b',"x":"' + b"y" * 70000 + b'"}'
    expect("a manifest over 64 KiB", signed("POST", target, big, lease=B), 413, "65536")
    spaced = canonical(os.path.join(WORK, "job_b.yaml")).replace(b",", b", ", 1)
    expect("a manifest not canonical", signed("POST", target, spaced, lease=B), 422, "canonical")
    deep = b'{"command":[[[[["x"]]]]],"environment":"host","version":1}'
    expect("a manifest nested too deep", signed("POST", target, deep, lease=B), 413, "nested deeper")
    other = canonical(os.path.join(WORK, "job_c.yaml"))
    expect("a manifest with another hash", signed("POST", target, other, lease=B), 400, "hash")
    status, body, _, _ = signed("GET", "/leases/%s" % B, lease=B)
    try:
        state = json.loads(body)["workload"]["state"]
    except (ValueError, KeyError, TypeError):
        state = "(no answer: %d %s)" % (status, body[:200])
    if state != "none" or os.path.exists(RUN_DIR.replace("lease-" + A, "lease-" + B)):
        fail("a refused manifest started lease B's workload: state %s" % state)


# ---- uploads ----
def upload_cases():
    work = os.path.join(RUN_DIR, "fs/work")
    victim_before, work_before = listing(VICTIM), listing(work)
    put = "/leases/%s/files/%%s?offset=0" % A
    for case, name, word in [("upload name ..", "../x", ".."),
                             ("upload name %2E%2E", "%2E%2E/x", ".."),
                             ("upload name absolute", "/etc/x", "empty"),
                             ("upload name encoded /", "%2Fetc%2Fx", "encoded"),
                             ("upload name a%2Fb", "a%2Fb", "encoded"),
                             ("upload name a%5Cb", "a%5Cb", "encoded"),
                             ("upload name a%00b", "a%00b", "nul")]:
        # The library refuses to sign such a target: signed as a good one, sent as is.
        expect(case, signed("PUT", put % "good", b"x", sent_target=put % name, chunk=True), 400,
               word)
    expect("upload through a planted dir symlink", upload("dirlink/pwned", b"x"), 403,
           "symbolic link")
    expect("upload onto a planted file symlink", upload("filelink", b"x"), 409, "already exists")
    expect("resuming through a planted file symlink", upload("filelink", b"x", offset=10), 403,
           "symbolic link")
    expect("resume point through a planted symlink",
           signed("GET", "/leases/%s/files/filelink" % A), 403, "symbolic link")
    if listing(VICTIM) != victim_before:
        fail("an upload through a planted link changed the host folder: %s" % listing(VICTIM))
    with open(os.path.join(VICTIM, "secret.txt")) as f:
        if f.read() != "TOPSECRET\n":
            fail("an upload wrote through a planted link into a host file")
    if listing(work) != work_before:
        fail("a refused upload left a file: %s" % (set(listing(work)) - set(work_before)))


def quota_case():
    chunk = b"q" * (4 << 20)
    offset, answer = 0, None
    for _ in range(4):  # 16 MiB into the lease's 8 MiB disk
        answer = upload("big.bin", chunk, offset)
        if answer[0] != 200:
            break
        offset += len(chunk)
    expect("an upload past the disk quota", answer, 413, "disk is full")
    first = upload("big2.bin", b"r" * (8 << 20))
    expect("a first chunk past the disk quota", first, 413, "disk is full")
    if os.path.exists(os.path.join(RUN_DIR, "fs/work/big2.bin")):
        fail("a refused first chunk left its file")
    # The refused chunk is not half kept: the resume point is where it was.
    status, body, _, _ = signed("GET", "/leases/%s/files/big.bin" % A)
    size = json.loads(body).get("size") if status == 200 else None
    if size != offset:
        fail("after the refused chunk big.bin is %s bytes (%d %s), expected %d"
             % (size, status, body[:200], offset))


# ---- outputs ----
def output_cases():
    base = "/leases/%s/outputs/" % A
    for case, name, word in [("output path ..", "../x", ".."),
                             ("output path %2E%2E", "%2E%2E/%2E%2E/secret.txt", ".."),
                             ("output path encoded /", "a%2F..%2Fsecret.txt", "encoded"),
                             ("output path absolute", "/etc/passwd", "empty")]:
        expect(case, signed("GET", base + "ok.txt", sent_target=base + name), 400, word)
    for case, name in [("output through a planted file symlink", "filelink"),
                       ("output through a planted dir symlink", "dirlink/secret.txt")]:
        answer = signed("GET", base + name)
        if b"TOPSECRET" in answer[3]:
            fail("%s: the host file's bytes came back" % case)
        expect(case, answer, 403, "symbolic link")
    status, _, _, raw = signed("GET", base + "ok.txt")
    if status != 200 or raw != b"ok\n":
        fail("a well-formed output download: %d %r" % (status, raw[:100]))


# ---- size ----
def size_cases():
    target = "/leases/%s" % A
    headers = sign("GET", target) + [("X-Filler", "f" * 20000)]
    expect("a 20 KB header", send("GET", target, headers), 431)
    long_target = "/leases/%s/outputs/%s" % (A, "a" * 3000)
    expect("a 3000-byte target", signed("GET", target, sent_target=long_target), 400, "2048")
    # The workload's 3 MiB line comes back in reads of at most 1 MiB.
    offset, text, reads = 0, b"", 0
    while b"after-huge" not in text and reads < 8:
        status, _, headers, raw = signed("GET", "/leases/%s/logs?offset=%d&max=1048576" % (A, offset))
        reads += 1
        if status != 200 or len(raw) > 1 << 20:
            fail("a log read over the huge line: %d, %d bytes" % (status, len(raw)))
            return
        text += raw
        offset = int(headers.get("gpunet-next-offset", offset))
    if b"after-huge" not in text:
        fail("the line after the workload's 3 MiB line never came in %d reads" % reads)
    print("ok %-44s in %d reads of at most 1 MiB" % ("a 3 MiB log line", reads))
    serving("a 3 MiB log line")


# ---- connections ----
def fd_count():
    return len(os.listdir("/proc/%s/fd" % E["api_pid"]))


def connection_cases():
    fds_before = fd_count()
    held = []
    for _ in range(300):  # at once, held open, sending nothing
        try:
            held.append(socket.create_connection(("127.0.0.1", PORT), timeout=5))
        except OSError:
            break
    # Past the per-address cap of 16 the server closes a connection without a word
    # (a TLS client could not read a plain answer, and a handshake would spend what
    # the cap saves); the accept loop gets to all of them in its own time.
    closed = set()
    deadline = time.time() + 20
    while len(closed) < len(held) - 16 and time.time() < deadline:
        ready, _, _ = select.select([s for s in held if s not in closed], [], [], 0.5)
        for s in ready:
            try:
                if s.recv(1) == b"":
                    closed.add(s)
            except OSError:
                closed.add(s)
    refused = len(closed)
    for s in held:
        s.close()
    print("ok %-44s %d of %d closed by the server" % ("300 connections held open", refused, len(held)))
    for _ in range(300):  # one after the other, each a full handshake
        s = tls()
        s.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        if signed("GET", "/leases/%s" % A)[0] == 200:
            break
        time.sleep(0.2)
    serving("hundreds of connections")
    while fd_count() > fds_before + 2 and time.time() < deadline:
        time.sleep(0.2)
    if fd_count() > fds_before + 2:
        fail("the tenant-facing process holds %d descriptors after the flood, %d before"
             % (fd_count(), fds_before))


# ---- long-polls ----
def long_poll_cases():
    answers = {}

    def poll(name, lease):
        answers[name] = signed("GET", "/leases/%s/events?after=1000000&wait_ms=8000" % lease,
                               lease=lease)

    threads = [threading.Thread(target=poll, args=("a%d" % i, A)) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.5)  # the two are waiting in the agent (for up to 8 s)
    expect("a third long-poll on one lease", signed(
        "GET", "/leases/%s/events?after=1000000&wait_ms=3000" % A), 429, "long-poll")
    # The two slots are the tenant's key's: a badly signed long-poll is refused for its
    # signature before it could count, and a stranger's key has slots of its own (the
    # agent then refuses it).
    expect("a badly signed long-poll on a full lease", signed(
        "GET", "/leases/%s/events?after=1000000&wait_ms=3000" % A, extra=("--bad-signature",)),
        401, "signature")
    expect("a stranger's long-poll on a full lease", signed(
        "GET", "/leases/%s/events?after=1000000&wait_ms=3000" % A, signer=("--key", "provider")),
        403, "neither")
    t = threading.Thread(target=poll, args=("b0", B))
    t.start()
    threads.append(t)
    time.sleep(1.5)
    expect("a long-poll past the broker's cap", signed(
        "GET", "/leases/%s/events?after=1000000&wait_ms=3000" % B, lease=B), 503, "long-poll")
    for t in threads:
        t.join()
    for name, answer in sorted(answers.items()):
        if answer[0] != 200:
            fail("long-poll %s within the caps: %d %s" % (name, answer[0], answer[1]))


def main():
    if E.get("CASE") == "revoked":
        revoked_case()
    else:
        grant = expired_grant_start()
        signature_cases()
        replay_case()
        manifest_cases()
        upload_cases()
        quota_case()
        output_cases()
        size_cases()
        long_poll_cases()
        connection_cases()
        expired_grant_end(grant)
    return 1 if failures else 0


sys.exit(main())
