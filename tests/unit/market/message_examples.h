// One of every market message with every field set, and the tx that carries one:
// the values messages_test.cpp round-trips and pins, and the seeds that
// tools/write_corpus.cpp (`make corpus`) writes for tests/fuzz/fuzz_market_apply.
#pragma once

#include <utility>
#include <vector>

#include "codec/types.h"

namespace gpunet::codec::testing {

inline Address Addr(uint8_t b) {
  Address a;
  for (auto& x : a.data) x = b;
  return a;
}

inline Hash32 H(uint8_t b) {
  Hash32 h;
  for (auto& x : h.data) x = b;
  return h;
}

inline std::vector<Msg> AllMarketMessages() {
  Requirements q{.gpu_models = {"A100", "H100"},
                 .gpus_per_machine = 8,
                 .machines = 2,
                 .min_vram_gib = 80,
                 .region = "eu",
                 .fabric = Fabric::kInfiniband,
                 .same_site = true,
                 .min_cuda_version = 12010,
                 .auditors = {Addr(3), Addr(4)},
                 .attributes = {{"soc2", "yes"}, {"tier", "3"}}};
  return {
      MsgProviderRegister{Addr(1),
                          "https://p.example:8443",
                          H(9),
                          "eu-west",
                          100'000'000,
                          {{Addr(5), 2500}, {Addr(6), 7500}},
                          {{Addr(7)}, {Addr(8)}}},
      MsgProviderUpdate{Addr(1), "https://p2.example", H(8), "us", {{Addr(5), 10000}}, {}},
      MsgProviderDeregister{},
      MsgProviderBond{5},
      MsgProviderUnbond{6},
      MsgProviderClaimUnbonded{},
      MsgSiteUpsert{Addr(2), 1, Fabric::kRoce, 400},
      MsgMachineUpsert{Addr(2), 7, 1, "H100", 8, 80, GpuLink::kNvlink, "550.54.15", 12040, 90, 96,
                       1024, 8000},
      MsgMachineRemove{Addr(2), 7},
      MsgOfferCreate{Addr(2), "H100", 0, 2'500'000, {Addr(9)}, 2, 48},
      MsgOfferClose{Addr(2), 3},
      MsgLeaseCreate{3, 1, 2, 10'000'000, H(1)},
      MsgOrderCreate{q, 3'000'000, 100'000'000, H(2), 60'000,
                     ProviderRequirements{500'000'000, 7'000'000, 50'000, {Addr(3), Addr(4)}}},
      MsgOrderClose{4},
      MsgBidCreate{Addr(2), 4, 2'000'000, {7, 8}},
      MsgBidAccept{5},
      MsgLeaseStarted{6},
      MsgLeaseDeposit{6, 1000},
      MsgLeaseWithdraw{6},
      MsgLeaseClose{6, CloseReason::kNoManifest},
      MsgHeartbeat{Addr(2)},
      MsgAttest{Addr(2), 7, {{"gpu_verified", "H100"}}, 1'000'000},
      MsgBidWithdraw{5},
  };
}

inline Tx TxWith(Msg m) {
  Tx tx;
  tx.body.chain_id = "gpunet-test";
  tx.body.fee_ugpn = 1;
  tx.body.msgs.push_back(std::move(m));
  return tx;
}

}  // namespace gpunet::codec::testing
