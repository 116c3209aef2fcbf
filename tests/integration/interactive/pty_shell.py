#!/usr/bin/env python3
"""Drives `gpunet shell LEASE` on a pseudo-terminal as a person at a terminal would.

  pty_shell.py GPUNET LEASE

Checks, each step waiting (bounded) for the shell's answer in its output:
1. the remote terminal starts at our size: `stty size` says 30 100;
2. a resize of our terminal reaches it (SIGWINCH -> RESIZE): `stty size` says 41 123;
3. Ctrl-C (a byte in raw mode) interrupts a `sleep 300` and the shell stays:
   the next command answers within 30 s;
4. `exit 7` ends the shell, and gpunet exits 7;
5. our terminal is back in its mode afterwards (gpunet restored it from raw).
Prints one line per failure and exits 1 when any failed.
"""
import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time

GPUNET, LEASE = sys.argv[1], sys.argv[2]
failures = []


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


pid, master = pty.fork()
if pid == 0:
    set_size(0, 30, 100)  # before gpunet reads it: no race with the parent
    os.environ["TERM"] = "xterm"
    os.execv(GPUNET, [GPUNET, "shell", LEASE])

seen = b""


def wait_for(marker, seconds=20.0):
    """Reads the shell's output until `marker` (bytes) appears after what was seen."""
    global seen
    deadline = time.monotonic() + seconds
    start = len(seen)
    while time.monotonic() < deadline:
        if marker in seen[start:]:
            return True
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return marker in seen[start:]


def send(text):
    os.write(master, text.encode())


# The markers are computed remotely, so the echo of what we typed never matches.
send("stty size; echo mark-$((40+2))\r")
if not wait_for(b"mark-42"):
    failures.append("the shell did not answer its first command")
elif b"30 100" not in seen:
    failures.append("stty size at the start is not 30 100: %r" % seen[-300:])

# The pty's mode as gpunet left it: raw while the shell runs (no echo, no ICANON).
if termios.tcgetattr(master)[3] & (termios.ECHO | termios.ICANON):
    failures.append("our terminal is not in raw mode during the shell")
set_size(master, 41, 123)  # the kernel sends SIGWINCH to gpunet, the pty's foreground
time.sleep(0.3)
send("stty size; echo mark-$((50+3))\r")
if not wait_for(b"mark-53"):
    failures.append("the shell did not answer after the resize")
elif b"41 123" not in seen[seen.rfind(b"mark-42"):]:
    failures.append("stty size after the resize is not 41 123: %r" % seen[-300:])

send("sleep 300\r")
time.sleep(1.0)
send("\x03")  # Ctrl-C: a byte to the remote pty, whose line discipline sends SIGINT
send("echo alive-$((60+6))\r")
# Within 30 s of a 300 s sleep: only an interrupted sleep lets the shell answer.
if not wait_for(b"alive-66", 30):
    failures.append("after Ctrl-C the shell did not answer (the sleep was not interrupted)")

send("exit 7\r")
status = None
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    wait_for(b"\x00never", 0.2)
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    status = None
if status is None:
    failures.append("gpunet shell did not end after `exit 7`")
    os.kill(pid, 9)
elif not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 7:
    failures.append("gpunet shell ended with status %r, expected exit 7" % status)

if status is not None and not termios.tcgetattr(master)[3] & termios.ECHO:
    failures.append("our terminal was left in raw mode after the shell ended")

for f in failures:
    print("FAIL: shell: " + f)
sys.exit(1 if failures else 0)
