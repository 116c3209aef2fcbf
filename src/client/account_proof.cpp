#include "client/account_proof.h"

#include <string>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "codec/smt_proof.h"
#include "crypto/address.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;

/// Table bytes of docs/storage.md: application state, then its account sub-table.
constexpr uint8_t kAppStateTable = 0x01;
constexpr uint8_t kAccountSubTable = 0x01;

std::unexpected<base::Error> Untrusted(const AccountInfo& info, const std::string& what) {
  return base::Fail(ErrorCode::kCorrupt, "proof of account " + info.address_text + " at height " +
                                             std::to_string(info.height) +
                                             " does NOT verify: " + what +
                                             "; do not trust this answer (try another node)");
}

}  // namespace

base::Bytes AccountStateKey(const codec::Address& address) {
  // push_back, not a range insert: g++ 12 warns falsely (-Warray-bounds) on that.
  base::Bytes key;
  key.reserve(2 + address.kSize);
  key.push_back(kAppStateTable);
  key.push_back(kAccountSubTable);
  for (uint8_t b : address) key.push_back(b);
  return key;
}

base::Result<VerifiedAccount> VerifyAccountProof(const AccountInfo& info,
                                                 std::optional<base::Hash32> trusted_block_hash) {
  if (!info.proof)
    return base::Fail(ErrorCode::kInvalidArgument,
                      "the account answer carries no proof; ask with prove=true (`--prove`)");
  const AccountProofData& p = *info.proof;

  // 1. The header.
  auto header = codec::DecodeBlockHeader(p.header);
  if (!header)
    return Untrusted(info, "the header is not a block header (" + header.error().message + ")");
  if (header->height != info.height)
    return Untrusted(info, "the header is of height " + std::to_string(header->height));
  VerifiedAccount out;
  out.height = header->height;
  out.block_hash = codec::BlockHash(*header);
  out.state_root = header->state_root;
  out.chain_id = header->chain_id;
  if (trusted_block_hash && *trusted_block_hash != out.block_hash)
    return Untrusted(info, "the header hashes to " + base::ToHex(out.block_hash) +
                               ", not to block hash " + base::ToHex(*trusted_block_hash));

  // 2. The key.
  base::Bytes expected_key = AccountStateKey(info.address);
  if (p.state_key != expected_key)
    return Untrusted(info, "the state key " + base::ToHex(p.state_key) +
                               " is not the account key " + base::ToHex(expected_key) +
                               " of the address");

  // 3. The path to the root.
  auto proof = codec::DecodeSmtProof(p.proof);
  if (!proof) return Untrusted(info, "the proof does not decode (" + proof.error().message + ")");
  base::Hash32 key_hash = codec::SmtKeyHash(expected_key);
  if (p.value) {
    if (auto ok = codec::VerifySmtMembership(out.state_root, key_hash,
                                             codec::SmtValueHash(*p.value), *proof);
        !ok)
      return Untrusted(info, "the proof does not connect the account's value to state root " +
                                 base::ToHex(out.state_root) + " (" + ok.error().message + ")");
    // 4. The value against what was reported.
    auto account = codec::DecodeAccount(*p.value);
    if (!account)
      return Untrusted(info,
                       "the proven value is not an account (" + account.error().message + ")");
    out.exists = true;
    out.account = *account;
  } else {
    if (auto ok = codec::VerifySmtNonMembership(out.state_root, key_hash, *proof); !ok)
      return Untrusted(info, "the proof does not show the account absent from state root " +
                                 base::ToHex(out.state_root) + " (" + ok.error().message + ")");
  }
  if (out.exists != info.exists)
    return Untrusted(info, std::string("the node says the account ") +
                               (info.exists ? "exists" : "does not exist") +
                               " but the proof shows " + (out.exists ? "it present" : "it absent"));
  if (out.account.balance_ugpn != info.balance_ugpn)
    return Untrusted(info, "the node reports balance " + std::to_string(info.balance_ugpn) +
                               " ugpn but the proven balance is " +
                               std::to_string(out.account.balance_ugpn) + " ugpn");
  if (out.account.nonce != info.nonce)
    return Untrusted(info, "the node reports nonce " + std::to_string(info.nonce) +
                               " but the proven nonce is " + std::to_string(out.account.nonce));
  return out;
}

}  // namespace gpunet::client
