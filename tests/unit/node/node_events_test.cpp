// A real node (RocksDB home, solo engine, RPC on 127.0.0.1) publishing its websocket
// topics: "txs" carries one event per block listing its included txs with their
// receipt codes, "blocks" one event per committed block; a subscriber of one topic
// gets only that topic.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
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
#include "util/keys.h"

namespace gpunet::node {
namespace {

using Json = nlohmann::json;
constexpr int64_t kGuardMs = 20'000;  // liveness bound for anything that should happen

using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

struct NodeEvents : test::NodeTestBase {
  void SetUp() override {
    node::InitOptions init;
    init.chain_id = "events-test";
    init.block_interval_ms = 10;
    init.accounts.push_back({TestAddress(1), 1'000'000});
    ASSERT_NO_FATAL_FAILURE(StartNode("node-events", init));
  }

  // POSTs a transfer from key 1 through the RPC; returns its hash.
  std::string Post(uint64_t nonce, uint64_t amount_ugpn) {
    auto tx = client::BuildTransfer(TestKey(1), "events-test", nonce, TestAddress(2), amount_ugpn,
                                    client::kDefaultTransferFeeUgpn, 0, "");
    EXPECT_TRUE(tx);
    Json body = {{"tx", base::ToHex(codec::EncodeTx(*tx))}, {"wait", "none"}};
    auto r = client::HttpClient(m_node->RpcUrl()).Post("/tx", body.dump());
    EXPECT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->status, 200) << r->body;
    return base::ToHex(codec::TxHash(*tx));
  }
};

TEST_F(NodeEvents, TxsAndBlocksTopicsCarryReceiptsAndHeights) {
  auto both = client::WsSubscriber::Connect(m_node->RpcUrl(), {"blocks", "txs"});
  ASSERT_TRUE(both) << both.error().ToString();
  auto blocks_only = client::WsSubscriber::Connect(m_node->RpcUrl(), {"blocks"});
  ASSERT_TRUE(blocks_only) << blocks_only.error().ToString();

  // One transfer that applies and one that is included but fails (the amount is
  // more than the balance left after the fee): both are "txs" events.
  const std::string ok_hash = Post(0, 1'000);
  const std::string failed_hash = Post(1, 5'000'000);

  std::map<std::string, Json> txs;  // by tx hash
  uint64_t last_height = 0, block_txs = 0;
  while (txs.size() < 2) {
    auto e = (*both)->Next(kGuardMs);
    ASSERT_TRUE(e) << e.error().ToString();
    Json d = Json::parse(e->data_json);
    if (e->topic == "txs") {
      EXPECT_EQ(d["topic"], "txs");
      ASSERT_TRUE(d["txs"].is_array()) << e->data_json;
      ASSERT_FALSE(d["txs"].empty()) << "an event for a block without txs";
      for (const Json& t : d["txs"]) {
        EXPECT_EQ(t["height"], d["height"]);
        txs[t["tx_hash"].get<std::string>()] = t;
      }
    } else {
      ASSERT_EQ(e->topic, "blocks");
      EXPECT_GT(d["height"].get<uint64_t>(), last_height);  // heights only grow
      last_height = d["height"].get<uint64_t>();
      block_txs += d["txs"].get<uint64_t>();
      EXPECT_EQ(d["hash"].get<std::string>().size(), 64u);
    }
  }
  ASSERT_TRUE(txs.contains(ok_hash));
  ASSERT_TRUE(txs.contains(failed_hash));
  EXPECT_EQ(txs[ok_hash]["code"], 0);
  EXPECT_EQ(txs[ok_hash]["code_name"], "ok");
  EXPECT_EQ(txs[failed_hash]["code"], static_cast<int>(codec::TxCode::kInsufficientFunds));
  EXPECT_EQ(txs[failed_hash]["code_name"], "insufficient_funds");
  // The block event of the last tx's block follows its tx events.
  while (block_txs < 2) {
    auto e = (*both)->Next(kGuardMs);
    ASSERT_TRUE(e) << e.error().ToString();
    ASSERT_EQ(e->topic, "blocks");
    block_txs += Json::parse(e->data_json)["txs"].get<uint64_t>();
  }
  const uint64_t tx_height = txs[failed_hash]["height"].get<uint64_t>();
  EXPECT_LE(tx_height, m_node->Status().latest_height);

  // The blocks-only subscriber saw the same blocks and no tx event.
  uint64_t seen_txs = 0;
  while (seen_txs < 2) {
    auto e = (*blocks_only)->Next(kGuardMs);
    ASSERT_TRUE(e) << e.error().ToString();
    ASSERT_EQ(e->topic, "blocks");
    seen_txs += Json::parse(e->data_json)["txs"].get<uint64_t>();
  }
}

}  // namespace
}  // namespace gpunet::node
