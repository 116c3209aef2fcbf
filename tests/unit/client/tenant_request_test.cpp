// Signed tenant-API requests: targets, headers, signatures, grants and revocations.
#include "client/tenant_request.h"

#include <gtest/gtest.h>

#include <string>

#include "base/limits.h"
#include "util/keys.h"

namespace gpunet::client {
namespace {

using testing::TestAddress;
using testing::TestKey;

RequestScope Scope() {
  return RequestScope{"gpunet-test", TestAddress(7), 42};
}

RequestNonce Nonce(uint8_t b) {
  RequestNonce n;
  n.data.fill(b);
  return n;
}

RequestLine Line(std::string_view method, std::string_view target, std::string_view body) {
  return RequestLine{method, target, BodyHash(body)};
}

HeaderList Signed(const crypto::KeyPair& key, const RequestLine& line, uint64_t ts = 1'000'000,
                  const DelegationGrant* grant = nullptr) {
  auto h = SignTenantRequest(Scope(), key, grant, line, ts, Nonce(1));
  EXPECT_TRUE(h) << h.error().ToString();
  return h ? *h : HeaderList{};
}

TEST(TenantTarget, AcceptsOrdinaryPathsAndQueries) {
  for (std::string_view t : {"/", "/leases/42/logs", "/outputs/a%20b.txt", "/x?follow=1&p=a/b",
                             "/dir/", "/a.b/..c/.d", "/%7Euser"}) {
    EXPECT_TRUE(CheckRequestTarget(t)) << t;
  }
}

TEST(TenantTarget, RefusesEveryAmbiguousOrHostileForm) {
  const std::string over(base::limits::kTenantTargetBytesMax + 1, 'a');
  for (std::string_view t :
       {"",        "relative", "/a/../b", "/..",   "/a/./b", "/a/%2e%2E/b", "/a/.%2e", "/%2E",
        "/a%2fb",  "/a%2Fb",   "/a%5cb",  "/a\\b", "/a%00b", "/a%0ab",      "/a%7f",   "/a b",
        "/a#frag", "/a//b",    "/a%",     "/a%2",  "/a%zz",  "/x?q=%2f",    "/x?q=%00"}) {
    auto st = CheckRequestTarget(t);
    EXPECT_FALSE(st) << "accepted: " << t;
    if (!st) {
      EXPECT_EQ(st.error().code, base::ErrorCode::kInvalidArgument);
    }
  }
  EXPECT_FALSE(CheckRequestTarget("/" + over.substr(1) + "b"));
  EXPECT_FALSE(CheckRequestTarget(std::string("/a\0b", 4)));
  EXPECT_FALSE(CheckRequestTarget("/a\x01"));
  EXPECT_FALSE(CheckRequestTarget("/caf\xc3\xa9"));
}

TEST(TenantRequest, SignedHeadersVerifyAndParse) {
  const auto tenant = TestKey(1);
  const RequestLine line = Line("POST", "/leases/42/manifest", "{\"a\":1}");
  HeaderList h = Signed(tenant, line);
  ASSERT_EQ(h.size(), 4u);
  auto auth = ParseRequestAuthHeaders(h);
  ASSERT_TRUE(auth) << auth.error().ToString();
  EXPECT_EQ(auth->signer, tenant.Public());
  EXPECT_EQ(auth->timestamp_ms, 1'000'000u);
  EXPECT_EQ(auth->nonce, Nonce(1));
  EXPECT_FALSE(auth->grant.has_value());
  EXPECT_TRUE(VerifyTenantRequestSignature(Scope(), line, *auth));
}

TEST(TenantRequest, EveryCoveredFieldBreaksTheSignature) {
  const auto tenant = TestKey(1);
  const RequestLine line = Line("POST", "/leases/42/files", "body");
  auto auth = ParseRequestAuthHeaders(Signed(tenant, line));
  ASSERT_TRUE(auth);
  auto refuses = [&](const RequestScope& s, const RequestLine& l, const RequestAuthHeaders& a) {
    auto st = VerifyTenantRequestSignature(s, l, a);
    return !st && st.error().code == base::ErrorCode::kBadSignature;
  };
  RequestScope s = Scope();
  s.chain_id = "other-chain";
  EXPECT_TRUE(refuses(s, line, *auth));
  s = Scope();
  s.provider = TestAddress(8);
  EXPECT_TRUE(refuses(s, line, *auth));
  s = Scope();
  s.lease_id = 43;
  EXPECT_TRUE(refuses(s, line, *auth));
  EXPECT_TRUE(refuses(Scope(), Line("PUT", "/leases/42/files", "body"), *auth));
  EXPECT_TRUE(refuses(Scope(), Line("POST", "/leases/42/file", "body"), *auth));
  EXPECT_TRUE(refuses(Scope(), Line("POST", "/leases/42/files", "bodY"), *auth));
  RequestAuthHeaders a = *auth;
  a.timestamp_ms += 1;
  EXPECT_TRUE(refuses(Scope(), line, a));
  a = *auth;
  a.nonce[0] ^= 1;
  EXPECT_TRUE(refuses(Scope(), line, a));
  a = *auth;
  a.signer = TestKey(2).Public();
  EXPECT_TRUE(refuses(Scope(), line, a));
  // The same request with the raw target spelled differently is another request.
  EXPECT_TRUE(refuses(Scope(), Line("POST", "/leases/42/%66iles", "body"), *auth));
}

TEST(TenantRequest, SigningRefusesBadTargetsAndAMismatchedGrant) {
  const auto tenant = TestKey(1);
  auto h = SignTenantRequest(Scope(), tenant, nullptr, Line("GET", "/a/../b", ""), 1, Nonce(1));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, base::ErrorCode::kInvalidArgument);
  h = SignTenantRequest(Scope(), tenant, nullptr, Line("get", "/a", ""), 1, Nonce(1));
  ASSERT_FALSE(h);
  const DelegationGrant g = SignGrant(tenant, Scope(), TestKey(3).Public(), 5, GrantId{});
  h = SignTenantRequest(Scope(), TestKey(4), &g, Line("GET", "/a", ""), 1, Nonce(1));
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message.find("another key"), std::string::npos);
}

