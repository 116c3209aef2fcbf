// Token amounts as people type and read them. The ledger counts in ugpn
// (1 GPN = 1,000,000 ugpn); people write "12.5" (GPN) or "12500000ugpn". Parsing is
// integer-only so that what is signed is exactly what was typed: no float ever
// rounds an amount.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace gpunet::client {

/// ugpn in one GPN.
inline constexpr uint64_t kUgpnPerGpn = 1'000'000;
/// Decimal places a GPN amount may have (one ugpn).
inline constexpr size_t kGpnDecimalsMax = 6;

/// Parses an amount into ugpn:
///   "12", "12.5", "0.000001", "12.5gpn", "12.5 GPN"  -> GPN, at most 6 decimals
///   "12500000ugpn", "12500000 ugpn"                 -> ugpn, a whole number
/// Refuses (kInvalidArgument, saying what is allowed): empty text, signs, exponents,
/// spaces inside the number, a decimal point without digits on both sides, more than
/// 6 decimals, fractional ugpn, other units; kOverflow when it does not fit in u64.
base::Result<uint64_t> ParseAmount(std::string_view text);

/// "12.5" for 12500000, "0.000001" for 1, "0" for 0: the exact GPN value, no
/// trailing zeros, no unit.
std::string FormatGpn(uint64_t ugpn);

/// "12.5 GPN (12500000 ugpn)": how the CLI shows an amount before signing.
std::string DescribeAmount(uint64_t ugpn);

}  // namespace gpunet::client
