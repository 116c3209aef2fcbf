// The state tree: golden vectors from the independent reference implementation
// (tests/vectors/smt/gen_vectors.py) and properties over many seeded random key
// sets, checked against a plain std::map model and the codec verifier.
#include "state/smt.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <sstream>
#include <string>

#include "base/clock.h"
#include "codec/smt_proof.h"
#include "crypto/hash.h"
#include "state/kv.h"
#include "unit/crypto/vector_file.h"

namespace gpunet::state {
namespace {

using base::ErrorCode;
using base::Hash32;
using codec::SmtLeaf;
using Model = std::map<Hash32, Hash32>;

Hash32 H(std::string_view s) {
  return crypto::Blake2b256(base::AsBytes(s));
}

Hash32 HexHash(const std::string& hex) {
  auto h = base::FixedFromHex<32>(hex);
  EXPECT_TRUE(h) << hex;
  return h ? *h : Hash32{};
}

std::vector<SmtLeaf> LeavesOf(const Model& m) {
  std::vector<SmtLeaf> out;
  for (const auto& [k, v] : m) out.push_back(SmtLeaf{k, v});
  return out;
}

SparseMerkleTree BuildOrDie(const Model& m) {
  auto t = SparseMerkleTree::Build(LeavesOf(m));
  EXPECT_TRUE(t) << t.error().ToString();
  return t ? std::move(*t) : SparseMerkleTree{};
}

void Set(SparseMerkleTree& t, const Hash32& k, std::optional<Hash32> v) {
  SmtChange c{k, v};
  auto s = t.Update(std::span<const SmtChange>(&c, 1));
  ASSERT_TRUE(s) << s.error().ToString();
}

Hash32 RandomHash(base::Rng& rng) {
  Hash32 h;
  for (size_t i = 0; i < 32; i += 8) {
    uint64_t x = rng.Next();
    for (size_t j = 0; j < 8; ++j) h[i + j] = static_cast<uint8_t>(x >> (56 - 8 * j));
  }
  return h;
}

// Random keys, a share of them clustered: they copy a long prefix of an earlier
// key so that paths share many bits (chains of single-child inner nodes).
Hash32 RandomKey(base::Rng& rng, const std::vector<Hash32>& earlier) {
  Hash32 k = RandomHash(rng);
  if (!earlier.empty() && rng.Below(3) == 0) {
    const Hash32& base_key = earlier[rng.Below(earlier.size())];
    size_t shared_bits = rng.Below(256);
    for (size_t bit = 0; bit < shared_bits; ++bit) {
      uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
      k[bit / 8] = static_cast<uint8_t>((k[bit / 8] & ~mask) | (base_key[bit / 8] & mask));
    }
  }
  return k;
}

Model RandomModel(base::Rng& rng, size_t n) {
  Model m;
  std::vector<Hash32> keys;
  while (m.size() < n) {
    Hash32 k = RandomKey(rng, keys);
    if (m.emplace(k, RandomHash(rng)).second) keys.push_back(k);
  }
  return m;
}

// Every member proves its value and random other keys prove absent, through the
// canonical encoding and the codec verifier.
void ExpectProofsMatchModel(const SparseMerkleTree& t, const Model& m, base::Rng& rng,
                            uint64_t seed) {
  Hash32 root = t.Root();
  for (const auto& [k, v] : m) {
    auto decoded = codec::DecodeSmtProof(codec::EncodeSmtProof(t.Prove(k)));
    ASSERT_TRUE(decoded);
    auto ok = codec::VerifySmtMembership(root, k, v, *decoded);
    ASSERT_TRUE(ok) << "seed " << seed << ": " << ok.error().ToString();
    EXPECT_EQ(t.Get(k), v);
  }
  std::vector<Hash32> keys;
  for (const auto& [k, v] : m) keys.push_back(k);
  for (int i = 0; i < 20; ++i) {
    Hash32 k = RandomKey(rng, keys);
    if (m.count(k)) continue;
    auto decoded = codec::DecodeSmtProof(codec::EncodeSmtProof(t.Prove(k)));
    ASSERT_TRUE(decoded);
    auto ok = codec::VerifySmtNonMembership(root, k, *decoded);
    ASSERT_TRUE(ok) << "seed " << seed << ": " << ok.error().ToString();
    EXPECT_FALSE(t.Get(k));
  }
}

// ---- golden vectors ----

// Records of tests/vectors/smt/<name>, split on whitespace.
std::vector<std::vector<std::string>> ReadVectorRecords(const std::string& name) {
  std::vector<std::vector<std::string>> records;
  for (const std::string& line : gpunet::testing::ReadVectorLines("smt/" + name)) {
    std::istringstream words(line);
    records.emplace_back(std::istream_iterator<std::string>(words),
                         std::istream_iterator<std::string>());
  }
  return records;
}

struct VectorCase {
  Model leaves;
  Hash32 root;
};

std::map<std::string, VectorCase> ReadCases() {
  std::map<std::string, VectorCase> cases;
  VectorCase* current = nullptr;
  for (const auto& r : ReadVectorRecords("roots.txt")) {
    if (r[0] == "case") {
      current = &cases[r.at(1)];
    } else if (r[0] == "leaf") {
      current->leaves[HexHash(r.at(1))] = HexHash(r.at(2));
    } else if (r[0] == "rule") {
      // "rule smt-vector N": key i = H("smt-vector-key-<i>"), value H("smt-vector-value-<i>").
      EXPECT_EQ(r.at(1), "smt-vector");
      int n = std::stoi(r.at(2));
      for (int i = 0; i < n; ++i)
        current->leaves[H("smt-vector-key-" + std::to_string(i))] =
            H("smt-vector-value-" + std::to_string(i));
    } else if (r[0] == "root") {
      current->root = HexHash(r.at(1));
    } else {
      ADD_FAILURE() << "unknown record " << r[0];
    }
  }
  return cases;
}

TEST(SmtVectors, RootsMatchTheReferenceImplementation) {
  auto cases = ReadCases();
  ASSERT_EQ(cases.size(), 5u);
  EXPECT_EQ(cases.at("thousand").leaves.size(), 1000u);
  EXPECT_TRUE(cases.at("empty").root.IsZero());
  for (const auto& [name, c] : cases) {
    SparseMerkleTree built = BuildOrDie(c.leaves);
    EXPECT_EQ(base::ToHex(built.Root()), base::ToHex(c.root)) << name << " (Build)";
    // Inserted one key at a time, in reverse order: same root.
    SparseMerkleTree incremental;
    for (auto it = c.leaves.rbegin(); it != c.leaves.rend(); ++it)
      Set(incremental, it->first, it->second);
    EXPECT_EQ(incremental.Root(), c.root) << name << " (one by one)";
    EXPECT_EQ(incremental.Size(), c.leaves.size());
  }
}

TEST(SmtVectors, ProofsAreByteIdenticalToTheReference) {
  auto cases = ReadCases();
  size_t n = 0;
  for (const auto& r : ReadVectorRecords("proofs.txt")) {
    ASSERT_EQ(r.size(), 5u);
    const VectorCase& c = cases.at(r[1]);
    SparseMerkleTree t = BuildOrDie(c.leaves);
    Hash32 key = HexHash(r[2]);
    EXPECT_EQ(base::ToHex(codec::EncodeSmtProof(t.Prove(key))), r[4]) << r[1] << " " << r[2];
    if (r[3] == "absent") {
      EXPECT_FALSE(t.Get(key));
    } else {
      EXPECT_EQ(t.Get(key), HexHash(r[3]));
    }
    ++n;
  }
  EXPECT_EQ(n, 16u);
}

// ---- properties over seeded random key sets ----

constexpr uint64_t kSeeds = 60;

TEST(SmtProperties, RootIndependentOfInsertionOrderAndBatchSplit) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    base::SeededRng rng(seed);
    Model m = RandomModel(rng, rng.Below(200));
    Hash32 expected = BuildOrDie(m).Root();

