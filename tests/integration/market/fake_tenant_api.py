#!/usr/bin/env python3
"""A stand-in for a provider's tenant API (docs/tenant-api.md "Endpoints") over real
TLS, for tenant_cli_test.sh: it answers the routes the `gpunet lease` verbs use, as
the contract says, and records what each request carried (method, raw target,
signer, body size) in STATE/requests.jsonl so the test can check what was sent.
It checks no signatures: the real verifier's tests do (tests/unit/provider/
tenant_api_tls_test.cpp). It does check each upload chunk's offset and SHA-256.

  fake_tenant_api.py http CERT KEY STATE          serves HTTPS itself
  fake_tenant_api.py agent GPUNET CERT KEY STATE  plays the agent: starts the real
      tenant-facing process (`gpunet provider api`) on broker socketpairs and answers
      its frames (provider/broker_wire.h), so the real front parses what the CLI sends
      (and checks its signatures: the environment's CHAIN_ID and PROVIDER_ADDR are
      its --chain-id and --provider)
Either prints "PORT" on its first line, then serves.

Faults a test asks for, as files in STATE:
  drop_put_at     an offset: the first PUT at it is cut (connection closed, no answer)
"""
import fcntl
import hashlib
import socket
import struct
import subprocess
import threading
import http.server
import json
import os
import ssl
import sys
import urllib.parse

MODE = sys.argv[1]
GPUNET = sys.argv[2] if MODE == "agent" else None
CERT, KEY, STATE = sys.argv[-3], sys.argv[-2], sys.argv[-1]
LOGS = {"stdout": b"".join(b"line %d\n" % i for i in range(1, 2001)), "stderr": b"warn\n"}
OUTPUTS = {"result.txt": b"42\n", "run/model.bin": bytes(range(256)) * 40000}
EVENTS = [
    {"seq": 1, "time_ms": 1765000000000, "kind": "started", "message": "GPUs set aside"},
    {"seq": 2, "time_ms": 1765000001000, "kind": "manifest_accepted", "message": ""},
    {"seq": 3, "time_ms": 1765000002000, "kind": "workload_exited", "message": "exit 0"},
    {"seq": 4, "time_ms": 1765000003000, "kind": "lease_closed", "message": "by the tenant"},
]
files = {}  # upload path -> bytes
manifest = {}  # lease id -> body
dropped = set()


DROP = object()  # the answer that cuts the connection


def record(method, target, signer, grant, body):
    with open(os.path.join(STATE, "requests.jsonl"), "a") as f:
        f.write(json.dumps({"method": method, "target": target, "signer": signer, "grant": grant,
                            "body_bytes": len(body),
                            "body": body.decode("utf-8", "replace") if len(body) < 4096 else ""}) + "\n")


def error(status, message):
    return status, {"error": {"code": "x", "message": message}}, "application/json", {}


def ok(body, content_type="application/json", headers=None):
    return 200, body, content_type, headers or {}


def handle(method, target, signed, chunk_sha256, body):
    """(status, body, content type, extra headers) or DROP."""
    url = urllib.parse.urlsplit(target)
    q = dict(urllib.parse.parse_qsl(url.query))
    parts = url.path.split("/")[1:]
    if url.path == "/environments":
        return ok({"environments": [{"name": "host", "kind": "sandbox"},
                                    {"name": "pytorch:2.3", "kind": "podman", "id": "sha256:ab"}]})
    if not signed:
        return error(401, "the request is not signed")
    if len(parts) < 2 or parts[0] != "leases":
        return error(404, "no such endpoint")
    lease, what = parts[1], (parts[2] if len(parts) > 2 else "")
    rest = urllib.parse.unquote("/".join(parts[3:]))
    if what == "":
        return ok({"lease_id": int(lease), "step": "running", "workload": {"state": "running"},
                   "gpus": ["GPU-1"], "ends_at_ms": 1765000000000})
    if what == "manifest":
        if lease in manifest and manifest[lease] != body:
            return error(409, "another manifest was accepted")
        manifest[lease] = body
        names = json.loads(body)["secrets"]
        if names:  # as the agent does: the command waits for its secrets
            return ok({"accepted": True, "workload": "waiting_for_secrets", "secrets": names})
        return ok({"accepted": True, "workload": "starting"})
    if what == "secrets":
        if lease not in manifest:
            return error(409, "send the manifest first: it names the secrets")
        got = sorted(json.loads(body))
        return ok({"set": got, "complete": got == sorted(json.loads(manifest[lease])["secrets"])})
    if what == "files" and method == "GET":
        if rest not in files:
            return error(404, "no upload " + rest)
        return ok({"path": rest, "size": len(files[rest])})
    if what == "files" and method == "PUT":
        offset = int(q["offset"])
        drop = os.path.join(STATE, "drop_put_at")
        if os.path.exists(drop) and int(open(drop).read()) == offset and rest not in dropped:
            dropped.add(rest)
            return DROP
        if hashlib.sha256(body).hexdigest() != chunk_sha256:
            return error(400, "chunk SHA-256 mismatch")
        if offset != len(files.get(rest, b"")):
            return error(409, "offset %d is not the file's size %d" % (offset, len(files.get(rest, b""))))
        files[rest] = files.get(rest, b"") + body
        with open(os.path.join(STATE, "files.json"), "w") as f:
            json.dump({k: hashlib.sha256(v).hexdigest() for k, v in files.items()}, f)
        return ok({"path": rest, "size": len(files[rest])})
    if what == "logs":
        data, offset, mx = LOGS[q["stream"]], int(q["offset"]), int(q["max"])
        piece = data[offset:offset + mx]
        ended = "1" if offset + len(piece) >= len(data) else "0"
        return ok(piece, "application/octet-stream",
                  {"Gpunet-Next-Offset": str(offset + len(piece)), "Gpunet-Ended": ended})
    if what == "events":
        after = int(q["after"])
        # Two at a time, so following takes several polls.
        return ok({"events": [e for e in EVENTS if e["seq"] > after][:2]})
    if what == "outputs" and not rest:
        # As the agent lists them: the whole tree, depth first in name order.
        entries = [{"name": n, "type": "file", "size": len(b)} for n, b in OUTPUTS.items()]
        entries += [{"name": "run", "type": "directory", "size": 0},
                    {"name": "escape", "type": "symlink", "size": 0}]
        return ok({"entries": sorted(entries, key=lambda e: e["name"])})
    if what == "outputs":
        data, offset, mx = OUTPUTS[rest], int(q.get("offset", "0")), int(q.get("max", str(8 << 20)))
        piece = data[offset:offset + min(mx, 1 << 20)]  # smaller pieces than asked: the client follows
        return ok(piece, "application/octet-stream",
                  {"Gpunet-Next-Offset": str(offset + len(piece)), "Gpunet-Size": str(len(data))})
    if what == "grants":
        # client::EncodeRevocation's hex: purpose, tenant[32] provider[20] lease u64 grant_id[16] ...
        raw = bytes.fromhex(body.decode())
        return ok({"revoked": raw[1 + 32 + 20 + 8:1 + 32 + 20 + 8 + 16].hex()})
    return error(404, "no such endpoint")


