// The tenant's side of uploads, logs, events and outputs (client/tenant_transfer.h):
// targets the API accepts, chunk and resume arithmetic, what a folder upload sends,
// and the checks on what a provider answers.
#include "client/tenant_transfer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "client/tenant_request.h"
#include "util/temp_dir.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;

TEST(TenantPath, AcceptsRelativePathsAndRefusesEscapes) {
  for (std::string_view ok : {"a", "data/train.bin", "a b/c%d", "x/.hidden"})
    EXPECT_TRUE(CheckTenantPath(ok)) << ok;
  EXPECT_EQ(CheckTenantPath("/etc/passwd").error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(CheckTenantPath("a/../b").error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(CheckTenantPath("..").error().code, ErrorCode::kPermissionDenied);
  const std::string_view bad_paths[] = {
      "", "a//b", "a/", "./a", "a/./b", std::string_view("a\0b", 3), "a\nb"};
  for (std::string_view bad : bad_paths)
    EXPECT_EQ(CheckTenantPath(bad).error().code, ErrorCode::kInvalidArgument) << bad;
  EXPECT_FALSE(CheckTenantPath(std::string(256, 'a')));
  std::string deep;
  for (size_t i = 0; i < kTenantPathDepthMax; ++i) deep += (i ? "/d" : "d");
  EXPECT_TRUE(CheckTenantPath(deep));
  EXPECT_FALSE(CheckTenantPath(deep + "/d"));
}

TEST(TenantPath, EncodesComponentsSoTheTargetPassesTheApiRules) {
  EXPECT_EQ(EncodeTenantPath("data/a b#1%.bin"), "data/a%20b%231%25.bin");
  EXPECT_EQ(EncodeTenantPath("\xc3\xa9t\xc3\xa9"), "%C3%A9t%C3%A9");
  // Dots inside a name stay; a target with it passes the signer's own check.
  const std::string t = UploadTarget(7, "dir/..x/a?b&c", 8388608);
  EXPECT_EQ(t, "/leases/7/files/dir/..x/a%3Fb%26c?offset=8388608");
  EXPECT_TRUE(CheckRequestTarget(t)) << t;
  EXPECT_EQ(UploadTarget(7, "a"), "/leases/7/files/a");
}

TEST(TenantTargets, QueriesCarryTheCursorAndTheWait) {
  EXPECT_EQ(LogsTarget(3, false, 10, 100, 0), "/leases/3/logs?stream=stdout&offset=10&max=100");
  EXPECT_EQ(LogsTarget(3, true, 0, kLogsBytesPerRequest, kFollowWaitMs),
            "/leases/3/logs?stream=stderr&offset=0&max=1048576&wait_ms=25000");
  EXPECT_EQ(EventsTarget(3, 0, 0), "/leases/3/events?after=0");
  EXPECT_EQ(EventsTarget(3, 41, 25000), "/leases/3/events?after=41&wait_ms=25000");
  EXPECT_EQ(OutputsTarget(3), "/leases/3/outputs");
  EXPECT_EQ(OutputsTarget(3, "r/m.bin", 16), "/leases/3/outputs/r/m.bin?offset=16&max=8388608");
  for (const auto& t : {LogsTarget(3, true, 5, 9, 1), EventsTarget(3, 1, 1), OutputsTarget(3, "a")})
    EXPECT_TRUE(CheckRequestTarget(t)) << t;
}

TEST(UploadArithmetic, ChunksCoverTheFileOnceFromTheResumePoint) {
  const uint64_t size = 3 * kUploadChunkBytes + 5;
  for (uint64_t remote : {uint64_t{0}, uint64_t{1}, kUploadChunkBytes, size - 1, size}) {
    auto start = UploadResumeOffset(size, remote);
    ASSERT_TRUE(start);
    uint64_t offset = *start, sent = 0, chunks = 0;
    while (uint64_t n = UploadChunkLength(size, offset)) {
      EXPECT_LE(n, kUploadChunkBytes);
      offset += n;
      sent += n;
      ++chunks;
    }
    EXPECT_EQ(offset, size);
    EXPECT_EQ(sent, size - remote);
    EXPECT_EQ(chunks, (size - remote + kUploadChunkBytes - 1) / kUploadChunkBytes);
  }
  EXPECT_EQ(*UploadResumeOffset(10, std::nullopt), 0u);
  EXPECT_EQ(UploadResumeOffset(10, 11).error().code, ErrorCode::kConflict);
  EXPECT_EQ(UploadChunkLength(0, 0), 0u);
  EXPECT_EQ(UploadChunkLength(10, 4, 4), 4u);
  EXPECT_EQ(UploadChunkLength(10, 8, 4), 2u);
  EXPECT_EQ(UploadChunkLength(10, 12, 4), 0u);
}

TEST(UploadArithmetic, Sha256IsTheStandardOne) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(UploadFiles, AFileGoesUnderItsNameOrDest) {
  testing::TempDir dir;
  std::ofstream(dir.Sub("w.bin")) << "12345";
  auto one = ListUploadFiles(dir.Sub("w.bin"), "");
  ASSERT_TRUE(one) << one.error().ToString();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].remote, "w.bin");
  EXPECT_EQ((*one)[0].size, 5u);
  one = ListUploadFiles(dir.Sub("w.bin"), "models/w0.bin");
  ASSERT_TRUE(one);
  EXPECT_EQ((*one)[0].remote, "models/w0.bin");
  EXPECT_EQ(ListUploadFiles(dir.Sub("w.bin"), "../w.bin").error().code,
            ErrorCode::kPermissionDenied);
  EXPECT_EQ(ListUploadFiles(dir.Sub("missing"), "").error().code, ErrorCode::kNotFound);
}

