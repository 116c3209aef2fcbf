#include "node/bft_wal.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "util/temp_dir.h"

namespace gpunet::node {
namespace {

namespace fs = std::filesystem;

class WalDir : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return m_dir.Sub(name); }

  std::pair<std::unique_ptr<BftWal>, WalOpenReport> OpenWal(const std::string& name) {
    auto disk = FileWalDisk::Open(Path(name));
    EXPECT_TRUE(disk.has_value()) << disk.error().ToString();
    auto opened = BftWal::Open(std::move(*disk));
    EXPECT_TRUE(opened.has_value()) << opened.error().ToString();
    return std::move(*opened);
  }
  void AppendRaw(const std::string& name, const base::Bytes& bytes) {
    std::ofstream out(Path(name), std::ios::binary | std::ios::app);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }

  gpunet::testing::TempDir m_dir;
};

base::Bytes Rec(const std::string& s) {
  return base::Bytes(s.begin(), s.end());
}

/// A WAL record told apart by its number.
consensus::WalRecord W(uint64_t n) {
  return consensus::WalTimeout{{n, static_cast<uint32_t>(n % 7), consensus::TimeoutStep::kPrevote}};
}

TEST_F(WalDir, RecordsComeBackInOrderAfterReopen) {
  {
    auto [wal, report] = OpenWal("wal");
    EXPECT_TRUE(report.records.empty());
    ASSERT_TRUE(wal->Append(W(1)));
    ASSERT_TRUE(wal->Append(consensus::WalEndHeight{2}));
    ASSERT_TRUE(wal->Append(W(3)));
    ASSERT_TRUE(wal->Sync());
    EXPECT_EQ(wal->Appended(), 3u);
  }
  auto [wal, report] = OpenWal("wal");
  ASSERT_EQ(report.records.size(), 3u);
  EXPECT_EQ(report.records[0], W(1));
  EXPECT_EQ(report.records[1], consensus::WalRecord(consensus::WalEndHeight{2}));
  EXPECT_EQ(report.records[2], W(3));
  EXPECT_EQ(report.torn_bytes, 0u);
  // Appends after reopen go after the old records.
  ASSERT_TRUE(wal->Append(W(4)));
  ASSERT_TRUE(wal->Sync());
  wal.reset();
  auto again = OpenWal("wal");
  ASSERT_EQ(again.second.records.size(), 4u);
  EXPECT_EQ(again.second.records[3], W(4));
}

TEST_F(WalDir, EveryTornTailIsCutBackToTheLastWholeRecord) {
  const base::Bytes last = consensus::EncodeWalRecord(W(99));
  // Every prefix of the last frame (including a header cut in half) is a torn tail.
  for (size_t cut = 1; cut < last.size(); ++cut) {
    const std::string name = "wal" + std::to_string(cut);
    {
      auto [wal, report] = OpenWal(name);
      ASSERT_TRUE(wal->Append(W(5)));
      ASSERT_TRUE(wal->Sync());
    }
    AppendRaw(name, base::Bytes(last.begin(), last.begin() + static_cast<long>(cut)));
    {
      auto [wal, report] = OpenWal(name);
      ASSERT_EQ(report.records.size(), 1u) << "cut " << cut;
      EXPECT_EQ(report.records[0], W(5));
      EXPECT_EQ(report.torn_bytes, cut);
      // The file was truncated: a new record lands right after "kept".
      ASSERT_TRUE(wal->Append(W(6)));
      ASSERT_TRUE(wal->Sync());
    }
    auto [wal, report] = OpenWal(name);
    ASSERT_EQ(report.records.size(), 2u);
    EXPECT_EQ(report.records[1], W(6));
    EXPECT_EQ(report.torn_bytes, 0u);
  }
}

TEST_F(WalDir, AFlippedByteInTheLastRecordIsATornTail) {
  {
    auto [wal, report] = OpenWal("wal");
    ASSERT_TRUE(wal->Append(W(11)));
    ASSERT_TRUE(wal->Append(W(12)));
    ASSERT_TRUE(wal->Sync());
  }
  const auto size = fs::file_size(Path("wal"));
  {
    std::fstream f(Path("wal"), std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(size - 1));
    f.put('X');
  }
  auto [wal, report] = OpenWal("wal");
  ASSERT_EQ(report.records.size(), 1u);
  EXPECT_EQ(report.records[0], W(11));
  EXPECT_GT(report.torn_bytes, 0u);
}

