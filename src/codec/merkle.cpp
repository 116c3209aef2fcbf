#include "codec/merkle.h"

#include <bit>
#include <vector>

#include "base/check.h"
#include "crypto/hash.h"

namespace gpunet::codec {

namespace {

// RFC 6962 §2.1 MTH over already-hashed leaves: split at the largest power of two
// strictly below n.
base::Hash32 RootOfLeafHashes(std::span<const base::Hash32> leaves) {
  GPUNET_CHECK(!leaves.empty());
  if (leaves.size() == 1) return leaves[0];
  size_t k = std::bit_floor(leaves.size() - 1);
  GPUNET_CHECK(k >= 1);
  GPUNET_CHECK(k < leaves.size());
  return MerkleInnerHash(RootOfLeafHashes(leaves.first(k)), RootOfLeafHashes(leaves.subspan(k)));
}

base::Hash32 EmptyRoot() {
  return crypto::Blake2b256({});
}

}  // namespace

base::Hash32 MerkleLeafHash(base::ByteSpan data) {
  return crypto::Blake2b256Hasher().Update(uint8_t{0x00}).Update(data).Final();
}

base::Hash32 MerkleInnerHash(const base::Hash32& left, const base::Hash32& right) {
  return crypto::Blake2b256Hasher()
      .Update(uint8_t{0x01})
      .Update(left.Span())
      .Update(right.Span())
      .Final();
}

base::Hash32 MerkleRoot(std::span<const base::Bytes> leaves) {
  if (leaves.empty()) return EmptyRoot();
  std::vector<base::Hash32> hashes;
  hashes.reserve(leaves.size());
  for (const auto& leaf : leaves) hashes.push_back(MerkleLeafHash(leaf));
  return RootOfLeafHashes(hashes);
}

base::Hash32 MerkleRootOfHashes(std::span<const base::Hash32> leaves) {
  if (leaves.empty()) return EmptyRoot();
  std::vector<base::Hash32> hashes;
  hashes.reserve(leaves.size());
  for (const auto& leaf : leaves) hashes.push_back(MerkleLeafHash(leaf.Span()));
  return RootOfLeafHashes(hashes);
}

namespace {

void AppendPath(std::span<const base::Hash32> leaves, size_t index,
                std::vector<base::Hash32>& path) {
  if (leaves.size() <= 1) return;
  size_t k = std::bit_floor(leaves.size() - 1);
  if (index < k) {
    AppendPath(leaves.first(k), index, path);
    path.push_back(RootOfLeafHashes(leaves.subspan(k)));
  } else {
    AppendPath(leaves.subspan(k), index - k, path);
    path.push_back(RootOfLeafHashes(leaves.first(k)));
  }
}

}  // namespace

std::vector<base::Hash32> MerkleAuditPath(std::span<const base::Hash32> leaf_hashes, size_t index) {
  GPUNET_CHECK(index < leaf_hashes.size());
  std::vector<base::Hash32> path;
  AppendPath(leaf_hashes, index, path);
  return path;
}

bool VerifyMerkleInclusion(const base::Hash32& leaf_hash, uint64_t index, uint64_t count,
                           std::span<const base::Hash32> path, const base::Hash32& root) {
  if (index >= count) return false;
  uint64_t fn = index;
  uint64_t sn = count - 1;
  base::Hash32 r = leaf_hash;
  for (const auto& p : path) {
    if (sn == 0) return false;  // path longer than the tree is tall
    if ((fn & 1) == 1 || fn == sn) {
      r = MerkleInnerHash(p, r);
      // A right edge node without a sibling: climb to the level where it has one.
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = MerkleInnerHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

}  // namespace gpunet::codec
