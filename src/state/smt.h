// The authenticated state tree: a compact binary sparse Merkle tree over
// BLAKE2b-256 key paths (docs/state-tree.md; hashing and proofs in codec/smt_proof.h).
//
// The state's key/value entries ARE the leaves: leaf = (H(key), H(value)). The
// entries themselves are persisted by the state layer (a KvStore); this class keeps
// the whole node structure in memory (about 140 bytes per key, see
// SparseMerkleTree::MemoryBytes) and is rebuilt from the entries at start-up, which
// gives the same root as the incremental updates that produced them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
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
  /// changing anything. When `previous` is given it receives, for each change in
  /// order, the value hash its key held before (nullopt: absent): the change set
  /// that undoes this one, read on the way down instead of by a Get per key.
  base::Status Update(std::span<const SmtChange> sorted_changes,
                      std::vector<SmtChange>* previous = nullptr);
  /// Convenience for callers holding a map (already sorted and unique).
  base::Status Update(const std::map<base::Hash32, std::optional<base::Hash32>>& changes);
  /// Hashes the batch's keys and values and applies it (SmtChangesOf + Update).
  base::Status Apply(const WriteBatch& batch);

  /// The state root; codec::kSmtEmptyHash for an empty tree.
  const base::Hash32& Root() const { return m_root.hash; }
  /// The value_hash stored under key_hash, nullopt when absent.
  std::optional<base::Hash32> Get(const base::Hash32& key_hash) const;
  /// A membership proof when key_hash is present, a non-membership proof otherwise;
  /// both check with codec::VerifySmtProof against Root().
  codec::SmtProof Prove(const base::Hash32& key_hash) const;

  /// Number of leaves.
  size_t Size() const { return m_size; }
  /// Heap bytes held by the node pages and free lists (free slots included).
  size_t MemoryBytes() const;

 private:
  // A node reference: kEmpty, a leaf (kLeafBit | index into m_leaves) or an inner
  // node (index into m_inner).
  using Ref = uint32_t;
  static constexpr Ref kEmpty = 0xffffffffu;
  static constexpr Ref kLeafBit = 0x80000000u;

  // An inner node keeps its children's hashes, not its own: re-hashing a path then
  // reads only the nodes on it, never the siblings (one cache miss per level, not
  // two), and a leaf needs no stored hash. 72 + 64 bytes per key in all.
  struct Inner {
    base::Hash32 hash[2];
    Ref child[2];
  };

  // Fixed-size pages instead of one vector: growing never copies the tree (no
  // pause of a whole-tree copy inside a block) and indices stay valid.
  template <class T>
  class Arena {
   public:
    static constexpr uint32_t kPageBits = 10;
    static constexpr uint32_t kPageSize = 1u << kPageBits;
    T& operator[](Ref i) { return m_pages[i >> kPageBits][i & (kPageSize - 1)]; }
    const T& operator[](Ref i) const { return m_pages[i >> kPageBits][i & (kPageSize - 1)]; }
    Ref Add(const T& value);
    void Free(Ref i) { m_free.push_back(i); }
    void Reserve(size_t n);
    size_t Bytes() const {
      return m_pages.size() * kPageSize * sizeof(T) + m_free.capacity() * sizeof(Ref);
    }
    Arena() = default;
    Arena(const Arena& other);
    Arena& operator=(const Arena& other);
    Arena(Arena&&) noexcept = default;
    Arena& operator=(Arena&&) noexcept = default;

   private:
    std::vector<std::unique_ptr<T[]>> m_pages;
    std::vector<Ref> m_free;
    uint32_t m_used = 0;  // slots handed out from the pages, freed ones included
  };

  struct Node {
    Ref ref = kEmpty;
    base::Hash32 hash{};
  };

  static bool IsLeaf(Ref r) { return r != kEmpty && (r & kLeafBit) != 0; }
  static bool IsInner(Ref r) { return (r & kLeafBit) == 0; }

  // The value hash under key_hash in the subtree `cur` at `depth`.
  std::optional<base::Hash32> Find(Ref cur, unsigned depth, const base::Hash32& key_hash) const;
  Node NewLeaf(const codec::SmtLeaf& leaf);
  // Joins two updated children at `node` (an inner node to reuse, or kEmpty),
  // keeping the compact form: an empty pair is empty, a lone leaf moves up.
  Node Join(Ref node, const Node& left, const Node& right);
  Node BuildSorted(unsigned depth, const codec::SmtLeaf* begin, const codec::SmtLeaf* end);
  Node UpdateNode(const Node& node, unsigned depth, const SmtChange* begin, const SmtChange* end);

  Arena<Inner> m_inner;
  Arena<codec::SmtLeaf> m_leaves;
  Node m_root;
  size_t m_size = 0;
  std::vector<SmtChange>* m_previous = nullptr;  // Update's `previous`, during Update
  // What an Update did to the leaves, for its postconditions.
  struct Tally {
    size_t added = 0;    // keys that were absent and now hold a value
    size_t removed = 0;  // keys that held a value and are gone
    size_t changed = 0;  // keys whose value (or absence) changed
  };
  Tally m_tally;
};

}  // namespace gpunet::state
