#include "client/node_client.h"

#include <utility>

#include "client/json_fields.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "crypto/address.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;
using Json = nlohmann::json;

constexpr std::string_view kRejectedPrefix = "the node rejected the transaction (";

base::Result<EventInfo> ParseEvent(const JsonFields& parent, const Json& j, size_t index) {
  JsonFields f = parent.Item(j, "events", index);
  EventInfo e;
  GPUNET_TRY_ASSIGN(e.type, f.Str("type"));
  const Json* attrs = nullptr;
  GPUNET_TRY_ASSIGN(attrs, f.Get("attributes"));
  if (!attrs->is_object()) return f.Bad("attributes", "is not an object");
  for (const auto& [k, v] : attrs->items()) {
    if (!v.is_string()) return f.Bad("attributes", "has a value that is not a string");
    e.attributes.emplace_back(k, v.get<std::string>());
  }
  return e;
}

base::Result<MsgInfo> ParseMsg(const JsonFields& parent, const Json& j, size_t index) {
  JsonFields f = parent.Item(j, "msgs", index);
  MsgInfo m;
  GPUNET_TRY_ASSIGN(m.type, f.Str("type"));
  if (m.type == "send") {
    GPUNET_TRY_ASSIGN(m.to, f.Str("to"));
    if (!crypto::ParseAddress(m.to)) return f.Bad("to", "is not a gpn1 address");
    GPUNET_TRY_ASSIGN(m.amount_ugpn, f.Ugpn("amount_ugpn"));
  }
  return m;
}

base::Result<ReceiptSummary> ParseReceiptSummary(const JsonFields& parent, const Json& j,
                                                 size_t index) {
  JsonFields f = parent.Item(j, "receipts", index);
  ReceiptSummary r;
  GPUNET_TRY_ASSIGN(r.tx_hash, f.Hash("tx_hash"));
  GPUNET_TRY_ASSIGN(r.code, f.U16("code"));
  GPUNET_TRY_ASSIGN(r.code_name, f.Str("code_name"));
  GPUNET_TRY_ASSIGN(r.fee_ugpn, f.Ugpn("fee_ugpn"));
  return r;
}

/// The body of a non-200 answer as an error; a tx rejection keeps its tx code.
base::Error ErrorOf(const HttpResponse& response) {
  Json body = Json::parse(response.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    const Json& e = body["error"];
    if (e.contains("code") && e["code"].is_string() &&
        e["code"].get<std::string>() == "tx_rejected" && e.contains("tx_code") &&
        e["tx_code"].is_number_unsigned()) {
      std::string name = e.contains("tx_code_name") && e["tx_code_name"].is_string()
                             ? e["tx_code_name"].get<std::string>()
                             : "unknown";
      std::string message =
          e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
      return {ErrorCode::kInvalidArgument, std::string(kRejectedPrefix) + name + ", code " +
                                               std::to_string(e["tx_code"].get<uint64_t>()) +
                                               "): " + message};
    }
  }
  return ErrorFromResponse(response);
}

}  // namespace

std::optional<uint16_t> RejectedTxCode(const base::Error& error) {
  std::string_view m = error.message;
  if (!m.starts_with(kRejectedPrefix)) return std::nullopt;
  size_t at = m.find(", code ");
  if (at == std::string_view::npos) return std::nullopt;
  at += 7;
  size_t end = m.find(')', at);
  if (end == std::string_view::npos) return std::nullopt;
  auto v = ParseDecimalU64(m.substr(at, end - at));
  if (!v || *v > UINT16_MAX) return std::nullopt;
  return static_cast<uint16_t>(*v);
}

// ---------------------------------------------------------------- parsers

namespace {

/// "market_params" of GET /status: every parameter, of its JSON type, within the
/// ranges a genesis may hold (market::ValidateParams).
base::Result<market::Params> ParseMarketParams(const JsonFields& status) {
  const Json* object = nullptr;
  GPUNET_TRY_ASSIGN(object, status.Object("market_params"));
  JsonFields f(*object, "GET /status", "market_params");
  market::Params params;
  for (const market::ParamField& field : market::kParamFields) {
    GPUNET_TRY_ASSIGN(params.*field.member, field.amount ? f.Ugpn(field.name) : f.U64(field.name));
  }
  if (auto valid = market::ValidateParams(params); !valid)
    return status.Bad("market_params", valid.error().message);
  return params;
}

}  // namespace

