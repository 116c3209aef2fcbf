// The node's market answers as typed values: every documented field is read, and a
// missing field, a string where a number belongs, an amount as a number or a bad
// address is a kCorrupt error naming the request and the field's path, both from
// the parsers and from MarketClient against a stand-in node serving such answers.
#include "client/market_answers.h"

#include <gtest/gtest.h>

#include "client/json_fields.h"
#include "client/market_client.h"
#include "client/node_client.h"
#include "crypto/address.h"
#include "unit/client/fake_node.h"
#include "util/keys.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using nlohmann::json;

std::string Addr(std::string_view name) {
  return crypto::AddressToString(testing::TestAddress(name));
}

std::string H(char c) {
  return std::string(64, c);
}

/// A provider as GET /market/provider/<owner> answers it (node/market_routes.cpp).
json ProviderAnswer() {
  json provider = {{"owner", Addr("owner")},
                   {"operator", Addr("operator")},
                   {"tenant_api_uri", "https://gpu.example:8443"},
                   {"tls_fingerprint", H('a')},
                   {"region", "eu-west"},
                   {"payouts", json::array({{{"payee", Addr("owner")}, {"bp", 7500}},
                                            {{"payee", Addr("investor")}, {"bp", 2500}}})},
                   {"policy", {{"allow", json::array()}, {"deny", json::array({Addr("x")})}}},
                   {"active", true},
                   {"bond_ugpn", "1000000000"},
                   {"unbonding", json::array({{{"amount_ugpn", "5"}, {"release_ms", 9}}})},
                   {"registered_ms", 1},
                   {"last_heartbeat_ms", 2},
                   {"last_heartbeat_height", 3},
                   {"heartbeat_deadline_ms", 4},
                   {"sites", 1},
                   {"machines", 2},
                   {"open_offers", 1},
                   {"open_leases", 0},
                   {"started_leases", 0},
                   {"leases_completed", 7},
                   {"faults", 1},
                   {"fault_rate_ppm", 125000},
                   {"penalties_paid_ugpn", "0"},
                   {"penalties_unpaid_ugpn", "0"},
                   {"earned_ugpn", "42"},
                   {"promised_penalties_ugpn", "0"},
                   {"required_bond_ugpn", "1000000000"},
                   {"self_reported", true}};
  json machine = {{"machine_id", 1},       {"site_id", 1},
                  {"gpu_model", "H100"},   {"gpu_count", 8},
                  {"free_gpus", 8},        {"vram_gib", 80},
                  {"link", "nvlink"},      {"driver_version", "550.54.15"},
                  {"cuda_version", 12040}, {"compute_capability", 90},
                  {"cpu_cores", 64},       {"memory_gib", 512},
                  {"disk_gib", 2000},      {"self_reported", true}};
  json machine2 = machine;
  machine2["machine_id"] = 2;
  provider["site_list"] = json::array(
      {{{"site_id", 1}, {"fabric", "infiniband"}, {"bandwidth_gbps", 400}, {"machines", 2}}});
  provider["machine_list"] = json::array({machine, machine2});
  provider["offer_list"] = json::array({{{"offer_id", 3},
                                         {"provider", Addr("owner")},
                                         {"gpu_model", "H100"},
                                         {"site_id", 0},
                                         {"price_ugpn_per_gpu_hour", "2500000"},
                                         {"tenants", json::array()},
                                         {"private", false},
                                         {"open", true},
                                         {"created_ms", 1},
                                         {"min_hours", 2},
                                         {"max_hours", 0}}});
  return {{"height", 12}, {"time_ms", 34}, {"provider", provider}};
}

json LeaseRecord() {
  return {{"lease_id", 5},
          {"tenant", Addr("tenant")},
          {"provider", Addr("owner")},
          {"offer_id", 3},
          {"order_id", 0},
          {"allocations", json::array({{{"machine_id", 1}, {"gpus", 4}}})},
          {"gpus", 4},
          {"price_ugpn_per_gpu_hour", "2500000"},
          {"rate_ugpn_per_hour", "10000000"},
          {"manifest_hash", H('b')},
          {"state", "started"},
          {"end", "none"},
          {"created_ms", 1},
          {"start_deadline_ms", 2},
          {"started_ms", 3},
          {"paid_until_ms", 4},
          {"deposited_ugpn", "50000000"},
          {"escrow_ugpn", "40000000"},
          {"paid_ugpn", "10000000"},
          {"refunded_ugpn", "0"},
          {"penalty_ugpn", "0"},
          {"closed_ms", 0},
          {"min_hours", 2},
          {"max_hours", 48},
          {"as_of_ms", 5},
          {"accrued_ugpn", "12000000"},
          {"withdrawable_ugpn", "2000000"}};
}

