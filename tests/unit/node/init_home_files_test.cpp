// The files `gpunet init` (InitHome) writes: under a umask of 0, nothing secret is
// open to others for an instant (seen at each file's creation by tracing the
// system calls), the seed is synced, renamed and its directory synced, and links
// planted in the home are never followed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "node/node.h"
#include "unit/base/fs_trace.h"
#include "util/temp_dir.h"

namespace gpunet::node {
namespace {

namespace fs = std::filesystem;
using gpunet::testing::FileMode;
using gpunet::testing::FileText;
using gpunet::testing::FsCall;
using gpunet::testing::TempDir;

InitOptions Options(const std::string& home) {
  InitOptions o;
  o.home = home;
  o.chain_id = "files-test";
  o.rpc = "127.0.0.1:0";
  o.keys.push_back({"alice", 1'000'000});
  o.key_passphrase = "pw";
  o.fast_kdf = true;
  return o;
}

TEST(InitHomeFiles, UnderUmaskZeroNothingSecretIsEverOpenToOthers) {
  TempDir dir;
  const std::string home = dir.Path() + "/home";
  const std::string config = home + "/config";
  const std::string seed = config + "/validator.seed";
  auto trace = gpunet::testing::TraceFsCalls([&] {
    ::umask(0);
    auto r = InitHome(Options(home));
    if (!r) std::fprintf(stderr, "init: %s\n", r.error().ToString().c_str());
    return r ? 0 : 1;
  });
  ASSERT_TRUE(trace.traced) << "ptrace is not permitted here";
  ASSERT_EQ(trace.exit_code, 0);

  std::map<std::string, std::string> final_of;  // temporary name -> where it was moved
  for (const FsCall& c : trace.calls)
    if (c.kind == FsCall::Kind::kRename || c.kind == FsCall::Kind::kLink)
      final_of[c.path] = c.path2;
  int secrets = 0;
  for (const FsCall& c : trace.calls) {
    if (!c.path.starts_with(home)) continue;
    if (c.kind == FsCall::Kind::kMkdir) {
      EXPECT_EQ(c.mode, 0700u) << "made " << c.path << " with mode " << std::oct << c.mode;
    }
    if (c.kind != FsCall::Kind::kCreate) continue;
    const std::string final_path = final_of.contains(c.path) ? final_of[c.path] : c.path;
    EXPECT_TRUE((c.flags & O_EXCL) && (c.flags & O_NOFOLLOW))
        << c.path << " was opened in a way that reuses or follows what is there";
    EXPECT_EQ(c.mode & 022, 0u) << "created " << c.path << " writable by others: " << std::oct
                                << c.mode;
    if (final_path == seed || final_path.starts_with(home + "/keys/")) {
      ++secrets;
      EXPECT_EQ(c.mode, 0600u) << "created " << c.path << " (for " << final_path << ") with mode "
                               << std::oct << c.mode;
    }
  }
  EXPECT_EQ(secrets, 2) << "the seed and alice's key file";

  // The seed: synced, linked into place (never replacing one), then its directory synced.
  int renamed = -1, synced = -1, dir_synced = -1;
  for (size_t i = 0; i < trace.calls.size(); ++i) {
    const FsCall& c = trace.calls[i];
    // link(), not rename(): the seed is written IfExists::kRefuse, never replacing one.
    if (c.kind == FsCall::Kind::kLink && c.path2 == seed) renamed = static_cast<int>(i);
    if (c.kind == FsCall::Kind::kSync && renamed < 0 && final_of.contains(c.path) &&
        final_of.at(c.path) == seed)
      synced = static_cast<int>(i);
    if (c.kind == FsCall::Kind::kSync && renamed >= 0 && dir_synced < 0 && c.path == config)
      dir_synced = static_cast<int>(i);
  }
  EXPECT_GE(synced, 0) << "the seed's bytes were never synced";
  EXPECT_GT(renamed, synced);
  EXPECT_GT(dir_synced, renamed) << "the config directory was not synced after the link";

  EXPECT_EQ(FileMode(home), 0700u);
  EXPECT_EQ(FileMode(config), 0700u);
  EXPECT_EQ(FileMode(home + "/data"), 0700u);
  EXPECT_EQ(FileMode(seed), 0600u);
  EXPECT_EQ(FileMode(home + "/keys/alice.json"), 0600u);
  EXPECT_EQ(FileMode(config + "/genesis.json"), 0644u);
  EXPECT_EQ(FileMode(config + "/node.json"), 0644u);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(config)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"genesis.json", "node.json", "validator.seed"}))
      << "temporary files left behind";
}

