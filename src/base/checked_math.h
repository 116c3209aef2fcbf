// Checked integer arithmetic for money and time. No floating point anywhere in
// ledger code: amounts are uint64 ugpn; products go through unsigned __int128.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace gpunet::base {

[[nodiscard]] constexpr std::optional<uint64_t> CheckedAdd(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

[[nodiscard]] constexpr std::optional<uint64_t> CheckedSub(uint64_t a, uint64_t b) {
  if (b > a) return std::nullopt;
  return a - b;
}

[[nodiscard]] constexpr std::optional<uint64_t> CheckedMul(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// floor(a * b / d) and the remainder (a * b) mod d, computed exactly in 128 bits.
struct MulDivResult {
  uint64_t quotient;
  uint64_t remainder;
};

/// nullopt when d == 0 or the quotient does not fit in 64 bits.
[[nodiscard]] constexpr std::optional<MulDivResult> MulDivFloor(uint64_t a, uint64_t b,
                                                                uint64_t d) {
  if (d == 0) return std::nullopt;
  unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  unsigned __int128 q = p / d;
  if (q > UINT64_MAX) return std::nullopt;
  return MulDivResult{static_cast<uint64_t>(q), static_cast<uint64_t>(p % d)};
}

/// Decimal text of a 128-bit sum (conservation totals can exceed 64 bits).
inline std::string U128ToString(unsigned __int128 v) {
  if (v == 0) return "0";
  std::string out;
  while (v > 0) {
    out.insert(out.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  return out;
}

}  // namespace gpunet::base
