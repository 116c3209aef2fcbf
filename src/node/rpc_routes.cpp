#include "node/rpc_routes.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "codec/smt_proof.h"
#include "crypto/address.h"
#include "ledger/block_store.h"
#include "node/market_routes.h"
#include "node/node_impl.h"
#include "node/rpc_json.h"

namespace gpunet::node {

using nlohmann::json;
using server::ErrorResponse;
using server::JsonError;
using server::JsonResponse;
using server::ParseJsonBody;
using server::Request;
using server::Responder;
using server::Response;
namespace metrics = server::metrics;

namespace {

// The niceness of threads that admit txs (Node::Impl::Admit), relative to 0 for
// the engine thread.
constexpr int kAdmissionNice = 10;

/// What POST /tx asks: the tx's bytes, whether to wait for its commit, and how long.
struct PostTxRequest {
  base::Bytes tx;
  bool wait_committed = false;
  uint64_t timeout_ms = 30000;
};

/// POST /tx's body, or the 400 that refuses it.
std::variant<PostTxRequest, Response> ParsePostTx(const Request& req) {
  auto body = ParseJsonBody(req);
  if (!body) return ErrorResponse(body.error());
  const json& j = *body;
  if (!j.contains("tx") || !j["tx"].is_string())
    return JsonError(400, "invalid_argument",
                     "body must be {\"tx\":\"<hex of the encoded signed tx>\", "
                     "\"wait\":\"none\"|\"committed\", \"timeout_ms\":N}");
  PostTxRequest out;
  if (j.contains("wait")) {
    if (!j["wait"].is_string() ||
        (j["wait"].get<std::string>() != "none" && j["wait"].get<std::string>() != "committed"))
      return JsonError(400, "invalid_argument", "\"wait\" must be \"none\" or \"committed\"");
    out.wait_committed = j["wait"].get<std::string>() == "committed";
  }
  if (j.contains("timeout_ms")) {
    if (!j["timeout_ms"].is_number_unsigned() || j["timeout_ms"].get<uint64_t>() > 600000)
      return JsonError(400, "invalid_argument", "\"timeout_ms\" must be an integer 0..600000");
    out.timeout_ms = j["timeout_ms"].get<uint64_t>();
  }
  auto bytes = base::FromHex(j["tx"].get<std::string>());
  if (!bytes)
    return JsonError(400, "invalid_argument", "\"tx\" is not valid hex: " + bytes.error().message);
  out.tx = std::move(*bytes);
  return out;
}

/// The answer to POST /tx with "wait":"none" for an admitted (or already known) tx.
Response PendingResponse(const base::Hash32& hash, const mempool::AddResult& added) {
  json r = {{"tx_hash", base::ToHex(hash)},
            {"status", "pending"},
            {"height", 0},
            {"index", 0},
            {"code", 0},
            {"code_name", "ok"},
            {"message", added.Ok() ? "" : added.message},
            {"fee_ugpn", U64(added.check.fee_ugpn)}};
  return JsonResponse(r);
}

/// GET /account/<address>?prove=true's extra fields: the state key, value and
/// proof, and the header whose state root the proof reaches.
base::Status AddAccountProof(const ledger::LedgerApp& app, const ledger::QueryResponse& q,
                             json& j) {
  j["state_key"] = base::ToHex(q.key);
  j["value"] = q.value ? json(base::ToHex(*q.value)) : json(nullptr);
  j["proof"] = q.proof ? json(base::ToHex(codec::EncodeSmtProof(*q.proof))) : json(nullptr);
  j["header"] = nullptr;
  if (q.height > 0) {
    GPUNET_TRY_ASSIGN(const auto block, ledger::ReadBlock(app.Store(), q.height));
    if (block) j["header"] = base::ToHex(codec::EncodeBlockHeader(block->header));
  }
  j["state_root"] = base::ToHex(q.state_root);
  return base::Ok();
}

}  // namespace

Response StatusResponse(const ledger::LedgerApp& app, const mempool::Mempool& pool,
                        const std::string& engine) {
  ledger::AppInfo info = app.Info();
  json j = {{"chain_id", info.chain_id},
            {"engine", engine},
            {"app_version", info.app_version},
            {"genesis_hash", base::ToHex(info.genesis_hash)},
            {"development", app.GetGenesis().development},
            {"latest_height", info.last_height},
            {"latest_block_hash", base::ToHex(info.last_block_hash)},
            {"latest_state_root", base::ToHex(info.state_root)},
            {"latest_time_ms", info.last_block_time_ms},
            {"mempool_txs", pool.Stats().txs},
            {"node_version", kNodeVersion}};
  const ledger::GenesisParams& fees = app.GetGenesis().params;
  j["fee_per_byte_ugpn"] = U64(fees.fee_per_byte_ugpn);
  j["fee_per_msg_ugpn"] = U64(fees.fee_per_msg_ugpn);
  j["fee_min_ugpn"] = U64(fees.fee_min_ugpn);
  j["gas_price_ugpn"] = U64(fees.gas_price_ugpn);
  j["block_gas_max"] = fees.block_gas_max;
  j["market_params"] = MarketParamsJson(fees.market);
  return JsonResponse(j);
}

Response TxResponse(const ledger::LedgerApp& app, const mempool::Mempool& pool,
                    const Request& req) {
  auto hash = base::FixedFromHex<32>(req.path_rest);
  if (!hash)
    return JsonError(400, "invalid_argument",
                     "'" + req.path_rest + "' is not a tx hash (64 hex characters)");
  auto rec = ledger::FindTx(app.Store(), *hash);
  if (!rec) return ErrorResponse(rec.error());
  if (!*rec) {
    if (pool.Contains(*hash))
      return JsonError(404, "not_found",
                       "tx " + req.path_rest + " is pending in the mempool, not yet in a block");
    return JsonError(404, "not_found",
                     "no committed tx " + req.path_rest +
                         "; it was never included (or "
                         "was rejected)");
  }
  const auto& r = **rec;
  json j = {{"tx_hash", req.path_rest},
            {"height", r.location.height},
            {"index", r.location.index},
            {"tx", TxJson(r.tx)},
            {"receipt", ReceiptJson(r.receipt)}};
  return JsonResponse(j);
}

Response AccountResponse(const ledger::LedgerApp& app, const Request& req) {
  auto address = crypto::ParseAddress(req.path_rest);
  if (!address) return ErrorResponse(address.error());
  bool prove = false;
  if (auto it = req.query.find("prove"); it != req.query.end()) prove = it->second == "true";
  auto q = app.Query(
      ledger::QueryRequest{"/account", base::Bytes(address->begin(), address->end()), 0, prove});
  if (!q) return ErrorResponse(q.error());
  codec::Account account;
  if (q->value) {
    auto decoded = codec::DecodeAccount(*q->value);
    if (!decoded) return ErrorResponse(decoded.error());
    account = *decoded;
  }
  json j = {{"address", req.path_rest},
            {"balance_ugpn", U64(account.balance_ugpn)},
            {"nonce", account.nonce},
            {"height", q->height},
            {"exists", q->value.has_value()}};
  if (prove) {
    if (auto added = AddAccountProof(app, *q, j); !added) return ErrorResponse(added.error());
  }
  return JsonResponse(j);
}

Response BlockResponse(const ledger::LedgerApp& app, const Request& req) {
  uint64_t height = 0;
  if (req.path_rest == "latest") {
    height = app.Info().last_height;
  } else {
    char* end = nullptr;
    height = std::strtoull(req.path_rest.c_str(), &end, 10);
    if (req.path_rest.empty() || *end != '\0' || req.path_rest[0] == '-')
      return JsonError(400, "invalid_argument",
                       "'" + req.path_rest + "' is not a height; use a number or 'latest'");
  }
  auto block = ledger::ReadBlock(app.Store(), height);
  if (!block) return ErrorResponse(block.error());
  if (!*block)
    return JsonError(404, "not_found",
                     "no block at height " + std::to_string(height) + "; the latest is " +
                         std::to_string(app.Info().last_height));
  auto receipts = ledger::ReadReceipts(app.Store(), height);
  if (!receipts) return ErrorResponse(receipts.error());
  const codec::Block& b = **block;
  json txs = json::array();
  for (const auto& tx : b.txs) txs.push_back(base::ToHex(codec::TxHash(tx)));
  json rs = json::array();
  for (const auto& r : *receipts) {
    json rj = ReceiptJson(r);
    rj["tx_hash"] = base::ToHex(r.tx_hash);
    rs.push_back(rj);
  }
  json j = {{"height", height},
            {"hash", base::ToHex(codec::BlockHash(b.header))},
            {"header", HeaderJson(b.header)},
            {"header_hex", base::ToHex(codec::EncodeBlockHeader(b.header))},
            {"txs", txs},
            {"receipts", rs}};
  return JsonResponse(j);
}

// wait=committed holds a request open until its tx commits or the timeout: it is
// refused up front for a tx that cannot execute before other txs arrive, which
// would hold the request (and a pending slot) for nothing.
std::optional<Response> Node::Impl::RefuseUnexecutableWait(base::ByteSpan tx_bytes) {
  auto tx = codec::DecodeTx(tx_bytes);
  if (!tx) return std::nullopt;  // Admit refuses it with the decoder's reason
  const codec::Address sender = crypto::AddressOf(tx->body.sender);
  uint64_t account_nonce = 0;  // the last read, which the pool's answer agrees with
  auto read_nonce = [&]() -> base::Result<uint64_t> {
    GPUNET_TRY_ASSIGN(const auto q,
                      app->Query(ledger::QueryRequest{
                          "/account", base::Bytes(sender.begin(), sender.end()), 0, false}));
    if (!q.value) return account_nonce = 0;
    GPUNET_TRY_ASSIGN(const auto account, codec::DecodeAccount(*q.value));
    return account_nonce = account.nonce;
  };
  const uint64_t nonce = tx->body.nonce;
  // Stale nonces and replacements are Admit's to judge; a tx right after the
  // sender's pending ones executes once they have.
  auto free = pool->NextFreeNonce(sender, read_nonce);
  if (!free) return ErrorResponse(free.error());
  const uint64_t next_free = *free;
  if (nonce <= next_free) return std::nullopt;
  const std::string missing = next_free + 1 == nonce ? "nonce " + std::to_string(next_free)
                                                     : "nonces " + std::to_string(next_free) +
                                                           ".." + std::to_string(nonce - 1);
  const std::string pending =
      next_free > account_nonce
          ? " and its pending txs run only to nonce " + std::to_string(next_free - 1)
          : std::string();
  return JsonError(409, "conflict",
                   "wait=committed refused: the tx has nonce " + std::to_string(nonce) +
                       " but the sender's next nonce is " + std::to_string(account_nonce) +
                       pending + ", so it cannot execute yet (missing: " + missing +
                       "); send those first, or post this one with \"wait\":\"none\"");
}

mempool::AddResult Node::Impl::Admit(base::ByteSpan tx_bytes) {
  // A thread that admits txs (an RPC worker, an embedder's thread) runs at a
  // lower priority than the engine thread: signature checks are the bulk of the
  // CPU under load, and a node should finish the blocks it owes before it takes
  // more txs. At equal priority the engine got a third of a two-core machine and
  // blocks lagged behind admission (issue 3's benchmark: 12k -> 16k transfers/s).
  thread_local const bool kNiced = [] {
    return setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kAdmissionNice) == 0;
  }();
  (void)kNiced;  // best effort: a failure leaves the thread as it was
  mempool::AddResult added = pool->Add(tx_bytes);
  m_mempool_txs->Set(static_cast<double>(pool->Txs()));
  for (const auto& ev : added.evicted) OnTxDropped(ev.tx_hash, ev.code, ev.message);
  if (added.Ok() || added.code == codec::TxCode::kAlreadyKnown) NotifyTxArrived();
  return added;
}

