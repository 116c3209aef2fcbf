#include "client/tx_builder.h"

#include <gtest/gtest.h>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "crypto/address.h"
#include "state/fees.h"
#include "util/keys.h"

namespace gpunet::client {
namespace {

using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

TEST(BuildTransfer, SignedByTheSenderOverEveryField) {
  auto alice = TestKey(1);
  auto bob = TestAddress(2);
  auto tx = BuildTransfer(alice, "gpunet-devnet", 7, bob, 12'500'000, 1'000, 99, "rent");
  ASSERT_TRUE(tx) << tx.error().message;
  EXPECT_EQ(tx->body.chain_id, "gpunet-devnet");
  EXPECT_EQ(tx->body.sender, alice.Public());
  EXPECT_EQ(tx->body.nonce, 7u);
  EXPECT_EQ(tx->body.fee_ugpn, 1'000u);
  EXPECT_EQ(tx->body.timeout_height, 99u);
  EXPECT_EQ(tx->body.memo, "rent");
  ASSERT_EQ(tx->body.msgs.size(), 1u);
  EXPECT_EQ(std::get<codec::MsgSend>(tx->body.msgs[0]), (codec::MsgSend{bob, 12'500'000}));
  EXPECT_TRUE(codec::VerifyTxSignature(*tx));
  EXPECT_TRUE(codec::ValidateTx(*tx));
  // The encoding round-trips (what the node decodes is what was signed).
  auto decoded = codec::DecodeTx(codec::EncodeTx(*tx));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, *tx);

  // Any change to the body breaks the signature.
  for (int field = 0; field < 4; ++field) {
    codec::Tx changed = *tx;
    if (field == 0) changed.body.nonce += 1;
    if (field == 1) changed.body.fee_ugpn -= 1;
    if (field == 2) std::get<codec::MsgSend>(changed.body.msgs[0]).amount_ugpn += 1;
    if (field == 3) changed.body.chain_id = "gpunet-other";
    EXPECT_FALSE(codec::VerifyTxSignature(changed)) << field;
  }
}

TEST(BuildTransfer, RefusesBadInputBeforeSigning) {
  auto alice = TestKey(1);
  auto bob = TestAddress(2);
  EXPECT_EQ(BuildTransfer(alice, "gpunet-devnet", 0, bob, 0, 1'000, 0, "").error().code,
            base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(BuildTransfer(alice, "", 0, bob, 1, 1'000, 0, "").error().code,
            base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(BuildTransfer(alice, "gpunet-devnet", 0, bob, 1, 1'000, 0, std::string(257, 'm'))
                .error()
                .code,
            base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(BuildTransfer(alice, "gpunet-devnet", 0, bob, UINT64_MAX, 1, 0, "").error().code,
            base::ErrorCode::kOverflow);
  // A memo with a control character: ValidateTxBody's rule, reported as such.
  auto control = BuildTransfer(alice, "gpunet-devnet", 0, bob, 1, 1'000, 0, "a\nb");
  ASSERT_FALSE(control);
  EXPECT_NE(control.error().message.find("not a valid transaction"), std::string::npos);
  // A chain id with a space is not printable ASCII without spaces.
  EXPECT_FALSE(BuildTransfer(alice, "my chain", 0, bob, 1, 1'000, 0, ""));
}

TEST(TransferFee, MatchesTheLedgersRuleOnTheRealEncoding) {
  FeeSchedule schedule{1, 100, 1000};
  state::FeeParams params{1, 100, 1000, 5000};
  auto alice = TestKey(1);
  auto bob = TestAddress(2);
  for (size_t memo_bytes : {0u, 10u, 256u}) {
    std::string memo(memo_bytes, 'x');
    auto fee = TransferFee(schedule, "gpunet-devnet", memo);
    ASSERT_TRUE(fee);
    auto tx = BuildTransfer(alice, "gpunet-devnet", 3, bob, 5, *fee, 0, memo);
    ASSERT_TRUE(tx);
    EXPECT_EQ(*fee, *state::RequiredFee(params, codec::EncodeTx(*tx).size(), 1)) << memo_bytes;
  }
  // Per-byte dominated: the fee is exactly bytes * per_byte + per_msg.
  FeeSchedule costly{10, 100, 0};
  auto fee = TransferFee(costly, "c", "");
  auto tx = BuildTransfer(alice, "c", 0, bob, 5, *fee, 0, "");
  EXPECT_EQ(*fee, codec::EncodeTx(*tx).size() * 10 + 100);
}

// The CLI's fee without --fee: the byte and message price, the simulated gas plus
// 20% (rounded up, at most a block's), and at least the minimum.
TEST(FeeWithGasMargin, MarginMinimumCapAndOverflow) {
  const FeeSchedule fees{1, 100, 1000};
  const GasSchedule gas{1, 40'000'000};
  EXPECT_EQ(FeeWithGasMargin(fees, gas, 200, 1, 1000), 200u + 100 + 1200);
  EXPECT_EQ(FeeWithGasMargin(fees, gas, 200, 1, 1001), 200u + 100 + 1202);  // 1201.2 rounds up
  EXPECT_EQ(FeeWithGasMargin(fees, gas, 200, 1, 100), 1000u);               // the minimum
  EXPECT_EQ(FeeWithGasMargin(fees, gas, 200, 1, 39'000'000), 200u + 100 + 40'000'000);  // a block
  EXPECT_EQ(FeeWithGasMargin(fees, GasSchedule{3, 40'000'000}, 200, 1, 1000), 200u + 100 + 3600);
  EXPECT_FALSE(FeeWithGasMargin(fees, GasSchedule{UINT64_MAX, 0}, 200, 1, 1000));
  EXPECT_FALSE(FeeWithGasMargin(fees, gas, 200, 1, UINT64_MAX));
}

TEST(MinimumFee, FloorAndOverflow) {
  EXPECT_EQ(MinimumFee({1, 100, 1000}, 150, 1), 1000u);
  EXPECT_EQ(MinimumFee({2, 100, 1000}, 500, 1), 1100u);
  EXPECT_FALSE(MinimumFee({UINT64_MAX, 0, 0}, 2, 1));
  EXPECT_FALSE(MinimumFee({1, UINT64_MAX, 0}, 2, 1));
  auto over = TransferFee({UINT64_MAX, 0, 0}, "c", "");
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, base::ErrorCode::kOverflow);
}

}  // namespace
}  // namespace gpunet::client
