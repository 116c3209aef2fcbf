// The interactive verbs (docs/cli.md "Interactive leases"): `gpunet exec`, `shell`,
// `forward`, `cp`, `ssh-config` and the hidden `ssh-proxy` that ssh-config's
// ProxyCommand runs. Each opens sessions on the lease's in-sandbox init through the
// provider's tenant API (client/session_client.h), signed like the `lease` verbs:
// the tenant key (--from) or a session key's grant. The terminal (raw mode, its size)
// is handled here; the frames and the relay live in the client library.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apps/gpunet/cli.h"
#include "apps/gpunet/lease_access.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/file_util.h"
#include "base/session_wire.h"
#include "client/session_client.h"
#include "client/session_keys.h"
#include "client/ssh_config.h"
#include "client/tenant_transfer.h"

extern char** environ;

namespace gpunet::apps {
namespace {

using base::ErrorCode;
using base::SessionFrameType;
using base::SessionOpenKind;
namespace fs = std::filesystem;

struct InteractiveArgs {
  std::string lease, from, session, spec, src, dest, identity;
  std::vector<std::string> command;
  bool tty = false, no_stdin = false, recursive = false;
};

/// gpunet's own failures in exec, shell and ssh-proxy exit 255, as ssh's do, so a
/// script can tell them from the remote command's codes.
constexpr int kOwnFailureExit = 255;

// ---------------------------------------------------------------- the terminal

termios g_saved_mode{};
volatile sig_atomic_t g_raw_fd = -1;  ///< the terminal in raw mode, or -1
int g_winch_pipe[2] = {-1, -1};       ///< SIGWINCH writes a byte here

void RestoreTerminal() {
  if (g_raw_fd >= 0) ::tcsetattr(g_raw_fd, TCSADRAIN, &g_saved_mode);
}

extern "C" void OnEndingSignal(int signal) {
  RestoreTerminal();  // async-signal-safe: tcsetattr
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

extern "C" void OnWindowChange(int) {
  const int saved = errno;
  [[maybe_unused]] const ssize_t n = ::write(g_winch_pipe[1], "w", 1);
  errno = saved;
}

/// Our terminal in raw mode while it lives (keys, Ctrl-C included, go to the remote
/// pty as bytes); restored on every way out: the destructor, exit(), and SIGTERM,
/// SIGHUP, SIGQUIT or SIGINT sent from elsewhere.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) {
    if (::tcgetattr(fd, &g_saved_mode) != 0) return;
    termios raw = g_saved_mode;
    ::cfmakeraw(&raw);
    for (int s : {SIGTERM, SIGHUP, SIGQUIT, SIGINT}) ::signal(s, OnEndingSignal);
    g_raw_fd = fd;
    static const bool registered = (std::atexit(RestoreTerminal), true);
    (void)registered;
    ::tcsetattr(fd, TCSADRAIN, &raw);
  }
  ~RawTerminal() {
    RestoreTerminal();
    g_raw_fd = -1;
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
};

std::optional<base::SessionWindow> TerminalWindow() {
  winsize ws{};
  for (int fd : {STDOUT_FILENO, STDIN_FILENO, STDERR_FILENO})
    if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
      return base::SessionWindow{std::min<uint16_t>(ws.ws_row, base::kSessionTermSizeMax),
                                 std::min<uint16_t>(ws.ws_col, base::kSessionTermSizeMax)};
  return std::nullopt;
}

/// TERM, LANG and LC_* of ours: what init honours of a client's environment.
std::vector<std::string> TerminalEnvironment() {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr && out.size() < base::kSessionEnvcMax; ++e) {
    const std::string_view kv(*e);
    if ((kv.starts_with("TERM=") || kv.starts_with("LANG=") || kv.starts_with("LC_")) &&
        kv.find('=') != std::string_view::npos)
      out.emplace_back(kv);
  }
  return out;
}

// ---------------------------------------------------------------- sessions

/// The lease and a client signed as --from / --session say.
struct LeaseAccess {
  LeaseContext c;
  client::TenantClient tenant;
};

LeaseAccess Access(const GlobalOptions& g, const InteractiveArgs& a) {
  LeaseContext c = ReadLease(g, a.lease);
  client::TenantClient tenant = ConnectAs(g, c, a.from, a.session);
  return {std::move(c), std::move(tenant)};
}

std::unique_ptr<client::Session> Open(LeaseAccess& access, const base::SessionOpen& open) {
  const uint64_t id = access.c.lease.lease_id;
  return OrFail(client::OpenSession(access.tenant, id, open), "lease " + std::to_string(id));
}

/// Exits as the remote command did (a signal: 128 + N), after its ERROR: 255.
[[noreturn]] void ExitAs(const GlobalOptions& g, uint64_t lease_id, const client::SessionEnd& end) {
  std::cout.flush();
  if (end.error) {
    PrintError(g,
               {ErrorCode::kUnavailable, "lease " + std::to_string(lease_id) + ": " + *end.error});
    std::exit(kOwnFailureExit);
  }
  if (end.output_failed) std::exit(128 + SIGPIPE);  // as a command writing to a closed pipe
  std::exit(end.exit ? end.exit->exit_code : kOwnFailureExit);
}

/// Runs `body`; gpunet's own failure is reported and exits 255 instead of 1.
template <class Body>
void OwnFailuresExit255(const GlobalOptions& g, Body&& body) {
  try {
    body();
  } catch (const CommandFailed& f) {
    RestoreTerminal();
    PrintError(g, f.error);
    std::exit(kOwnFailureExit);
  }
}

/// An exec session relayed on our stdin, stdout and stderr; exits with its code.
[[noreturn]] void RunExecSession(const GlobalOptions& g, const InteractiveArgs& a, bool tty) {
  ::signal(SIGPIPE, SIG_IGN);
  LeaseAccess access = Access(g, a);
  base::SessionOpen open;
  open.kind = SessionOpenKind::kExec;
  open.tty = tty;
  open.argv = a.command;
  if (tty) {
    open.window = TerminalWindow().value_or(base::SessionWindow{});
    open.env = TerminalEnvironment();
  }
  auto session = Open(access, open);
  const bool our_tty = ::isatty(STDIN_FILENO) == 1;
  client::SessionRelayIo io;
  // A terminal's keys go to a remote pty only; without one, our stdin is the
  // command's unless it is a terminal (it would wait for keys nobody means for it).
  io.input_fd = a.no_stdin || (!tty && our_tty) ? -1 : STDIN_FILENO;
  io.output_fd = STDOUT_FILENO;
  io.error_fd = STDERR_FILENO;
  std::optional<RawTerminal> raw;
  if (tty && our_tty) {
    GPUNET_CHECK(::pipe2(g_winch_pipe, O_CLOEXEC | O_NONBLOCK) == 0);
    ::signal(SIGWINCH, OnWindowChange);
    io.resize_fd = g_winch_pipe[0];
    io.window = TerminalWindow;
    raw.emplace(STDIN_FILENO);
  }
  auto end = client::RelaySession(*session, io);
  raw.reset();
  const client::SessionEnd done = OrFail(std::move(end), "lease " + a.lease);
  ExitAs(g, access.c.lease.lease_id, done);
}

void RunExec(const GlobalOptions& g, const InteractiveArgs& a) {
  OwnFailuresExit255(g, [&] {
    if (a.command.empty())
      FailCommand(
          ErrorCode::kInvalidArgument,
          "no command: `gpunet exec LEASE -- CMD ARGS...` (for a shell: gpunet shell LEASE)");
    RunExecSession(g, a, a.tty);
  });
}

void RunShell(const GlobalOptions& g, const InteractiveArgs& a) {
  OwnFailuresExit255(g, [&] { RunExecSession(g, a, true); });
}

// ---------------------------------------------------------------- forward

struct ForwardSpec {
  uint16_t remote = 0, local = 0;
};

ForwardSpec ParseForwardSpec(const std::string& text) {
  const auto port = [&](std::string_view p) -> uint16_t {
    const auto v = ParseDigits(p, 5);
    if (!v || *v == 0 || *v > 65535)
      FailCommand(
          ErrorCode::kInvalidArgument,
          "\"" + text + "\" is not REMOTE[:LOCAL] ports (1..65535), e.g. 8888 or 8888:18888");
    return static_cast<uint16_t>(*v);
  };
  const size_t colon = text.find(':');
  ForwardSpec out;
  out.remote = port(std::string_view(text).substr(0, colon));
  out.local =
      colon == std::string::npos ? out.remote : port(std::string_view(text).substr(colon + 1));
  return out;
}

int ListenLocal(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) FailCommand(ErrorCode::kIo, std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    ::close(fd);
    const std::string p = std::to_string(port);
    FailCommand(ErrorCode::kUnavailable,
                "cannot listen on 127.0.0.1:" + p + ": " + std::strerror(e) +
                    (e == EADDRINUSE ? " (another program uses that port here: pick another local "
                                       "port, REMOTE:LOCAL, e.g. " +
                                           p + ":1" + p.substr(0, 4) + ")"
                                     : ""));
  }
  if (::listen(fd, 64) != 0)
    FailCommand(ErrorCode::kIo, std::string("listen: ") + std::strerror(errno));
  return fd;
}

