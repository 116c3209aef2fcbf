// `gpunet provider init`, `provider apply` and `provider status` (docs/provider.md):
// the operator's verbs around the daemon. The logic lives in libraries
// (provider/init_config.h probes and writes provider.yaml, provider/tls_identity.h
// makes the TLS key, client/provider_plan.h plans apply); this file asks for
// passphrases, prints, confirms and signs.

#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/gpunet/cli.h"
#include "base/clock.h"
#include "base/file_util.h"
#include "client/amount.h"
#include "client/market_client.h"
#include "client/market_config.h"
#include "client/market_tx.h"
#include "client/node_client.h"
#include "client/provider_plan.h"
#include "codec/hashes.h"
#include "crypto/address.h"
#include "crypto/keystore.h"
#include "provider/bidder.h"
#include "provider/home.h"
#include "provider/init_config.h"
#include "provider/tls_identity.h"

namespace gpunet::apps {
namespace {

using base::ErrorCode;
using nlohmann::json;

/// The operator key's name in <home>/keys.
constexpr const char* kOperatorKeyName = "operator";

struct SetupArgs {
  std::string home;             ///< the provider home (--home of these verbs)
  std::string passphrase_file;  ///< the operator key's passphrase
  std::string owner;            ///< key name (wallet) or gpn1 address
  std::string host, region = "local", bond, payee, listen = "0.0.0.0:8443", fee;
  bool dry_run = false, yes = false, undrain = false;
};

std::string HomeDir(const SetupArgs& a) {
  return a.home.empty() ? provider::DefaultProviderHome() : a.home;
}

std::string Gpn(uint64_t ugpn) {
  return client::FormatGpn(ugpn) + " GPN";
}

/// A secret wiped when it goes.
struct Passphrase {
  std::string text;
  ~Passphrase() { std::fill(text.begin(), text.end(), '\0'); }
};

/// The first line of a passphrase file, which must be readable by its owner only.
Passphrase ReadPassphraseFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    FailCommand(ErrorCode::kNotFound, "passphrase file " + path + " does not exist");
  if ((st.st_mode & 077) != 0)
    FailCommand(ErrorCode::kInvalidArgument,
                "passphrase file " + path +
                    " is readable by others; make it readable by its owner only (chmod 600 " +
                    path + ")");
  Passphrase p{OrFail(base::ReadFileNoFollow(path, 4096), "passphrase file " + path)};
  p.text = p.text.substr(0, p.text.find('\n'));
  if (!p.text.empty() && p.text.back() == '\r') p.text.pop_back();
  if (p.text.empty())
    FailCommand(ErrorCode::kInvalidArgument, "passphrase file " + path + " is empty");
  return p;
}

/// The operator key's passphrase: `file`, else $GPUNET_PASSPHRASE, else the
/// terminal (asked twice when `confirm`, for a new key).
Passphrase OperatorPassphrase(const std::string& file, bool confirm) {
  if (!file.empty()) return ReadPassphraseFile(file);
  if (const char* env = std::getenv("GPUNET_PASSPHRASE"); env != nullptr && *env != '\0')
    return {env};
  Passphrase p, again;
  if (!ReadLineFromTty(
          std::string(confirm ? "New passphrase" : "Passphrase") + " for the operator key: ", false,
          p.text))
    FailCommand(ErrorCode::kInvalidArgument,
                "the operator key needs a passphrase and there is no terminal to ask on: give "
                "--passphrase-file FILE (readable only by you) or set GPUNET_PASSPHRASE");
  if (p.text.empty()) FailCommand(ErrorCode::kInvalidArgument, "the passphrase must not be empty");
  if (confirm &&
      (!ReadLineFromTty("Repeat the passphrase: ", false, again.text) || again.text != p.text))
    FailCommand(ErrorCode::kInvalidArgument, "the two passphrases differ; nothing was written");
  return p;
}

/// A key name or gpn1 address as an address: a name is looked up in the provider
/// home's keystore (`home`, when given: the operator key) and then in the wallet
/// (the global --home or $GPUNET_HOME: the owner's and the payees' keys).
base::Result<codec::Address> ResolveParty(const GlobalOptions& g,
                                          const provider::ProviderHome* home,
                                          const std::string& text, const std::string& where) {
  std::vector<std::string> stores;
  if (home != nullptr) stores.push_back(home->KeysDir());
  stores.push_back(crypto::Keystore::AtHome(g.Home()).Dir());
  return ResolveAddressOrKey(text, where, stores);
}

// ---------------------------------------------------------------- init

/// Refuses a home that already holds any of what init writes.
void RefuseExistingHome(const provider::ProviderHome& home) {
  for (const std::string& path : {home.ConfigPath(), home.KeysDir(), home.TlsDir()}) {
    std::error_code ec;
    if (std::filesystem::exists(std::filesystem::symlink_status(path, ec)))
      FailCommand(ErrorCode::kAlreadyExists,
                  path + " exists: " + home.dir +
                      " is already a provider home, and init never overwrites one (its keys "
                      "and TLS key may be in use). Use it as it is, or give another --home");
  }
}

provider::InitValues InitValuesOf(const GlobalOptions& g, const SetupArgs& a,
                                  const std::string& operator_address,
                                  const base::Hash32& fingerprint, const std::string& host) {
  provider::InitValues v;
  v.operator_address = operator_address;
  const std::string& payee = a.payee.empty() ? a.owner : a.payee;
  if (!payee.empty())
    v.payee = crypto::AddressToString(
        OrFail(ResolveParty(g, nullptr, payee, a.payee.empty() ? "--owner" : "--payee")));
  v.tenant_api_uri = "https://" + host + ":" + a.listen.substr(a.listen.rfind(':') + 1);
  v.tls_fingerprint = fingerprint;
  v.region = a.region;
  v.bond_gpn = a.bond;
  v.node_url = g.NodeUrl();
  v.listen = a.listen;
  if (!a.passphrase_file.empty())
    v.passphrase_file = std::filesystem::absolute(a.passphrase_file).lexically_normal().string();
  return v;
}

void PrintInitDone(const GlobalOptions& g, const provider::ProviderHome& home,
                   const provider::HostInventory& inv, const crypto::KeyEntry& op,
                   const base::Hash32& fp) {
  std::string address = crypto::AddressToString(op.address);
  if (g.Json())
    return PrintJson({{"home", home.dir},
                      {"config", home.ConfigPath()},
                      {"operator", {{"key", kOperatorKeyName}, {"address", address}}},
                      {"tls_fingerprint", base::ToHex(fp)},
                      {"tls_cert", home.TlsCertPath()},
                      {"gpus", inv.gpus.size()},
                      {"nvml", inv.nvml_answered ? json("answered") : json(inv.nvml_problem)}});
  std::cout << "Provider home " << home.dir << "\n"
            << "  provider.yaml  " << home.ConfigPath() << " (commented; check the CHECK marks)\n"
            << "  operator key   " << address << " in " << home.KeysDir() << "\n"
            << "  TLS key        " << home.TlsKeyPath() << " (0600), fingerprint "
            << base::ToHex(fp) << "\n"
            << "  GPUs           "
            << (inv.nvml_answered
                    ? std::to_string(inv.gpus.size()) + " (NVML, driver " + inv.driver_version + ")"
                    : "none: " + inv.nvml_problem +
                          " (declared GPUs work on a development chain only)")
            << "\n"
            << "  host           " << inv.cpu_cores << " cores, " << inv.memory_gib
            << " GiB memory, " << inv.disk_gib << " GiB free disk\n\n"
            << "The owner key is not made here: it holds the bond and the payouts and belongs\n"
            << "off this host (docs/provider.md, \"Keys\"). Next:\n"
            << "  1. fund the operator for fees:  gpunet send OWNER " << address << " 10\n"
            << "  2. review " << home.ConfigPath() << "\n"
            << "  3. gpunet provider apply --home " << home.dir << " --owner OWNER --dry-run\n"
            << std::flush;
}

void RunInit(const GlobalOptions& g, SetupArgs a) {
  std::error_code ec;
  const std::string dir = std::filesystem::absolute(HomeDir(a), ec).lexically_normal().string();
  provider::ProviderHome home{dir.size() > 1 && dir.back() == '/' ? dir.substr(0, dir.size() - 1)
                                                                  : dir};
  RefuseExistingHome(home);
  if (a.bond.empty()) a.bond = client::FormatGpn(market::Params{}.provider_bond_min_ugpn);
  OrFail(client::ParseAmount(a.bond), "--bond");
  std::filesystem::create_directories(home.dir, ec);
  if (ec) FailCommand(ErrorCode::kIo, "cannot make " + home.dir + ": " + ec.message());
  // 0711: the sandbox's unprivileged uids pass through to sandbox/ (home.h).
  std::filesystem::permissions(home.dir, std::filesystem::perms(0711), ec);
  provider::HostInventory inv = provider::ProbeHost(home.dir);
  std::string host = a.host.empty() ? inv.host_name : a.host;

  Passphrase pass = OperatorPassphrase(a.passphrase_file, true);
  crypto::Keystore keystore(home.KeysDir());
  auto op = OrFail(keystore.Add(kOperatorKeyName, pass.text), "making the operator key");
  auto identity = OrFail(provider::GenerateTlsIdentity(host), "making the TLS key");
  OrFail(provider::WriteTlsIdentity(home, identity));
  std::string yaml = provider::RenderProviderYaml(
      inv,
      InitValuesOf(g, a, crypto::AddressToString(op.entry.address), identity.spki_sha256, host));
  OrFail(base::WriteFileAtomic(home.ConfigPath(), yaml,
                               {.mode = 0644, .if_exists = base::IfExists::kRefuse}));
  std::filesystem::create_directories(home.StateDir(), ec);
  std::filesystem::permissions(home.StateDir(), std::filesystem::perms(0700), ec);
  // What init wrote must be what apply and run read; a refusal here is a bug of init.
  OrFail(client::LoadProviderConfig(home.ConfigPath()),
         "the provider.yaml init wrote does not parse (a bug in gpunet: please report it)");
  PrintInitDone(g, home, inv, op.entry, identity.spki_sha256);
}

// ---------------------------------------------------------------- sending

struct SentTx {
  std::string signer;  ///< "owner" or "operator"
  std::string tx_hash;
  uint64_t height = 0;
  uint64_t fee_ugpn = 0;
  std::string msgs;  ///< their names
};

uint64_t FirstFee(const client::NodeStatusInfo& status, const std::vector<codec::Msg>& chunk) {
  if (!status.fees) return client::kDefaultTransferFeeUgpn;
  return OrFail(client::MarketTxFee(*status.fees, status.chain_id, chunk, ""));
}

/// Signs `msgs` as `key` and sends them (in txs of at most kMsgsPerTxMax
/// messages, nonces in order), each fee simulated right before it is signed, after
/// the previous tx committed. Ends the command at the first failure, saying what
/// is committed already (apply again finishes the rest: it plans from the ledger).
void SendAs(const GlobalOptions& g, client::NodeClient& node, const client::NodeStatusInfo& status,
            const crypto::KeyPair& key, const std::string& signer, const std::string& fee_text,
            std::vector<codec::Msg> msgs, std::vector<SentTx>& sent) {
  auto account = OrFail(node.GetAccount(crypto::AddressOf(key.Public()), false));
  uint64_t nonce = account.nonce;
  for (auto& chunk : client::ChunkMsgs(std::move(msgs))) {
    std::string names;
    for (const auto& m : chunk)
      names += (names.empty() ? "" : ", ") + std::string(codec::MsgName(m));
    uint64_t fee =
        fee_text.empty() ? FirstFee(status, chunk) : OrFail(client::ParseAmount(fee_text), "--fee");
    if (fee_text.empty()) {
      codec::TxBody body{status.chain_id, key.Public(), nonce, fee, 0, chunk, ""};
      if (auto simulated = OrFail(client::SimulatedFee(node, status, std::move(body)), names))
        fee = std::max(fee, *simulated);
    }
    codec::Tx tx = OrFail(client::BuildMarketTx(key, status.chain_id, nonce++, chunk, fee, 0, ""));
    std::string hash = base::ToHex(codec::TxHash(tx));
    std::string done = sent.empty() ? ""
                                    : " (" + std::to_string(sent.size()) +
                                          " earlier txs are committed; apply again sends "
                                          "what is left)";
    auto r = node.SubmitTx(tx, true, 30'000);
    if (!r) {
      base::Error e = r.error();
      e.message +=
          done + (e.code == ErrorCode::kTimeout ? "; tx " + hash + " may still commit" : "");
      throw CommandFailed{e};
    }
    if (r->code != 0)
      FailCommand(ErrorCode::kInvalidArgument,
                  "the " + signer + "'s tx (" + names + ") was included in block " +
                      std::to_string(r->height) + " but FAILED: " + r->code_name + " (" +
                      std::to_string(r->code) + ") " + r->message +
                      "; the fee was charged, nothing else changed" + done);
    if (!g.Json())
      std::cout << "committed in block " << r->height << " (" << signer << "): " << names
                << " (fee " << Gpn(r->fee_ugpn) << ")" << std::endl;
    sent.push_back({signer, hash, r->height, r->fee_ugpn, names});
  }
}

// ---------------------------------------------------------------- apply

/// --node or $GPUNET_NODE when given, else provider.yaml's daemon.node.
std::string NodeUrlFor(const GlobalOptions& g, const client::ProviderConfig& config) {
  if (!g.node_url.empty() || std::getenv("GPUNET_NODE") != nullptr) return g.NodeUrl();
  return config.daemon.node_url;
}

/// NodeUrlFor the provider.yaml of the verb's home.
std::string HomeNodeUrl(const GlobalOptions& g, const SetupArgs& a) {
  return NodeUrlFor(g, OrFail(client::LoadProviderConfig(
                           OrFail(provider::OpenProviderHome(HomeDir(a))).ConfigPath())));
}

/// The ledger's record of `owner`, nullopt when it is not registered.
std::optional<client::ProviderInfo> LedgerProvider(client::MarketClient& market,
                                                   const codec::Address& owner) {
  auto r = market.Provider(crypto::AddressToString(owner));
  if (!r && r.error().code == ErrorCode::kNotFound) return std::nullopt;
  return OrFail(std::move(r), "reading the provider from the node").value;
}

/// The registered provider whose operator is `op` (one page of providers).
std::optional<std::string> ProviderOfOperator(client::MarketClient& market,
                                              const codec::Address& op) {
  auto page = OrFail(market.Providers(1000), "listing providers");
  for (const auto& p : page.entries)
    if (p.active && p.operator_address == crypto::AddressToString(op)) return p.owner;
  return std::nullopt;
}

/// What apply works from: the provider home's config, the parties, the chain.
struct ApplyContext {
  provider::ProviderHome home;
  client::ProviderConfig config;
  codec::Address owner{};
  codec::Address operator_address{};
  client::NodeStatusInfo status;
  std::optional<client::ProviderInfo> ledger;
};

ApplyContext LoadApplyContext(const GlobalOptions& g, const SetupArgs& a, client::NodeClient& node,
                              client::MarketClient& market) {
  ApplyContext c;
  c.home = OrFail(provider::OpenProviderHome(HomeDir(a)));
  c.config = OrFail(client::LoadProviderConfig(c.home.ConfigPath()));
  c.status = OrFail(node.Status(), "reading the node's status");
  if (c.config.has_operator)
    c.operator_address = OrFail(ResolveParty(g, &c.home, c.config.operator_key.text,
                                             c.config.operator_key.place.Describe()));
  std::string owner_text = a.owner;
  if (owner_text.empty()) {
    auto found =
        c.config.has_operator ? ProviderOfOperator(market, c.operator_address) : std::nullopt;
    if (!found)
      FailCommand(ErrorCode::kInvalidArgument,
                  "no registered provider has this operator: give --owner NAME (the owner key "
                  "in your wallet, which registers the provider and pays its bond)");
    owner_text = *found;
  }
  c.owner = OrFail(ResolveParty(g, nullptr, owner_text, "--owner"));
  if (!c.config.has_operator) c.operator_address = c.owner;
  c.ledger = LedgerProvider(market, c.owner);
  return c;
}

/// The money a plan moves, and the two accounts that pay it.
struct PlanMoney {
  client::PlanFees fees;
  uint64_t owner_balance_ugpn = 0, operator_balance_ugpn = 0;
  std::vector<std::string> shortfalls;  ///< one sentence per account that cannot pay
};

PlanMoney MoneyOf(const ApplyContext& c, const client::ProviderPlan& plan,
                  client::NodeClient& node) {
  PlanMoney m;
  if (c.status.fees)
    m.fees = OrFail(client::EstimatePlanFees(plan, *c.status.fees, c.status.chain_id));
  m.owner_balance_ugpn = OrFail(node.GetAccount(c.owner, false)).balance_ugpn;
  m.operator_balance_ugpn = OrFail(node.GetAccount(c.operator_address, false)).balance_ugpn;
  bool same = c.owner == c.operator_address;
  uint64_t owner_needs = plan.bond_ugpn + m.fees.owner_ugpn + (same ? m.fees.operator_ugpn : 0);
  if (owner_needs > m.owner_balance_ugpn)
    m.shortfalls.push_back("the owner " + crypto::AddressToString(c.owner) + " has " +
                           Gpn(m.owner_balance_ugpn) + " but needs at least " + Gpn(owner_needs) +
                           " (bond and fees)");
  if (!same && m.fees.operator_ugpn > m.operator_balance_ugpn)
    m.shortfalls.push_back("the operator " + crypto::AddressToString(c.operator_address) + " has " +
                           Gpn(m.operator_balance_ugpn) + " but needs at least " +
                           Gpn(m.fees.operator_ugpn) +
                           " in fees: fund it with `gpunet send OWNER " +
                           crypto::AddressToString(c.operator_address) + " 10`");
  return m;
}

void PrintPlan(const ApplyContext& c, const client::ProviderPlan& plan, const PlanMoney& m) {
  std::cout << "provider " << crypto::AddressToString(c.owner) << " on " << c.status.chain_id
            << (c.ledger ? "" : " (not registered yet)") << "\n";
  if (plan.Empty()) {
    for (const auto& line : plan.diff) std::cout << "  " << line << "\n";
    std::cout << "nothing to do: the ledger matches " << c.home.ConfigPath() << std::endl;
    return;
  }
  std::cout << "changes to make the ledger match " << c.home.ConfigPath() << ":\n";
  for (const auto& line : plan.diff) std::cout << "  " << line << "\n";
  std::cout << "money:\n";
  if (plan.bond_ugpn > 0)
    std::cout << "  bond      " << Gpn(plan.bond_ugpn)
              << " leaves the owner's balance (held while registered)\n";
  std::cout << "  fees      at least ";
  if (m.fees.owner_ugpn > 0)
    std::cout << Gpn(m.fees.owner_ugpn) << " from the owner (balance " << Gpn(m.owner_balance_ugpn)
              << ")" << (m.fees.operator_ugpn > 0 ? ", " : "");
  if (m.fees.operator_ugpn > 0)
    std::cout << Gpn(m.fees.operator_ugpn) << " from the operator (balance "
              << Gpn(m.operator_balance_ugpn) << ")";
  std::cout << "; each tx is simulated before it is signed\n";
  for (const auto& s : m.shortfalls) std::cout << "  WARNING   " << s << "\n";
  std::cout << std::flush;
}

json PlanJson(const ApplyContext& c, const client::ProviderPlan& plan, const PlanMoney& m,
              bool dry_run, const std::vector<SentTx>& sent) {
  json steps = json::array(), txs = json::array();
  for (const auto& s : plan.steps)
    steps.push_back({{"signer", s.signer == client::PlanSigner::kOwner ? "owner" : "operator"},
                     {"msg", codec::MsgName(s.msg)}});
  for (const auto& t : sent)
    txs.push_back({{"signer", t.signer},
                   {"tx_hash", t.tx_hash},
                   {"height", t.height},
                   {"fee_ugpn", std::to_string(t.fee_ugpn)},
                   {"msgs", t.msgs}});
  return {{"provider", crypto::AddressToString(c.owner)},
          {"operator", crypto::AddressToString(c.operator_address)},
          {"registered", c.ledger.has_value()},
          {"nothing_to_do", plan.Empty()},
          {"dry_run", dry_run},
          {"changes", plan.diff},
          {"steps", steps},
          {"bond_ugpn", std::to_string(plan.bond_ugpn)},
          {"fees_ugpn",
           {{"owner", std::to_string(m.fees.owner_ugpn)},
            {"operator", std::to_string(m.fees.operator_ugpn)}}},
          {"balances_ugpn",
           {{"owner", std::to_string(m.owner_balance_ugpn)},
            {"operator", std::to_string(m.operator_balance_ugpn)}}},
          {"warnings", m.shortfalls},
          {"sent", txs}};
}

/// The operator key of <home>/keys, found by its address and unlocked.
crypto::KeyPair OperatorKey(const ApplyContext& c, const SetupArgs& a) {
  crypto::Keystore keystore(c.home.KeysDir());
  std::string name;
  for (const auto& e : OrFail(keystore.List()))
    if (!e.problem && e.address == c.operator_address) name = e.name;
  if (name.empty())
    FailCommand(ErrorCode::kNotFound,
                "the operator " + crypto::AddressToString(c.operator_address) +
                    " of provider.yaml has no key in " + keystore.Dir() +
                    "; operator txs must be signed there (or set operator: to a key of it)");
  Passphrase pass = OperatorPassphrase(
      a.passphrase_file.empty() ? c.config.daemon.passphrase_file : a.passphrase_file, false);
  return OrFail(keystore.Load(name, pass.text), "unlocking the operator key \"" + name + "\"");
}

/// The owner key from the wallet (--owner must name it there).
crypto::KeyPair OwnerKey(const GlobalOptions& g, const ApplyContext& c, const SetupArgs& a) {
  if (!crypto::ValidateKeyName(a.owner))
    FailCommand(ErrorCode::kInvalidArgument,
                "registering, updating and bonding are signed by the owner: give --owner as the "
                "name of the owner key in your wallet (" +
                    g.Home() + "/keys)");
  crypto::KeyPair key = LoadKey(g, a.owner);
  if (crypto::AddressOf(key.Public()) != c.owner)
    FailCommand(ErrorCode::kCorrupt,
                "the key file of \"" + a.owner + "\" does not match its address");
  return key;
}

/// Asks before a bond leaves the owner's balance, unless --yes.
void ConfirmBond(const client::ProviderPlan& plan, bool yes) {
  if (plan.bond_ugpn == 0 || yes) return;
  std::string answer;
  if (!ReadLineFromTty("Bond " + Gpn(plan.bond_ugpn) + " and send these changes? [y/N] ", true,
                       answer))
    FailCommand(ErrorCode::kInvalidArgument,
                "this moves money and there is no terminal to confirm on: add --yes to go ahead");
  if (answer != "y" && answer != "Y" && answer != "yes")
    FailCommand(ErrorCode::kInvalidArgument, "cancelled: nothing was signed or sent");
}

void UndrainHome(const provider::ProviderHome& home);

void RunApply(const GlobalOptions& g, const SetupArgs& a) {
  const std::string url = HomeNodeUrl(g, a);
  client::NodeClient node(url);
  client::MarketClient market(url);
  ApplyContext c = LoadApplyContext(g, a, node, market);
  auto resolve = [&g, &c](const client::PartyText& p) {
    return ResolveParty(g, &c.home, p.text, p.place.Describe());
  };
  client::ProviderPlan plan =
      OrFail(client::PlanProvider(c.config, c.owner, resolve, c.status.market, c.ledger));
  const std::string draining = c.home.StateDir() + "/draining";
  if (provider::Draining(c.home.StateDir()) && !a.undrain)
    for (const auto& m : plan.MsgsOf(client::PlanSigner::kOperator))
      if (std::holds_alternative<codec::MsgOfferCreate>(m))
        FailCommand(ErrorCode::kConflict,
                    "this provider is draining (" + draining +
                        "): apply would re-open offers; add --undrain to sell again");
  PlanMoney money = MoneyOf(c, plan, node);
  std::vector<SentTx> sent;
  if (!g.Json()) PrintPlan(c, plan, money);
  if (plan.Empty() || a.dry_run) {
    if (g.Json()) return PrintJson(PlanJson(c, plan, money, a.dry_run, sent));
    if (!plan.Empty()) std::cout << "dry run: nothing was signed or sent" << std::endl;
    return;
  }
  if (!money.shortfalls.empty())
    FailCommand(ErrorCode::kInvalidArgument,
                "insufficient funds, nothing was sent: " + money.shortfalls.front());
  ConfirmBond(plan, a.yes);
  std::vector<codec::Msg> owner_msgs = plan.MsgsOf(client::PlanSigner::kOwner);
  std::vector<codec::Msg> operator_msgs = plan.MsgsOf(client::PlanSigner::kOperator);
  // Both keys are unlocked before anything is sent, so a wrong passphrase sends nothing.
  std::optional<crypto::KeyPair> owner_key, op_key;
  if (!owner_msgs.empty() || (!operator_msgs.empty() && c.operator_address == c.owner))
    owner_key = OwnerKey(g, c, a);
  if (!operator_msgs.empty())
    op_key = c.operator_address == c.owner ? *owner_key : OperatorKey(c, a);
  if (!owner_msgs.empty()) SendAs(g, node, c.status, *owner_key, "owner", a.fee, owner_msgs, sent);
  if (!operator_msgs.empty())
    SendAs(g, node, c.status, *op_key, "operator", a.fee, operator_msgs, sent);
  if (a.undrain) UndrainHome(c.home);
  if (g.Json()) return PrintJson(PlanJson(c, plan, money, false, sent));
  std::cout << "applied: the ledger matches " << c.home.ConfigPath() << std::endl;
}

// ---------------------------------------------------------------- drain

void UndrainHome(const provider::ProviderHome& home) {
  std::error_code ec;
  if (std::filesystem::remove(home.StateDir() + "/draining", ec))
    std::cerr << "undrained: the daemon bids again" << std::endl;
}

/// The provider's bids on open orders still in their bid window (the ledger takes
/// a withdrawal of only those).
std::vector<codec::Msg> BidWithdrawals(client::MarketClient& market, const std::string& owner) {
  std::vector<codec::Msg> msgs;
  client::MarketListQuery q;
  q.limit = 1000;
  for (;;) {
    auto page = OrFail(market.Orders(q), "listing open orders");
    for (const auto& o : page.entries) {
      if (o.state != "open" || o.bids == 0 || o.window_end_ms <= page.time_ms) continue;
      for (const auto& b : OrFail(market.Bids(o.order_id), "listing bids").value.bids)
        if (b.provider == owner) msgs.push_back(codec::MsgBidWithdraw{b.bid_id});
    }
    if (!page.next) break;
    q.after = page.next;
  }
  return msgs;
}

void RunDrain(const GlobalOptions& g, const SetupArgs& a) {
  const std::string url = HomeNodeUrl(g, a);
  client::NodeClient node(url);
  client::MarketClient market(url);
  ApplyContext c = LoadApplyContext(g, a, node, market);
  if (!c.ledger)
    FailCommand(ErrorCode::kNotFound, "the provider is not registered: nothing to drain");
  // The mark first, so the running daemon bids no more while the bids are withdrawn.
  OrFail(base::WriteFileAtomic(c.home.StateDir() + "/draining",
                               std::to_string(base::SystemClock::Instance().NowMs()) + "\n",
                               {.mode = 0644}),
         "writing the draining mark");
  std::vector<codec::Msg> msgs;
  for (const auto& o : c.ledger->offer_list)
    if (o.open) msgs.push_back(codec::MsgOfferClose{c.owner, o.offer_id});
  const size_t offers = msgs.size();
  for (auto& m : BidWithdrawals(market, crypto::AddressToString(c.owner))) msgs.push_back(m);
  std::vector<SentTx> sent;
  if (!msgs.empty()) {
    crypto::KeyPair key = c.operator_address == c.owner ? OwnerKey(g, c, a) : OperatorKey(c, a);
    SendAs(g, node, c.status, key, "operator", a.fee, msgs, sent);
  }
  if (g.Json())
    return PrintJson({{"draining", true},
                      {"offers_closed", offers},
                      {"bids_withdrawn", msgs.size() - offers},
                      {"txs", sent.size()}});
  std::cout << "draining: " << offers << " offer(s) closed, " << msgs.size() - offers
            << " bid(s) withdrawn; running leases run to their end; `provider apply "
               "--undrain` sells again"
            << std::endl;
}

// ---------------------------------------------------------------- status

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

/// The daemon's <home>/state/daemon-status.json, or why there is none: "daemon not
/// running" when absent, unreadable or older than three health polls (30 s at least).
struct DaemonView {
  std::optional<json> status;
  std::string problem;
};

DaemonView ReadDaemonStatus(const provider::ProviderHome& home, const client::DaemonConfig& d) {
  const std::string path = home.StateDir() + "/daemon-status.json";
  auto text = base::ReadFileNoFollow(path, 4 << 20);
  if (!text) return {std::nullopt, "daemon not running (no " + path + ")"};
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("updated_ms") ||
      !j["updated_ms"].is_number_unsigned())
    return {std::nullopt, "daemon not running (" + path + " is not the daemon's status)"};
  uint64_t updated = j["updated_ms"].get<uint64_t>(), now = NowMs();
  uint64_t stale_after = std::max<uint64_t>(3 * d.health_poll_ms, 30'000);
  if (now > updated && now - updated > stale_after)
    return {std::nullopt, "daemon not running (its status is " +
                              client::DescribeDurationMs(now - updated) + " old, last at " +
                              UtcText(updated) + ")"};
  return {std::move(j), ""};
}

/// What a day of heartbeats costs the operator: 86,400,000 / heartbeat_every
/// heartbeat txs at the fee of one (simulated when the node can, else the fee
/// schedule's minimum).
uint64_t DayOfFees(client::NodeClient& node, const client::NodeStatusInfo& status,
                   const provider::ProviderHome& home, const client::ProviderConfig& config,
                   const codec::Address& owner, const codec::Address& op) {
  uint64_t every = config.daemon.heartbeat_every_ms != 0
                       ? config.daemon.heartbeat_every_ms
                       : std::max<uint64_t>(status.market.heartbeat_timeout_ms / 3, 1000);
  std::vector<codec::Msg> hb{codec::MsgHeartbeat{owner}};
  uint64_t fee = FirstFee(status, hb);
  crypto::Keystore keystore(home.KeysDir());
  if (auto list = keystore.List())
    for (const auto& e : *list)
      if (!e.problem && e.address == op) {
        auto account = node.GetAccount(op, false);
        codec::TxBody body{
            status.chain_id, e.public_key, account ? account->nonce : 0, fee, 0, hb, ""};
        if (auto sim = client::SimulatedFee(node, status, std::move(body)); sim && *sim)
          fee = std::max(fee, **sim);
        break;
      }
  return (86'400'000 + every - 1) / every * fee;
}

json LeaseJson(const client::LeaseInfo& l) {
  return {{"lease_id", l.lease_id},
          {"tenant", l.tenant},
          {"state", l.state},
          {"gpus", l.gpus},
          {"started_ms", l.started_ms},
          {"paid_until_ms", l.paid_until_ms},
          {"hours_paid_ms",
           l.paid_until_ms > l.started_ms && l.started_ms > 0 ? l.paid_until_ms - l.started_ms : 0},
          {"earned_ugpn", std::to_string(l.accrued_ugpn)},
          {"withdrawn_ugpn", std::to_string(l.paid_ugpn)},
          {"withdrawable_ugpn", std::to_string(l.withdrawable_ugpn)}};
}

struct StatusView {
  std::string owner;
  std::optional<client::ProviderInfo> provider;
  std::vector<client::LeaseInfo> leases;
  DaemonView daemon;
  std::string operator_address;
  uint64_t operator_balance_ugpn = 0, day_of_fees_ugpn = 0;
  bool low_balance = false;
  bool draining = false;  ///< <home>/state/draining (provider drain)
};

json StatusJson(const StatusView& v) {
  json j;
  j["provider"] = v.owner.empty() ? json(nullptr) : json(v.owner);
  j["registered"] = v.provider.has_value();
  if (v.provider) {
    const auto& p = *v.provider;
    j["active"] = p.active;
    j["bond_ugpn"] = std::to_string(p.bond_ugpn);
    j["required_bond_ugpn"] = std::to_string(p.required_bond_ugpn);
    j["faults"] = p.faults;
    j["fault_rate_ppm"] = p.fault_rate_ppm;
    j["leases_completed"] = p.leases_completed;
    j["earned_ugpn"] = std::to_string(p.earned_ugpn);
    j["machines"] = json::array();
    for (const auto& m : p.machine_list)
      j["machines"].push_back({{"machine_id", m.machine_id},
                               {"site_id", m.site_id},
                               {"gpu_model", m.gpu_model},
                               {"gpus", m.gpu_count},
                               {"free_gpus", m.free_gpus}});
    j["offers"] = json::array();
    for (const auto& o : p.offer_list)
      j["offers"].push_back(
          {{"offer_id", o.offer_id},
           {"gpu_model", o.gpu_model},
           {"price_ugpn_per_gpu_hour", std::to_string(o.price_ugpn_per_gpu_hour)}});
  }
  j["draining"] = v.draining;
  j["leases"] = json::array();
  for (const auto& l : v.leases) j["leases"].push_back(LeaseJson(l));
  j["daemon_running"] = v.daemon.status.has_value();
  j["daemon"] = v.daemon.status ? *v.daemon.status : json(nullptr);
  if (!v.daemon.problem.empty()) j["daemon_problem"] = v.daemon.problem;
  j["operator"] = {{"address", v.operator_address},
                   {"balance_ugpn", std::to_string(v.operator_balance_ugpn)},
                   {"day_of_fees_ugpn", std::to_string(v.day_of_fees_ugpn)},
                   {"low_balance", v.low_balance}};
  return j;
}

void PrintDaemon(const DaemonView& d) {
  if (!d.status) {
    std::cout << d.problem << "\n";
    return;
  }
  const json& j = *d.status;
  std::string mode = j.value("mode", "?");
  std::cout << "daemon     running, GPUs by " << mode
            << (mode == "declared" ? " (declared in provider.yaml: development chain only)" : "")
            << ", status of " << UtcText(j["updated_ms"].get<uint64_t>()) << "\n";
  if (!j.contains("gpus") || !j["gpus"].is_array()) return;
  for (const auto& gpu : j["gpus"]) {
    if (!gpu.is_object()) continue;
    bool healthy = gpu.value("healthy", false);
    std::string problems;
    if (gpu.contains("problems") && gpu["problems"].is_array())
      for (const auto& p : gpu["problems"])
        if (p.is_string()) problems += (problems.empty() ? "" : "; ") + p.get<std::string>();
    std::cout << "gpu        " << gpu.value("uuid", "?") << "  " << gpu.value("model", "?") << "  "
              << (healthy ? "healthy" : "UNHEALTHY") << (problems.empty() ? "" : ": " + problems);
    if (gpu.contains("lease_id") && gpu["lease_id"].is_number_unsigned() &&
        gpu["lease_id"].get<uint64_t>() != 0)
      std::cout << "  lease " << gpu["lease_id"].get<uint64_t>();
    std::cout << "\n";
  }
}

void PrintStatus(const StatusView& v) {
  if (!v.provider) {
    std::cout << "provider   not registered" << (v.owner.empty() ? "" : " (" + v.owner + ")")
              << ": `gpunet provider apply --owner OWNER` registers it\n";
  } else {
    const auto& p = *v.provider;
    std::cout << "provider   " << p.owner << (p.active ? "" : "  (deregistered)") << "\n"
              << "bond       " << Gpn(p.bond_ugpn) << " (needs " << Gpn(p.required_bond_ugpn)
              << ")\n"
              << "reputation " << p.leases_completed << " leases completed, " << p.faults
              << " faults (" << p.fault_rate_ppm << " ppm), earned " << Gpn(p.earned_ugpn)
              << " from other tenants\n";
    for (const auto& m : p.machine_list)
      std::cout << "machine " << m.machine_id << "  " << m.gpu_count << "x " << m.gpu_model << ", "
                << m.free_gpus << " free\n";
    for (const auto& o : p.offer_list)
      std::cout << "offer " << o.offer_id << "    " << o.gpu_model << " at "
                << client::FormatGpn(o.price_ugpn_per_gpu_hour) << " GPN/GPU-h\n";
  }
  if (v.draining)
    std::cout << "draining   no new leases or bids; running leases run to their end "
                 "(`provider apply --undrain` sells again)\n";
  PrintDaemon(v.daemon);
  if (v.leases.empty()) std::cout << "leases     none open\n";
  for (const auto& l : v.leases)
    std::cout << "lease " << l.lease_id << "    " << l.state << ", tenant " << l.tenant << ", "
              << l.gpus << " GPU(s), paid for "
              << client::DescribeDurationMs(l.paid_until_ms > l.started_ms && l.started_ms > 0
                                                ? l.paid_until_ms - l.started_ms
                                                : 0)
              << ", earned " << Gpn(l.accrued_ugpn) << ", withdrawn " << Gpn(l.paid_ugpn) << "\n";
  std::cout << "operator   " << v.operator_address << ": " << Gpn(v.operator_balance_ugpn)
            << " (a day of heartbeats costs about " << Gpn(v.day_of_fees_ugpn) << ")\n";
  if (v.low_balance)
    std::cout << "WARNING    the operator's balance covers less than a day of fees: fund it "
                 "(`gpunet send OWNER "
              << v.operator_address << " 10`) or its heartbeats stop and its leases fault\n";
  std::cout << std::flush;
}

void RunStatus(const GlobalOptions& g, const SetupArgs& a) {
  auto home = OrFail(provider::OpenProviderHome(HomeDir(a)));
  auto config = OrFail(client::LoadProviderConfig(home.ConfigPath()));
  const std::string url = NodeUrlFor(g, config);
  client::NodeClient node(url);
  client::MarketClient market(url);
  auto status = OrFail(node.Status(), "reading the node's status");
  StatusView v;
  codec::Address op{};
  if (config.has_operator)
    op = OrFail(
        ResolveParty(g, &home, config.operator_key.text, config.operator_key.place.Describe()));
  if (!a.owner.empty())
    v.owner = crypto::AddressToString(OrFail(ResolveParty(g, nullptr, a.owner, "--owner")));
  else if (config.has_operator)
    v.owner = ProviderOfOperator(market, op).value_or("");
  if (!config.has_operator && !v.owner.empty()) op = OrFail(crypto::ParseAddress(v.owner));
  codec::Address owner{};
  if (!v.owner.empty()) {
    owner = OrFail(crypto::ParseAddress(v.owner));
    v.provider = LedgerProvider(market, owner);
  }
  if (v.provider) {
    client::MarketListQuery q;
    q.provider = v.owner;
    q.limit = 1000;
    v.leases = OrFail(market.Leases(q), "listing the provider's leases").entries;
  }
  v.daemon = ReadDaemonStatus(home, config.daemon);
  v.draining = provider::Draining(home.StateDir());
  v.operator_address = crypto::AddressToString(op);
  v.operator_balance_ugpn = OrFail(node.GetAccount(op, false)).balance_ugpn;
  v.day_of_fees_ugpn = DayOfFees(node, status, home, config, owner, op);
  v.low_balance = v.operator_balance_ugpn < v.day_of_fees_ugpn;
  if (g.Json()) return PrintJson(StatusJson(v));
  PrintStatus(v);
}
// ---------------------------------------------------------------- commands

void RegisterInit(CLI::App& provider, GlobalOptions& g, const std::shared_ptr<SetupArgs>& a) {
  auto* init = provider.add_subcommand(
      "init",
      "Make a provider home on this host: provider.yaml from what the host has, an "
      "operator key, a TLS key");
  init->add_option("--home", a->home,
                   "The provider home to make (default $GPUNET_PROVIDER_HOME, else "
                   "/var/lib/gpunet/provider as root, else ~/.gpunet/provider)");
  init->add_option("--passphrase-file", a->passphrase_file,
                   "The operator key's passphrase (first line; the file must be chmod 600); "
                   "written into provider.yaml for the daemon's unattended start. Default: "
                   "$GPUNET_PASSPHRASE, else asked twice");
  init->add_option("--owner", a->owner,
                   "The owner's gpn1 address (or key name in your wallet): payouts go to it. "
                   "Its key is not needed here");
  init->add_option("--payee", a->payee, "Payouts to this address instead of the owner");
  init->add_option("--host", a->host,
                   "The public host name (or IP) tenants reach (default: this host's name)");
  init->add_option("--listen", a->listen, "The tenant API's host:port (default 0.0.0.0:8443)");
  init->add_option("--region", a->region, "Where this host is, e.g. eu-west (default local)");
  init->add_option("--bond", a->bond, "GPN to bond (default: a default chain's minimum)");
  init->footer(
      "init refuses a home that already has provider.yaml, keys/ or tls/: it never\n"
      "overwrites a key. It probes GPUs through NVML (model, count, memory, driver),\n"
      "CPU, memory and free disk, and marks with CHECK what it could not probe.\n"
      "The owner key is NOT made here: it holds the bond, so it stays off the host.\n\n"
      "Examples:\n"
      "  gpunet provider init --home /var/lib/gpunet/provider --owner gpn1... \\\n"
      "      --host gpu.example.com --region eu-west --passphrase-file /etc/gpunet/op.pass\n"
      "  GPUNET_PASSPHRASE=dev gpunet -o json provider init --home /tmp/p --region dev");
  init->callback([&g, a] { RunInit(g, *a); });
}

/// --passphrase-file and --fee of the verbs that sign as the operator.
void AddOperatorKeyOptions(CLI::App* verb, SetupArgs& a) {
  verb->add_option("--passphrase-file", a.passphrase_file,
                   "The operator key's passphrase (default: daemon.passphrase_file, else "
                   "$GPUNET_PASSPHRASE, else asked)");
  verb->add_option("--fee", a.fee, "Fee per tx (default: simulated on the node, plus 20%)");
}

/// --home and a read-only --owner, as status and drain take them.
void AddHomeAndProviderOptions(CLI::App* verb, SetupArgs& a) {
  verb->add_option("--home", a.home, "The provider home (default as for init)");
  verb->add_option("--owner", a.owner,
                   "The provider (owner key name or address); default: the one whose operator "
                   "is provider.yaml's");
}

void RegisterApply(CLI::App& provider, GlobalOptions& g, const std::shared_ptr<SetupArgs>& a) {
  auto* apply = provider.add_subcommand(
      "apply", "Make the ledger match provider.yaml: registration, bond, sites, machines, offers");
  apply->add_option("--home", a->home, "The provider home (default as for init)");
  apply->add_option("--owner", a->owner,
                    "The owner key's name in your wallet (the global --home or $GPUNET_HOME): "
                    "it registers, updates and bonds. Only to read, a gpn1 address will do; "
                    "absent, the provider whose operator is provider.yaml's");
  AddOperatorKeyOptions(apply, *a);
  apply->add_flag("--dry-run", a->dry_run, "Show the changes and the money; sign and send nothing");
  apply->add_flag("--yes,-y", a->yes, "Do not ask before a bond leaves the owner's balance");
  apply->add_flag("--undrain", a->undrain,
                  "After `provider drain`: re-open the offers and let the daemon bid again");
  apply->footer(
      "apply compares provider.yaml with what the ledger holds and sends only the\n"
      "difference: register (or update the provider's fields), top up the bond (it never\n"
      "unbonds), upsert new or changed sites and machines, remove machines no longer\n"
      "listed, close offers not in the file and create the missing ones (a changed price\n"
      "or tenant list is a close and a create). It prints each change and the money\n"
      "first; a second run prints \"nothing to do\". The owner signs registration,\n"
      "update and bond; the operator (keys/ of the home) signs the rest.\n"
      "The node is --node / $GPUNET_NODE, else provider.yaml's daemon.node.\n\n"
      "Examples:\n"
      "  gpunet provider apply --home /var/lib/gpunet/provider --owner owner --dry-run\n"
      "  gpunet --home ~/wallet provider apply --owner owner --yes\n"
      "  gpunet -o json provider apply --dry-run");
  apply->callback([&g, a] { RunApply(g, *a); });
}

void RegisterStatus(CLI::App& provider, GlobalOptions& g, const std::shared_ptr<SetupArgs>& a) {
  auto* status = provider.add_subcommand(
      "status",
      "This provider now: machines, GPUs and health, leases, bond, reputation, "
      "the operator's balance");
  AddHomeAndProviderOptions(status, *a);
  status->footer(
      "GPUs and their health come from the running daemon (<home>/state/daemon-status.json);\n"
      "without a fresh one status says \"daemon not running\". Leases, bond and reputation\n"
      "come from the ledger. A WARNING says when the operator's balance covers less than a\n"
      "day of heartbeat fees.\n\n"
      "Examples:\n"
      "  gpunet provider status\n"
      "  gpunet -o json provider status --home /var/lib/gpunet/provider");
  status->callback([&g, a] { RunStatus(g, *a); });
}

void RegisterDrain(CLI::App& provider, GlobalOptions& g, const std::shared_ptr<SetupArgs>& a) {
  auto* drain = provider.add_subcommand(
      "drain", "Take no new lease: close the offers, withdraw the open bids; leases run out");
  AddHomeAndProviderOptions(drain, *a);
  AddOperatorKeyOptions(drain, *a);
  drain->footer(
      "drain writes <home>/state/draining (the running daemon then bids on nothing),\n"
      "closes the provider's open offers and withdraws its bids on orders still in their\n"
      "window, signed by the operator key. Running leases run to their end. apply refuses\n"
      "to re-open offers while draining; `provider apply --undrain` sells again.\n\n"
      "Examples:\n"
      "  gpunet provider drain --home /var/lib/gpunet/provider");
  drain->callback([&g, a] { RunDrain(g, *a); });
}

}  // namespace

void RegisterProviderSetupCommands(CLI::App& provider, GlobalOptions& g) {
  // One parse runs one verb, so the three share their options' storage.
  auto a = std::make_shared<SetupArgs>();
  RegisterInit(provider, g, a);
  RegisterApply(provider, g, a);
  RegisterStatus(provider, g, a);
  RegisterDrain(provider, g, a);
}

}  // namespace gpunet::apps
