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
  Genesis dev = g;
  dev.development = true;  // a development chain is another chain
  for (const Genesis* x : {&a, &b, &c, &d, &e, &f, &dev}) EXPECT_NE(GenesisHash(*x), h);
  // Every market parameter is in the hash: a chain with other market rules is
  // another chain.
  for (uint64_t market::Params::*field :
       {&market::Params::provider_bond_min_ugpn, &market::Params::unbonding_delay_ms,
        &market::Params::lease_start_timeout_ms, &market::Params::manifest_timeout_ms,
        &market::Params::heartbeat_timeout_ms, &market::Params::heartbeat_grace_blocks,
        &market::Params::bid_window_min_ms, &market::Params::bid_window_max_ms,
        &market::Params::deposit_min_hours, &market::Params::fault_penalty_hours,
        &market::Params::fault_penalty_floor_ugpn, &market::Params::reserved_close_charge_ms,
        &market::Params::reserved_close_charge_floor_ugpn}) {
    Genesis m = g;
    m.params.market.*field += 1;
    EXPECT_NE(GenesisHash(m), h);
  }
}

// The canonical form is pinned: a change to what the hash covers (or how) shows up
// here, as a protocol change should. TestGenesis(2) with the default market rules.
TEST(GenesisTest, HashOfAFixedGenesisIsPinned) {
  EXPECT_EQ(base::ToHex(GenesisHash(TestGenesis(2))),
            "94f64ca849a5e01d3007c88084bad1a0e22b54d2a8f07e2d1edcc5865d7f157f");
}

// "development" (issue 17): optional in the file (false when absent, as in a
// genesis from before), a boolean, written always, round-tripped.
TEST(GenesisTest, DevelopmentFlagIsOptionalStrictAndRoundTrips) {
  Genesis g = TestGenesis(2);
  g.development = true;
  const std::string text = GenesisToJson(g);
  EXPECT_NE(text.find("\"development\": true"), std::string::npos) << text;
  auto parsed = ParseGenesis(text);
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_TRUE(parsed->development);
  std::string without = text;
  without.erase(without.find("  \"development\": true,\n"), 24);
  auto old = ParseGenesis(without);
  ASSERT_TRUE(old) << old.error().ToString() << "\n" << without;
  EXPECT_FALSE(old->development);
  std::string wrong = text;
  wrong.replace(wrong.find("\"development\": true"), 19, "\"development\": 1");
  auto refused = ParseGenesis(wrong);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("development must be true or false"), std::string::npos)
      << refused.error().message;
}

TEST(GenesisTest, MarketParamsRoundTripInTheJson) {
  Genesis g = TestGenesis(2);
  g.params.market.provider_bond_min_ugpn = 250'000'000;
  g.params.market.lease_start_timeout_ms = 90'000;
  g.params.market.heartbeat_grace_blocks = 4;
  g.params.market.reserved_close_charge_floor_ugpn = 0;
  const std::string json = GenesisToJson(g);
  EXPECT_NE(json.find("\"provider_bond_min_ugpn\": \"250000000\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"lease_start_timeout_ms\": 90000"), std::string::npos) << json;
  auto parsed = ParseGenesis(json);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(parsed->params.market, g.params.market);
  EXPECT_EQ(PipelineParamsOf(*parsed).market, g.params.market);
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
      // The market's parameters: the same strictness, each named.
      {Replace(ok, "\"heartbeat_timeout_ms\": 300000,", ""),
       "missing field 'heartbeat_timeout_ms'"},
      {Replace(ok, "\"lease_start_timeout_ms\": 600000", "\"lease_start_timeout_ms\": 0"),
       "params.lease_start_timeout_ms is 0"},
      {Replace(ok, "\"manifest_timeout_ms\": 1800000", "\"manifest_timeout_ms\": -1"),
       "params.manifest_timeout_ms must be a non-negative"},
      {Replace(ok, "\"unbonding_delay_ms\": 604800000", "\"unbonding_delay_ms\": 99999999999999"),
       "params.unbonding_delay_ms"},
      {Replace(ok, "\"heartbeat_grace_blocks\": 10", "\"heartbeat_grace_blocks\": 0"),
       "params.heartbeat_grace_blocks"},
      {Replace(ok, "\"bid_window_min_ms\": 1000", "\"bid_window_min_ms\": 604800001"),
       "params.bid_window_max_ms"},
      {Replace(ok, "\"deposit_min_hours\": 1", "\"deposit_min_hours\": 0"),
       "params.deposit_min_hours"},
      {Replace(ok, "\"fault_penalty_hours\": 1", "\"fault_penalty_hours\": 100000"),
       "params.fault_penalty_hours"},
      {Replace(ok, "\"provider_bond_min_ugpn\": \"100000000\"",
               "\"provider_bond_min_ugpn\": 100000000"),
       "params.provider_bond_min_ugpn must be an integer string"},
      {Replace(ok, "\"fault_penalty_floor_ugpn\": \"1000000\"",
               "\"fault_penalty_floor_ugpn\": \"200000000\""),
       "params.provider_bond_min_ugpn is 100000000, must be in [200000000"},
      {Replace(ok, "\"reserved_close_charge_ms\": 600000",
               "\"reserved_close_charge_ms\": 600000, \"reserved_close_charge_hours\": 1"),
       "unknown field 'reserved_close_charge_hours'"},
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
