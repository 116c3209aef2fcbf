// Reader: the one strict parser behind every decoder (docs/encoding.md). It rejects
// truncation, non-minimal varints, flag bytes other than 0/1, sizes over the limits
// of base/limits.h, bad strings and trailing bytes, and names the field in every
// error ("tx.body.msgs[1].amount_ugpn: truncated ...") so a person can find it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/result.h"

namespace gpunet::codec {

/// What a string field may contain. Decoders reject anything else.
enum class StringRule : uint8_t {
  /// Identifiers (chain id, event type, attribute key): 1..max bytes, each 0x21..0x7e
  /// (printable ASCII, no space), so they display and compare unambiguously.
  kIdent = 1,
  /// Free text (memo, attribute value): 0..max bytes of well-formed UTF-8 (no
  /// overlong forms, no surrogates, <= U+10FFFF) without C0 controls or DEL, so
  /// it cannot rewrite a terminal or hide content in logs.
  kText = 2,
};

/// Checks a string against a rule; the error names `field`. Exposed so builders can
/// check user input (a memo from the CLI) before encoding.
base::Status CheckString(std::string_view s, size_t max_bytes, StringRule rule,
                         std::string_view field);

/// Reads canonical fields from a byte span, front to back. Every method returns an
/// Error (never crashes, never reads out of bounds) on bad input; after an error the
/// Reader should be discarded.
class Reader {
 public:
  /// `what` names the value being decoded ("tx") and prefixes every error path. The
  /// Reader keeps views of `what` and of the names given to Enter: pass literals.
  Reader(base::ByteSpan data, std::string_view what);

  base::Result<uint8_t> U8(std::string_view field);
  base::Result<uint16_t> U16(std::string_view field);
  base::Result<uint32_t> U32(std::string_view field);
  base::Result<uint64_t> U64(std::string_view field);
  base::Result<int32_t> I32(std::string_view field);
  /// One byte, 0 or 1; anything else is kNonCanonical.
  base::Result<bool> Bool(std::string_view field);
  /// Unsigned LEB128: kNonCanonical when not minimal, kCorrupt when over 64 bits.
  base::Result<uint64_t> VarUint(std::string_view field);
  /// A list or map count: VarUint, kLimitExceeded when over max (`limit_name` names the
  /// constant of base/limits.h in the message).
  base::Result<size_t> Count(std::string_view field, size_t max, std::string_view limit_name);
  /// Raw fixed-size field.
  base::Result<base::ByteSpan> Raw(std::string_view field, size_t n);
  template <size_t N>
  base::Result<base::FixedBytes<N>> Fixed(std::string_view field) {
    auto span = Raw(field, N);
    if (!span) return std::unexpected(span.error());
    base::FixedBytes<N> out;
    for (size_t i = 0; i < N; ++i) out.data[i] = (*span)[i];
    return out;
  }
  /// VarUint length (<= max), then that many bytes, as a view into the input.
  base::Result<base::ByteSpan> LenBytes(std::string_view field, size_t max,
                                        std::string_view limit_name);
  /// VarUint length, then a string obeying `rule`.
  base::Result<std::string> String(std::string_view field, size_t max, StringRule rule,
                                   std::string_view limit_name);
  /// Succeeds when every byte has been consumed; trailing bytes are kNonCanonical.
  base::Status Finish();

  size_t Offset() const { return m_pos; }
  size_t Remaining() const { return m_data.size() - m_pos; }

  /// An error whose message is "<path>.<field>: <what>", for checks done by decoders
  /// (ordering, tags) so they read the same as the Reader's own.
  std::unexpected<base::Error> Error(base::ErrorCode code, std::string_view field,
                                     std::string_view what) const;

  /// kLimitExceeded: "<path>.<field>: <n> <unit>, over the limit of <max> (limits::<name>)".
  std::unexpected<base::Error> OverLimit(std::string_view field, uint64_t n, std::string_view unit,
                                         size_t max, std::string_view limit_name) const;

  /// Names a nested value for error paths while alive: `auto s = r.Enter("body");`
  /// or `r.Enter("msgs", i)` -> "tx.body.msgs[3]". Nesting depth is bounded by the
  /// types (checked).
  class Scope {
   public:
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope();

   private:
    friend class Reader;
    explicit Scope(Reader* r) : m_reader(r) {}
    Reader* m_reader;
  };
  [[nodiscard]] Scope Enter(std::string_view name);
  [[nodiscard]] Scope Enter(std::string_view name, size_t index);

 private:
  static constexpr size_t kDepthMax = 8;
  static constexpr size_t kNoIndex = static_cast<size_t>(-1);
  struct Frame {
    std::string_view name;
    size_t index;
  };
  std::string Path(std::string_view field) const;
  base::Result<base::ByteSpan> Take(std::string_view field, size_t n);

  base::ByteSpan m_data;
  size_t m_pos = 0;
  std::array<Frame, kDepthMax> m_frames{};
  size_t m_depth = 0;
};

}  // namespace gpunet::codec
