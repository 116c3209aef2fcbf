// A malformed market message sent over the RPC is refused before inclusion by the
// market's preflight (docs/market.md "Preflight"): the submitter gets the market's
// code and message at once, no fee is charged and the nonce stays unused. Before the
// preflight such a tx was included and failed, charging its fee.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "client/http_client.h"
#include "client/tx_builder.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "crypto/address.h"
#include "node/node.h"
#include "unit/node/test_node.h"
#include "util/keys.h"

namespace gpunet::node {
namespace {

using Json = nlohmann::json;
using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

constexpr uint64_t kBalance = 10'000'000;
constexpr uint64_t kFee = 100'000;  // buys the gas of any one market message

struct MarketPreflight : test::NodeTestBase {
  void SetUp() override {
    node::InitOptions init;
    init.chain_id = "preflight-test";
    init.block_interval_ms = 10;
    init.accounts.push_back({TestAddress(1), kBalance});
    ASSERT_NO_FATAL_FAILURE(StartNode("market-preflight", init));
  }

  client::HttpResponse PostCommitted(const base::Bytes& tx) {
    Json body = {{"tx", base::ToHex(tx)}, {"wait", "committed"}, {"timeout_ms", 20'000}};
    auto r = client::HttpClient(m_node->RpcUrl()).Post("/tx", body.dump());
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : client::HttpResponse{};
  }

  Json Account() {
    auto r = client::HttpClient(m_node->RpcUrl())
                 .Get("/account/" + crypto::AddressToString(TestAddress(1)));
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? Json::parse(r->body, nullptr, false) : Json();
  }
};

TEST_F(MarketPreflight, AMalformedMarketMessageIsRefusedWithoutAFeeOrANonce) {
  codec::TxBody body;
  body.chain_id = "preflight-test";
  body.sender = TestKey(1).Public();
  body.nonce = 0;
  body.fee_ugpn = kFee;
  body.msgs.push_back(codec::MsgProviderBond{0});  // a bond of nothing
  client::HttpResponse refused = PostCommitted(codec::EncodeTx(codec::SignTx(body, TestKey(1))));
  ASSERT_EQ(refused.status, 400) << refused.body;
  Json error = Json::parse(refused.body)["error"];
  EXPECT_EQ(error["code"], "tx_rejected");
  EXPECT_EQ(error["tx_code"], static_cast<int>(codec::TxCode::kMarketZeroAmount));
  EXPECT_EQ(error["tx_code_name"], "market_zero_amount");
  EXPECT_NE(error["message"].get<std::string>().find("bond of 0 ugpn"), std::string::npos)
      << error["message"];

  // Nonce 0 is still the account's next: a transfer with it applies, and the
  // balance paid only that transfer's fee and amount.
  auto transfer = client::BuildTransfer(TestKey(1), "preflight-test", 0, TestAddress(2), 1'000,
                                        client::kDefaultTransferFeeUgpn, 0, "");
  ASSERT_TRUE(transfer) << transfer.error().ToString();
  client::HttpResponse applied = PostCommitted(codec::EncodeTx(*transfer));
  ASSERT_EQ(applied.status, 200) << applied.body;
  EXPECT_EQ(Json::parse(applied.body)["code"], 0) << applied.body;
  Json account = Account();
  EXPECT_EQ(account["nonce"], 1) << account;
  EXPECT_EQ(account["balance_ugpn"],
            std::to_string(kBalance - client::kDefaultTransferFeeUgpn - 1'000))
      << account;
}

}  // namespace
}  // namespace gpunet::node