void Node::Impl::PostTx(Request req, Responder responder) {
  auto parsed = ParsePostTx(req);
  if (auto* refused = std::get_if<Response>(&parsed)) return responder.Respond(std::move(*refused));
  const PostTxRequest& post = std::get<PostTxRequest>(parsed);
  const base::Hash32 hash = codec::TxHashOfEncoded(post.tx);
  if (post.wait_committed) {
    if (auto refused = RefuseUnexecutableWait(post.tx))
      return responder.Respond(std::move(*refused));
    // Register first, so a block committed right after admission still finds us.
    const std::string address = req.per_address_exempt ? std::string() : req.remote_address;
    const uint64_t cap = config.rpc_limits.waits_per_address_max;
    auto over_cap = waiters.Add(
        hash,
        TxWaiters::Waiter{WallMs(*options.clock) + post.timeout_ms, std::move(responder), address},
        cap);
    if (over_cap)
      return over_cap->responder.Respond(JsonError(
          429, "limit_exceeded",
          "your address " + address + " has " + std::to_string(cap) +
              " requests waiting for a commit, its limit; post with \"wait\":\"none\" and "
              "poll GET /tx/<hash>, or let those finish first"));
  }
  // With a wait, the answer goes to the waiter, unless the engine answered it already.
  // responder was moved into the waiter only when post.wait_committed, and then the
  // lambda does not use it: clang-tidy sees the capture, not the branch.
  // NOLINTNEXTLINE(bugprone-use-after-move)
  auto answer = [&](Response r) {
    if (!post.wait_committed) return responder.Respond(std::move(r));
    if (auto mine = waiters.Take(hash)) mine->responder.Respond(std::move(r));
  };

  mempool::AddResult added = Admit(post.tx);
  if (!added.Ok()) {
    // A resubmitted tx that is already in a block: report where it is.
    if (added.code == codec::TxCode::kStaleNonce || added.code == codec::TxCode::kAlreadyKnown) {
      auto rec = ledger::FindTx(app->Store(), hash);
      if (rec && *rec) return answer(CommittedResponse(**rec));
    }
    if (added.code != codec::TxCode::kAlreadyKnown || !post.wait_committed)
      return answer(TxRejected(added.code, added.message, added.tx_hash));
  }
  if (post.wait_committed) return;  // the engine (or the timeout) answers
  responder.Respond(PendingResponse(hash, added));
}