json OrderRecord() {
  return {{"order_id", 2},
          {"tenant", Addr("tenant")},
          {"requirements",
           {{"gpu_models", json::array({"H100"})},
            {"gpus_per_machine", 8},
            {"machines", 1},
            {"min_vram_gib", 80},
            {"region", "eu"},
            {"fabric", "any"},
            {"same_site", false},
            {"min_cuda_version", 12010},
            {"auditors", json::array()},
            {"attributes", {{"tier", "3"}}}}},
          {"max_price_ugpn_per_gpu_hour", "3000000"},
          {"deposit_ugpn", "100000000"},
          {"manifest_hash", H('c')},
          {"created_ms", 1},
          {"window_end_ms", 2},
          {"state", "open"},
          {"bids", 1},
          {"lease_id", 0},
          {"providers",
           {{"min_bond_ugpn", "0"},
            {"min_earned_ugpn", "0"},
            {"max_fault_rate_ppm", 1000000},
            {"excluded", json::array()}}}};
}

/// The error of `r`, which must be a kCorrupt naming `field` (its path) in quotes.
template <class T>
std::string CorruptNaming(const base::Result<T>& r, std::string_view field) {
  if (r) {
    ADD_FAILURE() << "accepted an answer with a bad \"" << field << "\"";
    return {};
  }
  EXPECT_EQ(r.error().code, ErrorCode::kCorrupt) << r.error().message;
  EXPECT_NE(r.error().message.find("field \"" + std::string(field) + "\""), std::string::npos)
      << field << ": " << r.error().message;
  return r.error().message;
}

