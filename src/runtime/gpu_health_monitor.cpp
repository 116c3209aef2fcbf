// GpuMonitor (gpu_health.h): NVML held open, answers collected raw.
#include <algorithm>

#include "base/check.h"
#include "runtime/gpu_health.h"
#include "runtime/nvml_api.h"

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;

namespace {

/// Xid events read per poll at most: a GPU stuck reporting cannot hold the poll.
constexpr int kEventsPerPoll = 256;
/// Processes listed per GPU at most (NVML answers INSUFFICIENT_SIZE beyond the buffer).
constexpr unsigned kProcessesMax = 4096;

/// Calls `call(fn, value)` when the entry point exists; the raw answer either way.
template <class T, class Fn, class Call>
NvmlAnswer<T> Ask(Fn* fn, Call call) {
  if (!fn) return {};
  T value{};
  int rc = call(fn, value);
  return rc == nvml::kSuccess ? NvmlAnswer<T>::Of(std::move(value)) : NvmlAnswer<T>::Failed(rc);
}

NvmlAnswer<std::vector<GpuProcess>> ReadProcesses(nvml::DeviceGetRunningProcessesFn* fn,
                                                  nvmlDevice_t dev) {
  if (!fn) return {};
  std::vector<nvmlProcessInfo_t> buf(32);
  for (int attempt = 0; attempt < 4; ++attempt) {
    unsigned n = static_cast<unsigned>(buf.size());
    int rc = fn(dev, &n, buf.data());
    if (rc == nvml::kErrorInsufficientSize && n > buf.size() && n <= kProcessesMax) {
      buf.resize(n + 8);  // more processes started meanwhile: a little room
      continue;
    }
    if (rc != nvml::kSuccess) return NvmlAnswer<std::vector<GpuProcess>>::Failed(rc);
    std::vector<GpuProcess> out;
    for (unsigned i = 0; i < std::min<size_t>(n, buf.size()); ++i) {
      GpuProcess p{buf[i].pid, std::nullopt};
      if (buf[i].usedGpuMemory != nvml::kValueNotAvailable)
        p.used_memory_bytes = buf[i].usedGpuMemory;
      out.push_back(p);
    }
    return NvmlAnswer<std::vector<GpuProcess>>::Of(std::move(out));
  }
  return NvmlAnswer<std::vector<GpuProcess>>::Failed(nvml::kErrorInsufficientSize);
}

}  // namespace

struct GpuMonitor::Device {
  std::string uuid;
  nvmlDevice_t handle = nullptr;
  int handle_code = 0;  ///< nvmlDeviceGetHandleByIndex's answer at Open
  NvmlAnswer<bool> xid_events;
};

GpuMonitor::GpuMonitor() = default;

GpuMonitor::~GpuMonitor() {
  if (m_event_set && m_session->Functions().event_set_free)
    m_session->Functions().event_set_free(static_cast<nvmlEventSet_t>(m_event_set));
}

base::Result<std::unique_ptr<GpuMonitor>> GpuMonitor::Open(const std::string& library) {
  GPUNET_TRY_ASSIGN(auto session, nvml::NvmlSession::Open(library));
  std::unique_ptr<GpuMonitor> m(new GpuMonitor());
  GPUNET_TRY_ASSIGN(m->m_inventory, ReadInventory(*session));
  const nvml::Api& api = session->Functions();
  for (const GpuInfo& g : m->m_inventory.gpus) {
    if (g.uuid.empty()) continue;  // nothing could name it in a lease
    Device d;
    d.uuid = g.uuid;
    d.handle_code = api.handle_by_index(g.index, &d.handle);
    m->m_devices.push_back(std::move(d));
  }
  m->m_session = std::move(session);
  if (!api.event_set_create || !api.register_events || !api.event_set_wait || !api.event_set_free) {
    m->m_xid_monitoring = "Xid events not monitored: this driver lacks NVML's event entry points";
  } else {
    nvmlEventSet_t set = nullptr;
    if (int rc = api.event_set_create(&set); rc != nvml::kSuccess) {
      m->m_xid_monitoring =
          "Xid events not monitored: nvmlEventSetCreate: " + m->m_session->Reason(rc);
      for (Device& d : m->m_devices) d.xid_events = NvmlAnswer<bool>::Failed(rc);
    } else {
      m->m_event_set = set;
      for (Device& d : m->m_devices) {
        if (d.handle_code != nvml::kSuccess) continue;
        int reg = api.register_events(d.handle, nvml::kEventTypeXidCriticalError, set);
        d.xid_events =
            reg == nvml::kSuccess ? NvmlAnswer<bool>::Of(true) : NvmlAnswer<bool>::Failed(reg);
        if (reg != nvml::kSuccess)
          m->m_xid_monitoring += (m->m_xid_monitoring.empty() ? "" : "; ") + d.uuid +
                                 ": Xid events not monitored: " + m->m_session->Reason(reg);
      }
    }
  }
  base::MutexLock lock(m->m_mu);
  for (const Device& d : m->m_devices)
    if (d.handle_code == nvml::kSuccess) m->LearnBaseline(m->SampleIdle(d));
  return m;
}

