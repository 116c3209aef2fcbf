// Random and fixed values of every codec type for round-trip, property and golden
// tests. All randomness from base::SeededRng, so a failing seed reproduces.
#pragma once

#include <algorithm>
#include <string>

#include "base/clock.h"
#include "base/limits.h"
#include "codec/hashes.h"
#include "codec/types.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"
#include "util/keys.h"

namespace gpunet::codec::testing {

class RandomValues {
 public:
  explicit RandomValues(uint64_t seed) : m_rng(seed) {}

  uint64_t U64() {
    // Mix small and extreme values: varints and limits live at the edges.
    switch (m_rng.Below(4)) {
      case 0:
        return m_rng.Below(300);
      case 1:
        return UINT64_MAX - m_rng.Below(3);
      default:
        return m_rng.Next();
    }
  }
  uint32_t U32() { return static_cast<uint32_t>(U64()); }
  size_t Below(size_t n) { return static_cast<size_t>(m_rng.Below(n)); }

  template <size_t N>
  base::FixedBytes<N> Fixed() {
    base::FixedBytes<N> out;
    if (m_rng.Below(8) == 0) return out;  // all zero (nil hashes) now and then
    for (auto& b : out) b = static_cast<uint8_t>(m_rng.Next());
    return out;
  }

  std::string Ident(size_t max) {
    size_t n = 1 + Below(max);
    std::string s;
    for (size_t i = 0; i < n; ++i) s += static_cast<char>(0x21 + Below(0x7e - 0x21 + 1));
    return s;
  }

  /// Text with ASCII and 2-, 3- and 4-byte UTF-8 sequences, at most max bytes.
  std::string Text(size_t max) {
    static const char* const kPieces[] = {"a",
                                          "Z",
                                          " ",
                                          "~",
                                          "\xc3\xa9",
                                          "\xe2\x82\xac",
                                          "\xf0\x9f\x9a\x80",
                                          "\xed\x9f\xbf",
                                          "\xf4\x8f\xbf\xbf"};
    std::string s;
    size_t target = Below(max + 1);
    while (true) {
      std::string piece = kPieces[Below(std::size(kPieces))];
      if (s.size() + piece.size() > target) break;
      s += piece;
    }
    return s;
  }

  Msg RandomMsg() { return MsgSend{.to = Fixed<20>(), .amount_ugpn = U64()}; }

  TxBody RandomTxBody() {
    TxBody b;
    b.chain_id = Ident(base::limits::kChainIdBytesMax);
    b.sender = Fixed<32>();
    b.nonce = U64();
    b.fee_ugpn = U64();
    b.timeout_height = U64();
    size_t n = 1 + Below(base::limits::kMsgsPerTxMax);
    for (size_t i = 0; i < n; ++i) b.msgs.push_back(RandomMsg());
    b.memo = Text(base::limits::kMemoBytesMax);
    return b;
  }

  Tx RandomTx() { return Tx{.body = RandomTxBody(), .signature = Fixed<64>()}; }

  Account RandomAccount() { return Account{.balance_ugpn = U64(), .nonce = U64()}; }

  ValidatorSet RandomValidatorSet() {
    ValidatorSet set;
    size_t n = Below(base::limits::kValidatorsMax + 1);
    for (size_t i = 0; i < n; ++i) {
      // Distinct ascending keys: index in the first bytes, random rest.
      PublicKey key = Fixed<32>();
      key[0] = static_cast<uint8_t>(i >> 8);
      key[1] = static_cast<uint8_t>(i);
      set.validators.push_back(Validator{
          .public_key = key,
          .power =
              1 + m_rng.Below(base::limits::kTotalVotingPowerMax / base::limits::kValidatorsMax)});
    }
    return set;
  }

  Vote RandomVote() {
    return Vote{.type = Below(2) ? VoteType::kPrevote : VoteType::kPrecommit,
                .height = U64(),
                .round = U32(),
                .block_hash = Fixed<32>(),
                .time_ms = U64(),
                .validator = Fixed<20>(),
                .signature = Fixed<64>()};
  }