/// One accepted connection's own session, relayed until either side ends it.
void ServeForward(client::TenantClient tenant, uint64_t lease_id, uint16_t remote, int fd) {
  base::SessionOpen open;
  open.kind = SessionOpenKind::kForward;
  open.port = remote;
  const std::string where = "lease " + std::to_string(lease_id) + " port " + std::to_string(remote);
  auto session = client::OpenSession(tenant, lease_id, open);
  if (!session) {
    std::cerr << "gpunet forward: " << where << ": " << session.error().message << std::endl;
    ::close(fd);
    return;
  }
  client::SessionRelayIo io;
  io.input_fd = fd;
  io.output_fd = fd;
  io.shutdown_output_on_eof = true;  // the connection is this session's own
  io.error_fd = STDERR_FILENO;
  auto end = client::RelaySession(**session, io);
  if (!end)
    std::cerr << "gpunet forward: " << where << ": " << end.error().message << std::endl;
  else if (end->error)
    std::cerr << "gpunet forward: " << where << ": " << *end->error << std::endl;
  ::close(fd);
}

void RunForward(const GlobalOptions& g, const InteractiveArgs& a) {
  ::signal(SIGPIPE, SIG_IGN);
  const ForwardSpec spec = ParseForwardSpec(a.spec);
  LeaseAccess access = Access(g, a);
  const uint64_t id = access.c.lease.lease_id;
  const int listener = ListenLocal(spec.local);
  std::cout << "forwarding http://127.0.0.1:" << spec.local << " -> lease " << id << " port "
            << spec.remote << " (Ctrl-C to stop)" << std::endl;
  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
        if (errno == EMFILE || errno == ENFILE)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      FailCommand(ErrorCode::kIo, std::string("accept: ") + std::strerror(errno));
    }
    std::thread(ServeForward, access.tenant, id, spec.remote, fd).detach();
  }
}

