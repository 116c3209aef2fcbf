// The strict parsers of node answers: what the contract says parses; a missing
// field, a wrong type, an amount as a number or a header that does not hash to the
// reported hash is an error naming the field.
#include "client/node_client.h"

#include <gtest/gtest.h>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "util/keys.h"

namespace gpunet::client {
namespace {

using nlohmann::json;

std::string H(uint8_t b) {
  return std::string(64, "0123456789abcdef"[b & 15]);
}

/// A default genesis's market rules as GET /status carries them (amounts as strings).
json DefaultMarketParams() {
  json j = json::object();
  const market::Params defaults;
  for (const market::ParamField& f : market::kParamFields)
    j[f.name] = f.amount ? json(std::to_string(defaults.*f.member)) : json(defaults.*f.member);
  return j;
}

json GoodStatus() {
  return {{"chain_id", "gpunet-devnet"},
          {"engine", "solo"},
          {"app_version", 1},
          {"genesis_hash", H(1)},
          {"development", true},
          {"latest_height", 5},
          {"latest_block_hash", H(2)},
          {"latest_state_root", H(3)},
          {"latest_time_ms", 1234},
          {"mempool_txs", 0},
          {"node_version", "gpunet 0.1.0"},
          {"market_params", DefaultMarketParams()}};
}

void ExpectCorrupt(const base::Error& e, std::string_view field) {
  EXPECT_EQ(e.code, base::ErrorCode::kCorrupt);
  EXPECT_NE(e.message.find(field), std::string::npos) << e.message;
}

TEST(ParseStatus, StrictFields) {
  auto s = ParseStatus(GoodStatus());
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->latest_height, 5u);
  EXPECT_TRUE(s->development);
  EXPECT_FALSE(s->fees);
  json j = GoodStatus();
  // "development" (issue 17) is read strictly: required, and a boolean.
  j.erase("development");
  ExpectCorrupt(ParseStatus(j).error(), "\"development\" is missing");
  j = GoodStatus();
  j["development"] = "yes";
  ExpectCorrupt(ParseStatus(j).error(), "development");
  j = GoodStatus();
  j.erase("latest_height");
  ExpectCorrupt(ParseStatus(j).error(), "\"latest_height\" is missing");
  j = GoodStatus();
  j["latest_height"] = -1;
  ExpectCorrupt(ParseStatus(j).error(), "latest_height");
  j = GoodStatus();
  j["genesis_hash"] = "abcd";
  ExpectCorrupt(ParseStatus(j).error(), "genesis_hash");
  ExpectCorrupt(ParseStatus(json::array()).error(), "not a JSON object");
  j = GoodStatus();
  j["fee_per_byte_ugpn"] = "1";
  j["fee_per_msg_ugpn"] = "100";
  j["fee_min_ugpn"] = "1000";
  auto with_fees = ParseStatus(j);
  ASSERT_TRUE(with_fees);
  EXPECT_EQ(with_fees->fees, (FeeSchedule{1, 100, 1000}));
  j["fee_min_ugpn"] = 1000;  // amounts are strings
  ExpectCorrupt(ParseStatus(j).error(), "fee_min_ugpn");
  j.erase("fee_min_ugpn");
  ExpectCorrupt(ParseStatus(j).error(), "fee_per_byte_ugpn");
}

TEST(ParseStatus, TheChainsMarketRulesAreReadStrictly) {
  json j = GoodStatus();
  j["market_params"]["provider_bond_min_ugpn"] = "250000000";
  j["market_params"]["bid_window_max_ms"] = 60'000;
  auto s = ParseStatus(j);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->market.provider_bond_min_ugpn, 250'000'000u);
  EXPECT_EQ(s->market.bid_window_max_ms, 60'000u);
  EXPECT_EQ(s->market.deposit_min_hours, 1u);
  j["market_params"]["provider_bond_min_ugpn"] = 250'000'000;  // amounts are strings
  ExpectCorrupt(ParseStatus(j).error(), "market_params.provider_bond_min_ugpn");
  j = GoodStatus();
  j["market_params"].erase("deposit_min_hours");
  ExpectCorrupt(ParseStatus(j).error(), "market_params.deposit_min_hours");
  j = GoodStatus();
  j["market_params"]["bid_window_min_ms"] = "1000";  // numbers are numbers
  ExpectCorrupt(ParseStatus(j).error(), "market_params.bid_window_min_ms");
  j = GoodStatus();
  j["market_params"]["deposit_min_hours"] = 0;  // out of a genesis's range
  ExpectCorrupt(ParseStatus(j).error(), "deposit_min_hours");
  j = GoodStatus();
  j.erase("market_params");
  ExpectCorrupt(ParseStatus(j).error(), "\"market_params\" is missing");
}

TEST(ParseStatus, GasFieldsComeTogether) {
  json j = GoodStatus();
  EXPECT_FALSE(ParseStatus(j)->gas);
  j["gas_price_ugpn"] = "1";
  j["block_gas_max"] = 40000000;
  auto s = ParseStatus(j);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->gas, (GasSchedule{1, 40000000}));
  j["gas_price_ugpn"] = "0";
  ExpectCorrupt(ParseStatus(j).error(), "gas_price_ugpn");
  j["gas_price_ugpn"] = 1;  // an amount: a string
  ExpectCorrupt(ParseStatus(j).error(), "gas_price_ugpn");
  j.erase("gas_price_ugpn");
  ExpectCorrupt(ParseStatus(j).error(), "block_gas_max");
}

