#include "runtime/network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "base/check.h"
#include "base/file_util.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime {
namespace {

using base::ErrorCode;
using base::Fail;

std::string Errno(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

base::Result<UniqueFd> OpenNetns(pid_t pid) {
  if (pid <= 0) return Fail(ErrorCode::kInvalidArgument, "network: sandbox pid must be positive");
  std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(ErrorCode::kNotFound, Errno("network: cannot open " + path));
  UniqueFd result(fd);
  // Refuse the host's own namespace: attaching there would firewall the host and
  // would mean the sandbox was started without --unshare-net.
  struct stat theirs {
  }, ours{};
  if (::fstat(fd, &theirs) != 0 || ::stat("/proc/self/ns/net", &ours) != 0)
    return Fail(ErrorCode::kIo, Errno("network: stat of network namespaces"));
  if (theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev)
    return Fail(ErrorCode::kPermissionDenied,
                "network: pid " + std::to_string(pid) +
                    " shares the host network namespace; start the sandbox with its own "
                    "(bwrap --unshare-net)");
  return result;
}

/// Closes every fd from `first` up, in a forked child before exec: the supervisor's
/// own fds (bwrap's block and status pipes, logs) must not leak into nft or slirp.
void CloseFrom(unsigned first) {
  if (::syscall(SYS_close_range, first, ~0u, 0) == 0) return;
  for (int fd = static_cast<int>(first); fd < 4096; ++fd) ::close(fd);
}

/// Waits for a child and turns its status into a Status naming `what`.
base::Status WaitChild(pid_t pid, const std::string& what) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Fail(ErrorCode::kIo, Errno("network: waitpid " + what));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return base::Ok();
  std::string how = WIFEXITED(status) ? "exited with " + std::to_string(WEXITSTATUS(status))
                                      : "killed by signal " + std::to_string(WTERMSIG(status));
  return Fail(ErrorCode::kIo, "network: " + what + " " + how);
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > 2000) s = s.substr(s.size() - 2000);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// ---------------------------------------------------------------------------
// kNone

class NoNetwork final : public NetworkAttachment {
 public:
  std::vector<PortSpec> BoundPorts() const override { return {}; }
};

// ---------------------------------------------------------------------------
// kEgress

/// IPv4 addresses of every interface of the host namespace (the caller's): slirp
/// connects from the host, so a packet to one of these would reach host services.
std::vector<std::string> HostIpv4Addresses() {
  std::set<std::string> out;
  struct ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {};
  for (auto* it = list; it != nullptr; it = it->ifa_next) {
    if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN] = {};
    auto* sin = reinterpret_cast<const sockaddr_in*>(it->ifa_addr);
    if (::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf) != nullptr) out.insert(buf);
  }
  ::freeifaddrs(list);
  return {out.begin(), out.end()};
}

/// The nftables ruleset installed inside an egress sandbox's namespace. Output is
/// filtered (the workload's own packets); loopback inside stays open; slirp's DNS
/// forwarder is allowed on port 53 only; everything that is not the public internet
/// is rejected, and IPv6 (slirp runs without it) is rejected entirely.
std::string EgressRuleset(const std::vector<std::string>& host_addresses) {
  std::string blocked =
      "0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, "
      "192.0.0.0/24, 192.168.0.0/16, 198.18.0.0/15, 224.0.0.0/3";
  for (const auto& a : host_addresses) blocked += ", " + a;
  std::string dns = kSlirpDnsAddress;
  return "table inet gpunet_sandbox {\n"
         "  chain output {\n"
         "    type filter hook output priority 0; policy accept;\n"
         "    oifname \"lo\" accept\n"
         "    ip daddr " +
         dns +
         " udp dport 53 accept\n"
         "    ip daddr " +
         dns +
         " tcp dport 53 accept\n"
         "    ip daddr { " +
         blocked +
         " } reject with icmpx type admin-prohibited\n"
         "    meta nfproto ipv6 reject with icmpx type admin-prohibited\n"
         "  }\n"
         "  chain input {\n"
         "    type filter hook input priority 0; policy accept;\n"
         "    iifname \"lo\" accept\n"
         "    ct state established,related accept\n"
         "    drop\n"
         "  }\n"
         "}\n";
}

