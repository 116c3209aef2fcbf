// VerifyAccountProof against a real state tree (state::SparseMerkleTree) and real
// header encodings: the honest answer verifies; every forgery a node could send
// fails with a message saying which check broke.
#include "client/account_proof.h"

#include <gtest/gtest.h>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "codec/smt_proof.h"
#include "crypto/address.h"
#include "state/keyspace.h"
#include "state/smt.h"
#include "util/keys.h"

namespace gpunet::client {
namespace {

using gpunet::testing::TestAddress;

class AccountProofTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<codec::SmtLeaf> leaves;
    for (uint8_t n = 1; n <= 40; ++n) {
      codec::Account account{1'000'000ull * n, static_cast<uint64_t>(n % 5)};
      m_accounts[n] = account;
      leaves.push_back({codec::SmtKeyHash(AccountStateKey(TestAddress(n))),
                        codec::SmtValueHash(codec::EncodeAccount(account))});
    }
    // Another kind of state entry, so the tree is not accounts only.
    base::Bytes other = state::keyspace::AppStateKey(0x10, base::AsBytes("order-1"));
    leaves.push_back({codec::SmtKeyHash(other), codec::SmtValueHash(base::AsBytes("x"))});
    auto tree = state::SparseMerkleTree::Build(leaves);
    ASSERT_TRUE(tree) << tree.error().message;
    m_tree = std::move(*tree);
    m_header.chain_id = "gpunet-devnet";
    m_header.app_version = 1;
    m_header.height = 12;
    m_header.time_ms = 1'700'000'000'000;
    m_header.state_root = m_tree.Root();
  }

  /// What an honest node answers for address number n (absent when n > 40).
  AccountInfo Honest(uint8_t n) const {
    AccountInfo info;
    info.address = TestAddress(n);
    info.address_text = crypto::AddressToString(info.address);
    info.height = m_header.height;
    AccountProofData p;
    p.state_key = AccountStateKey(info.address);
    if (auto it = m_accounts.find(n); it != m_accounts.end()) {
      info.exists = true;
      info.balance_ugpn = it->second.balance_ugpn;
      info.nonce = it->second.nonce;
      p.value = codec::EncodeAccount(it->second);
    }
    p.proof = codec::EncodeSmtProof(m_tree.Prove(codec::SmtKeyHash(p.state_key)));
    p.header = codec::EncodeBlockHeader(m_header);
    info.proof = p;
    return info;
  }

  static void ExpectRefused(const AccountInfo& info, std::string_view words,
                            std::optional<base::Hash32> trusted = std::nullopt) {
    auto r = VerifyAccountProof(info, trusted);
    ASSERT_FALSE(r) << "a forged answer verified";
    EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt);
    EXPECT_NE(r.error().message.find("does NOT verify"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(words), std::string::npos) << r.error().message;
  }

  std::map<uint8_t, codec::Account> m_accounts;
  state::SparseMerkleTree m_tree;
  codec::BlockHeader m_header;
};

TEST_F(AccountProofTest, StateKeyIsTheNodesAccountKey) {
  for (uint8_t n : {1, 2, 77}) {
    auto address = TestAddress(n);
    EXPECT_EQ(AccountStateKey(address), state::keyspace::AccountKey(address));
  }
}

TEST_F(AccountProofTest, HonestMembershipVerifies) {
  auto r = VerifyAccountProof(Honest(7), codec::BlockHash(m_header));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->exists);
  EXPECT_EQ(r->account.balance_ugpn, 7'000'000u);
  EXPECT_EQ(r->account.nonce, 2u);
  EXPECT_EQ(r->height, 12u);
  EXPECT_EQ(r->state_root, m_tree.Root());
  EXPECT_EQ(r->block_hash, codec::BlockHash(m_header));
  EXPECT_EQ(r->chain_id, "gpunet-devnet");
}

TEST_F(AccountProofTest, HonestNonMembershipVerifies) {
  auto r = VerifyAccountProof(Honest(200));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->exists);
  EXPECT_EQ(r->account, codec::Account{});
}

