#include "state/fees.h"

#include "base/check.h"
#include "base/checked_math.h"

namespace gpunet::state {

std::optional<uint64_t> ByteAndMsgPrice(const FeeParams& params, uint64_t tx_bytes, uint64_t msgs) {
  auto bytes_part = base::CheckedMul(params.per_byte_ugpn, tx_bytes);
  auto msgs_part = base::CheckedMul(params.per_msg_ugpn, msgs);
  if (!bytes_part || !msgs_part) return std::nullopt;
  return base::CheckedAdd(*bytes_part, *msgs_part);
}

std::optional<uint64_t> RequiredFee(const FeeParams& params, uint64_t tx_bytes, uint64_t msgs) {
  auto sum = ByteAndMsgPrice(params, tx_bytes, msgs);
  if (!sum) return std::nullopt;
  return *sum < params.min_ugpn ? params.min_ugpn : *sum;
}

FeeSplit SplitFee(uint64_t fee_ugpn, uint32_t burn_bp) {
  GPUNET_CHECK(burn_bp <= kBasisPointsMax);
  auto burned = base::MulDivFloor(fee_ugpn, burn_bp, kBasisPointsMax);
  GPUNET_CHECK(burned.has_value());
  GPUNET_CHECK(burned->quotient <= fee_ugpn);
  return FeeSplit{burned->quotient, fee_ugpn - burned->quotient};
}

}  // namespace gpunet::state