    std::vector<SmtChange> changes;
    for (const auto& [k, v] : m) changes.push_back(SmtChange{k, v});
    // Shuffled one by one.
    std::vector<SmtChange> shuffled = changes;
    for (size_t i = shuffled.size(); i > 1; --i) std::swap(shuffled[i - 1], shuffled[rng.Below(i)]);
    SparseMerkleTree one_by_one;
    for (const auto& c : shuffled) Set(one_by_one, c.key_hash, c.value_hash);
    EXPECT_EQ(one_by_one.Root(), expected) << "seed " << seed;

    // Random split into batches: each batch a random subset, sorted.
    SparseMerkleTree batched;
    size_t pos = 0;
    while (pos < shuffled.size()) {
      size_t len = 1 + rng.Below(shuffled.size() - pos);
      std::vector<SmtChange> batch(shuffled.begin() + pos, shuffled.begin() + pos + len);
      std::sort(batch.begin(), batch.end(),
                [](const SmtChange& a, const SmtChange& b) { return a.key_hash < b.key_hash; });
      ASSERT_TRUE(batched.Update(batch));
      pos += len;
    }
    EXPECT_EQ(batched.Root(), expected) << "seed " << seed;
    EXPECT_EQ(batched.Size(), m.size());

    SparseMerkleTree all_at_once;
    ASSERT_TRUE(all_at_once.Update(changes));
    EXPECT_EQ(all_at_once.Root(), expected) << "seed " << seed;
  }
}

