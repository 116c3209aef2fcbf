// Byte strings, fixed-size hashes and hex.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace gpunet::base {

using Bytes = std::vector<uint8_t>;
using ByteSpan = std::span<const uint8_t>;

/// A fixed-size byte array with value semantics and byte-wise ordering.
template <size_t N>
struct FixedBytes {
  std::array<uint8_t, N> data{};

  static constexpr size_t kSize = N;
  auto operator<=>(const FixedBytes&) const = default;
  bool operator==(const FixedBytes&) const = default;
  ByteSpan Span() const { return ByteSpan(data.data(), N); }
  uint8_t* begin() { return data.data(); }
  uint8_t* end() { return data.data() + N; }
  const uint8_t* begin() const { return data.data(); }
  const uint8_t* end() const { return data.data() + N; }
  uint8_t& operator[](size_t i) { return data[i]; }
  const uint8_t& operator[](size_t i) const { return data[i]; }
  bool IsZero() const {
    for (uint8_t b : data)
      if (b != 0) return false;
    return true;
  }
  /// absl::Hash support (found by lookup, so base needs no absl): hash tables of
  /// hashes and addresses use absl's seeded hash of the bytes, which senders
  /// cannot grind into one probe chain the way they could a fixed function.
  template <typename H>
  friend H AbslHashValue(H h, const FixedBytes& b) {
    return H::combine_contiguous(std::move(h), b.data.data(), N);
  }
};

using Hash32 = FixedBytes<32>;

/// Lower-case hex of the bytes.
std::string ToHex(ByteSpan bytes);
template <size_t N>
std::string ToHex(const FixedBytes<N>& b) {
  return ToHex(b.Span());
}

/// Parses hex (upper or lower case, even length, no prefix).
Result<Bytes> FromHex(std::string_view hex);

/// Parses hex of exactly N bytes.
template <size_t N>
Result<FixedBytes<N>> FixedFromHex(std::string_view hex) {
  auto bytes = FromHex(hex);
  if (!bytes) return std::unexpected(bytes.error());
  if (bytes->size() != N)
    return Fail(
        ErrorCode::kInvalidArgument,
        "expected " + std::to_string(N) + " bytes of hex, got " + std::to_string(bytes->size()));
  FixedBytes<N> out;
  for (size_t i = 0; i < N; ++i) out.data[i] = (*bytes)[i];
  return out;
}

inline ByteSpan AsBytes(std::string_view s) {
  return ByteSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

/// Big-endian fixed-width integers (keys sort in numeric order).
void AppendU64BE(Bytes& out, uint64_t v);
void AppendU32BE(Bytes& out, uint32_t v);
uint64_t ReadU64BE(const uint8_t* p);
uint32_t ReadU32BE(const uint8_t* p);

}  // namespace gpunet::base
