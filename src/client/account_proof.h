// Checking an account the node reports against a block header's state root, so a
// wallet need not trust the node's state code for a balance (architecture §2.7: the
// client verifies; docs/state-tree.md: the proof format).
//
// What is checked, in order:
//   1. the header bytes decode and are the header of the reported height (and, when
//      the caller knows one, hash to the block hash it trusts);
//   2. the state key is the account key of the asked address (docs/storage.md:
//      0x01 0x01 address[20]);
//   3. the SMT proof connects that key to header.state_root: with the value's hash
//      (membership) or with nothing (non-membership);
//   4. the value decodes to an account whose balance and nonce are the ones reported
//      (an absent account must be reported as balance 0, nonce 0, exists false).
// What is NOT checked here: that the header itself was agreed by the validators.
// With the solo engine there is no commit certificate to check; the header's hash
// is compared with the one the caller fetched (e.g. from GET /block/<height>).
#pragma once

#include <optional>

#include "base/bytes.h"
#include "base/result.h"
#include "client/node_client.h"
#include "codec/types.h"

namespace gpunet::client {

/// The state-tree key of an account: 0x01 (application state) 0x01 (accounts)
/// followed by the 20 address bytes, as docs/storage.md defines it. (The node builds
/// it with state::keyspace::AccountKey, which a client may not include.)
base::Bytes AccountStateKey(const codec::Address& address);

/// What a verified proof established.
struct VerifiedAccount {
  uint64_t height = 0;
  base::Hash32 block_hash;  ///< BlockHash of the header the proof was checked against
  base::Hash32 state_root;  ///< header.state_root
  std::string chain_id;     ///< header.chain_id
  bool exists = false;
  codec::Account account;  ///< zero when !exists
};

/// Checks `info` (from GetAccount(address, prove=true)) as described above.
/// `trusted_block_hash`: when given, the header must hash to it. Every failure is
/// kCorrupt with a message saying which check failed and that the
/// node's answer must not be trusted.
base::Result<VerifiedAccount> VerifyAccountProof(
    const AccountInfo& info, std::optional<base::Hash32> trusted_block_hash = std::nullopt);

}  // namespace gpunet::client
