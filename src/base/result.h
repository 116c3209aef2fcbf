// Result<T>: the return type of every operation that can be refused.
//
// Expected rejections (bad input, bad request, a file that is not what it should
// be) come back as an Error with a closed, numbered code and a message a person
// can act on. Bugs are not Errors: they are GPUNET_CHECK failures (base/check.h).
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace gpunet::base {

/// Closed list of general error kinds. Numbers are stable; append only.
/// (Transaction result codes stored in receipts are a separate enum, codec::TxCode in
/// codec/tx_result.h.)
enum class ErrorCode : uint16_t {
  kInvalidArgument = 1,    ///< the caller asked for something malformed
  kNotFound = 2,           ///< the named thing does not exist
  kAlreadyExists = 3,      ///< the named thing exists and would be overwritten
  kCorrupt = 4,            ///< stored or received data fails its own checks
  kNonCanonical = 5,       ///< bytes decode but are not the one canonical form
  kBadSignature = 6,       ///< a signature does not verify
  kWrongPassphrase = 7,    ///< decryption failed: wrong passphrase or tampered file
  kIo = 8,                 ///< the operating system refused (disk, socket, device)
  kLimitExceeded = 9,      ///< a size or count is over a limit of base/limits
  kUnsupported = 10,       ///< valid, but not something this build or host can do
  kPermissionDenied = 11,  ///< the caller may not do this
  kTimeout = 12,           ///< waited too long
  kUnavailable = 13,       ///< a peer or service is down or unreachable
  kInternal = 14,          ///< an invariant broke somewhere we could not assert
  kOverflow = 15,          ///< integer arithmetic would overflow
  kConflict = 16,          ///< the state changed under the request (stale nonce, busy)
};

/// Short stable name of a code, e.g. "invalid_argument" (used in JSON and logs).
std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;

  /// "<code name>: <message>"
  std::string ToString() const;
};

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

/// Builds the error side of a Result: `return Fail(ErrorCode::kNotFound, "no key " + name);`
[[nodiscard]] inline std::unexpected<Error> Fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

/// Success value of a Status.
[[nodiscard]] inline Status Ok() {
  return {};
}

/// Prefixes context onto an error as it travels up: "reading key file x: corrupt: ...".
[[nodiscard]] inline std::unexpected<Error> Wrap(const Error& e, std::string_view context) {
  return std::unexpected<Error>(Error{e.code, std::string(context) + ": " + e.message});
}

}  // namespace gpunet::base

// The one error-propagation family (docs/conventions.md "Errors"); any Result-like type
// works (std::expected<T, E> for any E, so the market's own Stop results too).

/// Returns the error of a Result/Status expression from the enclosing function,
/// otherwise evaluates to nothing: `GPUNET_TRY(db.Put(k, v));`
#define GPUNET_TRY(expr) GPUNET_TRY_IMPL_(GPUNET_TRY_CONCAT_(gpunet_try_r_, __COUNTER__), expr)

/// Returns the error of a Result expression, otherwise moves its value into `lhs`,
/// which is a declaration or an lvalue:
///   GPUNET_TRY_ASSIGN(auto block, ReadBlock(kv, h));
///   GPUNET_TRY_ASSIGN(out.fee, fields.U64("fee"));
/// It expands to several statements: not the lone body of an unbraced `if`.
#define GPUNET_TRY_ASSIGN(lhs, expr) \
  GPUNET_TRY_ASSIGN_IMPL_(GPUNET_TRY_CONCAT_(gpunet_try_v_, __COUNTER__), lhs, expr)

#define GPUNET_TRY_CONCAT2_(a, b) a##b
#define GPUNET_TRY_CONCAT_(a, b) GPUNET_TRY_CONCAT2_(a, b)
// Each expansion names its temporary uniquely (__COUNTER__), so a GPUNET_TRY inside a
// lambda inside another's argument shadows nothing (-Wshadow).
#define GPUNET_TRY_IMPL_(tmp, expr)                           \
  do {                                                        \
    auto&& tmp = (expr);                                      \
    if (!tmp) return std::unexpected(std::move(tmp).error()); \
  } while (0)
#define GPUNET_TRY_ASSIGN_IMPL_(tmp, lhs, expr)             \
  auto tmp = (expr);                                        \
  if (!tmp) return std::unexpected(std::move(tmp).error()); \
  lhs = std::move(*tmp)