// ---------------------------------------------------------------- cp

/// Runs on the lease by `sh -c SCRIPT gpunet-cp DEST NAME`: unpacks the tar on its
/// stdin into DEST (a folder: into it; else as DEST, through a temporary folder
/// beside it). Paths come as arguments, never inside the script.
constexpr const char* kUnpackScript = R"sh(set -e
cd /work 2>/dev/null || cd
dest=${1:-.} name=$2
if [ -d "$dest" ]; then exec tar -x -f - -C "$dest"; fi
tmp=$(mktemp -d "$(dirname -- "$dest")/.gpunet-cp.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
tar -x -f - -C "$tmp"
mv -f -- "$tmp/$name" "$dest"
)sh";

/// Runs on the lease by `sh -c SCRIPT gpunet-cp SRC [-r]`: SRC as a tar on stdout.
constexpr const char* kPackScript = R"sh(cd /work 2>/dev/null || cd
src=$1
if [ ! -e "$src" ]; then echo "gpunet cp: no $src on the lease" >&2; exit 2; fi
if [ -d "$src" ] && [ "$2" != -r ]; then echo "gpunet cp: $src is a folder on the lease: add -r" >&2; exit 3; fi
cd -- "$(dirname -- "$src")" && exec tar -c -f - -- "$(basename -- "$src")"
)sh";

