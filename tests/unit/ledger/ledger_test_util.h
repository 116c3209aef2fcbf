// Helpers for the ledger tests: a genesis funding util/keys.h's numbered keys, signed
// transfers, and driving one block through the Application interface the way the
// solo engine does (PrepareProposal -> ProcessProposal -> FinalizeBlock -> Commit).
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "crypto/ed25519.h"
#include "ledger/app.h"
#include "ledger/genesis.h"
#include "util/keys.h"

namespace gpunet::ledger::testing {

using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

/// Key 0 is the validator (and proposer); keys 1..accounts are funded.
inline Genesis TestGenesis(uint32_t accounts, uint64_t balance_ugpn = 1'000'000'000) {
  Genesis g;
  g.chain_id = "gpunet-test";
  g.genesis_time_ms = 1'700'000'000'000;
  g.app_version = 1;
  for (uint32_t i = 1; i <= accounts; ++i)
    g.accounts.push_back(GenesisAccount{TestAddress(i), balance_ugpn});
  std::sort(g.accounts.begin(), g.accounts.end(),
            [](const GenesisAccount& a, const GenesisAccount& b) { return a.address < b.address; });
  g.validators.validators.push_back(codec::Validator{TestKey(0).Public(), 10});
  g.params.fee_per_byte_ugpn = 1;
  g.params.fee_per_msg_ugpn = 100;
  g.params.fee_min_ugpn = 1000;
  g.params.fee_burn_bp = 3000;
  return g;
}

inline base::Bytes SignedSend(uint32_t from, uint64_t nonce, const codec::Address& to,
                              uint64_t amount, uint64_t fee = 2000,
                              const std::string& chain_id = "gpunet-test",
                              uint64_t timeout_height = 0) {
  codec::TxBody body;
  body.chain_id = chain_id;
  body.sender = TestKey(from).Public();
  body.nonce = nonce;
  body.fee_ugpn = fee;
  body.timeout_height = timeout_height;
  body.msgs.push_back(codec::MsgSend{to, amount});
  return codec::EncodeTx(codec::SignTx(body, TestKey(from)));
}

/// One GPN in ugpn.
inline constexpr uint64_t kGpn = 1'000'000;

/// A tx of `msgs` from key `from` with a fee that covers market messages.
inline base::Bytes SignedMsgs(uint32_t from, uint64_t nonce, std::vector<codec::Msg> msgs) {
  codec::TxBody body;
  body.chain_id = "gpunet-test";
  body.sender = TestKey(from).Public();
  body.nonce = nonce;
  body.fee_ugpn = 100'000;
  body.msgs = std::move(msgs);
  return codec::EncodeTx(codec::SignTx(body, TestKey(from)));
}

/// Registers key `from`'s address as a provider (bond 500 GPN) with site 1, machine
/// 1 of 8 H100s and offer 1 at 1 GPN per GPU-hour: one tx's messages.
inline std::vector<codec::Msg> ProviderWithOfferMsgs(const codec::Address& provider) {
  codec::MsgProviderRegister reg;
  reg.operator_address = provider;
  reg.tenant_api_uri = "https://p.example";
  reg.region = "eu";
  reg.bond_ugpn = 500 * kGpn;
  reg.payouts = {{provider, 10'000}};
  return {reg, codec::MsgSiteUpsert{provider, 1, codec::Fabric::kEthernet, 10},
          codec::MsgMachineUpsert{provider, 1, 1, "H100", 8, 80, codec::GpuLink::kPcie, "550",
                                  12040, 90, 8, 64, 100},
          codec::MsgOfferCreate{provider, "H100", 0, kGpn, {}}};
}

struct BlockOutcome {
  codec::Block block;
  std::vector<codec::Receipt> receipts;
  std::vector<SkippedTx> skipped;
};

/// One block through the whole interface; fails the test on any error.
inline BlockOutcome RunBlock(Application& app, std::vector<base::Bytes> txs,
                             uint64_t time_step_ms = 1000) {
  AppInfo info = app.Info();
  PrepareProposalRequest prepare;
  prepare.height = info.last_height + 1;
  prepare.time_ms = info.last_block_time_ms + time_step_ms;
  prepare.proposer = TestAddress(0);
  prepare.txs = std::move(txs);
  auto prepared = app.PrepareProposal(prepare);
  EXPECT_TRUE(prepared.has_value()) << prepared.error().ToString();
  BlockOutcome out;
  if (!prepared) return out;
  out.block = prepared->block;
  out.skipped = prepared->skipped;
  auto processed = app.ProcessProposal(ProcessProposalRequest{out.block, {}, {}});
  EXPECT_TRUE(processed && processed->accept)
      << (processed ? processed->reason : processed.error().ToString());
  auto finalized = app.FinalizeBlock(FinalizeBlockRequest{out.block, {}, {}});
  EXPECT_TRUE(finalized.has_value()) << finalized.error().ToString();
  if (!finalized) return out;
  out.receipts = finalized->receipts;
  auto committed = app.Commit();
  EXPECT_TRUE(committed.has_value()) << committed.error().ToString();
  if (committed) {
    EXPECT_EQ(committed->state_root, out.block.header.state_root);
  }
  return out;
}

inline codec::Account AccountOf(const Application& app, const codec::Address& address) {
  auto r =
      app.Query(QueryRequest{"/account", base::Bytes(address.begin(), address.end()), 0, false});
  EXPECT_TRUE(r.has_value());
  if (!r || !r->value) return codec::Account{};
  return *codec::DecodeAccount(*r->value);
}

/// Every key and value of a store, for byte-identity checks.
inline std::vector<std::pair<base::Bytes, base::Bytes>> Dump(const state::KvStore& kv) {
  std::vector<std::pair<base::Bytes, base::Bytes>> out;
  auto s = kv.Scan({}, {}, [&](base::ByteSpan k, base::ByteSpan v) {
    out.emplace_back(base::Bytes(k.begin(), k.end()), base::Bytes(v.begin(), v.end()));
    return true;
  });
  EXPECT_TRUE(s.has_value());
  return out;
}

}  // namespace gpunet::ledger::testing
