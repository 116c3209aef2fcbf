// One real core, the other validators played by the test with their real keys, so
// each rule of Alg.1 can be driven exactly: locking, unlocking on a newer POL, round
// skip, growing timeouts, equivocation, the sign guard.
#include <gtest/gtest.h>

#include "unit/consensus/bft_test_util.h"

namespace gpunet::consensus {
namespace {

using namespace testing;
using codec::VoteType;

class OneCore : public ::testing::Test {
 protected:
  // Four validators of power 1 (a quorum is 3). The core is the proposer of round 3,
  // so rounds 0..2 are proposed by the test.
  Network net = MakeValidators({1, 1, 1, 1});
  std::unique_ptr<ToyApp> app;
  std::unique_ptr<ToyApp> maker;  // builds the other proposers' blocks
  std::unique_ptr<KeyPairSigner> signer;
  std::unique_ptr<BftCore> core;
  size_t me = 0;
  std::vector<Action> actions;  // everything the core emitted
  uint64_t now = 2'000'000;

  void SetUp() override { Build(SignGuardState{}); }

  void Build(SignGuardState guard, BftConfig config = TestConfig()) {
    auto schedule = ProposerSchedule::AtHeight(net.set, 1).ProposersForRounds(4);
    for (size_t i = 0; i < net.keys.size(); ++i)
      if (AddrOf(net.keys[i]) == schedule[3]) me = i;
    app = std::make_unique<ToyApp>(net.set);
    maker = std::make_unique<ToyApp>(net.set);
    signer = std::make_unique<KeyPairSigner>(net.keys[me]);
    auto c = BftCore::Create(config, GenesisStart(net.set), *app, signer.get(), guard);
    ASSERT_TRUE(c.has_value()) << c.error().ToString();
    core = std::move(*c);
    Take(core->Start(now));
  }

  void Take(const base::Result<BftStep>& step) {
    ASSERT_TRUE(step.has_value()) << step.error().ToString();
    EXPECT_EQ(step->ignored, "");
    actions.insert(actions.end(), step->actions.begin(), step->actions.end());
  }

  const crypto::KeyPair& KeyOf(const codec::Address& a) {
    for (const auto& k : net.keys)
      if (AddrOf(k) == a) return k;
    ADD_FAILURE() << "no key";
    return net.keys[0];
  }
  // The other validators, in index order.
  std::vector<size_t> Others() {
    std::vector<size_t> o;
    for (size_t i = 0; i < net.keys.size(); ++i)
      if (i != me) o.push_back(i);
    return o;
  }

  codec::Block MakeBlock(uint32_t round) {
    BftProposalRequest r;
    r.height = 1;
    r.round = round;
    r.time_ms = TestConfig().genesis_time_ms + 1;
    r.proposer = core->ProposerOf(round);
    r.validators = net.set;
    return *maker->PrepareProposal(r);
  }

  void Propose(uint32_t round, const codec::Block& block, int32_t pol_round = -1) {
    codec::Proposal p;
    p.height = 1;
    p.round = round;
    p.pol_round = pol_round;
    p.block_hash = codec::BlockHash(block.header);
    p.time_ms = block.header.time_ms;
    codec::SignProposal(p, kChain, KeyOf(core->ProposerOf(round)));
    Take(core->OnProposal(p, block, now));
  }

  void VoteFrom(size_t who, VoteType type, uint32_t round, const codec::BlockId& hash) {
    Take(core->OnVote(MakeVote(net.keys[who], type, 1, round, hash), now));
  }

  void Timeout(uint32_t round, TimeoutStep step) {
    auto r = core->OnTimeout(TimeoutInfo{1, round, step}, now);
    ASSERT_TRUE(r.has_value());
    actions.insert(actions.end(), r->actions.begin(), r->actions.end());
  }

  // The core's own vote of (round, type), if it sent one.
  std::optional<codec::Vote> Sent(VoteType type, uint32_t round) {
    std::optional<codec::Vote> out;
    for (const auto& a : actions)
      if (const auto* v = std::get_if<BroadcastVote>(&a))
        if (v->vote.type == type && v->vote.round == round &&
            v->vote.validator == AddrOf(net.keys[me])) {
          EXPECT_FALSE(out.has_value() && out->block_hash != v->vote.block_hash) << "double sign";
          out = v->vote;
        }
    return out;
  }

