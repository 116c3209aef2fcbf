// Uploads into a work dir the workload controls: links, hard links, FIFOs,
// resumption, and the permissions of the workload's uid (runtime/uploads.h).
#include "runtime/uploads.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "util/temp_dir.h"

namespace gpunet::runtime {
namespace {

constexpr uid_t kUid = 231077;
constexpr gid_t kGid = 231077;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class UploadsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to write as another uid";
    m_work = m_tmp.Sub("work");
    ASSERT_EQ(::mkdir(m_work.c_str(), 0755), 0);
    ASSERT_EQ(::chown(m_work.c_str(), kUid, kGid), 0);
    m_target = UploadTarget{m_work, kUid, kGid};
  }

  testing::TempDir m_tmp{{.parent = "", .prefix = "gpunet-uploads", .mode = 0711}};
  std::string m_work;
  UploadTarget m_target;
};

TEST_F(UploadsTest, WritesInChunksAsTheWorkloadAndResumesOnlyAtTheEnd) {
  auto first = WriteUploadChunk(m_target, "data/train.bin", 0, "hello ");
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(*first, 6u);
  auto second = WriteUploadChunk(m_target, "data/train.bin", 6, "world");
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_EQ(*second, 11u);
  EXPECT_EQ(Slurp(m_work + "/data/train.bin"), "hello world");

  struct stat st {};
  ASSERT_EQ(::stat((m_work + "/data/train.bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kUid);
  EXPECT_EQ(st.st_gid, kGid);
  ASSERT_EQ(::stat((m_work + "/data").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kUid);

  auto size = UploadedSize(m_target, "data/train.bin");
  ASSERT_TRUE(size.has_value()) << size.error().message;
  EXPECT_EQ(*size, 11u);

  auto wrong = WriteUploadChunk(m_target, "data/train.bin", 3, "x");
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code, base::ErrorCode::kConflict);
  EXPECT_NE(wrong.error().message.find("resume at offset 11"), std::string::npos);
  auto again = WriteUploadChunk(m_target, "data/train.bin", 0, "x");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, base::ErrorCode::kAlreadyExists);
  EXPECT_EQ(Slurp(m_work + "/data/train.bin"), "hello world");

  auto none = WriteUploadChunk(m_target, "other.bin", 5, "x");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, base::ErrorCode::kConflict);
  EXPECT_EQ(UploadedSize(m_target, "other.bin").error().code, base::ErrorCode::kNotFound);
}

TEST_F(UploadsTest, RefusesPathsThatLeaveOrHideTheirShape) {
  for (const char* bad :
       {"../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/./b", "", "a/..", "a\nb", "a\x7f"}) {
    auto r = WriteUploadChunk(m_target, bad, 0, "x");
    EXPECT_FALSE(r.has_value()) << "accepted " << bad;
  }
  EXPECT_FALSE(WriteUploadChunk(m_target, std::string("a\0b", 3), 0, "x").has_value());
  std::string deep;
  for (int i = 0; i < 17; ++i) deep += "d/";
  deep += "f";
  EXPECT_EQ(WriteUploadChunk(m_target, deep, 0, "x").error().code, base::ErrorCode::kLimitExceeded);
  EXPECT_EQ(WriteUploadChunk(m_target, std::string(256, 'n'), 0, "x").error().code,
            base::ErrorCode::kLimitExceeded);
}

TEST_F(UploadsTest, NeverFollowsALinkTheWorkloadPlanted) {
  const std::string outside = m_tmp.Sub("outside");
  ASSERT_EQ(::mkdir(outside.c_str(), 0777), 0);
  std::ofstream(outside + "/victim") << "root's file";
  ASSERT_EQ(::chmod((outside + "/victim").c_str(), 0666), 0);

  // A directory link in the path, and a link where the file goes.
  ASSERT_EQ(::symlink(outside.c_str(), (m_work + "/dirlink").c_str()), 0);
  ASSERT_EQ(::symlink((outside + "/victim").c_str(), (m_work + "/filelink").c_str()), 0);
  auto via_dir = WriteUploadChunk(m_target, "dirlink/new", 0, "x");
  ASSERT_FALSE(via_dir.has_value());
  EXPECT_EQ(via_dir.error().code, base::ErrorCode::kPermissionDenied);
  EXPECT_NE(::access((outside + "/new").c_str(), F_OK), 0);

  auto create_over = WriteUploadChunk(m_target, "filelink", 0, "x");
  ASSERT_FALSE(create_over.has_value());
  EXPECT_EQ(create_over.error().code, base::ErrorCode::kAlreadyExists);
  auto resume_over = WriteUploadChunk(m_target, "filelink", 11, "x");
  ASSERT_FALSE(resume_over.has_value());
  EXPECT_EQ(resume_over.error().code, base::ErrorCode::kPermissionDenied);
  EXPECT_EQ(Slurp(outside + "/victim"), "root's file");
}

TEST_F(UploadsTest, RefusesHardLinksFifosAndOtherOwners) {
  ASSERT_TRUE(WriteUploadChunk(m_target, "a", 0, "abc").has_value());
  ASSERT_EQ(::link((m_work + "/a").c_str(), (m_work + "/b").c_str()), 0);
  auto hard = WriteUploadChunk(m_target, "b", 3, "d");
  ASSERT_FALSE(hard.has_value());
  EXPECT_EQ(hard.error().code, base::ErrorCode::kPermissionDenied);

  ASSERT_EQ(::mkfifo((m_work + "/fifo").c_str(), 0666), 0);
  ASSERT_EQ(::chown((m_work + "/fifo").c_str(), kUid, kGid), 0);
  auto fifo = WriteUploadChunk(m_target, "fifo", 1, "d");  // must not block
  EXPECT_FALSE(fifo.has_value());

  std::ofstream(m_work + "/roots") << "r";
  auto other = WriteUploadChunk(m_target, "roots", 1, "d");
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(Slurp(m_work + "/roots"), "r");
}

TEST_F(UploadsTest, IsJudgedWithTheWorkloadsPermissionsNotRoots) {
  // A directory of root's inside the work dir: root could write there, the
  // workload cannot, so neither can its upload.
  ASSERT_EQ(::mkdir((m_work + "/rootdir").c_str(), 0755), 0);
  auto r = WriteUploadChunk(m_target, "rootdir/x", 0, "x");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(::access((m_work + "/rootdir/x").c_str(), F_OK), 0);
  // And the thread's identity did not leak into the caller's.
  EXPECT_EQ(::geteuid(), 0u);
  std::ofstream probe(m_tmp.Sub("still-root"));
  EXPECT_TRUE(probe.good());
}

TEST_F(UploadsTest, AnUploadWhoseFirstChunkWasEmptyResumesAtOffsetZero) {
  // The client asks for the resume point (0) and sends the next chunk there.
  ASSERT_EQ(WriteUploadChunk(m_target, "empty-first.bin", 0, "").value(), 0u);
  ASSERT_EQ(UploadedSize(m_target, "empty-first.bin").value(), 0u);
  auto resumed = WriteUploadChunk(m_target, "empty-first.bin", 0, "data");
  ASSERT_TRUE(resumed.has_value()) << resumed.error().message;
  EXPECT_EQ(*resumed, 4u);
  EXPECT_EQ(Slurp(m_work + "/empty-first.bin"), "data");
  // Once it holds bytes, offset 0 is a second upload under the name again.
  auto again = WriteUploadChunk(m_target, "empty-first.bin", 0, "x");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, base::ErrorCode::kAlreadyExists);
  // An empty file the workload hard-linked is not an upload to resume.
  ASSERT_EQ(WriteUploadChunk(m_target, "e1", 0, "").value(), 0u);
  ASSERT_EQ(::link((m_work + "/e1").c_str(), (m_work + "/e2").c_str()), 0);
  EXPECT_EQ(WriteUploadChunk(m_target, "e2", 0, "x").error().code, base::ErrorCode::kAlreadyExists);
  EXPECT_EQ(Slurp(m_work + "/e1"), "");
}

