#include "ledger/genesis.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/check.h"
#include "base/checked_math.h"
#include "base/limits.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "codec/reader.h"
#include "codec/writer.h"
#include "crypto/hash.h"

namespace gpunet::ledger {

using base::ErrorCode;
using base::Fail;
using Json = nlohmann::json;

namespace {

namespace limits = base::limits;

// Minimum sizes a chain must allow so one ordinary transfer always fits.
constexpr uint64_t kBlockBytesMin = 4096;
constexpr uint64_t kTxBytesMin = 512;
constexpr uint64_t kNonceAheadMax = 1024;
// Gas parameters: a price of 1 ugpn..1 GPN per unit; per-operation prices and the
// block limit small enough that no product of them with a size overflows.
constexpr uint64_t kGasPriceMax = 1'000'000;
constexpr uint64_t kGasPerOpMax = 1'000'000;
constexpr uint64_t kBlockGasMax = 1'000'000'000'000;

// SAX handler that records the first key repeated inside one object.
struct DuplicateKeyFinder : nlohmann::json_sax<Json> {
  std::vector<std::set<std::string>> open;  // keys seen per open object
  std::string duplicate;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    open.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (open.back().insert(k).second) return true;
    duplicate = k;
    return false;  // stops the parse
  }
  bool end_object() override {
    open.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;  // the DOM parse that follows reports it
  }
};

base::Status CheckKeys(const Json& object, std::string_view where,
                       const std::vector<std::string_view>& keys) {
  if (!object.is_object())
    return Fail(ErrorCode::kInvalidArgument, std::string(where) + " must be a JSON object");
  for (const auto& [key, value] : object.items()) {
    (void)value;
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      return Fail(ErrorCode::kInvalidArgument,
                  std::string(where) + ": unknown field '" + key + "'");
  }
  for (std::string_view key : keys)
    if (!object.contains(key))
      return Fail(ErrorCode::kInvalidArgument,
                  std::string(where) + ": missing field '" + std::string(key) + "'");
  return base::Ok();
}

base::Result<uint64_t> GetUint(const Json& object, std::string_view where, const char* key) {
  const Json& v = object.at(key);
  if (!v.is_number_unsigned())
    return Fail(ErrorCode::kInvalidArgument,
                std::string(where) + "." + key + " must be a non-negative JSON integer");
  return v.get<uint64_t>();
}

base::Result<uint64_t> GetAmount(const Json& object, std::string_view where, const char* key) {
  const Json& v = object.at(key);
  std::string field = std::string(where) + "." + key;
  if (!v.is_string())
    return Fail(ErrorCode::kInvalidArgument,
                field + " must be an integer string like \"1000\" (ugpn)");
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0') ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return Fail(ErrorCode::kInvalidArgument,
                field + " must be decimal digits without sign or leading zeros, got \"" + s + "\"");
  uint64_t out = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || ptr != s.data() + s.size())
    return Fail(ErrorCode::kOverflow, field + " does not fit in 64 bits: " + s);
  return out;
}

base::Status InRange(uint64_t v, uint64_t lo, uint64_t hi, const char* name) {
  if (v < lo || v > hi)
    return Fail(ErrorCode::kInvalidArgument,
                std::string("params.") + name + " is " + std::to_string(v) + ", must be in [" +
                    std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return base::Ok();
}

}  // namespace

