// The market reads and writes the application state only through this interface;
// `state` implements it over its block overlay (state/market_store.h), so the rules
// stay pure functions of (state, message, block time) and tests can run them on any
// implementation. Keys are whole application-state keys (market/keys.h).
#pragma once

#include <functional>
#include <optional>

#include "base/bytes.h"
#include "base/result.h"
#include "codec/types.h"

namespace gpunet::market {

/// Visitor for Scan: return false to stop.
using Visitor = std::function<bool(base::ByteSpan key, base::ByteSpan value)>;

/// Read access: what queries, invariant checks and NextDeadline need.
class StoreView {
 public:
  virtual ~StoreView() = default;
  virtual base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const = 0;
  /// Keys in [begin, end) in byte order, as the block sees them (pending writes
  /// included); an empty end means "to the end".
  virtual base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                            const Visitor& visit) const = 0;
  /// The account (a zero account when none is stored).
  virtual base::Result<codec::Account> GetAccount(const codec::Address& address) const = 0;
};

/// The parts of the end-of-block work, in the order they run in a block.
enum class EndBlockSection { kAwards, kFaults, kExpiries };

/// Read-write access for message rules and end-of-block work.
class Store : public StoreView {
 public:
  virtual void Put(base::Bytes key, base::Bytes value) = 0;
  virtual void Delete(base::Bytes key) = 0;
  virtual void PutAccount(const codec::Address& address, const codec::Account& account) = 0;
  /// Whether `section` may start another item: false once it has used its share
  /// of the end-of-block gas budget (state/market_store.h, EndBlockBudget). EndBlock
  /// then leaves that section's due items in their indexes for the next blocks.
  /// Asked for the sections in their order within a block.
  virtual bool EndBlockBudgetLeft(EndBlockSection /*section*/) const { return true; }
};

}  // namespace gpunet::market
