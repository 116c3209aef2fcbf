// The node's home directory: InitHome makes it, Node::Start reads it (node.h has
// the layout).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "codec/types.h"
#include "crypto/ed25519.h"

namespace gpunet::node {

/// A key InitHome creates in <home>/keys and funds in the genesis.
struct FundedKey {
  std::string name;           ///< keystore name ([a-z0-9_-]{1,64})
  uint64_t balance_ugpn = 0;  ///< genesis balance
};

/// An extra genesis account by address (a key that lives elsewhere).
struct FundedAddress {
  codec::Address address;
  uint64_t balance_ugpn = 0;
};

struct InitOptions {
  std::string home;  ///< created when missing; must not hold a config yet
  std::string chain_id = "gpunet-devnet";
  std::string engine = "solo";          ///< "solo" or "bft" (docs/consensus.md)
  std::string rpc = "127.0.0.1:26657";  ///< host:port the node listens on (port 0: any)
  uint64_t block_interval_ms = 1000;    ///< solo: at most one block per interval
  std::vector<FundedKey> keys;          ///< created in <home>/keys, funded
  std::vector<FundedAddress> accounts;  ///< funded by address
  /// Passphrase sealing the created key files (must not be empty when keys is
  /// non-empty). Devnet uses a fixed, printed one; never use that for real funds.
  std::string key_passphrase;
  /// Argon2id cost for those key files: false = interactive (slow, real use),
  /// true = the cheapest the key file format allows (devnet, tests).
  bool fast_kdf = false;
  uint64_t genesis_time_ms = 0;  ///< 0: now (wall clock)
  /// Genesis "development": a development chain, on which the provider daemon
  /// accepts declared (fake) GPUs. `gpunet devnet` sets it; `gpunet init
  /// --development` asks for it.
  bool development = false;
};

/// What InitHome made.
struct InitResult {
  std::string genesis_path;
  std::string node_config_path;
  codec::PublicKey validator_public_key;
  struct Key {
    std::string name;
    codec::Address address;
    std::string address_text;  ///< bech32 "gpn1..."
    uint64_t balance_ugpn = 0;
    std::string mnemonic;  ///< 24-word backup, shown once
  };
  std::vector<Key> keys;
};

/// Creates <home> with genesis.json (the given accounts and a freshly generated
/// validator key), node.json, the validator seed and the funded keys.
/// kAlreadyExists when <home>/config/genesis.json exists; kIo, naming the path and
/// the OS's reason, when the home cannot be checked or made.
base::Result<InitResult> InitHome(const InitOptions& options);

// For Node::Start.

/// <home>/config/genesis.json's path; kNotFound (say `gpunet init`) when the home
/// was never initialised, kIo when that cannot be told.
base::Result<std::string> InitialisedGenesisPath(const std::string& home);

/// The validator key of <home>/config/validator.seed (read without following a link).
base::Result<crypto::KeyPair> ReadValidatorKey(const std::string& home);

}  // namespace gpunet::node
