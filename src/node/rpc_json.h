// The JSON the node's RPC answers carry for chain records (docs/rpc.md): txs,
// receipts, headers, events, and the answers about one tx (committed, refused).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "codec/tx_result.h"
#include "codec/types.h"
#include "ledger/block_store.h"
#include "market/params.h"
#include "server/messages.h"

namespace gpunet::node {

/// A ugpn amount as JSON carries it: a decimal string (JSON numbers lose
/// precision past 2^53 in many clients).
std::string U64(uint64_t v);

/// A receipt's code by name ("code_<n>" for one this build does not know).
std::string CodeName(uint16_t code);

nlohmann::json EventsJson(const std::vector<codec::Event>& events);
nlohmann::json ReceiptJson(const codec::Receipt& r);
nlohmann::json TxJson(const codec::Tx& tx);
nlohmann::json HeaderJson(const codec::BlockHeader& h);
/// The chain's market rules (GET /status "market_params"): one member per
/// market::kParamFields, amounts as U64 strings, the rest as JSON numbers.
nlohmann::json MarketParamsJson(const market::Params& params);

/// 400 "tx_rejected" with the tx's code, and its hash unless zero.
server::Response TxRejected(codec::TxCode code, const std::string& message,
                            const base::Hash32& hash);
/// The answer about a tx in a committed block (POST /tx with "wait":"committed", or a
/// resubmitted tx that is already in one).
server::Response CommittedResponse(const ledger::TxRecord& rec);

}  // namespace gpunet::node
