// The node's own RPC routes (docs/rpc.md): GET /status, /tx/<hash>, /account/<addr>,
// /block/<height>, /metrics, POST /tx and /tx/simulate. The read-only GETs below
// reach only the ledger and the mempool; POST /tx and /tx/simulate are Node::Impl's
// (node_impl.h, defined in rpc_routes.cpp), as they admit txs, wake the engine and
// hold waiters. The market's routes are market_routes.h's.
#pragma once

#include <string>

#include "ledger/app.h"
#include "mempool/mempool.h"
#include "server/messages.h"

namespace gpunet::node {

/// The node's version string, as GET /status reports it.
inline constexpr const char* kNodeVersion = "gpunet 0.1.0";

/// GET /status: the chain's head, the mempool's size and the fees.
server::Response StatusResponse(const ledger::LedgerApp& app, const mempool::Mempool& pool,
                                const std::string& engine);
/// GET /tx/<hash>: a committed tx with its receipt (404 when pending or unknown).
server::Response TxResponse(const ledger::LedgerApp& app, const mempool::Mempool& pool,
                            const server::Request& req);
/// GET /account/<address>[?prove=true]: balance and nonce, with a proof when asked.
server::Response AccountResponse(const ledger::LedgerApp& app, const server::Request& req);
/// GET /block/<height>|latest: the header, tx hashes and receipts.
server::Response BlockResponse(const ledger::LedgerApp& app, const server::Request& req);

}  // namespace gpunet::node
