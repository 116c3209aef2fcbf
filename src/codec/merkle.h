// List Merkle roots in the style of RFC 6962 §2.1 (Certificate Transparency), with
// BLAKE2b-256: leaf = H(0x00 || data), inner = H(0x01 || left || right), the empty
// list hashes to H() (BLAKE2b-256 of no bytes), and a list of n > 1 items splits at
// the largest power of two below n. The 0x00/0x01 prefixes keep a leaf from ever
// being mistaken for an inner node (second-preimage safety). Used for the header's
// tx_root, receipts_root and evidence_hash. (The state tree is a different, sparse
// tree: codec/smt_proof.h.)
#pragma once

#include <span>

#include "base/bytes.h"

namespace gpunet::codec {

base::Hash32 MerkleLeafHash(base::ByteSpan data);
base::Hash32 MerkleInnerHash(const base::Hash32& left, const base::Hash32& right);
/// Root over leaves whose data are the given byte strings.
base::Hash32 MerkleRoot(std::span<const base::Bytes> leaves);
/// Root over leaves whose data are the given 32-byte values (each one is hashed as
/// a leaf: H(0x00 || value)).
base::Hash32 MerkleRootOfHashes(std::span<const base::Hash32> leaves);

}  // namespace gpunet::codec
