// A typed client of the node's RPC (docs/rpc.md, "Endpoints"). Every answer is
// parsed strictly: a missing field, a field of the wrong type, a hash that is not
// 64 hex characters or an amount that is not an integer string is an error
// (kCorrupt) naming the endpoint and the field, never a default value, so a
// client never acts on a half-understood answer.
//
// NodeClient trusts the node for what it reports, except where a proof is
// checked: VerifyAccountProof (client/account_proof.h) checks an account against
// a block header's state root.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "base/result.h"
#include "client/http_client.h"
#include "client/tx_builder.h"
#include "codec/types.h"
#include "market/params.h"

namespace gpunet::client {

/// GET /status.
struct NodeStatusInfo {
  std::string chain_id;
  std::string engine;
  uint64_t app_version = 0;
  base::Hash32 genesis_hash;
  uint64_t latest_height = 0;
  base::Hash32 latest_block_hash;
  base::Hash32 latest_state_root;
  uint64_t latest_time_ms = 0;
  uint64_t mempool_txs = 0;
  std::string node_version;
  /// Genesis "development": a development chain (devnet), where the provider daemon
  /// may run declared GPUs. Required: a node that does not say is refused.
  bool development = false;
  /// Present when the node advertises "fee_per_byte_ugpn", "fee_per_msg_ugpn" and
  /// "fee_min_ugpn" (all three, or none).
  std::optional<FeeSchedule> fees;
  /// Present when the node charges gas ("gas_price_ugpn" and "block_gas_max", both
  /// or none): such a node also answers POST /tx/simulate.
  std::optional<GasSchedule> gas;
  /// The chain's market rules ("market_params", from its genesis): the CLI's own
  /// checks and estimates use these, so they agree with the chain's preflight.
  market::Params market;
  nlohmann::json raw;
};

/// POST /tx/simulate: what a tx would do on the node's committed state now.
struct SimulateResult {
  uint16_t code = 0;  ///< the receipt code it would get, or why it would be refused
  std::string code_name;
  std::string message;
  uint64_t gas_used = 0;
  uint64_t fee_ugpn = 0;  ///< the fee that buys exactly gas_used
  nlohmann::json raw;
};

/// POST /tx answered 200.
struct SubmitResult {
  base::Hash32 tx_hash;
  std::string status;  ///< "pending" or "committed"
  bool Committed() const { return status == "committed"; }
  uint64_t height = 0;  ///< 0 while pending
  uint32_t index = 0;
  uint16_t code = 0;  ///< receipt code once committed (0 = ok)
  std::string code_name;
  std::string message;
  uint64_t fee_ugpn = 0;
  nlohmann::json raw;
};

struct EventInfo {
  std::string type;
  std::vector<std::pair<std::string, std::string>> attributes;  ///< in the node's order
};

/// One message of a tx as the node shows it.
struct MsgInfo {
  std::string type;  ///< "send", or a type this client does not know
  std::string to;    ///< send: recipient address text
  uint64_t amount_ugpn = 0;
};

/// GET /tx/<hash>.
struct TxInfo {
  base::Hash32 tx_hash;
  uint64_t height = 0;
  uint32_t index = 0;
  std::string chain_id;
  std::string sender;  ///< public key hex
  std::string from;    ///< address text
  uint64_t nonce = 0;
  uint64_t fee_ugpn = 0;
  uint64_t timeout_height = 0;
  std::string memo;
  std::vector<MsgInfo> msgs;
  uint16_t code = 0;
  std::string code_name;
  uint64_t charged_fee_ugpn = 0;  ///< receipt.fee_ugpn
  std::vector<EventInfo> events;
  nlohmann::json raw;
};

/// The proof material of GET /account/<address>?prove=true, still unchecked.
struct AccountProofData {
  base::Bytes state_key;
  std::optional<base::Bytes> value;  ///< EncodeAccount bytes; nullopt: no account
  base::Bytes proof;                 ///< EncodeSmtProof bytes
  base::Bytes header;                ///< EncodeBlockHeader of the block at `height`
};

/// GET /account/<address>.
struct AccountInfo {
  std::string address_text;
  codec::Address address;
  uint64_t balance_ugpn = 0;
  uint64_t nonce = 0;
  uint64_t height = 0;
  bool exists = false;
  std::optional<AccountProofData> proof;  ///< only when asked with prove
  nlohmann::json raw;
};

struct ReceiptSummary {
  base::Hash32 tx_hash;
  uint16_t code = 0;
  std::string code_name;
  uint64_t fee_ugpn = 0;
};

/// GET /block/<height> | /block/latest. The header is decoded from header_hex and
/// its hash checked against "hash", so `header` is exactly the block's header.
struct BlockInfo {
  uint64_t height = 0;
  base::Hash32 hash;
  codec::BlockHeader header;
  base::Bytes header_bytes;
  std::vector<base::Hash32> txs;
  std::vector<ReceiptSummary> receipts;
  nlohmann::json raw;
};

/// A rejected POST /tx ({"error":{"code":"tx_rejected","tx_code":N,...}}) is an
/// error whose message starts with "the node rejected the transaction (<name>,
/// code N)". This parses N back out of such an error (nullopt for other errors).
std::optional<uint16_t> RejectedTxCode(const base::Error& error);

class NodeClient {
 public:
  explicit NodeClient(std::string url, HttpClientOptions options = {});

  const std::string& Url() const { return m_http.Url(); }

  base::Result<NodeStatusInfo> Status();
  /// Submits a signed tx. With wait, returns once the node committed it (or fails
  /// with kTimeout after wait_timeout_ms: the tx may still commit later).
  base::Result<SubmitResult> SubmitTx(const codec::Tx& tx, bool wait,
                                      int64_t wait_timeout_ms = 30'000);
  /// Executes `tx` (signed, or with an all-zero signature) on the node without
  /// committing it.
  base::Result<SimulateResult> Simulate(const codec::Tx& tx);
  base::Result<TxInfo> GetTx(const base::Hash32& tx_hash);
  base::Result<AccountInfo> GetAccount(const codec::Address& address, bool prove);
  /// nullopt: the latest block.
  base::Result<BlockInfo> GetBlock(std::optional<uint64_t> height);

 private:
  base::Result<nlohmann::json> GetJson(const std::string& path);

  HttpClient m_http;
  HttpClientOptions m_options;
};

// Parsers of the endpoint bodies, public for tests (a forged or malformed answer
// is easier to build as JSON than to serve). `what` names the request in errors.
base::Result<NodeStatusInfo> ParseStatus(const nlohmann::json& j);
base::Result<SubmitResult> ParseSubmitResult(const nlohmann::json& j);
base::Result<SimulateResult> ParseSimulateResult(const nlohmann::json& j);

/// The fee the CLI pays when the user gives none: `unsigned_body` (with the
/// estimated fee: the fee does not change the gas, but the messages see the
/// balance after it) is simulated on the node, and the fee buys the gas it used
/// plus kGasMarginPercent (FeeWithGasMargin). An error, before anything is sent, when the
/// simulation says the tx would fail or be refused (the code name and message).
/// nullopt when the node does not charge gas (an older node): the caller falls
/// back to the fee schedule.
base::Result<std::optional<uint64_t>> SimulatedFee(NodeClient& node, const NodeStatusInfo& status,
                                                   codec::TxBody unsigned_body);
base::Result<TxInfo> ParseTxInfo(const nlohmann::json& j);
base::Result<AccountInfo> ParseAccountInfo(const nlohmann::json& j, bool prove);
base::Result<BlockInfo> ParseBlockInfo(const nlohmann::json& j);

}  // namespace gpunet::client
