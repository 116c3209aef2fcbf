"""The cases of integration_tenant_api_session (tenant_api_session_test.sh sets the
environment: the daemon runs, lease A's workload runs, lease B's has ended). Speaks
the session frames of docs/tenant-api.md "Sessions" itself: u8 type, u32 big-endian
length, payload. Prints a FAIL line per failed check and exits 1 if any. CASE=closed
checks the closed lease B; CASE=close_ends holds a session on A until A closes."""

import os
import socket
import ssl
import struct
import subprocess
import sys
import time

E = os.environ
PORT = int(E["API_PORT"])
A, B = E["lease_a"], E["lease_b"]
PROTOCOL = "gpunet-session/1"
OPEN, STDIN, STDOUT, STDERR, STDIN_EOF = 1, 2, 3, 4, 5
READY, EXIT, ERROR = 8, 9, 10
failures = 0


def fail(what):
    global failures
    failures += 1
    print("FAIL: " + what, file=sys.stderr)


def sign(target, lease, signer=("--key", "tenant"), extra=()):
    args = [E["TOOL"], "sign", "--chain-id", E["CHAIN_ID"], "--provider", E["PROVIDER_ADDR"],
            "--lease", str(lease), "--method", "GET", "--target", target,
            "--home", E["GPUNET_HOME"]] + list(signer) + list(extra)
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [tuple(line.split(": ", 1)) for line in out.splitlines()]


class Session:
    """One TLS connection that asked to upgrade; status, head and (for a refusal) the
    body; after a 101 it carries frames."""

    def __init__(self, lease, headers=None, upgrade=True):
        target = "/leases/%s/session" % lease
        if headers is None:
            headers = sign(target, lease)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # the CLI pins the key; this tool reaches the daemon
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=20))
        text = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % target
        for name, value in headers:
            text += "%s: %s\r\n" % (name, value)
        if upgrade:
            text += "Connection: Upgrade\r\nUpgrade: %s\r\n" % PROTOCOL
        self.sock.sendall((text + "\r\n").encode("latin-1"))
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        first = self.head.split("\r\n")[0].split(" ")
        self.status = int(first[1]) if len(first) > 1 else 0
        self.body = b""
        if self.status != 101:
            length = 0
            for line in self.head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            while len(self.buf) < length:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                self.buf += chunk
            self.body, self.buf = self.buf[:length], self.buf[length:]

    def send(self, kind, payload=b""):
        self.sock.sendall(struct.pack(">BI", kind, len(payload)) + payload)

    def frame(self):
        """The next (type, payload), or None at the end of the connection."""
        while len(self.buf) < 5 or len(self.buf) < 5 + struct.unpack(">I", self.buf[1:5])[0]:
            try:
                chunk = self.sock.recv(65536)
            except (ssl.SSLError, ConnectionResetError, socket.timeout):
                return None
            if not chunk:
                return None
            self.buf += chunk
        kind, size = struct.unpack(">BI", self.buf[:5])
        payload, self.buf = self.buf[5:5 + size], self.buf[5 + size:]
        return kind, payload

    def close(self):
        self.sock.close()


def exec_open(argv):
    payload = struct.pack(">BBHHH", 1, 0, 24, 80, len(argv))
    for arg in argv:
        payload += struct.pack(">I", len(arg)) + arg.encode()
    return payload + struct.pack(">H", 0)


def expect_refusal(case, session, status, *words):
    text = session.body.decode("utf-8", "replace")
    if session.status != status:
        fail("%s: status %d, expected %d (%s)" % (case, session.status, status, text[:300]))
    for word in words:
        if word.lower() not in (session.head + text).lower():
            fail("%s: the answer lacks '%s': %s %s" % (case, word, session.head, text[:300]))
    print("ok %-36s %d %s" % (case, session.status, text[:150]))
    session.close()


def exec_case():
    s = Session(A)
    if s.status != 101:
        fail("the upgrade of lease A: %d %s" % (s.status, s.body[:300]))
        return
    if "upgrade: %s" % PROTOCOL not in s.head.lower():
        fail("the 101 does not name %s: %s" % (PROTOCOL, s.head))
    s.send(OPEN, exec_open(["echo", "hi"]))
    kinds, out, code = [], b"", None
    deadline = time.time() + 20
    while time.time() < deadline:
        f = s.frame()
        if f is None:
            break
        kinds.append(f[0])
        if f[0] == STDOUT:
            out += f[1]
        if f[0] == ERROR:
            fail("exec echo hi: ERROR %s" % f[1].decode("utf-8", "replace"))
            break
        if f[0] == EXIT:
            code = struct.unpack(">iB", f[1])
            break
    if READY not in kinds or out != b"hi\n" or code != (0, 0):
        fail("exec echo hi: frames %s, stdout %r, exit %s" % (kinds, out, code))
    else:
        print("ok %-36s READY, STDOUT %r, EXIT %s" % ("exec echo hi", out, code))
    s.close()


def refusal_cases():
    expect_refusal("no Upgrade header", Session(A, upgrade=False), 426, PROTOCOL)
    expect_refusal("unsigned", Session(A, headers=[]), 401, "not signed")
    target = "/leases/%s/session" % A
    expect_refusal("a bad signature", Session(A, sign(target, A, extra=("--bad-signature",))),
                   401, "signature")
    expect_refusal("a stranger", Session(A, sign(target, A, signer=("--key", "provider"))),
                   403, "neither")
    expect_refusal("a workload that ended", Session(B), 409, "not running (state: exited)")
    held = []
    for i in range(16):
        s = Session(A)
        held.append(s)
        if s.status != 101:
            fail("session %d of 16 on lease A: %d %s" % (i + 1, s.status, s.body[:200]))
            break
    expect_refusal("the 17th session on a lease", Session(A), 429, "16 sessions")
    for s in held:
        s.close()
    # Closed by the tenant: the count goes down as the relays end.
    deadline = time.time() + 20
    while time.time() < deadline:
        s = Session(A)
        if s.status == 101:
            s.close()
            break
        s.close()
        time.sleep(0.2)
    else:
        fail("after the 16 sessions ended, lease A still refuses one")


def close_ends_case():
    s = Session(A)
    if s.status != 101:
        fail("the upgrade of lease A before its close: %d" % s.status)
        return
    s.send(OPEN, exec_open(["sleep", "600"]))
    s.sock.settimeout(60)
    ready = False
    while True:
        f = s.frame()
        if f is not None and f[0] == READY:
            ready = True
            open(os.path.join(E["WORK"], "session-open"), "w").close()  # the test closes A now
        if f is None or f[0] in (EXIT, ERROR):
            break
    if not ready:
        fail("the session on lease A never became READY (last frame %s)" % (f and f[0]))
    else:
        print("ok %-36s %s" % ("the session ends with its lease", "last frame %s" % (f and f[0])))


def main():
    case = E.get("CASE", "")
    if case == "closed":
        expect_refusal("a closed lease", Session(B), 410, "closed")
    elif case == "close_ends":
        close_ends_case()
    else:
        exec_case()
        refusal_cases()
    return 1 if failures else 0


sys.exit(main())
