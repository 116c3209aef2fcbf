// Hashes, sign bytes and signatures over canonical encodings; RFC 6962-style roots.
#include <gtest/gtest.h>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "codec/merkle.h"
#include "crypto/hash.h"
#include "unit/codec/random_values.h"

namespace gpunet::codec {
namespace {

using base::Bytes;
using base::ErrorCode;
using testing::Examples;

void ExpectBadSignature(const base::Status& s) {
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kBadSignature) << s.error().ToString();
}

TEST(TxSignature, VerifiesAndCoversEveryBodyField) {
  Tx tx = Examples::TxExample();
  ASSERT_TRUE(VerifyTxSignature(tx));
  // Under the tx domain and the chain id, over exactly the body encoding.
  EXPECT_TRUE(crypto::Verify(tx.body.sender, crypto::Domain::kTx, tx.body.chain_id,
                             EncodeTxBody(tx.body), tx.signature));
  EXPECT_FALSE(crypto::Verify(tx.body.sender, crypto::Domain::kVote, tx.body.chain_id,
                              EncodeTxBody(tx.body), tx.signature));
  EXPECT_EQ(TxSignBytes(tx.body), EncodeTxBody(tx.body));

  auto tampered = [&](auto mutate) {
    Tx t = tx;
    mutate(t);
    ExpectBadSignature(VerifyTxSignature(t));
  };
  tampered([](Tx& t) { t.body.chain_id = "gpunet-other-1"; });
  tampered([](Tx& t) { t.body.nonce += 1; });
  tampered([](Tx& t) { t.body.fee_ugpn -= 1; });
  tampered([](Tx& t) { t.body.timeout_height = 100; });
  tampered([](Tx& t) { std::get<MsgSend>(t.body.msgs[0]).amount_ugpn += 1; });
  tampered([](Tx& t) { std::get<MsgSend>(t.body.msgs[0]).to[0] ^= 1; });
  tampered([](Tx& t) { t.body.msgs.push_back(t.body.msgs[0]); });
  tampered([](Tx& t) { t.body.memo += "!"; });
  tampered([](Tx& t) { t.signature[10] ^= 0x40; });
  tampered([](Tx& t) { t.body.sender = Examples::Key(2).Public(); });
}

TEST(TxHash, IsBlake2bOfTheEncodingIncludingTheSignature) {
  Tx tx = Examples::TxExample();
  Bytes enc = EncodeTx(tx);
  EXPECT_EQ(TxHash(tx), crypto::Blake2b256(enc));
  EXPECT_EQ(TxHashOfEncoded(enc), TxHash(tx));
  Tx other = tx;
  other.signature[0] ^= 1;
  EXPECT_NE(TxHash(other), TxHash(tx));
}

TEST(VoteSignature, SignBytesExcludeOnlyTheSignature) {
  Vote v = Examples::VoteExample();
  Bytes enc = EncodeVote(v);
  Bytes sign_bytes = VoteSignBytes(v);
  ASSERT_EQ(sign_bytes.size() + 64, enc.size());
  EXPECT_TRUE(std::equal(sign_bytes.begin(), sign_bytes.end(), enc.begin()));
  Vote unsigned_vote = v;
  unsigned_vote.signature = {};
  EXPECT_EQ(VoteSignBytes(unsigned_vote), sign_bytes);
}

TEST(VoteSignature, VerifiesOnlyForTheSignerChainAndFields) {
  Vote v = Examples::VoteExample();
  PublicKey key = Examples::Key(2).Public();
  ASSERT_TRUE(VerifyVoteSignature(v, Examples::kChainId, key));
  ExpectBadSignature(VerifyVoteSignature(v, "gpunet-other-1", key));
  ExpectBadSignature(VerifyVoteSignature(v, Examples::kChainId, Examples::Key(3).Public()));
  auto tampered = [&](auto mutate) {
    Vote t = v;
    mutate(t);
    ExpectBadSignature(VerifyVoteSignature(t, Examples::kChainId, key));
  };
  tampered([](Vote& t) { t.type = VoteType::kPrevote; });
  tampered([](Vote& t) { t.height += 1; });
  tampered([](Vote& t) { t.round += 1; });
  tampered([](Vote& t) { t.block_hash = Hash32{}; });
  tampered([](Vote& t) { t.time_ms += 1; });
  tampered([](Vote& t) { t.validator[0] ^= 1; });
  // A proposal signature over the same bytes does not pass as a vote.
  Vote as_proposal = v;
  as_proposal.signature =
      Examples::Key(2).Sign(crypto::Domain::kProposal, Examples::kChainId, VoteSignBytes(v));
  ExpectBadSignature(VerifyVoteSignature(as_proposal, Examples::kChainId, key));
}

TEST(CommitSig, ReconstructsVerifiablePrecommits) {
  Commit c = Examples::CommitExample();
  ValidatorSet set = Examples::ValidatorSetExample();
  size_t verified = 0;
  for (const auto& sig : c.sigs) {
    Vote v = CommitSigVote(c, sig);
    EXPECT_EQ(v.type, VoteType::kPrecommit);
    for (const auto& val : set.validators) {
      if (crypto::AddressOf(val.public_key) != sig.validator) continue;
      EXPECT_TRUE(VerifyVoteSignature(v, Examples::kChainId, val.public_key));
      ++verified;
    }
    Commit other = c;
    other.round += 1;
    EXPECT_FALSE(VerifyVoteSignature(CommitSigVote(other, sig), Examples::kChainId,
                                     Examples::Key(1).Public()));
  }
  EXPECT_EQ(verified, 3u);
}

TEST(ProposalSignature, VerifiesAndCoversPolRound) {
  Proposal p = Examples::ProposalExample();
  PublicKey key = Examples::Key(3).Public();
  ASSERT_TRUE(VerifyProposalSignature(p, Examples::kChainId, key));
  Proposal t = p;
  t.pol_round = -1;
  ExpectBadSignature(VerifyProposalSignature(t, Examples::kChainId, key));
  t = p;
  t.time_ms += 1;
  ExpectBadSignature(VerifyProposalSignature(t, Examples::kChainId, key));
  ExpectBadSignature(VerifyProposalSignature(p, "gpunet-other-1", key));
  Bytes enc = EncodeProposal(p);
  EXPECT_EQ(ProposalSignBytes(p), Bytes(enc.begin(), enc.end() - 64));
}

TEST(EvidenceExample, BothVotesAreGenuine) {
  auto e = std::get<DuplicateVoteEvidence>(Examples::EvidenceExample());
  PublicKey key = Examples::Key(3).Public();
  EXPECT_TRUE(VerifyVoteSignature(e.vote_a, Examples::kChainId, key));
  EXPECT_TRUE(VerifyVoteSignature(e.vote_b, Examples::kChainId, key));
}

TEST(BlockHashes, AreBlake2bOfEncodings) {
  Block b = Examples::BlockExample();
  EXPECT_EQ(BlockHash(b.header), crypto::Blake2b256(EncodeBlockHeader(b.header)));
  EXPECT_EQ(CommitHash(b.last_commit), crypto::Blake2b256(EncodeCommit(b.last_commit)));
  ValidatorSet set = Examples::ValidatorSetExample();
  EXPECT_EQ(ValidatorSetHash(set), crypto::Blake2b256(EncodeValidatorSet(set)));
  ValidatorSet changed = set;
  changed.validators[0].power += 1;
  EXPECT_NE(ValidatorSetHash(changed), ValidatorSetHash(set));
  BlockHeader h = b.header;
  h.state_root[0] ^= 1;
  EXPECT_NE(BlockHash(h), BlockHash(b.header));
}

TEST(BlockHashes, RootsOverTxsReceiptsEvidence) {
  Block b = Examples::BlockExample();
  std::vector<Hash32> hashes;
  for (const auto& tx : b.txs) hashes.push_back(TxHash(tx));
  EXPECT_EQ(TxRoot(b.txs), MerkleRootOfHashes(hashes));
  EXPECT_EQ(TxRootOfHashes(hashes), TxRoot(b.txs));
  std::vector<Receipt> receipts = {Examples::ReceiptExample(), Examples::ReceiptExample()};
  receipts[1].index = 4;
  EXPECT_EQ(ReceiptsRoot(receipts),
            MerkleRoot(std::vector<Bytes>{EncodeReceipt(receipts[0]), EncodeReceipt(receipts[1])}));
  std::swap(receipts[0], receipts[1]);
  EXPECT_NE(ReceiptsRoot(receipts),
            MerkleRoot(std::vector<Bytes>{EncodeReceipt(receipts[1]), EncodeReceipt(receipts[0])}));
  EXPECT_EQ(EvidenceHash({}), crypto::Blake2b256({}));
  EXPECT_EQ(EvidenceHash(b.evidence),
            MerkleRoot(std::vector<Bytes>{EncodeEvidence(b.evidence[0])}));
}

// ---------------------------------------------------------------- Merkle

Bytes Leaf(uint8_t n) {
  return Bytes{n, static_cast<uint8_t>(n + 1)};
}

Hash32 Inner(const Hash32& l, const Hash32& r) {
  Bytes b = {0x01};
  b.insert(b.end(), l.begin(), l.end());
  b.insert(b.end(), r.begin(), r.end());
  return crypto::Blake2b256(b);
}

Hash32 LeafHash(const Bytes& d) {
  Bytes b = {0x00};
  b.insert(b.end(), d.begin(), d.end());
  return crypto::Blake2b256(b);
}

TEST(Merkle, MatchesRfc6962StructureWrittenOut) {
  std::vector<Bytes> leaves;
  for (uint8_t i = 0; i < 7; ++i) leaves.push_back(Leaf(i));
  auto h = [&](size_t i) { return LeafHash(leaves[i]); };
  auto root = [&](size_t n) { return MerkleRoot(std::span(leaves).first(n)); };
  EXPECT_EQ(root(0), crypto::Blake2b256({}));
  EXPECT_EQ(root(1), h(0));
  EXPECT_EQ(MerkleLeafHash(leaves[0]), h(0));
  EXPECT_EQ(MerkleInnerHash(h(0), h(1)), Inner(h(0), h(1)));
  EXPECT_EQ(root(2), Inner(h(0), h(1)));
  EXPECT_EQ(root(3), Inner(Inner(h(0), h(1)), h(2)));
  EXPECT_EQ(root(4), Inner(Inner(h(0), h(1)), Inner(h(2), h(3))));
  EXPECT_EQ(root(5), Inner(Inner(Inner(h(0), h(1)), Inner(h(2), h(3))), h(4)));
  EXPECT_EQ(root(7),
            Inner(Inner(Inner(h(0), h(1)), Inner(h(2), h(3))), Inner(Inner(h(4), h(5)), h(6))));
}

TEST(Merkle, OrderAndDomainSeparationMatter) {
  std::vector<Bytes> ab = {Leaf(1), Leaf(2)};
  std::vector<Bytes> ba = {Leaf(2), Leaf(1)};
  EXPECT_NE(MerkleRoot(ab), MerkleRoot(ba));
  // A single leaf whose data is two leaf hashes is not the two-leaf tree.
  Hash32 l = LeafHash(ab[0]), r = LeafHash(ab[1]);
  Bytes concat(l.begin(), l.end());
  concat.insert(concat.end(), r.begin(), r.end());
  EXPECT_NE(MerkleRoot(std::vector<Bytes>{concat}), MerkleRoot(ab));
  // Duplicating the last leaf (Bitcoin's CVE-2012-2459 shape) changes the root.
  std::vector<Bytes> abb = {Leaf(1), Leaf(2), Leaf(2)};
  std::vector<Bytes> abbb = {Leaf(1), Leaf(2), Leaf(2), Leaf(2)};
  EXPECT_NE(MerkleRoot(abb), MerkleRoot(abbb));
}

TEST(Merkle, RootOfHashesTreatsEachHashAsLeafData) {
  base::SeededRng rng(5);
  for (size_t n = 0; n < 40; ++n) {
    std::vector<Hash32> hashes(n);
    std::vector<Bytes> as_bytes;
    for (auto& h : hashes) {
      for (auto& b : h) b = static_cast<uint8_t>(rng.Next());
      as_bytes.emplace_back(h.begin(), h.end());
    }
    EXPECT_EQ(MerkleRootOfHashes(hashes), MerkleRoot(as_bytes)) << n;
  }
}

}  // namespace
}  // namespace gpunet::codec
