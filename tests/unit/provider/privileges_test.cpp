#include "provider/privileges.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

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

TEST(Privileges, TheDroppedChildCanNeitherReadRootsFilesNorComeBack) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  testing::TempDir tmp({.parent = "", .prefix = "gpunet-priv", .mode = 0755});
  const std::string secret = tmp.Sub("secret");
  std::ofstream(secret) << "root only";
  ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);
  // A descriptor opened before the drop stays readable: that is how the TLS key
  // reaches the tenant-facing process.
  const int inherited = ::open(secret.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(inherited, 0);

  const UserIds ids{231001, 231001, "#231001:231001"};
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (DropPrivileges(ids) != 0) ::_exit(10);
    if (::open(secret.c_str(), O_RDONLY) >= 0) ::_exit(11);
    char c = 0;
    if (::pread(inherited, &c, 1, 0) != 1 || c != 'r') ::_exit(12);
    if (::setuid(0) == 0 || ::seteuid(0) == 0) ::_exit(13);
    if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) ::_exit(14);
    gid_t groups[4];
    if (::getgroups(4, groups) != 0) ::_exit(15);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed check " << WEXITSTATUS(status);
  ::close(inherited);
}

}  // namespace
}  // namespace gpunet::provider