/// LEASE:PATH split, or nullopt for a local path.
std::optional<std::pair<std::string, std::string>> RemoteSide(const std::string& arg) {
  const size_t colon = arg.find(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  if (!ParseDigits(std::string_view(arg).substr(0, colon), 19)) return std::nullopt;
  return std::make_pair(arg.substr(0, colon), arg.substr(colon + 1));
}

/// Starts `tar ARGS` here with stdin `in_fd` and stdout `out_fd` (-1: ours).
pid_t SpawnTar(const std::vector<std::string>& args, int in_fd, int out_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (in_fd >= 0) posix_spawn_file_actions_adddup2(&actions, in_fd, STDIN_FILENO);
  if (out_fd >= 0) posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  std::vector<char*> argv;
  std::vector<std::string> all{"tar"};
  all.insert(all.end(), args.begin(), args.end());
  for (auto& s : all) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, "tar", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    FailCommand(ErrorCode::kIo, std::string("cannot run tar here: ") + std::strerror(rc));
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Progress on stderr when it is a terminal: bytes so far, each MiB.
std::function<void(uint64_t, uint64_t)> Progress(bool upload) {
  if (::isatty(STDERR_FILENO) != 1) return {};
  auto last = std::make_shared<uint64_t>(0);
  return [upload, last](uint64_t sent, uint64_t received) {
    const uint64_t n = upload ? sent : received;
    if (n / (1 << 20) == *last / (1 << 20)) return;
    *last = n;
    std::cerr << "\r  " << (n >> 20) << " MiB " << (upload ? "sent" : "received") << std::flush;
  };
}

struct Pipe {
  int read = -1, write = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) FailCommand(ErrorCode::kIo, "pipe failed");
    read = fds[0];
    write = fds[1];
  }
  void CloseRead() { Close(read); }
  void CloseWrite() { Close(write); }
  ~Pipe() {
    Close(read);
    Close(write);
  }

 private:
  static void Close(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

/// Relays a cp session whose other end is local `tar` through `pipe` (our end
/// closed after, so tar sees the end), waits for tar; its exit and the session's end.
/// An ERROR from the lease ends the command.
std::pair<client::SessionEnd, int> RelayWithTar(client::Session& session, client::SessionRelayIo io,
                                                Pipe& pipe, pid_t tar, bool upload,
                                                const std::string& lease) {
  io.error_fd = STDERR_FILENO;
  io.on_progress = Progress(upload);
  auto end = client::RelaySession(session, io);
  if (upload)
    pipe.CloseRead();
  else
    pipe.CloseWrite();
  const int tar_exit = WaitExit(tar);
  if (io.on_progress) std::cerr << std::endl;
  client::SessionEnd done = OrFail(std::move(end), "lease " + lease);
  if (done.error) FailCommand(ErrorCode::kUnavailable, "lease " + lease + ": " + *done.error);
  return {std::move(done), tar_exit};
}

void Upload(const GlobalOptions& g, const InteractiveArgs& a, const std::string& lease,
            const std::string& dest) {
  std::error_code ec;
  const fs::path src = fs::path(a.src).lexically_normal();
  const auto status = fs::symlink_status(src, ec);
  if (ec || !fs::exists(status)) FailCommand(ErrorCode::kNotFound, "no " + a.src + " here");
  if (fs::is_directory(status) && !a.recursive)
    FailCommand(ErrorCode::kInvalidArgument, a.src + " is a folder: add -r");
  fs::path name = src.filename();
  if (name.empty() || name == "." || name == "..")
    name = fs::absolute(src, ec).lexically_normal().filename();
  const fs::path parent = fs::absolute(src, ec).lexically_normal().parent_path();
  InteractiveArgs remote = a;
  remote.lease = lease;
  LeaseAccess access = Access(g, remote);
  base::SessionOpen open;
  open.kind = SessionOpenKind::kExec;
  open.argv = {"sh", "-c", kUnpackScript, "gpunet-cp", dest, name.string()};
  auto session = Open(access, open);
  Pipe tar_out;
  const pid_t tar =
      SpawnTar({"-c", "-f", "-", "-C", parent.string(), "--", name.string()}, -1, tar_out.write);
  tar_out.CloseWrite();
  client::SessionRelayIo io;
  io.input_fd = tar_out.read;
  io.output_fd = STDOUT_FILENO;
  const auto [done, tar_exit] = RelayWithTar(*session, io, tar_out, tar, true, lease);
  if (tar_exit != 0)
    FailCommand(ErrorCode::kIo, "tar here failed (exit " + std::to_string(tar_exit) + ")");
  if (!done.exit || done.exit->exit_code != 0)
    FailCommand(ErrorCode::kIo, "unpacking on lease " + lease + " failed (exit " +
                                    std::to_string(done.exit ? done.exit->exit_code : -1) + ")");
}

void Download(const GlobalOptions& g, const InteractiveArgs& a, const std::string& lease,
              const std::string& src) {
  // "data/" is "data" (its last component, never the temporary folder itself).
  const fs::path name = OrFail(client::CopyDownloadName(src));
  std::error_code ec;
  const fs::path dest = fs::absolute(a.dest.empty() ? "." : a.dest, ec).lexically_normal();
  const bool into = fs::is_directory(dest, ec);
  const fs::path final_path = into ? dest / name : dest;
  const fs::path where = into ? dest : dest.parent_path();
  std::string tmp_template = (where / ".gpunet-cp.XXXXXX").string();
  if (::mkdtemp(tmp_template.data()) == nullptr)
    FailCommand(ErrorCode::kIo,
                "cannot make a folder in " + where.string() + ": " + std::strerror(errno));
  const fs::path tmp = tmp_template;
  struct RemoveTmp {
    fs::path path;
    ~RemoveTmp() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  } remove_tmp{tmp};
  InteractiveArgs remote = a;
  remote.lease = lease;
  LeaseAccess access = Access(g, remote);
  base::SessionOpen open;
  open.kind = SessionOpenKind::kExec;
  open.argv = {"sh", "-c", kPackScript, "gpunet-cp", src, a.recursive ? "-r" : ""};
  auto session = Open(access, open);
  Pipe tar_in;
  // The archive is the lease's: files are the user's with the user's umask (as root
  // too), the temporary folder's own mode stays; CheckUnpackedDownload then refuses
  // links, devices and FIFOs and clears setuid/setgid/sticky bits before the rename.
  const pid_t tar = SpawnTar({"-x", "-f", "-", "-C", tmp.string(), "--no-same-owner",
                              "--no-same-permissions", "--no-overwrite-dir"},
                             tar_in.read, -1);
  tar_in.CloseRead();
  client::SessionRelayIo io;
  io.output_fd = tar_in.write;
  const auto [done, tar_exit] = RelayWithTar(*session, io, tar_in, tar, false, lease);
  if (!done.exit || done.exit->exit_code != 0)
    FailCommand(ErrorCode::kIo, "reading " + src + " on lease " + lease + " failed (exit " +
                                    std::to_string(done.exit ? done.exit->exit_code : -1) + ")");
  if (tar_exit != 0)
    FailCommand(ErrorCode::kIo,
                "unpacking here failed (tar exit " + std::to_string(tar_exit) + ")");
  OrFail(client::CheckUnpackedDownload((tmp / name).string()), "lease " + lease + ": " + src);
  fs::rename(tmp / name, final_path, ec);
  if (ec)
    FailCommand(ErrorCode::kIo,
                "cannot put " + src + " at " + final_path.string() + ": " + ec.message());
}

void RunCp(const GlobalOptions& g, const InteractiveArgs& a) {
  ::signal(SIGPIPE, SIG_IGN);
  const auto from = RemoteSide(a.src);
  const auto to = RemoteSide(a.dest);
  if (from.has_value() == to.has_value())
    FailCommand(ErrorCode::kInvalidArgument,
                "one side must be LEASE:PATH and the other a path here, e.g. `gpunet cp data.csv "
                "7:data/` or `gpunet cp -r 7:outputs ./results`");
  if (to) return Upload(g, a, to->first, to->second);
  Download(g, a, from->first, from->second);
}

// ---------------------------------------------------------------- ssh-config, ssh-proxy

std::string SshDir(const GlobalOptions& g) {
  return fs::absolute(g.Home()).lexically_normal().string() + "/ssh";
}

std::string PublicKeyPath(const GlobalOptions& g, uint64_t lease_id) {
  return SshDir(g) + "/" + client::SshHostAlias(lease_id) + ".pub";
}

/// The user's SSH public key (IDENTITY.pub), checked; never a gpunet ledger key.
std::string IdentityPublicKey(const GlobalOptions& g, const std::string& identity) {
  std::error_code ec;
  const fs::path keys = fs::weakly_canonical(fs::absolute(g.Home()) / "keys", ec);
  const fs::path id = fs::weakly_canonical(identity, ec);
  if (id.string().starts_with(keys.string() + "/"))
    FailCommand(ErrorCode::kInvalidArgument,
                identity +
                    " is in gpunet's keystore: ssh takes an SSH key of yours, never the "
                    "ledger key (make one: ssh-keygen -t ed25519)");
  const std::string pub = identity + ".pub";
  auto text = base::ReadFileNoFollow(pub, 16 * 1024);
  if (!text && text.error().code == ErrorCode::kNotFound)
    FailCommand(ErrorCode::kNotFound, "no SSH key at " + identity + " (" + pub +
                                          " is missing): make one with `ssh-keygen -t ed25519`, "
                                          "or name yours with --identity");
  const std::string content = OrFail(std::move(text), "reading " + pub);
  if (content.starts_with("{"))
    FailCommand(
        ErrorCode::kInvalidArgument,
        pub + " is a gpunet ledger key: ssh takes an SSH key of yours (ssh-keygen -t ed25519)");
  return OrFail(client::CheckSshPublicKeyLine(pub, content.substr(0, content.find('\n'))));
}

/// A usable session key's grant for the lease, or one made now with --from.
void EnsureGrant(const GlobalOptions& g, const LeaseContext& c, const InteractiveArgs& a) {
  const auto sessions = client::SessionKeys::AtHome(g.Home());
  const uint64_t now = static_cast<uint64_t>(base::SystemClock::Instance().NowMs());
  if (OrFail(sessions.Usable(c.provider_address, c.lease.lease_id, now),
             "reading session keys in " + sessions.Dir()))
    return;
  if (a.from.empty())
    FailCommand(ErrorCode::kInvalidArgument,
                "no session key holds a grant for lease " + std::to_string(c.lease.lease_id) +
                    ": give --from KEY (the tenant key) once, and ssh-config delegates the lease "
                    "to a session key that ssh then uses without a passphrase");
  const LeaseGrant made = GrantLease(g, c, a.from, "ssh", "");
  std::cerr << "session key \"ssh\" may act on lease " << c.lease.lease_id << " until "
            << UtcText(made.expires_ms) << " (revoke: gpunet lease revoke " << c.lease.lease_id
            << " " << base::ToHex(made.grant.grant_id) << " --from " << a.from << ")" << std::endl;
}

/// The sshd's host key line, read over the pinned API (OPEN ssh-hostkey).
std::string FetchHostKey(LeaseAccess& access) {
  base::SessionOpen open;
  open.kind = SessionOpenKind::kSshHostKey;
  auto session = Open(access, open);
  const std::string what =
      "reading lease " + std::to_string(access.c.lease.lease_id) + "'s host key";
  std::string out;
  for (;;) {
    auto frame = OrFail(session->Next(), what);
    if (!frame) FailCommand(ErrorCode::kUnavailable, what + ": the session ended early");
    if (frame->type == SessionFrameType::kStdout && out.size() < 16 * 1024) out += frame->payload;
    if (frame->type == SessionFrameType::kError)
      FailCommand(ErrorCode::kUnavailable, what + ": " + frame->payload);
    if (frame->type == SessionFrameType::kExit) break;
  }
  return OrFail(client::CheckSshPublicKeyLine("the lease's host key", out), what);
}

void WriteText(const std::string& path, const std::string& text) {
  OrFail(base::WriteFileAtomic(path, text, {.mode = 0600}), "writing " + path);
}

std::string ReadTextOrEmpty(const std::string& path) {
  auto text = base::ReadFileNoFollow(path, 4 << 20);
  if (!text && text.error().code == ErrorCode::kNotFound) return {};
  return OrFail(std::move(text), "reading " + path);
}

void RunSshConfig(const GlobalOptions& g, const InteractiveArgs& a) {
  const std::string identity =
      a.identity.empty()
          ? std::string(std::getenv("HOME") ? std::getenv("HOME") : "") + "/.ssh/id_ed25519"
          : fs::absolute(a.identity).lexically_normal().string();
  const std::string public_key = IdentityPublicKey(g, identity);
  LeaseContext c = ReadLease(g, a.lease);
  EnsureGrant(g, c, a);
  LeaseAccess access{c, ConnectAs(g, c, "", "")};
  const uint64_t id = c.lease.lease_id;
  const std::string host_key = FetchHostKey(access);
  const std::string dir = SshDir(g);
  std::error_code ec;
  fs::create_directories(dir, ec);
  ::chmod(dir.c_str(), 0700);
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) FailCommand(ErrorCode::kIo, "cannot find this gpunet's own path (/proc/self/exe)");
  client::SshHostEntry entry{id,
                             std::string(self, static_cast<size_t>(n)),
                             fs::absolute(g.Home()).lexically_normal().string(),
                             g.NodeUrl(),
                             identity,
                             dir + "/known_hosts"};
  const std::string block = OrFail(client::SshHostBlock(entry));
  const std::string alias = client::SshHostAlias(id);
  WriteText(entry.known_hosts,
            client::ReplaceKnownHost(ReadTextOrEmpty(entry.known_hosts), alias, host_key));
  WriteText(PublicKeyPath(g, id), public_key + "\n");
  const std::string config = dir + "/config";
  WriteText(config, client::ReplaceSshHostBlock(ReadTextOrEmpty(config), alias, block));
  if (g.Json())
    return PrintJson({{"host", alias}, {"config", config}, {"known_hosts", entry.known_hosts}});
  std::cout << "wrote Host " << alias << " to " << config << " (host key in " << entry.known_hosts
            << ")\n"
            << "  ssh -F " << config << " " << alias << "\n"
            << "  scp -F " << config << " FILE " << alias << ":/work/\n"
            << "  rsync -e 'ssh -F " << config << "' -a DIR/ " << alias << ":/work/DIR/\n"
            << "for plain `ssh " << alias
            << "` and VS Code Remote-SSH, add this line to the top of "
            << "~/.ssh/config:\n  Include " << config << std::endl;
}

void RunSshProxy(const GlobalOptions& g, const InteractiveArgs& a) {
  OwnFailuresExit255(g, [&] {
    ::signal(SIGPIPE, SIG_IGN);
    LeaseContext c = ReadLease(g, a.lease);
    const uint64_t id = c.lease.lease_id;
    const auto sessions = client::SessionKeys::AtHome(g.Home());
    const uint64_t now = static_cast<uint64_t>(base::SystemClock::Instance().NowMs());
    const auto grant = OrFail(sessions.Usable(c.provider_address, id, now), sessions.Dir());
    const std::string pub_path = PublicKeyPath(g, id);
    auto pub = base::ReadFileNoFollow(pub_path, 16 * 1024);
    if (!grant || !pub)
      FailCommand(ErrorCode::kInvalidArgument,
                  std::string(!grant ? "no session key holds an unexpired grant for lease "
                                     : "no SSH key recorded for lease ") +
                      std::to_string(id) + ": run `gpunet ssh-config " + std::to_string(id) +
                      " --from KEY` once");
    LeaseAccess access{c, client::TenantClient(ClientOptions(c), grant->key, grant->grant)};
    base::SessionOpen open;
    open.kind = SessionOpenKind::kSsh;
    open.ssh_public_key =
        OrFail(client::CheckSshPublicKeyLine(pub_path, pub->substr(0, pub->find('\n'))));
    auto session = Open(access, open);
    client::SessionRelayIo io;
    io.input_fd = STDIN_FILENO;
    io.output_fd = STDOUT_FILENO;
    io.error_fd = STDERR_FILENO;
    const client::SessionEnd end = OrFail(client::RelaySession(*session, io), "lease " + a.lease);
    ExitAs(g, id, end);
  });
}

// ---------------------------------------------------------------- registration

CLI::App* Verb(CLI::App& app, std::string_view name, std::string_view help, InteractiveArgs& a) {
  auto* cmd = app.add_subcommand(std::string(name), std::string(help));
  cmd->add_option("LEASE", a.lease, "Lease id")->required();
  cmd->add_option("--from", a.from,
                  "The tenant key (asks its passphrase); default: a session key's grant");
  cmd->add_option("--session", a.session, "Sign with this session key (`gpunet lease grant`)");
  return cmd;
}

}  // namespace

