// Shared fixtures of the BFT core tests: deterministic keys, validator sets, a toy
// application that builds real blocks (real hashes, real commit certificates) and an
// in-test loopback network that delivers every action to every core in order under a
// fake clock. The randomized simulator is tests/sim/; this is the smallest honest
// harness that drives several real cores.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "codec/encoding.h"
#include "codec/evidence.h"
#include "codec/hashes.h"
#include "consensus/bft.h"
#include "consensus/bft_commit.h"
#include "crypto/address.h"
#include "crypto/hash.h"
#include "util/keys.h"

namespace gpunet::consensus::testing {

inline constexpr const char* kChain = "bft-test";

/// Validator i's key. The seed is exact (0xb0, zeros, i) rather than
/// util/keys.h's numbered one: which hard cases bft_lossy_test's seeds reach
/// depends on the validators' addresses.
inline crypto::KeyPair KeyFor(uint8_t i) {
  crypto::Seed seed;
  seed[0] = 0xb0;
  seed[31] = i;
  return gpunet::testing::TestKey(seed);
}

/// Validators with the given powers; keys[i] has powers[i]. The set is canonical
/// (sorted by public key).
struct Network {
  std::vector<crypto::KeyPair> keys;
  codec::ValidatorSet set;
};

inline Network MakeValidators(const std::vector<uint64_t>& powers) {
  Network n;
  for (size_t i = 0; i < powers.size(); ++i) {
    n.keys.push_back(KeyFor(static_cast<uint8_t>(i + 1)));
    n.set.validators.push_back({n.keys.back().Public(), powers[i]});
  }
  std::sort(n.set.validators.begin(), n.set.validators.end(),
            [](const codec::Validator& a, const codec::Validator& b) {
              return a.public_key < b.public_key;
            });
  return n;
}

inline codec::Address AddrOf(const crypto::KeyPair& k) {
  return crypto::AddressOf(k.Public());
}

inline codec::Vote MakeVote(const crypto::KeyPair& key, codec::VoteType type, uint64_t height,
                            uint32_t round, const codec::BlockId& hash, uint64_t time_ms = 1000) {
  codec::Vote v;
  v.type = type;
  v.height = height;
  v.round = round;
  v.block_hash = hash;
  v.time_ms = time_ms;
  v.validator = AddrOf(key);
  codec::SignVote(v, kChain, key);
  return v;
}

inline codec::BlockId HashOf(uint8_t b) {
  codec::BlockId h;
  h.data.fill(b);
  return h;
}

/// A certificate for `hash` signed by the keys given (sorted by address as required).
inline codec::Commit MakeCommit(const std::vector<const crypto::KeyPair*>& signers, uint64_t height,
                                uint32_t round, const codec::BlockId& hash,
                                uint64_t time_ms = 1000) {
  codec::Commit c;
  c.height = height;
  c.round = round;
  c.block_hash = hash;
  for (const auto* k : signers) {
    codec::Vote v = MakeVote(*k, codec::VoteType::kPrecommit, height, round, hash, time_ms);
    c.sigs.push_back({v.validator, v.time_ms, v.signature});
  }
  std::sort(c.sigs.begin(), c.sigs.end(), [](const codec::CommitSig& a, const codec::CommitSig& b) {
    return a.validator < b.validator;
  });
  return c;
}

/// A toy ledger: blocks without txs whose state root names (height, round, proposer),
/// so different proposers make different blocks. It checks evidence with the codec
/// verifier, as the real ledger does, and can be told to reject blocks.
class ToyApp : public BftApplication {
 public:
  explicit ToyApp(codec::ValidatorSet set) : m_set(std::move(set)) {}

  base::Result<codec::Block> PrepareProposal(const BftProposalRequest& r) override {
    ++prepare_calls;
    codec::Block b;
    auto& h = b.header;
    h.chain_id = kChain;
    h.app_version = 1;
    h.height = r.height;
    h.time_ms = r.time_ms;
    h.last_block_hash = m_last_hash;
    h.tx_root = codec::TxRootOfHashes({});
    base::Bytes salt = {static_cast<uint8_t>(r.round), static_cast<uint8_t>(r.height),
                        static_cast<uint8_t>(prepare_calls)};
    salt.insert(salt.end(), r.proposer.data.begin(), r.proposer.data.end());
    h.state_root = crypto::Blake2b256(salt);
    h.proposer = r.proposer;
    h.validator_set_hash = codec::ValidatorSetHash(r.validators);
    h.next_validator_set_hash = h.validator_set_hash;
    h.last_commit_hash = codec::CommitHash(r.last_commit);
    h.evidence_hash = codec::EvidenceHash(r.evidence);
    b.evidence = r.evidence;
    b.last_commit = r.last_commit;
    return b;
  }