base::Result<NodeStatusInfo> ParseStatus(const Json& j) {
  JsonFields f(j, "GET /status");
  NodeStatusInfo s;
  GPUNET_TRY_ASSIGN(s.chain_id, f.Str("chain_id"));
  GPUNET_TRY_ASSIGN(s.engine, f.Str("engine"));
  GPUNET_TRY_ASSIGN(s.app_version, f.U64("app_version"));
  GPUNET_TRY_ASSIGN(s.genesis_hash, f.Hash("genesis_hash"));
  GPUNET_TRY_ASSIGN(s.development, f.Bool("development"));
  GPUNET_TRY_ASSIGN(s.latest_height, f.U64("latest_height"));
  GPUNET_TRY_ASSIGN(s.latest_block_hash, f.Hash("latest_block_hash"));
  GPUNET_TRY_ASSIGN(s.latest_state_root, f.Hash("latest_state_root"));
  GPUNET_TRY_ASSIGN(s.latest_time_ms, f.U64("latest_time_ms"));
  GPUNET_TRY_ASSIGN(s.mempool_txs, f.U64("mempool_txs"));
  GPUNET_TRY_ASSIGN(s.node_version, f.Str("node_version"));
  int fee_fields = f.Has("fee_per_byte_ugpn") + f.Has("fee_per_msg_ugpn") + f.Has("fee_min_ugpn");
  if (fee_fields == 3) {
    FeeSchedule fees;
    GPUNET_TRY_ASSIGN(fees.per_byte_ugpn, f.Ugpn("fee_per_byte_ugpn"));
    GPUNET_TRY_ASSIGN(fees.per_msg_ugpn, f.Ugpn("fee_per_msg_ugpn"));
    GPUNET_TRY_ASSIGN(fees.min_ugpn, f.Ugpn("fee_min_ugpn"));
    s.fees = fees;
  } else if (fee_fields != 0) {
    return f.Bad("fee_per_byte_ugpn", "comes without all of fee_per_msg_ugpn and fee_min_ugpn");
  }
  int gas_fields = f.Has("gas_price_ugpn") + f.Has("block_gas_max");
  if (gas_fields == 2) {
    GasSchedule gas;
    GPUNET_TRY_ASSIGN(gas.price_ugpn, f.Ugpn("gas_price_ugpn"));
    GPUNET_TRY_ASSIGN(gas.block_max, f.U64("block_gas_max"));
    if (gas.price_ugpn == 0) return f.Bad("gas_price_ugpn", "is 0; a chain's gas price is >= 1");
    s.gas = gas;
  } else if (gas_fields != 0) {
    return f.Bad("gas_price_ugpn", "comes without block_gas_max (both or neither)");
  }
  GPUNET_TRY_ASSIGN(s.market, ParseMarketParams(f));
  s.raw = j;
  return s;
}

base::Result<SimulateResult> ParseSimulateResult(const Json& j) {
  JsonFields f(j, "POST /tx/simulate");
  SimulateResult r;
  GPUNET_TRY_ASSIGN(r.code, f.U16("code"));
  GPUNET_TRY_ASSIGN(r.code_name, f.Str("code_name"));
  GPUNET_TRY_ASSIGN(r.message, f.Str("message"));
  GPUNET_TRY_ASSIGN(r.gas_used, f.U64("gas_used"));
  GPUNET_TRY_ASSIGN(r.fee_ugpn, f.Ugpn("fee_ugpn"));
  r.raw = j;
  return r;
}

base::Result<SubmitResult> ParseSubmitResult(const Json& j) {
  JsonFields f(j, "POST /tx");
  SubmitResult r;
  GPUNET_TRY_ASSIGN(r.tx_hash, f.Hash("tx_hash"));
  GPUNET_TRY_ASSIGN(r.status, f.Str("status"));
  if (r.status != "pending" && r.status != "committed")
    return f.Bad("status", "is \"" + r.status + "\", neither \"pending\" nor \"committed\"");
  if (r.Committed()) {
    GPUNET_TRY_ASSIGN(r.height, f.U64("height"));
    GPUNET_TRY_ASSIGN(r.index, f.U32("index"));
    GPUNET_TRY_ASSIGN(r.code, f.U16("code"));
    GPUNET_TRY_ASSIGN(r.code_name, f.Str("code_name"));
    GPUNET_TRY_ASSIGN(r.fee_ugpn, f.Ugpn("fee_ugpn"));
  } else {
    // A pending tx has no location or receipt yet; the node may send nulls.
    if (f.Has("height") && !j["height"].is_null()) {
      GPUNET_TRY_ASSIGN(r.height, f.U64("height"));
    }
  }
  if (f.Has("message") && j["message"].is_string()) r.message = j["message"].get<std::string>();
  r.raw = j;
  return r;
}

