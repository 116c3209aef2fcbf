// ssh sessions: `sshd -i` as the workload's uid, inside the sandbox, speaking over
// the session's STDIN/STDOUT; its host key made once per lease in the lease's /tmp.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "apps/gpunet_init/session.h"

extern char** environ;

namespace gpunet::init {
namespace {

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Writes `data` to `path` through a temporary file and a rename (mode 0600).
bool WriteFileReplacing(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.Valid() || !WriteAll(fd.Get(), data)) return false;
  fd.Reset();
  return ::rename(tmp.c_str(), path.c_str()) == 0;
}

/// Runs argv with no input and returns its exit status; its stderr in `err`.
int RunQuiet(const std::vector<std::string>& argv, std::string* err) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return -1;
  Fd r(p[0]), w(p[1]);
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ResetSignals();
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(w.Get(), 2);
    CloseFdsFrom(3);
    ExecWithEnv(argv, EnvironmentWith({}));
    ::_exit(127);
  }
  w.Reset();
  char buf[4096];
  for (ssize_t n; (n = ::read(r.Get(), buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (err->size() < 16384) err->append(buf, static_cast<size_t>(n));
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

/// The lease's ssh dir, created 0700 and ours; an exclusive lock on it held by the
/// returned fd while the key, authorized_keys and config are made.
Fd LockSshDir(const SshPaths& ssh, std::string* error) {
  if (::mkdir(ssh.dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *error = "cannot make " + ssh.dir + ": " + std::strerror(errno);
    return Fd();
  }
  struct stat st {};
  if (::lstat(ssh.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid()) {
    *error = ssh.dir + " is not a directory of the lease's user: remove it and retry";
    return Fd();
  }
  Fd lock(::open((ssh.dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock.Valid() || ::flock(lock.Get(), LOCK_EX) != 0) {
    *error = "cannot lock " + ssh.dir + "/lock: " + std::strerror(errno);
    return Fd();
  }
  return lock;
}

std::string HostKeyPath(const SshPaths& ssh) {
  return ssh.dir + "/ssh_host_ed25519_key";
}

/// Makes the host key unless it is there (the lock held). False with `error`.
bool EnsureHostKey(const SshPaths& ssh, std::string* error) {
  const std::string key = HostKeyPath(ssh);
  if (::access(key.c_str(), R_OK) == 0 && ::access((key + ".pub").c_str(), R_OK) == 0) return true;
  if (::access(ssh.ssh_keygen.c_str(), X_OK) != 0) {
    *error = "this lease's environment has no " + ssh.ssh_keygen +
             " (openssh-client) to make an ssh host key; use `gpunet shell` or `gpunet exec`, "
             "which need no ssh";
    return false;
  }
  (void)::unlink(key.c_str());
  (void)::unlink((key + ".pub").c_str());
  std::string err;
  int st = RunQuiet(
      {ssh.ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", "gpunet-lease", "-f", key}, &err);
  if (st != 0) {
    *error = "ssh-keygen failed to make the lease's host key: " + err;
    return false;
  }
  return true;
}

/// The variables of the workload's environment an ssh login gets too (sshd builds
/// its sessions' environment itself): quoted for sshd_config's SetEnv.
std::string SetEnvLine() {
  std::string line;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    std::string_view name = kv.substr(0, kv.find('='));
    bool wanted = name.starts_with("GPUNET_") || name == "CUDA_VISIBLE_DEVICES" ||
                  name == "MASTER_ADDR" || name == "MASTER_PORT";
    bool plain = kv.find_first_of("\"\\") == std::string_view::npos;
    for (char c : kv)
      if (static_cast<unsigned char>(c) < 0x20) plain = false;
    if (wanted && plain) line += " \"" + std::string(kv) + "\"";
  }
  return line.empty() ? "" : "SetEnv" + line + "\n";
}

std::string SshdConfig(const SshPaths& ssh) {
  return "# Written by gpunet-init for ssh sessions (docs/sandbox.md \"Interactive sessions\").\n"
         "HostKey " +
         HostKeyPath(ssh) + "\n" + "AuthorizedKeysFile " + ssh.dir + "/authorized_keys\n" +
         "PidFile none\n"
         "UsePAM no\n"
         "StrictModes no\n"
         "PubkeyAuthentication yes\n"
         "PasswordAuthentication no\n"
         "KbdInteractiveAuthentication no\n"
         "PermitUserEnvironment no\n"
         "AllowTcpForwarding yes\n"
         "X11Forwarding no\n"
         "PrintMotd no\n"
         // Its log reaches the client as STDERR, and from there the user's terminal
         // (ssh shows a ProxyCommand's stderr): errors only.
         "LogLevel ERROR\n"
         "Subsystem sftp internal-sftp\n" +
         SetEnvLine();
}

/// Adds `key` to authorized_keys unless it is there; rewrites the config if it changed.
bool PrepareSshd(const SshPaths& ssh, const std::string& key, std::string* error) {
  const std::string keys_path = ssh.dir + "/authorized_keys";
  std::string keys = ReadSmallFile(keys_path);
  bool present = false;
  std::istringstream in(keys);
  for (std::string line; std::getline(in, line);)
    if (line == key) present = true;
  if (!present) {
    if (!keys.empty() && keys.back() != '\n') keys += '\n';
    if (!WriteFileReplacing(keys_path, keys + key + "\n")) {
      *error = "cannot write " + keys_path + ": " + std::strerror(errno);
      return false;
    }
  }
  const std::string config_path = ssh.dir + "/sshd_config";
  const std::string config = SshdConfig(ssh);
  if (ReadSmallFile(config_path) != config && !WriteFileReplacing(config_path, config)) {
    *error = "cannot write " + config_path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

int ServeSsh(FrameSocket& sock, const base::SessionOpen& open, const SshPaths& ssh) {
  if (::access(ssh.sshd.c_str(), X_OK) != 0) {
    (void)sock.SendError("this lease's environment has no " + ssh.sshd +
                         "; ask the provider for one with openssh-server, or use `gpunet shell`, "
                         "`gpunet exec` and `gpunet cp`, which need no sshd");
    return 1;
  }
  std::string error;
  {
    Fd lock = LockSshDir(ssh, &error);
    if (!lock.Valid() || !EnsureHostKey(ssh, &error) ||
        !PrepareSshd(ssh, open.ssh_public_key, &error)) {
      (void)sock.SendError(error);
      return 1;
    }
  }
  return ServeCommand(sock, {ssh.sshd, "-i", "-e", "-f", ssh.dir + "/sshd_config"},
                      EnvironmentWith({}));
}

int ServeSshHostKey(FrameSocket& sock, const SshPaths& ssh) {
  std::string error;
  std::string pub;
  {
    Fd lock = LockSshDir(ssh, &error);
    if (!lock.Valid() || !EnsureHostKey(ssh, &error)) {
      (void)sock.SendError(error);
      return 1;
    }
    pub = ReadSmallFile(HostKeyPath(ssh) + ".pub");
  }
  if (pub.empty()) {
    (void)sock.SendError("the lease's ssh host key has no public half: remove " + ssh.dir +
                         " in the lease and retry");
    return 1;
  }
  if (sock.Send(base::SessionFrameType::kReady) && sock.Send(base::SessionFrameType::kStdout, pub))
    (void)sock.SendExit(0);
  return 0;
}

}  // namespace gpunet::init
