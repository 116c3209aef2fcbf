// Transaction fees (architecture §2.4): fee >= per_byte * encoded bytes + per_msg * messages,
// and >= the minimum. Of the fee charged, burn_bp basis points (floor) are burned;
// the rest goes to the block's proposer account. When a block has no proposer
// address (all zero) the rest goes to the fee pool of the supply record instead,
// so no token is ever lost. Parameters come from genesis.
#pragma once

#include <cstdint>
#include <optional>

namespace gpunet::state {

inline constexpr uint32_t kBasisPointsMax = 10000;

struct FeeParams {
  uint64_t per_byte_ugpn = 0;
  uint64_t per_msg_ugpn = 0;
  uint64_t min_ugpn = 0;
  uint32_t burn_bp = 0;  ///< 0..kBasisPointsMax
  bool operator==(const FeeParams&) const = default;
};

/// The byte and message part of the fee rule: per_byte * bytes + per_msg * msgs
/// (without the minimum). What a fee holds beyond it buys gas (gas.h). nullopt
/// when it overflows 64 bits.
std::optional<uint64_t> ByteAndMsgPrice(const FeeParams& params, uint64_t tx_bytes, uint64_t msgs);

/// The lowest fee a tx of this size may carry; nullopt when it overflows 64 bits
/// (no such fee can be paid, so the tx is refused as fee_too_low).
std::optional<uint64_t> RequiredFee(const FeeParams& params, uint64_t tx_bytes, uint64_t msgs);

struct FeeSplit {
  uint64_t burned_ugpn = 0;
  uint64_t to_proposer_ugpn = 0;  ///< burned + to_proposer == fee, always
};

/// Splits a charged fee: floor(fee * burn_bp / 10000) burned, the remainder kept.
FeeSplit SplitFee(uint64_t fee_ugpn, uint32_t burn_bp);

}  // namespace gpunet::state
