// RequestVerifier: every refusal of issue 17 item 8 that concerns who signs — unsigned,
// wrongly signed, replayed, stale and future-dated requests, a key that is neither the
// tenant's nor delegated, an expired, revoked or over-long grant — and reads after close.
#include "provider/request_auth.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "util/keys.h"
#include "util/temp_dir.h"

namespace gpunet::provider {
namespace {

using client::HeaderList;
using gpunet::testing::TempDir;
using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

constexpr uint64_t kNow = 1'700'000'000'000;
constexpr uint64_t kLeaseId = 42;

struct Fixture {
  Fixture() {
    auto opened = NonceStore::Open(dir.Path(), kNow);
    EXPECT_TRUE(opened) << opened.error().ToString();
    nonces = std::move(*opened);
    config.chain_id = "gpunet-test";
    config.provider = TestAddress(7);
    config.outputs_retention_ms = 3'600'000;
    verifier = std::make_unique<RequestVerifier>(config, clock, *nonces);
    lease.lease_id = kLeaseId;
    lease.tenant = crypto::AddressOf(tenant.Public());
    lease.provider = config.provider;
    lease.ends_at_ms = kNow + 10 * 3'600'000;
  }

  client::RequestScope Scope() const { return {config.chain_id, config.provider, kLeaseId}; }

  /// Headers signing (method, target, body) with `key` at `ts_ms`, a fresh nonce each call.
  HeaderList Sign(const crypto::KeyPair& key, std::string_view method, std::string_view target,
                  std::string_view body, uint64_t ts_ms,
                  const client::DelegationGrant* grant = nullptr) {
    client::RequestNonce nonce;
    nonce[0] = ++next_nonce;
    auto h = client::SignTenantRequest(Scope(), key, grant,
                                       {method, target, client::BodyHash(body)}, ts_ms, nonce);
    EXPECT_TRUE(h) << h.error().ToString();
    return h ? *h : HeaderList{};
  }

  AuthVerdict Check(const HeaderList& h, std::string_view method, std::string_view target,
                    std::string_view body, RouteKind kind = RouteKind::kWrite) {
    IncomingRequest req{method, target, &h, client::BodyHash(body)};
    return verifier->Verify(req, lease, kind);
  }

  /// Signs and checks in one go with the tenant key.
  AuthVerdict TenantCall(std::string_view target = "/leases/42/manifest",
                         RouteKind kind = RouteKind::kWrite) {
    return Check(Sign(tenant, "POST", target, "{}", static_cast<uint64_t>(clock.NowMs())), "POST",
                 target, "{}", kind);
  }

  client::DelegationGrant Grant(const crypto::KeyPair& session, uint64_t expires_ms,
                                uint8_t id_byte = 1) {
    client::GrantId id;
    id.data.fill(id_byte);
    return client::SignGrant(tenant, Scope(), session.Public(), expires_ms, id);
  }

