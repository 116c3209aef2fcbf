// Writer: the one way canonical bytes are produced (docs/encoding.md). Every type's
// encoder goes through it, so every encoding follows the same integer, length and
// string rules that Reader enforces on the way back.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/bytes.h"

namespace gpunet::codec {

/// Appends canonical fields to a byte buffer. Writing never fails: a value that
/// breaks a rule (a too-long memo, unsorted validators) still encodes, and the
/// matching decoder rejects it; use ValidateTx & co. (encoding.h) before signing
/// or sending data built from outside input.
class Writer {
 public:
  Writer() = default;
  /// Reserves room for an expected size (an optimisation only).
  explicit Writer(size_t reserve_bytes) { m_out.reserve(reserve_bytes); }

  void U8(uint8_t v) { m_out.push_back(v); }
  void U16(uint16_t v);  ///< 2 bytes, big-endian
  void U32(uint32_t v);  ///< 4 bytes, big-endian
  void U64(uint64_t v);  ///< 8 bytes, big-endian
  void I32(int32_t v);   ///< 4 bytes, big-endian two's complement
  void Bool(bool v) { m_out.push_back(v ? 1 : 0); }
  /// Unsigned LEB128, minimal (1..10 bytes). Used for lengths and counts only.
  void VarUint(uint64_t v);
  /// A list or map count (VarUint).
  void Count(size_t n) { VarUint(n); }
  /// Raw bytes with no length: fixed-size fields (hashes, keys, signatures).
  void Raw(base::ByteSpan bytes);
  template <size_t N>
  void Fixed(const base::FixedBytes<N>& b) {
    Raw(b.Span());
  }
  /// VarUint length, then the bytes.
  void LenBytes(base::ByteSpan bytes);
  /// VarUint length, then the UTF-8 bytes.
  void String(std::string_view s) { LenBytes(base::AsBytes(s)); }

  size_t Size() const { return m_out.size(); }
  const base::Bytes& Data() const { return m_out; }
  base::Bytes Take() && { return std::move(m_out); }

 private:
  base::Bytes m_out;
};

}  // namespace gpunet::codec
