#include "state/smt.h"

#include <algorithm>
#include <string>

#include "base/check.h"

namespace gpunet::state {

using base::ErrorCode;
using base::Fail;
using base::Hash32;
using codec::SmtLeaf;
using codec::SmtPathBit;

namespace {
constexpr unsigned kPathBits = 256;
}  // namespace

std::vector<SmtChange> SmtChangesOf(const WriteBatch& batch) {
  std::vector<SmtChange> changes;
  changes.reserve(batch.Size());
  for (const auto& [key, value] : batch.Ops()) {
    SmtChange c{codec::SmtKeyHash(key), std::nullopt};
    if (value) c.value_hash = codec::SmtValueHash(*value);
    changes.push_back(c);
  }
  std::sort(changes.begin(), changes.end(),
            [](const SmtChange& a, const SmtChange& b) { return a.key_hash < b.key_hash; });
  return changes;
}

base::Result<SparseMerkleTree> SparseMerkleTree::Build(std::vector<SmtLeaf> leaves) {
  std::sort(leaves.begin(), leaves.end());
  for (size_t i = 1; i < leaves.size(); ++i) {
    if (leaves[i].key_hash == leaves[i - 1].key_hash)
      return Fail(ErrorCode::kAlreadyExists, "state tree: two leaves with key hash " +
                                                 base::ToHex(leaves[i].key_hash) +
                                                 "; each key may appear once");
  }
  SparseMerkleTree tree;
  // A compact tree of n >= 1 leaves has n - 1 branching inner nodes plus a few
  // single-child ones where keys share long prefixes.
  tree.m_leaves.Reserve(leaves.size());
  tree.m_inner.Reserve(leaves.size());
  tree.m_root = tree.BuildSorted(0, leaves.data(), leaves.data() + leaves.size());
  tree.m_size = leaves.size();
  GPUNET_CHECK((tree.m_root.ref == kEmpty) == leaves.empty());
  return tree;
}

base::Result<SparseMerkleTree> SparseMerkleTree::BuildFromKvStore(const KvStore& kv,
                                                                  base::ByteSpan begin,
                                                                  base::ByteSpan end) {
  std::vector<SmtLeaf> leaves;
  auto scanned = kv.Scan(begin, end, [&](base::ByteSpan key, base::ByteSpan value) {
    leaves.push_back(SmtLeaf{codec::SmtKeyHash(key), codec::SmtValueHash(value)});
    return true;
  });
  if (!scanned) return base::Wrap(scanned.error(), "rebuilding the state tree");
  return Build(std::move(leaves));
}

base::Status SparseMerkleTree::Update(std::span<const SmtChange> sorted_changes,
                                      std::vector<SmtChange>* previous) {
  for (size_t i = 1; i < sorted_changes.size(); ++i) {
    if (!(sorted_changes[i - 1].key_hash < sorted_changes[i].key_hash))
      return Fail(
          ErrorCode::kInvalidArgument,
          "state tree update: changes must be sorted by strictly increasing key hash; entry " +
              std::to_string(i) + " (" + base::ToHex(sorted_changes[i].key_hash) +
              ") is not after the one before it");
  }
  if (previous != nullptr) previous->reserve(previous->size() + sorted_changes.size());
  if (sorted_changes.empty()) return base::Ok();
  const Hash32 root_before = m_root.hash;
  const size_t size_before = m_size;
  const size_t previous_before = previous != nullptr ? previous->size() : 0;
  m_previous = previous;
  m_tally = {};
  m_root =
      UpdateNode(m_root, 0, sorted_changes.data(), sorted_changes.data() + sorted_changes.size());
  m_previous = nullptr;
  // Postconditions (each changed key holds its new value or is gone: UpdateNode,
  // where it rebuilds the small subtree; a Get per key from the root here would
  // cost a fifth of the update): the size moved by the keys added and removed,
  // the root moved iff some value did, `previous` got one entry per change.
  GPUNET_CHECK(m_size + m_tally.removed == size_before + m_tally.added);
  GPUNET_CHECK((m_root.hash != root_before) == (m_tally.changed > 0));
  GPUNET_CHECK(previous == nullptr || previous->size() == previous_before + sorted_changes.size());
  return base::Ok();
}

base::Status SparseMerkleTree::Update(const std::map<Hash32, std::optional<Hash32>>& changes) {
  std::vector<SmtChange> list;
  list.reserve(changes.size());
  for (const auto& [key_hash, value_hash] : changes)
    list.push_back(SmtChange{key_hash, value_hash});
  return Update(list);
}

base::Status SparseMerkleTree::Apply(const WriteBatch& batch) {
  return Update(SmtChangesOf(batch));
}

std::optional<Hash32> SparseMerkleTree::Get(const Hash32& key_hash) const {
  return Find(m_root.ref, 0, key_hash);
}

std::optional<Hash32> SparseMerkleTree::Find(Ref cur, unsigned depth,
                                             const Hash32& key_hash) const {
  for (; IsInner(cur); ++depth) {
    GPUNET_CHECK(depth < kPathBits);
    cur = m_inner[cur].child[SmtPathBit(key_hash, depth)];
  }
  if (!IsLeaf(cur)) return std::nullopt;
  const SmtLeaf& leaf = m_leaves[cur & ~kLeafBit];
  if (leaf.key_hash != key_hash) return std::nullopt;
  return leaf.value_hash;
}

codec::SmtProof SparseMerkleTree::Prove(const Hash32& key_hash) const {
  codec::SmtProof proof;
  Ref cur = m_root.ref;
  for (unsigned depth = 0; IsInner(cur); ++depth) {
    GPUNET_CHECK(depth < kPathBits);
    bool bit = SmtPathBit(key_hash, depth);
    const Inner& inner = m_inner[cur];
    proof.siblings.push_back(inner.hash[!bit]);
    cur = inner.child[bit];
  }
  if (IsLeaf(cur)) proof.leaf = m_leaves[cur & ~kLeafBit];
  std::reverse(proof.siblings.begin(), proof.siblings.end());  // bottom-up
  return proof;
}

size_t SparseMerkleTree::MemoryBytes() const {
  return m_inner.Bytes() + m_leaves.Bytes();
}

template <class T>
SparseMerkleTree::Ref SparseMerkleTree::Arena<T>::Add(const T& value) {
  if (!m_free.empty()) {
    Ref i = m_free.back();
    m_free.pop_back();
    (*this)[i] = value;
    return i;
  }
  GPUNET_CHECK(m_used < kLeafBit - 1);  // refs keep the top bit for the leaf tag
  if (m_used == m_pages.size() * kPageSize) m_pages.push_back(std::make_unique<T[]>(kPageSize));
  Ref i = m_used++;
  (*this)[i] = value;
  return i;
}

template <class T>
void SparseMerkleTree::Arena<T>::Reserve(size_t n) {
  m_pages.reserve((n + kPageSize - 1) / kPageSize);
}

template <class T>
SparseMerkleTree::Arena<T>::Arena(const Arena& other) : m_free(other.m_free), m_used(other.m_used) {
  m_pages.reserve(other.m_pages.size());
  for (const auto& page : other.m_pages) {
    m_pages.push_back(std::make_unique<T[]>(kPageSize));
    std::copy(page.get(), page.get() + kPageSize, m_pages.back().get());
  }
}

template <class T>
SparseMerkleTree::Arena<T>& SparseMerkleTree::Arena<T>::operator=(const Arena& other) {
  if (this != &other) *this = Arena(other);
  return *this;
}

SparseMerkleTree::Node SparseMerkleTree::NewLeaf(const SmtLeaf& leaf) {
  return Node{m_leaves.Add(leaf) | kLeafBit, codec::SmtLeafHash(leaf)};
}

SparseMerkleTree::Node SparseMerkleTree::Join(Ref node, const Node& left, const Node& right) {
  bool collapses = (left.ref == kEmpty && right.ref == kEmpty) ||
                   (left.ref == kEmpty && IsLeaf(right.ref)) ||
                   (right.ref == kEmpty && IsLeaf(left.ref));
  if (collapses) {
    if (node != kEmpty) m_inner.Free(node);
    return left.ref == kEmpty ? right : left;
  }
  Inner inner{{left.hash, right.hash}, {left.ref, right.ref}};
  if (node == kEmpty)
    node = m_inner.Add(inner);
  else
    m_inner[node] = inner;
  return Node{node, codec::SmtInnerHash(left.hash, right.hash)};
}

SparseMerkleTree::Node SparseMerkleTree::BuildSorted(unsigned depth, const SmtLeaf* begin,
                                                     const SmtLeaf* end) {
  if (begin == end) return Node{};
  if (end - begin == 1) return NewLeaf(*begin);
  // Two distinct 256-bit paths part before the last bit, so depth stays < 256.
  GPUNET_CHECK(depth < kPathBits);
  const SmtLeaf* mid = std::partition_point(
      begin, end, [depth](const SmtLeaf& l) { return !SmtPathBit(l.key_hash, depth); });
  Node left = BuildSorted(depth + 1, begin, mid);
  Node right = BuildSorted(depth + 1, mid, end);
  // Compact form: a subtree of two or more leaves is never a leaf.
  Node joined = Join(kEmpty, left, right);
  GPUNET_CHECK(IsInner(joined.ref));
  return joined;
}

SparseMerkleTree::Node SparseMerkleTree::UpdateNode(const Node& node, unsigned depth,
                                                    const SmtChange* begin, const SmtChange* end) {
  if (begin == end) return node;
  GPUNET_CHECK(depth <= kPathBits);

  if (!IsInner(node.ref)) {
    std::optional<SmtLeaf> existing;
    if (node.ref != kEmpty) existing = m_leaves[node.ref & ~kLeafBit];
    // The changes reaching this leaf or empty slot, in order: only `existing` can
    // have held a value for any of them.
    for (const SmtChange* c = begin; c != end; ++c) {
      const std::optional<Hash32> before = existing && existing->key_hash == c->key_hash
                                               ? std::optional<Hash32>(existing->value_hash)
                                               : std::nullopt;
      m_tally.added += !before && c->value_hash;
      m_tally.removed += before && !c->value_hash;
      m_tally.changed += before != c->value_hash;
      if (m_previous != nullptr) m_previous->push_back(SmtChange{c->key_hash, before});
    }
    if (node.ref != kEmpty) {
      Ref index = node.ref & ~kLeafBit;
      // The common case of a block: one existing account changes value.
      if (end - begin == 1 && begin->key_hash == existing->key_hash) {
        if (!begin->value_hash) {
          m_leaves.Free(index);
          --m_size;
          return Node{};
        }
        SmtLeaf& leaf = m_leaves[index];
        leaf.value_hash = *begin->value_hash;
        return Node{node.ref, codec::SmtLeafHash(leaf)};
      }
      m_leaves.Free(index);
      --m_size;
    }
    // Merge the (at most one) existing leaf with the changes, both sorted, then
    // build the small subtree they form.
    std::vector<SmtLeaf> merged;
    merged.reserve(static_cast<size_t>(end - begin) + 1);
    for (const SmtChange* c = begin; c != end; ++c) {
      if (existing && existing->key_hash < c->key_hash) {
        merged.push_back(*existing);
        existing.reset();
      }
      if (existing && existing->key_hash == c->key_hash) existing.reset();  // replaced or deleted
      if (c->value_hash) merged.push_back(SmtLeaf{c->key_hash, *c->value_hash});
    }
    if (existing) merged.push_back(*existing);
    m_size += merged.size();
    const Node built = BuildSorted(depth, merged.data(), merged.data() + merged.size());
    // Postcondition: each change is in the new subtree (a few nodes) as asked.
    for (const SmtChange* c = begin; c != end; ++c)
      GPUNET_CHECK(Find(built.ref, depth, c->key_hash) == c->value_hash);
    return built;
  }

  GPUNET_CHECK(depth < kPathBits);
  const SmtChange* mid = std::partition_point(
      begin, end, [depth](const SmtChange& c) { return !SmtPathBit(c.key_hash, depth); });
  // Copy the node before recursing: the recursion reuses freed slots.
  const Inner inner = m_inner[node.ref];
  Node left = UpdateNode(Node{inner.child[0], inner.hash[0]}, depth + 1, begin, mid);
  Node right = UpdateNode(Node{inner.child[1], inner.hash[1]}, depth + 1, mid, end);
  return Join(node.ref, left, right);
}

}  // namespace gpunet::state
