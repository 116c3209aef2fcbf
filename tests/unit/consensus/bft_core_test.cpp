// The BFT core driven through real cores: one validator alone, four in a loopback.
#include <gtest/gtest.h>

#include "unit/consensus/bft_test_util.h"

namespace gpunet::consensus {
namespace {

using namespace testing;

TEST(BftCore, SingleValidatorCommitsEveryHeightAlone) {
  Loopback net({10});
  net.StartAll();
  ASSERT_TRUE(net.RunUntilHeight(5));
  const auto& app = *net.nodes[0]->app;
  ASSERT_EQ(app.committed.size(), 5u);
  uint64_t prev_time = 1'000'000;
  for (size_t i = 0; i < app.committed.size(); ++i) {
    EXPECT_EQ(app.committed[i].header.height, i + 1);
    EXPECT_GT(app.committed[i].header.time_ms, prev_time);
    prev_time = app.committed[i].header.time_ms;
    EXPECT_EQ(app.commits[i].round, 0u);
  }
  EXPECT_EQ(app.committed[0].header.time_ms, 1'000'001u);  // genesis + 1
  EXPECT_EQ(net.nodes[0]->core->Counters().heights_decided, 5u);
}

TEST(BftCore, FourValidatorsCommitTenHeightsInAgreement) {
  Loopback net({1, 2, 3, 4});
  net.StartAll();
  ASSERT_TRUE(net.RunUntilHeight(10));
  EXPECT_TRUE(net.Agreement());
  for (const auto& n : net.nodes) {
    ASSERT_GE(n->app->committed.size(), 10u);
    for (size_t h = 0; h < 10; ++h)
      EXPECT_EQ(codec::BlockHash(n->app->committed[h].header),
                codec::BlockHash(net.nodes[0]->app->committed[h].header));
  }
  // Every certificate carries > 2/3 of the power and verifies on its own.
  for (const auto& c : net.nodes[0]->app->commits)
    EXPECT_TRUE(VerifyCommit(c, net.net().set, kChain, c.block_hash).has_value());
}

// Crash node 1 after every possible number of actions in the first heights (the
// actions after the crash point are lost, as unsynced writes and unsent messages
// would be), restart it from its WAL and guard: it never signs two different votes
// for one (height, round, step), and the network keeps agreeing and committing.
TEST(BftCore, CrashAtAnyActionAndReplayNeverDoubleSigns) {
  for (size_t crash_after = 0; crash_after < 60; ++crash_after) {
    SCOPED_TRACE("crash after " + std::to_string(crash_after) + " actions");
    Loopback net({1, 1, 1, 1});
    net.nodes[1]->crash_after = crash_after;
    net.StartAll();
    for (size_t e = 0; e < 100000 && !net.nodes[1]->down; ++e)
      if (!net.StepOnce()) break;
    ASSERT_TRUE(net.nodes[1]->down);
    // The three others carry on for a while, then the node comes back.
    for (int e = 0; e < 40; ++e) net.StepOnce();
    const size_t sent_before = net.nodes[1]->sent_votes.size();
    net.Restart(1);
    ASSERT_TRUE(net.RunUntilHeight(4));
    EXPECT_TRUE(net.Agreement());
    EXPECT_TRUE(net.NoDoubleSign(1));
    EXPECT_GE(net.nodes[1]->sent_votes.size(), sent_before);
  }
}

TEST(BftCore, ReplayReemitsTheSameSignatures) {
  Loopback net({1, 1, 1, 1});
  net.StartAll();
  // Run until node 2 has signed something at height 1, then crash it and replay.
  // (two votes: the first is then re-emitted from the WAL, not from the guard).
  while (net.nodes[2]->sent_votes.size() < 2) ASSERT_TRUE(net.StepOnce());
  const codec::Vote before = net.nodes[2]->sent_votes.front();
  net.nodes[2]->down = true;
  net.now_ms += 5000;  // a vote signed anew would carry a later time
  net.Restart(2);
  // The replayed core re-broadcast exactly the vote it had signed (same signature,
  // same time), not a new one.
  size_t same = 0;
  for (const auto& v : net.nodes[2]->sent_votes)
    if (v.height == before.height && v.round == before.round && v.type == before.type) {
      EXPECT_EQ(v, before);
      ++same;
    }
  EXPECT_GE(same, 2u);
  ASSERT_TRUE(net.RunUntilHeight(3));
  EXPECT_TRUE(net.NoDoubleSign(2));
}

TEST(BftCore, LostWalWithTheGuardDoesNotDoubleSign) {
  for (size_t crash_after = 2; crash_after < 40; crash_after += 3) {
    SCOPED_TRACE("crash after " + std::to_string(crash_after) + " actions");
    Loopback net({1, 1, 1, 1});
    net.nodes[3]->crash_after = crash_after;
    net.StartAll();
    for (size_t e = 0; e < 100000 && !net.nodes[3]->down; ++e)
      if (!net.StepOnce()) break;
    net.Restart(3, /*lose_wal=*/true);
    ASSERT_TRUE(net.RunUntilHeight(4));
    EXPECT_TRUE(net.Agreement());
    EXPECT_TRUE(net.NoDoubleSign(3));
  }
}

TEST(BftCore, ReplayRefusesAWalAheadOfTheApplication) {
  Loopback net({1, 1, 1, 1});
  net.StartAll();
  ASSERT_TRUE(net.RunUntilHeight(2));
  Node& n = *net.nodes[0];
  // The app "lost" its last commit: start at height 2 while the WAL has height 2's end.
  BftStartState s = GenesisStart(net.net().set);
  auto app = std::make_unique<ToyApp>(net.net().set);
  auto core = BftCore::Create(net.config(), s, *app, n.signer.get(), n.guard);
  ASSERT_TRUE(core.has_value());
  auto r = (*core)->Start(net.now_ms, n.wal);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt);
}

TEST(BftCore, EquivocationIsProposedInABlockAndVerifiedByEveryone) {
  Loopback net({1, 1, 1, 1});
  net.StartAll();
  // Validator 0 also signs a prevote for a block that does not exist (a twin).
  const auto twin =
      MakeVote(net.net().keys[0], codec::VoteType::kPrevote, 1, 0, HashOf(0xee), 1'000'050);
  for (size_t i = 1; i < 4; ++i) net.Apply(i, net.nodes[i]->core->OnVote(twin, net.now_ms));
  ASSERT_TRUE(net.RunUntilHeight(6));
  EXPECT_TRUE(net.Agreement());
  size_t carried = 0;
  for (const auto& b : net.nodes[1]->app->committed) {
    for (const auto& ev : b.evidence) {
      ++carried;
      EXPECT_EQ(codec::EvidenceValidator(ev), AddrOf(net.net().keys[0]));
      EXPECT_EQ(codec::EvidenceHeight(ev), 1u);
      EXPECT_GT(b.header.height, 1u);
    }
  }
  EXPECT_EQ(carried, 1u);  // proposed once, then dropped from every pool
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(net.nodes[i]->core->Counters().equivocations_detected, 1u);
    EXPECT_TRUE(net.nodes[i]->core->PendingEvidence().empty());
  }
}