base::Status ValidateGenesis(const Genesis& g) {
  GPUNET_TRY(codec::CheckString(g.chain_id, limits::kChainIdBytesMax, codec::StringRule::kIdent,
                                "chain_id"));
  const GenesisParams& p = g.params;
  GPUNET_TRY(InRange(p.fee_burn_bp, 0, state::kBasisPointsMax, "fee_burn_bp"));
  GPUNET_TRY(InRange(p.block_bytes_max, kBlockBytesMin, limits::kBlockBytesMax, "block_bytes_max"));
  GPUNET_TRY(InRange(p.block_txs_max, 1, limits::kTxsPerBlockMax, "block_txs_max"));
  GPUNET_TRY(InRange(p.msgs_per_tx_max, 1, limits::kMsgsPerTxMax, "msgs_per_tx_max"));
  GPUNET_TRY(InRange(p.tx_bytes_max, kTxBytesMin,
                     std::min<uint64_t>(limits::kTxBytesMax, p.block_bytes_max / 2),
                     "tx_bytes_max"));
  GPUNET_TRY(InRange(p.block_interval_ms, 1, 3'600'000, "block_interval_ms"));
  GPUNET_TRY(InRange(p.nonce_ahead_max, 0, kNonceAheadMax, "nonce_ahead_max"));
  GPUNET_TRY(InRange(p.gas_price_ugpn, 1, kGasPriceMax, "gas_price_ugpn"));
  GPUNET_TRY(InRange(p.gas_tx_base, 1, kGasPerOpMax, "gas_tx_base"));
  GPUNET_TRY(InRange(p.gas_read_base, 1, kGasPerOpMax, "gas_read_base"));
  GPUNET_TRY(InRange(p.gas_read_per_byte, 0, kGasPerOpMax, "gas_read_per_byte"));
  GPUNET_TRY(InRange(p.gas_scan_step, 1, kGasPerOpMax, "gas_scan_step"));
  GPUNET_TRY(InRange(p.gas_write_base, 1, kGasPerOpMax, "gas_write_base"));
  GPUNET_TRY(InRange(p.gas_write_per_byte, 0, kGasPerOpMax, "gas_write_per_byte"));
  GPUNET_TRY(InRange(p.block_gas_max, p.gas_tx_base, kBlockGasMax, "block_gas_max"));
  GPUNET_TRY(market::ValidateParams(p.market));
  uint64_t total = 0;
  for (size_t i = 0; i < g.accounts.size(); ++i) {
    const auto& a = g.accounts[i];
    if (i > 0 && !(g.accounts[i - 1].address < a.address))
      return Fail(ErrorCode::kInvalidArgument,
                  "accounts: " + crypto::AddressToString(a.address) +
                      (g.accounts[i - 1].address == a.address
                           ? " appears twice"
                           : " is out of order (canonical order is ascending address)"));
    auto sum = base::CheckedAdd(total, a.balance_ugpn);
    if (!sum) return Fail(ErrorCode::kOverflow, "accounts: total supply exceeds 2^64-1 ugpn");
    total = *sum;
  }
  if (g.validators.validators.empty())
    return Fail(ErrorCode::kInvalidArgument, "validators: a chain needs at least one validator");
  if (auto s = codec::ValidateValidatorSet(g.validators); !s)
    return base::Wrap(s.error(), "validators");
  for (const auto& v : g.validators.validators)
    if (v.power == 0)
      return Fail(ErrorCode::kInvalidArgument,
                  "validators: power must be > 0 for " + base::ToHex(v.public_key));
  return base::Ok();
}

