#!/usr/bin/env python3
"""Runs `gpunet run ...` on a pseudo-terminal, waits for WAIT_FOR in its output,
types Ctrl-C, waits for the keep-or-close question and answers ANSWER.
Prints what the terminal showed; exits with gpunet's exit status.

    ctrl_c.py WAIT_FOR ANSWER GPUNET ARGS...
"""
import os
import pty
import sys
import time

wait_for, answer, argv = sys.argv[1].encode(), sys.argv[2], sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)

seen = b""


def read_until(needle, seconds):
    global seen
    deadline = time.monotonic() + seconds
    while needle not in seen:
        if time.monotonic() > deadline:
            return False
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        seen += chunk
    return True


ok = read_until(wait_for, 60)
if ok:
    os.write(fd, b"\x03")  # the terminal's Ctrl-C: SIGINT to the foreground group
    ok = read_until(b"close it now (c)?", 20)
    if ok:
        os.write(fd, answer.encode() + b"\n")
read_until(b"\x00never", 60)  # to EOF
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
if not ok:
    sys.stdout.write("\nctrl_c.py: did not see %r\n" % (wait_for if b"close it" not in seen else b"the answer"))
    sys.exit(99)
sys.exit(os.waitstatus_to_exitcode(status))
