// List Merkle roots in the style of RFC 6962 §2.1 (Certificate Transparency), with
// BLAKE2b-256: leaf = H(0x00 || data), inner = H(0x01 || left || right), the empty
// list hashes to H() (BLAKE2b-256 of no bytes), and a list of n > 1 items splits at
// the largest power of two below n. The 0x00/0x01 prefixes keep a leaf from ever
// being mistaken for an inner node (second-preimage safety). Used for the header's
// tx_root, receipts_root and evidence_hash. (The state tree is a different, sparse
// tree: codec/smt_proof.h.)
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/bytes.h"

namespace gpunet::codec {

base::Hash32 MerkleLeafHash(base::ByteSpan data);
base::Hash32 MerkleInnerHash(const base::Hash32& left, const base::Hash32& right);
/// Root over leaves whose data are the given byte strings.
base::Hash32 MerkleRoot(std::span<const base::Bytes> leaves);
/// Root over leaves whose data are the given 32-byte values (each one is hashed as
/// a leaf: H(0x00 || value)).
base::Hash32 MerkleRootOfHashes(std::span<const base::Hash32> leaves);

/// The RFC 6962 §2.1.1 audit path of leaf `index` (< leaf_hashes.size()): the sibling
/// subtree roots from the leaf up. leaf_hashes are MerkleLeafHash values (for tx_root:
/// MerkleLeafHash(tx hash)). With it a client proves a tx or receipt is in a block
/// whose header it trusts, without the other leaves.
std::vector<base::Hash32> MerkleAuditPath(std::span<const base::Hash32> leaf_hashes, size_t index);

/// True when `path` proves that `leaf_hash` is leaf `index` of a `count`-leaf list with
/// this root (RFC 9162 §2.1.3.2). A changed leaf, index, path or root makes it false.
/// `count` must come from the trusted side (the block's tx count): like RFC 9162's tree
/// size it is not proven by the path, which may also fit other sizes of the same shape.
bool VerifyMerkleInclusion(const base::Hash32& leaf_hash, uint64_t index, uint64_t count,
                           std::span<const base::Hash32> path, const base::Hash32& root);

}  // namespace gpunet::codec