// Over 70 lines: one straight walk over genesis.json's fields in the file's order, each
// with its check (docs/genesis.md).
// NOLINTNEXTLINE(readability-function-size)
base::Result<Genesis> ParseGenesis(std::string_view text) {
  Json root;
  try {
    // Duplicate keys are silently merged by JSON parsers; a genesis must say one thing.
    // A SAX pass finds them (linear: nlohmann's callback parser is quadratic in the
    // length of an array of objects, and a genesis may hold millions of accounts).
    DuplicateKeyFinder finder;
    Json::sax_parse(text.begin(), text.end(), &finder);
    if (!finder.duplicate.empty())
      return Fail(ErrorCode::kInvalidArgument, "genesis: duplicate key '" + finder.duplicate + "'");
    root = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return Fail(ErrorCode::kInvalidArgument, std::string("genesis is not valid JSON: ") + e.what());
  }
  std::vector<std::string_view> top_keys = {"chain_id", "genesis_time_ms", "app_version",
                                            "accounts", "validators",      "params"};
  // Optional (genesis files from before issue 17 have none): false when absent.
  if (root.is_object() && root.contains("development")) top_keys.push_back("development");
  GPUNET_TRY(CheckKeys(root, "genesis", top_keys));
  Genesis g;
  if (!root["chain_id"].is_string())
    return Fail(ErrorCode::kInvalidArgument, "genesis.chain_id must be a string");
  g.chain_id = root["chain_id"].get<std::string>();
  auto time_ms = GetUint(root, "genesis", "genesis_time_ms");
  if (!time_ms) return std::unexpected(time_ms.error());
  g.genesis_time_ms = *time_ms;
  auto app_version = GetUint(root, "genesis", "app_version");
  if (!app_version) return std::unexpected(app_version.error());
  g.app_version = *app_version;
  if (root.contains("development")) {
    if (!root["development"].is_boolean())
      return Fail(ErrorCode::kInvalidArgument, "genesis.development must be true or false");
    g.development = root["development"].get<bool>();
  }

  const Json& accounts = root["accounts"];
  if (!accounts.is_array())
    return Fail(ErrorCode::kInvalidArgument, "genesis.accounts must be an array");
  for (size_t i = 0; i < accounts.size(); ++i) {
    std::string where = "accounts[" + std::to_string(i) + "]";
    GPUNET_TRY(CheckKeys(accounts[i], where, {"address", "balance_ugpn"}));
    if (!accounts[i]["address"].is_string())
      return Fail(ErrorCode::kInvalidArgument, where + ".address must be a gpn1... string");
    auto address = crypto::ParseAddress(accounts[i]["address"].get<std::string>());
    if (!address) return base::Wrap(address.error(), where + ".address");
    auto balance = GetAmount(accounts[i], where, "balance_ugpn");
    if (!balance) return std::unexpected(balance.error());
    g.accounts.push_back(GenesisAccount{*address, *balance});
  }
  std::sort(g.accounts.begin(), g.accounts.end(),
            [](const GenesisAccount& a, const GenesisAccount& b) { return a.address < b.address; });

  const Json& validators = root["validators"];
  if (!validators.is_array())
    return Fail(ErrorCode::kInvalidArgument, "genesis.validators must be an array");
  for (size_t i = 0; i < validators.size(); ++i) {
    std::string where = "validators[" + std::to_string(i) + "]";
    GPUNET_TRY(CheckKeys(validators[i], where, {"public_key", "power"}));
    if (!validators[i]["public_key"].is_string())
      return Fail(ErrorCode::kInvalidArgument,
                  where + ".public_key must be a 64-character hex string");
    auto key = base::FixedFromHex<32>(validators[i]["public_key"].get<std::string>());
    if (!key) return base::Wrap(key.error(), where + ".public_key");
    auto power = GetUint(validators[i], where, "power");
    if (!power) return std::unexpected(power.error());
    g.validators.validators.push_back(codec::Validator{*key, *power});
  }
  std::sort(g.validators.validators.begin(), g.validators.validators.end(),
            [](const codec::Validator& a, const codec::Validator& b) {
              return a.public_key < b.public_key;
            });
  for (size_t i = 1; i < g.validators.validators.size(); ++i)
    if (g.validators.validators[i].public_key == g.validators.validators[i - 1].public_key)
      return Fail(
          ErrorCode::kInvalidArgument,
          "validators: " + base::ToHex(g.validators.validators[i].public_key) + " appears twice");

  const Json& params = root["params"];
  std::vector<std::string_view> param_keys = {
      "fee_per_byte_ugpn",  "fee_per_msg_ugpn",  "fee_min_ugpn",    "fee_burn_bp",
      "block_bytes_max",    "block_txs_max",     "msgs_per_tx_max", "tx_bytes_max",
      "block_interval_ms",  "nonce_ahead_max",   "gas_price_ugpn",  "gas_tx_base",
      "gas_read_base",      "gas_read_per_byte", "gas_scan_step",   "gas_write_base",
      "gas_write_per_byte", "block_gas_max"};
  for (const market::ParamField& f : market::kParamFields) param_keys.push_back(f.name);
  GPUNET_TRY(CheckKeys(params, "params", param_keys));
  GenesisParams& p = g.params;
  auto amount = [&](const char* key, uint64_t& out) -> base::Status {
    auto v = GetAmount(params, "params", key);
    if (!v) return std::unexpected(v.error());
    out = *v;
    return base::Ok();
  };
  auto number = [&](const char* key, uint64_t& out) -> base::Status {
    auto v = GetUint(params, "params", key);
    if (!v) return std::unexpected(v.error());
    out = *v;
    return base::Ok();
  };
  GPUNET_TRY(amount("fee_per_byte_ugpn", p.fee_per_byte_ugpn));
  GPUNET_TRY(amount("fee_per_msg_ugpn", p.fee_per_msg_ugpn));
  GPUNET_TRY(amount("fee_min_ugpn", p.fee_min_ugpn));
  uint64_t burn_bp = 0;
  GPUNET_TRY(number("fee_burn_bp", burn_bp));
  if (burn_bp > state::kBasisPointsMax)
    GPUNET_TRY(InRange(burn_bp, 0, state::kBasisPointsMax, "fee_burn_bp"));
  p.fee_burn_bp = static_cast<uint32_t>(burn_bp);
  GPUNET_TRY(number("block_bytes_max", p.block_bytes_max));
  GPUNET_TRY(number("block_txs_max", p.block_txs_max));
  GPUNET_TRY(number("msgs_per_tx_max", p.msgs_per_tx_max));
  GPUNET_TRY(number("tx_bytes_max", p.tx_bytes_max));
  GPUNET_TRY(number("block_interval_ms", p.block_interval_ms));
  GPUNET_TRY(number("nonce_ahead_max", p.nonce_ahead_max));
  GPUNET_TRY(amount("gas_price_ugpn", p.gas_price_ugpn));
  GPUNET_TRY(number("gas_tx_base", p.gas_tx_base));
  GPUNET_TRY(number("gas_read_base", p.gas_read_base));
  GPUNET_TRY(number("gas_read_per_byte", p.gas_read_per_byte));
  GPUNET_TRY(number("gas_scan_step", p.gas_scan_step));
  GPUNET_TRY(number("gas_write_base", p.gas_write_base));
  GPUNET_TRY(number("gas_write_per_byte", p.gas_write_per_byte));
  GPUNET_TRY(number("block_gas_max", p.block_gas_max));
  for (const market::ParamField& f : market::kParamFields)
    GPUNET_TRY(f.amount ? amount(f.name, p.market.*f.member) : number(f.name, p.market.*f.member));
  GPUNET_TRY(ValidateGenesis(g));
  return g;
}

