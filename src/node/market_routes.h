// The node's read-only market endpoints (docs/rpc.md, "Market"): providers with
// their sites and machines, offers with the machine class they sell, orders and
// their bids, leases with what has accrued, and the conservation check.
//
// They read committed state straight from the KvStore through the market's key
// layout (market/keys.h), record decoders (market/records.h) and queries
// (market/query.h: a lease's accrual, an offer's class), so they never
// take the ledger's lock and never see a block that is not yet committed. Each
// list is a page (`limit`, at most kMarketListMax, from the cursor `after`) read
// from an index in id order, the node's (market_index.h) or the state's, so a
// page costs its own records (offers: and their classes, up to kMarketPageReadsMax);
// `next` says where the following page starts.
// /conservation scans the whole state, one request at a time, and answers from a
// cache until the next block; a scan that a block commit overlapped is not
// answered (503, retry), so an answer is always the state of one height. Amounts are integer
// strings in fields ending
// `_ugpn` (architecture §2.1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/mutex.h"
#include "base/result.h"
#include "node/one_at_a_time.h"
#include "server/http_server.h"

namespace gpunet::ledger {
class LedgerApp;
}
namespace gpunet::server::metrics {
class Registry;
}

namespace gpunet::node {

class MarketIndex;

/// Entries one list answer holds at most (`?limit=` may ask for fewer).
inline constexpr size_t kMarketListMax = 1000;
/// Entries a list answer holds when `limit` is not given.
inline constexpr size_t kMarketListDefault = 100;
/// Records one list page may read (its own records, and for offers the
/// provider, sites and machines of each new offer class, up to 1 + 64 + 1,024
/// each): past it the page ends early with `next`, so no request reads more
/// than about this plus one class, whatever its `limit`.
inline constexpr uint64_t kMarketPageReadsMax = 20'000;

/// An answer too costly to make per request (the conservation scan): at most one
/// is made at a time, and it serves every request at the height it was made for.
class OneScanPerHeight {
 public:
  /// The answer for `height` (the current committed height): the cached one, or
  /// made now by `scan`. kUnavailable ("retry") when another call's scan is
  /// running (a request never holds a thread waiting for another's scan), and
  /// when `height_now()` is no longer `height` after the scan: the scan reads
  /// the state without a snapshot, so a block committed during it may have mixed
  /// two heights into one answer, which is never given. An answer given (and
  /// cached) is the state of its one height.
  base::Result<nlohmann::json> Get(uint64_t height, const std::function<nlohmann::json()>& scan,
                                   const std::function<uint64_t()>& height_now)
      EXCLUDES(m_cache_mutex);

 private:
  std::optional<nlohmann::json> Cached(uint64_t height) const EXCLUDES(m_cache_mutex);

  OneAtATime m_scan;  ///< the one scan running
  mutable base::Mutex m_cache_mutex;
  /// height, answer
  std::optional<std::pair<uint64_t, nlohmann::json>> m_cache GUARDED_BY(m_cache_mutex);
};

/// Registers GET /market/... and GET /conservation on `server`, reading `app`'s
/// committed state and `index` (kept up to date by the caller), with their
/// counters in `registry`. All three must outlive the server's handlers.
void RegisterMarketRoutes(server::HttpServer& server, const ledger::LedgerApp& app,
                          const MarketIndex& index, server::metrics::Registry& registry);

}  // namespace gpunet::node