base::Result<TxInfo> ParseTxInfo(const Json& j) {
  JsonFields f(j, "GET /tx");
  TxInfo t;
  GPUNET_TRY_ASSIGN(t.tx_hash, f.Hash("tx_hash"));
  GPUNET_TRY_ASSIGN(t.height, f.U64("height"));
  GPUNET_TRY_ASSIGN(t.index, f.U32("index"));
  const Json* tx = nullptr;
  GPUNET_TRY_ASSIGN(tx, f.Get("tx"));
  JsonFields ft = f.Sub(*tx, "tx");
  GPUNET_TRY(ft.IsObject());
  GPUNET_TRY_ASSIGN(t.chain_id, ft.Str("chain_id"));
  GPUNET_TRY_ASSIGN(t.sender, ft.Str("sender"));
  GPUNET_TRY_ASSIGN(t.from, ft.Str("from"));
  GPUNET_TRY_ASSIGN(t.nonce, ft.U64("nonce"));
  GPUNET_TRY_ASSIGN(t.fee_ugpn, ft.Ugpn("fee_ugpn"));
  GPUNET_TRY_ASSIGN(t.timeout_height, ft.U64("timeout_height"));
  GPUNET_TRY_ASSIGN(t.memo, ft.Str("memo"));
  const Json* msgs = nullptr;
  GPUNET_TRY_ASSIGN(msgs, ft.Array("msgs"));
  for (size_t i = 0; i < msgs->size(); ++i) {
    MsgInfo msg;
    GPUNET_TRY_ASSIGN(msg, ParseMsg(ft, (*msgs)[i], i));
    t.msgs.push_back(std::move(msg));
  }
  const Json* receipt = nullptr;
  GPUNET_TRY_ASSIGN(receipt, f.Get("receipt"));
  JsonFields fr = f.Sub(*receipt, "receipt");
  GPUNET_TRY(fr.IsObject());
  GPUNET_TRY_ASSIGN(t.code, fr.U16("code"));
  GPUNET_TRY_ASSIGN(t.code_name, fr.Str("code_name"));
  GPUNET_TRY_ASSIGN(t.charged_fee_ugpn, fr.Ugpn("fee_ugpn"));
  const Json* events = nullptr;
  GPUNET_TRY_ASSIGN(events, fr.Array("events"));
  for (size_t i = 0; i < events->size(); ++i) {
    EventInfo event;
    GPUNET_TRY_ASSIGN(event, ParseEvent(fr, (*events)[i], i));
    t.events.push_back(std::move(event));
  }
  t.raw = j;
  return t;
}

base::Result<AccountInfo> ParseAccountInfo(const Json& j, bool prove) {
  JsonFields f(j, prove ? "GET /account?prove=true" : "GET /account");
  AccountInfo a;
  GPUNET_TRY_ASSIGN(a.address_text, f.Str("address"));
  auto address = crypto::ParseAddress(a.address_text);
  if (!address) return f.Bad("address", "is not a gpn1 address: " + address.error().message);
  a.address = *address;
  GPUNET_TRY_ASSIGN(a.balance_ugpn, f.Ugpn("balance_ugpn"));
  GPUNET_TRY_ASSIGN(a.nonce, f.U64("nonce"));
  GPUNET_TRY_ASSIGN(a.height, f.U64("height"));
  GPUNET_TRY_ASSIGN(a.exists, f.Bool("exists"));
  if (prove) {
    AccountProofData p;
    GPUNET_TRY_ASSIGN(p.state_key, f.Hex("state_key"));
    const Json* value = nullptr;
    GPUNET_TRY_ASSIGN(value, f.Get("value"));
    if (!value->is_null()) {
      base::Bytes bytes;
      GPUNET_TRY_ASSIGN(bytes, f.Hex("value"));
      p.value = std::move(bytes);
    }
    GPUNET_TRY_ASSIGN(p.proof, f.Hex("proof"));
    GPUNET_TRY_ASSIGN(p.header, f.Hex("header"));
    a.proof = std::move(p);
  }
  a.raw = j;
  return a;
}