std::string GpuMonitor::XidMonitoring() const {
  base::MutexLock lock(m_mu);
  if (m_event_wait_code == 0) return m_xid_monitoring;
  return m_xid_monitoring + (m_xid_monitoring.empty() ? "" : "; ") +
         "waiting for Xid events failed: " + m_session->Reason(m_event_wait_code);
}

const GpuMonitor::Device* GpuMonitor::Find(std::string_view uuid) const {
  auto it = std::ranges::find(m_devices, uuid, &Device::uuid);
  return it == m_devices.end() ? nullptr : &*it;
}

void GpuMonitor::DrainEvents() {
  if (!m_event_set) return;
  const nvml::Api& api = m_session->Functions();
  for (int i = 0; i < kEventsPerPoll; ++i) {
    nvmlEventData_t data{};
    int rc = api.event_set_wait(static_cast<nvmlEventSet_t>(m_event_set), &data, 0);
    if (rc == nvml::kErrorTimeout) {
      m_event_wait_code = 0;  // nothing (more) queued
      return;
    }
    if (rc != nvml::kSuccess) {
      m_event_wait_code = rc;
      return;
    }
    if (!(data.eventType & nvml::kEventTypeXidCriticalError)) continue;
    auto dev = std::ranges::find(m_devices, data.device, &Device::handle);
    if (dev == m_devices.end()) continue;
    std::vector<uint64_t>& xids = m_xids[dev->uuid];
    if (xids.size() >= kXidsKept) {
      xids.erase(xids.begin());
      ++m_xids_dropped[dev->uuid];
    }
    xids.push_back(data.eventData);
  }
}

// One query after another, each answer kept raw for EvaluateGpuHealth.
GpuHealthSample GpuMonitor::Sample(const Device& d) {
  GpuHealthSample s;
  s.uuid = d.uuid;
  s.handle_code = d.handle_code;
  if (d.handle_code != nvml::kSuccess) return s;
  const nvml::Api& api = m_session->Functions();
  nvmlDevice_t h = d.handle;
  auto ecc = [h](int counter) {
    return [h, counter](nvml::DeviceGetTotalEccErrorsFn* f, uint64_t& v) {
      unsigned long long n = 0;
      int rc = f(h, nvml::kMemoryErrorUncorrected, counter, &n);
      v = n;
      return rc;
    };
  };
  s.ecc_uncorrected_volatile = Ask<uint64_t>(api.total_ecc_errors, ecc(nvml::kVolatileEcc));
  s.ecc_uncorrected_aggregate = Ask<uint64_t>(api.total_ecc_errors, ecc(nvml::kAggregateEcc));
  s.retired_pages_pending = Ask<bool>(api.retired_pages_pending, [h](auto* f, bool& v) {
    nvmlEnableState_t state = 0;
    int rc = f(h, &state);
    v = state == nvml::kFeatureEnabled;
    return rc;
  });
  s.remapped_rows = Ask<RemappedRows>(api.remapped_rows, [h](auto* f, RemappedRows& v) {
    unsigned corrected = 0, uncorrected = 0, pending = 0, failure = 0;
    int rc = f(h, &corrected, &uncorrected, &pending, &failure);
    v = RemappedRows{corrected, uncorrected, pending != 0, failure != 0};
    return rc;
  });
  s.temperature_c = Ask<uint32_t>(api.temperature, [h](auto* f, uint32_t& v) {
    unsigned t = 0;
    int rc = f(h, nvml::kTemperatureGpu, &t);
    v = t;
    return rc;
  });
  s.slowdown_threshold_c = Ask<uint32_t>(api.temperature_threshold, [h](auto* f, uint32_t& v) {
    unsigned t = 0;
    int rc = f(h, nvml::kTemperatureThresholdSlowdown, &t);
    v = t;
    return rc;
  });
  s.clocks_event_reasons = Ask<uint64_t>(api.clocks_event_reasons, [h](auto* f, uint64_t& v) {
    unsigned long long bits = 0;
    int rc = f(h, &bits);
    v = bits;
    return rc;
  });
  s.xid_events = d.xid_events;
  // A failed wait that is not one GPU's loss (which that GPU's own queries show)
  // leaves every GPU's Xids unmonitored.
  if (m_event_wait_code != 0 && m_event_wait_code != nvml::kErrorGpuIsLost &&
      m_event_wait_code != nvml::kErrorResetRequired && s.xid_events.Ok())
    s.xid_events = NvmlAnswer<bool>::Failed(m_event_wait_code);
  if (auto it = m_xids.find(d.uuid); it != m_xids.end()) s.xids = it->second;
  if (auto it = m_xids_dropped.find(d.uuid); it != m_xids_dropped.end())
    s.xids_dropped = it->second;
  return s;
}

