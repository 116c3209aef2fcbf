#include "provider/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <vector>

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;

namespace {

bool ParseId(std::string_view text, uint32_t* out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

base::Result<UserIds> LookupUser(const std::string& name) {
  UserIds ids;
  ids.name = name;
  if (!name.empty() && name[0] == '#') {
    const size_t colon = name.find(':');
    uint32_t uid = 0;
    uint32_t gid = 0;
    if (colon == std::string::npos || !ParseId(std::string_view(name).substr(1, colon - 1), &uid) ||
        !ParseId(std::string_view(name).substr(colon + 1), &gid)) {
      return Fail(ErrorCode::kInvalidArgument,
                  "user '" + name + "' is neither a user name nor #<uid>:<gid>");
    }
    ids.uid = uid;
    ids.gid = gid;
  } else {
    struct passwd pw {};
    struct passwd* found = nullptr;
    std::vector<char> buffer(16384);
    const int rc = ::getpwnam_r(name.c_str(), &pw, buffer.data(), buffer.size(), &found);
    if (rc != 0 || found == nullptr) {
      return Fail(ErrorCode::kNotFound,
                  "no user '" + name +
                      "' on this host; create one (useradd --system gpunet-api) or name another "
                      "in provider.yaml's daemon.api_user");
    }
    ids.uid = pw.pw_uid;
    ids.gid = pw.pw_gid;
  }
  if (ids.uid == 0 || ids.gid == 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "user '" + name +
                    "' is root or in group root; the tenant-facing process must not run as root");
  }
  return ids;
}

int DropPrivileges(const UserIds& ids) noexcept {
  // Raw syscalls: glibc's wrappers would signal every thread of the parent.
  if (::syscall(SYS_setgroups, 0, nullptr) != 0) return errno;
  if (::syscall(SYS_setresgid, ids.gid, ids.gid, ids.gid) != 0) return errno;
  if (::syscall(SYS_setresuid, ids.uid, ids.uid, ids.uid) != 0) return errno;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (::syscall(SYS_setresuid, 0, 0, 0) == 0) return EPERM;  // must be gone for good
  if (::getuid() != ids.uid || ::geteuid() != ids.uid || ::getgid() != ids.gid) return EPERM;
  return 0;
}

}  // namespace gpunet::provider
