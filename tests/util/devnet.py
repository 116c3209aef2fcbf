"""The Python side of tests/util/devnet.sh: a work directory, start a `gpunet node`
in it, wait until its RPC answers, stop it and say how it ended (stdlib only).

    work = devnet.WorkDir("gpunet-node-it")  # like devnet_workdir: a fresh directory
    node = devnet.Node(gpunet, work.sub("home"), work.sub("node.log"))
    url = node.start()                       # "RPC: <url>" printed and GET /status 200
    ...
    rc = node.stop(signal.SIGKILL)           # a crash now: the exit status
    node.stop_clean()                        # SIGTERM must end it with exit 0
    node.kill()                              # in a finally: nothing left running
    work.finish(ok)                          # removed when the test passed, else kept

The node's stdout and stderr go to one log, appended across restarts. A node that
is not ready within START_TIMEOUT_S, or exits first, ends the test with the log's
last lines: a test never hangs on a node that will not start.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60


def _give_up(msg, log_path):
    print("FAIL:", msg, flush=True)
    try:
        with open(log_path, errors="replace") as f:
            lines = f.readlines()[-40:]
        print("its output (%s), last %d lines:" % (log_path, len(lines)), flush=True)
        sys.stdout.write("".join(lines))
    except OSError as e:
        print("its output cannot be read:", e, flush=True)
    sys.stdout.flush()
    sys.exit(1)


class WorkDir:
    """A new directory <temp dir>/<prefix>-XXXXXX for a test's node home and log."""

    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix=prefix + "-")

    def sub(self, name):
        """A path inside the directory (not created)."""
        return os.path.join(self.path, name)

    def finish(self, ok):
        """Removes the directory after a passing test; keeps it, and says where, after
        a failing one."""
        if ok:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            print("kept", self.path, "for inspection", flush=True)


class Node:
    def __init__(self, gpunet, home, log_path):
        self.gpunet, self.home, self.log_path = gpunet, home, log_path
        self.proc = None
        self.url = None

    def _rpc_lines(self):
        try:
            with open(self.log_path, errors="replace") as f:
                # Whole lines only: the last one may be half written.
                return [line.split()[1] for line in f
                        if line.startswith("RPC: ") and line.endswith("\n") and len(line.split()) > 1]
        except FileNotFoundError:
            return []

    def start(self, args=("--rpc", "127.0.0.1:0"), env=None, wait_rpc=True):
        """Starts `gpunet node --home HOME ARGS` with os.environ plus `env`; returns
        its RPC URL once GET /status answers 200 (wait_rpc False: once the URL is
        printed, which the node does when its RPC listens, for a test that counts
        every connection the node sees)."""
        assert self.proc is None, "the node is already running"
        before = len(self._rpc_lines())
        environ = dict(os.environ, **(env or {}))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.gpunet, "node", "--home", self.home, *args],
                                         stdout=log, stderr=log, env=environ)
        deadline = time.monotonic() + START_TIMEOUT_S
        # Count, then read: a new "RPC:" line is this start's, not a previous one's.
        while len(urls := self._rpc_lines()) <= before:
            if self.proc.poll() is not None:
                _give_up("gpunet node exited with status %d before it was ready" %
                         self.proc.returncode, self.log_path)
            if time.monotonic() > deadline:
                _give_up("gpunet node printed no RPC URL within %d s" % START_TIMEOUT_S,
                         self.log_path)
            time.sleep(0.05)
        self.url = urls[-1]
        while wait_rpc:
            try:
                with urllib.request.urlopen(self.url + "/status", timeout=5) as r:
                    if r.status == 200:
                        break
                    why = "HTTP %d" % r.status
            except OSError as e:  # URLError and HTTPError (a non-200 answer) are OSErrors
                why = str(e)
            if time.monotonic() > deadline:
                _give_up("gpunet node: its RPC at %s does not answer: %s" % (self.url, why),
                         self.log_path)
            time.sleep(0.05)
        return self.url

    def stop(self, sig=signal.SIGTERM):
        """Sends `sig` and returns the exit status (negative: killed by a signal)."""
        assert self.proc is not None, "the node is not running"
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        rc = self.proc.returncode
        self.proc = None
        return rc

    def stop_clean(self):
        """SIGTERM: the node must stop with exit 0."""
        rc = self.stop(signal.SIGTERM)
        if rc != 0:
            _give_up("gpunet node exited %s on SIGTERM, expected 0" % rc, self.log_path)

    def kill(self):
        """Whatever the test's path: no node left running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

