#include "base/bech32.h"

#include <array>

#include "base/check.h"

namespace gpunet::base {
namespace {

constexpr std::string_view kCharset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
constexpr size_t kChecksumLength = 6;
constexpr size_t kHrpLengthMax = 83;

// Reverse of kCharset; -1 for characters outside it.
constexpr std::array<int8_t, 128> MakeReverse() {
  std::array<int8_t, 128> r{};
  for (auto& v : r) v = -1;
  for (size_t i = 0; i < kCharset.size(); ++i)
    r[static_cast<uint8_t>(kCharset[i])] = static_cast<int8_t>(i);
  return r;
}
constexpr std::array<int8_t, 128> kReverse = MakeReverse();

// BIP-173's generator, folded into a table: kFold[top] is the XOR of the
// generator words whose bit is set in the 5-bit `top`, so each character costs one
// lookup instead of five data-dependent branches (addresses are printed in every
// transfer's events).
constexpr std::array<uint32_t, 32> kFold = [] {
  constexpr uint32_t kGen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
  std::array<uint32_t, 32> t{};
  for (uint32_t top = 0; top < 32; ++top)
    for (int i = 0; i < 5; ++i)
      if ((top >> i) & 1) t[top] ^= kGen[i];
  return t;
}();

uint32_t PolymodStep(uint32_t chk, uint8_t v) {
  const uint32_t top = chk >> 25;
  return ((chk & 0x1ffffff) << 5 ^ v) ^ kFold[top];
}

uint32_t Polymod(const Bytes& values) {
  uint32_t chk = 1;
  for (uint8_t v : values) chk = PolymodStep(chk, v);
  return chk;
}

Bytes HrpExpand(std::string_view hrp) {
  Bytes out;
  out.reserve(hrp.size() * 2 + 1);
  for (char c : hrp) out.push_back(static_cast<uint8_t>(c) >> 5);
  out.push_back(0);
  for (char c : hrp) out.push_back(static_cast<uint8_t>(c) & 31);
  return out;
}

char ToLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

Result<std::string> Bech32Encode(std::string_view hrp, std::span<const uint8_t> data5) {
  if (hrp.empty() || hrp.size() > kHrpLengthMax)
    return Fail(ErrorCode::kInvalidArgument, "bech32 prefix must be 1..83 characters");
  for (char c : hrp) {
    if (c < 33 || c > 126 || (c >= 'A' && c <= 'Z'))
      return Fail(ErrorCode::kInvalidArgument, "bech32 prefix must be lower-case printable ASCII");
  }
  if (hrp.size() + 1 + data5.size() + kChecksumLength > kBech32LengthMax)
    return Fail(ErrorCode::kLimitExceeded, "bech32 string would exceed 90 characters");
  // The checksum over HrpExpand(hrp) ++ data5 ++ six zeros, fed as it goes:
  // no buffer for them (an address is printed in every transfer's events).
  uint32_t chk = 1;
  for (char c : hrp) chk = PolymodStep(chk, static_cast<uint8_t>(c) >> 5);
  chk = PolymodStep(chk, 0);
  for (char c : hrp) chk = PolymodStep(chk, static_cast<uint8_t>(c) & 31);
  for (uint8_t v : data5) {
    if (v >= 32) return Fail(ErrorCode::kInvalidArgument, "bech32 data value out of range");
    chk = PolymodStep(chk, v);
  }
  for (size_t i = 0; i < kChecksumLength; ++i) chk = PolymodStep(chk, 0);
  const uint32_t mod = chk ^ 1;
  std::string out;
  out.reserve(hrp.size() + 1 + data5.size() + kChecksumLength);
  out.append(hrp);
  out.push_back('1');
  for (uint8_t v : data5) out.push_back(kCharset[v]);
  for (size_t i = 0; i < kChecksumLength; ++i) out.push_back(kCharset[(mod >> (5 * (5 - i))) & 31]);
  GPUNET_CHECK(out.size() <= kBech32LengthMax);
  return out;
}

Result<Bech32Parts> Bech32Decode(std::string_view text) {
  if (text.size() > kBech32LengthMax)
    return Fail(ErrorCode::kInvalidArgument, "bech32 string is " + std::to_string(text.size()) +
                                                 " characters; at most 90 allowed");
  bool lower = false, upper = false;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126)
      return Fail(ErrorCode::kInvalidArgument,
                  "bech32 string contains a character outside ASCII 33..126");
    if (c >= 'a' && c <= 'z') lower = true;
    if (c >= 'A' && c <= 'Z') upper = true;
  }
  if (lower && upper)
    return Fail(ErrorCode::kInvalidArgument, "bech32 string mixes upper and lower case");
  size_t sep = text.rfind('1');
  if (sep == std::string_view::npos)
    return Fail(ErrorCode::kInvalidArgument, "bech32 string has no separator '1'");
  if (sep == 0) return Fail(ErrorCode::kInvalidArgument, "bech32 string has an empty prefix");
  if (sep > kHrpLengthMax)
    return Fail(ErrorCode::kInvalidArgument, "bech32 prefix longer than 83 characters");
  if (text.size() - sep - 1 < kChecksumLength)
    return Fail(ErrorCode::kInvalidArgument, "bech32 string too short for its checksum");
  Bech32Parts parts;
  for (size_t i = 0; i < sep; ++i) parts.hrp.push_back(ToLower(text[i]));
  Bytes values = HrpExpand(parts.hrp);
  for (size_t i = sep + 1; i < text.size(); ++i) {
    int8_t v = kReverse[static_cast<uint8_t>(ToLower(text[i]))];
    if (v < 0)
      return Fail(ErrorCode::kInvalidArgument, std::string("bech32 string contains '") + text[i] +
                                                   "', which is not in the bech32 alphabet");
    values.push_back(static_cast<uint8_t>(v));
  }
  if (Polymod(values) != 1)
    return Fail(ErrorCode::kInvalidArgument, "bech32 checksum does not match (typo?)");
  size_t data_begin = parts.hrp.size() * 2 + 1;
  parts.data5.assign(values.begin() + static_cast<ptrdiff_t>(data_begin),
                     values.end() - static_cast<ptrdiff_t>(kChecksumLength));
  return parts;
}

