// Signing domains (architecture §2.1): every signature covers a domain tag, the chain id
// and the canonical bytes, so a signature made for one purpose can never be
// replayed as another. This is the one list; every signer and verifier uses it.
// Tags are append-only: never renumber or reuse one.
#pragma once

#include <cstdint>
#include <string_view>

namespace gpunet::crypto {

enum class Domain : uint8_t {
  kTx = 1,             ///< a transaction envelope
  kProposal = 2,       ///< a consensus block proposal
  kVote = 3,           ///< a consensus prevote or precommit
  kEvidence = 4,       ///< a report of equivocation
  kP2pHandshake = 5,   ///< binding a node key to a p2p session
  kTenantRequest = 6,  ///< a tenant's request to a provider's tenant API
  kAttestation = 7,    ///< an auditor's statement about a provider or machine
};

/// ASCII tag mixed into the signed bytes, e.g. "gpunet/tx/v1".
std::string_view DomainTag(Domain domain);

}  // namespace gpunet::crypto
