// session_bridge SOCKET ssh PUBKEY_FILE: an OpenSSH ProxyCommand for the session
// tests. It connects to a workload's session socket (as the agent does), opens an ssh
// session with the public key, and bridges its own stdin/stdout to the session's
// STDIN/STDOUT frames (STDERR to stderr), as `gpunet`'s ProxyCommand does through the
// tenant API. Exits with the session's exit code, 255 on ERROR.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "base/session_wire.h"

namespace {

using gpunet::base::SessionFrameType;

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

int Fail(const std::string& why) {
  std::fprintf(stderr, "session_bridge: %s\n", why.c_str());
  return 255;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || std::string(argv[2]) != "ssh")
    return Fail("usage: session_bridge SOCKET ssh PUBKEY_FILE");
  std::ifstream key_in(argv[3]);
  std::string key;
  std::getline(key_in, key);
  int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", argv[1]);
  if (::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Fail(std::string("connect: ") + std::strerror(errno));
  gpunet::base::SessionOpen open;
  open.kind = gpunet::base::SessionOpenKind::kSsh;
  open.ssh_public_key = key;
  auto payload = gpunet::base::EncodeSessionOpen(open);
  if (!payload) return Fail(payload.error().message);
  if (!WriteAll(sock, gpunet::base::EncodeSessionFrame(SessionFrameType::kOpen, *payload)))
    return Fail("write");
  gpunet::base::SessionFrameDecoder decoder;
  bool stdin_open = true;
  char buf[65536];
  for (;;) {
    pollfd fds[2] = {{stdin_open ? 0 : -1, POLLIN, 0}, {sock, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) return Fail("poll");
    if (fds[0].revents) {
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n > 0) {
        WriteAll(sock, gpunet::base::EncodeSessionFrame(SessionFrameType::kStdin,
                                                        std::string_view(buf, n)));
      } else {
        stdin_open = false;
        WriteAll(sock, gpunet::base::EncodeSessionFrame(SessionFrameType::kStdinEof, ""));
      }
    }
    if (fds[1].revents) {
      ssize_t n = ::read(sock, buf, sizeof buf);
      if (n <= 0) return Fail("the session ended without EXIT");
      decoder.Feed(std::string_view(buf, static_cast<size_t>(n)));
      for (;;) {
        auto next = decoder.Next();
        if (!next) return Fail(next.error().message);
        if (!next->has_value()) break;
        const auto& f = **next;
        if (f.type == SessionFrameType::kStdout) WriteAll(1, f.payload);
        if (f.type == SessionFrameType::kStderr) WriteAll(2, f.payload);
        if (f.type == SessionFrameType::kError) return Fail("ERROR " + f.payload);
        if (f.type == SessionFrameType::kExit) {
          auto e = gpunet::base::DecodeSessionExit(f.payload);
          return e ? e->exit_code : 255;
        }
      }
    }
  }
}