// POST /tx/simulate {"tx": hex}: what the tx would do on the committed state now,
// with a block's whole gas limit; nothing is committed or admitted. One at a time
// (m_simulation); a second concurrent request gets 503 and retries.
Response Node::Impl::SimulateTx(const Request& req) {
  auto body = ParseJsonBody(req);
  if (!body) return ErrorResponse(body.error());
  const json& j = *body;
  if (!j.contains("tx") || !j["tx"].is_string())
    return JsonError(400, "invalid_argument",
                     "body must be {\"tx\":\"<hex of the encoded tx, signed or with an "
                     "all-zero signature>\"}");
  auto bytes = base::FromHex(j["tx"].get<std::string>());
  if (!bytes)
    return JsonError(400, "invalid_argument", "\"tx\" is not valid hex: " + bytes.error().message);
  auto ran = m_simulation.TryRun([&] {
    m_simulations->Inc();
    return app->Simulate(*bytes);
  });
  if (!ran) {
    m_simulations_refused->Inc();
    return JsonError(503, "unavailable",
                     "a simulation is running (one runs at a time); retry in a moment");
  }
  auto& sim = *ran;
  if (!sim) return ErrorResponse(sim.error());
  json r = {{"code", static_cast<uint16_t>(sim->code)},
            {"code_name", std::string(codec::TxCodeName(sim->code))},
            {"message", sim->message},
            {"gas_used", sim->gas_used},
            {"gas_price_ugpn", U64(app->GetGenesis().params.gas_price_ugpn)},
            {"fee_ugpn", U64(sim->fee_ugpn)},
            {"events", EventsJson(sim->events)}};
  return JsonResponse(r);
}

void Node::Impl::RegisterRoutes() {
  server->Handle("GET", "/status",
                 [this](const Request&) { return StatusResponse(*app, *pool, config.engine); });
  server->Handle("POST", "/tx/simulate", [this](const Request& req) { return SimulateTx(req); });
  server->HandleAsync("POST", "/tx",
                      [this](Request req, Responder r) { PostTx(std::move(req), std::move(r)); });
  server->HandlePrefix("GET", "/tx/",
                       [this](const Request& req) { return TxResponse(*app, *pool, req); });
  server->HandlePrefix("GET", "/account/",
                       [this](const Request& req) { return AccountResponse(*app, req); });
  server->HandlePrefix("GET", "/block/",
                       [this](const Request& req) { return BlockResponse(*app, req); });
  // GET /market/..., /conservation (market_routes.h)
  RegisterMarketRoutes(*server, *app, *market_index, registry);
  server->Handle("GET", "/metrics", [this](const Request&) {
    m_mempool_txs->Set(static_cast<double>(pool->Stats().txs));
    Response r;
    r.content_type = std::string(metrics::kContentType);
    r.body = registry.Render();
    return r;
  });
}

}  // namespace gpunet::node
