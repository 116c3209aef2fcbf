// The authenticated state tree: a compact binary sparse Merkle tree over
// BLAKE2b-256 key paths (docs/state-tree.md; hashing and proofs in codec/smt_proof.h).
//
// The state's key/value entries ARE the leaves: leaf = (H(key), H(value)). The
// entries themselves are persisted by the state layer (a KvStore); this class keeps
// the whole node structure in memory (about 150 bytes per key, see
// SparseMerkleTree::MemoryBytes) and is rebuilt from the entries at start-up, which
// gives the same root as the incremental updates that produced them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "codec/smt_proof.h"
#include "state/kv.h"

namespace gpunet::state {

/// One change of a block: key_hash gets value_hash, or is deleted when nullopt.
struct SmtChange {
  base::Hash32 key_hash;
  std::optional<base::Hash32> value_hash;
};

/// The tree changes of a KvStore batch: both sides hashed, sorted by key_hash,
/// ready for SparseMerkleTree::Update.
std::vector<SmtChange> SmtChangesOf(const WriteBatch& batch);

/// Not thread-safe: one writer, no concurrent readers while Update runs. Copyable
/// (a copy is a full snapshot, O(n)); hashes never depend on insertion history.
class SparseMerkleTree {
 public:
  SparseMerkleTree() = default;

  /// A tree holding exactly these leaves, in any order. Refuses two leaves with the
  /// same key_hash (two state keys can only collide that way through a BLAKE2b break).
  static base::Result<SparseMerkleTree> Build(std::vector<codec::SmtLeaf> leaves);

  /// Rebuild after restart: every entry of `kv` in [begin, end) (empty end = to the
  /// end) becomes the leaf (H(key), H(value)).
  static base::Result<SparseMerkleTree> BuildFromKvStore(const KvStore& kv,
                                                         base::ByteSpan begin = {},
                                                         base::ByteSpan end = {});

  /// Applies one block's changes, sorted by strictly increasing key_hash: each node
  /// on a touched path is re-hashed once however many changed keys lie below it.
  /// Deleting an absent key is a no-op. Refuses unsorted or duplicate input before
  /// changing anything.
  base::Status Update(std::span<const SmtChange> sorted_changes);
  /// Convenience for callers holding a map (already sorted and unique).
  base::Status Update(const std::map<base::Hash32, std::optional<base::Hash32>>& changes);
  /// Hashes the batch's keys and values and applies it (SmtChangesOf + Update).
  base::Status Apply(const WriteBatch& batch);

  /// The state root; codec::kSmtEmptyHash for an empty tree.
  base::Hash32 Root() const { return HashOf(m_root); }
  /// The value_hash stored under key_hash, nullopt when absent.
  std::optional<base::Hash32> Get(const base::Hash32& key_hash) const;
  /// A membership proof when key_hash is present, a non-membership proof otherwise;
  /// both check with codec::VerifySmtProof against Root().
  codec::SmtProof Prove(const base::Hash32& key_hash) const;

  /// Number of leaves.
  size_t Size() const { return m_size; }
  /// Heap bytes held by the node arrays (capacity, free slots included).
  size_t MemoryBytes() const;

 private:
  // A node reference: kEmpty, a leaf (kLeafBit | index into m_leaves) or an inner
  // node (index into m_inner). 32-bit indices keep an inner node at 40 bytes.
  using Ref = uint32_t;
  static constexpr Ref kEmpty = 0xffffffffu;
  static constexpr Ref kLeafBit = 0x80000000u;

  struct Inner {
    base::Hash32 hash;
    Ref child[2];
  };
  struct Leaf {
    codec::SmtLeaf leaf;
    base::Hash32 hash;
  };

  static bool IsLeaf(Ref r) { return r != kEmpty && (r & kLeafBit) != 0; }
  static bool IsInner(Ref r) { return (r & kLeafBit) == 0; }
  const base::Hash32& HashOf(Ref r) const;

  Ref NewLeaf(const codec::SmtLeaf& leaf);
  Ref NewInner(Ref left, Ref right);
  void FreeLeaf(Ref r);
  void FreeInner(Ref r);
  // Joins two updated children at `node` (an inner node to reuse, or kEmpty),
  // keeping the compact form: an empty pair is empty, a lone leaf moves up.
  Ref Join(Ref node, Ref left, Ref right);

  Ref BuildSorted(unsigned depth, const codec::SmtLeaf* begin, const codec::SmtLeaf* end);
  Ref UpdateNode(Ref node, unsigned depth, const SmtChange* begin, const SmtChange* end);

  std::vector<Inner> m_inner;
  std::vector<Leaf> m_leaves;
  std::vector<Ref> m_inner_free;
  std::vector<Ref> m_leaf_free;
  Ref m_root = kEmpty;
  size_t m_size = 0;
};

}  // namespace gpunet::state