void RegisterInteractiveCommands(CLI::App& app, GlobalOptions& g) {
  auto a = std::make_shared<InteractiveArgs>();
  auto* exec = Verb(app, "exec", "Run a command on a lease's machine", *a);
  exec->add_option("COMMAND", a->command, "The command and its arguments, after --");
  exec->add_flag("-t,--tty", a->tty, "On a terminal (a pty on the lease; ours in raw mode)");
  exec->add_flag("-n,--no-stdin", a->no_stdin, "Do not send our standard input");
  exec->footer(
      "Exits with the command's exit code (a signal: 128+N); 255 when gpunet itself failed.\n"
      "Examples:\n  gpunet exec 7 -- nvidia-smi\n  gpunet exec 7 -- python3 - < job.py");
  exec->callback([&g, a] { RunExec(g, *a); });
  auto* shell = Verb(app, "shell", "A terminal on a lease's machine (resize, Ctrl-C)", *a);
  shell->add_option("COMMAND", a->command, "A command instead of the login shell, after --");
  shell->footer("Example:\n  gpunet shell 7\n  gpunet shell 7 -- htop");
  shell->callback([&g, a] { RunShell(g, *a); });
  auto* forward = Verb(app, "forward", "Reach a port of a lease on 127.0.0.1 here", *a);
  forward->add_option("PORTS", a->spec, "REMOTE[:LOCAL], e.g. 8888 or 8888:18888")->required();
  forward->footer(
      "Each connection to 127.0.0.1:LOCAL is relayed to 127.0.0.1:REMOTE inside the lease.\n"
      "Example:\n  gpunet forward 7 8888     # Jupyter at http://127.0.0.1:8888");
  forward->callback([&g, a] { RunForward(g, *a); });
  auto* cp = app.add_subcommand("cp", "Copy files to or from a lease (LEASE:PATH, under /work)");
  cp->add_option("SRC", a->src, "A path here, or LEASE:PATH")->required();
  cp->add_option("DEST", a->dest, "A path here, or LEASE:PATH")->required();
  cp->add_flag("-r,--recursive", a->recursive, "Folders too");
  cp->add_option("--from", a->from, "The tenant key; default: a session key's grant");
  cp->add_option("--session", a->session, "Sign with this session key");
  cp->footer("Examples:\n  gpunet cp data.csv 7:data/\n  gpunet cp -r 7:checkpoints ./ckpt");
  cp->callback([&g, a] { RunCp(g, *a); });
  auto* ssh = app.add_subcommand("ssh-config", "Set up ssh, scp, rsync and VS Code for a lease");
  ssh->add_option("LEASE", a->lease, "Lease id")->required();
  ssh->add_option("--identity", a->identity, "Your SSH private key (default ~/.ssh/id_ed25519)");
  ssh->add_option("--from", a->from,
                  "The tenant key, to delegate the lease to a session key (once; asks its "
                  "passphrase)");
  ssh->footer(
      "Example:\n  gpunet ssh-config 7 --from tenant && ssh -F ~/.gpunet/ssh/config gpunet-7");
  ssh->callback([&g, a] { RunSshConfig(g, *a); });
  auto* proxy = app.add_subcommand("ssh-proxy", "ssh's ProxyCommand (written by ssh-config)");
  proxy->add_option("LEASE", a->lease, "Lease id")->required();
  proxy->group("");  // hidden: people run ssh-config
  proxy->callback([&g, a] { RunSshProxy(g, *a); });
}

}  // namespace gpunet::apps