TEST(SmtProperties, ProofsVerifyForMembersAndNonMembers) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    base::SeededRng rng(1000 + seed);
    Model m = RandomModel(rng, rng.Below(150));
    SparseMerkleTree t = BuildOrDie(m);
    ExpectProofsMatchModel(t, m, rng, seed);
  }
}

TEST(SmtProperties, TamperedProofsFail) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    base::SeededRng rng(2000 + seed);
    Model m = RandomModel(rng, 2 + rng.Below(100));
    SparseMerkleTree t = BuildOrDie(m);
    Hash32 root = t.Root();
    auto it = std::next(m.begin(), static_cast<long>(rng.Below(m.size())));
    const Hash32& key = it->first;
    codec::SmtProof proof = t.Prove(key);
    ASSERT_TRUE(codec::VerifySmtMembership(root, key, it->second, proof));

    // Any byte of the encoding.
    base::Bytes enc = codec::EncodeSmtProof(proof);
    for (int trial = 0; trial < 50; ++trial) {
      base::Bytes bad = enc;
      bad[rng.Below(bad.size())] ^= static_cast<uint8_t>(1 + rng.Below(255));
      auto decoded = codec::DecodeSmtProof(bad);
      if (decoded) {
        EXPECT_FALSE(codec::VerifySmtProof(root, key, *decoded)) << "seed " << seed;
      }
    }
    // Any sibling.
    for (size_t i = 0; i < proof.siblings.size(); ++i) {
      codec::SmtProof bad = proof;
      bad.siblings[i][rng.Below(32)] ^= 0x01;
      EXPECT_FALSE(codec::VerifySmtProof(root, key, bad)) << "seed " << seed << " sibling " << i;
    }
    // The value, and the claimed value.
    codec::SmtProof bad_value = proof;
    bad_value.leaf->value_hash[0] ^= 0x01;
    EXPECT_FALSE(codec::VerifySmtProof(root, key, bad_value));
    Hash32 other_value = it->second;
    other_value[31] ^= 0x01;
    EXPECT_FALSE(codec::VerifySmtMembership(root, key, other_value, proof));
    // The member's proof turned into a "nothing here" claim.
    codec::SmtProof hidden = proof;
    hidden.leaf.reset();
    EXPECT_FALSE(codec::VerifySmtNonMembership(root, key, hidden)) << "seed " << seed;
  }
}

TEST(SmtProperties, DeleteRestoresTheEarlierRoot) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    base::SeededRng rng(3000 + seed);
    Model m = RandomModel(rng, rng.Below(120));
    SparseMerkleTree t = BuildOrDie(m);
    Hash32 before = t.Root();

    std::vector<Hash32> keys;
    for (const auto& [k, v] : m) keys.push_back(k);
    Model extra;
    while (extra.size() < 1 + rng.Below(60)) {
      Hash32 k = RandomKey(rng, keys);
      if (!m.count(k)) extra[k] = RandomHash(rng);
    }
    std::map<Hash32, std::optional<Hash32>> insert(extra.begin(), extra.end()), remove;
    for (const auto& [k, v] : extra) remove[k] = std::nullopt;
    ASSERT_TRUE(t.Update(insert));
    EXPECT_NE(t.Root(), before);
    EXPECT_EQ(t.Size(), m.size() + extra.size());
    ASSERT_TRUE(t.Update(remove));
    EXPECT_EQ(t.Root(), before) << "seed " << seed;
    EXPECT_EQ(t.Size(), m.size());

    // Changing a value and changing it back.
    if (!m.empty()) {
      const Hash32& k = m.begin()->first;
      Set(t, k, H("changed"));
      EXPECT_NE(t.Root(), before);
      Set(t, k, m.begin()->second);
      EXPECT_EQ(t.Root(), before);
    }
    // Deleting everything empties the tree.
    std::map<Hash32, std::optional<Hash32>> all;
    for (const auto& [k, v] : m) all[k] = std::nullopt;
    ASSERT_TRUE(t.Update(all));
    EXPECT_EQ(t.Root(), codec::kSmtEmptyHash) << "seed " << seed;
    EXPECT_EQ(t.Size(), 0u);
  }
}

