// `gpunet devnet`: a whole chain for trying things out, in one command with
// nothing prepared: a home (temporary unless --home), a genesis funding named keys,
// and a running solo node. Ctrl-C / SIGTERM stop it cleanly (exit 0).
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <utility>

#include "apps/gpunet/cli.h"
#include "client/amount.h"
#include "crypto/keystore.h"
#include "node/node.h"

namespace gpunet::apps {
namespace {

using base::ErrorCode;

/// The keystore passphrase of devnet keys when GPUNET_PASSPHRASE is not set.
/// Printed at start; a devnet key must never hold anything of value.
constexpr const char* kDevnetPassphrase = "devnet";
/// Each devnet key's genesis balance: 1,000,000 GPN.
constexpr uint64_t kDevnetBalanceUgpn = 1'000'000ull * client::kUgpnPerGpn;

struct DevnetArgs {
  std::string home;
  std::string rpc = "127.0.0.1:26657";
  uint64_t block_interval_ms = 500;
  std::string chain_id = "gpunet-devnet";
};

/// The temporary devnet home, deleted when the command ends however it ends (a
/// genesis that cannot be checked, a failing init or start included). Holds
/// nothing when the home is one the user named.
class TemporaryHome {
 public:
  TemporaryHome() = default;
  TemporaryHome(const TemporaryHome&) = delete;
  TemporaryHome& operator=(const TemporaryHome&) = delete;
  ~TemporaryHome() { Remove(); }

