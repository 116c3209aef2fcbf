// A local OCI image for podman tests, made without any registry: busybox-static
// and a few applet links in a tarball, `podman import`ed under a per-process name.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "runtime/podman.h"

namespace gpunet::testing {

/// Builds the rootfs under `work_dir` and imports it as `name`; false when busybox
/// (Debian busybox-static) is missing or podman refuses.
inline bool MakeBusyboxImage(const runtime::PodmanBackend& backend, const std::string& work_dir,
                             const std::string& name) {
  namespace fs = std::filesystem;
  std::string busybox = fs::exists("/bin/busybox") ? "/bin/busybox" : "/usr/bin/busybox";
  if (!fs::exists(busybox)) return false;
  std::string root = work_dir + "/rootfs";
  for (const char* d : {"/bin", "/tmp", "/outputs", "/proc", "/sys", "/dev", "/etc"})
    fs::create_directories(root + d);
  fs::copy_file(busybox, root + "/bin/busybox", fs::copy_options::overwrite_existing);
  for (const char* app : {"sh", "echo", "cat", "ls", "id", "env", "head", "tr", "sleep", "seq",
                          "wc", "nc", "grep", "true", "ip", "ifconfig", "route"}) {
    std::error_code ec;
    fs::create_symlink("busybox", root + "/bin/" + app, ec);
  }
  std::string tar = work_dir + "/rootfs.tar";
  std::string cmd = "tar -C '" + root + "' -cf '" + tar + "' .";
  if (std::system(cmd.c_str()) != 0) return false;
  return backend.ImportRootfs(tar, name).has_value() && backend.ImageExists(name);
}

}  // namespace gpunet::testing
