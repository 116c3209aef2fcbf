// base/file_util: files are created with their final mode (seen at the instant
// of creation, by tracing the system calls), written atomically, synced with
// their directory, and never written or read through a symbolic link.
#include "base/file_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "unit/base/fs_trace.h"
#include "util/temp_dir.h"

namespace gpunet::base {
namespace {

namespace fs = std::filesystem;
using gpunet::testing::FileMode;
using gpunet::testing::FileText;
using gpunet::testing::FsCall;
using gpunet::testing::TempDir;
using gpunet::testing::TraceFsCalls;

void Put(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Names in dir other than `keep`: temporary files left behind.
std::vector<std::string> Others(const std::string& dir, const std::string& keep) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != keep) out.push_back(e.path().filename().string());
  return out;
}

// Sets the umask for one scope.
struct Umask {
  explicit Umask(mode_t m) : m_old(::umask(m)) {}
  ~Umask() { ::umask(m_old); }
  mode_t m_old;
};

TEST(WriteFileAtomic, ModeIsExactUnderAnyUmask) {
  TempDir dir;
  for (mode_t mask : {0000, 0022, 0077, 0777}) {
    for (mode_t mode : {0600, 0644, 0400}) {
      Umask um(mask);
      const std::string path =
          dir.Path() + "/f" + std::to_string(mask) + "-" + std::to_string(mode);
      ASSERT_TRUE(WriteFileAtomic(path, "x", {.mode = mode}));
      EXPECT_EQ(FileMode(path), mode) << "umask " << mask;
    }
  }
}

// The temporary file has the final mode the instant it exists (a umask of 0 would
// give a file created 0666-then-chmodded away), is created exclusively without
// following links, is synced, renamed into place, and the directory is synced after.
TEST(WriteFileAtomic, TempIsCreatedWithFinalModeThenSyncedRenamedAndDirSynced) {
  TempDir dir;
  const std::string path = dir.Path() + "/secret";
  Put(path, "old");
  auto trace = TraceFsCalls([&] {
    ::umask(0);
    return WriteFileAtomic(path, "new secret", {.mode = 0600}) ? 0 : 1;
  });
  ASSERT_TRUE(trace.traced) << "ptrace is not permitted here";
  ASSERT_EQ(trace.exit_code, 0);
  EXPECT_EQ(FileText(path), "new secret");
  EXPECT_EQ(FileMode(path), 0600u);
  EXPECT_TRUE(Others(dir.Path(), "secret").empty());

  int created = -1, synced = -1, renamed = -1, dir_synced = -1;
  std::string temp;
  for (size_t i = 0; i < trace.calls.size(); ++i) {
    const FsCall& c = trace.calls[i];
    if (c.kind == FsCall::Kind::kCreate && created < 0) {
      created = static_cast<int>(i);
      temp = c.path;
      EXPECT_EQ(c.mode, 0600u) << "created " << c.path << " with mode " << std::oct << c.mode;
      EXPECT_TRUE(c.flags & O_EXCL);
      EXPECT_TRUE(c.flags & O_NOFOLLOW);
      EXPECT_EQ(fs::path(c.path).parent_path(), fs::path(dir.Path()));
    } else if (c.kind == FsCall::Kind::kSync && c.path == temp) {
      synced = static_cast<int>(i);
    } else if (c.kind == FsCall::Kind::kRename && c.path == temp && c.path2 == path) {
      renamed = static_cast<int>(i);
    } else if (c.kind == FsCall::Kind::kSync && c.path == dir.Path()) {
      dir_synced = static_cast<int>(i);
    }
  }
  EXPECT_GE(created, 0);
  EXPECT_GT(synced, created);
  EXPECT_GT(renamed, synced);
  EXPECT_GT(dir_synced, renamed) << "the directory must be synced after the rename";
}

TEST(WriteFileAtomic, SymlinkAtTargetIsRefusedAndItsTargetUntouched) {
  TempDir dir;
  const std::string victim = dir.Path() + "/victim";
  Put(victim, "victim's bytes");
  ::chmod(victim.c_str(), 0644);
  const std::string path = dir.Path() + "/validator.seed";
  fs::create_symlink(victim, path);
  for (IfExists how : {IfExists::kReplace, IfExists::kRefuse}) {
    auto w = WriteFileAtomic(path, "seed", {.mode = 0600, .if_exists = how});
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().code, ErrorCode::kCorrupt);
    EXPECT_NE(w.error().message.find("symbolic link"), std::string::npos) << w.error().message;
    EXPECT_EQ(FileText(victim), "victim's bytes");
    EXPECT_EQ(FileMode(victim), 0644u);
    EXPECT_TRUE(fs::is_symlink(path));
  }
  // A dangling link is refused as well (rename would replace it; a link there is
  // not something we made).
  fs::remove(victim);
  EXPECT_FALSE(WriteFileAtomic(path, "seed"));
  EXPECT_FALSE(fs::exists(victim));
  EXPECT_EQ(Others(dir.Path(), "validator.seed").size(), 0u);
}

