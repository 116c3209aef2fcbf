#include "crypto/domains.h"

#include "base/check.h"

namespace gpunet::crypto {

std::string_view DomainTag(Domain domain) {
  switch (domain) {
    case Domain::kTx:
      return "gpunet/tx/v1";
    case Domain::kProposal:
      return "gpunet/proposal/v1";
    case Domain::kVote:
      return "gpunet/vote/v1";
    case Domain::kEvidence:
      return "gpunet/evidence/v1";
    case Domain::kP2pHandshake:
      return "gpunet/p2p-handshake/v1";
    case Domain::kTenantRequest:
      return "gpunet/tenant-request/v1";
    case Domain::kAttestation:
      return "gpunet/attestation/v1";
  }
  GPUNET_UNREACHABLE();
}

}  // namespace gpunet::crypto