  Commit RandomCommit() {
    Commit c{.height = U64(), .round = U32(), .block_hash = Fixed<32>(), .sigs = {}};
    size_t n = Below(20);
    for (size_t i = 0; i < n; ++i) {
      Address a = Fixed<20>();
      a[0] = static_cast<uint8_t>(i);
      c.sigs.push_back(CommitSig{.validator = a, .time_ms = U64(), .signature = Fixed<64>()});
    }
    return c;
  }

  Proposal RandomProposal() {
    Proposal p{.height = U64(),
               .round = U32(),
               .pol_round = -1,
               .block_hash = Fixed<32>(),
               .time_ms = U64(),
               .signature = Fixed<64>()};
    if (p.round > 0 && Below(2))
      p.pol_round = static_cast<int32_t>(m_rng.Below(std::min<uint64_t>(p.round, INT32_MAX)));
    return p;
  }

  Evidence RandomEvidence() {
    Vote a = RandomVote();
    Vote b = a;
    b.block_hash = Fixed<32>();
    b.time_ms = U64();
    b.signature = Fixed<64>();
    if (a.block_hash == b.block_hash) b.block_hash[31] ^= 1;
    if (b.block_hash < a.block_hash) std::swap(a, b);
    return DuplicateVoteEvidence{.vote_a = a, .vote_b = b};
  }

  BlockHeader RandomHeader() {
    return BlockHeader{.chain_id = Ident(base::limits::kChainIdBytesMax),
                       .app_version = U64(),
                       .height = U64(),
                       .time_ms = U64(),
                       .last_block_hash = Fixed<32>(),
                       .tx_root = Fixed<32>(),
                       .receipts_root = Fixed<32>(),
                       .state_root = Fixed<32>(),
                       .proposer = Fixed<20>(),
                       .validator_set_hash = Fixed<32>(),
                       .next_validator_set_hash = Fixed<32>(),
                       .last_commit_hash = Fixed<32>(),
                       .evidence_hash = Fixed<32>()};
  }

  Block RandomBlock() {
    Block b{.header = RandomHeader(), .txs = {}, .evidence = {}, .last_commit = RandomCommit()};
    size_t n = Below(12);
    for (size_t i = 0; i < n; ++i) b.txs.push_back(RandomTx());
    size_t e = Below(3);
    for (size_t i = 0; i < e; ++i) b.evidence.push_back(RandomEvidence());
    return b;
  }

  Event RandomEvent() {
    Event e{.type = Ident(base::limits::kEventTypeBytesMax), .attributes = {}};
    size_t n = Below(base::limits::kEventAttributesMax + 1);
    for (size_t i = 0; i < n; ++i)
      e.attributes[Ident(base::limits::kEventAttributeKeyBytesMax)] =
          Text(base::limits::kEventAttributeValueBytesMax);
    return e;
  }

  Receipt RandomReceipt() {
    Receipt r{.tx_hash = Fixed<32>(),
              .code = static_cast<uint16_t>(U64()),
              .fee_ugpn = U64(),
              .height = U64(),
              .index = U32(),
              .events = {}};
    size_t n = Below(6);
    for (size_t i = 0; i < n; ++i) r.events.push_back(RandomEvent());
    return r;
  }

 private:
  base::SeededRng m_rng;
};

/// The fixed example values behind the golden vectors: never change them, or the
/// vectors in tests/vectors/encoding/ change with them.
struct Examples {
  static crypto::KeyPair Key(uint8_t n) {
    return gpunet::testing::TestKey(gpunet::testing::FilledSeed(n));
  }
  static Hash32 Hash(uint8_t n) {
    Hash32 h;
    for (size_t i = 0; i < h.kSize; ++i) h[i] = static_cast<uint8_t>(n + i);
    return h;
  }
  static constexpr const char* kChainId = "gpunet-test-1";

