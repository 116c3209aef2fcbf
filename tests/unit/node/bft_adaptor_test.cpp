#include "node/bft_adaptor.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "codec/encoding.h"
#include "codec/evidence.h"
#include "codec/hashes.h"
#include "crypto/address.h"
#include "ledger/app.h"
#include "state/keyspace.h"
#include "util/keys.h"

namespace gpunet::node {
namespace {

constexpr const char* kChain = "adaptor-test";

using gpunet::testing::TestKey;

struct Fixture {
  std::vector<crypto::KeyPair> keys{TestKey(1), TestKey(2), TestKey(3)};
  ledger::Genesis genesis;
  state::MemoryKvStore kv;
  std::unique_ptr<ledger::LedgerApp> app;

  Fixture() {
    genesis.chain_id = kChain;
    genesis.genesis_time_ms = 1'000'000;
    for (size_t i = 0; i < keys.size(); ++i)
      genesis.validators.validators.push_back({keys[i].Public(), 10 * (i + 1)});
    std::sort(genesis.validators.validators.begin(), genesis.validators.validators.end(),
              [](const auto& a, const auto& b) { return a.public_key < b.public_key; });
    auto opened = ledger::LedgerApp::Open(kv, genesis);
    EXPECT_TRUE(opened.has_value());
    app = std::move(*opened);
  }

  codec::Vote Vote(size_t who, uint64_t height, const codec::BlockId& hash) {
    codec::Vote v;
    v.type = codec::VoteType::kPrevote;
    v.height = height;
    v.block_hash = hash;
    v.time_ms = 1'000'500;
    v.validator = crypto::AddressOf(keys[who].Public());
    codec::SignVote(v, kChain, keys[who]);
    return v;
  }
};

codec::BlockId Hash(uint8_t b) {
  codec::BlockId h;
  h.data.fill(b);
  return h;
}

TEST(BftAdaptor, CommitInfoMarksExactlyTheSigners) {
  Fixture f;
  codec::Commit commit;
  commit.height = 4;
  commit.round = 2;
  const codec::Address signer = crypto::AddressOf(f.keys[1].Public());
  commit.sigs.push_back({signer, 1, {}});
  const ledger::CommitInfo info = CommitInfoOf(commit, f.genesis.validators);
  EXPECT_EQ(info.round, 2u);
  ASSERT_EQ(info.votes.size(), 3u);
  for (const auto& v : info.votes) EXPECT_EQ(v.signed_last_block, v.validator == signer);
  EXPECT_TRUE(CommitInfoOf(codec::Commit{}, f.genesis.validators).votes.empty());
}

TEST(BftAdaptor, BlocksAndCertificatesCommitAndTheStartStateResumes) {
  Fixture f;
  LedgerBftAdaptor adaptor(*f.app, f.kv, kChain, 100);
  auto start0 = LoadBftStartState(*f.app, f.kv);
  ASSERT_TRUE(start0);
  EXPECT_EQ(start0->height, 1u);
  consensus::BftProposalRequest req;
  req.height = 1;
  req.time_ms = 1'000'001;
  req.proposer = crypto::AddressOf(f.keys[0].Public());
  req.validators = f.genesis.validators;
  auto block = adaptor.PrepareProposal(req);
  ASSERT_TRUE(block) << block.error().ToString();
  consensus::BftBlockContext ctx{1, 0, f.genesis.validators, {}};
  auto verdict = adaptor.ProcessProposal(*block, ctx);
  ASSERT_TRUE(verdict);
  EXPECT_TRUE(verdict->accept) << verdict->reason;
  codec::Commit commit;
  commit.height = 1;
  commit.block_hash = codec::BlockHash(block->header);
  ASSERT_TRUE(adaptor.FinalizeAndCommit(*block, commit, ctx));
  auto stored = ReadCommit(f.kv, 1);
  ASSERT_TRUE(stored && stored->has_value());
  EXPECT_EQ(**stored, commit);
  auto start = LoadBftStartState(*f.app, f.kv);
  ASSERT_TRUE(start) << start.error().ToString();
  EXPECT_EQ(start->height, 2u);
  EXPECT_EQ(start->last_commit, commit);
  EXPECT_EQ(start->last_block_hash, commit.block_hash);
  EXPECT_EQ(start->last_validators, f.genesis.validators);
}

TEST(BftAdaptor, ACommittedHeightWithoutCertificateIsCorrupt) {
  Fixture f;
  // A block committed by the ledger alone (as solo does): no certificate stored.
  ledger::PrepareProposalRequest prep;
  prep.height = 1;
  prep.time_ms = 1'000'001;
  prep.proposer = crypto::AddressOf(f.keys[0].Public());
  auto prepared = f.app->PrepareProposal(prep);
  ASSERT_TRUE(prepared);
  ASSERT_TRUE(f.app->FinalizeBlock({prepared->block, {}, {}}));
  ASSERT_TRUE(f.app->Commit());
  auto start = LoadBftStartState(*f.app, f.kv);
  ASSERT_FALSE(start);
  EXPECT_EQ(start.error().code, base::ErrorCode::kCorrupt);
  EXPECT_NE(start.error().message.find("--engine bft"), std::string::npos);
}

TEST(BftAdaptor, EvidenceIsVerifiedBeforeTheLedgerSeesTheBlock) {
  Fixture f;
  LedgerBftAdaptor adaptor(*f.app, f.kv, kChain, 100);
  // Commit height 1 so evidence about it can go into height 2.
  consensus::BftProposalRequest req;
  req.height = 1;
  req.time_ms = 1'000'001;
  req.proposer = crypto::AddressOf(f.keys[0].Public());
  req.validators = f.genesis.validators;
  auto b1 = adaptor.PrepareProposal(req);
  ASSERT_TRUE(b1);
  consensus::BftBlockContext ctx1{1, 0, f.genesis.validators, {}};
  ASSERT_TRUE(adaptor.FinalizeAndCommit(*b1, {1, 0, codec::BlockHash(b1->header), {}}, ctx1));

  auto good = codec::MakeDuplicateVoteEvidence(f.Vote(2, 1, Hash(1)), f.Vote(2, 1, Hash(2)));
  ASSERT_TRUE(good);
  req.height = 2;
  req.time_ms = 1'000'002;
  req.evidence = {*good};
  auto b2 = adaptor.PrepareProposal(req);
  ASSERT_TRUE(b2);
  consensus::BftBlockContext ctx2{2, 0, f.genesis.validators, f.genesis.validators};
  auto ok = adaptor.ProcessProposal(*b2, ctx2);
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->accept) << ok->reason;
  auto misbehavior = MisbehaviorOf(b2->evidence, f.genesis.validators);
  ASSERT_EQ(misbehavior.size(), 1u);
  EXPECT_EQ(misbehavior[0].validator, crypto::AddressOf(f.keys[2].Public()));
  EXPECT_EQ(misbehavior[0].power, 30u);
  EXPECT_EQ(misbehavior[0].total_voting_power, 60u);

  // The same block shape with a forged second signature is refused with the reason.
  codec::DuplicateVoteEvidence forged = *good;
  forged.vote_b.signature[0] ^= 1;
  req.evidence = {forged};
  req.time_ms = 1'000'003;
  auto b3 = adaptor.PrepareProposal(req);
  ASSERT_TRUE(b3);
  auto refused = adaptor.ProcessProposal(*b3, ctx2);
  ASSERT_TRUE(refused);
  EXPECT_FALSE(refused->accept);
  EXPECT_NE(refused->reason.find("evidence 0 does not verify"), std::string::npos)
      << refused->reason;
}

}  // namespace
}  // namespace gpunet::node
