#include "baseline.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "crypto/ed25519.h"
#include "crypto/hash.h"

namespace gpunet::bench {

double NowSeconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

namespace {
uint64_t VerifyLoop(double seconds) {
  auto key = crypto::KeyPair::Generate();
  base::Bytes msg(200, 0x5a);
  auto sig = key.SignRaw(msg);
  uint64_t n = 0;
  double end = NowSeconds() + seconds;
  while (NowSeconds() < end) {
    for (int i = 0; i < 64; ++i) n += crypto::VerifyRaw(key.Public(), msg, sig) ? 1 : 0;
  }
  return n;
}
}  // namespace

Baseline MeasureBaseline(double seconds) {
  Baseline b{};
  b.cores = std::max(1u, std::thread::hardware_concurrency());
  {
    base::Bytes msg(200, 0x11);
    uint64_t n = 0;
    double start = NowSeconds(), end = start + seconds;
    while (NowSeconds() < end) {
      for (int i = 0; i < 1024; ++i) {
        msg[0] = static_cast<uint8_t>(i);
        auto h = crypto::Blake2b256(msg);
        msg[1] ^= h[0];
        ++n;
      }
    }
    b.blake2b_200b_per_s = static_cast<uint64_t>(n / (NowSeconds() - start));
  }
  {
    double start = NowSeconds();
    uint64_t n = VerifyLoop(seconds);
    b.verify_per_s_1core = static_cast<uint64_t>(n / (NowSeconds() - start));
  }
  {
    std::atomic<uint64_t> total{0};
    std::vector<std::thread> threads;
    double start = NowSeconds();
    for (unsigned i = 0; i < b.cores; ++i)
      threads.emplace_back([&] { total += VerifyLoop(seconds); });
    for (auto& t : threads) t.join();
    b.verify_per_s_allcores = static_cast<uint64_t>(total / (NowSeconds() - start));
  }
  return b;
}

}  // namespace gpunet::bench
