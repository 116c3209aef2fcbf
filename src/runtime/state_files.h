// The files of a run dir, written by one process and read by another (the
// runtime and its supervisor, possibly across restarts). Internal to gpunet_runtime.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "runtime/runtime.h"

namespace gpunet::runtime::state {

inline constexpr const char* kSpecFile = "spec.json";
inline constexpr const char* kOptionsFile = "options.json";
inline constexpr const char* kPidFile = "supervisor.pid";
inline constexpr const char* kInfoFile = "info.json";
inline constexpr const char* kStatusFile = "status.json";
inline constexpr const char* kSupervisorLog = "supervisor.log";
inline constexpr const char* kFsDir = "fs";

/// `text` with every byte outside printable ASCII written as \xNN, for error
/// messages that quote what a caller gave.
std::string Printable(std::string_view text);

std::string SpecToJson(const WorkloadSpec& spec);
base::Result<WorkloadSpec> SpecFromJson(const std::string& text);
/// Options plus the resolved cgroup parents the supervisor must use.
std::string OptionsToJson(const RuntimeOptions& options);
base::Result<RuntimeOptions> OptionsFromJson(const std::string& text);
std::string StatusToJson(const ExitStatus& status);
base::Result<ExitStatus> StatusFromJson(const std::string& text);
/// info.json: uid, ports, unenforced limits (written once the workload runs).
std::string InfoToJson(const WorkloadInfo& info);
base::Status InfoFromJson(const std::string& text, WorkloadInfo* info);

}  // namespace gpunet::runtime::state