  TempDir dir;
  base::ManualClock clock{static_cast<int64_t>(kNow)};
  std::unique_ptr<NonceStore> nonces;
  VerifierConfig config;
  std::unique_ptr<RequestVerifier> verifier;
  LeaseView lease;
  crypto::KeyPair tenant = TestKey(1);
  uint8_t next_nonce = 0;
};

void ExpectRefused(const AuthVerdict& v, int status, std::string_view mention) {
  EXPECT_EQ(v.status, status) << v.message;
  EXPECT_FALSE(v.Allowed());
  EXPECT_NE(v.message.find(mention), std::string::npos) << v.message;
}

TEST(RequestAuth, TheTenantsSignedRequestIsAllowed) {
  Fixture f;
  AuthVerdict v = f.TenantCall();
  ASSERT_TRUE(v.Allowed()) << v.status << " " << v.message;
  EXPECT_EQ(v.signer, f.tenant.Public());
  EXPECT_FALSE(v.grant_id.has_value());
  EXPECT_EQ(f.nonces->Entries(), 1u);
}

TEST(RequestAuth, UnsignedMalformedAndWronglySignedAre401) {
  Fixture f;
  const HeaderList none;
  ExpectRefused(f.Check(none, "GET", "/leases/42/logs", ""), 401, "missing header Gpunet-Signer");
  HeaderList h = f.Sign(f.tenant, "POST", "/leases/42/manifest", "{}", kNow);
  h[3].second[0] = h[3].second[0] == 'a' ? 'b' : 'a';  // the signature
  ExpectRefused(f.Check(h, "POST", "/leases/42/manifest", "{}"), 401, "does not verify");
  // A valid signature over another body, target or method.
  h = f.Sign(f.tenant, "POST", "/leases/42/manifest", "{}", kNow);
  ExpectRefused(f.Check(h, "POST", "/leases/42/manifest", "{\"x\":1}"), 401, "does not verify");
  ExpectRefused(f.Check(h, "POST", "/leases/42/secrets", "{}"), 401, "does not verify");
  ExpectRefused(f.Check(h, "PUT", "/leases/42/manifest", "{}"), 401, "does not verify");
  // A lease of the same tenant under another id.
  f.lease.lease_id = 43;
  ExpectRefused(f.Check(h, "POST", "/leases/42/manifest", "{}"), 401, "does not verify");
  EXPECT_EQ(f.nonces->Entries(), 0u) << "a refused request used up a nonce";
}

TEST(RequestAuth, BadTargetsAre400) {
  Fixture f;
  const HeaderList h = f.Sign(f.tenant, "GET", "/leases/42/logs", "", kNow);
  ExpectRefused(f.Check(h, "GET", "/leases/42/../43/logs", ""), 400, "\"..\"");
  ExpectRefused(f.Check(h, "GET", "/leases%2f42", ""), 400, "%2F");
}

TEST(RequestAuth, StaleAndFutureTimestampsAre401WithTheSkew) {
  Fixture f;
  HeaderList stale = f.Sign(f.tenant, "GET", "/x", "", kNow - 61'000);
  ExpectRefused(f.Check(stale, "GET", "/x", ""), 401, "61.0 s behind the provider's clock");
  HeaderList future = f.Sign(f.tenant, "GET", "/x", "", kNow + 75'300);
  ExpectRefused(f.Check(future, "GET", "/x", ""), 401, "75.3 s ahead of");
  // At the edge of the window both ways it is accepted.
  EXPECT_TRUE(f.Check(f.Sign(f.tenant, "GET", "/x", "", kNow - 60'000), "GET", "/x", "").Allowed());
  EXPECT_TRUE(f.Check(f.Sign(f.tenant, "GET", "/x", "", kNow + 60'000), "GET", "/x", "").Allowed());
}

TEST(RequestAuth, AReplayIs401AndSoIsOneAfterARestart) {
  Fixture f;
  const HeaderList h = f.Sign(f.tenant, "POST", "/leases/42/manifest", "{}", kNow);
  ASSERT_TRUE(f.Check(h, "POST", "/leases/42/manifest", "{}").Allowed());
  f.clock.AdvanceMs(30'000);
  ExpectRefused(f.Check(h, "POST", "/leases/42/manifest", "{}"), 401, "replayed");
  // The daemon restarts: a new store over the same directory still knows the nonce.
  f.verifier.reset();
  f.nonces.reset();
  auto reopened = NonceStore::Open(f.dir.Path(), static_cast<uint64_t>(f.clock.NowMs()));
  ASSERT_TRUE(reopened);
  f.nonces = std::move(*reopened);
  f.verifier = std::make_unique<RequestVerifier>(f.config, f.clock, *f.nonces);
  ExpectRefused(f.Check(h, "POST", "/leases/42/manifest", "{}"), 401, "replayed");
  // Past the window, the clock check refuses it instead.
  f.clock.AdvanceMs(31'000);
  ExpectRefused(f.Check(h, "POST", "/leases/42/manifest", "{}"), 401, "behind");
}

TEST(RequestAuth, AnotherKeyIs403AndAnotherProvidersLeaseToo) {
  Fixture f;
  const auto stranger = TestKey(5);
  ExpectRefused(f.Check(f.Sign(stranger, "GET", "/x", "", kNow), "GET", "/x", ""), 403,
                "neither lease 42's tenant nor a session key");
  f.lease.provider = TestAddress(8);
  ExpectRefused(f.TenantCall(), 403, "not with this provider");
}

TEST(RequestAuth, ADelegatedSessionKeyIsAllowedUntilItsGrantExpires) {
  Fixture f;
  const auto session = TestKey(2);
  const auto grant = f.Grant(session, kNow + 3'600'000);
  AuthVerdict v = f.Check(f.Sign(session, "GET", "/x", "", kNow, &grant), "GET", "/x", "");
  ASSERT_TRUE(v.Allowed()) << v.message;
  EXPECT_EQ(v.signer, session.Public());
  ASSERT_TRUE(v.grant_id.has_value());
  EXPECT_EQ(*v.grant_id, grant.grant_id);

  f.clock.SetMs(static_cast<int64_t>(kNow + 3'600'000));
  const uint64_t t = kNow + 3'600'000;
  ExpectRefused(f.Check(f.Sign(session, "GET", "/x", "", t, &grant), "GET", "/x", ""), 403,
                "expired");
}

TEST(RequestAuth, BadGrantsAre403) {
  Fixture f;
  const auto session = TestKey(2);
  auto call = [&](const client::DelegationGrant& g) {
    return f.Check(f.Sign(session, "GET", "/x", "", kNow, &g), "GET", "/x", "");
  };
  // Outliving the lease.
  ExpectRefused(call(f.Grant(session, f.lease.ends_at_ms + 1)), 403, "after the lease's end");
  // Made by someone who is not the tenant.
  client::DelegationGrant g =
      client::SignGrant(TestKey(9), f.Scope(), session.Public(), kNow + 1000, client::GrantId{});
  ExpectRefused(call(g), 403, "not made by lease 42's tenant");
  // For another lease.
  client::RequestScope other = f.Scope();
  other.lease_id = 41;
  g = client::SignGrant(f.tenant, other, session.Public(), kNow + 1000, client::GrantId{});
  ExpectRefused(call(g), 403, "another lease");
  // Tampered after signing (a later expiry).
  g = f.Grant(session, kNow + 1000);
  g.expires_ms += 1000;
  ExpectRefused(call(g), 403, "does not verify");
  // A grant for another session key, used by this one: SignTenantRequest refuses to
  // sign so, so put the headers together by hand.
  g = f.Grant(TestKey(3), kNow + 1000);
  HeaderList h = f.Sign(session, "GET", "/x", "", kNow);
  h.emplace_back("Gpunet-Grant", client::EncodeGrant(g));
  ExpectRefused(f.Check(h, "GET", "/x", ""), 403, "another key");
  // The tenant's own key needs no grant, and one sent along is refused, not ignored.
  h = f.Sign(f.tenant, "GET", "/x", "", kNow);
  h.emplace_back("Gpunet-Grant", client::EncodeGrant(f.Grant(session, kNow + 1000)));
  ExpectRefused(f.Check(h, "GET", "/x", ""), 401, "must carry no Gpunet-Grant");
  EXPECT_EQ(f.nonces->Entries(), 0u);
}

TEST(RequestAuth, ARevokedGrantIs403AndOnlyTheTenantMayRevoke) {
  Fixture f;
  const auto session = TestKey(2);
  const auto grant = f.Grant(session, kNow + 3'600'000);
  ASSERT_TRUE(f.Check(f.Sign(session, "GET", "/x", "", kNow, &grant), "GET", "/x", "").Allowed());

  // The session key cannot revoke (nor can anyone but the tenant).
  const auto forged = client::SignRevocation(session, f.Scope(), grant);
  ExpectRefused(f.verifier->Revoke(forged, f.lease), 403, "only lease 42's tenant");
  client::GrantRevocation tampered = client::SignRevocation(f.tenant, f.Scope(), grant);
  tampered.grant_expires_ms = 1;
  ExpectRefused(f.verifier->Revoke(tampered, f.lease), 401, "does not verify");

  AuthVerdict r = f.verifier->Revoke(client::SignRevocation(f.tenant, f.Scope(), grant), f.lease);
  ASSERT_TRUE(r.Allowed()) << r.message;
  ExpectRefused(f.Check(f.Sign(session, "GET", "/x", "", kNow, &grant), "GET", "/x", ""), 403,
                "revoked");
  // Another grant to the same key still works.
  const auto fresh = f.Grant(session, kNow + 3'600'000, 2);
  EXPECT_TRUE(f.Check(f.Sign(session, "GET", "/x", "", kNow, &fresh), "GET", "/x", "").Allowed());
}

TEST(RequestAuth, AfterCloseReadsLastForTheRetentionAndWritesAre410) {
  Fixture f;
  f.lease.closed = true;
  f.lease.closed_ms = kNow - 1000;
  ExpectRefused(f.TenantCall("/leases/42/manifest", RouteKind::kWrite), 410, "is closed");
  AuthVerdict read = f.TenantCall("/leases/42/outputs", RouteKind::kRead);
  EXPECT_TRUE(read.Allowed()) << read.message;
  f.clock.SetMs(static_cast<int64_t>(f.lease.closed_ms + f.config.outputs_retention_ms));
  ExpectRefused(f.TenantCall("/leases/42/outputs", RouteKind::kRead), 410, "were kept until");
  // Someone else is still 403, not 410: the lease's state is not shown to strangers.
  const HeaderList h = f.Sign(TestKey(5), "GET", "/x", "", static_cast<uint64_t>(f.clock.NowMs()));
  EXPECT_EQ(f.Check(h, "GET", "/x", "", RouteKind::kRead).status, 403);
}

TEST(RequestAuth, AKeyOverItsNonceCapGets429) {
  TempDir dir;
  NonceStoreOptions opt;
  opt.per_key_max = 2;
  Fixture f;
  auto small = NonceStore::Open(dir.Path(), kNow, opt);
  ASSERT_TRUE(small);
  RequestVerifier verifier(f.config, f.clock, **small);
  auto call = [&](const crypto::KeyPair& key) {
    HeaderList h = f.Sign(key, "GET", "/x", "", kNow);
    return verifier.Verify({"GET", "/x", &h, client::BodyHash("")}, f.lease, RouteKind::kRead);
  };
  EXPECT_TRUE(call(f.tenant).Allowed());
  EXPECT_TRUE(call(f.tenant).Allowed());
  ExpectRefused(call(f.tenant), 429, "its limit");
  const auto session = TestKey(2);
  const auto grant = f.Grant(session, kNow + 1000);
  HeaderList h = f.Sign(session, "GET", "/x", "", kNow, &grant);
  EXPECT_TRUE(
      verifier.Verify({"GET", "/x", &h, client::BodyHash("")}, f.lease, RouteKind::kRead).Allowed())
      << "another key was crowded out by the noisy one";
}

}  // namespace
}  // namespace gpunet::provider
