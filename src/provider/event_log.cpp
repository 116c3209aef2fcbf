#include "provider/event_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "base/file_util.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;

namespace {

constexpr size_t kLineBytesMax = 4096;

std::string Cut(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  return std::string(text.substr(0, max)) + "...";
}

/// The events of one file: every complete, well-formed line in sequence; the
/// first line that is neither (a torn tail) ends the list.
std::vector<LeaseEvent> ParseEvents(std::string_view text) {
  std::vector<LeaseEvent> events;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) break;  // torn: no newline yet
    auto j = nlohmann::json::parse(text.substr(start, end - start), nullptr, false);
    start = end + 1;
    if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned() ||
        j["seq"].get<uint64_t>() != events.size() + 1 || !j.contains("time_ms") ||
        !j["time_ms"].is_number_integer() || !j.contains("kind") || !j["kind"].is_string() ||
        !j.contains("message") || !j["message"].is_string()) {
      break;
    }
    events.push_back(LeaseEvent{j["seq"].get<uint64_t>(), j["time_ms"].get<int64_t>(),
                                j["kind"].get<std::string>(), j["message"].get<std::string>()});
  }
  return events;
}

}  // namespace

base::Result<std::unique_ptr<EventLog>> EventLog::Open(const std::string& dir, size_t events_max) {
  GPUNET_TRY(base::MakeDirectory(dir, 0700));
  return std::unique_ptr<EventLog>(new EventLog(dir, events_max));
}

std::string EventLog::PathOf(uint64_t lease_id) const {
  return m_dir + "/" + std::to_string(lease_id) + ".events";
}

base::Result<std::vector<LeaseEvent>*> EventLog::Loaded(uint64_t lease_id) {
  auto it = m_events.find(lease_id);
  if (it != m_events.end()) return &it->second;
  const std::string path = PathOf(lease_id);
  std::vector<LeaseEvent> events;
  auto text = base::ReadFileNoFollow(path, (m_events_max + 1) * kLineBytesMax);
  if (text.has_value()) {
    events = ParseEvents(*text);
    // Cut a torn tail away, so the next append starts on a line of its own.
    size_t keep = 0;
    for (size_t i = 0; i < events.size(); ++i) keep = text->find('\n', keep) + 1;
    if (keep != text->size() && ::truncate(path.c_str(), static_cast<off_t>(keep)) != 0) {
      return Fail(ErrorCode::kIo,
                  "truncate the torn tail of " + path + ": " + std::strerror(errno));
    }
  } else if (text.error().code != ErrorCode::kNotFound) {
    return std::unexpected(text.error());
  }
  return &m_events.emplace(lease_id, std::move(events)).first->second;
}

base::Result<uint64_t> EventLog::Append(uint64_t lease_id, std::string_view kind,
                                        std::string_view message, int64_t time_ms) {
  base::MutexLock lock(m_mutex);
  GPUNET_TRY_ASSIGN(auto* events, Loaded(lease_id));
  if (events->size() >= m_events_max) {
    return Fail(ErrorCode::kLimitExceeded, "lease " + std::to_string(lease_id) + " has " +
                                               std::to_string(m_events_max) +
                                               " events already; no more are kept");
  }
  LeaseEvent event{events->size() + 1, time_ms, Cut(kind, 64), Cut(message, kEventMessageBytesMax)};
  nlohmann::json j = {{"seq", event.seq},
                      {"time_ms", event.time_ms},
                      {"kind", event.kind},
                      {"message", event.message}};
  // Invalid UTF-8 (a workload's bytes in a message) is replaced, never a throw.
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const std::string path = PathOf(lease_id);
  const bool fresh = events->empty();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(ErrorCode::kIo, "open " + path + ": " + std::strerror(errno));
  base::Status written = base::WriteAll(fd, line, path);
  if (written.has_value() && ::fdatasync(fd) != 0) {
    written = Fail(ErrorCode::kIo, "fdatasync " + path + ": " + std::strerror(errno));
  }
  ::close(fd);
  GPUNET_TRY(written);
  if (fresh) GPUNET_TRY(base::SyncDirectoryOf(path));
  events->push_back(std::move(event));
  m_appended.notify_all();
  return events->back().seq;
}

base::Result<std::vector<LeaseEvent>> EventLog::Since(uint64_t lease_id, uint64_t after_seq,
                                                      size_t max_events, int64_t wait_ms) {
  base::MutexLock lock(m_mutex);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    GPUNET_TRY_ASSIGN(auto* events, Loaded(lease_id));
    if (events->size() > after_seq || wait_ms <= 0) {
      std::vector<LeaseEvent> out;
      for (size_t i = after_seq; i < events->size() && out.size() < max_events; ++i) {
        out.push_back((*events)[i]);
      }
      return out;
    }
    if (m_appended.wait_until(lock.Native(), deadline) == std::cv_status::timeout) {
      wait_ms = 0;  // one last look, then answer (maybe with nothing)
    }
  }
}

base::Status EventLog::Remove(uint64_t lease_id) {
  base::MutexLock lock(m_mutex);
  m_events.erase(lease_id);
  std::error_code ec;
  std::filesystem::remove(PathOf(lease_id), ec);
  if (ec)
    return Fail(ErrorCode::kIo,
                "remove events of lease " + std::to_string(lease_id) + ": " + ec.message());
  return base::Ok();
}

}  // namespace gpunet::provider