std::vector<GpuHealthSample> GpuMonitor::ProbeGpuHealth() {
  base::MutexLock lock(m_mu);
  DrainEvents();
  std::vector<GpuHealthSample> out;
  out.reserve(m_devices.size());
  for (const Device& d : m_devices) out.push_back(Sample(d));
  return out;
}

base::Result<GpuHealthSample> GpuMonitor::ProbeGpuHealth(std::string_view uuid) {
  const Device* d = Find(uuid);
  if (!d)
    return Fail(ErrorCode::kNotFound,
                "GPU " + std::string(uuid) + " is not among the GPUs NVML listed on this host");
  base::MutexLock lock(m_mu);
  DrainEvents();
  return Sample(*d);
}

GpuIdleSample GpuMonitor::SampleIdle(const Device& d) const {
  GpuIdleSample s;
  s.uuid = d.uuid;
  s.handle_code = d.handle_code;
  if (d.handle_code != nvml::kSuccess) return s;
  const nvml::Api& api = m_session->Functions();
  s.compute_processes = ReadProcesses(api.compute_processes, d.handle);
  s.graphics_processes = ReadProcesses(api.graphics_processes, d.handle);
  // _v2 leaves out the driver's reservation, so an idle GPU reads close to 0.
  if (api.memory_v2) {
    nvmlMemory_v2_t mem{};
    mem.version = nvml::kMemoryV2Version;
    if (api.memory_v2(d.handle, &mem) == nvml::kSuccess) {
      s.memory_used_bytes = NvmlAnswer<uint64_t>::Of(mem.used);
      return s;
    }
  }
  s.memory_used_bytes = Ask<uint64_t>(api.memory, [&d](auto* f, uint64_t& v) {
    nvmlMemory_t mem{};
    int rc = f(d.handle, &mem);
    v = mem.used;
    return rc;
  });
  return s;
}

void GpuMonitor::LearnBaseline(const GpuIdleSample& s) {
  const bool no_process = s.compute_processes.Ok() && s.compute_processes.value.empty() &&
                          (!s.graphics_processes.Ok() || s.graphics_processes.value.empty());
  if (!no_process || !s.memory_used_bytes.Ok()) return;
  auto [it, added] = m_baseline.try_emplace(s.uuid, s.memory_used_bytes.value);
  if (!added) it->second = std::min(it->second, s.memory_used_bytes.value);
}

base::Result<GpuIdleSample> GpuMonitor::ProbeGpuIdle(std::string_view uuid) {
  const Device* d = Find(uuid);
  if (!d)
    return Fail(ErrorCode::kNotFound,
                "GPU " + std::string(uuid) + " is not among the GPUs NVML listed on this host");
  return SampleIdle(*d);
}

base::Result<GpuIdle> GpuMonitor::CheckGpuIdle(std::string_view uuid) {
  GPUNET_TRY_ASSIGN(GpuIdleSample s, ProbeGpuIdle(uuid));
  base::MutexLock lock(m_mu);
  LearnBaseline(s);
  auto it = m_baseline.find(uuid);
  uint64_t baseline = it != m_baseline.end()     ? it->second
                      : s.memory_used_bytes.Ok() ? s.memory_used_bytes.value
                                                 : 0;
  GpuIdle idle = EvaluateGpuIdle(s, baseline);
  GPUNET_CHECK(idle.idle == idle.reasons.empty());
  return idle;
}

std::optional<uint64_t> GpuMonitor::IdleBaseline(std::string_view uuid) const {
  base::MutexLock lock(m_mu);
  auto it = m_baseline.find(uuid);
  if (it == m_baseline.end()) return std::nullopt;
  return it->second;
}

}  // namespace gpunet::runtime
