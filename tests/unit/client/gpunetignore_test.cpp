#include "client/gpunetignore.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "util/temp_dir.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
namespace fs = std::filesystem;

IgnoreRules Rules(std::string_view text) {
  auto r = IgnoreRules::Parse(text, ".gpunetignore");
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r ? *r : IgnoreRules{};
}

TEST(GlobMatchName, StarAndQuestionWithinOneName) {
  EXPECT_TRUE(GlobMatchName("*.ckpt", "a.ckpt"));
  EXPECT_TRUE(GlobMatchName("*.ckpt", ".ckpt"));
  EXPECT_FALSE(GlobMatchName("*.ckpt", "a.ckpt.bak"));
  EXPECT_TRUE(GlobMatchName("run-?", "run-1"));
  EXPECT_FALSE(GlobMatchName("run-?", "run-10"));
  EXPECT_TRUE(GlobMatchName("*a*b*", "xxaxxbxx"));
  EXPECT_FALSE(GlobMatchName("*a*a*a*a*a*b", std::string(200, 'a')));
  EXPECT_TRUE(GlobMatchName("", ""));
  EXPECT_FALSE(GlobMatchName("", "a"));
}

TEST(IgnoreRules, NameAtAnyDepthUnlessAnchored) {
  IgnoreRules r = Rules("# comment\n\n*.ckpt\n/data\nsrc/gen\n");
  EXPECT_EQ(r.size(), 3u);
  EXPECT_TRUE(r.Ignored("a.ckpt", false));
  EXPECT_TRUE(r.Ignored("runs/1/a.ckpt", false));
  EXPECT_TRUE(r.Ignored("data", true));
  EXPECT_FALSE(r.Ignored("src/data", true));  // leading '/': the workdir's own only
  EXPECT_TRUE(r.Ignored("src/gen", true));    // a '/' inside anchors as well
  EXPECT_FALSE(r.Ignored("lib/src/gen", true));
  EXPECT_FALSE(r.Ignored("train.py", false));
}

TEST(IgnoreRules, TrailingSlashIsFoldersOnly) {
  IgnoreRules r = Rules("build/\n");
  EXPECT_TRUE(r.Ignored("build", true));
  EXPECT_TRUE(r.Ignored("sub/build", true));
  EXPECT_FALSE(r.Ignored("build", false));
}

TEST(IgnoreRules, DoubleStar) {
  IgnoreRules r = Rules("**/cache\nlogs/**\na/**/b\n");
  EXPECT_TRUE(r.Ignored("cache", true));
  EXPECT_TRUE(r.Ignored("x/y/cache", false));
  EXPECT_TRUE(r.Ignored("logs/1.txt", false));
  EXPECT_TRUE(r.Ignored("logs/d/2.txt", false));
  EXPECT_FALSE(r.Ignored("logs", true));  // its contents, not the folder itself
  EXPECT_TRUE(r.Ignored("a/b", false));
  EXPECT_TRUE(r.Ignored("a/x/y/b", false));
  EXPECT_FALSE(r.Ignored("x/a/b", false));
  // Many **s stay cheap (a table, not backtracking).
  std::string many;
  for (int i = 0; i < 200; ++i) many += "**/x/";
  IgnoreRules deep = Rules(many + "y\n");
  EXPECT_FALSE(deep.Ignored("x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/z", false));
}

TEST(IgnoreRules, NegationTheLastMatchDecides) {
  IgnoreRules r = Rules("*.ckpt\n!best.ckpt\nold/best.ckpt\n");
  EXPECT_TRUE(r.Ignored("a.ckpt", false));
  EXPECT_FALSE(r.Ignored("best.ckpt", false));
  EXPECT_FALSE(r.Ignored("new/best.ckpt", false));
  EXPECT_TRUE(r.Ignored("old/best.ckpt", false));
}

TEST(IgnoreRules, RefusesWhatItDoesNotSupport) {
  for (std::string_view bad : {"[ab].txt\n", "\\#file\n", "!\n", "/\n"}) {
    auto r = IgnoreRules::Parse(bad, "x/.gpunetignore");
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_TRUE(r.error().message.starts_with("x/.gpunetignore:1: ")) << r.error().message;
  }
  EXPECT_TRUE(IgnoreRules::Parse("ok\n[x]\n", "f").error().message.starts_with("f:2: "));
  EXPECT_EQ(IgnoreRules::Parse(std::string(kIgnoreBytesMax + 1, 'a'), "f").error().code,
            ErrorCode::kLimitExceeded);
  std::string lots;
  for (size_t i = 0; i <= kIgnoreRulesMax; ++i) lots += "a\n";
  EXPECT_EQ(IgnoreRules::Parse(lots, "f").error().code, ErrorCode::kLimitExceeded);
}

