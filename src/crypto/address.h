// Addresses: the first 20 bytes of BLAKE2b-256(public key), shown as bech32 with
// the human-readable prefix "gpn" (architecture §2.1).
#pragma once

#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/result.h"
#include "crypto/ed25519.h"

namespace gpunet::crypto {

using Address = base::FixedBytes<20>;

inline constexpr std::string_view kAddressPrefix = "gpn";

Address AddressOf(const PublicKey& key);
/// "gpn1..." in lower case (42 characters).
std::string AddressToString(const Address& address);
/// Parses "gpn1..." (upper case accepted, as BIP-173 allows); rejects other prefixes, bad
/// checksums, mixed case, non-zero padding and payloads that are not 20 bytes.
base::Result<Address> ParseAddress(std::string_view text);

}  // namespace gpunet::crypto
