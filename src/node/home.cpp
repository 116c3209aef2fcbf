#include "node/home.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "base/check.h"
#include "base/clock.h"
#include "base/file_util.h"
#include "crypto/address.h"
#include "crypto/keystore.h"
#include "crypto/mnemonic.h"
#include "ledger/genesis.h"
#include "node/config.h"

namespace gpunet::node {

using base::ErrorCode;
using base::Fail;
namespace fs = std::filesystem;

namespace {

// validator.seed is 64 hex characters and a newline; anything much larger is not one.
constexpr size_t kValidatorSeedFileBytesMax = 4096;

/// What is at `path`, a link not followed: kIo naming the path and the OS's reason
/// when that cannot be told (not_found when nothing is there).
base::Result<fs::file_status> LinkStatus(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(path, ec);
  if (ec && status.type() != fs::file_type::not_found)
    return Fail(ErrorCode::kIo, "cannot check " + path + ": " + ec.message());
  return status;
}

/// Whether anything is at `path` (a link followed): kIo naming the path and the OS's
/// reason when that cannot be told.
base::Result<bool> Exists(const std::string& path) {
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot check " + path + ": " + ec.message());
  return exists;
}

/// Everything InitHome will write, made and checked in memory first.
struct InitPlan {
  NodeConfig node_config;
  ledger::Genesis genesis;
  crypto::KeyPair validator;
  std::vector<crypto::KeyPair> keys;  ///< one per InitOptions::keys, in order
};

/// The checks on what InitHome writes into an existing home: a validator seed is never
/// replaced and a key file never overwritten, and a link is never written through.
base::Status CheckInitTargets(const InitOptions& o, const std::string& seed_path,
                              const crypto::Keystore& ks) {
  GPUNET_TRY_ASSIGN(const fs::file_status seed, LinkStatus(seed_path));
  if (fs::is_symlink(seed))
    return Fail(ErrorCode::kCorrupt, seed_path +
                                         " is a symbolic link; refusing to write the validator "
                                         "seed through it: remove the link and run init again");
  if (fs::exists(seed))
    return Fail(ErrorCode::kAlreadyExists,
                seed_path +
                    " exists but genesis.json does not (an earlier init stopped, or genesis.json "
                    "was removed); init never replaces a validator key: move " +
                    seed_path + " away (keep it if it has signed blocks) and run init again");
  std::vector<std::string> names;
  for (const auto& k : o.keys) {
    GPUNET_TRY(crypto::ValidateKeyName(k.name));
    if (std::find(names.begin(), names.end(), k.name) != names.end())
      return Fail(ErrorCode::kInvalidArgument,
                  "key \"" + k.name + "\" is named twice; give each funded key its own name");
    names.push_back(k.name);
    GPUNET_TRY_ASSIGN(const fs::file_status key_file, LinkStatus(ks.PathOf(k.name)));
    if (fs::exists(key_file))
      return Fail(ErrorCode::kAlreadyExists, "a key named \"" + k.name + "\" already exists (" +
                                                 ks.PathOf(k.name) +
                                                 "); choose another name, or delete it first");
  }
  return base::Ok();
}

/// Checks the options and builds node.json, the keys and the genesis, writing nothing.
base::Result<InitPlan> PlanInit(const InitOptions& o) {
  if (!o.keys.empty() && o.key_passphrase.empty())
    return Fail(ErrorCode::kInvalidArgument, "funded keys need a passphrase to seal their files");
  InitPlan plan{
      .node_config = {}, .genesis = {}, .validator = crypto::KeyPair::Generate(), .keys = {}};
  NodeConfig& nc = plan.node_config;
  GPUNET_TRY_ASSIGN(const auto host_port, ParseHostPort(o.rpc));
  nc.rpc_host = host_port.first;
  nc.rpc_port = host_port.second;
  nc.block_interval_ms = o.block_interval_ms == 0 ? 1000 : o.block_interval_ms;
  nc.engine = o.engine;

  ledger::Genesis& g = plan.genesis;
  g.chain_id = o.chain_id;
  g.genesis_time_ms = o.genesis_time_ms != 0
                          ? o.genesis_time_ms
                          : static_cast<uint64_t>(base::SystemClock::Instance().NowMs());
  g.app_version = 1;
  g.development = o.development;
  g.params.block_interval_ms = nc.block_interval_ms;
  g.validators.validators.push_back(codec::Validator{plan.validator.Public(), 10});
  for (const auto& k : o.keys) {
    plan.keys.push_back(crypto::KeyPair::Generate());
    g.accounts.push_back(
        ledger::GenesisAccount{crypto::AddressOf(plan.keys.back().Public()), k.balance_ugpn});
  }
  for (const auto& a : o.accounts)
    g.accounts.push_back(ledger::GenesisAccount{a.address, a.balance_ugpn});
  std::sort(g.accounts.begin(), g.accounts.end(),
            [](const auto& a, const auto& b) { return a.address < b.address; });
  GPUNET_TRY(ledger::ValidateGenesis(g));
  GPUNET_CHECK(plan.keys.size() == o.keys.size());
  return plan;
}

/// Makes the home and its folders: the operator's alone, 0700 whatever the umask. Its
/// missing parents are made 0755 (under umask 0 they would be 0777), and no parent
/// may be one that others could use to swap the home, validator seed and all.
base::Status MakeHomeDirectories(const InitOptions& o, const std::string& config_dir) {
  std::string home = o.home;
  while (home.size() > 1 && home.back() == '/') home.pop_back();
  std::error_code ec;
  const fs::path absolute = fs::absolute(home, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot resolve --home " + home + ": " + ec.message());
  GPUNET_TRY(base::MakeParentDirectories(absolute.string(), 0755, "the node home " + home));
  GPUNET_TRY(base::MakeDirectory(home, 0700));
  GPUNET_TRY(base::MakeDirectory(config_dir, 0700));
  GPUNET_TRY(base::MakeDirectory(o.home + "/data", 0700));
  return base::Ok();
}

}  // namespace

base::Result<InitResult> InitHome(const InitOptions& o) {
  if (o.home.empty()) return Fail(ErrorCode::kInvalidArgument, "--home must name a directory");
  if (o.engine != "solo" && o.engine != "bft")
    return Fail(ErrorCode::kUnsupported,
                "engine '" + o.engine + "' is not available; use solo or bft");
  const std::string config_dir = o.home + "/config";
  const std::string seed_path = config_dir + "/validator.seed";
  InitResult out;
  out.genesis_path = config_dir + "/genesis.json";
  out.node_config_path = config_dir + "/node.json";
  GPUNET_TRY_ASSIGN(const bool initialised, Exists(out.genesis_path));
  if (initialised)
    return Fail(ErrorCode::kAlreadyExists, out.genesis_path +
                                               " already exists: this home is initialised; "
                                               "start it with `gpunet node --home " +
                                               o.home + "` or pick another --home");
  crypto::KdfParams kdf = crypto::KdfParams::Interactive();
  if (o.fast_kdf) kdf = crypto::KdfParams{1, 8192};
  crypto::Keystore ks(o.home + "/keys", kdf);
  // Every check before the first write: a refused init leaves the home as it was, so
  // it can simply run again (docs/node.md).
  GPUNET_TRY_ASSIGN(const InitPlan plan, PlanInit(o));
  GPUNET_TRY(CheckInitTargets(o, seed_path, ks));
  out.validator_public_key = plan.validator.Public();
  GPUNET_TRY(MakeHomeDirectories(o, config_dir));

  // The seed first and genesis.json last (its presence marks the home initialised).
  // kRefuse: a validator key is never replaced, even if the check above raced.
  GPUNET_TRY(base::WriteFileAtomic(
      seed_path, base::ToHex(plan.validator.SeedBytes()) + "\n",
      {.mode = 0600, .if_exists = base::IfExists::kRefuse, .before_commit = {}}));
  for (size_t i = 0; i < o.keys.size(); ++i) {
    const crypto::Seed seed = plan.keys[i].SeedBytes();
    GPUNET_TRY_ASSIGN(const auto entry, ks.Import(o.keys[i].name, seed, o.key_passphrase));
    out.keys.push_back(InitResult::Key{o.keys[i].name, entry.address,
                                       crypto::AddressToString(entry.address),
                                       o.keys[i].balance_ugpn, crypto::SeedToMnemonic(seed)});
  }
  GPUNET_TRY(base::WriteFileAtomic(out.node_config_path, NodeConfigToJson(plan.node_config),
                                   {.mode = 0644}));
  GPUNET_TRY(
      base::WriteFileAtomic(out.genesis_path, ledger::GenesisToJson(plan.genesis), {.mode = 0644}));
  return out;
}

base::Result<std::string> InitialisedGenesisPath(const std::string& home) {
  const std::string genesis_path = home + "/config/genesis.json";
  GPUNET_TRY_ASSIGN(const bool initialised, Exists(genesis_path));
  if (!initialised)
    return Fail(ErrorCode::kNotFound, genesis_path +
                                          " not found: initialise the home first with "
                                          "`gpunet init --home " +
                                          home + "`");
  return genesis_path;
}

base::Result<crypto::KeyPair> ReadValidatorKey(const std::string& home) {
  GPUNET_TRY_ASSIGN(std::string seed_text, base::ReadFileNoFollow(home + "/config/validator.seed",
                                                                  kValidatorSeedFileBytesMax));
  while (!seed_text.empty() && (seed_text.back() == '\n' || seed_text.back() == ' '))
    seed_text.pop_back();
  GPUNET_TRY_ASSIGN(const auto seed, base::FixedFromHex<32>(seed_text));
  return crypto::KeyPair::FromSeed(seed);
}

}  // namespace gpunet::node
