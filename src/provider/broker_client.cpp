#include "provider/broker_client.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <string>

#include "base/check.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;

BrokerClient::BrokerClient(std::vector<int> fds) {
  for (int fd : fds) m_slots.push_back(Slot{fd, false});
  m_alive = m_slots.size();
  m_wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  GPUNET_CHECK(m_wake_fd >= 0);
  m_watcher = std::thread([this] { Watch(); });
}

BrokerClient::~BrokerClient() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  Wake();
  m_watcher.join();
  for (Slot& slot : m_slots)
    if (slot.fd >= 0) ::close(slot.fd);
  ::close(m_wake_fd);
}

void BrokerClient::Wake() {
  const uint64_t one = 1;
  // A full counter already wakes the watcher; nothing else can fail on an eventfd.
  [[maybe_unused]] ssize_t n = ::write(m_wake_fd, &one, sizeof(one));
}

void BrokerClient::Drop(Slot& slot) {
  if (slot.fd < 0) return;
  ::close(slot.fd);
  slot.fd = -1;
  slot.busy = false;
  --m_alive;
  m_changed.notify_all();
}

size_t BrokerClient::Alive() const {
  std::lock_guard lock(m_mutex);
  return m_alive;
}

void BrokerClient::WaitAllGone() {
  std::unique_lock lock(m_mutex);
  m_changed.wait(lock, [this] { return m_alive == 0; });
}

namespace {

/// True when an idle descriptor has something to read or hung up: the agent closed
/// it (or spoke out of turn, which is as bad).
bool IdleFdEnded(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && p.revents != 0;
}

}  // namespace

void BrokerClient::Watch() {
  std::vector<pollfd> set;
  while (true) {
    set.clear();
    set.push_back(pollfd{m_wake_fd, POLLIN, 0});
    {
      std::lock_guard lock(m_mutex);
      if (m_stopping) return;
      for (const Slot& slot : m_slots)
        if (slot.fd >= 0 && !slot.busy) set.push_back(pollfd{slot.fd, POLLIN | POLLRDHUP, 0});
    }
    if (::poll(set.data(), set.size(), -1) < 0 && errno != EINTR) return;
    if (set[0].revents != 0) {
      uint64_t count = 0;
      [[maybe_unused]] ssize_t n = ::read(m_wake_fd, &count, sizeof(count));
    }
    std::lock_guard lock(m_mutex);
    for (size_t i = 1; i < set.size(); ++i) {
      if (set[i].revents == 0) continue;
      for (Slot& slot : m_slots) {
        // Checked again under the lock: the descriptor may have been taken (and a
        // reply read) since poll returned.
        if (slot.fd == set[i].fd && !slot.busy && IdleFdEnded(slot.fd)) Drop(slot);
      }
    }
  }
}

base::Result<BrokerFrame> BrokerClient::Call(const BrokerFrame& request, BrokerFd* session) {
  GPUNET_CHECK((request.op == BrokerOp::kSession) == (session != nullptr));
  GPUNET_TRY_ASSIGN(const std::string bytes, EncodeBrokerFrame(request));
  Slot* slot = nullptr;
  int fd = -1;
  {
    std::unique_lock lock(m_mutex);
    m_changed.wait(lock, [this] {
      if (m_alive == 0) return true;
      for (const Slot& s : m_slots)
        if (s.fd >= 0 && !s.busy) return true;
      return false;
    });
    if (m_alive == 0) {
      return Fail(ErrorCode::kUnavailable,
                  "the provider's agent is not connected (every broker connection closed)");
    }
    for (Slot& s : m_slots) {
      if (s.fd >= 0 && !s.busy) {
        slot = &s;
        break;
      }
    }
    slot->busy = true;
    fd = slot->fd;
  }
  Wake();  // the watcher stops watching this descriptor while it is in use

  auto finish = [&](bool keep) {
    {
      std::lock_guard lock(m_mutex);
      if (keep) {
        slot->busy = false;
      } else {
        Drop(*slot);
      }
      m_changed.notify_all();
    }
    Wake();
  };
  if (auto sent = WriteBrokerFrame(fd, request); !sent) {
    finish(false);
    return Fail(ErrorCode::kUnavailable,
                "the provider's agent did not take the request: " + sent.error().message);
  }
  auto reply = session != nullptr ? ReadBrokerFrameWithFd(fd, session) : ReadBrokerFrame(fd);
  if (!reply) {
    finish(false);
    return Fail(ErrorCode::kUnavailable,
                reply.error().code == ErrorCode::kNotFound
                    ? std::string("the provider's agent closed the connection without an answer")
                    : "the provider's agent answered badly: " + reply.error().message);
  }
  if (reply->op != BrokerOp::kReply) {
    finish(false);
    return Fail(ErrorCode::kUnavailable, "the provider's agent answered with op " +
                                             std::string(BrokerOpName(reply->op)) +
                                             " instead of a reply");
  }
  if (session != nullptr && session->Valid() != (reply->Field("status") == "200")) {
    const bool stray = session->Valid();
    *session = BrokerFd();  // closed
    finish(false);
    return Fail(ErrorCode::kUnavailable,
                stray
                    ? std::string("the provider's agent sent a descriptor with a refusal")
                    : std::string("the provider's agent said yes to a session without its socket"));
  }
  finish(true);
  return reply;
}

base::Result<std::vector<int>> ParseFdList(std::string_view text) {
  std::vector<int> fds;
  std::set<int> seen;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string_view item = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    bool digits = !item.empty() && item.size() <= 5 && item.front() != '0';
    for (char c : item) digits = digits && c >= '0' && c <= '9';
    const int fd = digits ? std::stoi(std::string(item)) : -1;
    if (fd < 3 || fd > 65535) {
      return Fail(ErrorCode::kInvalidArgument,
                  "descriptor \"" + std::string(item) +
                      "\" in the list is not a number from 3 to 65535 (expected e.g. 3,4,5)");
    }
    if (!seen.insert(fd).second) {
      return Fail(ErrorCode::kInvalidArgument,
                  "descriptor " + std::to_string(fd) + " is listed twice");
    }
    fds.push_back(fd);
    if (fds.size() > 64) return Fail(ErrorCode::kInvalidArgument, "more than 64 descriptors");
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return fds;
}

}  // namespace gpunet::provider
