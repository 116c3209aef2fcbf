// The market's rules (architecture §3, docs/market.md): one function per message, the
// end-of-block work (awards -> faults -> expiries) and the app's next deadline.
// Pure: everything comes from the Store, the message, the sender, the chain's market
// parameters (market/params.h, from genesis) and the block's consensus height/time;
// nothing else is read.
#pragma once

#include <optional>
#include <vector>

#include "base/result.h"
#include "codec/tx_result.h"
#include "codec/types.h"
#include "market/params.h"
#include "market/store.h"

namespace gpunet::market {

/// The block a message or end-of-block step executes in.
struct BlockTime {
  uint64_t height = 0;
  uint64_t time_ms = 0;  ///< consensus time
};

/// Ok(nullopt): applied, events appended. Ok(TxError): the message's rule refused
/// (a market code 200..999; the caller rolls the tx's messages back). Error: the
/// store failed or holds bytes that do not decode (operational; the node stops).
using MsgOutcome = base::Result<std::optional<codec::TxError>>;

/// Whether `msg` is a market message (everything but MsgSend).
bool IsMarketMsg(const codec::Msg& msg);

/// Applies one market message sent by `sender` under the chain's `params`.
MsgOutcome ApplyMarketMsg(Store& store, const Params& params, const BlockTime& block,
                          const codec::Address& sender, const codec::Msg& msg,
                          std::vector<codec::Event>& events);

/// End-of-block work, after the block's txs: order awards at window end, then
/// faults (missed starts, missed heartbeats), then expiries (paid_until reached). At
/// most kEndBlockWorkMax items per block; the rest stays in the deadline indexes and
/// is done by the next blocks, each settled at its own deadline (exact accrual).
base::Status EndBlock(Store& store, const Params& params, const BlockTime& block,
                      std::vector<codec::Event>& events);

/// The earliest deadline (consensus ms) in any market index: the app wants a block
/// by then even without txs. nullopt when nothing is pending.
base::Result<std::optional<uint64_t>> NextDeadline(const StoreView& view);

}  // namespace gpunet::market
