// Inclusion proofs over the list Merkle roots (RFC 6962 audit paths).
#include <gtest/gtest.h>

#include "base/clock.h"
#include "codec/hashes.h"
#include "codec/merkle.h"
#include "unit/codec/random_values.h"

namespace gpunet::codec {
namespace {

using base::Bytes;

struct Tree {
  std::vector<Bytes> data;
  std::vector<Hash32> leaves;  // MerkleLeafHash of each data
  Hash32 root;                 // MerkleRoot(data), computed independently of the paths
};

Tree RandomTree(size_t n, uint64_t seed) {
  base::SeededRng rng(seed);
  Tree t;
  for (size_t i = 0; i < n; ++i) {
    Bytes d(1 + rng.Below(40));
    for (auto& b : d) b = static_cast<uint8_t>(rng.Next());
    t.leaves.push_back(MerkleLeafHash(d));
    t.data.push_back(std::move(d));
  }
  t.root = MerkleRoot(t.data);
  return t;
}

TEST(MerkleProof, EveryLeafOfEverySizeVerifies) {
  for (size_t n = 1; n <= 40; ++n) {
    Tree t = RandomTree(n, n);
    for (size_t i = 0; i < n; ++i) {
      auto path = MerkleAuditPath(t.leaves, i);
      EXPECT_LE(path.size(), 6u);  // ceil(log2(40))
      EXPECT_TRUE(VerifyMerkleInclusion(t.leaves[i], i, n, path, t.root)) << n << " " << i;
    }
  }
}

TEST(MerkleProof, WrongLeafIndexCountPathOrRootFails) {
  for (size_t n : {2, 3, 7, 8, 13}) {
    Tree t = RandomTree(n, 100 + n);
    for (size_t i = 0; i < n; ++i) {
      auto path = MerkleAuditPath(t.leaves, i);
      ASSERT_TRUE(VerifyMerkleInclusion(t.leaves[i], i, n, path, t.root)) << i;
      EXPECT_FALSE(VerifyMerkleInclusion(t.leaves[(i + 1) % n], i, n, path, t.root));
      EXPECT_FALSE(VerifyMerkleInclusion(t.leaves[i], (i + 1) % n, n, path, t.root));
      // (A path can also fit some other tree sizes with the same shape on its way up:
      // the count must come from the trusted side, as RFC 9162's tree size does.)
      EXPECT_FALSE(VerifyMerkleInclusion(t.leaves[i], i, i, path, t.root));  // index >= count
      Hash32 bad_root = t.root;
      bad_root[5] ^= 1;
      EXPECT_FALSE(VerifyMerkleInclusion(t.leaves[i], i, n, path, bad_root));
      for (size_t j = 0; j < path.size(); ++j) {
        auto tampered = path;
        tampered[j][0] ^= 0x80;
        EXPECT_FALSE(VerifyMerkleInclusion(t.leaves[i], i, n, tampered, t.root)) << i << " " << j;
      }
      auto longer = path;
      longer.push_back(t.root);
      EXPECT_FALSE(VerifyMerkleInclusion(t.leaves[i], i, n, longer, t.root));
      auto shorter = path;
      shorter.pop_back();
      EXPECT_FALSE(VerifyMerkleInclusion(t.leaves[i], i, n, shorter, t.root));
    }
  }
  // A one-leaf tree: the root is the leaf hash, the path is empty.
  Tree one = RandomTree(1, 9);
  EXPECT_TRUE(MerkleAuditPath(one.leaves, 0).empty());
  EXPECT_TRUE(VerifyMerkleInclusion(one.leaves[0], 0, 1, {}, one.root));
  EXPECT_FALSE(VerifyMerkleInclusion(one.leaves[0], 0, 0, {}, one.root));
}

TEST(MerkleProof, ProvesATxInTheHeaderTxRoot) {
  Block block = testing::Examples::BlockExample();
  testing::RandomValues rv(11);
  for (int i = 0; i < 6; ++i) block.txs.push_back(rv.RandomTx());
  std::vector<Hash32> leaves;
  for (const auto& tx : block.txs) leaves.push_back(MerkleLeafHash(TxHash(tx).Span()));
  Hash32 root = TxRoot(block.txs);
  for (size_t i = 0; i < block.txs.size(); ++i) {
    auto path = MerkleAuditPath(leaves, i);
    EXPECT_TRUE(VerifyMerkleInclusion(MerkleLeafHash(TxHash(block.txs[i]).Span()), i,
                                      block.txs.size(), path, root));
  }
}

}  // namespace
}  // namespace gpunet::codec
