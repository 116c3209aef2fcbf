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
  tree.m_leaves.reserve(leaves.size());
  tree.m_inner.reserve(leaves.size());
  tree.m_root = tree.BuildSorted(0, leaves.data(), leaves.data() + leaves.size());
  tree.m_size = leaves.size();
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

base::Status SparseMerkleTree::Update(std::span<const SmtChange> sorted_changes) {
  for (size_t i = 1; i < sorted_changes.size(); ++i) {
    if (!(sorted_changes[i - 1].key_hash < sorted_changes[i].key_hash))
      return Fail(
          ErrorCode::kInvalidArgument,
          "state tree update: changes must be sorted by strictly increasing key hash; entry " +
              std::to_string(i) + " (" + base::ToHex(sorted_changes[i].key_hash) +
              ") is not after the one before it");
  }
  if (sorted_changes.empty()) return base::Ok();
  m_root =
      UpdateNode(m_root, 0, sorted_changes.data(), sorted_changes.data() + sorted_changes.size());
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
  Ref cur = m_root;
  for (unsigned depth = 0; IsInner(cur); ++depth) {
    GPUNET_CHECK(depth < kPathBits);
    cur = m_inner[cur].child[SmtPathBit(key_hash, depth)];
  }
  if (!IsLeaf(cur)) return std::nullopt;
  const SmtLeaf& leaf = m_leaves[cur & ~kLeafBit].leaf;
  if (leaf.key_hash != key_hash) return std::nullopt;
  return leaf.value_hash;
}

codec::SmtProof SparseMerkleTree::Prove(const Hash32& key_hash) const {
  codec::SmtProof proof;
  Ref cur = m_root;
  for (unsigned depth = 0; IsInner(cur); ++depth) {
    GPUNET_CHECK(depth < kPathBits);
    bool bit = SmtPathBit(key_hash, depth);
    proof.siblings.push_back(HashOf(m_inner[cur].child[!bit]));
    cur = m_inner[cur].child[bit];
  }
  if (IsLeaf(cur)) proof.leaf = m_leaves[cur & ~kLeafBit].leaf;
  std::reverse(proof.siblings.begin(), proof.siblings.end());  // bottom-up
  return proof;
}

size_t SparseMerkleTree::MemoryBytes() const {
  return m_inner.capacity() * sizeof(Inner) + m_leaves.capacity() * sizeof(Leaf) +
         (m_inner_free.capacity() + m_leaf_free.capacity()) * sizeof(Ref);
}

const Hash32& SparseMerkleTree::HashOf(Ref r) const {
  if (r == kEmpty) return codec::kSmtEmptyHash;
  if (r & kLeafBit) return m_leaves[r & ~kLeafBit].hash;
  return m_inner[r].hash;
}

SparseMerkleTree::Ref SparseMerkleTree::NewLeaf(const SmtLeaf& leaf) {
  Leaf node{leaf, codec::SmtLeafHash(leaf)};
  Ref index;
  if (!m_leaf_free.empty()) {
    index = m_leaf_free.back();
    m_leaf_free.pop_back();
    m_leaves[index] = node;
  } else {
    GPUNET_CHECK(m_leaves.size() < kLeafBit);
    index = static_cast<Ref>(m_leaves.size());
    m_leaves.push_back(node);
  }
  return index | kLeafBit;
}

SparseMerkleTree::Ref SparseMerkleTree::NewInner(Ref left, Ref right) {
  // Compact form: an inner node always has at least two leaves below it.
  GPUNET_CHECK(!(left == kEmpty && right == kEmpty));
  GPUNET_CHECK(IsInner(left) || IsInner(right) || (IsLeaf(left) && IsLeaf(right)));
  Inner node{codec::SmtInnerHash(HashOf(left), HashOf(right)), {left, right}};
  Ref index;
  if (!m_inner_free.empty()) {
    index = m_inner_free.back();
    m_inner_free.pop_back();
    m_inner[index] = node;
  } else {
    GPUNET_CHECK(m_inner.size() < kLeafBit - 1);
    index = static_cast<Ref>(m_inner.size());
    m_inner.push_back(node);
  }
  return index;
}

void SparseMerkleTree::FreeLeaf(Ref r) {
  GPUNET_CHECK(IsLeaf(r));
  m_leaf_free.push_back(r & ~kLeafBit);
}

void SparseMerkleTree::FreeInner(Ref r) {
  GPUNET_CHECK(IsInner(r));
  m_inner_free.push_back(r);
}

SparseMerkleTree::Ref SparseMerkleTree::Join(Ref node, Ref left, Ref right) {
  bool collapses = (left == kEmpty && right == kEmpty) || (left == kEmpty && IsLeaf(right)) ||
                   (right == kEmpty && IsLeaf(left));
  if (collapses) {
    if (node != kEmpty) FreeInner(node);
    return left == kEmpty ? right : left;
  }
  if (node == kEmpty) return NewInner(left, right);
  Inner& inner = m_inner[node];
  inner.child[0] = left;
  inner.child[1] = right;
  inner.hash = codec::SmtInnerHash(HashOf(left), HashOf(right));
  return node;
}

SparseMerkleTree::Ref SparseMerkleTree::BuildSorted(unsigned depth, const SmtLeaf* begin,
                                                    const SmtLeaf* end) {
  if (begin == end) return kEmpty;
  if (end - begin == 1) return NewLeaf(*begin);
  // Two distinct 256-bit paths part before the last bit, so depth stays < 256.
  GPUNET_CHECK(depth < kPathBits);
  const SmtLeaf* mid = std::partition_point(
      begin, end, [depth](const SmtLeaf& l) { return !SmtPathBit(l.key_hash, depth); });
  Ref left = BuildSorted(depth + 1, begin, mid);
  Ref right = BuildSorted(depth + 1, mid, end);
  return NewInner(left, right);
}

SparseMerkleTree::Ref SparseMerkleTree::UpdateNode(Ref node, unsigned depth, const SmtChange* begin,
                                                   const SmtChange* end) {
  if (begin == end) return node;
  GPUNET_CHECK(depth <= kPathBits);

  if (node == kEmpty || IsLeaf(node)) {
    std::optional<SmtLeaf> existing;
    if (node != kEmpty) {
      existing = m_leaves[node & ~kLeafBit].leaf;
      // The common case of a block: one existing account changes value.
      if (end - begin == 1 && begin->key_hash == existing->key_hash) {
        if (!begin->value_hash) {
          FreeLeaf(node);
          --m_size;
          return kEmpty;
        }
        Leaf& leaf = m_leaves[node & ~kLeafBit];
        leaf.leaf.value_hash = *begin->value_hash;
        leaf.hash = codec::SmtLeafHash(leaf.leaf);
        return node;
      }
      FreeLeaf(node);
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
    return BuildSorted(depth, merged.data(), merged.data() + merged.size());
  }

  GPUNET_CHECK(depth < kPathBits);
  const SmtChange* mid = std::partition_point(
      begin, end, [depth](const SmtChange& c) { return !SmtPathBit(c.key_hash, depth); });
  // Read the children before recursing: the recursion may grow m_inner.
  Ref old_left = m_inner[node].child[0];
  Ref old_right = m_inner[node].child[1];
  Ref left = UpdateNode(old_left, depth + 1, begin, mid);
  Ref right = UpdateNode(old_right, depth + 1, mid, end);
  return Join(node, left, right);
}

}  // namespace gpunet::state
