// `gpunet sandbox`: what this host can enforce, and running one command the way a
// lease would run it (issue 6 item 9). The logic lives in src/runtime.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "apps/gpunet/cli.h"
#include "runtime/host_probe.h"
#include "runtime/network.h"
#include "runtime/runtime.h"
#include "runtime/sandbox_args.h"
#include "runtime/seccomp_policy.h"

namespace gpunet::apps {

namespace {

using runtime::Enforcement;

volatile sig_atomic_t g_supervisor_pid = 0;

void ForwardStop(int) {
  if (g_supervisor_pid > 0) ::kill(g_supervisor_pid, SIGTERM);
}

std::string EnforcementName(Enforcement e) {
  switch (e) {
    case Enforcement::kNone:
      return "none";
    case Enforcement::kCgroupV1:
      return "cgroup-v1";
    case Enforcement::kCgroupV2:
      return "cgroup-v2";
    case Enforcement::kOther:
      return "other";
  }
  return "?";
}

std::string SelfExe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) FailCommand(base::ErrorCode::kIo, "cannot resolve /proc/self/exe for the supervisor");
  return std::string(buf, static_cast<size_t>(n));
}

nlohmann::json NvmlJson(const runtime::HostCapabilities& c) {
  nlohmann::json nvml_json;
  if (c.nvml) {
    nlohmann::json gpus = nlohmann::json::array();
    for (const auto& gpu : c.nvml->gpus) {
      nlohmann::json j = {{"index", gpu.index},
                          {"uuid", gpu.uuid},
                          {"name", gpu.name},
                          {"memory_total_bytes", gpu.memory_total_bytes},
                          {"minor", gpu.minor ? nlohmann::json(*gpu.minor) : nlohmann::json()}};
      if (!gpu.problem.empty()) j["problem"] = gpu.problem;
      gpus.push_back(std::move(j));
    }
    nvml_json = {{"available", true},
                 {"library", c.nvml->library_path},
                 {"driver_version", c.nvml->driver_version},
                 {"gpus", std::move(gpus)}};
  } else {
    nvml_json = {
        {"available", false}, {"reason", c.nvml_unavailable}, {"gpus", nlohmann::json::array()}};
  }
  return nvml_json;
}

/// What `sandbox check` finds, as JSON.
void PrintCheckJson(const runtime::HostCapabilities& c, const std::vector<std::string>& missing,
                    const std::vector<std::string>& driver_bound) {
  auto limit = [](const runtime::LimitSupport& l) {
    return nlohmann::json{{"enforced_by", EnforcementName(l.how)}, {"detail", l.detail}};
  };
  PrintJson({{"root", c.is_root},
             {"cgroups", c.cgroups.Describe()},
             {"memory", limit(c.memory)},
             {"cpu", limit(c.cpu)},
             {"pids", limit(c.pids)},
             {"devices", limit(c.devices)},
             {"freezer", limit(c.freezer)},
             {"user_namespaces", c.user_namespaces},
             {"user_namespaces_detail", c.user_namespaces_detail},
             {"seccomp", c.seccomp},
             {"seccomp_denied", runtime::SeccompDeniedSyscalls()},
             {"disk_quota", !c.mkfs_ext4.empty() && c.loop_devices},
             {"bwrap", c.bwrap},
             {"slirp4netns", c.slirp4netns},
             {"egress", c.egress_unavailable.empty() ? "available" : c.egress_unavailable},
             {"podman", c.podman},
             {"runc", c.runc},
             {"nvml", NvmlJson(c)},
             {"gpu_devices", c.gpu_devices},
             {"driver_libraries", c.driver_libraries},
             {"driver_libraries_bound", driver_bound},
             {"driver_library_dirs_unlisted", c.driver_library_dirs_unlisted},
             {"nofile_hard", c.nofile_hard},
             {"nproc_hard", c.nproc_hard},
             {"cannot_enforce", missing}});
}