TEST(BftCore, EvidenceOlderThanTheAgeIsNotProposed) {
  BftConfig cfg = TestConfig();
  cfg.evidence_max_age_heights = 1;
  Loopback net({1, 1, 1, 1}, cfg);
  // Only validator 1 learns of the equivocation; everyone else stays unaware.
  net.StartAll();
  const auto a = MakeVote(net.net().keys[0], codec::VoteType::kPrecommit, 1, 7, HashOf(1));
  const auto b = MakeVote(net.net().keys[0], codec::VoteType::kPrecommit, 1, 7, HashOf(2));
  net.Apply(1, net.nodes[1]->core->OnVote(a, net.now_ms));
  net.Apply(1, net.nodes[1]->core->OnVote(b, net.now_ms));
  ASSERT_EQ(net.nodes[1]->core->PendingEvidence().size(), 1u);
  ASSERT_TRUE(net.RunUntilHeight(6));
  // Age 1: usable only at height 2, whose proposer is not validator 1 (round 0) unless
  // it happened to be; either way it is gone from the pool after height 3.
  EXPECT_TRUE(net.nodes[1]->core->PendingEvidence().empty());
  for (const auto& blk : net.nodes[0]->app->committed)
    for (const auto& ev : blk.evidence)
      EXPECT_EQ(blk.header.height, 2u) << codec::EvidenceHeight(ev);
}