void Write(const std::string& path, std::string_view text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

std::vector<std::string> Remotes(const WorkdirFiles& w) {
  std::vector<std::string> out;
  for (const auto& f : w.files) out.push_back(f.remote);
  return out;
}

TEST(ListWorkdirFiles, HonoursGpunetignoreAndSorts) {
  testing::TempDir dir;
  Write(dir.Sub("train.py"), "print(1)\n");
  Write(dir.Sub("data/big.bin"), "xxxx");
  Write(dir.Sub("runs/a.ckpt"), "c");
  Write(dir.Sub("runs/best.ckpt"), "best");
  Write(dir.Sub("lib/util.py"), "u");
  Write(dir.Sub(".gpunetignore"), "/data/\n*.ckpt\n!best.ckpt\n");
  auto w = ListWorkdirFiles(dir.Path());
  ASSERT_TRUE(w.has_value()) << w.error().message;
  EXPECT_EQ(Remotes(*w), (std::vector<std::string>{".gpunetignore", "lib/util.py", "runs/best.ckpt",
                                                   "train.py"}));
  EXPECT_EQ(w->ignored, 2u);  // data/ (not read at all) and runs/a.ckpt
  EXPECT_EQ(w->bytes, 9u + 1u + 4u + std::string("/data/\n*.ckpt\n!best.ckpt\n").size());
  EXPECT_TRUE(w->skipped.empty());
}

TEST(ListWorkdirFiles, NeverFollowsALinkOutOfTheWorkdir) {
  testing::TempDir outside;
  Write(outside.Sub("id_rsa"), "SECRET");
  testing::TempDir dir;
  Write(dir.Sub("real.txt"), "inside");
  fs::create_directories(dir.Sub("sub"));
  fs::create_symlink(outside.Sub("id_rsa"), dir.Sub("key"));
  fs::create_symlink(outside.Path(), dir.Sub("outdir"));
  fs::create_symlink("../real.txt", dir.Sub("sub/alias.txt"));
  fs::create_symlink("../../../../../../../../etc/passwd", dir.Sub("sub/up"));
  fs::create_symlink("nowhere", dir.Sub("dangling"));
  fs::create_symlink(dir.Path(), dir.Sub("sub/loop"));
  auto w = ListWorkdirFiles(dir.Path());
  ASSERT_TRUE(w.has_value()) << w.error().message;
  EXPECT_EQ(Remotes(*w), (std::vector<std::string>{"real.txt", "sub/alias.txt"}));
  // A link inside the workdir to a file inside is sent as that file.
  EXPECT_EQ(w->files[1].local, fs::canonical(dir.Sub("real.txt")).string());
  std::vector<std::string> skipped;
  for (const auto& s : w->skipped) skipped.push_back(s.path);
  EXPECT_EQ(skipped, (std::vector<std::string>{"dangling", "key", "outdir", "sub/loop", "sub/up"}));
  for (const auto& f : w->files) EXPECT_EQ(f.local.find(outside.Path()), std::string::npos);
}

// A link inside the workdir to an ignored file (or a file in an ignored folder) would
// otherwise send what .gpunetignore keeps back: the rules apply to its target too.
TEST(ListWorkdirFiles, ALinkToAnIgnoredFileSendsNothingOfIt) {
  testing::TempDir dir;
  Write(dir.Sub(".env"), "TOKEN=secret");
  Write(dir.Sub("secrets/key"), "KEY");
  Write(dir.Sub("real.txt"), "inside");
  Write(dir.Sub(".gpunetignore"), ".env\nsecrets/\n");
  fs::create_directories(dir.Sub("sub"));
  fs::create_symlink(".env", dir.Sub("cfg"));
  fs::create_symlink("../secrets/key", dir.Sub("sub/k"));
  fs::create_symlink("../real.txt", dir.Sub("sub/alias.txt"));
  auto w = ListWorkdirFiles(dir.Path());
  ASSERT_TRUE(w.has_value()) << w.error().message;
  EXPECT_EQ(Remotes(*w), (std::vector<std::string>{".gpunetignore", "real.txt", "sub/alias.txt"}));
  std::vector<std::string> skipped;
  for (const auto& s : w->skipped) skipped.push_back(s.path);
  EXPECT_EQ(skipped, (std::vector<std::string>{"cfg", "sub/k"}));
  for (const auto& f : w->files) EXPECT_EQ(f.local.find(".env"), std::string::npos) << f.local;
}

TEST(ListWorkdirFiles, Errors) {
  testing::TempDir dir;
  auto missing = ListWorkdirFiles(dir.Sub("nope"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  Write(dir.Sub(".gpunetignore"), "[abc]\n");
  auto bad = ListWorkdirFiles(dir.Path());
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find(".gpunetignore:1:"), std::string::npos);
  // A name the provider would refuse is named, with the way out.
  Write(dir.Sub(".gpunetignore"), "# none\n");
  Write(dir.Sub("bad\nname"), "x");
  auto refused = ListWorkdirFiles(dir.Path());
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("add it to .gpunetignore"), std::string::npos)
      << refused.error().message;
  Write(dir.Sub(".gpunetignore"), "bad*\n");
  EXPECT_TRUE(ListWorkdirFiles(dir.Path()).has_value());
}

}  // namespace
}  // namespace gpunet::client