/// What `sandbox check` finds, for people.
void PrintCheckText(const runtime::HostCapabilities& c, const std::vector<std::string>& missing,
                    const std::vector<std::string>& driver_bound) {
  auto yes = [](bool b) { return b ? "yes" : "NO"; };
  auto path = [](const std::string& p) { return p.empty() ? std::string("NOT FOUND") : p; };
  std::cout << "running as root:     " << yes(c.is_root) << "\n"
            << "cgroups:             " << c.cgroups.Describe() << "\n"
            << "memory limit:        " << EnforcementName(c.memory.how) << " (" << c.memory.detail
            << ")\n"
            << "cpu limit:           " << EnforcementName(c.cpu.how) << " (" << c.cpu.detail
            << ")\n"
            << "pids limit:          " << EnforcementName(c.pids.how) << " (" << c.pids.detail
            << ")\n"
            << "device control:      " << EnforcementName(c.devices.how) << " (" << c.devices.detail
            << ")\n"
            << "freeze for teardown: " << EnforcementName(c.freezer.how) << " (" << c.freezer.detail
            << ")\n"
            << "user namespaces:     " << yes(c.user_namespaces) << " (" << c.user_namespaces_detail
            << ")\n"
            << "seccomp:             " << yes(c.seccomp) << "\n"
            << "disk quota (loop):   " << yes(!c.mkfs_ext4.empty() && c.loop_devices) << "\n"
            << "bwrap:               " << path(c.bwrap) << "\n"
            << "slirp4netns:         " << path(c.slirp4netns) << "\n"
            << "network egress:      "
            << (c.egress_unavailable.empty() ? "available" : c.egress_unavailable) << "\n"
            << "podman / runc:       " << path(c.podman) << " / " << path(c.runc) << "\n"
            << "GPU device nodes:    " << (c.gpu_devices.empty() ? "none" : "");
  for (const auto& d : c.gpu_devices) std::cout << d << " ";
  std::cout << "\n";
  if (c.nvml) {
    std::cout << "NVML:                driver " << c.nvml->driver_version << ", "
              << c.nvml->gpus.size() << " GPU(s) (" << c.nvml->library_path << ")\n";
    for (const auto& gpu : c.nvml->gpus) {
      std::cout << "  GPU " << gpu.index << ": " << (gpu.uuid.empty() ? "?" : gpu.uuid) << "  "
                << gpu.name << ", " << gpu.memory_total_bytes / (1ull << 20) << " MiB, "
                << (gpu.minor ? "/dev/nvidia" + std::to_string(*gpu.minor) : "minor unknown");
      if (!gpu.problem.empty()) std::cout << "  (" << gpu.problem << ")";
      std::cout << "\n";
    }
  } else {
    std::cout << "NVML:                " << c.nvml_unavailable << "\n";
  }
  std::cout << "driver libraries:    " << c.driver_libraries.size() << " found, "
            << driver_bound.size() << " outside the system paths (bound into sandboxes)";
  if (!c.driver_library_dirs_unlisted.empty()) {
    std::cout << "; given to workloads in LD_LIBRARY_PATH:";
    for (const auto& d : c.driver_library_dirs_unlisted) std::cout << " " << d;
  }
  std::cout << "\n"
            << "hard rlimits:        nofile " << c.nofile_hard << ", nproc " << c.nproc_hard
            << "\n";
  if (missing.empty()) {
    std::cout << "\nThis host can enforce every sandbox limit.\n";
  } else {
    std::cout << "\nThis host CANNOT enforce:\n";
    for (const auto& m : missing) std::cout << "  - " << m << "\n";
  }
}

void RunCheck(const GlobalOptions& g) {
  runtime::HostCapabilities c = runtime::Probe();
  runtime::WorkloadSpec probe_spec;
  probe_spec.gpu_uuids = {"any"};
  auto missing = runtime::UnenforceableLimits(c, probe_spec);
  const auto driver_bound =
      runtime::PathsOutside(c.driver_libraries, runtime::SystemReadOnlyPaths());
  if (g.Json())
    PrintCheckJson(c, missing, driver_bound);
  else
    PrintCheckText(c, missing, driver_bound);
}

struct RunFlags {
  std::string memory = "2G", disk = "1G", shm = "64M", cpus = "1", network = "none", id, state_dir;
  std::string device_dir = "/dev", image;
  uint32_t pids = 256, stop_grace_ms = runtime::kStopGraceMsDefault, podman_userns_base = 0;
  std::vector<std::string> ports, gpus, env, gpu_map, ro_binds, command;
  bool allow_unenforced = false, keep = false;
};

