#include "node/rpc_json.h"

#include <variant>

#include "codec/encoding.h"
#include "crypto/address.h"

namespace gpunet::node {

using nlohmann::json;

std::string U64(uint64_t v) {
  return std::to_string(v);
}

nlohmann::json MarketParamsJson(const market::Params& params) {
  nlohmann::json j = nlohmann::json::object();
  for (const market::ParamField& f : market::kParamFields) {
    const uint64_t v = params.*f.member;
    j[f.name] = f.amount ? nlohmann::json(U64(v)) : nlohmann::json(v);
  }
  return j;
}

std::string CodeName(uint16_t code) {
  auto c = codec::TxCodeFromU16(code);
  return c ? std::string(codec::TxCodeName(*c)) : "code_" + std::to_string(code);
}

json EventsJson(const std::vector<codec::Event>& events) {
  json out = json::array();
  for (const auto& e : events) {
    json attrs = json::object();
    for (const auto& [k, v] : e.attributes) attrs[k] = v;
    out.push_back({{"type", e.type}, {"attributes", attrs}});
  }
  return out;
}

json ReceiptJson(const codec::Receipt& r) {
  return {{"code", r.code},
          {"code_name", CodeName(r.code)},
          {"fee_ugpn", U64(r.fee_ugpn)},
          {"events", EventsJson(r.events)}};
}

json TxJson(const codec::Tx& tx) {
  json msgs = json::array();
  for (const auto& m : tx.body.msgs) {
    if (const auto* send = std::get_if<codec::MsgSend>(&m))
      msgs.push_back({{"type", "send"},
                      {"to", crypto::AddressToString(send->to)},
                      {"amount_ugpn", U64(send->amount_ugpn)}});
    else  // market messages: their effects are the receipt's events (docs/market.md)
      msgs.push_back({{"type", std::string(codec::MsgName(m))}});
  }
  return {{"chain_id", tx.body.chain_id},
          {"sender", base::ToHex(tx.body.sender)},
          {"from", crypto::AddressToString(crypto::AddressOf(tx.body.sender))},
          {"nonce", tx.body.nonce},
          {"fee_ugpn", U64(tx.body.fee_ugpn)},
          {"timeout_height", tx.body.timeout_height},
          {"memo", tx.body.memo},
          {"msgs", msgs}};
}

json HeaderJson(const codec::BlockHeader& h) {
  return {{"chain_id", h.chain_id},
          {"app_version", h.app_version},
          {"height", h.height},
          {"time_ms", h.time_ms},
          {"last_block_hash", base::ToHex(h.last_block_hash)},
          {"tx_root", base::ToHex(h.tx_root)},
          {"receipts_root", base::ToHex(h.receipts_root)},
          {"state_root", base::ToHex(h.state_root)},
          {"proposer", crypto::AddressToString(h.proposer)},
          {"validator_set_hash", base::ToHex(h.validator_set_hash)},
          {"next_validator_set_hash", base::ToHex(h.next_validator_set_hash)},
          {"last_commit_hash", base::ToHex(h.last_commit_hash)},
          {"evidence_hash", base::ToHex(h.evidence_hash)}};
}

server::Response TxRejected(codec::TxCode code, const std::string& message,
                            const base::Hash32& hash) {
  json j = {{"error",
             {{"code", "tx_rejected"},
              {"tx_code", static_cast<uint16_t>(code)},
              {"tx_code_name", std::string(codec::TxCodeName(code))},
              {"message", message}}}};
  if (hash != base::Hash32{}) j["error"]["tx_hash"] = base::ToHex(hash);
  return server::JsonResponse(j, 400);
}

server::Response CommittedResponse(const ledger::TxRecord& rec) {
  const auto code = codec::TxCodeFromU16(rec.receipt.code);
  json j = {{"tx_hash", base::ToHex(rec.receipt.tx_hash)},
            {"status", "committed"},
            {"height", rec.location.height},
            {"index", rec.location.index},
            {"code", rec.receipt.code},
            {"code_name", CodeName(rec.receipt.code)},
            {"message", rec.receipt.code == 0 || !code ? std::string()
                                                       : std::string(codec::TxCodeMessage(*code))},
            {"fee_ugpn", U64(rec.receipt.fee_ugpn)}};
  return server::JsonResponse(j);
}

}  // namespace gpunet::node