def encoded(body):
    return json.dumps(body).encode() if isinstance(body, (dict, list)) else body


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def route(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        record(self.command, self.path, self.headers.get("Gpunet-Signer", ""),
               self.headers.get("Gpunet-Grant", ""), body)
        answer = handle(self.command, self.path, "Gpunet-Signature" in self.headers,
                        self.headers.get("Gpunet-Chunk-Sha256"), body)
        if answer is DROP:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        status, out, content_type, headers = answer
        out = encoded(out)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(out)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_PUT = do_POST = route


# ---- agent mode: broker frames (provider/broker_wire.h) ----

REPLY_FIELDS = {"Gpunet-Next-Offset": "next_offset", "Gpunet-Ended": "ended", "Gpunet-Size": "size"}


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            return None
        data += more
    return data


def read_frame(sock):
    head = read_exact(sock, 4)
    if head is None:
        return None
    raw = read_exact(sock, struct.unpack(">I", head)[0])
    op, lease_id, count = struct.unpack(">BQH", raw[:11])
    at, fields = 11, {}
    for _ in range(count):
        klen = raw[at]
        key = raw[at + 1:at + 1 + klen].decode()
        vlen = struct.unpack(">I", raw[at + 1 + klen:at + 5 + klen])[0]
        fields[key] = raw[at + 5 + klen:at + 5 + klen + vlen].decode("latin-1")
        at += 5 + klen + vlen
    blen = struct.unpack(">I", raw[at:at + 4])[0]
    return op, lease_id, fields, raw[at + 4:at + 4 + blen]


def write_frame(sock, fields, body):
    out = struct.pack(">BQH", 1, 0, len(fields))  # op kReply
    for key in sorted(fields):
        value = fields[key].encode()
        out += struct.pack(">B", len(key)) + key.encode() + struct.pack(">I", len(value)) + value
    out += struct.pack(">I", len(body)) + body
    sock.sendall(struct.pack(">I", len(out)) + out)


def serve_broker(sock, lock):
    while True:
        frame = read_frame(sock)
        if frame is None:
            return
        op, _, fields, body = frame
        method, target = fields.get("method", "GET"), fields.get("target", "/environments")
        with lock:
            record(method, target, fields.get("signer", ""), fields.get("grant", ""), body)
            answer = handle(method, target, "signature" in fields, fields.get("chunk_sha256"), body)
        if answer is DROP:  # the agent lost this request: the front answers 502
            sock.close()
            return
        status, out, content_type, headers = answer
        reply = {"status": str(status), "message": "", "content_type": content_type}
        reply.update({REPLY_FIELDS[k]: v for k, v in headers.items()})
        write_frame(sock, reply, encoded(out))


def run_agent():
    pairs = [socket.socketpair() for _ in range(4)]
    key_fd = os.open(KEY, os.O_RDONLY)
    child_fds = [b.fileno() for _, b in pairs]

    def place_fds():  # the broker ends at 3..6, the key at 7, as `provider run` hands them
        temp = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in child_fds + [key_fd]]
        for i, fd in enumerate(temp):
            os.dup2(fd, 3 + i)
        os.closerange(8, 4096)  # nothing else: the agent's ends must close when it closes them

    api = subprocess.Popen([GPUNET, "provider", "api", "--broker-fds", "3,4,5,6", "--key-fd", "7",
                            "--cert", CERT, "--listen", "127.0.0.1:0",
                            "--chain-id", os.environ["CHAIN_ID"],
                            "--provider", os.environ["PROVIDER_ADDR"]],
                           stderr=subprocess.PIPE, preexec_fn=place_fds, close_fds=False, text=True)
    os.close(key_fd)
    lock = threading.Lock()
    for a, b in pairs:
        b.close()
        threading.Thread(target=serve_broker, args=(a, lock), daemon=True).start()
    for line in api.stderr:
        if "serving HTTPS on port" in line:
            print(line.split()[-1], flush=True)
            break
    else:
        sys.exit("gpunet provider api did not start")
    threading.Thread(target=lambda: [None for _ in api.stderr], daemon=True).start()
    api.wait()


if MODE == "agent":
    run_agent()
    sys.exit(0)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