void ExpectHeaderRefused(HeaderList h, std::string_view mention) {
  auto auth = ParseRequestAuthHeaders(h);
  ASSERT_FALSE(auth) << "accepted headers mentioning " << mention;
  EXPECT_EQ(auth.error().code, base::ErrorCode::kInvalidArgument);
  EXPECT_NE(auth.error().message.find(mention), std::string::npos) << auth.error().message;
}

TEST(TenantRequest, HeadersAreParsedStrictly) {
  const HeaderList good = Signed(TestKey(1), Line("GET", "/x", ""));
  auto with = [&](size_t i, std::string value) {
    HeaderList h = good;
    h[i].second = std::move(value);
    return h;
  };
  // Names compare case-insensitively.
  HeaderList lower = good;
  for (auto& [name, value] : lower)
    for (char& c : name) c = static_cast<char>(std::tolower(c));
  EXPECT_TRUE(ParseRequestAuthHeaders(lower));
  for (size_t i = 0; i < 4; ++i) {
    HeaderList missing = good;
    missing.erase(missing.begin() + static_cast<long>(i));
    ExpectHeaderRefused(missing, "missing header " + good[i].first);
    HeaderList twice = good;
    twice.push_back(good[i]);
    ExpectHeaderRefused(twice, "sent twice");
  }
  ExpectHeaderRefused(with(0, good[0].second.substr(2)), "Gpunet-Signer");
  std::string upper = good[0].second;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  ExpectHeaderRefused(with(0, upper), "lower-case hex");
  ExpectHeaderRefused(with(1, "01000000"), "leading zeros");
  ExpectHeaderRefused(with(1, "+1000000"), "Gpunet-Timestamp");
  ExpectHeaderRefused(with(1, " 1000000"), "Gpunet-Timestamp");
  ExpectHeaderRefused(with(1, "99999999999999999999"), "Gpunet-Timestamp");
  ExpectHeaderRefused(with(1, ""), "Gpunet-Timestamp");
  ExpectHeaderRefused(with(2, good[2].second + "00"), "Gpunet-Nonce");
  ExpectHeaderRefused(with(3, good[3].second.substr(1) + "g"), "Gpunet-Signature");
  HeaderList unknown = good;
  unknown.emplace_back("Gpunet-Extra", "1");
  ExpectHeaderRefused(unknown, "unknown header Gpunet-Extra");
  HeaderList bad_grant = good;
  bad_grant.emplace_back("Gpunet-Grant", "00");
  ExpectHeaderRefused(bad_grant, "header Gpunet-Grant");
  // Other headers are not ours to judge.
  HeaderList other = good;
  other.emplace_back("Content-Type", "application/json");
  // An upload chunk's hash is the upload's header, not a signature's (PUT .../files/...).
  other.emplace_back("gpunet-chunk-sha256", std::string(64, 'a'));
  EXPECT_TRUE(ParseRequestAuthHeaders(other));
}

