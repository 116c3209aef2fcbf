#include "server/messages.h"

#include <unistd.h>

#include <utility>

#include <nlohmann/json.hpp>

#include "base/check.h"

namespace gpunet::server {

using Json = nlohmann::json;

namespace {

bool ProtocolToken(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  for (char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '/' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

UpgradeTarget::UpgradeTarget(int fd, std::string protocol, std::function<void()> on_end)
    : m_fd(fd), m_protocol(std::move(protocol)), m_on_end(std::move(on_end)) {
  GPUNET_CHECK(m_fd >= 0);
  GPUNET_CHECK(ProtocolToken(m_protocol));  // it goes into a header verbatim
}

UpgradeTarget::~UpgradeTarget() {
  if (m_fd >= 0) ::close(m_fd);
  if (m_on_end) m_on_end();
}

int UpgradeTarget::TakeFd() {
  return std::exchange(m_fd, -1);
}

Response UpgradeResponse(int fd, std::string protocol, std::function<void()> on_end) {
  Response response;
  response.status = 101;
  response.content_type.clear();
  response.upgrade = std::make_shared<UpgradeTarget>(fd, std::move(protocol), std::move(on_end));
  return response;
}

std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string JsonErrorText(std::string_view code, std::string_view message) {
  return DumpJson(Json{{"error", {{"code", code}, {"message", message}}}});
}

Response JsonError(int status, std::string_view code, std::string_view message) {
  return Response{status, "application/json", JsonErrorText(code, message)};
}

int HttpStatusFor(base::ErrorCode code) {
  using base::ErrorCode;
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kCorrupt:
    case ErrorCode::kNonCanonical:
    case ErrorCode::kBadSignature:
    case ErrorCode::kLimitExceeded:
    case ErrorCode::kOverflow:
    case ErrorCode::kUnsupported:
    case ErrorCode::kWrongPassphrase:
      return 400;
    case ErrorCode::kPermissionDenied:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kTimeout:
      return 504;
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

Response ErrorResponse(const base::Error& error) {
  return JsonError(HttpStatusFor(error.code), base::ErrorCodeName(error.code), error.message);
}

Response JsonResponse(const nlohmann::json& value, int status) {
  return Response{status, "application/json", DumpJson(value)};
}

base::Result<nlohmann::json> ParseJsonBody(const Request& request) {
  if (request.body.empty()) {
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      "the request body is empty; send a JSON object");
  }
  Json value;
  try {
    value = Json::parse(request.body);
  } catch (const Json::parse_error& e) {
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!value.is_object()) {
    return base::Fail(
        base::ErrorCode::kInvalidArgument,
        std::string("the request body must be a JSON object, not ") + value.type_name());
  }
  return value;
}

}  // namespace gpunet::server
