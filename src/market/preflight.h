// The market's stateless checks (docs/market.md "Preflight", architecture §2.5): what a
// market message can be judged on without reading the ledger — zero or over-limit
// counts, zero prices and amounts, payout splits that do not sum to kPayoutBpTotal,
// ids that no record can have, a bid window out of range, a deposit under the
// minimum for the message's own price, a registration bonding less than the minimum. As rippled's
// preflight, it runs before inclusion: state::CheckStateless calls it for every market message, so
// such a tx is refused (no fee, no nonce change) and a block holding one is refused like a block
// with a bad signature. ApplyMarketMsg calls it first too, so the rule lives here once.
// What the decoder already refuses (unsorted sets, unknown enum values, lists over
// their limits) is not repeated.
#pragma once

#include <cstdint>

#include "codec/tx_result.h"
#include "codec/types.h"
#include "market/params.h"

namespace gpunet::market {

/// Ok, or the refusal of a malformed market message with the same code the market's
/// rules return for it (kMarketInvalidField, kMarketZeroAmount, kMarketBadSplits, ...).
/// `msg` must be a market message (IsMarketMsg). Pure: reads only the message, the
/// chain's market parameters and the constants of base/limits.h.
[[nodiscard]] codec::TxResult<void> Preflight(const codec::Msg& msg, const Params& params);

/// The rate of `machines` x `gpus_per_machine` GPUs at `price` per GPU-hour, or
/// kMarketAmountOverflow when it does not fit in 64 bits. Shared with the rules,
/// which price a lease from an offer's stored price.
[[nodiscard]] codec::TxResult<uint64_t> RateFor(uint64_t price_ugpn_per_gpu_hour, uint64_t machines,
                                                uint64_t gpus_per_machine);

/// Ok when `deposit_ugpn` covers deposit_min_hours at `rate_ugpn_per_hour`, else
/// kMarketDepositTooLow.
[[nodiscard]] codec::TxResult<void> RequireDeposit(uint64_t deposit_ugpn,
                                                   uint64_t rate_ugpn_per_hour,
                                                   const Params& params);

}  // namespace gpunet::market