TEST_F(AccountProofTest, ForgedBalanceOrNonceFails) {
  AccountInfo balance = Honest(7);
  balance.balance_ugpn += 1;
  ExpectRefused(balance, "reports balance 7000001");
  AccountInfo nonce = Honest(7);
  nonce.nonce = 0;
  ExpectRefused(nonce, "nonce");
  AccountInfo ghost = Honest(200);  // absent, but reported with money
  ghost.balance_ugpn = 5;
  ExpectRefused(ghost, "balance");
  AccountInfo not_there = Honest(7);
  not_there.exists = false;
  ExpectRefused(not_there, "does not exist");
}

TEST_F(AccountProofTest, ForgedValueFails) {
  // The node changes the value and the reported balance together: the proof no
  // longer connects the value to the root.
  AccountInfo info = Honest(7);
  info.balance_ugpn = 999'000'000;
  info.proof->value = codec::EncodeAccount({999'000'000, info.nonce});
  ExpectRefused(info, "does not connect");
  // Claiming absence of a present account with a made-up empty proof.
  AccountInfo hidden = Honest(7);
  hidden.exists = false;
  hidden.balance_ugpn = 0;
  hidden.nonce = 0;
  hidden.proof->value.reset();
  ExpectRefused(hidden, "absent");
  // Garbage value bytes that happen to be proven are still not an account.
}

TEST_F(AccountProofTest, TamperedProofFails) {
  AccountInfo info = Honest(7);
  auto proof = codec::DecodeSmtProof(info.proof->proof);
  ASSERT_TRUE(proof);
  ASSERT_FALSE(proof->siblings.empty());
  for (size_t i = 0; i < proof->siblings.size(); ++i) {
    codec::SmtProof bad = *proof;
    bad.siblings[i][0] ^= 0x01;
    AccountInfo forged = info;
    forged.proof->proof = codec::EncodeSmtProof(bad);
    ExpectRefused(forged, "does not connect");
  }
  codec::SmtProof shorter = *proof;
  shorter.siblings.pop_back();
  info.proof->proof = codec::EncodeSmtProof(shorter);
  ExpectRefused(info, "does not connect");
  AccountInfo garbage = Honest(7);
  garbage.proof->proof = {0x07, 0x01};
  ExpectRefused(garbage, "does not decode");
}

TEST_F(AccountProofTest, ProofOfAnotherAccountFails) {
  AccountInfo info = Honest(7);
  AccountInfo other = Honest(8);
  info.proof = other.proof;  // bob's proof and value presented for alice
  info.balance_ugpn = other.balance_ugpn;
  info.nonce = other.nonce;
  ExpectRefused(info, "is not the account key");
  // ... and with the right key but bob's path.
  info.proof->state_key = AccountStateKey(info.address);
  ExpectRefused(info, "does not connect");
}

TEST_F(AccountProofTest, HeaderMismatchFails) {
  AccountInfo info = Honest(7);
  codec::BlockHeader other_root = m_header;
  other_root.state_root[3] ^= 0x10;
  info.proof->header = codec::EncodeBlockHeader(other_root);
  ExpectRefused(info, "does not connect");

  AccountInfo wrong_height = Honest(7);
  wrong_height.height = 11;
  ExpectRefused(wrong_height, "the header is of height 12");

  AccountInfo untrusted = Honest(7);
  base::Hash32 trusted = codec::BlockHash(m_header);
  trusted[0] ^= 0xff;
  ExpectRefused(untrusted, "not to block hash", trusted);

  AccountInfo garbage = Honest(7);
  garbage.proof->header = {1, 2, 3};
  ExpectRefused(garbage, "not a block header");
}

TEST_F(AccountProofTest, NoProofIsAnError) {
  AccountInfo info = Honest(7);
  info.proof.reset();
  auto r = VerifyAccountProof(info);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, base::ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace gpunet::client
