// Proofs of the authenticated state tree and their verifier (docs/state-tree.md).
//
// The tree itself lives in state/smt.h; this half lives in codec so that a client,
// which links only codec and crypto, can check a proof against a state root taken
// from a header whose commit it has verified, without any state-machine code.
//
// The tree is a binary sparse Merkle tree over 256-bit paths in its compact form
// (as in Diem/Aptos Jellyfish): a subtree that holds exactly one leaf is that leaf,
// a subtree that holds none is the empty hash, so a path is about log2(n) deep.
//   key_hash   = BLAKE2b-256(state key)          (the path, bit 0 = MSB of byte 0)
//   value_hash = BLAKE2b-256(state value)
//   leaf       = BLAKE2b-256(0x00 || key_hash || value_hash)
//   inner      = BLAKE2b-256(0x01 || left || right)
//   empty      = 32 zero bytes (no hash is computed for it)
#pragma once

#include <optional>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"

namespace gpunet::codec {

/// A leaf of the tree: where it sits (key_hash) and what it commits to (value_hash).
struct SmtLeaf {
  base::Hash32 key_hash;
  base::Hash32 value_hash;
  auto operator<=>(const SmtLeaf&) const = default;
  bool operator==(const SmtLeaf&) const = default;
};

/// The path from the root toward a key's position, ending at the node found there:
/// the key's own leaf (membership), another leaf whose key_hash shares the path so
/// far (non-membership), or an empty subtree (non-membership, `leaf` is nullopt).
struct SmtProof {
  /// Sibling hashes from the end node up to the root: siblings[0] is the sibling at
  /// depth siblings.size(), the last one is a child of the root. At most
  /// base::limits::kSmtProofSiblingsMax.
  std::vector<base::Hash32> siblings;
  /// The leaf that ends the path, or nullopt when the path ends in an empty subtree.
  std::optional<SmtLeaf> leaf;
  bool operator==(const SmtProof&) const = default;
};

/// The hash of an empty subtree and the root of an empty tree: all zero bytes. A
/// constant rather than a hash so that empty siblings cost nothing to compute.
inline constexpr base::Hash32 kSmtEmptyHash{};

/// Domain-separation prefixes: a leaf can never be mistaken for an inner node.
inline constexpr uint8_t kSmtLeafPrefix = 0x00;
inline constexpr uint8_t kSmtInnerPrefix = 0x01;

/// The path of a state key: BLAKE2b-256 of its bytes.
base::Hash32 SmtKeyHash(base::ByteSpan state_key);
/// What a leaf commits to: BLAKE2b-256 of the value bytes.
base::Hash32 SmtValueHash(base::ByteSpan value);
/// BLAKE2b-256(0x00 || key_hash || value_hash).
base::Hash32 SmtLeafHash(const base::Hash32& key_hash, const base::Hash32& value_hash);
inline base::Hash32 SmtLeafHash(const SmtLeaf& leaf) {
  return SmtLeafHash(leaf.key_hash, leaf.value_hash);
}
/// BLAKE2b-256(0x01 || left || right).
base::Hash32 SmtInnerHash(const base::Hash32& left, const base::Hash32& right);

/// Bit `depth` (0..255) of a path: 0 goes left, 1 goes right; bit 0 is the most
/// significant bit of byte 0, so byte order of key hashes is left-to-right order.
inline bool SmtPathBit(const base::Hash32& key_hash, unsigned depth) {
  return (key_hash.data[depth >> 3] >> (7 - (depth & 7))) & 1;
}

/// Canonical encoding:
///   u8 end_kind        0 = empty subtree, 1 = leaf
///   [32 key_hash][32 value_hash]      only when end_kind = 1
///   LEB128 sibling_count              minimal form, <= kSmtProofSiblingsMax
///   sibling_count x 32-byte hashes    bottom-up, as in SmtProof::siblings
base::Bytes EncodeSmtProof(const SmtProof& proof);

/// Strict decoder: refuses unknown end kinds, truncation, non-minimal or overlong
/// counts, counts over the limit and trailing bytes.
base::Result<SmtProof> DecodeSmtProof(base::ByteSpan bytes);

/// Checks the proof against `root` and says what it proves about `key_hash`: the
/// value_hash stored under it, or nullopt when the key is absent. An error means
/// the proof does not connect the key to this root (tampered, for another key or
/// for another root): trust nothing from it.
base::Result<std::optional<base::Hash32>> VerifySmtProof(const base::Hash32& root,
                                                         const base::Hash32& key_hash,
                                                         const SmtProof& proof);

/// Ok when the proof shows key_hash present in `root` with exactly value_hash.
base::Status VerifySmtMembership(const base::Hash32& root, const base::Hash32& key_hash,
                                 const base::Hash32& value_hash, const SmtProof& proof);

/// Ok when the proof shows key_hash absent from `root`.
base::Status VerifySmtNonMembership(const base::Hash32& root, const base::Hash32& key_hash,
                                    const SmtProof& proof);

}  // namespace gpunet::codec