  void Set(std::string path) { m_path = std::move(path); }
  /// Deletes it now; what cannot be deleted is named on stderr (the devnet's own
  /// outcome is what the command reports).
  void Remove() {
    if (m_path.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
    if (ec)
      std::cerr << "warning: cannot delete the temporary home " << m_path << ": " << ec.message()
                << "\n";
    m_path.clear();
  }

 private:
  std::string m_path;
};

/// What a user needs to reach the devnet: its URL, home, passphrase and keys.
void PrintDevnetBanner(const GlobalOptions& g, const DevnetArgs& a, const std::string& url,
                       const std::string& passphrase, bool temporary, bool initialised,
                       const std::vector<std::pair<std::string, std::string>>& keys) {
  if (g.Json()) {
    nlohmann::json j = {{"rpc_url", url},         {"home", a.home},
                        {"chain_id", a.chain_id}, {"passphrase", passphrase},
                        {"temporary", temporary}, {"keys", nlohmann::json::array()}};
    for (const auto& [name, address] : keys)
      j["keys"].push_back({{"name", name}, {"address", address}});
    PrintJson(j);
  } else {
    std::cout << "gpunet devnet is running (chain " << a.chain_id << ", a block at most every "
              << a.block_interval_ms << " ms)\n\n"
              << "  RPC URL     " << url << "\n"
              << "  home        " << a.home
              << (temporary ? "  (temporary: deleted when the devnet stops)" : "") << "\n"
              << "  passphrase  " << passphrase
              << (passphrase == kDevnetPassphrase
                      ? "  (devnet keys only; set GPUNET_PASSPHRASE to choose another)"
                      : "  (from GPUNET_PASSPHRASE)")
              << "\n\n  funded keys:\n";
    for (const auto& [name, address] : keys)
      std::cout << "    " << name << std::string(name.size() < 8 ? 8 - name.size() : 1, ' ')
                << address
                << (initialised ? "" : "  " + client::FormatGpn(kDevnetBalanceUgpn) + " GPN")
                << "\n";
    std::cout << "\nIn another terminal:\n"
              << "  export GPUNET_HOME=" << a.home << " GPUNET_NODE=" << url
              << " GPUNET_PASSPHRASE=" << passphrase << "\n"
              << "  gpunet status\n"
              << "  gpunet send alice bob 12.5\n"
              << "  gpunet query account bob --prove\n"
              << "  gpunet query block latest\n\n"
              << "Ctrl-C stops the devnet." << std::endl;
  }
}

void RunDevnet(const GlobalOptions& g, DevnetArgs a) {
  namespace fs = std::filesystem;
  if (a.home.empty()) a.home = g.home;  // `gpunet --home DIR devnet` too (not $GPUNET_HOME)
  bool temporary = a.home.empty();
  TemporaryHome temporary_home;
  if (temporary) {
    std::string pattern = (fs::temp_directory_path() / "gpunet-devnet-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      FailCommand(ErrorCode::kIo, "cannot create a temporary home under " +
                                      fs::temp_directory_path().string() + "; pass --home DIR");
    a.home = pattern;
    temporary_home.Set(a.home);
  }
  std::string passphrase = kDevnetPassphrase;
  if (const char* env = std::getenv("GPUNET_PASSPHRASE"); env != nullptr && *env != '\0')
    passphrase = env;

  std::error_code ec;
  const std::string genesis_path = a.home + "/config/genesis.json";
  const bool initialised = fs::exists(genesis_path, ec);
  if (ec) FailCommand(ErrorCode::kIo, "cannot check " + genesis_path + ": " + ec.message());
  std::vector<std::pair<std::string, std::string>> keys;  // name, address
  if (!initialised) {
    node::InitOptions init;
    init.home = a.home;
    init.chain_id = a.chain_id;
    init.rpc = a.rpc;
    init.block_interval_ms = a.block_interval_ms;
    // alice, bob, carol for transfers; provider, operator, investor, tenant for the
    // market story of `make demo` (docs/market-cli.md).
    for (const char* name : {"alice", "bob", "carol", "provider", "operator", "investor", "tenant"})
      init.keys.push_back({name, kDevnetBalanceUgpn});
    init.key_passphrase = passphrase;
    init.fast_kdf = true;
    init.development = true;  // declared GPUs allowed (docs/ledger.md "Genesis")
    auto made = OrFail(node::InitHome(init), "creating the devnet home " + a.home);
    for (const auto& k : made.keys) keys.emplace_back(k.name, k.address_text);
  } else {
    auto list = OrFail(crypto::Keystore::AtHome(a.home).List(), "reading the keys of " + a.home);
    for (const auto& e : list) keys.emplace_back(e.name, crypto::AddressToString(e.address));
  }

  node::NodeOptions options;
  options.home = a.home;
  options.rpc = a.rpc;
  options.block_interval_ms = a.block_interval_ms;
  auto started = node::Node::Start(options);
  if (!started) {
    base::Error e = started.error();
    // The RPC port is taken (HttpServer::Start's bind or listen failure).
    if (e.code == ErrorCode::kIo && e.message.starts_with("cannot listen on "))
      e.message +=
          " (another devnet or node on " + a.rpc + "? pass --rpc 127.0.0.1:0 for any free port)";
    throw CommandFailed{e};
  }
  std::unique_ptr<node::Node> node = std::move(*started);
  node::StopOnSignals(*node);
  std::string url = node->RpcUrl();

  PrintDevnetBanner(g, a, url, passphrase, temporary, initialised, keys);

  base::Status waited = node->Wait();
  node->Stop();
  node.reset();
  temporary_home.Remove();
  OrFail(std::move(waited), "the devnet node stopped with an error");
  if (!g.Json()) std::cout << "devnet stopped" << std::endl;
}

}  // namespace

void RegisterDevnetCommands(CLI::App& app, GlobalOptions& g) {
  auto args = std::make_shared<DevnetArgs>();
  auto* devnet = app.add_subcommand(
      "devnet",
      "Run a local one-node chain with funded keys (alice, bob, carol; provider, operator, "
      "investor, tenant for the market) — nothing to prepare");
  devnet->add_option(
      "--home", args->home,
      "Keep the chain in DIR (created, or resumed when it holds one); default: a temporary "
      "directory deleted on exit");
  devnet->add_option("--rpc", args->rpc, "host:port the RPC listens on (port 0 = any free port)");
  devnet
      ->add_option("--block-interval-ms", args->block_interval_ms,
                   "At most one block per this many ms")
      ->check(CLI::Range(uint64_t{1}, uint64_t{3'600'000}));
  devnet->add_option("--chain-id", args->chain_id, "Chain id of a new devnet");
  devnet->footer(
      "Keys are sealed with the passphrase \"devnet\" (or $GPUNET_PASSPHRASE); each starts with "
      "1000000 GPN.\n"
      "Examples:\n"
      "  gpunet devnet\n"
      "  gpunet devnet --rpc 127.0.0.1:0 --block-interval-ms 200\n"
      "  gpunet devnet --home ./mychain      # keeps the chain between runs");
  devnet->callback([&g, args] { RunDevnet(g, *args); });
}

}  // namespace gpunet::apps
