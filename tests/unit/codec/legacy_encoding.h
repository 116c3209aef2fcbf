// The frozen pre-issue-16 codec (legacy_encoding.cpp): the same functions as
// codec/encoding.h, in namespace codec::legacy. It exists ONLY so that
// legacy_equivalence_test.cpp can hold the new codec to the old answers; nothing but
// codec_test compiles or links it. Call it by qualified name (legacy::DecodeTx):
// the argument types are codec's, so an unqualified call would also find codec's own.
#pragma once

#include "base/bytes.h"
#include "base/result.h"
#include "codec/reader.h"
#include "codec/types.h"
#include "codec/writer.h"

namespace gpunet::codec::legacy {

// ---- composable forms ----
void Write(Writer& w, const Msg& v);
void Write(Writer& w, const TxBody& v);
void Write(Writer& w, const Tx& v);
void Write(Writer& w, const Account& v);
void Write(Writer& w, const Validator& v);
void Write(Writer& w, const ValidatorSet& v);
void Write(Writer& w, const Vote& v);
void Write(Writer& w, const CommitSig& v);
void Write(Writer& w, const Commit& v);
void Write(Writer& w, const Proposal& v);
void Write(Writer& w, const Evidence& v);
void Write(Writer& w, const BlockHeader& v);
void Write(Writer& w, const Block& v);
void Write(Writer& w, const Event& v);
void Write(Writer& w, const Receipt& v);

base::Status Read(Reader& r, Msg& out);
base::Status Read(Reader& r, TxBody& out);
base::Status Read(Reader& r, Tx& out);
base::Status Read(Reader& r, Account& out);
base::Status Read(Reader& r, Validator& out);
base::Status Read(Reader& r, ValidatorSet& out);
base::Status Read(Reader& r, Vote& out);
base::Status Read(Reader& r, CommitSig& out);
base::Status Read(Reader& r, Commit& out);
base::Status Read(Reader& r, Proposal& out);
base::Status Read(Reader& r, Evidence& out);
base::Status Read(Reader& r, BlockHeader& out);
base::Status Read(Reader& r, Block& out);
base::Status Read(Reader& r, Event& out);
base::Status Read(Reader& r, Receipt& out);

// ---- whole-buffer forms ----
base::Bytes EncodeTxBody(const TxBody& v);
base::Result<TxBody> DecodeTxBody(base::ByteSpan bytes);
base::Bytes EncodeTx(const Tx& v);
/// Rejects inputs over limits::kTxBytesMax before parsing.
base::Result<Tx> DecodeTx(base::ByteSpan bytes);
base::Bytes EncodeAccount(const Account& v);
base::Result<Account> DecodeAccount(base::ByteSpan bytes);
base::Bytes EncodeValidatorSet(const ValidatorSet& v);
base::Result<ValidatorSet> DecodeValidatorSet(base::ByteSpan bytes);
base::Bytes EncodeVote(const Vote& v);
base::Result<Vote> DecodeVote(base::ByteSpan bytes);
base::Bytes EncodeCommit(const Commit& v);
base::Result<Commit> DecodeCommit(base::ByteSpan bytes);
base::Bytes EncodeProposal(const Proposal& v);
base::Result<Proposal> DecodeProposal(base::ByteSpan bytes);
base::Bytes EncodeEvidence(const Evidence& v);
base::Result<Evidence> DecodeEvidence(base::ByteSpan bytes);
base::Bytes EncodeBlockHeader(const BlockHeader& v);
base::Result<BlockHeader> DecodeBlockHeader(base::ByteSpan bytes);
base::Bytes EncodeBlock(const Block& v);
/// Rejects inputs over limits::kBlockBytesMax before parsing.
base::Result<Block> DecodeBlock(base::ByteSpan bytes);
base::Bytes EncodeReceipt(const Receipt& v);
base::Result<Receipt> DecodeReceipt(base::ByteSpan bytes);

// ---- validation of values built in memory ----
// Encoders never fail; these say whether the encoding would be accepted (the same
// checks as the decoders, with the same messages). Use before signing or sending
// anything built from outside input.
base::Status ValidateTx(const Tx& v);
base::Status ValidateTxBody(const TxBody& v);
base::Status ValidateBlock(const Block& v);
base::Status ValidateValidatorSet(const ValidatorSet& v);
base::Status ValidateReceipt(const Receipt& v);

}  // namespace gpunet::codec::legacy
