#include "runtime/host_resources.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <optional>
#include <sstream>

#include "base/check.h"
#include "runtime/nvml.h"
#include "runtime/runtime.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;

constexpr uint32_t kNvidiaMajor = 195;
constexpr uint32_t kNvidiaCtlMinor = 255;

base::Result<UidLease> AllocateUid(const std::string& state_dir, uint32_t first, uint32_t count) {
  GPUNET_CHECK(first > 0 && count > 0);
  std::string dir = state_dir + "/uids";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoFail("mkdir " + dir, errno);
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t uid = first + i;
    std::string path = dir + "/" + std::to_string(uid) + ".lock";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.Valid()) return ErrnoFail("open " + path, errno);
    if (::flock(fd.Get(), LOCK_EX | LOCK_NB) == 0) return UidLease(uid, std::move(fd));
    if (errno != EWOULDBLOCK) return ErrnoFail("flock " + path, errno);
  }
  return Fail(ErrorCode::kLimitExceeded, "all " + std::to_string(count) + " workload uids from " +
                                             std::to_string(first) + " are in use");
}

base::Status MakeWorkloadDirs(const state_files::StateDir& fs, uint32_t uid) {
  GPUNET_CHECK(uid > 0);
  for (const char* d : {"work", "outputs", "tmp"}) {
    const std::string path = fs.Path() + "/" + d;
    if (::mkdirat(fs.Fd(), d, 0700) != 0) return ErrnoFail("mkdir " + path, errno);
    // AT_SYMLINK_NOFOLLOW: had a link been put there since mkdirat, chown changes the
    // link, not what it points at.
    if (::fchownat(fs.Fd(), d, uid, uid, AT_SYMLINK_NOFOLLOW) != 0)
      return ErrnoFail("chown " + path, errno);
  }
  return base::Ok();
}

base::Status MakeInsideDirs(const state_files::StateDir& fs, uint32_t uid,
                            const std::vector<std::string>& inside) {
  GPUNET_CHECK(uid > 0);
  for (const auto& path : inside) {
    if (!HostPathOfInside(fs.Path(), path)) continue;  // not on the workload's disk
    GPUNET_CHECK(path.size() > 1 && path[0] == '/');
    UniqueFd dir(::fcntl(fs.Fd(), F_DUPFD_CLOEXEC, 0));
    if (!dir.Valid()) return ErrnoFail("dup " + fs.Path(), errno);
    size_t start = 1;
    while (start <= path.size()) {
      size_t end = path.find('/', start);
      if (end == std::string::npos) end = path.size();
      const std::string part = path.substr(start, end - start);
      GPUNET_CHECK(!part.empty() && part != "." && part != "..");  // ValidateInsideDirs
      if (::mkdirat(dir.Get(), part.c_str(), 0755) == 0) {
        if (::fchownat(dir.Get(), part.c_str(), uid, uid, AT_SYMLINK_NOFOLLOW) != 0)
          return ErrnoFail("chown " + fs.Path() + path, errno);
      } else if (errno != EEXIST) {
        return ErrnoFail("mkdir " + fs.Path() + path, errno);
      }
      UniqueFd next(
          ::openat(dir.Get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next.Valid()) return ErrnoFail("open " + fs.Path() + path, errno);
      dir = std::move(next);
      start = end + 1;
    }
  }
  return base::Ok();
}

base::Status WriteSandboxEtc(const state_files::StateDir& run, uint32_t uid,
                             std::string_view resolv_conf) {
  GPUNET_CHECK(uid > 0);
  auto etc = run.Sub("etc", state_files::Create::kIfMissing);
  if (!etc) return std::unexpected(etc.error());
  const std::string u = std::to_string(uid);
  // The login shell of `gpunet shell` and ssh sessions (the host's /usr is the
  // sandbox's): bash where there is one.
  const std::string shell = ::access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
  GPUNET_TRY(etc->Write("passwd",
                        "root:x:0:0:root:/:/usr/sbin/nologin\ngpunet:x:" + u + ":" + u +
                            ":workload:/work:" + shell +
                            "\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n",
                        0644));
  GPUNET_TRY(etc->Write("group", "root:x:0:\ngpunet:x:" + u + ":\nnogroup:x:65534:\n", 0644));
  GPUNET_TRY(etc->Write("hosts", "127.0.0.1 localhost gpunet\n::1 localhost\n", 0644));
  GPUNET_TRY(etc->Write("resolv.conf", resolv_conf, 0644));
  return base::Ok();
}

bool IsMountPoint(const std::string& path) {
  auto info = ReadFileToString("/proc/self/mountinfo", 16 << 20);
  if (!info) return false;
  std::istringstream in(*info);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, dev, root, mnt;
    f >> id >> parent >> dev >> root >> mnt;
    if (mnt == path) return true;
  }
  return false;
}