TEST(ParseSimulateResult, StrictFields) {
  json j = {{"code", 102},
            {"code_name", "out_of_gas"},
            {"message", "m"},
            {"gas_used", 4200},
            {"gas_price_ugpn", "1"},
            {"fee_ugpn", "4500"},
            {"events", json::array()}};
  auto r = ParseSimulateResult(j);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->code, 102);
  EXPECT_EQ(r->gas_used, 4200u);
  EXPECT_EQ(r->fee_ugpn, 4500u);
  j["fee_ugpn"] = 4500;
  ExpectCorrupt(ParseSimulateResult(j).error(), "fee_ugpn");
  j.erase("gas_used");
  ExpectCorrupt(ParseSimulateResult(j).error(), "gas_used");
}

TEST(ParseAccountInfo, AmountsAreStringsAndProofFieldsRequired) {
  json j = {{"address", "gpn1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"}};
  // A real address: build one.
  j["address"] = crypto::AddressToString(gpunet::testing::TestAddress(0));
  j["balance_ugpn"] = "5";
  j["nonce"] = 1;
  j["height"] = 3;
  j["exists"] = true;
  ASSERT_TRUE(ParseAccountInfo(j, false));
  ExpectCorrupt(ParseAccountInfo(j, true).error(), "state_key");
  json n = j;
  n["balance_ugpn"] = 5;
  ExpectCorrupt(ParseAccountInfo(n, false).error(), "balance_ugpn");
  n = j;
  n["balance_ugpn"] = "18446744073709551616";
  ExpectCorrupt(ParseAccountInfo(n, false).error(), "balance_ugpn");
  n = j;
  n["address"] = "cosmos1xyz";
  ExpectCorrupt(ParseAccountInfo(n, false).error(), "address");
}

// docs/rpc.md writes heights, nonces, indexes, codes, versions and gas as JSON
// numbers and only the *_ugpn amounts as strings: a number written as a string is
// a malformed answer, refused like any other wrong type.
TEST(NodeAnswers, NumbersWrittenAsStringsAreRefused) {
  for (const char* field : {"latest_height", "app_version", "latest_time_ms", "mempool_txs"}) {
    json j = GoodStatus();
    j[field] = "5";
    auto s = ParseStatus(j);
    ASSERT_FALSE(s) << field << " as a string was taken";
    ExpectCorrupt(s.error(), field);
    EXPECT_NE(s.error().message.find("not a non-negative integer number"), std::string::npos)
        << s.error().message;
  }
  json sim = {
      {"code", "0"},           {"code_name", "ok"}, {"message", ""},          {"gas_used", 1},
      {"gas_price_ugpn", "1"}, {"fee_ugpn", "1"},   {"events", json::array()}};
  ASSERT_FALSE(ParseSimulateResult(sim));
  ExpectCorrupt(ParseSimulateResult(sim).error(), "code");
  sim["code"] = 0;
  ASSERT_TRUE(ParseSimulateResult(sim));
  sim["gas_used"] = "1";
  ASSERT_FALSE(ParseSimulateResult(sim));
  json account = {{"address", crypto::AddressToString(gpunet::testing::TestAddress(0))},
                  {"balance_ugpn", "5"},
                  {"nonce", "1"},
                  {"height", 3},
                  {"exists", true}};
  ASSERT_FALSE(ParseAccountInfo(account, false));
  ExpectCorrupt(ParseAccountInfo(account, false).error(), "nonce");
  account["nonce"] = 1;
  ASSERT_TRUE(ParseAccountInfo(account, false));
  account["height"] = "3";
  ASSERT_FALSE(ParseAccountInfo(account, false));
}

TEST(ParseBlockInfo, HeaderMustHashToTheReportedHash) {
  codec::BlockHeader header;
  header.chain_id = "gpunet-devnet";
  header.height = 4;
  header.tx_root = codec::TxRootOfHashes({});
  json j = {{"height", 4},
            {"hash", base::ToHex(codec::BlockHash(header))},
            {"header", json::object()},
            {"header_hex", base::ToHex(codec::EncodeBlockHeader(header))},
            {"txs", json::array()},
            {"receipts", json::array()}};
  auto b = ParseBlockInfo(j);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->header, header);
  json forged = j;
  forged["hash"] = H(9);
  ExpectCorrupt(ParseBlockInfo(forged).error(), "do not trust");
  forged = j;
  forged["txs"] = json::array({H(4)});
  forged["receipts"] =
      json::array({{{"tx_hash", H(4)}, {"code", 0}, {"code_name", "ok"}, {"fee_ugpn", "1"}}});
  ExpectCorrupt(ParseBlockInfo(forged).error(), "tx_root");
  forged = j;
  forged["height"] = 5;
  ExpectCorrupt(ParseBlockInfo(forged).error(), "height 4");
}

TEST(ParseSubmitResult, PendingAndCommitted) {
  json pending = {{"tx_hash", H(1)}, {"status", "pending"}, {"height", 0}};
  auto p = ParseSubmitResult(pending);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->Committed());
  json committed = {{"tx_hash", H(1)},   {"status", "committed"},
                    {"height", 7},       {"index", 0},
                    {"code", 100},       {"code_name", "insufficient_funds"},
                    {"fee_ugpn", "1000"}};
  auto c = ParseSubmitResult(committed);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->code, 100);
  committed["status"] = "maybe";
  ExpectCorrupt(ParseSubmitResult(committed).error(), "status");
}

TEST(RejectedTxCode, OnlyFromRejections) {
  base::Error rejected{base::ErrorCode::kInvalidArgument,
                       "the node rejected the transaction (stale_nonce, code 5): nonce 0 is used"};
  EXPECT_EQ(RejectedTxCode(rejected), 5);
  EXPECT_FALSE(RejectedTxCode({base::ErrorCode::kInvalidArgument, "something else (x, code 5)"}));
}

}  // namespace
}  // namespace gpunet::client
