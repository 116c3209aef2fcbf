#include "client/amount.h"

#include <optional>

#include "base/checked_math.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;

constexpr const char* kAmountForms =
    "write GPN like 12 or 12.5 (at most 6 decimals) or ugpn like 12500000ugpn";

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

bool EndsWithNoCase(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  std::string_view tail = s.substr(s.size() - suffix.size());
  for (size_t i = 0; i < suffix.size(); ++i) {
    char c = tail[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != suffix[i]) return false;
  }
  return true;
}

/// Digits only (non-empty) to u64; nullopt on overflow.
std::optional<uint64_t> DigitsToU64(std::string_view digits) {
  uint64_t v = 0;
  for (char c : digits) {
    auto times_ten = base::CheckedMul(v, 10);
    if (!times_ten) return std::nullopt;
    auto plus = base::CheckedAdd(*times_ten, static_cast<uint64_t>(c - '0'));
    if (!plus) return std::nullopt;
    v = *plus;
  }
  return v;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!IsDigit(c)) return false;
  return true;
}

std::string Quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

}  // namespace

base::Result<uint64_t> ParseAmount(std::string_view text) {
  if (text.empty())
    return Fail(ErrorCode::kInvalidArgument, "the amount is empty: " + std::string(kAmountForms));
  if (text.size() > 64)
    return Fail(ErrorCode::kInvalidArgument,
                "the amount is too long: " + std::string(kAmountForms));
  if (text.front() == '-')
    return Fail(ErrorCode::kInvalidArgument,
                "the amount " + Quoted(text) + " is negative; amounts are positive");
  std::string_view number = text;
  bool in_ugpn = false;
  if (EndsWithNoCase(number, "ugpn")) {
    in_ugpn = true;
    number.remove_suffix(4);
  } else if (EndsWithNoCase(number, "gpn")) {
    number.remove_suffix(3);
  }
  // One space between number and unit is allowed ("12.5 GPN"), nothing else.
  if (number.size() != text.size() && !number.empty() && number.back() == ' ')
    number.remove_suffix(1);

  if (in_ugpn) {
    if (!AllDigits(number)) {
      if (number.find('.') != std::string_view::npos)
        return Fail(ErrorCode::kInvalidArgument,
                    "the amount " + Quoted(text) +
                        " has a fraction of a ugpn; ugpn is the smallest unit, " +
                        "so write a whole number (or GPN with up to 6 decimals)");
      return Fail(ErrorCode::kInvalidArgument,
                  "the amount " + Quoted(text) + " is not a number: " + kAmountForms);
    }
    auto v = DigitsToU64(number);
    if (!v)
      return Fail(ErrorCode::kOverflow, "the amount " + Quoted(text) +
                                            " is larger than any balance can be (2^64-1 ugpn)");
    return *v;
  }

  size_t dot = number.find('.');
  std::string_view whole = number.substr(0, dot);
  std::string_view fraction =
      dot == std::string_view::npos ? std::string_view{} : number.substr(dot + 1);
  bool bad_shape = !AllDigits(whole) || (dot != std::string_view::npos && !AllDigits(fraction));
  if (bad_shape)
    return Fail(ErrorCode::kInvalidArgument,
                "the amount " + Quoted(text) + " is not a number: " + kAmountForms);
  if (fraction.size() > kGpnDecimalsMax)
    return Fail(ErrorCode::kInvalidArgument,
                "the amount " + Quoted(text) + " has " + std::to_string(fraction.size()) +
                    " decimals; GPN has at most 6 (1 ugpn = 0.000001 GPN)");
  auto whole_gpn = DigitsToU64(whole);
  std::optional<uint64_t> ugpn;
  if (whole_gpn) ugpn = base::CheckedMul(*whole_gpn, kUgpnPerGpn);
  if (ugpn) {
    uint64_t frac_ugpn = fraction.empty() ? 0 : *DigitsToU64(fraction);
    for (size_t i = fraction.size(); i < kGpnDecimalsMax; ++i) frac_ugpn *= 10;
    ugpn = base::CheckedAdd(*ugpn, frac_ugpn);
  }
  if (!ugpn)
    return Fail(ErrorCode::kOverflow,
                "the amount " + Quoted(text) +
                    " is larger than any balance can be (18446744073709.551615 GPN)");
  return *ugpn;
}

std::string FormatGpn(uint64_t ugpn) {
  std::string out = std::to_string(ugpn / kUgpnPerGpn);
  uint64_t frac = ugpn % kUgpnPerGpn;
  if (frac == 0) return out;
  std::string digits = std::to_string(frac);
  digits.insert(0, kGpnDecimalsMax - digits.size(), '0');
  while (digits.back() == '0') digits.pop_back();
  return out + "." + digits;
}

std::string DescribeAmount(uint64_t ugpn) {
  return FormatGpn(ugpn) + " GPN (" + std::to_string(ugpn) + " ugpn)";
}

}  // namespace gpunet::client
