// Health -> the ledger (docs/provider.md, "GPU health on the ledger"): the machine
// record's gpu_count follows this machine's healthy GPUs, so an offer or an order
// never leases a GPU that failed. A pure planner; the daemon calls it each reconcile
// and sends the MsgMachineUpsert it returns.
#pragma once

#include <cstdint>
#include <optional>

#include "codec/types.h"

namespace gpunet::provider {

/// The gpu_count the ledger's record should have: the GPUs provider.yaml sells, at
/// most the healthy ones, and never under the GPUs leased now (the ledger refuses
/// going below them; the count comes down as those leases end). At least 1: a
/// machine record has one GPU at least (a machine whose GPUs all failed keeps 1 on
/// the ledger and no bid is made on it; drain it).
uint32_t WantedGpuCount(uint32_t sold, uint32_t healthy, uint32_t leased);

/// The upsert that brings the ledger's record (`ledger_gpu_count`) to
/// WantedGpuCount: `from_config` (the machine's MsgMachineUpsert of provider.yaml,
/// client::InventoryMsgs) with gpu_count changed; nullopt when the ledger has it.
std::optional<codec::MsgMachineUpsert> PlanMachineRecord(const codec::MsgMachineUpsert& from_config,
                                                         uint32_t healthy, uint32_t leased,
                                                         uint32_t ledger_gpu_count);

}  // namespace gpunet::provider
