// Building and signing transactions on the client side. The node checks
// everything again; the client checks first so that a mistake is reported before
// a passphrase is typed or a fee is paid, with a message about the user's input
// rather than a rejection code.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "base/result.h"
#include "codec/types.h"
#include "crypto/ed25519.h"

namespace gpunet::client {

/// The chain's fee rule as a node advertises it (architecture §2.4: fee >= per_byte *
/// encoded tx bytes + per_msg * messages, and >= min). The node's copy of the rule
/// is authoritative; this one only lets the client pay enough without guessing.
struct FeeSchedule {
  uint64_t per_byte_ugpn = 0;
  uint64_t per_msg_ugpn = 0;
  uint64_t min_ugpn = 0;
  bool operator==(const FeeSchedule&) const = default;
};

/// The chain's gas price and block gas limit as a node advertises them in /status.
struct GasSchedule {
  uint64_t price_ugpn = 0;
  uint64_t block_max = 0;
  bool operator==(const GasSchedule&) const = default;
};

/// What the CLI adds to a simulated tx's gas: state can change between the
/// simulation and the block (another tx takes the first fitting machine, a scan
/// gets longer), and a tx out of gas pays its fee for nothing.
inline constexpr uint64_t kGasMarginPercent = 20;

/// The fee that buys `gas_used` plus kGasMarginPercent (rounded up, at most a
/// block's gas) for a tx of `tx_bytes` bytes and `msgs` messages, and at least the
/// minimum fee; nullopt when it does not fit in 64 bits.
std::optional<uint64_t> FeeWithGasMargin(const FeeSchedule& fees, const GasSchedule& gas,
                                         uint64_t tx_bytes, uint64_t msgs, uint64_t gas_used);

/// The fee the CLI pays when the node does not advertise its schedule: the
/// genesis default minimum (ledger/genesis.h: fee_min_ugpn = 1000), which covers a
/// transfer with any memo under the default per-byte and per-message fees.
inline constexpr uint64_t kDefaultTransferFeeUgpn = 1000;

/// The lowest fee a tx of `tx_bytes` encoded bytes with `msgs` messages may carry
/// under `schedule`; nullopt when it does not fit in 64 bits.
std::optional<uint64_t> MinimumFee(const FeeSchedule& schedule, uint64_t tx_bytes, uint64_t msgs);

/// The minimum fee of a one-message transfer on `chain_id` with `memo`. Every
/// integer field is fixed width in the encoding, so the size (and the fee) does
/// not depend on the amount, nonce or fee itself.
base::Result<uint64_t> TransferFee(const FeeSchedule& schedule, std::string_view chain_id,
                                   std::string_view memo);

/// A signed one-message transfer from key's account to `to`. Refuses (before
/// signing) a zero amount, an empty or over-long chain id, an over-long memo and
/// anything else ValidateTxBody refuses, with a message about the input.
base::Result<codec::Tx> BuildTransfer(const crypto::KeyPair& key, std::string_view chain_id,
                                      uint64_t nonce, const codec::Address& to,
                                      uint64_t amount_ugpn, uint64_t fee_ugpn,
                                      uint64_t timeout_height, std::string_view memo);

}  // namespace gpunet::client
