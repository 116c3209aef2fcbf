// bench-libs: gpunet_state
// State-tree cost (issue 2 item 9, architecture §6, Merkle re-hash per transfer): build a
// 1M-key tree, apply 10k-key batches of random changes (mostly updates of existing
// keys, some inserts), then prove and verify. Printed on one line with the raw
// BLAKE2b-256 and ed25519 verify rates measured in the same run, so the figures
// read as ratios that survive a change of machine.
//
//   bench_tree [keys=1000000] [batches=20] [batch_keys=10000]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/check.h"
#include "base/clock.h"
#include "baseline.h"
#include "codec/smt_proof.h"
#include "state/smt.h"

using namespace gpunet;

namespace {

base::Hash32 RandomHash(base::Rng& rng) {
  base::Hash32 h;
  for (size_t i = 0; i < 32; i += 8) {
    uint64_t x = rng.Next();
    for (size_t j = 0; j < 8; ++j) h[i + j] = static_cast<uint8_t>(x >> (56 - 8 * j));
  }
  return h;
}

size_t Arg(int argc, char** argv, int i, size_t fallback) {
  return argc > i ? static_cast<size_t>(std::strtoull(argv[i], nullptr, 10)) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t keys = Arg(argc, argv, 1, 1000000);
  const size_t batches = Arg(argc, argv, 2, 20);
  const size_t batch_keys = Arg(argc, argv, 3, 10000);
  const size_t insert_percent = 10;

  bench::Baseline base = bench::MeasureBaseline(1.0);

  base::SeededRng rng(42);
  std::vector<codec::SmtLeaf> leaves(keys);
  for (auto& l : leaves) l = codec::SmtLeaf{RandomHash(rng), RandomHash(rng)};
  std::vector<base::Hash32> key_list;
  key_list.reserve(keys + batches * batch_keys);
  for (const auto& l : leaves) key_list.push_back(l.key_hash);

  double t0 = bench::NowSeconds();
  auto built = state::SparseMerkleTree::Build(std::move(leaves));
  double build_s = bench::NowSeconds() - t0;
  GPUNET_CHECK(built.has_value());
  state::SparseMerkleTree tree = std::move(*built);
  const double bytes_per_key = static_cast<double>(tree.MemoryBytes()) / static_cast<double>(keys);

  // Batches: sorted, unique, as a block's changes arrive at the tree.
  double update_s = 0;
  size_t changed = 0;
  for (size_t b = 0; b < batches; ++b) {
    std::vector<state::SmtChange> changes;
    changes.reserve(batch_keys);
    for (size_t i = 0; i < batch_keys; ++i) {
      base::Hash32 k =
          rng.Below(100) < insert_percent ? RandomHash(rng) : key_list[rng.Below(key_list.size())];
      changes.push_back(state::SmtChange{k, RandomHash(rng)});
    }
    std::sort(changes.begin(), changes.end(),
              [](const auto& x, const auto& y) { return x.key_hash < y.key_hash; });
    changes.erase(
        std::unique(changes.begin(), changes.end(),
                    [](const auto& x, const auto& y) { return x.key_hash == y.key_hash; }),
        changes.end());
    double s = bench::NowSeconds();
    GPUNET_CHECK(tree.Update(changes).has_value());
    update_s += bench::NowSeconds() - s;
    changed += changes.size();
    for (const auto& c : changes) key_list.push_back(c.key_hash);  // duplicates are harmless
  }
  const double us_per_key = update_s * 1e6 / static_cast<double>(changed);
  const double ms_per_batch = update_s * 1e3 / static_cast<double>(batches);

  // Proofs of random members: generate, encode, decode, verify.
  const size_t proofs = 100000;
  std::vector<base::Hash32> probe(proofs);
  for (auto& k : probe) k = key_list[rng.Below(key_list.size())];
  std::vector<base::Bytes> encoded(proofs);
  size_t siblings = 0;
  double p0 = bench::NowSeconds();
  for (size_t i = 0; i < proofs; ++i) encoded[i] = codec::EncodeSmtProof(tree.Prove(probe[i]));
  double prove_s = bench::NowSeconds() - p0;
  const base::Hash32 root = tree.Root();
  double v0 = bench::NowSeconds();
  for (size_t i = 0; i < proofs; ++i) {
    auto proof = codec::DecodeSmtProof(encoded[i]);
    GPUNET_CHECK(proof.has_value());
    siblings += proof->siblings.size();
    auto shown = codec::VerifySmtProof(root, probe[i], *proof);
    GPUNET_CHECK(shown.has_value() && shown->has_value());
  }
  double verify_s = bench::NowSeconds() - v0;

  const double keys_per_s = 1e6 / us_per_key;
  std::printf(
      "tree_keys=%zu tree_build_s=%.2f tree_bytes_per_key=%.0f tree_batch_keys=%zu "
      "tree_update_us_per_key=%.2f tree_update_ms_per_batch=%.1f "
      "tree_proof_siblings_avg=%.1f tree_prove_per_s=%.0f tree_proof_verify_per_s=%.0f "
      "blake2b_per_s=%llu verify_per_s=%llu "
      "update_keys_per_s_over_verify_per_s=%.2f update_us_per_key_in_blake2b_calls=%.1f "
      "proof_verify_per_s_over_verify_per_s=%.1f\n",
      tree.Size(), build_s, bytes_per_key, changed / batches, us_per_key, ms_per_batch,
      static_cast<double>(siblings) / static_cast<double>(proofs), proofs / prove_s,
      proofs / verify_s, static_cast<unsigned long long>(base.blake2b_200b_per_s),
      static_cast<unsigned long long>(base.verify_per_s_1core),
      keys_per_s / static_cast<double>(base.verify_per_s_1core),
      us_per_key * static_cast<double>(base.blake2b_200b_per_s) / 1e6,
      (proofs / verify_s) / static_cast<double>(base.verify_per_s_1core));
  return 0;
}
