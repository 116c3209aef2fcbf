#include "runtime/sandbox_args.h"

#include <sys/stat.h>
#include <unistd.h>

#include "base/check.h"

namespace gpunet::runtime {

std::vector<std::string> SystemReadOnlyPaths() {
  return {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
          // what Debian's libraries and tools read from /etc
          "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
          "/etc/localtime", "/etc/nsswitch.conf", "/etc/protocols", "/etc/services",
          "/etc/ssl/certs", "/etc/ca-certificates", "/etc/mime.types", "/etc/host.conf",
          "/etc/gai.conf", "/etc/python3", "/etc/python3.11", "/etc/fonts",
          // the GPU driver's user-space configuration
          "/etc/OpenCL", "/etc/vulkan", "/usr/share/nvidia"};
}

std::string BwrapEnvArgs(const std::vector<std::string>& env) {
  std::string out("--clearenv", sizeof "--clearenv");  // with its NUL
  for (const auto& kv : env) {
    const size_t eq = kv.find('=');
    // A NUL would shift every later piece: a value would be read as an option.
    GPUNET_CHECK(eq != std::string::npos && eq > 0 && kv.find('\0') == std::string::npos);
    out.append("--setenv", sizeof "--setenv");
    out.append(kv, 0, eq).push_back('\0');
    out.append(kv, eq + 1).push_back('\0');
  }
  return out;
}

std::vector<std::string> BuildBwrapArgs(const WorkloadSpec& spec, const SandboxPlan& plan) {
  GPUNET_CHECK(plan.seccomp_fd >= 0 && plan.json_status_fd >= 0 && plan.block_fd >= 0);
  GPUNET_CHECK(plan.env_args_fd >= 0 && plan.session_listen_fd >= 0);
  GPUNET_CHECK(!plan.init_path.empty() && plan.init_path[0] == '/');
  std::vector<std::string> a = {plan.bwrap};
  auto add = [&](std::initializer_list<std::string> items) { a.insert(a.end(), items); };
  // Namespaces: all of them, user and cgroup explicitly (--unshare-all only "tries"
  // those), and no further user namespaces inside.
  add({"--unshare-all", "--unshare-user", "--unshare-cgroup", "--disable-userns"});
  add({"--die-with-parent", "--new-session", "--cap-drop", "ALL"});
  add({"--hostname", "gpunet"});
  for (const auto& path : SystemReadOnlyPaths()) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      // merged-/usr hosts: /bin -> usr/bin. Recreate the link, never follow it out.
      char target[4096];
      ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      add({"--symlink", std::string(target, static_cast<size_t>(n)), path});
    } else {
      add({"--ro-bind", path, path});
    }
  }
  for (const char* f : {"passwd", "group", "hosts", "resolv.conf"})
    add({"--ro-bind", plan.etc_dir + "/" + f, std::string("/etc/") + f});
  for (const auto& [src, dst] : plan.ro_binds) add({"--ro-bind", src, dst});
  add({"--ro-bind", plan.init_path, kInsideInitPath});
  add({"--proc", "/proc", "--dev", "/dev"});
  add({"--size", std::to_string(plan.shm_bytes), "--tmpfs", "/dev/shm"});
  for (const auto& [src, dst] : plan.dev_binds) add({"--dev-bind", src, dst});
  add({"--bind", plan.work_dir, "/work", "--bind", plan.outputs_dir, "/outputs", "--bind",
       plan.tmp_dir, "/tmp"});
  add({"--remount-ro", "/", "--chdir", spec.workdir});
  add({"--seccomp", std::to_string(plan.seccomp_fd), "--json-status-fd",
       std::to_string(plan.json_status_fd), "--block-fd", std::to_string(plan.block_fd)});
  add({"--args", std::to_string(plan.env_args_fd)});
  add({"--", kInsideInitPath, "--listen-fd", std::to_string(plan.session_listen_fd), "--"});
  a.insert(a.end(), spec.command.begin(), spec.command.end());
  return a;
}

}  // namespace gpunet::runtime