base::Result<Genesis> LoadGenesisFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot open genesis file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > base::limits::kGenesisFileBytesMax)
    return Fail(ErrorCode::kLimitExceeded,
                "genesis file over " + std::to_string(base::limits::kGenesisFileBytesMax >> 20) +
                    " MiB: " + path);
  auto g = ParseGenesis(text.str());
  if (!g) return base::Wrap(g.error(), path);
  return g;
}

std::string GenesisToJson(const Genesis& g) {
  Json root = Json::object();
  root["chain_id"] = g.chain_id;
  root["genesis_time_ms"] = g.genesis_time_ms;
  root["app_version"] = g.app_version;
  root["development"] = g.development;
  Json accounts = Json::array();
  for (const auto& a : g.accounts)
    accounts.push_back({{"address", crypto::AddressToString(a.address)},
                        {"balance_ugpn", std::to_string(a.balance_ugpn)}});
  root["accounts"] = accounts;
  Json validators = Json::array();
  for (const auto& v : g.validators.validators)
    validators.push_back({{"public_key", base::ToHex(v.public_key)}, {"power", v.power}});
  root["validators"] = validators;
  const GenesisParams& p = g.params;
  root["params"] = {{"fee_per_byte_ugpn", std::to_string(p.fee_per_byte_ugpn)},
                    {"fee_per_msg_ugpn", std::to_string(p.fee_per_msg_ugpn)},
                    {"fee_min_ugpn", std::to_string(p.fee_min_ugpn)},
                    {"fee_burn_bp", p.fee_burn_bp},
                    {"block_bytes_max", p.block_bytes_max},
                    {"block_txs_max", p.block_txs_max},
                    {"msgs_per_tx_max", p.msgs_per_tx_max},
                    {"tx_bytes_max", p.tx_bytes_max},
                    {"block_interval_ms", p.block_interval_ms},
                    {"nonce_ahead_max", p.nonce_ahead_max},
                    {"gas_price_ugpn", std::to_string(p.gas_price_ugpn)},
                    {"gas_tx_base", p.gas_tx_base},
                    {"gas_read_base", p.gas_read_base},
                    {"gas_read_per_byte", p.gas_read_per_byte},
                    {"gas_scan_step", p.gas_scan_step},
                    {"gas_write_base", p.gas_write_base},
                    {"gas_write_per_byte", p.gas_write_per_byte},
                    {"block_gas_max", p.block_gas_max}};
  for (const market::ParamField& f : market::kParamFields) {
    const uint64_t v = p.market.*f.member;
    if (f.amount)
      root["params"][f.name] = std::to_string(v);
    else
      root["params"][f.name] = v;
  }
  return root.dump(2) + "\n";
}