TEST(InitHomeFiles, LinksPlantedInTheConfigDirectoryAreNeverFollowed) {
  TempDir dir;
  const std::string home = dir.Path() + "/home";
  const std::string config = home + "/config";
  fs::create_directories(config);
  const std::string victim = dir.Path() + "/victim";
  std::ofstream(victim) << "victim's bytes";
  ::chmod(victim.c_str(), 0644);
  // The target itself, and the fixed temporary name that earlier builds wrote through.
  fs::create_symlink(victim, config + "/validator.seed");
  fs::create_symlink(victim, config + "/validator.seed.tmp");

  auto r = InitHome(Options(home));
  ASSERT_FALSE(r) << "init wrote the validator seed in place of a symbolic link";
  EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt);
  EXPECT_NE(r.error().message.find("symbolic link"), std::string::npos) << r.error().message;
  EXPECT_EQ(FileText(victim), "victim's bytes");
  EXPECT_EQ(FileMode(victim), 0644u);
  // Not marked initialised: once the link is gone, init simply runs again.
  EXPECT_FALSE(fs::exists(config + "/genesis.json"));

  EXPECT_FALSE(fs::exists(home + "/keys")) << "keys were made before the seed was refused";
  fs::remove(config + "/validator.seed");
  auto again = InitHome(Options(home));
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(FileText(victim), "victim's bytes");
  EXPECT_FALSE(fs::is_symlink(config + "/validator.seed"));
  EXPECT_EQ(FileMode(config + "/validator.seed"), 0600u);
  EXPECT_EQ(FileText(config + "/validator.seed").size(), 65u);
}

TEST(InitHomeFiles, MissingParentsAreMade0755EvenUnderUmaskZero) {
  TempDir dir;
  const std::string home = dir.Path() + "/a/b/home";
  const mode_t old_umask = ::umask(0);
  auto r = InitHome(Options(home));
  ::umask(old_umask);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(FileMode(dir.Path() + "/a"), 0755u) << "others could swap the home";
  EXPECT_EQ(FileMode(dir.Path() + "/a/b"), 0755u) << "others could swap the home";
  EXPECT_EQ(FileMode(home), 0700u);
}

TEST(InitHomeFiles, AParentOthersCanWriteIsRefusedBeforeAnythingIsMade) {
  TempDir dir;
  const std::string open_dir = dir.Path() + "/open";
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  auto r = InitHome(Options(open_dir + "/x/home"));
  ASSERT_FALSE(r) << "a home under a world-writable, non-sticky directory";
  EXPECT_EQ(r.error().code, base::ErrorCode::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().message.find(open_dir + ","), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("chmod go-w " + open_dir), std::string::npos)
      << r.error().message;
  EXPECT_TRUE(fs::is_empty(open_dir)) << "nothing made under it";

  // Sticky (as /tmp): nobody can rename an entry they do not own, so it is fine.
  ASSERT_EQ(::chmod(open_dir.c_str(), 01777), 0);
  auto sticky = InitHome(Options(open_dir + "/x/home"));
  ASSERT_TRUE(sticky) << sticky.error().ToString();
}

TEST(InitHomeFiles, BadInputIsRefusedBeforeAnythingIsWrittenAndInitRunsAgain) {
  struct Case {
    const char* what;
    std::function<void(InitOptions&)> spoil;
    base::ErrorCode code;
  };
  const std::vector<Case> cases = {
      {"no passphrase for funded keys", [](InitOptions& o) { o.key_passphrase.clear(); },
       base::ErrorCode::kInvalidArgument},
      {"a bad --rpc", [](InitOptions& o) { o.rpc = "127.0.0.1:notaport"; },
       base::ErrorCode::kInvalidArgument},
      {"a key named twice",
       [](InitOptions& o) {
         o.keys.push_back({"alice", 5});
       },
       base::ErrorCode::kInvalidArgument},
      {"a bad key name",
       [](InitOptions& o) {
         o.keys.push_back({"Bad/Name", 5});
       },
       base::ErrorCode::kInvalidArgument},
      {"a genesis ValidateGenesis refuses", [](InitOptions& o) { o.chain_id = "bad chain!"; },
       base::ErrorCode::kCorrupt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    TempDir dir;
    const std::string home = dir.Path() + "/home";
    InitOptions o = Options(home);
    c.spoil(o);
    auto r = InitHome(o);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, c.code) << r.error().ToString();
    EXPECT_FALSE(fs::exists(home)) << "init wrote before it had checked its input";
    auto again = InitHome(Options(home));
    ASSERT_TRUE(again) << "the corrected init: " << again.error().ToString();
  }
}