Result<Bytes> ConvertBits(std::span<const uint8_t> in, int from_bits, int to_bits, bool pad) {
  GPUNET_CHECK(from_bits >= 1 && from_bits <= 8 && to_bits >= 1 && to_bits <= 8);
  uint32_t acc = 0;
  int bits = 0;
  const uint32_t max_value = (1u << to_bits) - 1;
  Bytes out;
  out.reserve(in.size() * static_cast<size_t>(from_bits) / static_cast<size_t>(to_bits) + 1);
  for (uint8_t v : in) {
    if ((v >> from_bits) != 0)
      return Fail(ErrorCode::kInvalidArgument, "value wider than its bit group");
    acc = (acc << from_bits | v) & 0xfffff;
    bits += from_bits;
    while (bits >= to_bits) {
      bits -= to_bits;
      out.push_back(static_cast<uint8_t>((acc >> bits) & max_value));
    }
  }
  if (pad) {
    if (bits > 0) out.push_back(static_cast<uint8_t>((acc << (to_bits - bits)) & max_value));
  } else if (bits >= from_bits || ((acc << (to_bits - bits)) & max_value) != 0) {
    return Fail(ErrorCode::kNonCanonical, "bech32 data has non-zero or excess padding bits");
  }
  return out;
}

Result<std::string> Bech32EncodeBytes(std::string_view hrp, ByteSpan bytes) {
  auto data5 = ConvertBits(bytes, 8, 5, true);
  GPUNET_CHECK(data5.has_value());  // 8-bit input always fits
  return Bech32Encode(hrp, *data5);
}

Result<Bytes> Bech32DecodeBytes(std::string_view text, std::string_view expected_hrp) {
  auto parts = Bech32Decode(text);
  if (!parts) return std::unexpected(parts.error());
  if (parts->hrp != expected_hrp)
    return Fail(
        ErrorCode::kInvalidArgument,
        "bech32 prefix is \"" + parts->hrp + "\", expected \"" + std::string(expected_hrp) + "\"");
  return ConvertBits(parts->data5, 5, 8, false);
}

}  // namespace gpunet::base