TEST(ParseProviderAnswer, ReadsEveryField) {
  auto a = ParseProviderAnswer(ProviderAnswer(), "GET /market/provider/x");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->height, 12u);
  EXPECT_EQ(a->time_ms, 34u);
  const ProviderInfo& p = a->value;
  EXPECT_EQ(p.owner, Addr("owner"));
  EXPECT_EQ(p.operator_address, Addr("operator"));
  EXPECT_EQ(p.tls_fingerprint, *base::FixedFromHex<32>(H('a')));
  ASSERT_EQ(p.payouts.size(), 2u);
  EXPECT_EQ(p.payouts[1].payee, Addr("investor"));
  EXPECT_EQ(p.payouts[1].bp, 2500u);
  EXPECT_EQ(p.policy_deny, std::vector<std::string>{Addr("x")});
  EXPECT_EQ(p.bond_ugpn, 1'000'000'000u);
  ASSERT_EQ(p.unbonding.size(), 1u);
  EXPECT_EQ(p.unbonding[0].release_ms, 9u);
  EXPECT_EQ(p.machines, 2u);
  EXPECT_EQ(p.leases_completed, 7u);
  EXPECT_EQ(p.fault_rate_ppm, 125'000u);
  EXPECT_EQ(p.earned_ugpn, 42u);
  ASSERT_EQ(p.site_list.size(), 1u);
  EXPECT_EQ(p.site_list[0].bandwidth_gbps, 400u);
  ASSERT_EQ(p.machine_list.size(), 2u);
  EXPECT_EQ(p.machine_list[1].machine_id, 2u);
  EXPECT_EQ(p.machine_list[1].cuda_version, 12040u);
  EXPECT_EQ(p.machine_list[1].driver_version, "550.54.15");
  ASSERT_EQ(p.offer_list.size(), 1u);
  EXPECT_EQ(p.offer_list[0].price_ugpn_per_gpu_hour, 2'500'000u);
  EXPECT_FALSE(p.offer_list[0].machine_class);  // a provider's offers carry no class
  EXPECT_EQ(a->raw, ProviderAnswer());          // passed through as it came
  EXPECT_EQ(a->raw_record, ProviderAnswer()["provider"]);
}

TEST(ParseProviderAnswer, NamesTheMissingOrMistypedField) {
  const std::string what = "GET /market/provider/x";
  for (std::string_view field : {"owner", "operator", "tls_fingerprint", "payouts", "policy",
                                 "active", "bond_ugpn", "machines", "fault_rate_ppm", "earned_ugpn",
                                 "required_bond_ugpn", "site_list", "machine_list", "offer_list"}) {
    json j = ProviderAnswer();
    j["provider"].erase(std::string(field));
    std::string message =
        CorruptNaming(ParseProviderAnswer(j, what), "provider." + std::string(field));
    EXPECT_NE(message.find("is missing"), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  }
  json j = ProviderAnswer();
  j["provider"]["machines"] = "2";  // a string where a number belongs
  std::string message = CorruptNaming(ParseProviderAnswer(j, what), "provider.machines");
  EXPECT_NE(message.find("is not a non-negative integer number"), std::string::npos) << message;
  j = ProviderAnswer();
  j["provider"]["bond_ugpn"] = 1000000000;  // amounts are strings
  CorruptNaming(ParseProviderAnswer(j, what), "provider.bond_ugpn");
  j = ProviderAnswer();
  j["provider"]["machine_list"][1]["gpu_count"] = -8;
  CorruptNaming(ParseProviderAnswer(j, what), "provider.machine_list[1].gpu_count");
  j = ProviderAnswer();
  j["provider"]["machine_list"][0]["vram_gib"] = 4294967296;  // over its u32
  CorruptNaming(ParseProviderAnswer(j, what), "provider.machine_list[0].vram_gib");
  j = ProviderAnswer();
  j["provider"]["payouts"][0]["payee"] = "gpn1notanaddress";
  CorruptNaming(ParseProviderAnswer(j, what), "provider.payouts[0].payee");
  j = ProviderAnswer();
  j["provider"]["policy"]["deny"][0] = 7;
  CorruptNaming(ParseProviderAnswer(j, what), "provider.policy.deny[0]");
  j = ProviderAnswer();
  j["provider"]["offer_list"][0]["private"] = "no";
  CorruptNaming(ParseProviderAnswer(j, what), "provider.offer_list[0].private");
  j = ProviderAnswer();
  j.erase("height");
  CorruptNaming(ParseProviderAnswer(j, what), "height");
  j = ProviderAnswer();
  j["provider"] = json::array();
  CorruptNaming(ParseProviderAnswer(j, what), "provider");
  auto not_object = ParseProviderAnswer(json::array(), what);
  ASSERT_FALSE(not_object);
  EXPECT_NE(not_object.error().message.find("the body is not a JSON object"), std::string::npos);
}

TEST(ParseProvidersPage, ListEntriesHaveNoDetails) {
  json entry = ProviderAnswer()["provider"];
  for (const char* detail : {"site_list", "machine_list", "offer_list"}) entry.erase(detail);
  json j = {
      {"height", 1}, {"time_ms", 2}, {"providers", json::array({entry})}, {"truncated", false}};
  auto page = ParseProvidersPage(j, "GET /market/providers");
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].region, "eu-west");
  EXPECT_FALSE(page->next);
  j["providers"][0]["region"] = nullptr;
  CorruptNaming(ParseProvidersPage(j, "GET /market/providers"), "providers[0].region");
}

TEST(ParseLeaseAnswer, ReadsEveryFieldAndRefusesBadOnes) {
  json j = {{"height", 1}, {"time_ms", 2}, {"lease", LeaseRecord()}};
  auto a = ParseLeaseAnswer(j, "GET /market/lease/5");
  ASSERT_TRUE(a) << a.error().message;
  const LeaseInfo& l = a->value;
  EXPECT_EQ(l.lease_id, 5u);
  ASSERT_EQ(l.allocations.size(), 1u);
  EXPECT_EQ(l.allocations[0].gpus, 4u);
  EXPECT_EQ(l.rate_ugpn_per_hour, 10'000'000u);
  EXPECT_EQ(l.state, "started");
  EXPECT_EQ(l.as_of_ms, 5u);
  EXPECT_EQ(l.accrued_ugpn, 12'000'000u);
  EXPECT_EQ(l.withdrawable_ugpn, 2'000'000u);
  for (std::string_view field : {"lease_id", "tenant", "allocations", "gpus", "rate_ugpn_per_hour",
                                 "state", "end", "as_of_ms", "accrued_ugpn", "withdrawable_ugpn"}) {
    json bad = j;
    bad["lease"].erase(std::string(field));
    CorruptNaming(ParseLeaseAnswer(bad, "GET /market/lease/5"), "lease." + std::string(field));
  }
  json bad = j;
  bad["lease"]["escrow_ugpn"] = "4e7";
  CorruptNaming(ParseLeaseAnswer(bad, "GET /market/lease/5"), "lease.escrow_ugpn");
  bad = j;
  bad["lease"]["allocations"][0]["machine_id"] = "1";
  CorruptNaming(ParseLeaseAnswer(bad, "GET /market/lease/5"), "lease.allocations[0].machine_id");
}

