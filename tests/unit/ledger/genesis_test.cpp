// Genesis files: round trip, strictness (every refusal names the field), hash identity.
#include <gtest/gtest.h>

#include "ledger/genesis.h"
#include "unit/ledger/ledger_test_util.h"

namespace gpunet::ledger {
namespace {

using testing::TestGenesis;

std::string ValidJson() {
  return GenesisToJson(TestGenesis(3));
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) text.replace(pos, from.size(), to);
  return text;
}

TEST(GenesisTest, JsonRoundTripKeepsValueAndHash) {
  Genesis g = TestGenesis(5);
  auto parsed = ParseGenesis(GenesisToJson(g));
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(*parsed, g);
  EXPECT_EQ(GenesisHash(*parsed), GenesisHash(g));
  EXPECT_EQ(GenesisSupply(g), 5'000'000'000u);
  EXPECT_EQ(PipelineParamsOf(g).chain_id, "gpunet-test");
}

TEST(GenesisTest, HashChangesWithEveryField) {
  Genesis g = TestGenesis(2);
  const base::Hash32 h = GenesisHash(g);
  Genesis a = g;
  a.chain_id = "other";
  Genesis b = g;
  b.accounts[0].balance_ugpn += 1;
  Genesis c = g;
  c.params.fee_burn_bp += 1;
  Genesis d = g;
  d.genesis_time_ms += 1;
  Genesis e = g;
  e.params.gas_read_per_byte += 1;
  Genesis f = g;
  f.params.block_gas_max += 1;
  for (const Genesis* x : {&a, &b, &c, &d, &e, &f}) EXPECT_NE(GenesisHash(*x), h);
}

TEST(GenesisTest, StrictParsingNamesWhatIsWrong) {
  struct Case {
    std::string json;
    std::string needle;
  };
  const std::string ok = ValidJson();
  std::vector<Case> cases = {
      {"{", "not valid JSON"},
      {"[]", "must be a JSON object"},
      {Replace(ok, "\"chain_id\"", "\"chain\""), "unknown field 'chain'"},
      {Replace(ok, "\"app_version\": 1,", "\"app_version\": 1, \"app_version\": 2,"),
       "duplicate key"},
      {Replace(ok, "\"balance_ugpn\": \"1000000000\"", "\"balance_ugpn\": 1000000000"),
       "integer string"},
      {Replace(ok, "\"balance_ugpn\": \"1000000000\"", "\"balance_ugpn\": \"-5\""),
       "decimal digits"},
      {Replace(ok, "\"balance_ugpn\": \"1000000000\"",
               "\"balance_ugpn\": \"99999999999999999999\""),
       "64 bits"},
      {Replace(ok, "\"fee_burn_bp\": 3000", "\"fee_burn_bp\": 10001"), "fee_burn_bp"},
      {Replace(ok, "\"block_txs_max\": 10000", "\"block_txs_max\": 0"), "block_txs_max"},
      {Replace(ok, "\"msgs_per_tx_max\": 16", "\"msgs_per_tx_max\": 17"), "msgs_per_tx_max"},
      {Replace(ok, "\"chain_id\": \"gpunet-test\"", "\"chain_id\": \"has space\""), "chain_id"},
      {Replace(ok, "\"gpn1", "\"xyz1"), "accounts[0].address"},
      {Replace(ok, "\"power\": 10", "\"power\": 0"), "power"},
      {Replace(ok, "\"power\": 10", "\"power\": -1"), "non-negative"},
      {Replace(ok, "\"gas_price_ugpn\": \"1\"", "\"gas_price_ugpn\": \"0\""), "gas_price_ugpn"},
      {Replace(ok, "\"gas_price_ugpn\": \"1\"", "\"gas_price_ugpn\": 1"), "integer string"},
      {Replace(ok, "\"gas_scan_step\": 5", "\"gas_scan_step\": 0"), "gas_scan_step"},
      {Replace(ok, "\"block_gas_max\": 40000000", "\"block_gas_max\": 100"), "block_gas_max"},
      {Replace(ok, "\"block_gas_max\": 40000000,", ""), "missing field 'block_gas_max'"},
  };
  for (const auto& c : cases) {
    auto r = ParseGenesis(c.json);
    ASSERT_FALSE(r.has_value()) << c.needle;
    EXPECT_NE(r.error().message.find(c.needle), std::string::npos) << r.error().message;
  }
}

TEST(GenesisTest, DuplicateAccountsAndSupplyOverflowAreRefused) {
  Genesis g = TestGenesis(2);
  g.accounts[1].address = g.accounts[0].address;
  auto dup = ParseGenesis(GenesisToJson(g));
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message.find("appears twice"), std::string::npos);
  Genesis big = TestGenesis(2, UINT64_MAX / 2 + 1);
  auto overflow = ParseGenesis(GenesisToJson(big));
  ASSERT_FALSE(overflow);
  EXPECT_EQ(overflow.error().code, base::ErrorCode::kOverflow);
  Genesis none = TestGenesis(1);
  none.validators.validators.clear();
  EXPECT_FALSE(ValidateGenesis(none));
}

TEST(GenesisTest, MissingFileIsNotFound) {
  auto r = LoadGenesisFile("/nonexistent/genesis.json");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, base::ErrorCode::kNotFound);
}

}  // namespace
}  // namespace gpunet::ledger