uint32_t ParseCpus(const std::string& s) {
  // "1", "0.5", "2.25" -> thousandths of a core, without floating point.
  size_t dot = s.find('.');
  std::string whole = s.substr(0, dot), frac = dot == std::string::npos ? "" : s.substr(dot + 1);
  if ((whole.empty() && frac.empty()) || frac.size() > 3 ||
      whole.find_first_not_of("0123456789") != std::string::npos ||
      frac.find_first_not_of("0123456789") != std::string::npos || whole.size() > 4)
    FailCommand(base::ErrorCode::kInvalidArgument,
                "--cpus " + s + ": give cores like 1, 0.5 or 2.25");
  while (frac.size() < 3) frac += '0';
  return static_cast<uint32_t>((whole.empty() ? 0 : std::stoul(whole)) * 1000 + std::stoul(frac));
}

/// The workload `sandbox run` starts, from its flags.
runtime::WorkloadSpec SpecFromFlags(const RunFlags& f) {
  runtime::WorkloadSpec spec;
  spec.id = f.id.empty() ? "run-" + std::to_string(::getpid()) : f.id;
  spec.lease_id = spec.id;
  spec.command = f.command;
  spec.resources.memory_bytes = OrFail(runtime::ParseByteSize(f.memory), "--memory");
  spec.resources.disk_bytes = OrFail(runtime::ParseByteSize(f.disk), "--disk");
  spec.resources.shm_bytes = OrFail(runtime::ParseByteSize(f.shm), "--shm");
  spec.resources.cpu_millis = ParseCpus(f.cpus);
  spec.resources.pids_max = f.pids;
  spec.allow_unenforced_limits = f.allow_unenforced;
  if (f.network == "none")
    spec.network = runtime::NetworkMode::kNone;
  else if (f.network == "egress")
    spec.network = runtime::NetworkMode::kEgress;
  else if (f.network == "ports")
    spec.network = runtime::NetworkMode::kPorts;
  for (const auto& p : f.ports) {
    size_t colon = p.find(':');
    try {
      unsigned long c = std::stoul(p.substr(0, colon));
      unsigned long h = colon == std::string::npos ? 0 : std::stoul(p.substr(colon + 1));
      if (c == 0 || c > 65535 || h > 65535) throw std::out_of_range("port");
      spec.ports.push_back({static_cast<uint16_t>(c), static_cast<uint16_t>(h)});
    } catch (const std::exception&) {
      FailCommand(base::ErrorCode::kInvalidArgument,
                  "--port " + p + ": write PORT or PORT:HOSTPORT (1-65535)");
    }
  }
  spec.gpu_uuids = f.gpus;
  spec.stop_grace_ms = f.stop_grace_ms;
  if (!f.image.empty()) {
    spec.backend = runtime::Backend::kPodman;
    spec.image = f.image;
  }
  for (const auto& kv : f.env) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      FailCommand(base::ErrorCode::kInvalidArgument, "--env " + kv + ": write NAME=VALUE");
    spec.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return spec;
}

/// The runtime's options for `sandbox run`, from its flags.
runtime::RuntimeOptions OptionsFromFlags(const RunFlags& f) {
  runtime::RuntimeOptions opts;
  if (!f.state_dir.empty()) opts.state_dir = f.state_dir;
  opts.supervisor_command = {SelfExe(), "sandbox", "supervise"};
  opts.device_dir = f.device_dir;
  opts.podman.userns_base = f.podman_userns_base;
  for (const auto& m : f.gpu_map) {
    size_t eq = m.find('=');
    if (eq == std::string::npos)
      FailCommand(base::ErrorCode::kInvalidArgument, "--gpu-map " + m + ": write UUID=MINOR");
    opts.gpu_minors[m.substr(0, eq)] = static_cast<uint32_t>(std::stoul(m.substr(eq + 1)));
  }
  for (const auto& b : f.ro_binds) {
    size_t colon = b.find(':');
    std::string src = b.substr(0, colon),
                dst = colon == std::string::npos ? src : b.substr(colon + 1);
    if (src.empty() || src[0] != '/' || dst.empty() || dst[0] != '/' ||
        dst.find("..") != std::string::npos)
      FailCommand(base::ErrorCode::kInvalidArgument,
                  "--ro-bind " + b + ": write HOSTPATH[:PATH_INSIDE], both absolute");
    if (::access(src.c_str(), F_OK) != 0)
      FailCommand(base::ErrorCode::kNotFound, "--ro-bind " + b + ": " + src + " does not exist");
    opts.extra_ro_binds.emplace_back(src, dst);
  }
  return opts;
}

