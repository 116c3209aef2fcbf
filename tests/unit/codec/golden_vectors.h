// The golden vectors of tests/vectors/encoding/vectors.txt: the canonical encodings
// and hashes of the fixed Examples, in file order. golden_test.cpp checks the file
// against them; tools/write_corpus.cpp (`make corpus`) writes the file from them.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "codec/merkle.h"
#include "unit/codec/random_values.h"

namespace gpunet::codec::testing {

/// name -> lower-case hex, in file order.
inline std::vector<std::pair<std::string, std::string>> GoldenVectors() {
  Tx tx = Examples::TxExample();
  Block block = Examples::BlockExample();
  Receipt receipt = Examples::ReceiptExample();
  std::vector<Receipt> receipts = {receipt};
  std::vector<base::Bytes> three = {base::Bytes{'a'}, base::Bytes{'b'}, base::Bytes{'c'}};
  return {
      {"tx_body", base::ToHex(EncodeTxBody(tx.body))},
      {"tx", base::ToHex(EncodeTx(tx))},
      {"tx_hash", base::ToHex(TxHash(tx))},
      {"account", base::ToHex(EncodeAccount(Examples::AccountExample()))},
      {"validator_set", base::ToHex(EncodeValidatorSet(Examples::ValidatorSetExample()))},
      {"validator_set_hash", base::ToHex(ValidatorSetHash(Examples::ValidatorSetExample()))},
      {"vote", base::ToHex(EncodeVote(Examples::VoteExample()))},
      {"vote_sign_bytes", base::ToHex(VoteSignBytes(Examples::VoteExample()))},
      {"commit", base::ToHex(EncodeCommit(Examples::CommitExample()))},
      {"commit_hash", base::ToHex(CommitHash(Examples::CommitExample()))},
      {"proposal", base::ToHex(EncodeProposal(Examples::ProposalExample()))},
      {"evidence", base::ToHex(EncodeEvidence(Examples::EvidenceExample()))},
      {"block_header", base::ToHex(EncodeBlockHeader(Examples::HeaderExample()))},
      {"block_hash", base::ToHex(BlockHash(Examples::HeaderExample()))},
      {"block", base::ToHex(EncodeBlock(block))},
      {"block_tx_root", base::ToHex(block.header.tx_root)},
      {"block_evidence_hash", base::ToHex(block.header.evidence_hash)},
      {"receipt", base::ToHex(EncodeReceipt(receipt))},
      {"receipts_root", base::ToHex(ReceiptsRoot(receipts))},
      {"merkle_root_empty", base::ToHex(MerkleRoot(std::vector<base::Bytes>{}))},
      {"merkle_root_abc", base::ToHex(MerkleRoot(three))},
  };
}

/// The text of vectors.txt: a header, then "<name> <hex>" lines.
inline std::string RenderGoldenVectors(
    const std::vector<std::pair<std::string, std::string>>& vectors) {
  std::string out =
      "# Golden canonical encodings (docs/encoding.md) of the fixed examples in\n"
      "# tests/unit/codec/random_values.h (Examples). Format: <name> <lower-case hex>.\n"
      "# Never edit by hand; see tests/unit/codec/golden_test.cpp.\n";
  for (const auto& [name, hex] : vectors) out += name + " " + hex + "\n";
  return out;
}

}  // namespace gpunet::codec::testing
