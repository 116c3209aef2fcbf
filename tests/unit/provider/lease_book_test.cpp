#include "provider/lease_book.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "client/manifest.h"
#include "util/temp_dir.h"

namespace gpunet::provider {
namespace {

LeaseRecord Sample(uint64_t id) {
  LeaseRecord r;
  r.lease_id = id;
  r.gpu_uuids = {"GPU-a", "GPU-b"};
  r.manifest_hash[0] = 0xab;
  r.started_ms = 1234;
  return r;
}

void WriteRaw(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST(LeaseBook, RecordsSurviveAReopen) {
  gpunet::testing::TempDir tmp;
  auto book = LeaseBook::Open(tmp.Path());
  ASSERT_TRUE(book.has_value()) << book.error().message;
  ASSERT_TRUE(book->Put(Sample(7)).has_value());
  LeaseRecord closed = Sample(9);
  closed.closed_ms = 99;
  closed.end = "tenant_closed";
  closed.workload_stopped = true;
  closed.manifest_received = true;
  ASSERT_TRUE(book->Put(closed).has_value());
  LeaseRecord accepted = Sample(11);  // a manifest accepted, its workload not launched yet
  accepted.manifest = R"({"command":["sh"]})";
  accepted.stop_grace_ms = 30'000;
  accepted.funds_stop_ms = 1'800'000'000'000;  // SIGTERM sent as the funds end
  ASSERT_TRUE(book->Put(accepted).has_value());
  auto again = LeaseBook::Open(tmp.Path());
  ASSERT_TRUE(again.has_value());
  ASSERT_EQ(again->Records().size(), 3u);
  EXPECT_EQ(*again->Find(7), Sample(7));
  EXPECT_EQ(*again->Find(9), closed);
  EXPECT_EQ(*again->Find(11), accepted);
  ASSERT_TRUE(again->Erase(7).has_value());
  EXPECT_EQ(LeaseBook::Open(tmp.Path())->Records().size(), 2u);
}

TEST(LeaseBook, AReleasedLeaseLeavesABoundedTombstoneThatSurvivesAReopen) {
  gpunet::testing::TempDir tmp;
  auto book = LeaseBook::Open(tmp.Path());
  ASSERT_TRUE(book.has_value()) << book.error().message;
  ASSERT_TRUE(book->Put(Sample(7)).has_value());
  const ReleasedLease seven{7, 1000, 2000, "tenant_closed"};
  ASSERT_TRUE(book->Release(seven).has_value());
  ASSERT_TRUE(book->Release(seven).has_value());  // a retry: kept once
  EXPECT_EQ(book->Find(7), nullptr);
  ASSERT_NE(book->FindReleased(7), nullptr);
  EXPECT_EQ(*book->FindReleased(7), seven);
  EXPECT_EQ(book->FindReleased(8), nullptr);
  auto again = LeaseBook::Open(tmp.Path());
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->Records().empty());
  ASSERT_NE(again->FindReleased(7), nullptr);
  EXPECT_EQ(*again->FindReleased(7), seven);
  // Bounded: a full list (written whole here, a fsync per release is slow) drops its
  // oldest for the next one.
  nlohmann::json full = nlohmann::json::array();
  for (uint64_t id = 100; id < 100 + kReleasedLeasesMax; ++id)
    full.push_back({{"lease_id", id}, {"closed_ms", 1}, {"released_ms", 2}, {"end", "expired"}});
  std::ofstream(tmp.Path() + "/leases/released.json") << full.dump();
  auto full_book = LeaseBook::Open(tmp.Path());
  ASSERT_TRUE(full_book.has_value());
  EXPECT_NE(full_book->FindReleased(100), nullptr);
  EXPECT_EQ(full_book->FindReleased(7), nullptr);
  ASSERT_TRUE(full_book->Release({5, 1, 2, "expired"}).has_value());
  EXPECT_EQ(full_book->FindReleased(100), nullptr);
  EXPECT_NE(full_book->FindReleased(101), nullptr);
  EXPECT_NE(LeaseBook::Open(tmp.Path())->FindReleased(5), nullptr);
  // A damaged file costs the tombstones, not the start.
  std::ofstream(tmp.Path() + "/leases/released.json") << "[{\"lease_id\":";
  std::vector<BookProblem> problems;
  auto damaged = LeaseBook::Open(tmp.Path(), &problems);
  ASSERT_TRUE(damaged.has_value());
  EXPECT_EQ(damaged->FindReleased(100), nullptr);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_TRUE(std::filesystem::exists(tmp.Path() + "/leases/released.json.corrupt"));
}

// A manifest of the largest size the tenant API takes, made of the bytes JSON escaping
// grows most (a quote doubles, a control byte becomes \u00XX): a crash at
// manifest_accepted must find it again, not a record set aside as unreadable.
TEST(LeaseBook, ALargestManifestOfEscapedBytesSurvivesAReopen) {
  gpunet::testing::TempDir tmp;
  auto book = LeaseBook::Open(tmp.Path());
  ASSERT_TRUE(book.has_value());
  LeaseRecord quotes = Sample(21);
  quotes.manifest = std::string(client::kManifestBytesMax, '"');
  LeaseRecord controls = Sample(22);
  controls.manifest = std::string(client::kManifestBytesMax, '\x01');
  ASSERT_TRUE(book->Put(quotes).has_value());
  auto put = book->Put(controls);
  ASSERT_TRUE(put.has_value()) << put.error().message;
  std::vector<BookProblem> problems;
  auto again = LeaseBook::Open(tmp.Path(), &problems);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(problems.empty()) << problems.front().message;
  ASSERT_NE(again->Find(21), nullptr);
  ASSERT_NE(again->Find(22), nullptr);
  EXPECT_EQ(*again->Find(21), quotes);
  EXPECT_EQ(*again->Find(22), controls);
}

// What Open could not read back is refused by Put, which writes nothing: the old
// record stays on disk and in memory.
TEST(LeaseBook, PutRefusesARecordOpenCouldNotReadBack) {
  gpunet::testing::TempDir tmp;
  auto book = LeaseBook::Open(tmp.Path());
  ASSERT_TRUE(book.has_value());
  ASSERT_TRUE(book->Put(Sample(5)).has_value());
  LeaseRecord too_big = Sample(5);
  too_big.manifest = std::string(8 * client::kManifestBytesMax, '\x01');
  EXPECT_FALSE(book->Put(too_big).has_value());
  LeaseRecord not_utf8 = Sample(5);
  not_utf8.manifest = "{\"command\":[\"\xff\"]}";
  EXPECT_FALSE(book->Put(not_utf8).has_value());
  EXPECT_EQ(*book->Find(5), Sample(5));
  std::vector<BookProblem> problems;
  auto again = LeaseBook::Open(tmp.Path(), &problems);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(problems.empty());
  ASSERT_NE(again->Find(5), nullptr);
  EXPECT_EQ(*again->Find(5), Sample(5));
}

TEST(LeaseBook, AFailedWriteLeavesTheOldRecordOnDiskAndInMemory) {
  gpunet::testing::TempDir tmp;
  auto book = LeaseBook::Open(tmp.Path());
  ASSERT_TRUE(book.has_value());
  ASSERT_TRUE(book->Put(Sample(3)).has_value());
  book->SetBeforeCommitForTest([](const std::string&) -> base::Status {
    return base::Fail(base::ErrorCode::kIo, "power cut before the rename");
  });
  LeaseRecord next = Sample(3);
  next.started_ms = 5555;
  EXPECT_FALSE(book->Put(next).has_value());
  EXPECT_EQ(book->Find(3)->started_ms, 1234u);
  auto again = LeaseBook::Open(tmp.Path());
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->Find(3)->started_ms, 1234u);
}

TEST(LeaseBook, ATornOrForeignRecordIsSetAsideAndTheRestLoads) {
  gpunet::testing::TempDir tmp;
  {
    auto book = LeaseBook::Open(tmp.Path());
    ASSERT_TRUE(book.has_value());
    ASSERT_TRUE(book->Put(Sample(1)).has_value());
    ASSERT_TRUE(book->Put(Sample(2)).has_value());
  }
  const std::string dir = tmp.Sub("leases");
  std::string whole = gpunet::testing::FileText(dir + "/2.json");
  WriteRaw(dir + "/2.json", whole.substr(0, whole.size() / 2));  // torn
  WriteRaw(dir + "/5.json", EncodeLeaseRecord(Sample(6)));       // names another lease
  WriteRaw(dir + "/.1.json.tmp-0123456789abcdef", "{");          // a leftover temp file
  WriteRaw(dir + "/notes.txt", "hello");
  std::vector<BookProblem> problems;
  auto book = LeaseBook::Open(tmp.Path(), &problems);
  ASSERT_TRUE(book.has_value()) << book.error().message;
  ASSERT_EQ(book->Records().size(), 1u);
  EXPECT_NE(book->Find(1), nullptr);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_TRUE(std::filesystem::exists(dir + "/2.json.corrupt"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/5.json.corrupt"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/2.json"));
  // The lease can be written again after its bad record was set aside.
  EXPECT_TRUE(book->Put(Sample(2)).has_value());
}

TEST(LeaseBook, DecodeRefusesMissingExtraAndMistypedFields) {
  const std::string good = EncodeLeaseRecord(Sample(4));
  ASSERT_TRUE(DecodeLeaseRecord(good).has_value());
  auto j = nlohmann::json::parse(good);
  auto missing = j;
  missing.erase("started_ms");
  EXPECT_FALSE(DecodeLeaseRecord(missing.dump()).has_value());
  auto extra = j;
  extra["x"] = 1;
  EXPECT_FALSE(DecodeLeaseRecord(extra.dump()).has_value());
  auto mistyped = j;
  mistyped["started_ms"] = "1234";
  EXPECT_FALSE(DecodeLeaseRecord(mistyped.dump()).has_value());
  auto negative = j;
  negative["closed_ms"] = -1;
  EXPECT_FALSE(DecodeLeaseRecord(negative.dump()).has_value());
  auto bad_hash = j;
  bad_hash["manifest_hash"] = "zz";
  EXPECT_FALSE(DecodeLeaseRecord(bad_hash.dump()).has_value());
  auto empty_manifest = j;  // left out when none, never ""
  empty_manifest["manifest"] = "";
  EXPECT_FALSE(DecodeLeaseRecord(empty_manifest.dump()).has_value());
  auto manifest_and_extra = j;
  manifest_and_extra["manifest"] = "{}";
  ASSERT_TRUE(DecodeLeaseRecord(manifest_and_extra.dump()).has_value());
  manifest_and_extra["x"] = 1;
  EXPECT_FALSE(DecodeLeaseRecord(manifest_and_extra.dump()).has_value());
  EXPECT_FALSE(DecodeLeaseRecord("[1,2]").has_value());
  auto funds = j;  // the optional stop_grace_ms and funds_stop_ms: never 0 when there
  funds["stop_grace_ms"] = 1000;
  funds["funds_stop_ms"] = 5;
  ASSERT_TRUE(DecodeLeaseRecord(funds.dump()).has_value());
  funds["funds_stop_ms"] = 0;
  EXPECT_FALSE(DecodeLeaseRecord(funds.dump()).has_value());
  funds["funds_stop_ms"] = 5;
  funds["stop_grace_ms"] = 0;
  EXPECT_FALSE(DecodeLeaseRecord(funds.dump()).has_value());
}

TEST(LeaseBook, WorkloadIdsAndLeaseIdsRoundTrip) {
  EXPECT_EQ(WorkloadIdOf(42), "lease-42");
  EXPECT_EQ(LeaseIdOfWorkload("lease-42"), 42u);
  EXPECT_EQ(LeaseIdOfWorkload("lease-042"), std::nullopt);  // one spelling per id
  EXPECT_EQ(LeaseIdOfWorkload("lease-"), std::nullopt);
  EXPECT_EQ(LeaseIdOfWorkload("scratch"), std::nullopt);
  EXPECT_EQ(LeaseIdOfWorkload("lease-99999999999999999999"), std::nullopt);
}

}  // namespace
}  // namespace gpunet::provider