  static TxBody TxBodyExample() {
    Address to = crypto::AddressOf(Key(2).Public());
    return TxBody{.chain_id = kChainId,
                  .sender = Key(1).Public(),
                  .nonce = 5,
                  .fee_ugpn = 2'500,
                  .timeout_height = 0,
                  .msgs = {MsgSend{.to = to, .amount_ugpn = 1'234'567}},
                  .memo = "rent \xe2\x82\xac"};
  }
  static Tx TxExample();
  static Account AccountExample() { return Account{.balance_ugpn = 1'000'000, .nonce = 7}; }
  static ValidatorSet ValidatorSetExample() {
    ValidatorSet set{.validators = {Validator{.public_key = Key(1).Public(), .power = 10},
                                    Validator{.public_key = Key(2).Public(), .power = 20},
                                    Validator{.public_key = Key(3).Public(), .power = 30}}};
    std::sort(set.validators.begin(), set.validators.end(),
              [](const Validator& a, const Validator& b) { return a.public_key < b.public_key; });
    return set;
  }
  static Vote VoteExample();
  static Commit CommitExample();
  static Proposal ProposalExample();
  static Evidence EvidenceExample();
  static BlockHeader HeaderExample() {
    return BlockHeader{.chain_id = kChainId,
                       .app_version = 1,
                       .height = 42,
                       .time_ms = 1'764'000'000'000,
                       .last_block_hash = Hash(1),
                       .tx_root = Hash(2),
                       .receipts_root = Hash(3),
                       .state_root = Hash(4),
                       .proposer = crypto::AddressOf(Key(1).Public()),
                       .validator_set_hash = Hash(5),
                       .next_validator_set_hash = Hash(6),
                       .last_commit_hash = Hash(7),
                       .evidence_hash = Hash(8)};
  }
  static Block BlockExample();
  static Receipt ReceiptExample() {
    return Receipt{.tx_hash = Hash(9),
                   .code = 0,
                   .fee_ugpn = 2'500,
                   .height = 42,
                   .index = 3,
                   .events = {Event{.type = "transfer",
                                    .attributes = {{"amount_ugpn", "1234567"},
                                                   {"from", "gpn1sender"},
                                                   {"to", "gpn1recipient"}}}}};
  }
};

inline Tx Examples::TxExample() {
  return SignTx(TxBodyExample(), Key(1));
}

inline Vote Examples::VoteExample() {
  Vote v{.type = VoteType::kPrecommit,
         .height = 42,
         .round = 1,
         .block_hash = Hash(10),
         .time_ms = 1'764'000'000'500,
         .validator = crypto::AddressOf(Key(2).Public()),
         .signature = {}};
  SignVote(v, kChainId, Key(2));
  return v;
}

inline Commit Examples::CommitExample() {
  Commit c{.height = 41, .round = 1, .block_hash = Hash(12), .sigs = {}};
  for (uint8_t k = 1; k <= 3; ++k) {
    Vote v{.type = VoteType::kPrecommit,
           .height = c.height,
           .round = c.round,
           .block_hash = c.block_hash,
           .time_ms = 1'764'000'000'000u + k,
           .validator = crypto::AddressOf(Key(k).Public()),
           .signature = {}};
    SignVote(v, kChainId, Key(k));
    c.sigs.push_back(
        CommitSig{.validator = v.validator, .time_ms = v.time_ms, .signature = v.signature});
  }
  std::sort(c.sigs.begin(), c.sigs.end(),
            [](const CommitSig& a, const CommitSig& b) { return a.validator < b.validator; });
  return c;
}

inline Proposal Examples::ProposalExample() {
  Proposal p{.height = 42,
             .round = 2,
             .pol_round = 1,
             .block_hash = Hash(10),
             .time_ms = 1'764'000'000'250,
             .signature = {}};
  SignProposal(p, kChainId, Key(3));
  return p;
}

inline Evidence Examples::EvidenceExample() {
  Vote a{.type = VoteType::kPrevote,
         .height = 40,
         .round = 0,
         .block_hash = Hash32{},
         .time_ms = 1'764'000'000'100,
         .validator = crypto::AddressOf(Key(3).Public()),
         .signature = {}};
  Vote b = a;
  b.block_hash = Hash(11);
  SignVote(a, kChainId, Key(3));
  SignVote(b, kChainId, Key(3));
  return DuplicateVoteEvidence{.vote_a = a, .vote_b = b};
}

inline Block Examples::BlockExample() {
  Block b{.header = HeaderExample(),
          .txs = {TxExample()},
          .evidence = {EvidenceExample()},
          .last_commit = CommitExample()};
  b.header.tx_root = TxRoot(b.txs);
  b.header.evidence_hash = EvidenceHash(b.evidence);
  b.header.last_commit_hash = CommitHash(b.last_commit);
  return b;
}

}  // namespace gpunet::codec::testing