TEST_F(UploadsTest, AFileWrittenOnceAppearsOnlyWholeAndOnlyOnce) {
  // A temporary file an interrupted write left does not count and is replaced.
  ASSERT_TRUE(WriteUploadChunk(m_target, "s/.TOKEN.part", 0, "half").has_value());
  EXPECT_EQ(UploadedSize(m_target, "s/TOKEN").error().code, base::ErrorCode::kNotFound);
  auto once = WriteUploadFileOnce(m_target, "s/TOKEN", "the whole value");
  ASSERT_TRUE(once.has_value()) << once.error().message;
  EXPECT_EQ(*once, 15u);
  EXPECT_EQ(Slurp(m_work + "/s/TOKEN"), "the whole value");
  EXPECT_NE(::access((m_work + "/s/.TOKEN.part").c_str(), F_OK), 0);
  struct stat st {};
  ASSERT_EQ(::stat((m_work + "/s/TOKEN").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kUid);
  auto twice = WriteUploadFileOnce(m_target, "s/TOKEN", "another");
  ASSERT_FALSE(twice.has_value());
  EXPECT_EQ(twice.error().code, base::ErrorCode::kAlreadyExists);
  EXPECT_EQ(Slurp(m_work + "/s/TOKEN"), "the whole value");
  // Never through a link the workload planted, at the name or in the path.
  ASSERT_EQ(::symlink("/etc", (m_work + "/etclink").c_str()), 0);
  EXPECT_FALSE(WriteUploadFileOnce(m_target, "etclink/gpunet-x", "x").has_value());
  EXPECT_NE(::access("/etc/gpunet-x", F_OK), 0);
  ASSERT_EQ(::symlink("/etc/passwd", (m_work + "/s/LINKED").c_str()), 0);
  EXPECT_EQ(WriteUploadFileOnce(m_target, "s/LINKED", "x").error().code,
            base::ErrorCode::kAlreadyExists);
}

}  // namespace
}  // namespace gpunet::runtime
