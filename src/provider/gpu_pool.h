// The GPUs of this machine and which lease holds each (docs/provider.md).
// A pure value: no I/O, no clock. The engine rebuilds the assignments from the
// lease book at start (Assign), so the book is the durable copy.
//
// A GPU is held by at most one lease (one owner field per GPU); an unhealthy GPU is
// never handed to a lease (Reserve skips it); a GPU goes back to the pool only
// through Release, which the engine calls after the idle check.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace gpunet::provider {

struct PoolGpu {
  std::string uuid;               ///< "GPU-..."
  std::string model;              ///< the machine's model as the ledger names it ("H100")
  std::optional<uint32_t> minor;  ///< N of <device_dir>/nvidiaN, when known
  bool healthy = true;
  std::vector<std::string> problems;  ///< why not healthy, for status and logs
  uint64_t lease_id = 0;              ///< 0 = free
};

/// What a health source says of one GPU (NVML in production: h17-gpu's
/// runtime/gpu_health; declared GPUs are always healthy).
struct GpuHealth {
  std::string uuid;
  bool healthy = true;
  std::vector<std::string> problems;
};

class GpuPool {
 public:
  GpuPool() = default;
  /// `gpus` with distinct UUIDs, all free.
  explicit GpuPool(std::vector<PoolGpu> gpus);

  /// `count` free healthy GPUs for the lease, lowest UUIDs first; the same GPUs when
  /// the lease already holds `count` (idempotent). kUnavailable when too few are free
  /// and healthy (nothing is taken then); kConflict when it holds another count.
  base::Result<std::vector<std::string>> Reserve(uint64_t lease_id, uint32_t count);
  /// Gives the lease exactly these GPUs (the book's record, at start). kNotFound for a
  /// UUID this machine does not have, kConflict when another lease holds one.
  base::Status Assign(uint64_t lease_id, const std::vector<std::string>& uuids);
  /// The lease's GPUs go back to the pool (after the idle check).
  void Release(uint64_t lease_id);
  /// Applies a health report; GPUs not named keep their state. Returns the leases
  /// holding a GPU that turned unhealthy by this report (sorted, distinct).
  std::vector<uint64_t> ApplyHealth(const std::vector<GpuHealth>& report);

  std::vector<std::string> GpusOf(uint64_t lease_id) const;
  /// Leases holding any unhealthy GPU (sorted, distinct).
  std::vector<uint64_t> LeasesOnUnhealthy() const;
  uint32_t FreeHealthy() const;
  uint32_t Healthy() const;
  const std::vector<PoolGpu>& Gpus() const { return m_gpus; }

  /// kInternal when a UUID is listed twice. (A lease may hold an unhealthy GPU: it
  /// failed under the lease, which the engine then closes.)
  base::Status CheckInvariants() const;

 private:
  std::vector<PoolGpu> m_gpus;  // sorted by uuid
};

}  // namespace gpunet::provider