  base::Result<BftVerdict> ProcessProposal(const codec::Block& block,
                                           const BftBlockContext& ctx) override {
    ++process_calls;
    processed.push_back(codec::BlockHash(block.header));
    if (reject.contains(codec::BlockHash(block.header))) return BftVerdict{false, "told to"};
    if (reject_all) return BftVerdict{false, "rejecting everything"};
    if (block.header.evidence_hash != codec::EvidenceHash(block.evidence))
      return BftVerdict{false, "evidence hash"};
    for (const auto& ev : block.evidence) {
      codec::EvidenceContext ec{kChain, &ctx.validators, block.header.height, 100000};
      if (auto ok = codec::VerifyEvidence(ev, ec); !ok)
        return BftVerdict{false, ok.error().message};
    }
    return BftVerdict{true, ""};
  }

  base::Status FinalizeAndCommit(const codec::Block& block, const codec::Commit& commit,
                                 const BftBlockContext&) override {
    if (fail_commit) return base::Fail(base::ErrorCode::kIo, "disk full (test)");
    EXPECT_EQ(block.header.height, committed.size() + 1);
    EXPECT_TRUE(VerifyCommit(commit, m_set, kChain, codec::BlockHash(block.header)).has_value());
    committed.push_back(block);
    commits.push_back(commit);
    m_last_hash = codec::BlockHash(block.header);
    return base::Ok();
  }

  base::Result<codec::ValidatorSet> ValidatorSetAt(uint64_t) override { return m_set; }

  codec::BlockId LastHash() const { return m_last_hash; }

  std::vector<codec::Block> committed;
  std::vector<codec::Commit> commits;
  std::vector<codec::BlockId> processed;
  std::set<codec::BlockId> reject;
  bool reject_all = false;
  bool fail_commit = false;
  uint64_t prepare_calls = 0;
  uint64_t process_calls = 0;

 private:
  codec::ValidatorSet m_set;
  codec::BlockId m_last_hash;
};

inline BftConfig TestConfig() {
  BftConfig c;
  c.chain_id = kChain;
  c.timeout_propose_ms = 1000;
  c.timeout_propose_delta_ms = 500;
  c.timeout_prevote_ms = 1000;
  c.timeout_prevote_delta_ms = 500;
  c.timeout_precommit_ms = 1000;
  c.timeout_precommit_delta_ms = 500;
  c.commit_wait_ms = 100;
  c.genesis_time_ms = 1'000'000;
  return c;
}

inline BftStartState GenesisStart(const codec::ValidatorSet& set) {
  BftStartState s;
  s.height = 1;
  s.validators = set;
  s.last_block_time_ms = 1'000'000;
  return s;
}

/// One node of the loopback: its app, signer, core and what it persisted.
struct Node {
  std::unique_ptr<ToyApp> app;
  std::unique_ptr<KeyPairSigner> signer;
  std::unique_ptr<BftCore> core;
  std::vector<WalRecord> wal;
  SignGuardState guard;
  std::vector<codec::Vote> sent_votes;
  std::vector<codec::Proposal> sent_proposals;
  bool down = false;
  /// Crash after this many more actions of a step (the rest are lost).
  std::optional<size_t> crash_after;
};

/// N validators, every broadcast delivered to every other up node in FIFO order;
/// timers fire in time order when no message is in flight (fake clock).
class Loopback {
 public:
  explicit Loopback(const std::vector<uint64_t>& powers, BftConfig config = TestConfig())
      : m_net(MakeValidators(powers)), m_config(config) {
    for (const auto& key : m_net.keys) {
      auto node = std::make_unique<Node>();
      node->app = std::make_unique<ToyApp>(m_net.set);
      node->signer = std::make_unique<KeyPairSigner>(key);
      auto core = BftCore::Create(m_config, GenesisStart(m_net.set), *node->app, node->signer.get(),
                                  SignGuardState{});
      EXPECT_TRUE(core.has_value()) << (core ? "" : core.error().ToString());
      node->core = std::move(*core);
      nodes.push_back(std::move(node));
    }
  }