TEST_F(WalDir, DamageFollowedByWholeRecordsIsCorruptNotTorn) {
  {
    auto [wal, report] = OpenWal("wal");
    ASSERT_TRUE(wal->Append(W(11)));
    ASSERT_TRUE(wal->Append(W(12)));
    ASSERT_TRUE(wal->Append(W(13)));
    ASSERT_TRUE(wal->Sync());
  }
  const auto size = fs::file_size(Path("wal"));
  {
    std::fstream f(Path("wal"), std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(14);  // inside the payload of the first record
    f.put('X');
  }
  auto disk = FileWalDisk::Open(Path("wal"));
  ASSERT_TRUE(disk);
  auto opened = BftWal::Open(std::move(*disk));
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, base::ErrorCode::kCorrupt);
  EXPECT_NE(opened.error().message.find("damaged"), std::string::npos);
  // Nothing was truncated: the evidence stays for a person to look at.
  EXPECT_EQ(fs::file_size(Path("wal")), size);
}

TEST_F(WalDir, ClearDropsEveryRecord) {
  {
    auto [wal, report] = OpenWal("wal");
    ASSERT_TRUE(wal->Append(W(11)));
    ASSERT_TRUE(wal->Sync());
    ASSERT_TRUE(wal->Clear());
    ASSERT_TRUE(wal->Append(W(12)));
    ASSERT_TRUE(wal->Sync());
  }
  auto [wal, report] = OpenWal("wal");
  ASSERT_EQ(report.records.size(), 1u);
  EXPECT_EQ(report.records[0], W(12));
}

TEST_F(WalDir, WalInAMissingDirectoryIsAnIoError) {
  auto disk = FileWalDisk::Open(Path("no/such/dir/wal"));
  ASSERT_FALSE(disk);
  EXPECT_EQ(disk.error().code, base::ErrorCode::kIo);
}

TEST_F(WalDir, GuardFileIsReplacedWholeAndSurvivesReopen) {
  FileGuardDisk guard(Path("sign_guard"));
  auto none = guard.Load();
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(guard.Store(Rec("height 1 round 0")));
  ASSERT_TRUE(guard.Store(Rec("h2")));  // shorter: no tail of the old content stays
  FileGuardDisk reopened(Path("sign_guard"));
  auto loaded = reopened.Load();
  ASSERT_TRUE(loaded);
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, Rec("h2"));
  EXPECT_FALSE(fs::exists(Path("sign_guard.tmp")));
  EXPECT_EQ(fs::status(Path("sign_guard")).permissions() & fs::perms::others_read, fs::perms::none);
}

// A link where the guard or the WAL should be is refused, read or write, and
// whatever it points at is left alone: a validator must not sign from, or write
// its double-sign guard into, a file someone else chose.
TEST_F(WalDir, GuardAndWalAreNeverReadOrWrittenThroughALink) {
  const std::string victim = Path("victim");
  std::ofstream(victim) << "victim's bytes";
  fs::create_symlink(victim, Path("sign_guard"));
  FileGuardDisk guard(Path("sign_guard"));
  auto loaded = guard.Load();
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, base::ErrorCode::kCorrupt);
  auto stored = guard.Store(Rec("height 9"));
  ASSERT_FALSE(stored);
  EXPECT_EQ(stored.error().code, base::ErrorCode::kCorrupt);
  EXPECT_TRUE(fs::is_symlink(Path("sign_guard")));

  fs::create_symlink(victim, Path("bft.wal"));
  auto disk = FileWalDisk::Open(Path("bft.wal"));
  ASSERT_FALSE(disk);
  EXPECT_EQ(disk.error().code, base::ErrorCode::kCorrupt);
  std::ifstream in(victim);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "victim's bytes");
}

TEST_F(WalDir, GuardInAMissingDirectoryIsAnIoError) {
  FileGuardDisk guard(Path("no/such/sign_guard"));
  auto stored = guard.Store(Rec("x"));
  ASSERT_FALSE(stored);
  EXPECT_EQ(stored.error().code, base::ErrorCode::kIo);
}

}  // namespace
}  // namespace gpunet::node
