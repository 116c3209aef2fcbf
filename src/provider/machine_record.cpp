#include "provider/machine_record.h"

#include <algorithm>

namespace gpunet::provider {

uint32_t WantedGpuCount(uint32_t sold, uint32_t healthy, uint32_t leased) {
  return std::max({std::min(sold, healthy), leased, uint32_t{1}});
}

std::optional<codec::MsgMachineUpsert> PlanMachineRecord(const codec::MsgMachineUpsert& from_config,
                                                         uint32_t healthy, uint32_t leased,
                                                         uint32_t ledger_gpu_count) {
  const uint32_t wanted = WantedGpuCount(from_config.gpu_count, healthy, leased);
  if (wanted == ledger_gpu_count) return std::nullopt;
  codec::MsgMachineUpsert m = from_config;
  m.gpu_count = wanted;
  return m;
}

}  // namespace gpunet::provider