base::Result<BlockInfo> ParseBlockInfo(const Json& j) {
  JsonFields f(j, "GET /block");
  BlockInfo b;
  GPUNET_TRY_ASSIGN(b.height, f.U64("height"));
  GPUNET_TRY_ASSIGN(b.hash, f.Hash("hash"));
  GPUNET_TRY_ASSIGN(b.header_bytes, f.Hex("header_hex"));
  auto header = codec::DecodeBlockHeader(b.header_bytes);
  if (!header) return f.Bad("header_hex", "is not a block header: " + header.error().message);
  b.header = std::move(*header);
  if (codec::BlockHash(b.header) != b.hash)
    return Fail(ErrorCode::kCorrupt,
                "the node's block " + std::to_string(b.height) + " header hashes to " +
                    base::ToHex(codec::BlockHash(b.header)) + ", not to the hash " +
                    base::ToHex(b.hash) + " it reported: do not trust this node");
  if (b.header.height != b.height)
    return Fail(ErrorCode::kCorrupt, "the node sent the header of height " +
                                         std::to_string(b.header.height) + " for block " +
                                         std::to_string(b.height));
  const Json* txs = nullptr;
  GPUNET_TRY_ASSIGN(txs, f.Array("txs"));
  for (const Json& t : *txs) {
    if (!t.is_string()) return f.Bad("txs", "holds something that is not a hash string");
    auto h = base::FixedFromHex<32>(t.get<std::string>());
    if (!h) return f.Bad("txs", "holds something that is not a 64-character hex hash");
    b.txs.push_back(*h);
  }
  if (codec::TxRootOfHashes(b.txs) != b.header.tx_root)
    return Fail(ErrorCode::kCorrupt,
                "the tx hashes the node listed for block " + std::to_string(b.height) +
                    " do not match the header's tx_root: do not trust this node");
  const Json* receipts = nullptr;
  GPUNET_TRY_ASSIGN(receipts, f.Array("receipts"));
  for (size_t i = 0; i < receipts->size(); ++i) {
    ReceiptSummary summary;
    GPUNET_TRY_ASSIGN(summary, ParseReceiptSummary(f, (*receipts)[i], i));
    b.receipts.push_back(std::move(summary));
  }
  if (b.receipts.size() != b.txs.size())
    return f.Bad("receipts", "has " + std::to_string(b.receipts.size()) + " entries for " +
                                 std::to_string(b.txs.size()) + " txs");
  b.raw = j;
  return b;
}

// ---------------------------------------------------------------- NodeClient

NodeClient::NodeClient(std::string url, HttpClientOptions options)
    : m_http(std::move(url), options), m_options(options) {}

base::Result<Json> NodeClient::GetJson(const std::string& path) {
  HttpResponse response;
  GPUNET_TRY_ASSIGN(response, m_http.Get(path));
  if (response.status != 200) {
    base::Error e = ErrorOf(response);
    return std::unexpected(e);
  }
  Json j = Json::parse(response.body, nullptr, false);
  if (j.is_discarded())
    return Fail(ErrorCode::kCorrupt,
                "the node at " + m_http.Url() + " answered GET " + path +
                    " with something that is not JSON: " + response.body.substr(0, 120));
  return j;
}

base::Result<NodeStatusInfo> NodeClient::Status() {
  Json j;
  GPUNET_TRY_ASSIGN(j, GetJson("/status"));
  return ParseStatus(j);
}

