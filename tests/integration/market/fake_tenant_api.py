#!/usr/bin/env python3
"""A stand-in for a provider's tenant API (docs/tenant-api.md "Endpoints") over real
TLS, for tenant_cli_test.sh: it answers the routes the `gpunet lease` verbs use, as
the contract says, and records what each request carried (method, raw target,
signer, body size) in STATE/requests.jsonl so the test can check what was sent.
It checks no signatures: the real verifier's tests do (tests/unit/provider/
tenant_api_tls_test.cpp). It does check each upload chunk's offset and SHA-256.

  fake_tenant_api.py CERT KEY STATE      prints "PORT" on its first line, then serves

Faults a test asks for, as files in STATE:
  drop_put_at     an offset: the first PUT at it is cut (connection closed, no answer)
"""
import hashlib
import http.server
import json
import os
import ssl
import sys
import urllib.parse

CERT, KEY, STATE = sys.argv[1], sys.argv[2], sys.argv[3]
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


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, body):
        with open(os.path.join(STATE, "requests.jsonl"), "a") as f:
            f.write(json.dumps({"method": self.command, "target": self.path,
                                "signer": self.headers.get("Gpunet-Signer", ""),
                                "grant": self.headers.get("Gpunet-Grant", ""),
                                "body_bytes": len(body),
                                "body": body.decode("utf-8", "replace") if len(body) < 4096 else ""}) + "\n")

    def answer(self, status, body, content_type="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, message):
        self.answer(status, {"error": {"code": "x", "message": message}})

    def route(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        self.record(body)
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        parts = url.path.split("/")[1:]
        if url.path == "/environments":
            return self.answer(200, {"environments": [{"name": "host", "kind": "sandbox"},
                                                      {"name": "pytorch:2.3", "kind": "podman", "id": "sha256:ab"}]})
        if "Gpunet-Signature" not in self.headers:
            return self.error(401, "the request is not signed")
        if len(parts) < 2 or parts[0] != "leases":
            return self.error(404, "no such endpoint")
        lease, what = parts[1], (parts[2] if len(parts) > 2 else "")
        rest = urllib.parse.unquote("/".join(parts[3:]))
        if what == "":
            return self.answer(200, {"lease_id": int(lease), "step": "running",
                                     "workload": {"state": "running"}, "gpus": ["GPU-1"], "ends_at_ms": 1765000000000})
        if what == "manifest":
            if lease in manifest and manifest[lease] != body:
                return self.error(409, "another manifest was accepted")
            manifest[lease] = body
            names = json.loads(body)["secrets"]
            if names:  # as the agent does: the command waits for its secrets
                return self.answer(200, {"accepted": True, "workload": "waiting_for_secrets", "secrets": names})
            return self.answer(200, {"accepted": True, "workload": "starting"})
        if what == "secrets":
            if lease not in manifest:
                return self.error(409, "send the manifest first: it names the secrets")
            got = sorted(json.loads(body))
            return self.answer(200, {"set": got, "complete": got == sorted(json.loads(manifest[lease])["secrets"])})
        if what == "files" and self.command == "GET":
            if rest not in files:
                return self.error(404, "no upload " + rest)
            return self.answer(200, {"path": rest, "size": len(files[rest])})
        if what == "files" and self.command == "PUT":
            offset = int(q["offset"])
            drop = os.path.join(STATE, "drop_put_at")
            if os.path.exists(drop) and int(open(drop).read()) == offset and rest not in dropped:
                dropped.add(rest)
                self.close_connection = True
                self.connection.shutdown(2)
                return None
            if hashlib.sha256(body).hexdigest() != self.headers.get("Gpunet-Chunk-Sha256"):
                return self.error(400, "chunk SHA-256 mismatch")
            if offset != len(files.get(rest, b"")):
                return self.error(409, "offset %d is not the file's size %d" % (offset, len(files.get(rest, b""))))
            files[rest] = files.get(rest, b"") + body
            with open(os.path.join(STATE, "files.json"), "w") as f:
                json.dump({k: hashlib.sha256(v).hexdigest() for k, v in files.items()}, f)
            return self.answer(200, {"path": rest, "size": len(files[rest])})
        if what == "logs":
            data, offset, mx = LOGS[q["stream"]], int(q["offset"]), int(q["max"])
            piece = data[offset:offset + mx]
            ended = "1" if offset + len(piece) >= len(data) else "0"
            return self.answer(200, piece, "application/octet-stream",
                               {"Gpunet-Next-Offset": str(offset + len(piece)), "Gpunet-Ended": ended})
        if what == "events":
            after = int(q["after"])
            # Two at a time, so following takes several polls.
            return self.answer(200, {"events": [e for e in EVENTS if e["seq"] > after][:2]})
        if what == "outputs" and not rest:
            return self.answer(200, {"entries": [{"name": n, "type": "file", "size": len(b)} for n, b in sorted(OUTPUTS.items())]
                                     + [{"name": "run", "type": "directory", "size": 0}]})
        if what == "outputs":
            data, offset, mx = OUTPUTS[rest], int(q["offset"]), int(q["max"])
            piece = data[offset:offset + min(mx, 1 << 20)]  # smaller pieces than asked: the client follows
            return self.answer(200, piece, "application/octet-stream",
                               {"Gpunet-Next-Offset": str(offset + len(piece)), "Gpunet-Size": str(len(data))})
        if what == "grants":
            # client::EncodeRevocation's hex: tenant[32] provider[20] lease u64 grant_id[16] ...
            raw = bytes.fromhex(body.decode())
            return self.answer(200, {"revoked": raw[1 + 32 + 20 + 8:1 + 32 + 20 + 8 + 16].hex()})
        return self.error(404, "no such endpoint")

    do_GET = do_PUT = do_POST = route


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
