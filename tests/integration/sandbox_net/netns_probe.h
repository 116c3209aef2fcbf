// A probe process in a fresh user + network namespace, driven line by line over
// pipes, standing in for a workload: it holds no capabilities (dropped after `lo`
// is brought up) and no_new_privs is set, like a bubblewrap workload. Tests attach
// the real network modes to it and ask it to connect, listen and try to undo the
// firewall.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/capability.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace gpunet::testing {

/// Result of a TCP connect + read of up to 64 bytes (3 s each at most). `data` is
/// what the peer sent before closing; a reachable service in these tests always
/// sends a token first.
struct ConnectResult {
  bool connected = false;
  std::string data;
  std::string error;
};

inline ConnectResult TcpConnectRead(const std::string& addr, uint16_t port) {
  ConnectResult r;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r.error = std::strerror(errno);
    return r;
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
  int c = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (c != 0 && errno != EINPROGRESS) {
    r.error = std::strerror(errno);
    ::close(fd);
    return r;
  }
  pollfd p{fd, POLLOUT, 0};
  if (c != 0) {
    if (::poll(&p, 1, 3000) != 1) {
      r.error = "connect timed out";
      ::close(fd);
      return r;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      r.error = std::strerror(err);
      ::close(fd);
      return r;
    }
  }
  r.connected = true;
  char buf[64];
  for (;;) {
    p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 3000) != 1) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    r.data.append(buf, static_cast<size_t>(n));
    if (r.data.size() >= 64) break;
  }
  ::close(fd);
  return r;
}

/// A TCP service bound to addr:port (0 = any free port) that sends `token` to every
/// client and closes. Runs in a thread of the namespace that created the socket.
class TokenServer {
 public:
  TokenServer(const std::string& addr, uint16_t port, std::string token)
      : m_token(std::move(token)) {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(m_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    ::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
    if (::bind(m_fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(m_fd, 16) != 0) {
      ::close(m_fd);
      m_fd = -1;
      return;
    }
    socklen_t len = sizeof sa;
    ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&sa), &len);
    m_port = ntohs(sa.sin_port);
    ::pipe2(m_stop, O_CLOEXEC);
    m_thread = std::thread([this] {
      for (;;) {
        pollfd p[2] = {{m_fd, POLLIN, 0}, {m_stop[0], POLLIN, 0}};
        if (::poll(p, 2, -1) < 0 && errno == EINTR) continue;
        if (p[1].revents) return;
        int c = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        (void)!::write(c, m_token.data(), m_token.size());
        ::close(c);
      }
    });
  }
  ~TokenServer() {
    if (m_thread.joinable()) {
      (void)!::write(m_stop[1], "x", 1);
      m_thread.join();
      ::close(m_stop[0]);
      ::close(m_stop[1]);
    }
    if (m_fd >= 0) ::close(m_fd);
  }
  bool Ok() const { return m_fd >= 0; }
  uint16_t Port() const { return m_port; }

 private:
  std::string m_token;
  int m_fd = -1;
  uint16_t m_port = 0;
  int m_stop[2] = {-1, -1};
  std::thread m_thread;
};