TEST(BftCore, LaggingNodeCatchesUpFromCommittedBlocks) {
  Loopback net({1, 1, 1, 1});
  // Node 3 hears nothing until height 3 is committed by the others.
  net.filter = [&](size_t to, const Action&) {
    return to != 3 || net.nodes[0]->app->committed.size() >= 3;
  };
  net.StartAll();
  for (size_t e = 0; e < 100000 && net.nodes[0]->app->committed.size() < 3; ++e)
    ASSERT_TRUE(net.StepOnce());
  EXPECT_TRUE(net.nodes[3]->app->committed.empty());
  // Block sync: feed it the others' decided blocks with their certificates.
  for (size_t h = 0; h < 3; ++h) {
    auto r = net.nodes[3]->core->OnCommittedBlock(net.nodes[0]->app->committed[h],
                                                  net.nodes[0]->app->commits[h], net.now_ms);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    EXPECT_EQ(r->ignored, "");
    net.Apply(3, r);
  }
  EXPECT_EQ(net.nodes[3]->core->Counters().catchup_commits, 3u);
  ASSERT_TRUE(net.RunUntilHeight(6));
  EXPECT_TRUE(net.Agreement());
  // A certificate that does not verify is ignored.
  auto bad = net.nodes[0]->app->commits[5];
  bad.sigs.resize(1);
  auto r = net.nodes[0]->core->OnCommittedBlock(net.nodes[0]->app->committed[5], bad, net.now_ms);
  EXPECT_NE(r->ignored, "");
}

TEST(BftCore, ObserverFollowsWithoutSigning) {
  Loopback net({1, 1, 1});
  ToyApp observer_app(net.net().set);
  auto obs = BftCore::Create(net.config(), GenesisStart(net.net().set), observer_app, nullptr, {});
  ASSERT_TRUE(obs.has_value());
  EXPECT_FALSE((*obs)->IsValidator());
  auto start = (*obs)->Start(net.now_ms);
  ASSERT_TRUE(start.has_value());
  net.StartAll();
  ASSERT_TRUE(net.RunUntilHeight(3));
  for (const auto& n : net.nodes)
    for (size_t h = 0; h < 3; ++h) {
      auto r = (*obs)->OnCommittedBlock(n->app->committed[h], n->app->commits[h], net.now_ms);
      ASSERT_TRUE(r.has_value());
      for (const auto& a : r->actions) {
        EXPECT_FALSE(std::holds_alternative<BroadcastVote>(a));
        EXPECT_FALSE(std::holds_alternative<PersistSignGuard>(a));
      }
    }
  EXPECT_EQ(observer_app.committed.size(), 3u);
}

TEST(BftCore, ApplicationFailureStopsTheEngine) {
  auto net = MakeValidators({5});
  ToyApp app(net.set);
  app.fail_commit = true;
  KeyPairSigner signer(net.keys[0]);
  BftConfig cfg = TestConfig();
  cfg.commit_wait_ms = 0;
  auto core = BftCore::Create(cfg, GenesisStart(net.set), app, &signer, {});
  ASSERT_TRUE(core.has_value());
  auto r = (*core)->Start(1'000'000);
  ASSERT_FALSE(r.has_value());  // one validator decides inside Start and the commit fails
  EXPECT_EQ(r.error().code, base::ErrorCode::kIo);
}

TEST(BftCore, UnequalStakesCommitWithTheBigValidatorAndOneSmall) {
  // Powers 1, 1, 1, 7: validators 0..2 down is only 3 of 10; the 7 plus any one is > 2/3.
  Loopback net({1, 1, 1, 7});
  net.nodes[0]->down = true;
  net.nodes[1]->down = true;
  net.StartAll();
  ASSERT_TRUE(net.RunUntilHeight(4));
  EXPECT_TRUE(net.Agreement());
  for (const auto& c : net.nodes[3]->app->commits) EXPECT_LE(c.sigs.size(), 2u);
}

TEST(BftCore, AThirdOfThePowerDownStallsButNeverForks) {
  Loopback net({1, 1, 1, 1});
  net.nodes[0]->down = true;
  net.nodes[1]->down = true;  // half the power: no quorum
  net.StartAll();
  for (int e = 0; e < 3000; ++e)
    if (!net.StepOnce()) break;
  for (const auto& n : net.nodes) EXPECT_TRUE(n->app->committed.empty());
  // Alg.1 l.34: without 2f+1 prevotes of any kind not even the prevote timer starts,
  // so the live half waits in round 0's prevote step.
  EXPECT_EQ(net.nodes[2]->core->Round(), 0u);
  EXPECT_EQ(net.nodes[2]->core->Step(), TimeoutStep::kPrevote);
  // Heal: the two come back (fresh, nothing persisted), the network commits.
  net.Restart(0);
  net.Restart(1);
  ASSERT_TRUE(net.RunUntilHeight(2));
  EXPECT_TRUE(net.Agreement());
}

}  // namespace
}  // namespace gpunet::consensus
