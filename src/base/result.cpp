#include "base/result.h"

namespace gpunet::base {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    // One line per code, as in the enum.
    // clang-format off
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kAlreadyExists: return "already_exists";
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kNonCanonical: return "non_canonical";
    case ErrorCode::kBadSignature: return "bad_signature";
    case ErrorCode::kWrongPassphrase: return "wrong_passphrase";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kLimitExceeded: return "limit_exceeded";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kPermissionDenied: return "permission_denied";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kOverflow: return "overflow";
    case ErrorCode::kConflict: return "conflict";
      // clang-format on
  }
  return "unknown";
}

std::string Error::ToString() const {
  return std::string(ErrorCodeName(code)) + ": " + message;
}

}  // namespace gpunet::base