int RunWorkload(const GlobalOptions&, const RunFlags& f) {
  const runtime::WorkloadSpec spec = SpecFromFlags(f);
  runtime::Runtime rt(OptionsFromFlags(f));
  runtime::WorkloadInfo info = OrFail(rt.Start(spec), "sandbox run");
  g_supervisor_pid = info.supervisor_pid;
  struct sigaction sa {};
  sa.sa_handler = ForwardStop;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(s, &sa, nullptr);
  for (const auto& u : info.unenforced) std::cerr << "gpunet: NOT ENFORCED: " << u << "\n";
  for (const auto& p : info.ports)
    std::cerr << "gpunet: port " << p.container_port << " reachable at 127.0.0.1:" << p.host_port
              << "\n";
  auto status = OrFail(rt.Follow(spec.id, [](std::string_view stream, std::string_view data) {
    auto& os = stream == "stdout" ? std::cout : std::cerr;
    os.write(data.data(), static_cast<std::streamsize>(data.size()));
    os.flush();
  }));
  if (status.reason != runtime::ExitReason::kExited)
    std::cerr << "gpunet: " << status.message << "\n";
  if (f.keep) {
    std::cerr << "gpunet: kept " << info.run_dir << " (outputs in " << info.outputs_dir
              << "); remove with: umount " << info.run_dir << "/fs && rm -r " << info.run_dir
              << "\n";
  } else if (auto r = rt.Remove(spec.id); !r) {
    std::cerr << "gpunet: cleanup failed: " << r.error().message << "\n";
  }
  return status.exit_code;
}

/// `sandbox environments`: one line each (name, backend, id), or JSON; then why any
/// environment is missing.
void PrintEnvironments(const GlobalOptions& g, const std::vector<runtime::Environment>& list,
                       const std::vector<std::string>& notes) {
  auto backend = [](runtime::Backend b) {
    return b == runtime::Backend::kPodman ? "podman" : "sandbox";
  };
  if (g.Json()) {
    nlohmann::json items = nlohmann::json::array();
    for (const auto& e : list)
      items.push_back({{"name", e.name}, {"backend", backend(e.backend)}, {"id", e.id}});
    PrintJson({{"environments", std::move(items)}, {"unavailable", notes}});
    return;
  }
  for (const auto& e : list)
    std::cout << e.name << "  " << backend(e.backend) << (e.id.empty() ? "" : "  " + e.id) << "\n";
  for (const auto& n : notes) std::cerr << "gpunet: not listed: " << n << "\n";
}

