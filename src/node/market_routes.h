// The node's read-only market endpoints (docs/rpc.md, "Market"): providers with
// their sites and machines, offers with the machine class they sell, orders and
// their bids, leases with what has accrued, and the conservation check.
//
// They read committed state straight from the KvStore through the market's key
// layout (market/keys.h) and record decoders (market/records.h), so they never
// take the ledger's lock and never see a block that is not yet committed. Each
// list is bounded (`limit`, at most kMarketListMax) and says when it was cut.
// Amounts are integer strings in fields ending `_ugpn` (design §2).
#pragma once

#include <cstddef>

#include "node/http_server.h"

namespace gpunet::ledger {
class LedgerApp;
}

namespace gpunet::node {

/// Entries one list answer holds at most (`?limit=` may ask for fewer).
inline constexpr size_t kMarketListMax = 1000;
/// Entries a list answer holds when `limit` is not given.
inline constexpr size_t kMarketListDefault = 100;

/// Registers GET /market/... and GET /conservation on `server`, reading `app`'s
/// committed state. `app` must outlive the server's handlers.
void RegisterMarketRoutes(HttpServer& server, const ledger::LedgerApp& app);

}  // namespace gpunet::node
