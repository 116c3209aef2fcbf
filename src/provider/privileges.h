// Dropping root for the tenant-facing process (docs/provider.md "Two processes").
//
// The daemon's root part forks the process that parses tenant input and, before it
// execs, takes away everything root has: supplementary groups, gid, uid (real,
// effective and saved, so it cannot be taken back), and — with no_new_privs — any
// way to regain privileges through a set-uid binary or file capabilities. Only
// raw system calls run between fork and exec, so this is safe in a daemon with
// threads.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"

namespace gpunet::provider {

struct UserIds {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
};

/// The uid and primary gid of a user name (or of "#<uid>:<gid>", for hosts whose
/// tenant-facing user has no passwd entry). kNotFound naming the user; root is
/// refused (kInvalidArgument): the tenant-facing process never runs as root.
base::Result<UserIds> LookupUser(const std::string& name);

/// Becomes `ids` for good: setgroups(0), setresgid, setresuid, PR_SET_NO_NEW_PRIVS,
/// then checks that uid 0 cannot be taken back. Returns an errno-style code (0 = ok)
/// instead of an Error, because it runs between fork and exec where nothing may
/// allocate.
int DropPrivileges(const UserIds& ids) noexcept;

}  // namespace gpunet::provider
