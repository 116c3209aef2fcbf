// bench-libs: gpunet_codec
// Codec cost (issue 16 item 5): EncodeBlock and DecodeBlock of one block of T
// single-transfer transactions (default 1,000) with a four-signature last commit,
// the shape of a full block on the transfer path. Each figure is the best of five
// rounds (the build host is shared, the best round is the least disturbed), printed
// on one line with the raw BLAKE2b-256 rate measured in the same run and as the cost
// of one transaction in BLAKE2b-200B hashes, a ratio that survives a change of
// machine.
//
//   bench_codec [txs=1000] [seconds_per_round=0.4]
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "base/check.h"
#include "baseline.h"
#include "codec/encoding.h"

using namespace gpunet;

namespace {

size_t Arg(int argc, char** argv, int i, size_t fallback) {
  return argc > i ? static_cast<size_t>(std::strtoull(argv[i], nullptr, 10)) : fallback;
}

double ArgSeconds(int argc, char** argv, int i, double fallback) {
  return argc > i ? std::strtod(argv[i], nullptr) : fallback;
}

template <size_t N>
base::FixedBytes<N> Filled(uint64_t seed) {
  base::FixedBytes<N> out;
  for (size_t i = 0; i < N; ++i) out[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return out;
}

codec::Block TransferBlock(size_t txs) {
  codec::Block b;
  b.header.chain_id = "gpunet-bench-1";
  b.header.app_version = 1;
  b.header.height = 42;
  b.header.time_ms = 1'700'000'000'000;
  b.header.proposer = Filled<20>(1);
  for (size_t i = 0; i < txs; ++i) {
    codec::Tx tx;
    tx.body.chain_id = "gpunet-bench-1";
    tx.body.sender = Filled<32>(i);
    tx.body.nonce = i;
    tx.body.fee_ugpn = 2'500;
    tx.body.msgs.push_back(codec::MsgSend{Filled<20>(i + 1), 1'000'000 + i});
    tx.body.memo = i % 4 == 0 ? "rent" : "";
    tx.signature = Filled<64>(i + 2);
    b.txs.push_back(std::move(tx));
  }
  b.last_commit.height = 41;
  b.last_commit.round = 0;
  b.last_commit.block_hash = Filled<32>(3);
  for (uint8_t v = 0; v < 4; ++v) {
    codec::Address a = Filled<20>(v);
    a[0] = v;  // ascending validator addresses
    b.last_commit.sigs.push_back(codec::CommitSig{a, 1'700'000'000'000, Filled<64>(v)});
  }
  return b;
}

// Calls of fn per second, the best of five rounds of about `seconds` each.
template <class Fn>
double BestRate(double seconds, Fn fn) {
  double best = 0;
  for (int round = 0; round < 5; ++round) {
    size_t n = 0;
    double start = bench::NowSeconds(), now = start;
    while (now - start < seconds) {
      fn();
      ++n;
      now = bench::NowSeconds();
    }
    best = std::max(best, static_cast<double>(n) / (now - start));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t txs = Arg(argc, argv, 1, 1000);
  const double seconds = ArgSeconds(argc, argv, 2, 0.4);
  bench::Baseline base = bench::MeasureBaseline(1.0);

  const codec::Block block = TransferBlock(txs);
  GPUNET_CHECK(codec::ValidateBlock(block).has_value());
  const base::Bytes bytes = codec::EncodeBlock(block);

  size_t sink = 0;
  double encode_per_s = BestRate(seconds, [&] { sink += codec::EncodeBlock(block).size(); });
  double decode_per_s = BestRate(seconds, [&] {
    auto decoded = codec::DecodeBlock(bytes);
    GPUNET_CHECK(decoded.has_value());
    sink += decoded->txs.size();
  });
  GPUNET_CHECK(sink > 0);

  const double blake = static_cast<double>(base.blake2b_200b_per_s);
  const double tx = static_cast<double>(txs);
  std::printf(
      "codec block of %zu transfers (%zu bytes): encode %.0f blocks/s (%.3f ms, one tx = %.2f "
      "blake2b-200B), decode %.0f blocks/s (%.3f ms, one tx = %.2f blake2b-200B); baseline: "
      "blake2b-200B %llu/s, verify %llu/s (1 core)\n",
      txs, bytes.size(), encode_per_s, 1000.0 / encode_per_s, blake / (encode_per_s * tx),
      decode_per_s, 1000.0 / decode_per_s, blake / (decode_per_s * tx),
      static_cast<unsigned long long>(base.blake2b_200b_per_s),
      static_cast<unsigned long long>(base.verify_per_s_1core));
  return 0;
}
