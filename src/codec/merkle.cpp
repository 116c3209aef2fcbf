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
  GPUNET_CHECK(k >= 1 && k < leaves.size());
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

}  // namespace gpunet::codec