/// A TCP echo service on 127.0.0.1:port: copies everything back until the client
/// half-closes, then closes. One client at a time.
class EchoServer {
 public:
  explicit EchoServer(uint16_t port) {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(m_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(m_fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(m_fd, 4) != 0) {
      ::close(m_fd);
      m_fd = -1;
      return;
    }
    m_thread = std::thread([fd = m_fd] {
      for (;;) {
        int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;  // listener shut down
        char buf[16384];
        for (;;) {
          ssize_t n = ::read(c, buf, sizeof buf);
          if (n <= 0) break;
          if (::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
        }
        ::close(c);
      }
    });
  }
  ~EchoServer() {
    if (m_fd >= 0) ::shutdown(m_fd, SHUT_RDWR);
    if (m_thread.joinable()) m_thread.join();
    if (m_fd >= 0) ::close(m_fd);
  }
  bool Ok() const { return m_fd >= 0; }

 private:
  int m_fd = -1;
  std::thread m_thread;
};

/// Sends `payload` to 127.0.0.1:port, half-closes, and returns everything read back
/// until EOF (blocking sockets; the writer runs in its own thread).
inline std::string TcpRoundTrip(uint16_t port, const std::string& payload) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return "connect failed";
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::thread writer([fd, &payload] {
    size_t off = 0;
    while (off < payload.size()) {
      ssize_t n = ::send(fd, payload.data() + off, payload.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
  });
  std::string got;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  writer.join();
  ::close(fd);
  return got;
}

/// The host's first non-loopback IPv4 address ("" when it has none).
inline std::string HostNonLoopbackAddress() {
  std::string out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (auto* it = list; it != nullptr && out.empty(); it = it->ifa_next) {
    if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
    if (it->ifa_flags & IFF_LOOPBACK) continue;
    char buf[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(it->ifa_addr)->sin_addr, buf, sizeof buf);
    out = buf;
  }
  ::freeifaddrs(list);
  return out;
}

/// Shell lines that try every path from a workload to the host's two token services
/// (the host's 127.0.0.1, its own address, slirp's gateway 10.0.2.2 that would
/// forward to the host's loopback) with busybox `nc`, printing "probe ADDR:PORT [reply]"
/// each, then the interface names. A reply holding HOSTLOOP/HOSTADDR is a breach.
inline std::string HostProbeScript(const std::string& host_addr, uint16_t loop_port,
                                   uint16_t addr_port, const std::string& nc) {
  std::string s;
  for (const auto& [addr, port] :
       std::vector<std::pair<std::string, uint16_t>>{{"127.0.0.1", loop_port},
                                                     {host_addr, loop_port},
                                                     {host_addr, addr_port},
                                                     {"10.0.2.2", loop_port},
                                                     {"10.0.2.2", addr_port}}) {
    s += "echo \"probe " + addr + ":" + std::to_string(port) + " [$(" + nc + " -w 2 " + addr + " " +
         std::to_string(port) + " </dev/null 2>&1)]\"; ";
  }
  return s + "cat /proc/net/dev | tail -n +3 | cut -d: -f1; ";
}

/// The probe child. Commands (one line each, one reply line each):
///   connect ADDR PORT      -> "connected <data>" | "error <reason>"
///   listen PORT TOKEN      -> "listening" | "error"   (token server on 127.0.0.1 inside)
///   echo PORT              -> "listening" | "error"   (echo server on 127.0.0.1 inside)
///   ifaddrs                -> "lo=127.0.0.1 tap0=10.0.2.100 ..."
///   route                  -> "default" when a default IPv4 route exists, else "none"
///   run PROG ARGS...       -> "exit N" of that program (stdout/stderr to /dev/null)
class NetnsProbe {
 public:
  NetnsProbe() {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) return;
    m_pid = ::fork();
    if (m_pid == 0) {
      ::close(to_child[1]);
      ::close(from_child[0]);
      ChildMain(to_child[0], from_child[1]);
      ::_exit(0);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    m_to = ::fdopen(to_child[1], "w");
    m_from = ::fdopen(from_child[0], "r");
    m_ready = Ask("hello") == "ready";
  }
  ~NetnsProbe() {
    if (m_to != nullptr) ::fclose(m_to);
    if (m_from != nullptr) ::fclose(m_from);
    if (m_pid > 0) {
      ::kill(m_pid, SIGKILL);
      ::waitpid(m_pid, nullptr, 0);
    }
  }
  bool Ready() const { return m_ready; }
  pid_t Pid() const { return m_pid; }

  std::string Ask(const std::string& line) {
    if (m_to == nullptr || m_from == nullptr) return "no probe";
    std::fprintf(m_to, "%s\n", line.c_str());
    std::fflush(m_to);
    char buf[4096];
    if (std::fgets(buf, sizeof buf, m_from) == nullptr) return "probe died";
    std::string s(buf);
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }

 private:
  static void DropEverything() {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    for (int cap = 0; cap <= 63; ++cap) ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    ::syscall(SYS_capset, &hdr, data);
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  }

  static void ChildMain(int in_fd, int out_fd) {
    FILE* in = ::fdopen(in_fd, "r");
    FILE* out = ::fdopen(out_fd, "w");
    bool ok = ::unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0;
    if (ok) {
      int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ifreq ifr{};
      std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
      ok = ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
      ifr.ifr_flags |= IFF_UP;
      ok = ok && ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
      ::close(s);
    }
    DropEverything();
    std::vector<std::unique_ptr<TokenServer>> servers;
    std::vector<std::unique_ptr<EchoServer>> echoes;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, in) != nullptr) {
      std::istringstream ss(buf);
      std::string cmd;
      ss >> cmd;
      std::string reply;
      if (cmd == "hello") {
        reply = ok ? "ready" : std::string("setup failed: ") + std::strerror(errno);
      } else if (cmd == "connect") {
        std::string addr;
        int port = 0;
        ss >> addr >> port;
        auto r = TcpConnectRead(addr, static_cast<uint16_t>(port));
        reply = r.connected ? "connected " + r.data : "error " + r.error;
      } else if (cmd == "listen") {
        int port = 0;
        std::string token;
        ss >> port >> token;
        auto srv = std::make_unique<TokenServer>("127.0.0.1", static_cast<uint16_t>(port), token);
        reply = srv->Ok() ? "listening" : "error";
        servers.push_back(std::move(srv));
      } else if (cmd == "echo") {
        int port = 0;
        ss >> port;
        auto srv = std::make_unique<EchoServer>(static_cast<uint16_t>(port));
        reply = srv->Ok() ? "listening" : "error";
        echoes.push_back(std::move(srv));
      } else if (cmd == "ifaddrs") {
        ifaddrs* list = nullptr;
        ::getifaddrs(&list);
        for (auto* it = list; it != nullptr; it = it->ifa_next) {
          if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
          char a[INET_ADDRSTRLEN] = {};
          ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(it->ifa_addr)->sin_addr, a,
                      sizeof a);
          reply += std::string(reply.empty() ? "" : " ") + it->ifa_name + "=" + a;
        }
        if (list != nullptr) ::freeifaddrs(list);
      } else if (cmd == "route") {
        std::ifstream f("/proc/self/net/route");
        std::string line;
        reply = "none";
        while (std::getline(f, line)) {
          std::istringstream ls(line);
          std::string iface, dest;
          ls >> iface >> dest;
          if (dest == "00000000") reply = "default";
        }
      } else if (cmd == "run") {
        std::vector<std::string> args;
        for (std::string a; ss >> a;) args.push_back(a);
        pid_t pid = ::fork();
        if (pid == 0) {
          int devnull = ::open("/dev/null", O_RDWR);
          ::dup2(devnull, 1);
          ::dup2(devnull, 2);
          std::vector<char*> argv;
          for (auto& a : args) argv.push_back(a.data());
          argv.push_back(nullptr);
          ::execv(argv[0], argv.data());
          ::_exit(127);
        }
        int status = 0;
        ::waitpid(pid, &status, 0);
        reply = "exit " +
                std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
      } else {
        reply = "unknown";
      }
      std::fprintf(out, "%s\n", reply.c_str());
      std::fflush(out);
    }
  }

  pid_t m_pid = -1;
  FILE* m_to = nullptr;
  FILE* m_from = nullptr;
  bool m_ready = false;
};

}  // namespace gpunet::testing
