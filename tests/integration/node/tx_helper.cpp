// Test helper for the node integration test (python has no ed25519 in its stdlib):
//   node_tx_helper addr SEED_HEX          -> bech32 address of the key
//   node_tx_helper sign                   -> reads lines
//       CHAIN SEED_HEX NONCE FEE_UGPN TO_ADDRESS AMOUNT_UGPN [TIMEOUT_HEIGHT]
//     and prints "<tx hex> <tx hash hex>" per line (real codec, real signature).
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"

using namespace gpunet;

static crypto::KeyPair Key(const std::string& seed_hex) {
  auto seed = base::FixedFromHex<32>(seed_hex);
  if (!seed) {
    std::cerr << "bad seed hex\n";
    std::exit(2);
  }
  return crypto::KeyPair::FromSeed(*seed);
}

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "addr" && argc == 3) {
    std::cout << crypto::AddressToString(crypto::AddressOf(Key(argv[2]).Public())) << "\n";
    return 0;
  }
  if (cmd != "sign") {
    std::cerr << "usage: node_tx_helper addr SEED_HEX | sign < lines\n";
    return 2;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string chain, seed, to;
    uint64_t nonce = 0, fee = 0, amount = 0, timeout = 0;
    if (!(in >> chain >> seed >> nonce >> fee >> to >> amount)) {
      std::cerr << "bad line: " << line << "\n";
      return 2;
    }
    in >> timeout;
    auto key = Key(seed);
    auto to_addr = crypto::ParseAddress(to);
    if (!to_addr) {
      std::cerr << "bad address " << to << "\n";
      return 2;
    }
    codec::TxBody body;
    body.chain_id = chain;
    body.sender = key.Public();
    body.nonce = nonce;
    body.fee_ugpn = fee;
    body.timeout_height = timeout;
    body.msgs.push_back(codec::MsgSend{*to_addr, amount});
    codec::Tx tx = codec::SignTx(body, key);
    std::cout << base::ToHex(codec::EncodeTx(tx)) << " " << base::ToHex(codec::TxHash(tx))
              << std::endl;
  }
  return 0;
}