  // Round 0: the core prevotes and locks `v` (prevotes from two others), then the
  // round ends with nil precommits of the others.
  codec::BlockId LockOnRoundZero() {
    const codec::Block v = MakeBlock(0);
    const codec::BlockId vh = codec::BlockHash(v.header);
    Propose(0, v);
    EXPECT_EQ(Sent(VoteType::kPrevote, 0)->block_hash, vh);  // l.24
    auto o = Others();
    VoteFrom(o[0], VoteType::kPrevote, 0, vh);
    VoteFrom(o[1], VoteType::kPrevote, 0, vh);
    EXPECT_EQ(core->LockedRound(), 0);  // l.38-39
    EXPECT_EQ(core->LockedValue(), vh);
    EXPECT_EQ(Sent(VoteType::kPrecommit, 0)->block_hash, vh);  // l.40
    VoteFrom(o[0], VoteType::kPrecommit, 0, codec::BlockId{});
    VoteFrom(o[1], VoteType::kPrecommit, 0, codec::BlockId{});
    Timeout(0, TimeoutStep::kPrecommit);  // l.65-67
    EXPECT_EQ(core->Round(), 1u);
    return vh;
  }
};

TEST_F(OneCore, LockedValidatorPrevotesNilForAnotherValue) {
  const codec::BlockId v = LockOnRoundZero();
  const codec::Block w = MakeBlock(1);
  ASSERT_NE(codec::BlockHash(w.header), v);
  Propose(1, w);  // pol_round -1: l.22-26 with lockedValue != w
  auto pv = Sent(VoteType::kPrevote, 1);
  ASSERT_TRUE(pv.has_value());
  EXPECT_TRUE(pv->block_hash.IsZero());
  EXPECT_EQ(core->Counters().prevotes_against_lock, 1u);
  EXPECT_EQ(core->LockedValue(), v);
}

TEST_F(OneCore, LockedValidatorPrevotesItsLockedValueAgain) {
  const codec::BlockId v = LockOnRoundZero();
  // Round 1's proposer re-proposes v (taken from the core's WAL records) with its
  // POL round 0.
  codec::Block original;
  bool found = false;
  for (const auto& a : actions)
    if (const auto* w = std::get_if<WriteWal>(&a))
      if (const auto* p = std::get_if<WalProposal>(&w->record))
        if (p->proposal.round == 0) {
          original = p->block;
          found = true;
        }
  ASSERT_TRUE(found);
  ASSERT_EQ(codec::BlockHash(original.header), v);
  Propose(1, original, 0);  // l.28: vr = 0 has 3 prevotes for v (two others + ours)
  EXPECT_EQ(Sent(VoteType::kPrevote, 1)->block_hash, v);
}

TEST_F(OneCore, NewerPolUnlocks) {
  const codec::BlockId v = LockOnRoundZero();
  // Round 1: w is proposed; the core prevotes nil (locked on v), two others prevote w:
  // no POL yet, so the prevote timeout makes it precommit nil.
  const codec::Block w = MakeBlock(1);
  const codec::BlockId wh = codec::BlockHash(w.header);
  Propose(1, w);
  auto o = Others();
  VoteFrom(o[0], VoteType::kPrevote, 1, wh);
  VoteFrom(o[1], VoteType::kPrevote, 1, wh);
  Timeout(1, TimeoutStep::kPrevote);
  EXPECT_TRUE(Sent(VoteType::kPrecommit, 1)->block_hash.IsZero());
  // The third prevote for w arrives late: a POL for w in round 1 (l.36 with
  // step = precommit: validValue = w, validRound = 1, the lock stays on v).
  VoteFrom(o[2], VoteType::kPrevote, 1, wh);
  EXPECT_EQ(core->ValidValue(), wh);
  EXPECT_EQ(core->ValidRound(), 1);
  EXPECT_EQ(core->LockedValue(), v);
  // Round 2: w re-proposed with vr = 1 >= lockedRound 0 -> prevote w (l.28-30).
  Timeout(1, TimeoutStep::kPrecommit);
  ASSERT_EQ(core->Round(), 2u);
  Propose(2, w, 1);
  EXPECT_EQ(Sent(VoteType::kPrevote, 2)->block_hash, wh);
  EXPECT_EQ(core->Counters().pol_unlocks, 1u);
}

TEST_F(OneCore, PolOlderThanTheLockDoesNotUnlock) {
  // Round 0: w gets a POL (three others prevote it) but the core prevoted nil
  // because w arrived too late; then round 1 locks v; round 2 re-proposes w with
  // vr = 0 < lockedRound 1 -> nil.
  const codec::Block w = MakeBlock(0);
  const codec::BlockId wh = codec::BlockHash(w.header);
  Timeout(0, TimeoutStep::kPropose);  // l.57-60: prevote nil
  EXPECT_TRUE(Sent(VoteType::kPrevote, 0)->block_hash.IsZero());
  auto o = Others();
  for (size_t i : o) VoteFrom(i, VoteType::kPrevote, 0, wh);
  Propose(0, w);  // POL for w in round 0 now known; l.36 sets validValue (step prevote: locks!)
  // The core was at step prevote when the POL completed with the proposal: l.36-41
  // locks w. To get the "older POL" case, lock v in round 1 afterwards.
  ASSERT_EQ(core->LockedValue(), wh);
  for (size_t i : o) VoteFrom(i, VoteType::kPrecommit, 0, codec::BlockId{});
  Timeout(0, TimeoutStep::kPrecommit);
  const codec::Block v = MakeBlock(1);
  const codec::BlockId vh = codec::BlockHash(v.header);
  Propose(1, v, -1);  // locked on w (round 0): nil
  EXPECT_TRUE(Sent(VoteType::kPrevote, 1)->block_hash.IsZero());
  for (size_t i : o) VoteFrom(i, VoteType::kPrevote, 1, vh);  // POL for v in round 1
  // step = prevote and POL(v, 1): l.36 relocks on v at round 1.
  EXPECT_EQ(core->LockedValue(), vh);
  EXPECT_EQ(core->LockedRound(), 1);
  EXPECT_EQ(core->Counters().locks_changed, 1u);
  for (size_t i : o) VoteFrom(i, VoteType::kPrecommit, 1, codec::BlockId{});
  Timeout(1, TimeoutStep::kPrecommit);
  ASSERT_EQ(core->Round(), 2u);
  Propose(2, w, 0);  // vr = 0 < lockedRound 1 and w != lockedValue: l.32 nil
  EXPECT_TRUE(Sent(VoteType::kPrevote, 2)->block_hash.IsZero());
}

TEST_F(OneCore, InvalidProposalGetsANilPrevote) {
  const codec::Block bad = MakeBlock(0);
  app->reject.insert(codec::BlockHash(bad.header));
  Propose(0, bad);
  EXPECT_TRUE(Sent(VoteType::kPrevote, 0)->block_hash.IsZero());
  // A block whose header breaks a rule the core owns never reaches the app.
  codec::Block wrong_time = MakeBlock(0);
  wrong_time.header.time_ms += 1;
  const uint64_t calls = app->process_calls;
  Timeout(0, TimeoutStep::kPrecommit);
  codec::Proposal p;
  p.height = 1;
  p.round = 1;
  p.block_hash = codec::BlockHash(wrong_time.header);
  p.time_ms = wrong_time.header.time_ms;
  codec::SignProposal(p, kChain, KeyOf(core->ProposerOf(1)));
  Take(core->OnProposal(p, wrong_time, now));
  EXPECT_TRUE(Sent(VoteType::kPrevote, 1)->block_hash.IsZero());
  EXPECT_EQ(app->process_calls, calls);
}

TEST_F(OneCore, BadInputsAreIgnoredWithAReason) {
  const codec::Block b = MakeBlock(0);
  codec::Proposal p;
  p.height = 1;
  p.block_hash = codec::BlockHash(b.header);
  p.time_ms = b.header.time_ms;
  // Signed by someone who is not round 0's proposer.
  size_t not_proposer = me;
  codec::SignProposal(p, kChain, net.keys[not_proposer]);
  auto r = core->OnProposal(p, b, now);
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->ignored, "");
  EXPECT_TRUE(r->actions.empty());
  // A vote by a non-member, a forged vote, a vote of an old height.
  auto stranger = KeyFor(222);
  r = core->OnVote(MakeVote(stranger, VoteType::kPrevote, 1, 0, HashOf(1)), now);
  EXPECT_NE(r->ignored.find("not a validator"), std::string::npos);
  auto forged = MakeVote(net.keys[Others()[0]], VoteType::kPrevote, 1, 0, HashOf(1));
  forged.block_hash = HashOf(2);
  r = core->OnVote(forged, now);
  EXPECT_NE(r->ignored, "");
  r = core->OnVote(MakeVote(net.keys[Others()[0]], VoteType::kPrevote, 0, 0, HashOf(1)), now);
  EXPECT_NE(r->ignored, "");
  EXPECT_EQ(core->Counters().messages_ignored, 4u);
  EXPECT_TRUE(core->PendingEvidence().empty());
}

TEST_F(OneCore, RoundSkipNeedsMoreThanAThirdOfThePower) {
  auto o = Others();
  VoteFrom(o[0], VoteType::kPrevote, 5, HashOf(3));  // 1 of 4: not > 1/3
  EXPECT_EQ(core->Round(), 0u);
  VoteFrom(o[1], VoteType::kPrecommit, 7, codec::BlockId{});  // 2 of 4 at rounds >= 5
  EXPECT_EQ(core->Round(), 5u);  // l.55: the highest round f+1 have reached
  EXPECT_EQ(core->Counters().round_skips, 1u);
  // Messages far ahead count for the skip even though they are not stored.
  VoteFrom(o[0], VoteType::kPrevote, 500, HashOf(3));
  VoteFrom(o[2], VoteType::kPrevote, 600, HashOf(3));
  EXPECT_EQ(core->Round(), 500u);
}

TEST_F(OneCore, TimeoutsGrowPerRound) {
  std::vector<uint64_t> propose_ms;
  for (uint32_t r = 0; r < 4; ++r) Timeout(r, TimeoutStep::kPrecommit);
  for (const auto& a : actions)
    if (const auto* t = std::get_if<ScheduleTimeout>(&a))
      if (t->timeout.step == TimeoutStep::kPropose) propose_ms.push_back(t->duration_ms);
  EXPECT_EQ(propose_ms, (std::vector<uint64_t>{1000, 1500, 2000, 2500, 3000}));
  BftConfig c = TestConfig();
  EXPECT_EQ(c.TimeoutMs(TimeoutStep::kPrevote, 10), 1000u + 10 * 500);
  EXPECT_EQ(c.TimeoutMs(TimeoutStep::kCommitWait, 10), c.commit_wait_ms);
  c.timeout_precommit_delta_ms = UINT64_MAX;
  EXPECT_EQ(c.TimeoutMs(TimeoutStep::kPrecommit, 3), UINT64_MAX);  // saturates
  // A stale timeout changes nothing.
  auto stale = core->OnTimeout(TimeoutInfo{1, 0, TimeoutStep::kPropose}, now);
  EXPECT_EQ(stale->ignored, "stale timeout");
}

TEST_F(OneCore, EquivocationBecomesCanonicalEvidence) {
  auto o = Others();
  VoteFrom(o[0], VoteType::kPrevote, 0, HashOf(0x77));
  VoteFrom(o[0], VoteType::kPrevote, 0, HashOf(0x11));  // conflicting
  VoteFrom(o[0], VoteType::kPrevote, 0, HashOf(0x11));  // repeated: still one item
  ASSERT_EQ(core->PendingEvidence().size(), 1u);
  EXPECT_EQ(core->Counters().equivocations_detected, 1u);
  const auto ev = std::get<codec::DuplicateVoteEvidence>(core->PendingEvidence()[0]);
  EXPECT_EQ(ev.vote_a.block_hash, HashOf(0x11));
  EXPECT_EQ(ev.vote_b.block_hash, HashOf(0x77));
  codec::EvidenceContext ctx{kChain, &net.set, 2, 10};
  EXPECT_TRUE(codec::VerifyEvidence(ev, ctx).has_value());
  // The validator is counted once in the "any value" total: two more prevotes make 3
  // of 4, which only starts the prevote timer — and the core is still in propose.
  VoteFrom(o[1], VoteType::kPrevote, 0, HashOf(0x11));
  VoteFrom(o[2], VoteType::kPrevote, 0, HashOf(0x11));
  EXPECT_EQ(core->Step(), TimeoutStep::kPropose);  // no timeout fired yet, still propose
  // Evidence received by gossip: verified, deduplicated.
  EXPECT_NE(core->OnEvidence(ev).ignored, "");  // already known
  auto other = *codec::MakeDuplicateVoteEvidence(
      MakeVote(net.keys[o[1]], VoteType::kPrecommit, 1, 0, HashOf(1)),
      MakeVote(net.keys[o[1]], VoteType::kPrecommit, 1, 0, HashOf(2)));
  EXPECT_NE(core->OnEvidence(other).ignored, "");  // about the current height: not yet
  auto forged = ev;
  forged.vote_b.signature.data[3] ^= 1;
  EXPECT_NE(core->OnEvidence(forged).ignored, "");
}

TEST_F(OneCore, AnEquivocatorCountsForEachValueItSigned) {
  // o[0] prevotes some other hash first, then the proposal's block. Alg.1 counts
  // messages: its second prevote still counts for v, so v has a POL (o[0], o[1] and
  // the core) whatever order the equivocation arrived in, and the core locks.
  const codec::Block b = MakeBlock(0);
  const codec::BlockId v = codec::BlockHash(b.header);
  auto o = Others();
  VoteFrom(o[0], VoteType::kPrevote, 0, HashOf(0x99));
  Propose(0, b);
  VoteFrom(o[0], VoteType::kPrevote, 0, v);
  EXPECT_EQ(core->PendingEvidence().size(), 1u);
  EXPECT_EQ(core->LockedRound(), -1);
  VoteFrom(o[1], VoteType::kPrevote, 0, v);
  EXPECT_EQ(core->LockedValue(), v);
  // Its precommit for v after one for nil also counts, and the certificate carries it.
  VoteFrom(o[0], VoteType::kPrecommit, 0, codec::BlockId{});
  VoteFrom(o[0], VoteType::kPrecommit, 0, v);
  VoteFrom(o[1], VoteType::kPrecommit, 0, v);
  ASSERT_EQ(app->commits.size(), 1u);
  EXPECT_EQ(app->commits[0].sigs.size(), 3u);
  EXPECT_TRUE(VerifyCommit(app->commits[0], net.set, kChain, v).has_value());
}

TEST_F(OneCore, SignGuardRefusesToSignBackwards) {
  // The guard says this key signed a precommit at (1, 5): nothing below may be
  // signed, even though the WAL is empty (lost).
  SignGuardState g;
  g.public_key = net.keys[me].Public();
  g.height = 1;
  g.round = 5;
  g.step = kSignStepPrecommit;
  g.block_hash = HashOf(4);
  actions.clear();
  Build(g);
  const codec::Block b = MakeBlock(0);
  Propose(0, b);
  EXPECT_FALSE(Sent(VoteType::kPrevote, 0).has_value());
  Timeout(0, TimeoutStep::kPropose);
  EXPECT_FALSE(Sent(VoteType::kPrevote, 0).has_value());
  EXPECT_GE(core->Counters().signatures_refused, 1u);
  for (const auto& a : actions) EXPECT_FALSE(std::holds_alternative<PersistSignGuard>(a));
  // Once the network is at round 6 the core signs again.
  auto o = Others();
  VoteFrom(o[0], VoteType::kPrevote, 6, codec::BlockId{});
  VoteFrom(o[1], VoteType::kPrevote, 6, codec::BlockId{});
  ASSERT_EQ(core->Round(), 6u);
  Timeout(6, TimeoutStep::kPropose);
  EXPECT_TRUE(Sent(VoteType::kPrevote, 6).has_value());
}

TEST_F(OneCore, SignGuardOfAnotherKeyIsRefused) {
  SignGuardState g;
  g.public_key = KeyFor(99).Public();
  g.height = 1;
  auto c = BftCore::Create(TestConfig(), GenesisStart(net.set), *app, signer.get(), g);
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("another key"), std::string::npos);
}

TEST(BftCreate, RejectsABadStartState) {
  auto net = MakeValidators({1, 1});
  ToyApp app(net.set);
  BftConfig cfg = TestConfig();
  EXPECT_FALSE(BftCore::Create(cfg, GenesisStart(codec::ValidatorSet{}), app, nullptr, {}));
  BftStartState s = GenesisStart(net.set);
  s.height = 3;  // no last commit
  EXPECT_FALSE(BftCore::Create(cfg, s, app, nullptr, {}));
  s.last_validators = net.set;
  s.last_commit = MakeCommit({&net.keys[0]}, 2, 0, HashOf(1));  // 1 of 2: not > 2/3
  s.last_block_hash = HashOf(1);
  EXPECT_FALSE(BftCore::Create(cfg, s, app, nullptr, {}));
  s.last_commit = MakeCommit({&net.keys[0], &net.keys[1]}, 2, 0, HashOf(1));
  EXPECT_TRUE(BftCore::Create(cfg, s, app, nullptr, {}).has_value());
  cfg.chain_id = "";
  EXPECT_FALSE(BftCore::Create(cfg, GenesisStart(net.set), app, nullptr, {}));
}

}  // namespace
}  // namespace gpunet::consensus
