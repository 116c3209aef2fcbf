// `gpunet init` and `gpunet node`: create a node home and run a node from it.
// The logic lives in node/node.h; this file parses options and prints.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "apps/gpunet/cli.h"
#include "crypto/address.h"
#include "ledger/app.h"
#include "ledger/genesis.h"
#include "node/node.h"
#include "storage/rocks_kv.h"

namespace gpunet::apps {
namespace {

using base::ErrorCode;

struct InitArgs {
  std::string chain_id = "gpunet-devnet";
  std::string engine = "solo";
  std::string rpc = "127.0.0.1:26657";
  uint64_t block_interval_ms = 1000;
  std::vector<std::string> fund;  // "gpn1...=AMOUNT_UGPN"
  bool development = false;
};

struct NodeArgs {
  std::string rpc;
  uint64_t block_interval_ms = 0;
  bool replay = false;
};

void RunInit(const GlobalOptions& g, const InitArgs& a) {
  node::InitOptions o;
  o.home = g.Home();
  o.chain_id = a.chain_id;
  o.engine = a.engine;
  o.rpc = a.rpc;
  o.block_interval_ms = a.block_interval_ms;
  o.development = a.development;
  for (const auto& f : a.fund) {
    auto eq = f.find('=');
    if (eq == std::string::npos)
      FailCommand(ErrorCode::kInvalidArgument,
                  "--fund '" + f + "' must be ADDRESS=AMOUNT_UGPN, e.g. gpn1...=1000000");
    auto address = OrFail(crypto::ParseAddress(f.substr(0, eq)), "--fund address");
    const std::string amount = f.substr(eq + 1);
    char* end = nullptr;
    uint64_t v = std::strtoull(amount.c_str(), &end, 10);
    if (amount.empty() || *end != '\0' || amount[0] == '-')
      FailCommand(ErrorCode::kInvalidArgument,
                  "--fund amount '" + amount + "' must be an integer number of ugpn");
    o.accounts.push_back(node::FundedAddress{address, v});
  }
  auto r = OrFail(node::InitHome(o), "init");
  if (g.Json()) {
    PrintJson({{"home", o.home},
               {"genesis", r.genesis_path},
               {"node_config", r.node_config_path},
               {"chain_id", o.chain_id},
               {"development", o.development}});
    return;
  }
  std::cout << "initialised " << o.home << " (chain " << o.chain_id << ", engine " << o.engine
            << (o.development ? ", a development chain" : "") << ")\n  genesis: " << r.genesis_path
            << "\n  config:  " << r.node_config_path << "\nstart it with: gpunet node --home "
            << o.home << "\n";
}

void RunNode(const GlobalOptions& g, const NodeArgs& a) {
  node::NodeOptions o;
  o.home = g.Home();
  if (!a.rpc.empty()) o.rpc = a.rpc;
  if (a.block_interval_ms != 0) o.block_interval_ms = a.block_interval_ms;
  auto n = OrFail(node::Node::Start(o), "node");
  node::StopOnSignals(*n);
  auto st = n->Status();
  std::cout << "node running: chain " << st.chain_id << " at height " << st.latest_height
            << "\nRPC: " << n->RpcUrl() << "\n(Ctrl-C stops)" << std::endl;
  auto waited = n->Wait();
  const uint64_t height = n->Status().latest_height;
  n->Stop();
  std::cout << "node stopped at height " << height << std::endl;
  OrFail(waited, "node");
}

void RunReplay(const GlobalOptions& g) {
  const std::string home = g.Home();
  auto genesis = OrFail(ledger::LoadGenesisFile(home + "/config/genesis.json"), "replay");
  storage::RocksKvOptions ko;
  ko.create_if_missing = false;
  auto kv = OrFail(storage::RocksKvStore::Open(home + "/data", ko),
                   "replay (stop the node first: the database is opened exclusively)");
  auto report = OrFail(ledger::ReplayFromGenesis(*kv, genesis), "replay");
  if (g.Json()) {
    PrintJson({{"blocks", report.blocks}, {"state_root", base::ToHex(report.state_root)}});
    return;
  }
  std::cout << "replayed " << report.blocks
            << " blocks from genesis: every stored state root reproduced; final state root "
            << base::ToHex(report.state_root) << "\n";
}

}  // namespace

void RegisterNodeCommands(CLI::App& app, GlobalOptions& g) {
  auto init_args = std::make_shared<InitArgs>();
  CLI::App* init = app.add_subcommand(
      "init",
      "Create a node home: config/genesis.json (with a fresh validator key), config/node.json, "
      "data/ and keys/.\nExample: gpunet init --home /tmp/n1 --chain-id my-chain");
  init->add_option("--home", g.home, "Home directory to create");
  init->add_option("--chain-id", init_args->chain_id, "Chain id (printable ASCII, <= 64)");
  init->add_option("--engine", init_args->engine,
                   "Consensus engine: solo (default) or bft (Tendermint; one validator here)")
      ->check(CLI::IsMember({"solo", "bft"}));
  init->add_option("--rpc", init_args->rpc, "RPC listen address host:port");
  init->add_option("--block-interval-ms", init_args->block_interval_ms,
                   "Solo: at most one block per this many ms");
  init->add_option("--fund", init_args->fund, "Genesis balance ADDRESS=AMOUNT_UGPN (repeatable)");
  init->add_flag("--development", init_args->development,
                 "Mark the genesis a development chain: provider daemons may run GPUs declared "
                 "in provider.yaml without NVIDIA hardware (fixed for the chain's life; "
                 "`gpunet devnet` sets it)");
  init->callback([&g, init_args] { RunInit(g, *init_args); });

  auto node_args = std::make_shared<NodeArgs>();
  CLI::App* node = app.add_subcommand(
      "node",
      "Run a node from its home with the engine `gpunet init --engine` chose (node.json):\n"
      "solo makes a block when txs wait; bft runs Tendermint rounds (one validator until\n"
      "peers exist). RPC on HTTP. Logs one line per block.\n"
      "Example: gpunet node --home /tmp/n1 --rpc 127.0.0.1:26657");
  node->add_option("--home", g.home, "Home directory made by `gpunet init`");
  node->add_option("--rpc", node_args->rpc, "Override the RPC listen address host:port");
  node->add_option("--block-interval-ms", node_args->block_interval_ms,
                   "Override the block interval");
  node->callback([&g, node_args] {
    if (node_args->replay) return RunReplay(g);
    RunNode(g, *node_args);
  });
  node->add_flag("--replay-check", node_args->replay,
                 "Do not run: re-execute every stored block from genesis on a fresh in-memory "
                 "ledger and check each block's state root, receipts and header");
}

}  // namespace gpunet::apps
