// One interactive session of gpunet-init: the body of the process init forks for
// each connection accepted on the session socket (docs/sandbox.md "Interactive
// sessions"). It reads the OPEN frame and serves it: exec (with or without a pty made
// here, inside the sandbox), a forward to a port of the sandbox's own loopback, sshd
// in inetd mode, or the sshd's host key.
#pragma once

#include <string>

#include "apps/gpunet_init/init_util.h"
#include "base/session_wire.h"

namespace gpunet::init {

/// Where the ssh kinds keep their files (the sandbox's own /tmp) and the sshd.
struct SshPaths {
  std::string dir = "/tmp/.gpunet-ssh";
  std::string sshd = "/usr/sbin/sshd";
  std::string ssh_keygen = "/usr/bin/ssh-keygen";
};

/// Serves the session on `fd` (blocking, to its end) and returns the process's exit
/// code. A malformed frame ends this session with ERROR, nothing else.
int RunSession(int fd, const SshPaths& ssh);

/// The exec side of a session (session_exec.cpp): runs `open`'s command, relays its
/// input and output until it ended. Returns the session's exit code.
int ServeExec(FrameSocket& sock, const base::SessionOpen& open);
/// Runs argv without a pty and relays it (ServeExec without tty, and sshd -i).
int ServeCommand(FrameSocket& sock, const std::vector<std::string>& argv,
                 const std::vector<std::string>& env);

/// The ssh kinds (session_ssh.cpp).
int ServeSsh(FrameSocket& sock, const base::SessionOpen& open, const SshPaths& ssh);
int ServeSshHostKey(FrameSocket& sock, const SshPaths& ssh);

}  // namespace gpunet::init
