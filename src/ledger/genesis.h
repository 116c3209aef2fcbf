// The genesis file: everything a chain starts from (architecture §2). JSON, parsed
// strictly: unknown or duplicate keys, missing fields, wrong types, amounts that are
// not integer strings, out-of-range parameters and duplicate accounts are errors
// that name the field. Amounts are integer strings in fields ending `_ugpn`.
//
//   {
//     "chain_id": "gpunet-devnet",
//     "genesis_time_ms": 1764000000000,
//     "app_version": 1,
//     "development": false,        (optional, default false: a development chain)
//     "accounts":   [{"address": "gpn1...", "balance_ugpn": "1000000000"}],
//     "validators": [{"public_key": "<64 hex>", "power": 10}],
//     "params": {
//       "fee_per_byte_ugpn": "1", "fee_per_msg_ugpn": "100", "fee_min_ugpn": "1000",
//       "fee_burn_bp": 5000, "block_bytes_max": 4194304, "block_txs_max": 10000,
//       "msgs_per_tx_max": 16, "tx_bytes_max": 65536, "block_interval_ms": 1000,
//       "nonce_ahead_max": 64, "gas_price_ugpn": "1", "gas_tx_base": 200,
//       "gas_read_base": 10, "gas_read_per_byte": 1, "gas_scan_step": 5,
//       "gas_write_base": 30, "gas_write_per_byte": 1, "block_gas_max": 40000000,
//       "provider_bond_min_ugpn": "100000000", "unbonding_delay_ms": 604800000,
//       "lease_start_timeout_ms": 600000, "manifest_timeout_ms": 1800000,
//       "heartbeat_timeout_ms": 300000, "heartbeat_grace_blocks": 10,
//       "bid_window_min_ms": 1000, "bid_window_max_ms": 604800000,
//       "deposit_min_hours": 1, "fault_penalty_hours": 1,
//       "fault_penalty_floor_ugpn": "1000000", "reserved_close_charge_ms": 600000,
//       "reserved_close_charge_floor_ugpn": "100000"
//     }
//   }
//
// GenesisHash is BLAKE2b-256 over a canonical binary form (not the JSON text), so
// whitespace and key order do not change a chain's identity.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "codec/types.h"
#include "market/params.h"
#include "state/tx_pipeline.h"

namespace gpunet::ledger {

/// Chain parameters fixed at genesis (consensus-param updates may change the
/// block ones later).
struct GenesisParams {
  uint64_t fee_per_byte_ugpn = 1;
  uint64_t fee_per_msg_ugpn = 100;
  uint64_t fee_min_ugpn = 1000;
  uint32_t fee_burn_bp = 5000;  ///< share of each fee burned, in basis points
  uint64_t block_bytes_max = 4u << 20;
  uint64_t block_txs_max = 10000;
  uint64_t msgs_per_tx_max = 16;
  uint64_t tx_bytes_max = 64u << 10;
  uint64_t block_interval_ms = 1000;  ///< solo: at most one block per interval
  uint64_t nonce_ahead_max = 64;      ///< CheckTx accepts nonces up to next + this
  // Gas (state/gas.h, docs/ledger.md): the price of a unit and of each operation.
  uint64_t gas_price_ugpn = 1;
  uint64_t gas_tx_base = 200;
  uint64_t gas_read_base = 10;
  uint64_t gas_read_per_byte = 1;
  uint64_t gas_scan_step = 5;
  uint64_t gas_write_base = 30;
  uint64_t gas_write_per_byte = 1;
  uint64_t block_gas_max = 40'000'000;  ///< sum of the gas limits of a block's txs
  /// The market's timing and bond rules (market/params.h), in the same "params"
  /// object of the file under their own names.
  market::Params market;
  bool operator==(const GenesisParams&) const = default;
};

struct GenesisAccount {
  codec::Address address;
  uint64_t balance_ugpn = 0;
  bool operator==(const GenesisAccount&) const = default;
};

struct Genesis {
  std::string chain_id;
  uint64_t genesis_time_ms = 0;
  uint64_t app_version = 1;
  std::vector<GenesisAccount> accounts;  ///< ascending address, no duplicates
  codec::ValidatorSet validators;        ///< canonical order (ascending public key)
  GenesisParams params;
  /// A development chain (devnets, tests): the provider daemon accepts GPUs declared
  /// in provider.yaml (no NVIDIA hardware) only on such a chain. Covered by the
  /// hash, so a chain cannot become one later; JSON "development", default false.
  bool development = false;
  bool operator==(const Genesis&) const = default;
};

/// Parses and validates (ValidateGenesis) a genesis JSON text; accounts and
/// validators come back in canonical order.
base::Result<Genesis> ParseGenesis(std::string_view json_text);
/// Reads and parses a genesis file.
base::Result<Genesis> LoadGenesisFile(const std::string& path);
/// The JSON text of a genesis (pretty-printed, canonical order); ParseGenesis of
/// it gives back the same Genesis.
std::string GenesisToJson(const Genesis& genesis);

/// Checks every rule ParseGenesis enforces on a Genesis built in memory (devnet,
/// tests): chain id, parameter ranges (the market's: market::ValidateParams), canonical
/// account/validator order, total supply within 64 bits.
base::Status ValidateGenesis(const Genesis& genesis);

/// BLAKE2b-256 over the canonical binary form of the genesis.
base::Hash32 GenesisHash(const Genesis& genesis);
/// Sum of the genesis balances (ValidateGenesis guarantees it fits).
uint64_t GenesisSupply(const Genesis& genesis);

/// The gas prices and block gas limit of these parameters.
state::GasParams GasParamsOf(const GenesisParams& params);
/// The transaction rules the pipeline applies on this chain.
state::PipelineParams PipelineParamsOf(const Genesis& genesis);

}  // namespace gpunet::ledger
