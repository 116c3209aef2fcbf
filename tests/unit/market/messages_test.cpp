// The market messages' canonical encoding (docs/encoding.md): every message round
// trips inside a tx, and the decoder refuses what the layout forbids.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/limits.h"
#include "codec/encoding.h"
#include "crypto/hash.h"
#include "unit/market/message_examples.h"

namespace gpunet::codec {
namespace {

namespace limits = base::limits;

using testing::Addr;
using testing::AllMarketMessages;
using testing::H;
using testing::TxWith;

TEST(MarketMessages, EveryMessageRoundTripsWithItsTag) {
  auto msgs = AllMarketMessages();
  ASSERT_EQ(msgs.size(), std::variant_size_v<Msg> - 1);
  for (size_t i = 0; i < msgs.size(); ++i) {
    EXPECT_EQ(static_cast<uint16_t>(TagOf(msgs[i])), i + 2);
    Tx tx = TxWith(msgs[i]);
    auto bytes = EncodeTx(tx);
    auto back = DecodeTx(bytes);
    ASSERT_TRUE(back) << i << ": " << back.error().ToString();
    EXPECT_EQ(*back, tx) << i;
    EXPECT_EQ(EncodeTx(*back), bytes);
  }
}

// The bytes of every market message are pinned: a change to any layout (which
// clients in other languages rely on, docs/encoding.md) fails here visibly. After an
// intended, append-only change, put the printed digest below.
TEST(MarketMessages, EncodingsArePinned) {
  Writer w;
  for (const auto& m : AllMarketMessages()) Write(w, m);
  EXPECT_EQ(base::ToHex(crypto::Blake2b256(w.Data())),
            "379cbd50d8580fbfbce2c77b7e0e848782a0cb0da30f51d788daf50481f9929b");
}

TEST(MarketMessages, EveryTruncationIsRejected) {
  for (const auto& m : AllMarketMessages()) {
    auto bytes = EncodeTx(TxWith(m));
    // Cut inside the message (before the memo and signature): never a valid tx.
    for (size_t cut = 1; cut + 65 < bytes.size(); cut += 3) {
      base::Bytes b(bytes.begin(), bytes.begin() + static_cast<long>(cut));
      EXPECT_FALSE(DecodeTx(b)) << cut;
    }
  }
}

void ExpectRejected(const Msg& m, std::string_view needle) {
  auto r = DecodeTx(EncodeTx(TxWith(m)));
  ASSERT_FALSE(r) << needle;
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
}

TEST(MarketMessages, SetsMustBeStrictlyAscending) {
  MsgProviderRegister reg{Addr(1), "u", H(1), "eu", 1, {{Addr(6), 5000}, {Addr(5), 5000}}, {}};
  ExpectRejected(reg, "payees must be strictly ascending");
  reg.payouts = {{Addr(5), 5000}, {Addr(5), 5000}};
  ExpectRejected(reg, "payees must be strictly ascending");
  reg.payouts = {{Addr(5), 10000}};
  reg.policy.deny = {Addr(2), Addr(1)};
  ExpectRejected(reg, "policy.deny: addresses must be strictly ascending");
  MsgOfferCreate offer{Addr(2), "H100", 0, 1, {Addr(3), Addr(3)}};
  ExpectRejected(offer, "tenants: addresses must be strictly ascending");
  MsgBidCreate bid{Addr(2), 1, 1, {8, 7}};
  ExpectRejected(bid, "machine ids must be strictly ascending");
  MsgAttest attest{Addr(2), 0, {{"b", "1"}, {"a", "2"}}, 5};
  ExpectRejected(attest, "attribute keys must be strictly ascending");
  MsgOrderCreate order;
  order.requirements.gpu_models = {"H100", "A100"};
  ExpectRejected(order, "models must be strictly ascending");
  order.requirements.gpu_models = {};
  order.providers.excluded = {Addr(4), Addr(3)};
  ExpectRejected(order, "providers.excluded: addresses must be strictly ascending");
}

TEST(MarketMessages, ListsOverTheirLimitsAreRejected) {
  MsgProviderRegister reg{Addr(1), "u", H(1), "eu", 1, {}, {}};
  for (size_t i = 0; i <= limits::kPayoutSplitsMax; ++i)
    reg.payouts.push_back({Addr(static_cast<uint8_t>(i + 1)), 1});
  ExpectRejected(reg, "limits::kPayoutSplitsMax");
  MsgBidCreate bid{Addr(2), 1, 1, {}};
  for (uint32_t i = 0; i <= limits::kMachinesPerLeaseMax; ++i) bid.machine_ids.push_back(i + 1);
  ExpectRejected(bid, "limits::kMachinesPerLeaseMax");
  MsgAttest attest{Addr(2), 0, {}, 5};
  for (size_t i = 0; i <= limits::kAttributesMax; ++i)
    attest.attributes.push_back({"k" + std::to_string(100 + i), "v"});
  ExpectRejected(attest, "limits::kAttributesMax");
  MsgOrderCreate order;
  for (size_t i = 0; i <= limits::kOrderExclusionsMax; ++i)
    order.providers.excluded.push_back(Addr(static_cast<uint8_t>(i + 1)));
  ExpectRejected(order, "limits::kOrderExclusionsMax");
}

TEST(MarketMessages, EnumsAndStringsOutsideTheirRulesAreRejected) {
  ExpectRejected(MsgSiteUpsert{Addr(2), 1, Fabric::kAny, 1}, "fabric 0 is not");
  ExpectRejected(MsgSiteUpsert{Addr(2), 1, static_cast<Fabric>(4), 1}, "fabric 4 is not");
  ExpectRejected(MsgLeaseClose{1, static_cast<CloseReason>(2)}, "close reason 2");
  MsgMachineUpsert machine{Addr(2), 1, 1, "H100", 8, 80, static_cast<GpuLink>(3),
                           "5",     1, 1, 1,      1, 1};
  ExpectRejected(machine, "link 3");
  machine.link = GpuLink::kPcie;
  machine.gpu_model = "H 100";
  ExpectRejected(machine, "gpu_model");
  MsgOrderCreate order;
  order.requirements.region = "eu west";
  ExpectRejected(order, "region");
  order.requirements.region = "";
  EXPECT_TRUE(DecodeTx(EncodeTx(TxWith(order))));  // empty region = any
  order.providers.max_fault_rate_ppm = limits::kFaultRatePpmAny + 1;
  ExpectRejected(order, "max_fault_rate_ppm");
  order.providers.max_fault_rate_ppm = limits::kFaultRatePpmAny;
  EXPECT_TRUE(DecodeTx(EncodeTx(TxWith(order))));
}

// The checked-in seeds of tests/fuzz/corpus/fuzz_market_apply still decode: a seed
// the target's decoder refuses is a seed the fuzzer never gets past (rewrite them
// with `make corpus` after a layout change).
TEST(MarketMessages, TheFuzzCorpusDecodes) {
  const char* root = std::getenv("GPUNET_SOURCE_DIR");
  if (root == nullptr) GTEST_SKIP() << "GPUNET_SOURCE_DIR is set by ctest";
  auto dir = std::filesystem::path(root) / "tests/fuzz/corpus/fuzz_market_apply";
  size_t seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    base::Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GE(bytes.size(), 2u) << entry.path();
    auto body = DecodeTxBody(base::ByteSpan(bytes.data() + 1, bytes.size() - 1));
    EXPECT_TRUE(body) << entry.path() << ": " << body.error().ToString();
    ++seeds;
  }
  EXPECT_EQ(seeds, AllMarketMessages().size());
}

}  // namespace
}  // namespace gpunet::codec