TEST(UploadFiles, AFolderSendsEveryRegularFileSortedAndRefusesLinks) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.Sub("data/sub/empty"));
  std::ofstream(dir.Sub("data/b.txt")) << "b";
  std::ofstream(dir.Sub("data/sub/a.txt")) << "aa";
  auto files = ListUploadFiles(dir.Sub("data"), "");
  ASSERT_TRUE(files) << files.error().ToString();
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].remote, "data/b.txt");
  EXPECT_EQ((*files)[1].remote, "data/sub/a.txt");
  EXPECT_EQ((*files)[1].size, 2u);
  files = ListUploadFiles(dir.Sub("data") + "/", "in/");
  ASSERT_TRUE(files) << files.error().ToString();
  EXPECT_EQ((*files)[0].remote, "in/b.txt");
  ASSERT_EQ(::symlink("/etc/passwd", dir.Sub("data/sub/link").c_str()), 0);
  auto refused = ListUploadFiles(dir.Sub("data"), "");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("symbolic link"), std::string::npos);
}

TEST(CopyDownload, TheNameIsTheLastComponentTrailingSlashesIgnored) {
  EXPECT_EQ(CopyDownloadName("data/").value(), "data");
  EXPECT_EQ(CopyDownloadName("runs/ckpt//").value(), "ckpt");
  EXPECT_EQ(CopyDownloadName("/work/a.pt").value(), "a.pt");
  EXPECT_EQ(CopyDownloadName("a.pt").value(), "a.pt");
  for (std::string_view bad : {"", "/", "//", ".", "./", "x/.", "..", "x/..", "x/../"})
    EXPECT_EQ(CopyDownloadName(bad).error().code, ErrorCode::kInvalidArgument) << bad;
}