  void StartAll() {
    for (size_t i = 0; i < nodes.size(); ++i) Apply(i, nodes[i]->core->Start(now_ms));
  }

  /// Runs until every up node has committed `height` or `max_events` pass.
  bool RunUntilHeight(uint64_t height, size_t max_events = 200000) {
    for (size_t e = 0; e < max_events; ++e) {
      bool all = true;
      for (const auto& n : nodes)
        if (!n->down && n->app->committed.size() < height) all = false;
      if (all) return true;
      if (!StepOnce()) return false;
    }
    return false;
  }

  /// Delivers one message, or fires the earliest timer. False when nothing is left.
  bool StepOnce() {
    if (!m_queue.empty()) {
      auto [to, action] = std::move(m_queue.front());
      m_queue.pop_front();
      Deliver(to, action);
      return true;
    }
    if (m_timers.empty() && gossip_interval_ms == 0) return false;
    if (gossip_interval_ms > 0 &&
        (m_timers.empty() || m_next_gossip_ms <= m_timers.begin()->first.first)) {
      // Re-send timer: every up node re-broadcasts what BftCore::Gossip returns.
      now_ms = std::max(now_ms, m_next_gossip_ms);
      m_next_gossip_ms = now_ms + gossip_interval_ms;
      for (size_t i = 0; i < nodes.size(); ++i)
        if (!nodes[i]->down) {
          BftStep gossip;
          gossip.actions = nodes[i]->core->Gossip();
          Apply(i, gossip, /*gossip=*/true);
        }
      return true;
    }
    auto it = m_timers.begin();
    auto [when, seq] = it->first;
    auto [to, timeout] = it->second;
    m_timers.erase(it);
    now_ms = std::max(now_ms, when);
    if (!nodes[to]->down) Apply(to, nodes[to]->core->OnTimeout(timeout, now_ms));
    return true;
  }

  void Deliver(size_t to, const Action& a) {
    Node& n = *nodes[to];
    if (n.down) return;
    if (filter && !filter(to, a)) return;
    if (const auto* p = std::get_if<BroadcastProposal>(&a))
      Apply(to, n.core->OnProposal(p->proposal, p->block, now_ms));
    else if (const auto* v = std::get_if<BroadcastVote>(&a))
      Apply(to, n.core->OnVote(v->vote, now_ms));
    else if (const auto* c = std::get_if<BroadcastCommit>(&a))
      SyncBlocks(to, c->commit.height);
  }

  /// Block sync, as a node's block store would serve it: heights the node lacks, up
  /// to `height`, from any node that committed them, through OnCommittedBlock.
  void SyncBlocks(size_t to, uint64_t height) {
    Node& n = *nodes[to];
    while (!n.down && n.core->Height() <= height) {
      const uint64_t h = n.core->Height();
      const Node* source = nullptr;
      for (const auto& other : nodes)
        if (other->app->committed.size() >= h) source = other.get();
      if (source == nullptr) return;
      Apply(to, n.core->OnCommittedBlock(source->app->committed[h - 1], source->app->commits[h - 1],
                                         now_ms));
      if (n.core->Height() == h) return;  // ignored: do not spin
    }
  }

