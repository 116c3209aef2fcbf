#include "provider/privileges.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "util/temp_dir.h"

namespace gpunet::provider {
namespace {

TEST(Privileges, LooksUpUsersAndRefusesRoot) {
  auto nobody = LookupUser("nobody");
  ASSERT_TRUE(nobody.has_value()) << nobody.error().message;
  EXPECT_NE(nobody->uid, 0u);
  EXPECT_EQ(LookupUser("root").error().code, base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(LookupUser("#0:5").error().code, base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(LookupUser("no-such-user-gpunet").error().code, base::ErrorCode::kNotFound);
  auto numeric = LookupUser("#231000:231000");
  ASSERT_TRUE(numeric.has_value());
  EXPECT_EQ(numeric->uid, 231000u);
  EXPECT_FALSE(LookupUser("#12x:3").has_value());
  EXPECT_FALSE(LookupUser("#12").has_value());
}

// The dropped child's checks run in a process of their own: this test binary
// started again (posix_spawn of /proc/self/exe) with kChildEnv set, whose static
// initializer below runs them before main and exits with the number of the first
// check that failed. A fork of the threaded test process would not do:
// ThreadSanitizer does not support a forked child that goes on running (provider_test
// runs under `make tsan`).
constexpr const char* kChildEnv = "GPUNET_PRIVILEGES_TEST_CHILD";

/// `spec` is "<inherited fd>:<path of root's 0600 file>".
[[noreturn]] void RunDroppedChild(const char* spec) {
  char* rest = nullptr;
  const long inherited = std::strtol(spec, &rest, 10);
  if (rest == nullptr || *rest != ':') ::_exit(9);
  const char* secret = rest + 1;
  const UserIds ids{231001, 231001, "#231001:231001"};
  if (DropPrivileges(ids) != 0) ::_exit(10);
  if (::open(secret, O_RDONLY) >= 0) ::_exit(11);
  // A descriptor opened before the drop stays readable: that is how the TLS key
  // reaches the tenant-facing process.
  char c = 0;
  if (::pread(static_cast<int>(inherited), &c, 1, 0) != 1 || c != 'r') ::_exit(12);
  // Raw syscalls: the kernel's answer, for this thread.
  if (::syscall(SYS_setresuid, 0, 0, 0) == 0 || ::syscall(SYS_setresuid, -1, 0, -1) == 0)
    ::_exit(13);
  if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) ::_exit(14);
  gid_t groups[4];
  if (::getgroups(4, groups) != 0) ::_exit(15);
  ::_exit(0);
}

[[maybe_unused]] const bool kIsDroppedChild = [] {
  if (const char* spec = std::getenv(kChildEnv)) RunDroppedChild(spec);
  return false;
}();

TEST(Privileges, TheDroppedChildCanNeitherReadRootsFilesNorComeBack) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  testing::TempDir tmp({.parent = "", .prefix = "gpunet-priv", .mode = 0755});
  const std::string secret = tmp.Sub("secret");
  std::ofstream(secret) << "root only";
  ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);
  const int inherited = ::open(secret.c_str(), O_RDONLY);  // no O_CLOEXEC: the child gets it
  ASSERT_GE(inherited, 0);

  std::vector<std::string> env{std::string(kChildEnv) + "=" + std::to_string(inherited) + ":" +
                               secret};
  for (char** e = environ; *e != nullptr; ++e)
    if (std::string_view(*e).substr(0, std::string_view(kChildEnv).size()) != kChildEnv)
      env.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string name = "provider_test";
  char* argv[] = {name.data(), nullptr};
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data());
  ::close(inherited);
  ASSERT_EQ(spawned, 0) << std::strerror(spawned);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed check " << WEXITSTATUS(status);
}

}  // namespace
}  // namespace gpunet::provider