TEST(ParseLeasesPage, FollowsTheCursor) {
  json j = {{"height", 1},
            {"time_ms", 2},
            {"leases", json::array({LeaseRecord()})},
            {"truncated", true},
            {"next", 5}};
  auto page = ParseLeasesPage(j, "GET /market/leases");
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->next, 5u);
  EXPECT_TRUE(page->truncated);
  j["next"] = "5";
  CorruptNaming(ParseLeasesPage(j, "GET /market/leases"), "next");
  j.erase("next");
  j.erase("truncated");
  CorruptNaming(ParseLeasesPage(j, "GET /market/leases"), "truncated");
}

TEST(ParseOrderBidsAnswer, TheOrderAndItsBids) {
  json bid = {{"bid_id", 4},
              {"order_id", 2},
              {"provider", Addr("owner")},
              {"price_ugpn_per_gpu_hour", "2400000"},
              {"machine_ids", json::array({1, 2})},
              {"created_ms", 3}};
  json j = {{"height", 1}, {"time_ms", 2}, {"order", OrderRecord()}, {"bids", json::array({bid})}};
  auto a = ParseOrderBidsAnswer(j, "GET /market/order/2/bids");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->value.order.requirements.gpus_per_machine, 8u);
  EXPECT_EQ(a->value.order.requirements.gpu_models, std::vector<std::string>{"H100"});
  ASSERT_EQ(a->value.order.requirements.attributes.size(), 1u);
  EXPECT_EQ(a->value.order.requirements.attributes[0].second, "3");
  EXPECT_EQ(a->value.order.providers.max_fault_rate_ppm, 1'000'000u);
  ASSERT_EQ(a->value.bids.size(), 1u);
  EXPECT_EQ(a->value.bids[0].machine_ids, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(a->raw, j);
  json bad = j;
  bad["bids"][0]["machine_ids"][1] = "2";
  CorruptNaming(ParseOrderBidsAnswer(bad, "GET /market/order/2/bids"), "bids[0].machine_ids[1]");
  bad = j;
  bad["order"]["requirements"]["machines"] = 1.5;
  CorruptNaming(ParseOrderBidsAnswer(bad, "GET /market/order/2/bids"),
                "order.requirements.machines");
  bad = j;
  bad["order"]["requirements"]["attributes"]["tier"] = 3;
  CorruptNaming(ParseOrderBidsAnswer(bad, "GET /market/order/2/bids"),
                "order.requirements.attributes.tier");
  bad = j;
  bad.erase("bids");
  CorruptNaming(ParseOrderBidsAnswer(bad, "GET /market/order/2/bids"), "bids");
}

TEST(ParseConservation, SumsOrAMessage) {
  json j = {{"height", 9},
            {"time_ms", 1},
            {"holds", true},
            {"balances_ugpn", "340282366920938463463374607431768211455"},  // 2^128-1
            {"escrow_ugpn", "2"},
            {"bonds_ugpn", "3"},
            {"stake_ugpn", "0"},
            {"unbonding_ugpn", "0"},
            {"fee_pool_ugpn", "4"},
            {"genesis_ugpn", "10"},
            {"minted_ugpn", "0"},
            {"burned_ugpn", "0"},
            {"accounts", 3},
            {"equation", "a = b"}};
  auto c = ParseConservation(j);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->holds);
  ASSERT_TRUE(c->sums);
  EXPECT_EQ(c->sums->balances_ugpn, ~static_cast<unsigned __int128>(0));
  EXPECT_EQ(c->sums->fee_pool_ugpn, 4u);
  EXPECT_FALSE(c->message);
  json over = j;
  over["balances_ugpn"] = "340282366920938463463374607431768211456";
  CorruptNaming(ParseConservation(over), "balances_ugpn");
  json missing = j;
  missing.erase("burned_ugpn");
  CorruptNaming(ParseConservation(missing), "burned_ugpn");
  json failed = {{"height", 9}, {"time_ms", 1}, {"holds", false}, {"message", "bad value"}};
  auto f = ParseConservation(failed);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_FALSE(f->holds);
  EXPECT_EQ(f->message, "bad value");
  EXPECT_FALSE(f->sums);
  failed["holds"] = true;  // a failed scan cannot hold
  CorruptNaming(ParseConservation(failed), "holds");
}