base::Status CreateQuotaFs(const std::string& image, const std::string& mountpoint,
                           uint64_t bytes) {
  if (bytes < (8ull << 20))
    return Fail(ErrorCode::kInvalidArgument,
                "disk quota " + std::to_string(bytes) + " bytes is below the 8M minimum");
  {
    UniqueFd fd(::open(image.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.Valid()) return ErrnoFail("create " + image, errno);
    if (::ftruncate(fd.Get(), static_cast<off_t>(bytes)) != 0)
      return ErrnoFail("truncate " + image, errno);
  }
  std::string mkfs = FindProgram("mkfs.ext4");
  std::string mount = FindProgram("mount");
  if (mkfs.empty() || mount.empty())
    return Fail(ErrorCode::kUnsupported,
                "disk quota needs mkfs.ext4 and mount: apt-get install e2fsprogs mount");
  std::string out;
  // No journal and no reserved blocks: a scratch fs whose every block is the tenant's.
  auto rc = RunProgram({mkfs, "-q", "-F", "-m", "0", "-O", "^has_journal", "-E",
                        "lazy_itable_init=1,root_owner=0:0", image},
                       &out);
  if (!rc) return std::unexpected(rc.error());
  if (*rc != 0) return Fail(ErrorCode::kIo, "mkfs.ext4 " + image + " failed: " + out);
  if (::mkdir(mountpoint.c_str(), 0711) != 0 && errno != EEXIST)
    return ErrnoFail("mkdir " + mountpoint, errno);
  rc = RunProgram({mount, "-o", "loop,nosuid,nodev", "-t", "ext4", image, mountpoint}, &out);
  if (!rc) return std::unexpected(rc.error());
  if (*rc != 0) return Fail(ErrorCode::kIo, "mounting " + image + " failed: " + out);
  if (::chmod(mountpoint.c_str(), 0711) != 0) return ErrnoFail("chmod " + mountpoint, errno);
  return base::Ok();
}

base::Status UnmountQuotaFs(const std::string& mountpoint) {
  if (!IsMountPoint(mountpoint)) return base::Ok();
  if (::umount2(mountpoint.c_str(), UMOUNT_NOFOLLOW) == 0) return base::Ok();
  if (errno == EBUSY && ::umount2(mountpoint.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
    return base::Ok();
  return ErrnoFail("umount " + mountpoint, errno);
}

std::optional<std::pair<std::string, uint32_t>> ParseNvidiaGpuInformation(std::string_view text) {
  std::string uuid;
  std::optional<uint32_t> minor;
  for (const std::string& text_line : Split(std::string(text), '\n')) {
    std::string_view line = text_line;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r'))
      value.remove_suffix(1);
    if (key == "GPU UUID") uuid = std::string(value);
    if (key == "Device Minor") {
      uint32_t m = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), m);
      if (ec == std::errc() && p == value.data() + value.size() && !value.empty()) minor = m;
    }
  }
  if (uuid.empty() || !minor) return std::nullopt;
  return std::make_pair(uuid, *minor);
}

std::map<std::string, uint32_t> ReadNvidiaMinors(const std::string& gpus_dir) {
  std::map<std::string, uint32_t> out;
  DIR* d = ::opendir(gpus_dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    auto info = ReadFileToString(gpus_dir + "/" + e->d_name + "/information");
    if (!info) continue;
    if (auto parsed = ParseNvidiaGpuInformation(*info)) out[parsed->first] = parsed->second;
  }
  ::closedir(d);
  return out;
}

std::map<std::string, uint32_t> HostGpuMinors(const std::string& gpus_dir) {
  std::map<std::string, uint32_t> out;
  if (auto nvml = ProbeNvml())
    for (const auto& gpu : nvml->gpus)
      if (!gpu.uuid.empty() && gpu.minor) out[gpu.uuid] = *gpu.minor;
  for (const auto& [uuid, minor] : ReadNvidiaMinors(gpus_dir)) out.emplace(uuid, minor);
  return out;
}

std::vector<std::string> BaseDeviceRules() {
  return {"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
          "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm"};
}

static std::optional<uint32_t> CharMajorByName(const std::string& name) {
  auto devices = ReadFileToString("/proc/devices");
  if (!devices) return std::nullopt;
  std::istringstream in(*devices);
  std::string line;
  bool in_char = false;
  while (std::getline(in, line)) {
    if (line.starts_with("Character"))
      in_char = true;
    else if (line.starts_with("Block"))
      in_char = false;
    std::istringstream f(line);
    uint32_t major = 0;
    std::string n;
    if (in_char && (f >> major >> n) && n == name) return major;
  }
  return std::nullopt;
}

base::Result<GpuDevicePlan> PlanGpuDevices(const std::vector<std::string>& uuids,
                                           const std::map<std::string, uint32_t>& minors,
                                           const std::string& device_dir) {
  GpuDevicePlan plan;
  if (uuids.empty()) return plan;
  for (const auto& uuid : uuids) {
    auto it = minors.find(uuid);
    if (it == minors.end())
      return Fail(ErrorCode::kNotFound,
                  "GPU " + uuid + " is not on this host (no device minor known for it)");
    std::string node = device_dir + "/nvidia" + std::to_string(it->second);
    struct stat st {};
    if (::stat(node.c_str(), &st) != 0 || !S_ISCHR(st.st_mode) ||
        major(st.st_rdev) != kNvidiaMajor || minor(st.st_rdev) != it->second)
      return Fail(ErrorCode::kNotFound,
                  "GPU " + uuid + ": " + node +
                      " is not NVIDIA character device 195:" + std::to_string(it->second));
    plan.binds.emplace_back(node, "/dev/nvidia" + std::to_string(it->second));
    plan.cgroup_allow.push_back("c 195:" + std::to_string(it->second) + " rwm");
    if (!plan.cuda_visible_devices.empty()) plan.cuda_visible_devices += ",";
    plan.cuda_visible_devices += uuid;
  }
  plan.cgroup_allow.push_back("c 195:" + std::to_string(kNvidiaCtlMinor) + " rwm");
  for (const char* extra : {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"}) {
    std::string node = device_dir + "/" + extra;
    if (::access(node.c_str(), F_OK) == 0)
      plan.binds.emplace_back(node, std::string("/dev/") + extra);
  }
  if (auto uvm = CharMajorByName("nvidia-uvm"))
    plan.cgroup_allow.push_back("c " + std::to_string(*uvm) + ":* rwm");
  return plan;
}

}  // namespace gpunet::runtime