TEST(InitHomeFiles, AnExistingValidatorSeedIsNeverReplaced) {
  TempDir dir;
  const std::string home = dir.Path() + "/home";
  InitOptions o = Options(home);
  ASSERT_TRUE(InitHome(o));
  const std::string seed = home + "/config/validator.seed";
  const std::string before = FileText(seed);
  fs::remove(home + "/config/genesis.json");
  o.keys = {{"bob", 7}};
  auto r = InitHome(o);
  ASSERT_FALSE(r) << "init replaced a validator key";
  EXPECT_EQ(r.error().code, base::ErrorCode::kAlreadyExists) << r.error().ToString();
  EXPECT_NE(r.error().message.find(seed), std::string::npos) << r.error().message;
  EXPECT_EQ(FileText(seed), before);
  EXPECT_FALSE(fs::exists(home + "/keys/bob.json")) << "written before the seed was refused";
  EXPECT_FALSE(fs::exists(home + "/config/genesis.json"));

  // A funded key that already exists: refused before the seed or anything else.
  fs::remove(seed);
  o.keys = {{"alice", 7}};
  r = InitHome(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, base::ErrorCode::kAlreadyExists) << r.error().ToString();
  EXPECT_FALSE(fs::exists(seed));
}

TEST(InitHomeFiles, NodeRefusesASymlinkedValidatorSeed) {
  TempDir dir;
  const std::string home = dir.Path() + "/home";
  InitOptions o = Options(home);
  o.keys.clear();
  ASSERT_TRUE(InitHome(o));
  const std::string seed = home + "/config/validator.seed";
  const std::string elsewhere = dir.Path() + "/seed-elsewhere";
  fs::rename(seed, elsewhere);
  fs::create_symlink(elsewhere, seed);
  NodeOptions options;
  options.home = home;
  options.log_blocks = false;
  auto started = Node::Start(options);
  ASSERT_FALSE(started) << "the node signed with a seed read through a symbolic link";
  EXPECT_EQ(started.error().code, base::ErrorCode::kCorrupt);
  EXPECT_NE(started.error().message.find("symbolic link"), std::string::npos)
      << started.error().message;
}

// A home that cannot be made or looked into is an error naming the path and the OS's
// reason, from init and from the node: not an exception from the standard library,
// nor a later error about some other file.
TEST(InitHomeFiles, AHomeThatCannotBeMadeOrCheckedIsAnErrorNamingThePath) {
  TempDir dir;
  // Under a regular file.
  const std::string file = dir.Path() + "/file";
  std::ofstream(file) << "not a directory";
  auto under_file = InitHome(Options(file + "/home"));
  ASSERT_FALSE(under_file) << "init made a home under a regular file";
  EXPECT_EQ(under_file.error().code, base::ErrorCode::kIo) << under_file.error().ToString();
  EXPECT_NE(under_file.error().message.find(file + ", above the node home"), std::string::npos)
      << under_file.error().message;
  EXPECT_NE(under_file.error().message.find("is not a directory"), std::string::npos)
      << under_file.error().message;

  // Its config directory a link to itself: every look inside fails with ELOOP
  // (even for root, who passes every permission check).
  const std::string home = dir.Path() + "/home";
  ASSERT_TRUE(fs::create_directory(home));
  fs::create_symlink(home + "/config", home + "/config");
  const std::string genesis = home + "/config/genesis.json";
  const std::string reason = std::strerror(ELOOP);
  auto looped = InitHome(Options(home));
  ASSERT_FALSE(looped) << "init went ahead in a home it could not check";
  EXPECT_EQ(looped.error().code, base::ErrorCode::kIo) << looped.error().ToString();
  EXPECT_NE(looped.error().message.find("cannot check " + genesis), std::string::npos)
      << looped.error().message;
  EXPECT_NE(looped.error().message.find(reason), std::string::npos) << looped.error().message;

  NodeOptions options;
  options.home = home;
  options.log_blocks = false;
  auto started = Node::Start(options);
  ASSERT_FALSE(started) << "the node started in a home it could not check";
  EXPECT_EQ(started.error().code, base::ErrorCode::kIo) << started.error().ToString();
  EXPECT_NE(started.error().message.find("cannot check " + genesis), std::string::npos)
      << started.error().message;
  EXPECT_NE(started.error().message.find(reason), std::string::npos) << started.error().message;
}

}  // namespace
}  // namespace gpunet::node