TEST(SmtProperties, UpdateReportsThePreviousValuesAndThoseUndoIt) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    base::SeededRng rng(3500 + seed);
    Model m = RandomModel(rng, rng.Below(150));
    SparseMerkleTree t = BuildOrDie(m);
    const Hash32 before = t.Root();
    std::vector<Hash32> keys;
    for (const auto& [k, v] : m) keys.push_back(k);
    // Changed values, deletions, inserts and deletions of absent keys, mixed.
    std::map<Hash32, std::optional<Hash32>> changes;
    const size_t n = 1 + rng.Below(80);
    while (changes.size() < n) {
      const Hash32 k = rng.Below(2) == 0 ? RandomKey(rng, keys) : RandomHash(rng);
      changes[k] = rng.Below(4) == 0 ? std::nullopt : std::optional<Hash32>(RandomHash(rng));
    }
    std::vector<SmtChange> forward;
    for (const auto& [k, v] : changes) forward.push_back(SmtChange{k, v});
    std::vector<SmtChange> previous;
    ASSERT_TRUE(t.Update(forward, &previous));
    ASSERT_EQ(previous.size(), forward.size()) << "seed " << seed;
    for (size_t i = 0; i < forward.size(); ++i) {
      EXPECT_EQ(previous[i].key_hash, forward[i].key_hash) << "seed " << seed;
      auto was = m.find(forward[i].key_hash);
      EXPECT_EQ(previous[i].value_hash,
                was == m.end() ? std::nullopt : std::optional<Hash32>(was->second))
          << "seed " << seed << " change " << i;
    }
    ASSERT_TRUE(t.Update(previous));
    EXPECT_EQ(t.Root(), before) << "seed " << seed;
    EXPECT_EQ(t.Size(), m.size());
  }
}

TEST(SmtProperties, RebuildFromLeavesEqualsIncrementalRoot) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    base::SeededRng rng(4000 + seed);
    Model model = RandomModel(rng, rng.Below(100));
    SparseMerkleTree t = BuildOrDie(model);
    // Blocks of mixed inserts, updates, deletes (of present and absent keys).
    for (int block = 0; block < 8; ++block) {
      std::vector<Hash32> keys;
      for (const auto& [k, v] : model) keys.push_back(k);
      std::map<Hash32, std::optional<Hash32>> changes;
      size_t n = rng.Below(40);
      for (size_t i = 0; i < n; ++i) {
        uint64_t kind = rng.Below(4);
        if (kind == 0 || keys.empty()) {
          changes[RandomKey(rng, keys)] = RandomHash(rng);
        } else if (kind == 1) {
          changes[keys[rng.Below(keys.size())]] = RandomHash(rng);
        } else if (kind == 2) {
          changes[keys[rng.Below(keys.size())]] = std::nullopt;
        } else {
          changes[RandomKey(rng, keys)] = std::nullopt;  // usually absent: a no-op
        }
      }
      ASSERT_TRUE(t.Update(changes));
      for (const auto& [k, v] : changes) {
        if (v)
          model[k] = *v;
        else
          model.erase(k);
      }
      EXPECT_EQ(t.Size(), model.size());
      EXPECT_EQ(t.Root(), BuildOrDie(model).Root()) << "seed " << seed << " block " << block;
    }
    ExpectProofsMatchModel(t, model, rng, seed);
  }
}

// ---- the state layer's view: entries of a KvStore are the leaves ----

TEST(SmtKvStore, ApplyingBatchesEqualsRebuildingFromTheStore) {
  base::SeededRng rng(77);
  MemoryKvStore kv;
  SparseMerkleTree t;
  for (int block = 0; block < 10; ++block) {
    WriteBatch batch;
    for (int i = 0; i < 30; ++i) {
      std::string key = "acct/" + std::to_string(rng.Below(100));
      if (rng.Below(5) == 0)
        batch.Delete(base::Bytes(key.begin(), key.end()));
      else
        batch.Put(base::Bytes(key.begin(), key.end()),
                  base::Bytes(1 + rng.Below(64), static_cast<uint8_t>(i)));
    }
    ASSERT_TRUE(kv.Commit(batch));
    ASSERT_TRUE(t.Apply(batch));
    auto rebuilt = SparseMerkleTree::BuildFromKvStore(kv);
    ASSERT_TRUE(rebuilt) << rebuilt.error().ToString();
    EXPECT_EQ(rebuilt->Root(), t.Root()) << "block " << block;
    EXPECT_EQ(rebuilt->Size(), kv.Size());
  }
  // A client proves one entry from the key and value bytes alone.
  auto value = kv.Get(base::AsBytes("acct/7"));
  ASSERT_TRUE(value);
  Hash32 key_hash = codec::SmtKeyHash(base::AsBytes("acct/7"));
  if (*value) {
    EXPECT_TRUE(codec::VerifySmtMembership(t.Root(), key_hash, codec::SmtValueHash(**value),
                                           t.Prove(key_hash)));
  } else {
    EXPECT_TRUE(codec::VerifySmtNonMembership(t.Root(), key_hash, t.Prove(key_hash)));
  }
  // A key range: only entries in [begin, end) become leaves.
  auto part =
      SparseMerkleTree::BuildFromKvStore(kv, base::AsBytes("acct/5"), base::AsBytes("acct/6"));
  ASSERT_TRUE(part);
  EXPECT_LT(part->Size(), t.Size());
  EXPECT_GT(part->Size(), 0u);
}

