// StateDb::Scan: the block's pending writes merged over the committed store, in
// key order, deletions hidden, ranges and early stops honoured. The market's first
// fit, awards and deadline indexes rely on exactly this view.
#include <gtest/gtest.h>

#include <optional>
#include <tuple>
#include <vector>

#include "state/state_db.h"

namespace gpunet::state {
namespace {

base::Bytes K(uint8_t b) {
  return base::Bytes{0x01, b};
}
base::Bytes V(uint8_t b) {
  return base::Bytes{b};
}

std::vector<std::pair<base::Bytes, base::Bytes>> All(const StateDb& db, base::Bytes begin,
                                                     base::Bytes end, size_t max = 100) {
  std::vector<std::pair<base::Bytes, base::Bytes>> out;
  auto s = db.Scan(begin, end, [&](base::ByteSpan k, base::ByteSpan v) {
    out.emplace_back(base::Bytes(k.begin(), k.end()), base::Bytes(v.begin(), v.end()));
    return out.size() < max;
  });
  EXPECT_TRUE(s);
  return out;
}

TEST(StateDbScan, PendingWritesMergeOverCommittedInKeyOrder) {
  MemoryKvStore kv;
  WriteBatch batch;
  for (uint8_t b : {2, 4, 6, 8}) batch.Put(K(b), V(b));
  ASSERT_TRUE(kv.Commit(batch));
  StateDb db(kv);
  db.Put(K(1), V(11));  // before every committed key
  db.Put(K(4), V(44));  // overrides
  db.Delete(K(6));      // hides
  db.Put(K(7), V(77));  // between
  db.Put(K(9), V(99));  // after
  using P = std::pair<base::Bytes, base::Bytes>;
  EXPECT_EQ(
      All(db, K(0), K(0xff)),
      (std::vector<P>{
          {K(1), V(11)}, {K(2), V(2)}, {K(4), V(44)}, {K(7), V(77)}, {K(8), V(8)}, {K(9), V(99)}}));
  EXPECT_EQ(All(db, K(3), K(8)), (std::vector<P>{{K(4), V(44)}, {K(7), V(77)}}));
  EXPECT_EQ(All(db, K(0), K(0xff), 3).size(), 3u);  // the visitor stops the scan
  EXPECT_EQ(All(db, K(0), {}).size(), 6u);          // empty end: to the end
  // Rolling back restores the committed view.
  size_t cp = db.Checkpoint();
  db.Delete(K(2));
  db.Put(K(5), V(55));
  EXPECT_EQ(All(db, K(0), K(0xff)).size(), 6u);
  db.RevertTo(cp);
  EXPECT_EQ(All(db, K(0), K(0xff)).size(), 6u);
  EXPECT_EQ(All(db, K(2), K(3)), (std::vector<P>{{K(2), V(2)}}));
}

// ForEachChange: what the ledger's per-block check reads (architecture §2.9) —
// every key the block changed, in key order, with the committed value as "before";
// a key written back to its committed value is no change.
TEST(StateDbChanges, ListsChangedKeysWithTheirCommittedValues) {
  MemoryKvStore kv;
  WriteBatch batch;
  for (uint8_t b : {2, 4, 6}) batch.Put(K(b), V(b));
  ASSERT_TRUE(kv.Commit(batch));
  StateDb db(kv);
  db.Put(K(4), V(44));  // changed
  db.Delete(K(6));      // deleted
  db.Put(K(5), V(55));  // new
  db.Put(K(2), V(22));
  db.Put(K(2), V(2));  // written back: no change
  db.Delete(K(9));     // deleting an absent key: no change
  using Opt = std::optional<base::Bytes>;
  std::vector<std::tuple<base::Bytes, Opt, Opt>> seen;
  ASSERT_TRUE(db.ForEachChange([&](base::ByteSpan k, const Opt& before, const Opt& after) {
    seen.emplace_back(base::Bytes(k.begin(), k.end()), before, after);
    return true;
  }));
  using T = std::tuple<base::Bytes, Opt, Opt>;
  EXPECT_EQ(seen, (std::vector<T>{T{K(4), V(4), V(44)}, T{K(5), std::nullopt, V(55)},
                                  T{K(6), V(6), std::nullopt}}));
  EXPECT_EQ(db.UnmeteredOps(), 6u);  // the six writes: listing counts no operation
  // The visitor stops it.
  size_t visited = 0;
  ASSERT_TRUE(db.ForEachChange([&](base::ByteSpan, const Opt&, const Opt&) {
    ++visited;
    return false;
  }));
  EXPECT_EQ(visited, 1u);
}

}  // namespace
}  // namespace gpunet::state
