// A real node (RocksDB home, solo engine, RPC on 127.0.0.1) against greedy clients:
// wait=committed refused for a tx that cannot execute and capped per peer address,
// idle connections closed while a subscriber on a quiet chain stays, a block of
// many txs published as one "txs" frame. The limits come from node.json's
// "rpc_limits". A second peer address is played by sockets bound to 127.0.0.2.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "client/http_client.h"
#include "client/tx_builder.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"
#include "node/node.h"
#include "unit/node/test_node.h"
#include "unit/server/raw_socket.h"
#include "util/keys.h"
#include "util/temp_dir.h"

namespace gpunet::node {
namespace {

using Json = nlohmann::json;
using test::RawConn;
using test::WaitFor;
constexpr int kGuardMs = 20'000;  // liveness bound for anything that should happen
constexpr const char* kChain = "limits-test";
constexpr const char* kOtherPeer = "127.0.0.2";  // the greedy client's address
constexpr int kKeys = 8;

using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

std::string TxHex(uint8_t key, uint64_t nonce, std::string* hash = nullptr) {
  auto tx = client::BuildTransfer(TestKey(key), kChain, nonce, TestAddress(100), 1'000,
                                  client::kDefaultTransferFeeUgpn, 0, "");
  EXPECT_TRUE(tx);
  if (hash != nullptr) *hash = base::ToHex(codec::TxHash(*tx));
  return base::ToHex(codec::EncodeTx(*tx));
}

std::string PostBody(const std::string& tx_hex, const std::string& wait, uint64_t timeout_ms) {
  return Json{{"tx", tx_hex}, {"wait", wait}, {"timeout_ms", timeout_ms}}.dump();
}

/// A raw POST /tx on a connection (from any source address).
bool SendPost(RawConn& conn, const std::string& body) {
  return conn.Send(
      "POST /tx HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
}

/// One POST /tx from `source` on a connection of its own that closes after the
/// answer: the whole response text.
std::string PostFrom(uint16_t port, const char* source, const std::string& body) {
  RawConn conn(port, source);
  if (!conn.Send("POST /tx HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 "Content-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body))
    return "";
  bool eof = false;
  return conn.ReadUntilClose(kGuardMs, &eof);
}

Json ErrorOf(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  return j.is_object() && j.contains("error") ? j["error"] : Json();
}

struct NodeLimits : test::NodeTestBase {
  // Genesis time is now, so the first block comes no sooner than one interval from
  // now. Keys 1..kKeys are funded.
  void StartNode(uint64_t block_interval_ms, const Json& rpc_limits) {
    node::InitOptions init;
    init.chain_id = kChain;
    init.block_interval_ms = block_interval_ms;
    for (int k = 1; k <= kKeys; ++k)
      init.accounts.push_back({TestAddress(static_cast<uint8_t>(k)), 1'000'000'000});
    ASSERT_NO_FATAL_FAILURE(NodeTestBase::StartNode("node-limits", init, rpc_limits));
  }
  uint16_t Port() const {
    const std::string url = m_node->RpcUrl();  // http://127.0.0.1:PORT
    return static_cast<uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
  }
  base::Result<client::HttpResponse> Post(const std::string& body) {
    return client::HttpClient(m_node->RpcUrl()).Post("/tx", body);
  }
};

TEST_F(NodeLimits, WaitForATxThatCannotExecuteIsRefusedAndAPendingPredecessorIsNot) {
  ASSERT_NO_FATAL_FAILURE(StartNode(1'000, Json::object()));

  // Nonce 1 with nothing before it: it could wait forever. Refused, nothing kept.
  std::string gap_hash;
  const std::string gap = TxHex(1, 1, &gap_hash);
  auto r = Post(PostBody(gap, "committed", 5'000));
  ASSERT_TRUE(r) << r.error().ToString();
  ASSERT_EQ(r->status, 409) << r->body;
  Json error = ErrorOf(r->body);
  EXPECT_EQ(error["code"], "conflict") << r->body;
  const std::string message = error["message"].get<std::string>();
  EXPECT_NE(message.find("nonce 1"), std::string::npos) << message;
  EXPECT_NE(message.find("\"wait\":\"none\""), std::string::npos) << message;
  EXPECT_EQ(m_node->Status().mempool_txs, 0u);
  auto looked = client::HttpClient(m_node->RpcUrl()).Get("/tx/" + gap_hash);
  ASSERT_TRUE(looked);
  EXPECT_EQ(looked->status, 404);
  EXPECT_EQ(looked->body.find("pending"), std::string::npos) << looked->body;

  // Without waiting the mempool queues it (multi-tx flows send ahead)...
  r = Post(PostBody(gap, "none", 0));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  // ...and a wait behind it still counts the gap at nonce 0.
  r = Post(PostBody(TxHex(1, 2), "committed", 5'000));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 409) << r->body;
  EXPECT_NE(ErrorOf(r->body)["message"].get<std::string>().find("nonces 0..1"), std::string::npos)
      << r->body;
  // Filling the gap is waited for and commits (nonce 1 with it).
  r = Post(PostBody(TxHex(1, 0), "committed", kGuardMs));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["status"], "committed");

  // A wait right behind a pending predecessor (the next block is an interval
  // away) is accepted and answered when both commit.
  r = Post(PostBody(TxHex(1, 2), "none", 0));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  r = Post(PostBody(TxHex(1, 3), "committed", kGuardMs));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["status"], "committed");
}

TEST_F(NodeLimits, WaitsAreCappedPerPeerAddress) {
  // No block for ten minutes: every wait stays open until the node stops.
  ASSERT_NO_FATAL_FAILURE(
      StartNode(600'000, {{"exempt_loopback", false}, {"waits_per_address_max", 1}}));

  RawConn first(Port(), kOtherPeer);
  ASSERT_TRUE(first.connected());
  ASSERT_TRUE(SendPost(first, PostBody(TxHex(1, 0), "committed", 600'000)));
  ASSERT_TRUE(WaitFor([&] { return m_node->Status().mempool_txs == 1; }, kGuardMs));

  // The same address's second wait is refused up front: nothing admitted.
  RawConn second(Port(), kOtherPeer);
  ASSERT_TRUE(SendPost(second, PostBody(TxHex(2, 0), "committed", 600'000)));
  std::string text = second.ReadUntil("}}", kGuardMs);
  ASSERT_TRUE(text.starts_with("HTTP/1.1 429")) << text;
  EXPECT_EQ(ErrorOf(text.substr(text.find("\r\n\r\n") + 4))["code"], "limit_exceeded") << text;
  EXPECT_NE(text.find("waiting for a commit"), std::string::npos) << text;
  EXPECT_EQ(m_node->Status().mempool_txs, 1u);
  // Without a wait, that address is still served.
  ASSERT_TRUE(SendPost(second, PostBody(TxHex(2, 0), "none", 0)));
  text = second.ReadUntil("}", kGuardMs);
  EXPECT_TRUE(text.starts_with("HTTP/1.1 200")) << text;

  // Another address has its own count: its wait is taken (and times out, as no
  // block comes), not refused.
  auto r = Post(PostBody(TxHex(3, 0), "committed", 300));
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 504) << r->body;
}

TEST_F(NodeLimits, AWaitThatEndsFreesItsSlot) {
  // One wait per address; blocks every 300 ms once there are txs.
  ASSERT_NO_FATAL_FAILURE(
      StartNode(300, {{"exempt_loopback", false}, {"waits_per_address_max", 1}}));
  auto status_of = [](const std::string& text) { return text.substr(0, 12); };
  // Ended by its commit.
  std::string text = PostFrom(Port(), kOtherPeer, PostBody(TxHex(1, 0), "committed", kGuardMs));
  ASSERT_EQ(status_of(text), "HTTP/1.1 200") << text;
  EXPECT_NE(text.find("\"committed\""), std::string::npos) << text;
  // Ended by its timeout (504; or committed, if the block beat 1 ms: either way
  // it ended) — the next wait from the address is taken, not refused with 429.
  text = PostFrom(Port(), kOtherPeer, PostBody(TxHex(2, 0), "committed", 1));
  ASSERT_TRUE(status_of(text) == "HTTP/1.1 504" || status_of(text) == "HTTP/1.1 200") << text;
  // Refused at admission (a tx that does not decode).
  text = PostFrom(Port(), kOtherPeer, PostBody("0102", "committed", kGuardMs));
  ASSERT_EQ(status_of(text), "HTTP/1.1 400") << text;
  // Refused as a gap (nonce 5 of key 4, whose next is 0).
  text = PostFrom(Port(), kOtherPeer, PostBody(TxHex(4, 5), "committed", kGuardMs));
  ASSERT_EQ(status_of(text), "HTTP/1.1 409") << text;
  // After all four the address's one slot is free.
  text = PostFrom(Port(), kOtherPeer, PostBody(TxHex(3, 0), "committed", kGuardMs));
  ASSERT_EQ(status_of(text), "HTTP/1.1 200") << text;
  EXPECT_NE(text.find("\"committed\""), std::string::npos) << text;
}

TEST_F(NodeLimits, AWaitLongerThanTheIdleTimeoutIsNotCut) {
  // The first block is an interval (1 s) after genesis, five idle timeouts away.
  ASSERT_NO_FATAL_FAILURE(StartNode(1'000, {{"idle_timeout_ms", 200}}));
  RawConn conn(Port());
  ASSERT_TRUE(SendPost(conn, PostBody(TxHex(1, 0), "committed", kGuardMs)));
  const std::string text = conn.ReadUntil("\"fee_ugpn\"", kGuardMs);
  ASSERT_TRUE(text.starts_with("HTTP/1.1 200")) << "a wait in flight was cut: " << text;
  EXPECT_NE(text.find("\"committed\""), std::string::npos) << text;
  EXPECT_GE(m_node->Status().latest_height, 1u);
}

TEST_F(NodeLimits, IdleConnectionsCloseAndASubscriberOnAQuietChainStays) {
  ASSERT_NO_FATAL_FAILURE(
      StartNode(100, {{"idle_timeout_ms", 200}, {"ws_unsubscribed_timeout_ms", 200}}));
  // Subscribed first, so it is older than every deadline below when it is checked.
  auto subscribed = client::WsSubscriber::Connect(m_node->RpcUrl(), {"blocks"});
  ASSERT_TRUE(subscribed) << subscribed.error().ToString();

  // A keep-alive connection after its answer, with nothing more to ask: closed.
  RawConn idle(Port());
  ASSERT_TRUE(idle.Send("GET /status HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string answer = idle.ReadUntil("node_version", kGuardMs);
  ASSERT_TRUE(answer.starts_with("HTTP/1.1 200")) << answer;
  bool eof = false;
  idle.ReadUntilClose(kGuardMs, &eof);
  EXPECT_TRUE(eof) << "the idle keep-alive connection was not closed";

  // A websocket that subscribes to nothing: closed with a reason.
  auto unsubscribed = client::WsSubscriber::Connect(m_node->RpcUrl(), {});
  ASSERT_TRUE(unsubscribed) << unsubscribed.error().ToString();
  auto e = (*unsubscribed)->Next(kGuardMs);
  ASSERT_FALSE(e) << e->data_json;
  EXPECT_EQ(e.error().code, base::ErrorCode::kUnavailable);
  EXPECT_NE(e.error().message.find("no subscription"), std::string::npos) << e.error().message;

  // No block was made (nothing to do), yet the subscriber is still there.
  EXPECT_EQ(m_node->Status().latest_height, 0u);
  auto r = Post(PostBody(TxHex(1, 0), "none", 0));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto block = (*subscribed)->Next(kGuardMs);
  ASSERT_TRUE(block) << block.error().ToString();
  EXPECT_EQ(block->topic, "blocks");
  EXPECT_EQ(Json::parse(block->data_json)["txs"], 1);
}

TEST_F(NodeLimits, ABlockOfManyTxsIsOneTxsFrame) {
  // More txs than a subscriber's queue holds frames (256), all in the first block:
  // genesis is now and the first block is one interval away.
  constexpr int kPerKey = 40;
  ASSERT_NO_FATAL_FAILURE(StartNode(1'500, Json::object()));
  auto sub = client::WsSubscriber::Connect(m_node->RpcUrl(), {"txs", "blocks"});
  ASSERT_TRUE(sub) << sub.error().ToString();
  std::set<std::string> sent;
  for (int k = 1; k <= kKeys; ++k) {
    for (uint64_t nonce = 0; nonce < kPerKey; ++nonce) {
      auto tx =
          client::BuildTransfer(TestKey(static_cast<uint8_t>(k)), kChain, nonce, TestAddress(100),
                                1'000, client::kDefaultTransferFeeUgpn, 0, "");
      ASSERT_TRUE(tx);
      auto added = m_node->SubmitTx(codec::EncodeTx(*tx));
      ASSERT_TRUE(added.Ok()) << added.message;
      sent.insert(base::ToHex(codec::TxHash(*tx)));
    }
  }
  ASSERT_GT(sent.size(), 256u);

  // Each block's txs arrive as one frame holding them all, before its block event.
  std::set<std::string> seen;
  while (seen.size() < sent.size()) {
    auto e = (*sub)->Next(kGuardMs);
    ASSERT_TRUE(e) << e.error().ToString();
    ASSERT_EQ(e->topic, "txs") << e->data_json;
    Json d = Json::parse(e->data_json);
    ASSERT_TRUE(d["txs"].is_array()) << e->data_json;
    const uint64_t height = d["height"].get<uint64_t>();
    for (size_t i = 0; i < d["txs"].size(); ++i) {
      const Json& t = d["txs"][i];
      EXPECT_EQ(t["height"], height);
      EXPECT_EQ(t["index"], i);
      EXPECT_EQ(t["code_name"], "ok");
      seen.insert(t["tx_hash"].get<std::string>());
    }
    auto b = (*sub)->Next(kGuardMs);
    ASSERT_TRUE(b) << b.error().ToString();
    ASSERT_EQ(b->topic, "blocks");
    Json bd = Json::parse(b->data_json);
    EXPECT_EQ(bd["height"], height);
    EXPECT_EQ(bd["txs"], d["txs"].size());
  }
  EXPECT_EQ(seen, sent);
  EXPECT_EQ(m_node->Status().latest_height, 1u) << "the txs did not all land in one block";
}

TEST(NodeConfigRpcLimits, ParsedStrictlyAndWrittenBack) {
  const gpunet::testing::TempDir dir({.prefix = "gpunet-node-config"});
  const std::string path = dir.Sub("node.json");
  auto load = [&](const std::string& text) {
    std::ofstream(path) << text;
    return LoadNodeConfig(path);
  };
  auto ok = load(R"({"rpc":"127.0.0.1:1","rpc_limits":{"waits_per_address_max":3,
                     "exempt_loopback":false}})");
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(ok->rpc_limits.waits_per_address_max, 3u);
  EXPECT_FALSE(ok->rpc_limits.exempt_loopback);
  EXPECT_EQ(ok->rpc_limits.connections_per_address_max, RpcLimits{}.connections_per_address_max);
  auto again = load(NodeConfigToJson(*ok));
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(again->rpc_limits.waits_per_address_max, 3u);
  EXPECT_FALSE(again->rpc_limits.exempt_loopback);

  // Written back: only what differs from the defaults.
  const Json written = Json::parse(NodeConfigToJson(*ok));
  EXPECT_EQ(written["rpc_limits"],
            (Json{{"waits_per_address_max", 3}, {"exempt_loopback", false}}));
  EXPECT_FALSE(Json::parse(NodeConfigToJson(NodeConfig{})).contains("rpc_limits"));
  auto defaults = load(NodeConfigToJson(NodeConfig{}));
  ASSERT_TRUE(defaults) << defaults.error().ToString();
  EXPECT_EQ(defaults->rpc_limits.waits_per_address_max, RpcLimits{}.waits_per_address_max);
  EXPECT_TRUE(defaults->rpc_limits.exempt_loopback);
  // A non-boolean exempt_loopback says what it takes.
  auto not_bool = load(R"({"rpc_limits":{"exempt_loopback":1}})");
  ASSERT_FALSE(not_bool);
  EXPECT_NE(not_bool.error().message.find("true or false"), std::string::npos)
      << not_bool.error().message;

  for (const char* bad : {R"({"rpc_limits":{"waits_max":3}})",
                          R"({"rpc_limits":{"idle_timeout_ms":0}})", R"({"rpc_limits":[]})"}) {
    auto refused = load(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().code, base::ErrorCode::kInvalidArgument);
    EXPECT_NE(refused.error().message.find("waits_per_address_max"), std::string::npos)
        << refused.error().message;
  }
}

}  // namespace
}  // namespace gpunet::node