TEST(TenantGrant, RoundTripsVerifiesAndIsNeverARequest) {
  const auto tenant = TestKey(1);
  const auto session = TestKey(2);
  GrantId id;
  id.data.fill(9);
  const DelegationGrant g = SignGrant(tenant, Scope(), session.Public(), 5'000'000, id);
  EXPECT_TRUE(VerifyGrantSignature("gpunet-test", g));
  EXPECT_FALSE(VerifyGrantSignature("other-chain", g));
  auto parsed = ParseGrant(EncodeGrant(g));
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ(*parsed, g);
  DelegationGrant changed = g;
  changed.expires_ms += 1;
  EXPECT_FALSE(VerifyGrantSignature("gpunet-test", changed));
  changed = g;
  changed.session_key = TestKey(3).Public();
  EXPECT_FALSE(VerifyGrantSignature("gpunet-test", changed));

  // A grant's text with another purpose byte, extra or missing bytes is refused.
  std::string text = EncodeGrant(g);
  EXPECT_FALSE(ParseGrant("01" + text.substr(2)));
  EXPECT_FALSE(ParseGrant(text + "00"));
  EXPECT_FALSE(ParseGrant(text.substr(0, text.size() - 2)));

  // A request signed by the session key carries the grant and parses back.
  const RequestLine line = Line("GET", "/logs", "");
  HeaderList h = Signed(session, line, 1'000'000, &g);
  auto auth = ParseRequestAuthHeaders(h);
  ASSERT_TRUE(auth) << auth.error().ToString();
  ASSERT_TRUE(auth->grant.has_value());
  EXPECT_EQ(*auth->grant, g);
  EXPECT_TRUE(VerifyTenantRequestSignature(Scope(), line, *auth));
}

TEST(TenantGrant, RevocationRoundTripsAndVerifies) {
  const auto tenant = TestKey(1);
  GrantId id;
  id.data.fill(3);
  const DelegationGrant g = SignGrant(tenant, Scope(), TestKey(2).Public(), 7'000, id);
  const GrantRevocation r = SignRevocation(tenant, Scope(), g);
  EXPECT_EQ(r.grant_id, id);
  EXPECT_EQ(r.grant_expires_ms, 7'000u);
  EXPECT_TRUE(VerifyRevocationSignature("gpunet-test", r));
  auto parsed = ParseRevocation(EncodeRevocation(r));
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ(*parsed, r);
  GrantRevocation other = r;
  other.grant_id[0] ^= 1;
  EXPECT_FALSE(VerifyRevocationSignature("gpunet-test", other));
  // A grant's bytes never parse as a revocation, nor the other way round.
  EXPECT_FALSE(ParseRevocation(EncodeGrant(g)));
  EXPECT_FALSE(ParseGrant(EncodeRevocation(r)));
}

}  // namespace
}  // namespace gpunet::client