base::Result<SubmitResult> NodeClient::SubmitTx(const codec::Tx& tx, bool wait,
                                                int64_t wait_timeout_ms) {
  Json body = {{"tx", base::ToHex(codec::EncodeTx(tx))},
               {"wait", wait ? "committed" : "none"},
               {"timeout_ms", wait_timeout_ms}};
  HttpClientOptions options = m_options;
  if (wait)
    options.request_timeout_ms = std::max(options.request_timeout_ms, wait_timeout_ms + 10'000);
  HttpClient http(m_http.Url(), options);
  HttpResponse response;
  GPUNET_TRY_ASSIGN(response, http.Post("/tx", body.dump()));
  if (response.status != 200) return std::unexpected(ErrorOf(response));
  Json j = Json::parse(response.body, nullptr, false);
  if (j.is_discarded())
    return Fail(ErrorCode::kCorrupt, "the node at " + m_http.Url() +
                                         " answered POST /tx with something that is not JSON: " +
                                         response.body.substr(0, 120));
  SubmitResult result;
  GPUNET_TRY_ASSIGN(result, ParseSubmitResult(j));
  if (result.tx_hash != codec::TxHash(tx))
    return Fail(ErrorCode::kCorrupt, "the node reported tx hash " + base::ToHex(result.tx_hash) +
                                         " for a transaction whose hash is " +
                                         base::ToHex(codec::TxHash(tx)));
  return result;
}

base::Result<SimulateResult> NodeClient::Simulate(const codec::Tx& tx) {
  Json body = {{"tx", base::ToHex(codec::EncodeTx(tx))}};
  HttpResponse response;
  GPUNET_TRY_ASSIGN(response, m_http.Post("/tx/simulate", body.dump()));
  if (response.status != 200) return std::unexpected(ErrorOf(response));
  Json j = Json::parse(response.body, nullptr, false);
  if (j.is_discarded())
    return Fail(ErrorCode::kCorrupt, "the node at " + m_http.Url() +
                                         " answered POST /tx/simulate with something that is "
                                         "not JSON: " +
                                         response.body.substr(0, 120));
  return ParseSimulateResult(j);
}

base::Result<std::optional<uint64_t>> SimulatedFee(NodeClient& node, const NodeStatusInfo& status,
                                                   codec::TxBody unsigned_body) {
  if (!status.fees || !status.gas) return std::optional<uint64_t>{};
  // The fee is prepaid work: it does not change the gas, but it does change the
  // balance the messages see, so the caller passes its estimate.
  const codec::Tx tx{std::move(unsigned_body), codec::Signature{}};
  SimulateResult sim;
  GPUNET_TRY_ASSIGN(sim, node.Simulate(tx));
  if (sim.code != 0)
    return Fail(ErrorCode::kInvalidArgument,
                "the node's simulation says this transaction would fail with " + sim.code_name +
                    " (code " + std::to_string(sim.code) + ")" +
                    (sim.message.empty() ? "" : ": " + sim.message) +
                    "; nothing was sent, no fee charged (give --fee to send it anyway)");
  const uint64_t bytes = codec::EncodeTx(tx).size();  // the fee is fixed width
  auto fee = FeeWithGasMargin(*status.fees, *status.gas, bytes, tx.body.msgs.size(), sim.gas_used);
  if (!fee)
    return Fail(ErrorCode::kOverflow,
                "the fee for " + std::to_string(sim.gas_used) + " gas does not fit in 64 bits");
  return fee;
}

base::Result<TxInfo> NodeClient::GetTx(const base::Hash32& tx_hash) {
  Json j;
  GPUNET_TRY_ASSIGN(j, GetJson("/tx/" + base::ToHex(tx_hash)));
  TxInfo t;
  GPUNET_TRY_ASSIGN(t, ParseTxInfo(j));
  if (t.tx_hash != tx_hash)
    return Fail(ErrorCode::kCorrupt, "asked the node for tx " + base::ToHex(tx_hash) +
                                         ", it answered with " + base::ToHex(t.tx_hash));
  return t;
}

base::Result<AccountInfo> NodeClient::GetAccount(const codec::Address& address, bool prove) {
  std::string text = crypto::AddressToString(address);
  Json j;
  GPUNET_TRY_ASSIGN(j, GetJson("/account/" + text + (prove ? "?prove=true" : "")));
  AccountInfo a;
  GPUNET_TRY_ASSIGN(a, ParseAccountInfo(j, prove));
  if (a.address != address)
    return Fail(ErrorCode::kCorrupt,
                "asked the node for account " + text + ", it answered for " + a.address_text);
  return a;
}

base::Result<BlockInfo> NodeClient::GetBlock(std::optional<uint64_t> height) {
  Json j;
  GPUNET_TRY_ASSIGN(
      j, GetJson("/block/" + (height ? std::to_string(*height) : std::string("latest"))));
  BlockInfo b;
  GPUNET_TRY_ASSIGN(b, ParseBlockInfo(j));
  if (height && b.height != *height)
    return Fail(ErrorCode::kCorrupt, "asked the node for block " + std::to_string(*height) +
                                         ", it answered with block " + std::to_string(b.height));
  return b;
}

}  // namespace gpunet::client