/// The options of `sandbox run`, into `flags`.
void AddRunOptions(CLI::App* run, RunFlags& flags) {
  run->add_option("--memory", flags.memory, "Memory limit (K/M/G/T)")->capture_default_str();
  run->add_option("--cpus", flags.cpus, "CPU quota in cores, e.g. 0.5")->capture_default_str();
  run->add_option("--pids", flags.pids, "Maximum processes and threads")->capture_default_str();
  run->add_option("--disk", flags.disk, "Quota of /work + /outputs + /tmp")->capture_default_str();
  run->add_option("--shm", flags.shm, "Size of /dev/shm")->capture_default_str();
  run->add_option(
         "--network", flags.network,
         "none: loopback only; egress: outbound internet only; ports: listed ports from the host")
      ->check(CLI::IsMember({"none", "egress", "ports"}))
      ->capture_default_str();
  run->add_option("--port", flags.ports,
                  "PORT[:HOSTPORT] to forward from 127.0.0.1 (with --network ports)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  run->add_option("--gpus", flags.gpus, "GPU UUIDs to give the workload")
      ->delimiter(',')
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  run->add_option("--env", flags.env, "NAME=VALUE for the workload (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  run->add_option("--id", flags.id, "Workload id, [a-z0-9-] (default run-<pid>)");
  run->add_option("--state-dir", flags.state_dir,
                  "Run dirs and uid locks (default /var/lib/gpunet/sandbox)");
  run->add_option("--gpu-map", flags.gpu_map,
                  "UUID=MINOR when neither NVML nor the driver's /proc files say (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  run->add_option("--ro-bind", flags.ro_binds,
                  "HOSTPATH[:PATH_INSIDE] to show read-only inside (a program, a dataset; "
                  "repeatable). The workload's uid must be able to read it")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  run->add_option("--device-dir", flags.device_dir, "Where /dev/nvidia* nodes are (testing)")
      ->capture_default_str();
  run->add_option("--image", flags.image,
                  "Run in this image of podman's local store instead of the host's file system "
                  "(never pulled; see `gpunet sandbox environments`)");
  run->add_option("--stop-grace", flags.stop_grace_ms,
                  "Milliseconds between SIGTERM and the kill when the run is stopped (Ctrl-C)")
      ->capture_default_str();
  run->add_option("--podman-userns-base", flags.podman_userns_base,
                  "With --image where /etc/subuid has no range for \"containers\": first host "
                  "id of the containers' user namespaces (65536 per workload, >= 65536)");
  run->add_flag("--allow-unenforced", flags.allow_unenforced,
                "Start even when some limit cannot be enforced here (says which)");
  run->add_flag("--keep", flags.keep, "Keep the run dir (logs, outputs) after the workload ends");
  // Everything after "--" (or the first non-option word) is the command, verbatim.
  run->add_option("command", flags.command, "The command and its arguments, after --");
}

}  // namespace

void RegisterSandboxCommands(CLI::App& app, GlobalOptions& g) {
  auto* sandbox = app.add_subcommand(
      "sandbox", "Run workloads in the provider sandbox (bubblewrap + cgroups + seccomp)");
  sandbox->require_subcommand(1);
  sandbox->footer(
      "Providers run tenants' code in this sandbox. Start with `gpunet sandbox check` to see what\n"
      "this host can enforce; see docs/sandbox.md.");

  auto* check = sandbox->add_subcommand(
      "check", "Show what this host can enforce (cgroups, namespaces, seccomp, GPUs) and what not");
  check->callback([&g] { RunCheck(g); });

  auto flags = std::make_shared<RunFlags>();
  auto* run = sandbox->add_subcommand(
      "run", "Run a command the way a lease would, streaming its output; exits with its exit code");
  AddRunOptions(run, *flags);
  run->footer(
      "Examples:\n"
      "  gpunet sandbox run -- python3 -c 'print(1)'\n"
      "  gpunet sandbox run --memory 512M --cpus 0.5 --pids 64 --disk 2G -- sh -c 'echo hi > "
      "/outputs/x'\n"
      "  gpunet sandbox run --network ports --port 8888 -- python3 -m http.server 8888\n"
      "  gpunet sandbox run --gpus GPU-5a1c... -- nvidia-smi\n"
      "  gpunet sandbox run --gpus GPU-5a1c... --ro-bind /opt/job/bin:/job -- /job/train\n"
      "  gpunet sandbox run --image localhost/pytorch:2.3 --gpus GPU-5a1c... -- python3 "
      "train.py\n"
      "Inside: /work (cwd, HOME), /outputs ($GPUNET_OUTPUT_DIR) and /tmp on the disk quota; "
      "read-only /usr;\n"
      "no host processes, files, env or network. A kill prints its reason (e.g. \"killed: out of\n"
      "memory (limit 2G)\") and exits 128+signal.");
  run->callback([&g, flags] {
    if (flags->command.empty() && flags->image.empty())
      FailCommand(base::ErrorCode::kInvalidArgument,
                  "no command: write it after --, e.g. gpunet sandbox run -- echo hi");
    std::cout.flush();
    std::exit(RunWorkload(g, *flags));
  });

  auto envs = std::make_shared<RunFlags>();
  auto* environments = sandbox->add_subcommand(
      "environments", "List what this host can run a workload in: the host, and podman's images");
  environments->add_option("--podman-userns-base", envs->podman_userns_base,
                           "As for `sandbox run --image` (podman is usable only with it where "
                           "/etc/subuid has no range for \"containers\")");
  environments->footer(
      "\"host\" is this sandbox over the host's own file system; the others are images of\n"
      "podman's local store (podman load/import adds one; nothing is ever pulled). This is\n"
      "what a provider's tenant API answers at GET /environments.");
  environments->callback([&g, envs] {
    std::vector<std::string> notes;
    auto list = runtime::Runtime(OptionsFromFlags(*envs)).Environments(&notes);
    PrintEnvironments(g, list, notes);
  });

  auto sup = std::make_shared<std::pair<std::string, int>>("", -1);
  auto* supervise = sandbox->add_subcommand("supervise", "");  // hidden: started by the runtime
  supervise->group("");
  supervise->add_option("--run-dir", sup->first)->required();
  supervise->add_option("--ready-fd", sup->second)->required();
  supervise->callback([sup] { std::exit(runtime::SupervisorMain(sup->first, sup->second)); });
}

}  // namespace gpunet::apps