TEST(WriteFileAtomic, FailureBeforeTheRenameLeavesTheOldFileAndNoTemp) {
  TempDir dir;
  const std::string path = dir.Path() + "/node.json";
  Put(path, "old config");
  std::string seen_temp;
  auto w = WriteFileAtomic(path, "new config",
                           {.mode = 0644, .before_commit = [&](const std::string& temp) -> Status {
                              seen_temp = temp;
                              EXPECT_EQ(FileText(temp), "new config");
                              return Fail(ErrorCode::kIo, "disk full (injected)");
                            }});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().message, "disk full (injected)");
  EXPECT_EQ(FileText(path), "old config");
  EXPECT_FALSE(seen_temp.empty());
  EXPECT_FALSE(fs::exists(seen_temp));
  EXPECT_TRUE(Others(dir.Path(), "node.json").empty());
}

// A process killed between writing the temporary file and the rename: the old
// file is whole, and what is left behind is as private as the file it was for.
TEST(WriteFileAtomic, KilledBeforeTheRenameLeavesTheOldFileWhole) {
  TempDir dir;
  const std::string path = dir.Path() + "/validator.seed";
  Put(path, "old seed");
  ::chmod(path.c_str(), 0600);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::umask(0);
    (void)WriteFileAtomic(path, "new seed", {.mode = 0600, .before_commit = [](const std::string&) {
                                               ::raise(SIGKILL);
                                               return Ok();
                                             }});
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(FileText(path), "old seed");
  auto left = Others(dir.Path(), "validator.seed");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(FileMode(dir.Path() + "/" + left[0]), 0600u);
  // The next write is not disturbed by the leftover.
  ASSERT_TRUE(WriteFileAtomic(path, "newer seed"));
  EXPECT_EQ(FileText(path), "newer seed");
}

TEST(WriteFileAtomic, RefuseNeverReplacesAnExistingFile) {
  TempDir dir;
  const std::string path = dir.Path() + "/k.json";
  ASSERT_TRUE(WriteFileAtomic(path, "first", {.if_exists = IfExists::kRefuse}));
  auto again = WriteFileAtomic(path, "second", {.if_exists = IfExists::kRefuse});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(FileText(path), "first");
  EXPECT_TRUE(Others(dir.Path(), "k.json").empty());
}

TEST(WriteFileAtomic, MissingDirectoryIsAnIoErrorNamingIt) {
  TempDir dir;
  auto w = WriteFileAtomic(dir.Path() + "/no/such/file", "x");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::kIo);
  EXPECT_NE(w.error().message.find(dir.Path() + "/no/such/"), std::string::npos);
}

TEST(ReadFileNoFollow, ReadsFilesAndRefusesLinksFifosAndOversize) {
  TempDir dir;
  const std::string path = dir.Path() + "/f";
  Put(path, "hello");
  auto r = ReadFileNoFollow(path, 5);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "hello");
  r = ReadFileNoFollow(path, 4);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
  r = ReadFileNoFollow(dir.Path() + "/none", 5);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  fs::create_symlink(path, dir.Path() + "/link");
  r = ReadFileNoFollow(dir.Path() + "/link", 5);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  ASSERT_EQ(::mkfifo((dir.Path() + "/fifo").c_str(), 0600), 0);
  r = ReadFileNoFollow(dir.Path() + "/fifo", 5);  // must not hang waiting for a writer
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
}

TEST(MakeDirectory, ModeIsExactAndExistingDirectoriesAreLeftAlone) {
  TempDir dir;
  {
    Umask um(0);
    ASSERT_TRUE(MakeDirectory(dir.Path() + "/a", 0700));
  }
  EXPECT_EQ(FileMode(dir.Path() + "/a"), 0700u);
  {
    Umask um(0077);
    ASSERT_TRUE(MakeDirectory(dir.Path() + "/b", 0755));
  }
  EXPECT_EQ(FileMode(dir.Path() + "/b"), 0755u);
  ::chmod((dir.Path() + "/b").c_str(), 0750);
  ASSERT_TRUE(MakeDirectory(dir.Path() + "/b", 0700));
  EXPECT_EQ(FileMode(dir.Path() + "/b"), 0750u);
  Put(dir.Path() + "/file", "");
  auto f = MakeDirectory(dir.Path() + "/file", 0700);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, ErrorCode::kIo);
}

}  // namespace
}  // namespace gpunet::base