/// Runs `nft -f file` with the network namespace `netns_fd`. The child only calls
/// async-signal-safe functions between fork and exec (the supervisor may be
/// multi-threaded).
base::Status InstallRuleset(int netns_fd, const std::string& file) {
  std::string nft = FindProgram("nft");
  if (nft.empty())
    return Fail(ErrorCode::kUnsupported,
                "network: egress needs nftables (`nft`), install the Debian package nftables");
  std::string log = file + ".log";
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (log_fd < 0) return Fail(ErrorCode::kIo, Errno("network: create " + log));
  UniqueFd log_guard(log_fd);
  const char* argv[] = {nft.c_str(), "-f", file.c_str(), nullptr};
  const ExecStrings envp(HostEnvironment());
  pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrorCode::kIo, Errno("network: fork for nft"));
  if (pid == 0) {
    if (::setns(netns_fd, CLONE_NEWNET) != 0) ::_exit(120);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    CloseFrom(3);
    ::execve(argv[0], const_cast<char* const*>(argv), envp.Get());
    ::_exit(121);
  }
  auto st = WaitChild(pid, "nft -f " + file);
  if (!st) return Fail(ErrorCode::kIo, st.error().message + ": " + ReadSmallFile(log));
  return base::Ok();
}

class EgressNetwork final : public NetworkAttachment {
 public:
  EgressNetwork(pid_t slirp_pid, UniqueFd exit_fd)
      : m_slirp_pid(slirp_pid), m_exit_fd(std::move(exit_fd)) {}
  ~EgressNetwork() override {
    // Closing the exit fd asks slirp4netns to quit; SIGKILL covers a wedged one.
    m_exit_fd.Reset();
    for (int i = 0; i < 200; ++i) {
      int status = 0;
      pid_t r = ::waitpid(m_slirp_pid, &status, WNOHANG);
      if (r == m_slirp_pid || (r < 0 && errno != EINTR)) return;
      ::usleep(5000);
    }
    ::kill(m_slirp_pid, SIGKILL);
    while (::waitpid(m_slirp_pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  std::vector<PortSpec> BoundPorts() const override { return {}; }

 private:
  pid_t m_slirp_pid;
  UniqueFd m_exit_fd;
};

base::Result<std::unique_ptr<NetworkAttachment>> AttachEgress(pid_t pid, int netns_fd,
                                                              const std::string& run_dir) {
  std::string slirp = FindProgram("slirp4netns");
  if (slirp.empty())
    return Fail(ErrorCode::kUnsupported,
                "network: egress needs slirp4netns, install the Debian package slirp4netns");
  // Firewall first: the rules exist before any interface other than lo does.
  std::string rules = run_dir + "/egress.nft";
  if (auto written = base::WriteFileAtomic(rules, EgressRuleset(HostIpv4Addresses()),
                                           {.mode = 0600, .if_exists = {}, .before_commit = {}});
      !written)
    return base::Wrap(written.error(), "network");
  GPUNET_TRY(InstallRuleset(netns_fd, rules));

  int exit_pipe[2], ready_pipe[2];
  if (::pipe2(exit_pipe, O_CLOEXEC) != 0) return Fail(ErrorCode::kIo, Errno("network: pipe"));
  UniqueFd exit_r(exit_pipe[0]), exit_w(exit_pipe[1]);
  if (::pipe2(ready_pipe, O_CLOEXEC) != 0) return Fail(ErrorCode::kIo, Errno("network: pipe"));
  UniqueFd ready_r(ready_pipe[0]), ready_w(ready_pipe[1]);
  std::string log = run_dir + "/slirp4netns.log";
  UniqueFd log_fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!log_fd.Valid()) return Fail(ErrorCode::kIo, Errno("network: create " + log));
  UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::string netns_path = "/proc/" + std::to_string(pid) + "/ns/net";
  const char* argv[] = {
      slirp.c_str(),       "--configure",      "--mtu=65520", "--disable-host-loopback",
      "--enable-sandbox",  "--enable-seccomp", "--exit-fd=3", "--ready-fd=4",
      "--netns-type=path", netns_path.c_str(), "tap0",        nullptr};
  const ExecStrings envp(HostEnvironment());
  pid_t child = ::fork();
  if (child < 0) return Fail(ErrorCode::kIo, Errno("network: fork for slirp4netns"));
  if (child == 0) {
    // fds 0..4 are set explicitly (dup2 clears O_CLOEXEC); everything else closes on exec.
    ::dup2(null_fd.Get(), 0);
    ::dup2(log_fd.Get(), 1);
    ::dup2(log_fd.Get(), 2);
    ::dup2(exit_r.Get(), 3);
    ::dup2(ready_w.Get(), 4);
    CloseFrom(5);
    ::setsid();
    ::execve(argv[0], const_cast<char* const*>(argv), envp.Get());
    ::_exit(121);
  }
  exit_r.Reset();
  ready_w.Reset();
  auto attachment = std::make_unique<EgressNetwork>(child, std::move(exit_w));

  // slirp writes "1" to the ready fd once tap0 is configured; EOF means it died.
  struct pollfd p {
    ready_r.Get(), POLLIN, 0
  };
  int n = 0;
  do {
    n = ::poll(&p, 1, kSlirpReadyTimeoutMs);
  } while (n < 0 && errno == EINTR);
  char c = 0;
  if (n == 1 && ::read(ready_r.Get(), &c, 1) == 1 && c == '1') return attachment;
  attachment.reset();  // reaps slirp
  return Fail(n == 0 ? ErrorCode::kTimeout : ErrorCode::kIo,
              "network: slirp4netns did not configure tap0 (" + log + "): " + ReadSmallFile(log));
}

// ---------------------------------------------------------------------------
// kPorts

/// One forwarded TCP connection: host-side client socket <-> socket inside the sandbox.
struct Connection {
  struct Direction {
    std::vector<char> buf;
    size_t len = 0;
    size_t off = 0;
    bool eof = false;   ///< source said EOF
    bool shut = false;  ///< destination write side shut after draining
  };
  UniqueFd outside;
  UniqueFd inside;
  bool connecting = true;
  Direction to_inside;   ///< outside -> inside
  Direction to_outside;  ///< inside -> outside
  bool dead = false;
};

class PortForwarder final : public NetworkAttachment {
 public:
  PortForwarder(std::vector<PortSpec> bound, std::vector<UniqueFd> listeners, UniqueFd netns,
                UniqueFd stop)
      : m_bound(std::move(bound)),
        m_listeners(std::move(listeners)),
        m_netns(std::move(netns)),
        m_stop(std::move(stop)) {}

  ~PortForwarder() override {
    if (m_thread.joinable()) {
      uint64_t one = 1;
      GPUNET_CHECK(::write(m_stop.Get(), &one, sizeof one) == sizeof one);
      m_thread.join();
    }
  }

  std::vector<PortSpec> BoundPorts() const override { return m_bound; }

  /// Starts the forwarding thread and waits until it has entered the sandbox's
  /// network namespace (so a failure there is reported by AttachNetwork).
  base::Status Start() {
    std::promise<base::Status> entered;
    auto entered_future = entered.get_future();
    m_thread = std::thread([this, &entered] {
      // setns(CLONE_NEWNET) affects this thread only: sockets it creates from now on
      // live in the sandbox; the listeners were created before, in the host namespace.
      if (::setns(m_netns.Get(), CLONE_NEWNET) != 0) {
        entered.set_value(Fail(ErrorCode::kPermissionDenied,
                               Errno("network: forwarder cannot enter the sandbox namespace")));
        return;
      }
      // `lo` is left alone: bwrap brings it up itself, concurrently with this
      // (adding 127.0.0.1 first would make bwrap's RTM_NEWADDR fail and the sandbox
      // die). Connections only come once the workload listens, i.e. after that.
      entered.set_value(base::Ok());
      Loop();
    });
    auto st = entered_future.get();
    if (!st) m_thread.join();
    return st;
  }

 private:
  void Accept(size_t index) {
    int fd = ::accept4(m_listeners[index].Get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    UniqueFd outside(fd);
    if (m_connections.size() >= kForwardedConnectionsMax) return;  // closes: over the cap
    UniqueFd inside(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!inside.Valid()) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(m_bound[index].container_port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = ::connect(inside.Get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (r != 0 && errno != EINPROGRESS) return;
    auto c = std::make_unique<Connection>();
    c->outside = std::move(outside);
    c->inside = std::move(inside);
    c->connecting = (r != 0);
    c->to_inside.buf.resize(kForwardBufferBytes);
    c->to_outside.buf.resize(kForwardBufferBytes);
    m_connections.push_back(std::move(c));
  }

  /// Moves bytes for one direction as far as the sockets allow without blocking.
  static void Pump(Connection& c, Connection::Direction& d, int src, int dst, short src_ev) {
    if ((src_ev & (POLLIN | POLLHUP | POLLERR)) && d.len == 0 && !d.eof) {
      ssize_t n = ::read(src, d.buf.data(), d.buf.size());
      if (n > 0) {
        d.len = static_cast<size_t>(n);
        d.off = 0;
      } else if (n == 0) {
        d.eof = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        c.dead = true;
        return;
      }
    }
    if (d.len > d.off) {  // non-blocking: EAGAIN just waits for POLLOUT
      ssize_t n = ::send(dst, d.buf.data() + d.off, d.len - d.off, MSG_NOSIGNAL);
      if (n > 0) {
        d.off += static_cast<size_t>(n);
        if (d.off == d.len) d.len = d.off = 0;
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        c.dead = true;
        return;
      }
    }
    if (d.eof && d.len == 0 && !d.shut) {
      ::shutdown(dst, SHUT_WR);
      d.shut = true;
    }
  }

  void Loop() {
    std::vector<pollfd> fds;
    for (;;) {
      fds.clear();
      fds.push_back({m_stop.Get(), POLLIN, 0});
      for (const auto& l : m_listeners) {
        short ev = m_connections.size() < kForwardedConnectionsMax ? POLLIN : 0;
        fds.push_back({l.Get(), ev, 0});
      }
      size_t first_conn = fds.size();
      for (const auto& c : m_connections) {
        short out_ev = 0, in_ev = 0;
        if (c->connecting) {
          in_ev = POLLOUT;
        } else {
          if (c->to_inside.len == 0 && !c->to_inside.eof) out_ev |= POLLIN;
          if (c->to_outside.len > 0) out_ev |= POLLOUT;
          if (c->to_outside.len == 0 && !c->to_outside.eof) in_ev |= POLLIN;
          if (c->to_inside.len > 0) in_ev |= POLLOUT;
        }
        // No interest: not polled at all (-1), or a hung-up peer would report POLLHUP
        // on every round and spin this loop.
        fds.push_back({out_ev != 0 ? c->outside.Get() : -1, out_ev, 0});
        fds.push_back({in_ev != 0 ? c->inside.Get() : -1, in_ev, 0});
      }
      int n = ::poll(fds.data(), fds.size(), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[0].revents & POLLIN) return;
      for (size_t i = 0; i < m_connections.size(); ++i) {
        Connection& c = *m_connections[i];
        short out_rev = fds[first_conn + 2 * i].revents;
        short in_rev = fds[first_conn + 2 * i + 1].revents;
        if (c.connecting) {
          if (in_rev == 0) continue;
          int err = 0;
          socklen_t len = sizeof err;
          if (::getsockopt(c.inside.Get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            c.dead = true;  // nothing listens on the container port: the client sees EOF
            continue;
          }
          c.connecting = false;
          continue;
        }
        Pump(c, c.to_inside, c.outside.Get(), c.inside.Get(), out_rev);
        if (!c.dead) Pump(c, c.to_outside, c.inside.Get(), c.outside.Get(), in_rev);
        if (c.to_inside.shut && c.to_outside.shut) c.dead = true;
      }
      std::erase_if(m_connections, [](const auto& c) { return c->dead; });
      for (size_t i = 0; i < m_listeners.size(); ++i) {
        if (fds[1 + i].revents & POLLIN) Accept(i);
      }
    }
  }

  std::vector<PortSpec> m_bound;
  std::vector<UniqueFd> m_listeners;
  UniqueFd m_netns;
  UniqueFd m_stop;
  std::vector<std::unique_ptr<Connection>> m_connections;  // forwarder thread only
  std::thread m_thread;
};

base::Result<std::unique_ptr<NetworkAttachment>> AttachPorts(const WorkloadSpec& spec,
                                                             UniqueFd netns) {
  std::vector<PortSpec> bound;
  std::vector<UniqueFd> listeners;
  for (const auto& p : spec.ports) {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s.Valid()) return Fail(ErrorCode::kIo, Errno("network: socket"));
    int one = 1;
    ::setsockopt(s.Get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(p.host_port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(s.Get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return Fail(errno == EADDRINUSE ? ErrorCode::kConflict : ErrorCode::kIo,
                  Errno("network: cannot bind 127.0.0.1:" + std::to_string(p.host_port) +
                        " for container port " + std::to_string(p.container_port) +
                        " (pick another host port, or 0 for any)"));
    if (::listen(s.Get(), 64) != 0) return Fail(ErrorCode::kIo, Errno("network: listen"));
    socklen_t len = sizeof addr;
    if (::getsockname(s.Get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      return Fail(ErrorCode::kIo, Errno("network: getsockname"));
    bound.push_back(PortSpec{p.container_port, ntohs(addr.sin_port)});
    listeners.push_back(std::move(s));
  }
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
  if (!stop.Valid()) return Fail(ErrorCode::kIo, Errno("network: eventfd"));
  auto fwd = std::make_unique<PortForwarder>(std::move(bound), std::move(listeners),
                                             std::move(netns), std::move(stop));
  GPUNET_TRY(fwd->Start());
  return fwd;
}

}  // namespace

base::Status ValidateNetworkSpec(const WorkloadSpec& spec) {
  if (spec.network != NetworkMode::kPorts && !spec.ports.empty())
    return Fail(ErrorCode::kInvalidArgument,
                "network: ports are listed but the network mode is not `ports`; use "
                "--network ports or drop the ports");
  if (spec.network == NetworkMode::kPorts && spec.ports.empty())
    return Fail(ErrorCode::kInvalidArgument,
                "network: mode `ports` needs at least one port (--port CONTAINER[:HOST])");
  if (spec.ports.size() > kForwardedPortsMax)
    return Fail(ErrorCode::kLimitExceeded, "network: " + std::to_string(spec.ports.size()) +
                                               " ports listed, at most " +
                                               std::to_string(kForwardedPortsMax));
  std::set<uint16_t> container, host;
  for (const auto& p : spec.ports) {
    if (p.container_port == 0)
      return Fail(ErrorCode::kInvalidArgument, "network: container port 0 is not a port");
    if (!container.insert(p.container_port).second)
      return Fail(ErrorCode::kInvalidArgument,
                  "network: container port " + std::to_string(p.container_port) + " listed twice");
    if (p.host_port != 0 && p.host_port < kHostPortMin)
      return Fail(ErrorCode::kInvalidArgument, "network: host port " + std::to_string(p.host_port) +
                                                   " is a privileged port; ask for one from " +
                                                   std::to_string(kHostPortMin) +
                                                   " up, or 0 for any free port");
    if (p.host_port != 0 && !host.insert(p.host_port).second)
      return Fail(ErrorCode::kInvalidArgument,
                  "network: host port " + std::to_string(p.host_port) + " listed twice");
  }
  return base::Ok();
}

std::string EgressUnavailableReason() {
  if (FindProgram("slirp4netns").empty())
    return "slirp4netns not found (Debian package slirp4netns)";
  if (FindProgram("nft").empty()) return "nft not found (Debian package nftables)";
  if (::geteuid() != 0) return "egress firewall rules need root";
  return {};
}

std::string SandboxResolvConf(NetworkMode mode) {
  if (mode == NetworkMode::kEgress) return std::string("nameserver ") + kSlirpDnsAddress + "\n";
  return "# no name service in this network mode\n";
}

base::Result<std::unique_ptr<NetworkAttachment>> AttachNetwork(const WorkloadSpec& spec,
                                                               pid_t pid_in_netns,
                                                               const std::string& run_dir) {
  GPUNET_TRY(ValidateNetworkSpec(spec));
  if (spec.network == NetworkMode::kNone) return std::make_unique<NoNetwork>();
  auto netns = OpenNetns(pid_in_netns);
  if (!netns) return std::unexpected(netns.error());
  switch (spec.network) {
    case NetworkMode::kEgress:
      return AttachEgress(pid_in_netns, netns->Get(), run_dir);
    case NetworkMode::kPorts:
      return AttachPorts(spec, std::move(*netns));
    case NetworkMode::kNone:
      break;
  }
  GPUNET_UNREACHABLE();
}

}  // namespace gpunet::runtime