TEST(SmtKvStore, ChangesOfABatchAreHashedAndSorted) {
  auto bytes = [](std::string_view s) { return base::Bytes(s.begin(), s.end()); };
  WriteBatch batch;
  batch.Put(bytes("key-b"), bytes("1"));
  batch.Put(bytes("key-a"), bytes("2"));
  batch.Delete(bytes("key-c"));
  auto changes = SmtChangesOf(batch);
  ASSERT_EQ(changes.size(), 3u);
  for (size_t i = 1; i < changes.size(); ++i)
    EXPECT_LT(changes[i - 1].key_hash, changes[i].key_hash);
  std::map<Hash32, std::optional<Hash32>> got;
  for (const auto& c : changes) got[c.key_hash] = c.value_hash;
  EXPECT_EQ(got.at(H("key-a")), H("2"));
  EXPECT_EQ(got.at(H("key-b")), H("1"));
  EXPECT_FALSE(got.at(H("key-c")));
}

// ---- refusals ----

TEST(SmtRefusals, UpdateRejectsUnsortedOrDuplicateChangesAndChangesNothing) {
  SparseMerkleTree t = BuildOrDie(Model{{H("a"), H("1")}, {H("b"), H("2")}});
  Hash32 root = t.Root();
  Hash32 lo = H("x"), hi = H("y");
  if (hi < lo) std::swap(lo, hi);
  std::vector<SmtChange> unsorted{{hi, H("v")}, {lo, H("w")}};
  auto r = t.Update(unsorted);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("sorted"), std::string::npos);
  std::vector<SmtChange> duplicate{{lo, H("v")}, {lo, std::nullopt}};
  EXPECT_FALSE(t.Update(duplicate));
  EXPECT_EQ(t.Root(), root);
  EXPECT_EQ(t.Size(), 2u);
  // An empty batch and a delete of an absent key change nothing.
  ASSERT_TRUE(t.Update(std::vector<SmtChange>{}));
  Set(t, lo, std::nullopt);
  EXPECT_EQ(t.Root(), root);
}

TEST(SmtRefusals, BuildRejectsDuplicateKeys) {
  auto r = SparseMerkleTree::Build(
      {SmtLeaf{H("a"), H("1")}, SmtLeaf{H("b"), H("1")}, SmtLeaf{H("a"), H("2")}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kAlreadyExists);
}

TEST(SmtShape, EmptyAndSingleLeafTrees) {
  SparseMerkleTree t;
  EXPECT_EQ(t.Root(), codec::kSmtEmptyHash);
  EXPECT_EQ(t.Size(), 0u);
  EXPECT_FALSE(t.Get(H("a")));
  codec::SmtProof p = t.Prove(H("a"));
  EXPECT_TRUE(p.siblings.empty());
  EXPECT_FALSE(p.leaf);
  Set(t, H("a"), H("1"));
  // One leaf: the root is the leaf itself (compact form), no siblings in proofs.
  EXPECT_EQ(t.Root(), codec::SmtLeafHash(H("a"), H("1")));
  EXPECT_TRUE(t.Prove(H("b")).siblings.empty());
  EXPECT_TRUE(codec::VerifySmtNonMembership(t.Root(), H("b"), t.Prove(H("b"))));
}

TEST(SmtShape, DepthIsLogarithmicForRandomKeys) {
  base::SeededRng rng(5);
  Model m;
  while (m.size() < 4096) m[RandomHash(rng)] = RandomHash(rng);
  SparseMerkleTree t = BuildOrDie(m);
  size_t max_depth = 0, total = 0;
  for (const auto& [k, v] : m) {
    size_t d = t.Prove(k).siblings.size();
    max_depth = std::max(max_depth, d);
    total += d;
  }
  // log2(4096) = 12; random keys land near it, far from 256.
  EXPECT_LT(total / m.size(), 16u);
  EXPECT_LT(max_depth, 40u);
  EXPECT_GT(t.MemoryBytes(), 0u);
}

}  // namespace
}  // namespace gpunet::state