TEST(JsonFields, StrictNumbersAndAmounts) {
  json j = {{"n", 4294967295u},
            {"big", 4294967296u},
            {"s", "7"},
            {"neg", -1},
            {"a_ugpn", "18446744073709551615"},
            {"b", ""},
            {"c", "01x"},
            {"d", 5}};
  JsonFields f(j, "GET /x");
  EXPECT_EQ(*f.Number<uint32_t>("n"), UINT32_MAX);
  EXPECT_FALSE(f.Number<uint32_t>("big"));
  EXPECT_EQ(*f.Number<uint64_t>("big"), 4294967296u);
  EXPECT_FALSE(f.Number<uint64_t>("s"));  // strict: a number, not a string of one
  EXPECT_FALSE(f.U64("s"));               // nor anywhere else (docs/rpc.md)
  EXPECT_EQ(*f.U64("d"), 5u);
  EXPECT_FALSE(f.Number<uint64_t>("neg"));
  EXPECT_EQ(*f.Ugpn("a_ugpn"), UINT64_MAX);
  EXPECT_FALSE(f.Ugpn("b"));
  EXPECT_FALSE(f.Ugpn("c"));
  EXPECT_FALSE(f.Ugpn("d"));
  EXPECT_FALSE(f.Ugpn("missing"));
  EXPECT_EQ(*f.Ugpn128("a_ugpn"), UINT64_MAX);
  EXPECT_FALSE(f.Ugpn128("c"));
  auto e = f.Item(j, "list", 3).Str("x");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("GET /x"), std::string::npos);
  EXPECT_NE(e.error().message.find("field \"list[3].x\" is missing"), std::string::npos)
      << e.error().message;
}

// ---------------------------------------------------------------- against a stand-in node

TEST(MarketClient, TypesAWellFormedAnswer) {
  testing::FakeNode node(ProviderAnswer().dump());
  auto a = MarketClient(node.Url()).Provider(Addr("owner"));
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->value.machine_list.size(), 2u);
  EXPECT_EQ(node.LastRequestLine(), "GET /market/provider/" + Addr("owner") + " HTTP/1.1");
}

TEST(MarketClient, AMalformedAnswerIsAnErrorNamingTheField) {
  json j = ProviderAnswer();
  j["provider"]["open_leases"] = "none";  // a string where a number belongs
  testing::FakeNode node(j.dump());
  auto a = MarketClient(node.Url()).Provider(Addr("owner"));
  std::string message = CorruptNaming(a, "provider.open_leases");
  EXPECT_NE(message.find("GET /market/provider/" + Addr("owner")), std::string::npos) << message;

  json k = ProviderAnswer();
  k["provider"].erase("region");
  testing::FakeNode missing(k.dump());
  CorruptNaming(MarketClient(missing.Url()).Provider(Addr("owner")), "provider.region");

  testing::FakeNode not_json("<html>oops</html>");
  auto html = MarketClient(not_json.Url()).Lease(5);
  ASSERT_FALSE(html);
  EXPECT_EQ(html.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(html.error().message.find("not a JSON object"), std::string::npos);

  testing::FakeNode lease_page(json{{"height", 1}, {"time_ms", 2}, {"leases", "none"}}.dump());
  MarketListQuery q;
  q.tenant = Addr("tenant");
  CorruptNaming(MarketClient(lease_page.Url()).Leases(q), "leases");
  EXPECT_EQ(lease_page.LastRequestLine(),
            "GET /market/leases?limit=100&state=open&tenant=" + Addr("tenant") + " HTTP/1.1");
}

TEST(MarketClient, TheNodesErrorComesBackAsItsCode) {
  testing::FakeNode node(R"({"error":{"code":"not_found","message":"no lease 9"}})", 404);
  auto a = MarketClient(node.Url()).Lease(9);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, ErrorCode::kNotFound);
  EXPECT_NE(a.error().message.find("no lease 9"), std::string::npos) << a.error().message;
}

TEST(NodeClient, AMalformedStatusIsAnErrorNamingTheField) {
  json j = {{"chain_id", "gpunet-devnet"},
            {"engine", "solo"},
            {"app_version", 1},
            {"genesis_hash", H('1')},
            {"development", false},
            {"latest_height", "tall"},
            {"latest_block_hash", H('2')},
            {"latest_state_root", H('3')},
            {"latest_time_ms", 1234},
            {"mempool_txs", 0},
            {"node_version", "gpunet 0.1.0"}};
  testing::FakeNode node(j.dump());
  CorruptNaming(NodeClient(node.Url()).Status(), "latest_height");
}

}  // namespace
}  // namespace gpunet::client
