#include "provider/gpu_pool.h"

#include <algorithm>
#include <set>

#include "base/check.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;

GpuPool::GpuPool(std::vector<PoolGpu> gpus) : m_gpus(std::move(gpus)) {
  std::ranges::sort(m_gpus, {}, &PoolGpu::uuid);
  for (auto& g : m_gpus) g.lease_id = 0;
  GPUNET_CHECK(CheckInvariants().has_value());
}

base::Result<std::vector<std::string>> GpuPool::Reserve(uint64_t lease_id, uint32_t count) {
  GPUNET_CHECK(lease_id != 0);
  std::vector<std::string> held = GpusOf(lease_id);
  if (!held.empty()) {
    if (held.size() == count) return held;
    return Fail(ErrorCode::kConflict, "lease " + std::to_string(lease_id) + " already holds " +
                                          std::to_string(held.size()) + " GPUs, not " +
                                          std::to_string(count));
  }
  std::vector<PoolGpu*> picked;
  for (auto& g : m_gpus)
    if (g.lease_id == 0 && g.healthy && picked.size() < count) picked.push_back(&g);
  if (picked.size() < count)
    return Fail(ErrorCode::kUnavailable, "lease " + std::to_string(lease_id) + " needs " +
                                             std::to_string(count) + " GPUs of this machine, " +
                                             std::to_string(FreeHealthy()) +
                                             " are free and healthy");
  std::vector<std::string> out;
  for (PoolGpu* g : picked) {
    g->lease_id = lease_id;
    out.push_back(g->uuid);
  }
  GPUNET_CHECK(out.size() == count);
  return out;
}

base::Status GpuPool::Assign(uint64_t lease_id, const std::vector<std::string>& uuids) {
  GPUNET_CHECK(lease_id != 0);
  std::vector<PoolGpu*> found;
  for (const auto& u : uuids) {
    auto it = std::ranges::find(m_gpus, u, &PoolGpu::uuid);
    if (it == m_gpus.end())
      return Fail(ErrorCode::kNotFound, "lease " + std::to_string(lease_id) + " holds GPU " + u +
                                            ", which this machine does not have (any more)");
    if (it->lease_id != 0 && it->lease_id != lease_id)
      return Fail(ErrorCode::kConflict, "GPU " + u + " is held by lease " +
                                            std::to_string(it->lease_id) + " and lease " +
                                            std::to_string(lease_id));
    found.push_back(&*it);
  }
  for (PoolGpu* g : found) g->lease_id = lease_id;
  return {};
}

void GpuPool::Release(uint64_t lease_id) {
  for (auto& g : m_gpus)
    if (g.lease_id == lease_id) g.lease_id = 0;
}

std::vector<uint64_t> GpuPool::ApplyHealth(const std::vector<GpuHealth>& report) {
  std::set<uint64_t> turned;
  for (const auto& h : report) {
    auto it = std::ranges::find(m_gpus, h.uuid, &PoolGpu::uuid);
    if (it == m_gpus.end()) continue;
    if (it->healthy && !h.healthy && it->lease_id != 0) turned.insert(it->lease_id);
    it->healthy = h.healthy;
    it->problems = h.problems;
  }
  return {turned.begin(), turned.end()};
}

std::vector<std::string> GpuPool::GpusOf(uint64_t lease_id) const {
  std::vector<std::string> out;
  for (const auto& g : m_gpus)
    if (g.lease_id == lease_id) out.push_back(g.uuid);
  return out;
}

std::vector<uint64_t> GpuPool::LeasesOnUnhealthy() const {
  std::set<uint64_t> out;
  for (const auto& g : m_gpus)
    if (!g.healthy && g.lease_id != 0) out.insert(g.lease_id);
  return {out.begin(), out.end()};
}

uint32_t GpuPool::FreeHealthy() const {
  return static_cast<uint32_t>(
      std::ranges::count_if(m_gpus, [](const PoolGpu& g) { return g.lease_id == 0 && g.healthy; }));
}

uint32_t GpuPool::Healthy() const {
  return static_cast<uint32_t>(std::ranges::count_if(m_gpus, &PoolGpu::healthy));
}

base::Status GpuPool::CheckInvariants() const {
  for (size_t i = 1; i < m_gpus.size(); ++i)
    if (m_gpus[i - 1].uuid >= m_gpus[i].uuid)
      return Fail(ErrorCode::kInternal, "GPU " + m_gpus[i].uuid + " is listed twice");
  return {};
}

}  // namespace gpunet::provider
