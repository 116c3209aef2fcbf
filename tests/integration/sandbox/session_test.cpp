// Interactive sessions (issue 18 item 3; docs/sandbox.md "Interactive sessions"):
// real sandboxes whose gpunet-init serves sessions on their real session socket,
// reached as the provider's agent reaches it (Runtime::OpenSession), speaking the
// frames of base/session_wire.h. Needs root, as the sandbox does.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/session_wire.h"
#include "integration/sandbox/self_supervisor.h"
#include "runtime/runtime.h"
#include "util/temp_dir.h"

namespace gpunet::runtime {
namespace {

using base::SessionFrameType;
using base::SessionOpen;
using base::SessionOpenKind;

/// What a session sent back so far.
struct Seen {
  bool ready = false;
  std::string out, err, error;
  bool stdout_eof = false;
  std::optional<base::SessionExit> exit;
  bool closed = false;  ///< the stream ended
  std::string decode_error;
};

/// A test's side of one session: frames out, frames in.
class Client {
 public:
  explicit Client(UniqueFd fd) : m_fd(std::move(fd)) {}
  int Fd() const { return m_fd.Get(); }
  void SendRaw(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(m_fd.Get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  void Send(SessionFrameType type, std::string_view payload = {}) {
    SendRaw(base::EncodeSessionFrame(type, payload));
  }
  void Open(const SessionOpen& open) {
    auto payload = base::EncodeSessionOpen(open);
    ASSERT_TRUE(payload.has_value()) << payload.error().message;
    Send(SessionFrameType::kOpen, *payload);
  }
  /// Reads frames until `done` holds or the stream ends. The 60 s guard only keeps a
  /// broken init from hanging the suite; nothing is timed.
  bool ReadUntil(const std::function<bool(const Seen&)>& done) {
    char buf[65536];
    while (!done(m_seen)) {
      if (m_seen.closed) return false;
      pollfd p{m_fd.Get(), POLLIN, 0};
      if (::poll(&p, 1, 60000) <= 0) {
        ADD_FAILURE() << "no frame for 60 s; seen out=" << m_seen.out << " err=" << m_seen.err;
        return false;
      }
      ssize_t n = ::read(m_fd.Get(), buf, sizeof buf);
      if (n <= 0) {
        m_seen.closed = true;
        continue;
      }
      m_decoder.Feed(std::string_view(buf, static_cast<size_t>(n)));
      for (;;) {
        auto next = m_decoder.Next();
        if (!next) {
          m_seen.decode_error = next.error().message;
          m_seen.closed = true;
          break;
        }
        if (!next->has_value()) break;
        Apply(**next);
      }
    }
    return true;
  }
  bool ReadToEnd() {
    return ReadUntil([](const Seen& s) { return s.exit.has_value() || !s.error.empty(); });
  }
  const Seen& Got() const { return m_seen; }

 private:
  void Apply(const base::SessionFrame& f) {
    switch (f.type) {
      case SessionFrameType::kReady:
        m_seen.ready = true;
        break;
      case SessionFrameType::kStdout:
        m_seen.out += f.payload;
        break;
      case SessionFrameType::kStderr:
        m_seen.err += f.payload;
        break;
      case SessionFrameType::kStdoutEof:
        m_seen.stdout_eof = true;
        break;
      case SessionFrameType::kError:
        m_seen.error = f.payload;
        break;
      case SessionFrameType::kExit: {
        auto e = base::DecodeSessionExit(f.payload);
        ASSERT_TRUE(e.has_value());
        m_seen.exit = *e;
        break;
      }
      default:
        ADD_FAILURE() << "init sent a client frame " << static_cast<int>(f.type);
    }
  }
  UniqueFd m_fd;
  base::SessionFrameDecoder m_decoder;
  Seen m_seen;
};

SessionOpen Exec(std::vector<std::string> argv, bool tty = false) {
  SessionOpen o;
  o.kind = SessionOpenKind::kExec;
  o.argv = std::move(argv);
  o.tty = tty;
  if (tty) o.window = {24, 80};
  return o;
}

SessionOpen Forward(uint16_t port) {
  SessionOpen o;
  o.kind = SessionOpenKind::kForward;
  o.port = port;
  return o;
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "sandbox session tests need root";
    m_tmp.emplace(
        gpunet::testing::TempDirOptions{.parent = "/tmp", .prefix = "gpunet-sess", .mode = 0711});
    m_dir = m_tmp->Path();
    m_options = gpunet::testing::SelfSupervisedOptions(m_dir, 460000);
  }
  void TearDown() override {
    if (m_dir.empty()) return;
    Runtime rt(m_options);
    for (const auto& id : rt.List()) EXPECT_TRUE(rt.Remove(id).has_value()) << id;
    EXPECT_FALSE(m_tmp->Remove());
  }

  /// An interactive machine (no command), or `command`; started.
  std::string Start(const std::string& name, std::vector<std::string> command = {},
                    uint32_t pids_max = 64) {
    WorkloadSpec s;
    s.id = name + "-" + std::to_string(::getpid());
    s.lease_id = "77";
    s.command = std::move(command);
    s.resources.memory_bytes = 256ull << 20;
    s.resources.cpu_millis = 1000;
    s.resources.pids_max = pids_max;
    s.resources.disk_bytes = 32ull << 20;
    s.resources.shm_bytes = 8ull << 20;
    s.lease_ends_at_ms = 1900000000000;
    m_spec_hook(s);
    auto info = Runtime(m_options).Start(s);
    EXPECT_TRUE(info.has_value()) << info.error().ToString();
    return s.id;
  }
  Client Connect(const std::string& id) {
    auto fd = Runtime(m_options).OpenSession(id);
    EXPECT_TRUE(fd.has_value()) << fd.error().ToString();
    return Client(fd ? std::move(*fd) : UniqueFd());
  }

  std::optional<gpunet::testing::TempDir> m_tmp;
  std::string m_dir;
  RuntimeOptions m_options;
  std::function<void(WorkloadSpec&)> m_spec_hook = [](WorkloadSpec&) {};
};

TEST_F(SessionTest, ExecWithoutPtySplitsStreamsTakesStdinAndReturnsTheExitCode) {
  const std::string id = Start("exec");
  Client c = Connect(id);
  c.Open(Exec({"/bin/sh", "-c", "cat; echo to-stderr >&2; exit 3"}));
  ASSERT_TRUE(c.ReadUntil([](const Seen& s) { return s.ready; }));
  c.Send(SessionFrameType::kStdin, "line one\n");
  c.Send(SessionFrameType::kStdin, "line two\n");
  c.Send(SessionFrameType::kStdinEof);
  ASSERT_TRUE(c.ReadToEnd());
  EXPECT_EQ(c.Got().out, "line one\nline two\n");
  EXPECT_EQ(c.Got().err, "to-stderr\n");
  ASSERT_TRUE(c.Got().exit.has_value()) << c.Got().error;
  EXPECT_EQ(c.Got().exit->exit_code, 3);
  EXPECT_EQ(c.Got().exit->signal, 0);
  // A SIGNAL frame reaches a command without a terminal too.
  Client k = Connect(id);
  k.Open(Exec({"sleep", "100"}));
  ASSERT_TRUE(k.ReadUntil([](const Seen& s) { return s.ready; }));
  k.Send(SessionFrameType::kSignal, base::EncodeSessionSignal(2));
  ASSERT_TRUE(k.ReadToEnd());
  ASSERT_TRUE(k.Got().exit.has_value());
  EXPECT_EQ(k.Got().exit->exit_code, 130);
  EXPECT_EQ(k.Got().exit->signal, 2);
  // No command: the passwd entry's login shell (bash on this host), reading stdin.
  Client sh = Connect(id);
  sh.Open(Exec({}));
  sh.Send(SessionFrameType::kStdin, "echo shell=$0 user=$(id -un) cwd=$PWD\n");
  sh.Send(SessionFrameType::kStdinEof);
  ASSERT_TRUE(sh.ReadToEnd());
  EXPECT_EQ(sh.Got().out, "shell=/bin/bash user=gpunet cwd=/work\n") << sh.Got().err;
  EXPECT_EQ(sh.Got().exit->exit_code, 0);
  // Nothing of init or of other sessions leaks into a command: fds 0-2 only (3 is
  // ls's own directory), while another session is open.
  Client held = Connect(id);
  held.Open(Exec({"cat"}));
  ASSERT_TRUE(held.ReadUntil([](const Seen& s) { return s.ready; }));
  Client fds = Connect(id);
  fds.Open(Exec({"ls", "/proc/self/fd"}));
  ASSERT_TRUE(fds.ReadToEnd());
  EXPECT_EQ(fds.Got().out, "0\n1\n2\n3\n");
  // An orphan a session leaves (a background job) is reaped by init: no zombie stays.
  Client orphan = Connect(id);
  orphan.Open(Exec({"/bin/sh", "-c", "sleep 0.2 & exit 0"}));
  ASSERT_TRUE(orphan.ReadToEnd());
  Client zombies = Connect(id);
  zombies.Open(
      Exec({"/bin/sh", "-c", "sleep 1; grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l"}));
  ASSERT_TRUE(zombies.ReadToEnd());
  EXPECT_EQ(zombies.Got().out, "0\n");
  // A command that does not exist: its message on STDERR, 127.
  Client m = Connect(id);
  m.Open(Exec({"no-such-command-gpunet"}));
  ASSERT_TRUE(m.ReadToEnd());
  EXPECT_EQ(m.Got().exit->exit_code, 127);
  EXPECT_NE(m.Got().err.find("no-such-command-gpunet"), std::string::npos);
}

TEST_F(SessionTest, ExecOnAPtySeesResizeAndCtrlC) {
  const std::string id = Start("pty");
  Client c = Connect(id);
  SessionOpen open = Exec({"/bin/sh", "-c",
                           "stty size; read line; stty size; trap 'echo got-INT; exit 5' INT; "
                           "echo armed; while :; do sleep 1; done"},
                          true);
  open.env = {"TERM=xterm-256color"};
  c.Open(open);
  ASSERT_TRUE(c.ReadUntil([](const Seen& s) { return s.out.find("24 80") != std::string::npos; }))
      << c.Got().out << c.Got().error;
  c.Send(SessionFrameType::kResize, base::EncodeSessionResize({50, 132}));
  c.Send(SessionFrameType::kStdin, "go\n");
  ASSERT_TRUE(c.ReadUntil([](const Seen& s) { return s.out.find("armed") != std::string::npos; }))
      << c.Got().out;
  EXPECT_NE(c.Got().out.find("50 132"), std::string::npos) << c.Got().out;
  // Ctrl-C as a terminal sends it: a byte the pty's line discipline turns into SIGINT
  // for the foreground process group.
  c.Send(SessionFrameType::kStdin, "\x03");
  ASSERT_TRUE(c.ReadToEnd()) << c.Got().out;
  EXPECT_NE(c.Got().out.find("got-INT"), std::string::npos) << c.Got().out;
  ASSERT_TRUE(c.Got().exit.has_value()) << c.Got().error;
  EXPECT_EQ(c.Got().exit->exit_code, 5);
  EXPECT_TRUE(c.Got().err.empty()) << "a pty has one output stream";
  // The terminal is the session's controlling tty, and TERM came through.
  Client t = Connect(id);
  t.Open(Exec({"/bin/sh", "-c", "tty; echo TERM=$TERM"}, true));
  ASSERT_TRUE(t.ReadToEnd());
  EXPECT_NE(t.Got().out.find("/dev/pts/"), std::string::npos) << t.Got().out;
  EXPECT_EQ(t.Got().out.find("TERM=xterm-256color"), std::string::npos)
      << "another session's TERM leaked: " << t.Got().out;
}

TEST_F(SessionTest, WorkloadAndExecSessionsSeeTheLeaseEnvironment) {
  const std::string dev = m_tmp->Sub("dev");
  ASSERT_EQ(::mkdir(dev.c_str(), 0711), 0);
  ASSERT_EQ(::mknod((dev + "/nvidia0").c_str(), S_IFCHR | 0666, makedev(195, 0)), 0);
  m_options.device_dir = dev;
  m_options.gpu_minors = {{"GPU-sess-0", 0}};
  m_spec_hook = [](WorkloadSpec& s) {
    s.gpu_uuids = {"GPU-sess-0"};
    s.env["TENANT_VAR"] = "tenant";
  };
  const std::string id = Start("env", {"/bin/sh", "-c", "env; echo ENV-DONE; exec sleep 1000"});
  ASSERT_TRUE(gpunet::testing::WaitForStdout(Runtime(m_options), id, "ENV-DONE"));
  std::ifstream log(*Runtime(m_options).RunDir(id) + "/stdout.log");
  std::string workload_env((std::istreambuf_iterator<char>(log)), {});
  Client c = Connect(id);
  SessionOpen open = Exec({"env"});
  open.env = {"LANG=C", "LC_ALL=C"};
  c.Open(open);
  ASSERT_TRUE(c.ReadToEnd());
  const std::string& session_env = c.Got().out;
  for (const char* want :
       {"GPUNET_LEASE_ID=77\n", "GPUNET_OUTPUT_DIR=/outputs\n",
        "GPUNET_LEASE_ENDS_AT=1900000000000\n", "GPUNET_GPUS_PER_NODE=1\n",
        "CUDA_VISIBLE_DEVICES=GPU-sess-0\n", "GPUNET_NODE_RANK=0\n", "GPUNET_NUM_NODES=1\n",
        "MASTER_ADDR=127.0.0.1\n", "MASTER_PORT=29500\n", "TENANT_VAR=tenant\n"}) {
    EXPECT_NE(workload_env.find(want), std::string::npos) << want << " in\n" << workload_env;
    EXPECT_NE(session_env.find(want), std::string::npos) << want << " in\n" << session_env;
  }
  EXPECT_NE(session_env.find("LC_ALL=C\n"), std::string::npos);
  EXPECT_NE(session_env.find("\nLANG=C\n"), std::string::npos) << session_env;
  // Anything else a client asks to set is refused before anything runs.
  Client bad = Connect(id);
  // (EncodeSessionOpen refuses it too: the payload is built by hand.)
  std::string payload = std::string(1, 1) + std::string(1, 0) + std::string(4, '\0') +
                        std::string("\0\1\0\0\0\3env", 9) + std::string("\0\1", 2) +
                        std::string("\0\0\0\x14LD_PRELOAD=/tmp/x.so", 24);
  bad.Send(SessionFrameType::kOpen, payload);
  ASSERT_TRUE(bad.ReadToEnd());
  EXPECT_NE(bad.Got().error.find("LD_PRELOAD is not passed"), std::string::npos) << bad.Got().error;
}

uint16_t ListenOnHostLoopback(int* fd) {
  *fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(*fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(*fd, 4) != 0)
    return 0;
  socklen_t len = sizeof a;
  ::getsockname(*fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

TEST_F(SessionTest, ForwardReachesOnlyTheLeasesOwnLoopback) {
  const std::string server =
      "import socket\n"
      "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
      "s.bind(('127.0.0.1', 8888)); s.listen()\n"
      "print('listening', flush=True)\n"
      "while True:\n"
      "    c, _ = s.accept(); d = b''\n"
      "    while not d.endswith(b'\\n'): d += c.recv(100)\n"
      "    c.sendall(b'echo:' + d); c.close()\n";
  const std::string id = Start("fwd", {"python3", "-c", server});
  ASSERT_TRUE(gpunet::testing::WaitForStdout(Runtime(m_options), id, "listening"));
  Client c = Connect(id);
  c.Open(Forward(8888));
  ASSERT_TRUE(c.ReadUntil([](const Seen& s) { return s.ready; })) << c.Got().error;
  c.Send(SessionFrameType::kStdin, "hello\n");
  ASSERT_TRUE(c.ReadUntil([](const Seen& s) { return s.stdout_eof; })) << c.Got().error;
  EXPECT_EQ(c.Got().out, "echo:hello\n");
  c.Send(SessionFrameType::kStdinEof);
  ASSERT_TRUE(c.ReadToEnd());
  ASSERT_TRUE(c.Got().exit.has_value()) << c.Got().error;
  EXPECT_EQ(c.Got().exit->exit_code, 0);

  Client closed = Connect(id);
  closed.Open(Forward(8889));
  ASSERT_TRUE(closed.ReadToEnd());
  EXPECT_FALSE(closed.Got().ready);
  EXPECT_NE(closed.Got().error.find("nothing listens on port 8889 inside the lease"),
            std::string::npos)
      << closed.Got().error;

  // A port the provider's host listens on at 127.0.0.1 is another network namespace's:
  // refused as if nothing listened.
  int host_fd = -1;
  const uint16_t host_port = ListenOnHostLoopback(&host_fd);
  ASSERT_NE(host_port, 0);
  Client host = Connect(id);
  host.Open(Forward(host_port));
  ASSERT_TRUE(host.ReadToEnd());
  ::close(host_fd);
  EXPECT_FALSE(host.Got().ready);
  EXPECT_NE(host.Got().error.find("nothing listens on port " + std::to_string(host_port)),
            std::string::npos)
      << host.Got().error;
}

int RunShell(const std::string& command, std::string* out) {
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out->append(buf, n);
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST_F(SessionTest, SshThroughTheSessionSocketRunsCommandsAndCopiesFiles) {
  if (::access("/usr/sbin/sshd", X_OK) != 0 || ::access("/usr/bin/ssh", X_OK) != 0)
    GTEST_SKIP() << "needs openssh-server and openssh-client (scripts/install-deps.sh)";
  const std::string id = Start("ssh", {}, 128);
  // The host key comes back over the session, into a known_hosts the client trusts.
  Client hk = Connect(id);
  SessionOpen hk_open;
  hk_open.kind = SessionOpenKind::kSshHostKey;
  hk.Open(hk_open);
  ASSERT_TRUE(hk.ReadToEnd());
  ASSERT_TRUE(hk.Got().exit.has_value()) << hk.Got().error;
  const std::string host_key = hk.Got().out;
  ASSERT_TRUE(host_key.starts_with("ssh-ed25519 ")) << host_key;
  Client again = Connect(id);
  again.Open(hk_open);
  ASSERT_TRUE(again.ReadToEnd());
  EXPECT_EQ(again.Got().out, host_key) << "the host key is made once per lease";

  const std::string key = m_dir + "/id_ed25519";
  std::string ignored;
  ASSERT_EQ(RunShell("ssh-keygen -q -t ed25519 -N '' -f " + key + " 2>&1", &ignored), 0) << ignored;
  std::ofstream(m_dir + "/known_hosts") << "lease " << host_key;
  const std::string socket = *Runtime(m_options).RunDir(id) + "/session.sock";
  const std::string ssh_opts = " -F /dev/null -i " + key +
                               " -o BatchMode=yes -o IdentitiesOnly=yes" +
                               " -o StrictHostKeyChecking=yes -o UserKnownHostsFile=" + m_dir +
                               "/known_hosts" + " -o HostKeyAlias=lease -o ProxyCommand='" +
                               GPUNET_SESSION_BRIDGE + " " + socket + " ssh " + key + ".pub'";
  std::string out;
  int rc = RunShell("ssh" + ssh_opts + " gpunet@lease 'echo hello-from-lease; id -un' 2>&1", &out);
  EXPECT_EQ(rc, 0) << out;
  // Exactly the command's output: sshd's own log (the ProxyCommand's stderr) is quiet.
  EXPECT_EQ(out, "hello-from-lease\ngpunet\n");

  std::ofstream(m_dir + "/payload.txt") << "copied by scp\n";
  out.clear();
  rc = RunShell("scp" + ssh_opts + " " + m_dir + "/payload.txt gpunet@lease:/work/got.txt 2>&1",
                &out);
  EXPECT_EQ(rc, 0) << out;
  Client cat = Connect(id);
  cat.Open(Exec({"cat", "/work/got.txt"}));
  ASSERT_TRUE(cat.ReadToEnd());
  EXPECT_EQ(cat.Got().out, "copied by scp\n");
  // A key the lease was never given is refused by its sshd.
  const std::string other = m_dir + "/other";
  ASSERT_EQ(RunShell("ssh-keygen -q -t ed25519 -N '' -f " + other + " 2>&1", &ignored), 0);
  std::string other_opts = ssh_opts;
  other_opts.replace(other_opts.find(" -i " + key), 4 + key.size(), " -i " + other);
  out.clear();
  rc = RunShell("ssh" + other_opts + " gpunet@lease true 2>&1", &out);
  EXPECT_NE(rc, 0) << out;
}

TEST_F(SessionTest, AMalformedFrameEndsOnlyThatSession) {
  const std::string id = Start("bad", {"sleep", "1000"});
  Client c = Connect(id);
  c.SendRaw(std::string("\x63\0\0\0\0", 5));  // type 99
  ASSERT_TRUE(c.ReadToEnd());
  EXPECT_NE(c.Got().error.find("malformed session request"), std::string::npos) << c.Got().error;
  Client second = Connect(id);
  second.Open(Exec({"cat"}));
  ASSERT_TRUE(second.ReadUntil([](const Seen& s) { return s.ready; }));
  second.SendRaw(std::string("\x06\0\0\0\x04\0\0\0\x50", 9));  // RESIZE 0x80
  ASSERT_TRUE(second.ReadToEnd());
  EXPECT_NE(second.Got().error.find("RESIZE"), std::string::npos) << second.Got().error;
  Client third = Connect(id);
  third.Send(SessionFrameType::kStdin, "before OPEN");
  ASSERT_TRUE(third.ReadToEnd());
  EXPECT_NE(third.Got().error.find("not OPEN"), std::string::npos) << third.Got().error;
  // The workload runs on, and so does a well-formed session.
  auto status = Runtime(m_options).Poll(id);
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(status->has_value()) << "the workload ended";
  Client fine = Connect(id);
  fine.Open(Exec({"echo", "still-here"}));
  ASSERT_TRUE(fine.ReadToEnd());
  EXPECT_EQ(fine.Got().out, "still-here\n");
}

TEST_F(SessionTest, AKillFromInsideDoesNotEndAnInteractiveMachine) {
  const std::string id = Start("kill");
  Client c = Connect(id);
  // SIGTERM to every process of the lease's uid, init included (pid 2 inside).
  c.Open(Exec({"/bin/sh", "-c", "kill -TERM -1; sleep 1"}));
  c.ReadToEnd();
  Client after = Connect(id);
  after.Open(Exec({"echo", "still-up"}));
  ASSERT_TRUE(after.ReadToEnd());
  EXPECT_EQ(after.Got().out, "still-up\n") << after.Got().error;
  auto status = Runtime(m_options).Poll(id);
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(status->has_value()) << "the interactive machine ended";
}

TEST_F(SessionTest, AnInitThatStopsAcceptingNeverBlocksTheAgent) {
  m_spec_hook = [](WorkloadSpec& s) { s.stop_grace_ms = 0; };  // a stopped init ignores TERM
  const std::string id = Start("stopped");
  Client c = Connect(id);
  c.Open(Exec({"kill", "-STOP", "2"}));  // the tenant stops its own init (pid 2 inside)
  ASSERT_TRUE(c.ReadToEnd());
  // Connections queue until the backlog is full; then OpenSession answers at once.
  std::vector<UniqueFd> queued;
  base::Result<UniqueFd> next = Fail(base::ErrorCode::kInternal, "not tried");
  for (int i = 0; i < 200; ++i) {
    next = Runtime(m_options).OpenSession(id);
    if (!next) break;
    queued.push_back(std::move(*next));
  }
  ASSERT_FALSE(next.has_value()) << "200 connections queued";
  EXPECT_EQ(next.error().code, base::ErrorCode::kUnavailable) << next.error().ToString();
  ASSERT_TRUE(Runtime(m_options).Stop(id).has_value());
}

TEST_F(SessionTest, The33rdSessionIsRefusedAndStopEndsThemAll) {
  const std::string id = Start("many", {}, 256);
  std::vector<Client> open;
  for (int i = 0; i < 32; ++i) {
    open.push_back(Connect(id));
    open.back().Open(Exec({"cat"}));
    ASSERT_TRUE(open.back().ReadUntil([](const Seen& s) { return s.ready; })) << i;
  }
  Client extra = Connect(id);
  extra.Open(Exec({"echo", "no"}));
  ASSERT_TRUE(extra.ReadToEnd());
  EXPECT_NE(extra.Got().error.find("32 sessions"), std::string::npos) << extra.Got().error;
  EXPECT_EQ(extra.Got().out, "");

  // Stop ends the interactive machine: every session's stream ends (its process is
  // killed with the sandbox) and the socket refuses new ones.
  auto stopped = Runtime(m_options).Stop(id);
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_EQ(stopped->reason, ExitReason::kStopped);
  for (auto& c : open) {
    c.ReadUntil([](const Seen&) { return false; });
    EXPECT_TRUE(c.Got().closed);
  }
  auto after = Runtime(m_options).OpenSession(id);
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code, base::ErrorCode::kConflict);
  EXPECT_NE(after.error().message.find("the workload is not running"), std::string::npos);
}

TEST_F(SessionTest, StartRefusesAMissingOrUnrunnableInit) {
  WorkloadSpec s;
  s.id = "noinit-" + std::to_string(::getpid());
  s.command = {"true"};
  m_options.init_path = m_dir + "/no-gpunet-init";
  auto missing = Runtime(m_options).Start(s);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, base::ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("no-gpunet-init is missing"), std::string::npos)
      << missing.error().message;
  std::ofstream(m_options.init_path) << "#!/bin/sh\n";
  ::chmod(m_options.init_path.c_str(), 0744);  // the workload's uid could not run it
  auto unrunnable = Runtime(m_options).Start(s);
  ASSERT_FALSE(unrunnable.has_value());
  EXPECT_EQ(unrunnable.error().code, base::ErrorCode::kPermissionDenied);
  EXPECT_TRUE(Runtime(m_options).List().empty()) << "nothing is made for a refused start";
}

TEST_F(SessionTest, TheSocketIsRootsAndUnknownWorkloadsAreNotFound) {
  auto none = Runtime(m_options).OpenSession("no-such-workload");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, base::ErrorCode::kNotFound);
  const std::string id = Start("perm", {"sleep", "1000"});
  const std::string socket = *Runtime(m_options).RunDir(id) + "/session.sock";
  struct stat st {};
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, 0u);
  // Another uid (a workload's, say) cannot connect.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) ::_exit(2);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::_exit(rc == 0 ? 1 : errno == EACCES ? 0 : 3);
  }
  int st_child = 0;
  ::waitpid(child, &st_child, 0);
  EXPECT_TRUE(WIFEXITED(st_child) && WEXITSTATUS(st_child) == 0) << st_child;
  // A workload that ended refuses sessions with its reason.
  ASSERT_TRUE(Runtime(m_options).Stop(id).has_value());
  auto ended = Runtime(m_options).OpenSession(id);
  ASSERT_FALSE(ended.has_value());
  EXPECT_EQ(ended.error().code, base::ErrorCode::kConflict);
}

}  // namespace
}  // namespace gpunet::runtime
