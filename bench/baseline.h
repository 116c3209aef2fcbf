// The baseline every benchmark reports against: raw BLAKE2b-256 and ed25519
// verify rates measured in the same run on the same machine (architecture §6), so a
// figure reads as a ratio that survives a change of machine.
#pragma once

#include <cstdint>

namespace gpunet::bench {

struct Baseline {
  uint64_t blake2b_200b_per_s;     ///< BLAKE2b-256 of 200 bytes, one core
  uint64_t verify_per_s_1core;     ///< ed25519 verify, one core
  uint64_t verify_per_s_allcores;  ///< ed25519 verify, one thread per core
  unsigned cores;
};

/// Measures for about `seconds` per figure.
Baseline MeasureBaseline(double seconds = 1.0);

/// Seconds of a monotonic clock, for timing loops.
double NowSeconds();

}  // namespace gpunet::bench
