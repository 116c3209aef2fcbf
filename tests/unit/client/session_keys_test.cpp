// Session keys and their grants on disk (client/session_keys.h).
#include "client/session_keys.h"

#include <gtest/gtest.h>

#include <fstream>

#include "util/keys.h"
#include "util/temp_dir.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;

struct SessionFixture {
  testing::TempDir home;
  SessionKeys store = SessionKeys::AtHome(home.Path());
  crypto::KeyPair tenant = testing::TestKey("tenant");
  crypto::Address provider = testing::TestAddress(2);

  DelegationGrant Grant(const crypto::KeyPair& session, uint64_t lease, uint64_t expires_ms,
                        uint8_t id) {
    GrantId grant_id;
    grant_id.data.fill(id);
    return SignGrant(tenant, RequestScope{"test-chain", provider, lease}, session.Public(),
                     expires_ms, grant_id);
  }
};

TEST(SessionKeys, MadeOnceKeptPrivateAndReloaded) {
  SessionFixture f;
  bool created = false;
  auto key = f.store.LoadOrCreate("laptop", created);
  ASSERT_TRUE(key) << key.error().ToString();
  EXPECT_TRUE(created);
  EXPECT_EQ(f.store.Dir(), f.home.Path() + "/keys/sessions");
  EXPECT_EQ(testing::FileMode(f.store.Dir() + "/laptop.key") & 0777, 0600u);
  EXPECT_EQ(testing::FileMode(f.store.Dir()) & 0777, 0700u);
  auto again = f.store.LoadOrCreate("laptop", created);
  ASSERT_TRUE(again);
  EXPECT_FALSE(created);
  EXPECT_TRUE(again->Public() == key->Public());
  EXPECT_EQ(f.store.Load("other").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(f.store.LoadOrCreate("../x", created).error().code, ErrorCode::kInvalidArgument);
}

TEST(SessionKeys, ADamagedOrSwappedKeyFileIsRefused) {
  SessionFixture f;
  bool created = false;
  ASSERT_TRUE(f.store.LoadOrCreate("a", created));
  const std::string path = f.store.Dir() + "/a.key";
  std::string text = testing::FileText(path);
  // Another public key beside the seed: the file was tampered with.
  const std::string other = base::ToHex(testing::TestKey("other").Public());
  text.replace(text.find("\"public_key\": \"") + 15, 64, other);
  std::ofstream(path, std::ios::trunc) << text;
  EXPECT_EQ(f.store.Load("a").error().code, ErrorCode::kCorrupt);
  std::ofstream(path, std::ios::trunc) << "{}";
  EXPECT_EQ(f.store.Load("a").error().code, ErrorCode::kCorrupt);
}

TEST(SessionKeys, UsableGrantIsForThisLeaseUnexpiredAndLastsLongest) {
  SessionFixture f;
  bool created = false;
  const auto a = *f.store.LoadOrCreate("a", created);
  const auto b = *f.store.LoadOrCreate("b", created);
  const uint64_t now = 1'000'000;
  ASSERT_TRUE(f.store.SaveGrant("a", f.Grant(a, 7, now + 3'600'000, 1)));
  ASSERT_TRUE(f.store.SaveGrant("b", f.Grant(b, 7, now + 7'200'000, 2)));
  ASSERT_TRUE(f.store.SaveGrant("a", f.Grant(a, 8, now + 9'000'000, 3)));
  // A grant must name the key it is stored under.
  EXPECT_EQ(f.store.SaveGrant("a", f.Grant(b, 9, now + 1, 4)).error().code,
            ErrorCode::kInvalidArgument);

  auto best = f.store.Usable(f.provider, 7, now);
  ASSERT_TRUE(best && *best);
  EXPECT_EQ((*best)->name, "b");
  EXPECT_TRUE((*best)->grant.session_key == b.Public());
  auto named = f.store.Usable(f.provider, 7, now, "a");
  ASSERT_TRUE(named && *named);
  EXPECT_EQ((*named)->grant.grant_id.data[0], 1);
  // Within a minute of its end a grant is not used (the provider may refuse it by then).
  EXPECT_FALSE(*f.store.Usable(f.provider, 7, now + 7'200'000 - kGrantUseMarginMs + 1));
  // Another provider's lease 7 is another lease.
  EXPECT_FALSE(*f.store.Usable(testing::TestAddress(3), 7, now));
  EXPECT_EQ(f.store.GrantsFor(f.provider, 7)->size(), 2u);

  ASSERT_TRUE(f.store.RemoveGrant("b", 7));
  ASSERT_TRUE(f.store.RemoveGrant("b", 7));  // already gone: fine
  best = f.store.Usable(f.provider, 7, now);
  ASSERT_TRUE(best && *best);
  EXPECT_EQ((*best)->name, "a");
}

TEST(SessionKeys, NoStoreYetMeansNoGrants) {
  SessionFixture f;
  auto none = f.store.Usable(f.provider, 1, 0);
  ASSERT_TRUE(none) << none.error().ToString();
  EXPECT_FALSE(*none);
}

}  // namespace
}  // namespace gpunet::client
