// Bech32 (BIP-173): the text form of addresses. Human-readable prefix, the
// separator '1', 5-bit data and a 6-character BCH checksum that catches any
// error of up to 4 characters.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/result.h"

namespace gpunet::base {

/// BIP-173: a whole bech32 string is at most 90 characters.
inline constexpr size_t kBech32LengthMax = 90;

/// A decoded bech32 string: the prefix in lower case and the 5-bit values
/// between the separator and the checksum.
struct Bech32Parts {
  std::string hrp;
  Bytes data5;  ///< each element < 32
};

/// Encodes 5-bit values under the prefix. Lower-case output. Fails on a prefix
/// that is empty, longer than 83, upper-case or outside ASCII 33..126, on a value
/// >= 32, or when the result would exceed kBech32LengthMax.
Result<std::string> Bech32Encode(std::string_view hrp, std::span<const uint8_t> data5);

/// Decodes and checks a bech32 string: length <= 90, ASCII 33..126, not mixed
/// case, a separator, a non-empty prefix, only charset characters after it, at
/// least 6 checksum characters, and a valid checksum.
Result<Bech32Parts> Bech32Decode(std::string_view text);

/// Regroups bits (e.g. 8 -> 5 to encode bytes, 5 -> 8 to decode). With pad the
/// last group is zero-filled; without it leftover bits must be fewer than
/// from_bits and all zero, as BIP-173 requires for canonical strings.
Result<Bytes> ConvertBits(std::span<const uint8_t> in, int from_bits, int to_bits, bool pad);

/// Bytes -> bech32 under hrp (8 -> 5 bit with padding).
Result<std::string> Bech32EncodeBytes(std::string_view hrp, ByteSpan bytes);
/// bech32 -> bytes, requiring the prefix to equal expected_hrp (compared in
/// lower case) and canonical zero padding.
Result<Bytes> Bech32DecodeBytes(std::string_view text, std::string_view expected_hrp);

}  // namespace gpunet::base