TEST(CopyDownload, OnlyFilesAndFoldersAreKeptAndSpecialBitsCleared) {
  testing::TempDir dir;
  namespace fs = std::filesystem;
  fs::create_directories(dir.Sub("ckpt/sub"));
  std::ofstream(dir.Sub("ckpt/sub/run.sh")) << "#!/bin/sh\n";
  ASSERT_EQ(::chmod(dir.Sub("ckpt/sub/run.sh").c_str(), 06755), 0);
  ASSERT_EQ(::chmod(dir.Sub("ckpt/sub").c_str(), 01777), 0);
  ASSERT_TRUE(CheckUnpackedDownload(dir.Sub("ckpt")));
  struct stat st {};
  ASSERT_EQ(::stat(dir.Sub("ckpt/sub/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::stat(dir.Sub("ckpt/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0777u);
  // A file alone is checked too (cp without -r).
  std::ofstream(dir.Sub("one.pt")) << "w";
  ASSERT_EQ(::chmod(dir.Sub("one.pt").c_str(), 04644), 0);
  ASSERT_TRUE(CheckUnpackedDownload(dir.Sub("one.pt")));
  ASSERT_EQ(::stat(dir.Sub("one.pt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);

  // A link (deep or the download itself) and a FIFO are refused, named.
  ASSERT_EQ(::symlink("/etc/passwd", dir.Sub("ckpt/sub/model.pt").c_str()), 0);
  auto refused = CheckUnpackedDownload(dir.Sub("ckpt"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(refused.error().message.find("ckpt/sub/model.pt as a symbolic link"), std::string::npos)
      << refused.error().message;
  ASSERT_EQ(::symlink(".bashrc", dir.Sub("link.pt").c_str()), 0);
  EXPECT_EQ(CheckUnpackedDownload(dir.Sub("link.pt")).error().code, ErrorCode::kPermissionDenied);
  ASSERT_EQ(::mkfifo(dir.Sub("fifo").c_str(), 0600), 0);
  refused = CheckUnpackedDownload(dir.Sub("fifo"));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("a FIFO"), std::string::npos);
}

TEST(TenantAnswers, EventsMustComeInOrderAfterTheCursor) {
  auto e =
      ParseEventsAnswer(R"({"events":[{"seq":4,"time_ms":1,"kind":"started","message":""},)"
                        R"({"seq":6,"time_ms":2,"kind":"workload_running","message":"pid 9"}]})",
                        3);
  ASSERT_TRUE(e) << e.error().ToString();
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[1].seq, 6u);
  EXPECT_EQ((*e)[1].message, "pid 9");
  EXPECT_TRUE(ParseEventsAnswer(R"({"events":[]})", 9)->empty());
  // A repeat of what the client saw, or one out of order, is refused: a follow never
  // prints an event twice.
  EXPECT_FALSE(
      ParseEventsAnswer(R"({"events":[{"seq":3,"time_ms":1,"kind":"k","message":""}]})", 3));
  EXPECT_FALSE(ParseEventsAnswer(
      R"({"events":[{"seq":5,"time_ms":1,"kind":"k","message":""},{"seq":5,"time_ms":1,"kind":"k","message":""}]})",
      0));
  EXPECT_FALSE(
      ParseEventsAnswer(R"({"events":[{"seq":"5","time_ms":1,"kind":"k","message":""}]})", 0));
  EXPECT_FALSE(ParseEventsAnswer("not json", 0));
}

TEST(TenantAnswers, OutputNamesThatWouldEscapeAreRefused) {
  auto list = ParseOutputsAnswer(
      R"({"entries":[{"name":"r/m.bin","type":"file","size":3},{"name":"r","type":"dir","size":0}]})");
  ASSERT_TRUE(list) << list.error().ToString();
  EXPECT_EQ(list->entries[0].name, "r/m.bin");
  EXPECT_EQ(list->entries[0].size, 3u);
  EXPECT_TRUE(list->skipped.empty());
  for (std::string_view bad : {"../x", "/etc/x", "a/../../x", "a//b", ""}) {
    const std::string body =
        R"({"entries":[{"name":")" + std::string(bad) + R"(","type":"file","size":1}]})";
    auto r = ParseOutputsAnswer(body);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  }
}

// A file name the workload made that no request can name (over kTenantPathBytesMax,
// a control byte, too deep) is skipped and reported; the rest of the list stays usable.
TEST(TenantAnswers, OutputNamesNoRequestCanNameAreSkippedNotFatal) {
  std::string deep;
  for (size_t i = 0; i <= kTenantPathDepthMax; ++i) deep += (i ? "/d" : "d");
  const std::string names[] = {"ok.bin",       std::string(kTenantPathBytesMax + 1, 'a'),
                               "bell\x07.txt", "tab\tdir/x",
                               deep,           "z.txt"};
  nlohmann::json body = {{"entries", nlohmann::json::array()}};
  for (const auto& n : names)
    body["entries"].push_back({{"name", n}, {"type", "file"}, {"size", 1}});
  auto answer = ParseOutputsAnswer(body.dump());
  ASSERT_TRUE(answer) << answer.error().ToString();
  ASSERT_EQ(answer->entries.size(), 2u);
  EXPECT_EQ(answer->entries[0].name, "ok.bin");
  EXPECT_EQ(answer->entries[1].name, "z.txt");
  ASSERT_EQ(answer->skipped.size(), 4u);
  for (const auto& why : answer->skipped)
    for (unsigned char c : why) EXPECT_TRUE(c >= 0x20 && c != 0x7f) << why;  // printable
  EXPECT_NE(answer->skipped[1].find("control byte"), std::string::npos) << answer->skipped[1];
}

TEST(TenantAnswers, AnOutputsPartFileIsThisLeasesAndThisOutputsOnly) {
  const std::string part = OutputPartPath("out/model.pt", 7, "model.pt");
  EXPECT_TRUE(part.starts_with("out/model.pt.7-")) << part;
  EXPECT_TRUE(part.ends_with(".part")) << part;
  EXPECT_EQ(part, OutputPartPath("out/model.pt", 7, "model.pt"));
  EXPECT_NE(part, OutputPartPath("out/model.pt", 8, "model.pt"));       // another lease
  EXPECT_NE(part, OutputPartPath("out/model.pt", 7, "ckpt/model.pt"));  // another output
  EXPECT_NE(part, std::string("out/model.pt.part"));
}

TEST(TenantAnswers, AnOutputDownloadNeverGoesPastItsSize) {
  EXPECT_TRUE(CheckOutputPiece(0, 10, 10));
  EXPECT_TRUE(CheckOutputPiece(4, 6, 10));
  EXPECT_TRUE(CheckOutputPiece(10, 0, 10));
  EXPECT_EQ(CheckOutputPiece(4, 7, 10).error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(CheckOutputPiece(11, 0, 10).error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(CheckOutputPiece(1, UINT64_MAX, 10).error().code, ErrorCode::kCorrupt);
}

TEST(TenantAnswers, NextOffsetNeverGoesBack) {
  EXPECT_EQ(*NextOffset(10, 5, std::nullopt), 15u);
  EXPECT_EQ(*NextOffset(10, 5, "15"), 15u);
  EXPECT_EQ(*NextOffset(10, 5, "100"), 100u);  // a rotated log skipped bytes
  EXPECT_FALSE(NextOffset(10, 5, "14"));
  EXPECT_FALSE(NextOffset(10, 5, "x"));
  EXPECT_FALSE(NextOffset(10, 5, ""));
  EXPECT_EQ(*ParseSizeAnswer(R"({"path":"a","size":42})"), 42u);
  EXPECT_FALSE(ParseSizeAnswer(R"({"size":-1})"));
}

TEST(TenantAnswers, ErrorMessagesAreOnePrintableLine) {
  EXPECT_EQ(AnswerMessage(R"({"error":{"code":"conflict","message":"offset 5 \u0007 is wrong"}})"),
            "offset 5 ? is wrong");
  EXPECT_EQ(AnswerMessage("plain text\nsecond line"), "plain text");
  EXPECT_EQ(AnswerMessage(std::string(1000, 'x')).size(), 300u);
}

TEST(TenantAnswers, OnlyANotYetStartedAnswerMakesSubmitWait) {
  // The provider's engine (provider/engine.cpp SubmitManifest) while its view of the
  // ledger trails the start, and a node that has not seen the block: wait.
  EXPECT_TRUE(SubmitTooEarly(
      409, R"x({"error":{"code":"conflict","message":"lease 7 has not started yet as this )x"
           R"x(provider sees the ledger (its view trails the ledger by up to one block)"}})x"));
  EXPECT_TRUE(SubmitTooEarly(503, R"({"error":{"code":"unavailable","message":"node"}})"));
  // Final answers: another manifest, a closed lease, a bad hash, a stranger, success.
  EXPECT_FALSE(SubmitTooEarly(
      409, R"({"error":{"code":"conflict","message":"lease 7 already has its manifest"}})"));
  EXPECT_FALSE(SubmitTooEarly(410, R"({"error":{"code":"gone","message":"has not started"}})"));
  EXPECT_FALSE(SubmitTooEarly(400, R"({"error":{"code":"bad","message":"hash"}})"));
  EXPECT_FALSE(SubmitTooEarly(403, ""));
  EXPECT_FALSE(SubmitTooEarly(200, R"({"accepted":true})"));
}

}  // namespace
}  // namespace gpunet::client