base::Hash32 GenesisHash(const Genesis& g) {
  codec::Writer w(256);
  w.String("gpunet-genesis-v1");
  w.String(g.chain_id);
  w.U64(g.genesis_time_ms);
  w.U64(g.app_version);
  w.Count(g.accounts.size());
  for (const auto& a : g.accounts) {
    w.Fixed(a.address);
    w.U64(a.balance_ugpn);
  }
  codec::Write(w, g.validators);
  const GenesisParams& p = g.params;
  for (uint64_t v :
       {p.fee_per_byte_ugpn, p.fee_per_msg_ugpn, p.fee_min_ugpn, uint64_t{p.fee_burn_bp},
        p.block_bytes_max, p.block_txs_max, p.msgs_per_tx_max, p.tx_bytes_max, p.block_interval_ms,
        p.nonce_ahead_max, p.gas_price_ugpn, p.gas_tx_base, p.gas_read_base, p.gas_read_per_byte,
        p.gas_scan_step, p.gas_write_base, p.gas_write_per_byte, p.block_gas_max})
    w.U64(v);
  for (const market::ParamField& f : market::kParamFields) w.U64(p.market.*f.member);
  w.U8(g.development ? 1 : 0);
  return crypto::Blake2b256(w.Data());
}

uint64_t GenesisSupply(const Genesis& g) {
  uint64_t total = 0;
  for (const auto& a : g.accounts) {
    auto sum = base::CheckedAdd(total, a.balance_ugpn);
    GPUNET_CHECK(sum.has_value());  // ValidateGenesis
    total = *sum;
  }
  return total;
}

state::GasParams GasParamsOf(const GenesisParams& p) {
  return state::GasParams{p.gas_price_ugpn,     p.gas_tx_base,   p.gas_read_base,
                          p.gas_read_per_byte,  p.gas_scan_step, p.gas_write_base,
                          p.gas_write_per_byte, p.block_gas_max};
}

state::PipelineParams PipelineParamsOf(const Genesis& g) {
  state::PipelineParams out;
  out.chain_id = g.chain_id;
  out.fees = state::FeeParams{g.params.fee_per_byte_ugpn, g.params.fee_per_msg_ugpn,
                              g.params.fee_min_ugpn, g.params.fee_burn_bp};
  out.tx_bytes_max = g.params.tx_bytes_max;
  out.msgs_per_tx_max = g.params.msgs_per_tx_max;
  out.nonce_ahead_max = g.params.nonce_ahead_max;
  out.gas = GasParamsOf(g.params);
  out.market = g.params.market;
  return out;
}

}  // namespace gpunet::ledger