  /// Executes a node's actions in order. `gossip`: re-sends (others' messages among
  /// them), not counted as what the node signed.
  void Apply(size_t from, const base::Result<BftStep>& step, bool gossip = false) {
    ASSERT_TRUE(step.has_value()) << step.error().ToString();
    Node& n = *nodes[from];
    for (const auto& a : step->actions) {
      if (n.crash_after) {
        if (*n.crash_after == 0) {
          n.down = true;
          n.crash_after.reset();
          return;
        }
        --*n.crash_after;
      }
      if (n.down) return;
      if (const auto* w = std::get_if<WriteWal>(&a)) {
        n.wal.push_back(w->record);
      } else if (const auto* g = std::get_if<PersistSignGuard>(&a)) {
        n.guard = g->state;
      } else if (const auto* t = std::get_if<ScheduleTimeout>(&a)) {
        m_timers.emplace(std::make_pair(now_ms + t->duration_ms, m_seq++),
                         std::make_pair(from, t->timeout));
      } else if (std::holds_alternative<Decided>(a)) {
        decided.push_back(
            {from, std::get<Decided>(a).commit.height, std::get<Decided>(a).commit.block_hash});
      } else {
        if (const auto* v = std::get_if<BroadcastVote>(&a); v && !gossip)
          n.sent_votes.push_back(v->vote);
        if (const auto* p = std::get_if<BroadcastProposal>(&a); p && !gossip)
          n.sent_proposals.push_back(p->proposal);
        for (size_t to = 0; to < nodes.size(); ++to)
          if (to != from) m_queue.emplace_back(to, a);
      }
    }
  }

  /// Restarts node i from what it persisted: its app's committed blocks, its WAL
  /// (unless lost) and its sign guard.
  void Restart(size_t i, bool lose_wal = false) {
    Node& n = *nodes[i];
    if (lose_wal) n.wal.clear();
    BftStartState s = GenesisStart(m_net.set);
    const auto& app = *n.app;
    s.height = app.committed.size() + 1;
    if (!app.committed.empty()) {
      s.last_validators = m_net.set;
      s.last_commit = app.commits.back();
      s.last_block_hash = app.LastHash();
      s.last_block_time_ms = app.committed.back().header.time_ms;
    }
    auto core = BftCore::Create(m_config, s, *n.app, n.signer.get(), n.guard);
    ASSERT_TRUE(core.has_value()) << core.error().ToString();
    n.core = std::move(*core);
    n.down = false;
    Apply(i, n.core->Start(now_ms, n.wal));
  }

  /// Node i never broadcast two different votes (or proposals) for one
  /// (height, round, step), across all its restarts.
  bool NoDoubleSign(size_t i) const {
    std::map<std::tuple<uint64_t, uint32_t, int>, codec::BlockId> seen;
    for (const auto& v : nodes[i]->sent_votes) {
      auto [it, fresh] =
          seen.emplace(std::make_tuple(v.height, v.round, int(v.type)), v.block_hash);
      if (!fresh && it->second != v.block_hash) return false;
    }
    for (const auto& p : nodes[i]->sent_proposals) {
      auto [it, fresh] = seen.emplace(std::make_tuple(p.height, p.round, 0), p.block_hash);
      if (!fresh && it->second != p.block_hash) return false;
    }
    return true;
  }

  /// No two nodes decided different blocks at one height.
  bool Agreement() const {
    std::map<uint64_t, codec::BlockId> by_height;
    for (const auto& d : decided) {
      auto [it, fresh] = by_height.emplace(d.height, d.hash);
      if (!fresh && it->second != d.hash) return false;
    }
    return true;
  }

  size_t Index(const codec::Address& a) const {
    for (size_t i = 0; i < m_net.keys.size(); ++i)
      if (AddrOf(m_net.keys[i]) == a) return i;
    return SIZE_MAX;
  }

  struct DecidedAt {
    size_t node;
    uint64_t height;
    codec::BlockId hash;
  };
  std::vector<std::unique_ptr<Node>> nodes;
  std::vector<DecidedAt> decided;
  uint64_t now_ms = 1'000'000;
  /// Every this many ms (of fake time, when no message is in flight) each node
  /// re-broadcasts its Gossip(); 0 = never.
  uint64_t gossip_interval_ms = 500;
  /// Return false to drop the message to `to`.
  std::function<bool(size_t to, const Action&)> filter;
  const Network& net() const { return m_net; }
  const BftConfig& config() const { return m_config; }
  size_t QueueSize() const { return m_queue.size(); }

 private:
  Network m_net;
  BftConfig m_config;
  std::deque<std::pair<size_t, Action>> m_queue;
  std::map<std::pair<uint64_t, uint64_t>, std::pair<size_t, TimeoutInfo>> m_timers;
  uint64_t m_seq = 0;
  uint64_t m_next_gossip_ms = 0;
};

}  // namespace gpunet::consensus::testing
