// The market commands (docs/market-cli.md): `gpunet provider ...`, `gpunet offers`,
// `gpunet order ...`, `gpunet bid`, `gpunet bids`, `gpunet lease ...`, `gpunet attest`
// and `gpunet query conservation`. The logic lives in client/ (market_config.h parses
// the YAML, market_tx.h builds messages, offer_filter.h filters, market_client.h
// reads the node); this file resolves names, confirms money, signs and prints.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/gpunet/cli.h"
#include "apps/gpunet/market_send.h"
#include "base/checked_math.h"
#include "base/clock.h"
#include "client/amount.h"
#include "client/manifest.h"
#include "client/market_client.h"
#include "client/market_config.h"
#include "client/market_tx.h"
#include "client/node_client.h"
#include "client/offer_filter.h"
#include "client/topup.h"
#include "codec/hashes.h"
#include "codec/tx_result.h"
#include "crypto/address.h"
#include "crypto/hash.h"
#include "crypto/keystore.h"
#include "market/math.h"

namespace gpunet::apps {
namespace {

using base::ErrorCode;
using nlohmann::json;

// ---------------------------------------------------------------- names and keys

/// A key name of the keystore or a gpn1 address, as an address.
base::Result<codec::Address> ResolveText(const GlobalOptions& g, const std::string& text,
                                         const std::string& where) {
  return ResolveAddressOrKey(text, where, {crypto::Keystore::AtHome(g.Home()).Dir()});
}

codec::Address Resolve(const GlobalOptions& g, const std::string& text, const std::string& where) {
  return OrFail(ResolveText(g, text, where));
}

client::PartyResolver Resolver(const GlobalOptions& g) {
  return [&g](const client::PartyText& p) { return ResolveText(g, p.text, p.place.Describe()); };
}

std::string Gpn(uint64_t ugpn) {
  return client::FormatGpn(ugpn) + " GPN";
}

std::string PriceText(uint64_t ugpn_per_gpu_hour) {
  return client::FormatGpn(ugpn_per_gpu_hour) + " GPN/GPU-h";
}

std::string Short(const std::string& address) {
  return address.size() > 16 ? address.substr(0, 10) + "..." + address.substr(address.size() - 4)
                             : address;
}

}  // namespace

void Confirm(bool yes, const std::string& question) {
  if (yes) return;
  std::string answer;
  if (!ReadLineFromTty(question + " [y/N] ", true, answer))
    FailCommand(ErrorCode::kInvalidArgument,
                "this moves money and there is no terminal to confirm on: add --yes to go ahead");
  if (answer != "y" && answer != "Y" && answer != "yes")
    FailCommand(ErrorCode::kInvalidArgument, "cancelled: nothing was signed or sent");
}

namespace {

// ---------------------------------------------------------------- sending

std::string CodeText(uint16_t code, const std::string& name) {
  std::string text = name + " (" + std::to_string(code) + ")";
  if (auto known = codec::TxCodeFromU16(code); known && code != 0)
    text += ": " + std::string(codec::TxCodeMessage(*known));
  return text;
}

// Fails the command unless `balance_ugpn` pays the fees and the money moved; run
// again after a simulation raised a fee.
void CheckFunds(const SendOptions& o, uint64_t balance_ugpn, uint64_t total_fee) {
  auto needed = base::CheckedAdd(total_fee, o.money_ugpn);
  if (!needed || balance_ugpn < *needed)
    FailCommand(ErrorCode::kInvalidArgument,
                "insufficient funds: " + o.from + " has " + client::DescribeAmount(balance_ugpn) +
                    " but this needs " +
                    (needed ? client::DescribeAmount(*needed) : "more than 2^64 ugpn") + " (fees " +
                    Gpn(total_fee) + (o.money_ugpn ? " + " + Gpn(o.money_ugpn) : "") +
                    "); fund the account first");
}

/// Each chunk's fee before simulation: --fee, else the node's fee schedule, else
/// the default.
std::vector<uint64_t> FirstFees(const SendOptions& o, const client::NodeStatusInfo& status,
                                const std::vector<std::vector<codec::Msg>>& chunks) {
  std::vector<uint64_t> fees;
  for (const auto& c : chunks) {
    if (!o.fee.empty())
      fees.push_back(OrFail(client::ParseAmount(o.fee), "--fee"));
    else if (status.fees)
      fees.push_back(OrFail(client::MarketTxFee(*status.fees, status.chain_id, c, "")));
    else
      fees.push_back(client::kDefaultTransferFeeUgpn);
  }
  return fees;
}

}  // namespace

std::vector<Sent> SendMsgs(const GlobalOptions& g, const SendOptions& o,
                           std::vector<codec::Msg> msgs) {
  if (!crypto::ValidateKeyName(o.from))
    FailCommand(
        ErrorCode::kInvalidArgument,
        "--from must name a key in your keystore (the one that signs), got \"" + o.from + "\"");
  codec::Address from = Resolve(g, o.from, "--from");
  client::NodeClient node(g.NodeUrl());
  auto status = OrFail(node.Status());
  auto chunks = client::ChunkMsgs(std::move(msgs));
  std::vector<uint64_t> fees = FirstFees(o, status, chunks);
  uint64_t total_fee = 0;
  for (uint64_t fee : fees) total_fee += fee;
  auto account = OrFail(node.GetAccount(from, false));
  CheckFunds(o, account.balance_ugpn, total_fee);
  crypto::KeyPair key = LoadKey(g, o.from);
  if (crypto::AddressOf(key.Public()) != from)
    FailCommand(ErrorCode::kCorrupt,
                "the key file of \"" + o.from + "\" does not match its address");

  std::vector<Sent> out;
  uint64_t nonce = account.nonce;
  for (size_t i = 0; i < chunks.size(); ++i) {
    std::string names;
    for (const auto& m : chunks[i])
      names += (names.empty() ? "" : ", ") + std::string(codec::MsgName(m));
    if (o.fee.empty()) {
      // Simulated now, after the previous chunk committed: a chunk may need its
      // effects (a provider registered before its sites).
      codec::TxBody body{status.chain_id, key.Public(), nonce, fees[i], 0, chunks[i], ""};
      if (auto simulated = OrFail(client::SimulatedFee(node, status, std::move(body)))) {
        if (*simulated > fees[i]) {
          total_fee += *simulated - fees[i];
          fees[i] = *simulated;
          CheckFunds(o, account.balance_ugpn, total_fee);
        }
      }
    }
    codec::Tx tx =
        OrFail(client::BuildMarketTx(key, status.chain_id, nonce++, chunks[i], fees[i], 0, ""));
    Sent s;
    s.tx_hash = base::ToHex(codec::TxHash(tx));
    auto r = node.SubmitTx(tx, true, o.wait_ms);
    std::string done =
        out.empty() ? "" : " (" + std::to_string(out.size()) + " earlier txs are committed)";
    if (!r) {
      base::Error e = r.error();
      e.message += done;
      if (e.code == ErrorCode::kTimeout) {
        e.message += "; tx " + s.tx_hash + " may still commit";
        if (o.may_commit) *o.may_commit = s.tx_hash;
      }
      throw CommandFailed{e};
    }
    s.result = *r;
    if (r->code != 0)
      FailCommand(ErrorCode::kInvalidArgument,
                  "the transaction (" + names + ") was included in block " +
                      std::to_string(r->height) +
                      " but FAILED: " + CodeText(r->code, r->code_name) +
                      "; the fee was charged, nothing else changed" + done);
    if (auto info = node.GetTx(codec::TxHash(tx)); info) {
      for (const auto& e : info->events)
        for (const auto& [k, v] : e.attributes)
          if (k.ends_with("_id") && !s.ids.contains(k)) s.ids[k] = v;
      s.events = std::move(info->events);
    }
    if (!g.Json())
      (o.progress_to_stderr ? std::cerr : std::cout)
          << "committed in block " << r->height << ": " << names << " (fee " << Gpn(r->fee_ugpn)
          << ", tx " << s.tx_hash.substr(0, 16) << "…)" << std::endl;
    out.push_back(std::move(s));
  }
  return out;
}

std::string SendTopup(const GlobalOptions& g, SendOptions o, uint64_t lease_id, uint64_t ugpn,
                      client::TopupTally& tally) {
  std::string may_commit;
  o.money_ugpn = ugpn;
  o.may_commit = &may_commit;
  try {
    SendMsgs(g, o, {codec::MsgLeaseDeposit{lease_id, ugpn}});
    tally.Committed(ugpn);
    return "";
  } catch (const CommandFailed& f) {
    if (!may_commit.empty()) tally.Uncertain(may_commit, ugpn);
    return f.error.message;
  }
}

void ResolveTopups(const GlobalOptions& g, client::TopupTally& tally) {
  const auto uncertain = tally.UncertainTxs();
  if (uncertain.empty()) return;
  client::NodeClient node(g.NodeUrl());
  for (const auto& hex : uncertain) {
    const auto hash = base::FixedFromHex<32>(hex);
    if (!hash) continue;
    if (auto info = node.GetTx(*hash); info) tally.Resolved(hex, info->code);
  }
}

namespace {

/// An event's attributes by name, as the JSON output holds them (a later duplicate
/// name wins, names in order).
std::map<std::string, std::string> AttributesOf(const client::EventInfo& e) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : e.attributes) out[k] = v;
  return out;
}

json SentJson(const std::vector<Sent>& sent) {
  json txs = json::array();
  json ids = json::object();
  for (const auto& s : sent) {
    json events = json::array();
    for (const auto& e : s.events)
      events.push_back({{"type", e.type}, {"attributes", AttributesOf(e)}});
    json t = s.result.raw;
    t["events"] = std::move(events);
    txs.push_back(t);
    for (const auto& [k, v] : s.ids)
      if (!ids.contains(k)) ids[k] = v;
  }
  return {{"txs", txs}, {"ids", ids}};
}

}  // namespace

std::string IdOf(const std::vector<Sent>& sent, const std::string& key) {
  for (const auto& s : sent)
    if (auto it = s.ids.find(key); it != s.ids.end()) return it->second;
  return "?";
}

namespace {

uint64_t ParseId(const std::string& text, const std::string& what) {
  uint64_t v = ParseDigits(text, 19).value_or(0);
  if (v == 0)
    FailCommand(ErrorCode::kInvalidArgument, what + " \"" + text +
                                                 "\" must be a number 1, 2, ... (as `gpunet " +
                                                 (what == "ORDER"   ? "order list"
                                                  : what == "BID"   ? "bids ORDER"
                                                  : what == "OFFER" ? "offers"
                                                                    : "lease list") +
                                                 "` prints)");
  return v;
}

client::MarketClient Market(const GlobalOptions& g) {
  return client::MarketClient(g.NodeUrl());
}

/// The chain's market rules (GET /status "market_params"): the CLI's own checks and
/// estimates follow them, so it refuses what the chain's preflight refuses, no more.
market::Params ChainParams(const GlobalOptions& g) {
  return OrFail(client::NodeClient(g.NodeUrl()).Status()).market;
}

/// Basis points as a percentage with two decimals: 2500 -> "25.00".
std::string Percent(uint32_t bp) {
  return std::to_string(bp / 100) + "." + std::to_string(100 + bp % 100).substr(1);
}

// ---------------------------------------------------------------- provider

struct ProviderArgs {
  std::string config, from, provider, fee;
  bool yes = false;
  bool offers = false;
};

void RunProviderRegister(const GlobalOptions& g, const ProviderArgs& a) {
  auto config = OrFail(client::LoadProviderConfig(a.config));
  codec::Address owner = Resolve(g, a.from, "--from");
  const market::Params params = ChainParams(g);
  auto reg = OrFail(client::ProviderRegisterMsg(config, owner, Resolver(g), params));
  auto inventory = OrFail(client::InventoryMsgs(config, owner));
  auto offers = OrFail(client::OfferMsgs(config, owner, Resolver(g)));
  size_t machines = 0;
  uint64_t gpus = 0;
  for (const auto& s : config.sites)
    for (const auto& m : s.machines) {
      ++machines;
      gpus += m.gpu_count;
    }
  if (!g.Json()) {
    std::cout << "Registering provider " << crypto::AddressToString(owner) << " (" << a.from
              << ")\n"
              << "  operator   " << crypto::AddressToString(reg.operator_address) << "\n"
              << "  tenant API " << reg.tenant_api_uri << "\n"
              << "  region     " << reg.region << "\n"
              << "  inventory  " << config.sites.size() << " site(s), " << machines
              << " machine(s), " << gpus << " GPUs (self-reported)\n";
    for (const auto& p : reg.payouts)
      std::cout << "  payout     " << crypto::AddressToString(p.payee) << "  " << p.bp / 100 << "."
                << std::to_string(100 + p.bp % 100).substr(1) << "%\n";
    for (const auto& o : config.offers)
      std::cout << "  offer      " << o.gpu_model << " at " << PriceText(o.price_ugpn_per_gpu_hour)
                << (o.tenants.empty() ? "" : " (private)") << "\n";
    std::cout << "  bond       " << client::DescribeAmount(reg.bond_ugpn)
              << " leaves your balance (held while registered; unbonding takes "
              << client::DescribeDurationMs(params.unbonding_delay_ms) << ")" << std::endl;
  }
  Confirm(a.yes, "Register and bond " + Gpn(reg.bond_ugpn) + "?");
  std::vector<codec::Msg> msgs{reg};
  msgs.insert(msgs.end(), inventory.begin(), inventory.end());
  msgs.insert(msgs.end(), offers.begin(), offers.end());
  auto sent = SendMsgs(g, {a.from, reg.bond_ugpn, a.fee}, std::move(msgs));
  if (g.Json()) {
    json j = SentJson(sent);
    j["provider"] = crypto::AddressToString(owner);
    PrintJson(j);
  } else {
    std::cout << "provider " << crypto::AddressToString(owner) << " registered" << std::endl;
  }
}

void RunProviderUpdate(const GlobalOptions& g, const ProviderArgs& a) {
  auto config = OrFail(client::LoadProviderConfig(a.config));
  codec::Address owner = Resolve(g, a.from, "--from");
  auto update = OrFail(client::ProviderUpdateMsg(config, owner, Resolver(g)));
  auto inventory = OrFail(client::InventoryMsgs(config, owner));
  std::vector<codec::Msg> msgs{update};
  msgs.insert(msgs.end(), inventory.begin(), inventory.end());
  if (a.offers) {
    auto offers = OrFail(client::OfferMsgs(config, owner, Resolver(g)));
    msgs.insert(msgs.end(), offers.begin(), offers.end());
  }
  auto sent = SendMsgs(g, {a.from, 0, a.fee}, std::move(msgs));
  if (g.Json())
    PrintJson(SentJson(sent));
  else
    std::cout << "provider " << crypto::AddressToString(owner) << " updated" << std::endl;
}

/// An offer's hours as people read them: "2..48", "2.." (no maximum), "..48" (the
/// chain's minimum), "-" (neither set).
std::string OfferHours(uint32_t min_hours, uint32_t max_hours) {
  if (min_hours == 0 && max_hours == 0) return "-";
  return (min_hours == 0 ? "" : std::to_string(min_hours)) + ".." +
         (max_hours == 0 ? "" : std::to_string(max_hours));
}

void PrintProvider(const client::ProviderInfo& p) {
  std::cout << "provider   " << p.owner << (p.active ? "" : "  (deregistered)") << "\n"
            << "operator   " << p.operator_address << "\n"
            << "tenant API " << p.tenant_api_uri << "  (TLS "
            << base::ToHex(p.tls_fingerprint).substr(0, 16) << "…)\n"
            << "region     " << p.region << "\n"
            << "bond       " << Gpn(p.bond_ugpn) << "  (needs " << Gpn(p.required_bond_ugpn)
            << ": the minimum or the open leases' penalties, whichever is more)\n"
            << "leases     " << p.open_leases << " open, " << p.leases_completed << " completed, "
            << p.faults << " faults\n"
            << "earned     " << Gpn(p.earned_ugpn) << " from other tenants\n";
  for (const auto& s : p.payouts)
    std::cout << "payout     " << s.payee << "  " << Percent(s.bp) << "%\n";
}

void RunProviderShow(const GlobalOptions& g, const std::string& who) {
  codec::Address owner = Resolve(g, who, "PROVIDER");
  auto answer = OrFail(Market(g).Provider(crypto::AddressToString(owner)));
  if (g.Json()) return PrintJson(answer.raw);
  const client::ProviderInfo& p = answer.value;
  PrintProvider(p);
  for (const auto& s : p.site_list)
    std::cout << "site " << s.site_id << "     " << s.fabric << ", " << s.bandwidth_gbps
              << " Gb/s, " << s.machines << " machine(s)\n";
  for (const auto& m : p.machine_list) {
    auto cuda = client::CudaFromLedger(m.cuda_version);
    auto cc = client::ComputeCapabilityFromLedger(m.compute_capability);
    std::cout << "machine " << m.machine_id << "  site " << m.site_id << ": " << m.gpu_count << "x "
              << m.gpu_model << " " << m.vram_gib << " GiB " << m.link << ", " << m.free_gpus
              << " free, driver " << m.driver_version << ", CUDA " << client::FormatVersion(cuda)
              << ", cc " << client::FormatVersion(cc) << " (self-reported)\n";
  }
  for (const auto& o : p.offer_list)
    std::cout << "offer " << o.offer_id << "    " << o.gpu_model << " at "
              << PriceText(o.price_ugpn_per_gpu_hour) << (o.is_private ? " (private)" : "")
              << (o.min_hours || o.max_hours
                      ? ", leases of " + OfferHours(o.min_hours, o.max_hours) + " hours"
                      : "")
              << "\n";
  std::cout << std::flush;
}

void RunProviderList(const GlobalOptions& g) {
  auto page = OrFail(Market(g).Providers(1000));
  if (g.Json()) return PrintJson(page.raw);
  if (page.entries.empty())
    std::cout << "no providers yet (gpunet provider register --config provider.yaml)\n";
  for (const auto& p : page.entries)
    std::cout << p.owner << "  " << p.region << "  " << p.machines << " machine(s), "
              << p.open_offers << " offer(s), bond " << Gpn(p.bond_ugpn)
              << (p.active ? "" : "  (deregistered)") << "\n";
  std::cout << std::flush;
}

/// --provider, else the signer itself (an owner signing for its own provider).
codec::Address ProviderOf(const GlobalOptions& g, const std::string& provider,
                          const std::string& from) {
  return Resolve(g, provider.empty() ? from : provider, provider.empty() ? "--from" : "--provider");
}

void RunHeartbeat(const GlobalOptions& g, const ProviderArgs& a) {
  codec::Address provider = ProviderOf(g, a.provider, a.from);
  auto sent = SendMsgs(g, {a.from, 0, a.fee}, {codec::MsgHeartbeat{provider}});
  if (g.Json())
    PrintJson(SentJson(sent));
  else
    std::cout << "heartbeat recorded for " << crypto::AddressToString(provider) << std::endl;
}

/// bond / unbond / claim / deregister: the owner's bond and the provider's end.
void RunProviderBondMsg(const GlobalOptions& g, const ProviderArgs& a, std::string_view what,
                        const std::string& amount_text) {
  codec::Msg msg;
  uint64_t money = 0;
  std::string done;
  if (what == "bond" || what == "unbond") {
    uint64_t amount = OrFail(client::ParseAmount(amount_text), "AMOUNT");
    if (amount == 0) FailCommand(ErrorCode::kInvalidArgument, "AMOUNT is 0");
    if (what == "bond") {
      money = amount;
      if (!g.Json())
        std::cout << "Adding " << client::DescribeAmount(amount) << " to the bond of " << a.from
                  << std::endl;
      Confirm(a.yes, "Bond " + Gpn(amount) + "?");
      msg = codec::MsgProviderBond{amount};
      done = "bonded " + Gpn(amount);
    } else {
      msg = codec::MsgProviderUnbond{amount};
      done = "unbonding " + Gpn(amount) + "; claim it after " +
             client::DescribeDurationMs(ChainParams(g).unbonding_delay_ms) +
             " with `gpunet provider claim`";
    }
  } else if (what == "claim") {
    msg = codec::MsgProviderClaimUnbonded{};
    done = "matured unbonding paid to the owner";
  } else {
    if (!g.Json())
      std::cout << "Deregistering the provider of " << a.from
                << ": refused while leases are open; the bond starts unbonding" << std::endl;
    Confirm(a.yes, "Deregister?");
    msg = codec::MsgProviderDeregister{};
    done = "deregistered; the bond is unbonding";
  }
  auto sent = SendMsgs(g, {a.from, money, a.fee}, {msg});
  if (g.Json())
    PrintJson(SentJson(sent));
  else
    std::cout << done << std::endl;
}

void RunOfferClose(const GlobalOptions& g, const ProviderArgs& a, const std::string& id_text) {
  uint64_t id = ParseId(id_text, "OFFER");
  codec::Address provider = ProviderOf(g, a.provider, a.from);
  auto sent = SendMsgs(g, {a.from, 0, a.fee}, {codec::MsgOfferClose{provider, id}});
  if (g.Json())
    PrintJson(SentJson(sent));
  else
    std::cout << "offer " << id << " closed (open leases are unaffected)" << std::endl;
}

// ---------------------------------------------------------------- offers

void RunOffers(const GlobalOptions& g, const std::vector<std::string>& words) {
  auto filter = OrFail(client::ParseOfferFilter(words), "FILTER");
  client::MarketClient market(g.NodeUrl());
  auto offers = client::FilterAndSort(filter, OrFail(market.Offers()));
  if (g.Json()) {
    json list = json::array();
    for (const auto& o : offers)
      list.push_back({{"offer_id", std::stoull(o.id)},
                      {"provider", o.provider},
                      {"gpu_model", o.gpu_model},
                      {"gpus_per_machine", o.gpus},
                      {"free_gpus", o.gpus_free},
                      {"vram_gib", o.vram_gb},
                      {"price_ugpn_per_gpu_hour", std::to_string(o.price_ugpn_per_gpu_hour)},
                      {"price_gpn_per_gpu_hour", client::FormatGpn(o.price_ugpn_per_gpu_hour)},
                      {"region", o.region},
                      {"fabric", o.fabric},
                      {"link", o.link},
                      {"cuda", client::FormatVersion(o.cuda)},
                      {"machines", o.machines},
                      {"private", o.is_private},
                      {"declared", o.declared},
                      {"min_hours", o.min_hours},
                      {"max_hours", o.max_hours}});
    PrintJson({{"offers", list}});
    return;
  }
  if (offers.empty()) {
    std::cout << "no offer matches" << (words.empty() ? "" : " the filter") << std::endl;
    return;
  }
  std::printf("%-6s %-16s %-6s %5s %5s %5s %14s  %-10s %-10s %-7s %-6s %s\n", "OFFER", "PROVIDER",
              "GPU", "GPUS", "FREE", "VRAM", "GPN/GPU-HOUR", "REGION", "FABRIC", "LINK", "CUDA",
              "HOURS");
  for (const auto& o : offers)
    std::printf("%-6s %-16s %-6s %5u %5u %5llu %14s  %-10s %-10s %-7s %-6s %s%s%s\n", o.id.c_str(),
                Short(o.provider).c_str(), o.gpu_model.c_str(), o.gpus, o.gpus_free,
                static_cast<unsigned long long>(o.vram_gb),
                client::FormatGpn(o.price_ugpn_per_gpu_hour).c_str(), o.region.c_str(),
                o.fabric.c_str(), o.link.c_str(), client::FormatVersion(o.cuda).c_str(),
                OfferHours(o.min_hours, o.max_hours).c_str(), o.is_private ? "  (private)" : "",
                o.declared ? "  (DECLARED GPUs: development chain)" : "");
  std::fflush(stdout);
}

// ---------------------------------------------------------------- orders and bids

/// A list command's page: `--limit` entries after `--after` (docs/market-cli.md).
struct PageArgs {
  uint32_t limit = 100;  ///< the node's default page; it refuses more than 1,000
  std::string after;     ///< an id, the `next` the page before printed; empty: from the start
};

/// The node query of a list command's page (`all`: closed records too). --after
/// takes 0 (from the start) as the node's `after` does, so it is not an id of
/// ParseId's.
client::MarketListQuery ListQuery(const PageArgs& p, bool all) {
  client::MarketListQuery q;
  q.limit = p.limit;
  q.all = all;
  if (p.after.empty()) return q;
  auto after = ParseDigits(p.after, 19);
  if (!after)
    FailCommand(ErrorCode::kInvalidArgument,
                "--after \"" + p.after +
                    "\" must be a number 0, 1, 2, ...: the id the hint under a full page "
                    "names (0: from the start)");
  q.after = after;
  return q;
}

/// After a page that is not the last: how to ask for the next one.
void PrintNextHint(const std::optional<uint64_t>& next, std::string_view what) {
  if (!next) return;
  std::cout << "(more " << what << " follow: add --after " << *next << " for the next page)\n";
}

void AddPageOptions(CLI::App* cmd, PageArgs& p) {
  cmd->add_option("--limit", p.limit, "Entries per page (default 100, at most 1000)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--after", p.after, "Start after this id (the hint under a full page)");
}

struct OrderArgs {
  std::string file, from, fee, id, tenant;
  bool yes = false, all = false;
  PageArgs page;
};

void RunOrderCreate(const GlobalOptions& g, const OrderArgs& a) {
  auto config = OrFail(client::LoadOrderConfig(a.file));
  const market::Params params = ChainParams(g);
  auto msg = OrFail(client::OrderCreateMsg(config, Resolver(g), params));
  uint64_t gpus = uint64_t{config.gpus_per_machine} * config.machines;
  auto est = OrFail(
      client::EstimateLease(msg.max_price_ugpn_per_gpu_hour, gpus, msg.deposit_ugpn, params));
  if (!g.Json()) {
    std::string models;
    for (const auto& m : msg.requirements.gpu_models) models += (models.empty() ? "" : ",") + m;
    std::cout << "Order: " << config.machines << " machine(s) x " << config.gpus_per_machine << " "
              << (models.empty() ? "any GPU" : models) << " GPUs"
              << (msg.requirements.region.empty() ? "" : " in " + msg.requirements.region) << "\n"
              << "  max price   " << PriceText(msg.max_price_ugpn_per_gpu_hour) << " -> at most "
              << Gpn(est.rate_ugpn_per_hour) << " per hour for " << gpus << " GPUs\n"
              << "  deposit     " << client::DescribeAmount(msg.deposit_ugpn)
              << " into escrow: at least " << client::DescribeDurationMs(est.covered_ms)
              << " at the max price; unused funds are refunded\n"
              << "  bids for    " << client::DescribeDurationMs(msg.bid_window_ms) << "\n"
              << "  manifest    " << base::ToHex(msg.manifest_hash)
              << (config.manifest_path.empty() ? "" : " (" + config.manifest_path + ")")
              << std::endl;
    const codec::ProviderRequirements& pq = msg.providers;
    if (pq != codec::ProviderRequirements{})
      std::cout << "  providers   bond >= " << client::DescribeAmount(pq.min_bond_ugpn)
                << ", earned from others >= " << client::DescribeAmount(pq.min_earned_ugpn)
                << ", fault rate <= " << pq.max_fault_rate_ppm << " ppm, " << pq.excluded.size()
                << " excluded" << std::endl;
  }
  Confirm(a.yes, "Escrow " + Gpn(msg.deposit_ugpn) + " and open the order?");
  auto sent = SendMsgs(g, {a.from, msg.deposit_ugpn, a.fee}, {msg});
  if (g.Json())
    PrintJson(SentJson(sent));
  else
    std::cout << "order " << IdOf(sent, "order_id") << " is open for bids" << std::endl;
}

void PrintOrder(const client::OrderInfo& o) {
  const client::OrderRequirementsInfo& q = o.requirements;
  std::string models;
  for (const auto& m : q.gpu_models) models += (models.empty() ? "" : ",") + m;
  std::cout << "order " << o.order_id << "  " << o.state << "  tenant " << o.tenant << "\n  wants "
            << q.machines << " x " << q.gpus_per_machine << " " << (models.empty() ? "any" : models)
            << " GPUs, max " << PriceText(o.max_price_ugpn_per_gpu_hour) << ", deposit "
            << Gpn(o.deposit_ugpn) << ", " << o.bids << " bid(s)"
            << (o.lease_id ? ", lease " + std::to_string(o.lease_id) : "") << "\n";
}

void RunOrderShow(const GlobalOptions& g, const OrderArgs& a) {
  auto answer = OrFail(Market(g).Order(ParseId(a.id, "ORDER")));
  if (g.Json()) return PrintJson(answer.raw);
  PrintOrder(answer.value);
  std::cout << std::flush;
}

void RunOrderList(const GlobalOptions& g, const OrderArgs& a) {
  client::MarketListQuery query = ListQuery(a.page, a.all);
  if (!a.tenant.empty()) query.tenant = crypto::AddressToString(Resolve(g, a.tenant, "--tenant"));
  auto page = OrFail(Market(g).Orders(query));
  if (g.Json()) return PrintJson(page.raw);
  if (page.entries.empty()) std::cout << "no orders\n";
  for (const auto& o : page.entries) PrintOrder(o);
  PrintNextHint(page.next, "orders");
  std::cout << std::flush;
}

void RunOrderClose(const GlobalOptions& g, const OrderArgs& a) {
  uint64_t id = ParseId(a.id, "ORDER");
  auto sent = SendMsgs(g, {a.from, 0, a.fee}, {codec::MsgOrderClose{id}});
  if (g.Json())
    PrintJson(SentJson(sent));
  else
    std::cout << "order " << id << " closed; its deposit is refunded" << std::endl;
}

void RunBids(const GlobalOptions& g, const std::string& order) {
  auto answer = OrFail(Market(g).Bids(ParseId(order, "ORDER")));
  if (g.Json()) return PrintJson(answer.raw);
  PrintOrder(answer.value.order);
  if (answer.value.bids.empty()) std::cout << "no bids yet\n";
  for (const auto& b : answer.value.bids) {
    std::string machines;
    for (uint32_t m : b.machine_ids) machines += (machines.empty() ? "" : ",") + std::to_string(m);
    std::cout << "bid " << b.bid_id << "  " << PriceText(b.price_ugpn_per_gpu_hour) << "  provider "
              << b.provider << "  machines " << machines << "\n";
  }
  std::cout << std::flush;
}

struct BidArgs {
  std::string order, price, machines, provider, from, fee, bid;
};

void RunBid(const GlobalOptions& g, const BidArgs& a) {
  if (a.order.empty() || a.price.empty() || a.machines.empty() || a.from.empty())
    FailCommand(ErrorCode::kInvalidArgument,
                "give ORDER, --price, --machines and --from (`gpunet bid --help`), or `gpunet "
                "bid withdraw BID --from KEY` to take a bid back");
  codec::MsgBidCreate msg;
  msg.order_id = ParseId(a.order, "ORDER");
  msg.provider = ProviderOf(g, a.provider, a.from);
  msg.price_ugpn_per_gpu_hour = OrFail(client::ParseAmount(a.price), "--price (GPN per GPU-hour)");
  std::stringstream ss(a.machines);
  std::string part;
  while (std::getline(ss, part, ',')) {
    auto id = ParseDigits(part, 9);
    if (!id || *id == 0)
      FailCommand(ErrorCode::kInvalidArgument,
                  "--machines \"" + a.machines +
                      "\": give machine ids like 1,2 (`gpunet provider show` lists them)");
    msg.machine_ids.push_back(static_cast<uint32_t>(*id));
  }
  std::sort(msg.machine_ids.begin(), msg.machine_ids.end());
  if (std::adjacent_find(msg.machine_ids.begin(), msg.machine_ids.end()) != msg.machine_ids.end())
    FailCommand(ErrorCode::kInvalidArgument, "--machines names a machine twice");
  auto sent = SendMsgs(g, {a.from, 0, a.fee}, {msg});
  if (g.Json())
    PrintJson(SentJson(sent));
  else
    std::cout << "bid " << IdOf(sent, "bid_id") << " placed on order " << msg.order_id << " at "
              << PriceText(msg.price_ugpn_per_gpu_hour) << std::endl;
}

void RunBidWithdraw(const GlobalOptions& g, const BidArgs& a) {
  const uint64_t bid_id = ParseId(a.bid, "BID");
  auto sent = SendMsgs(g, {a.from, 0, a.fee}, {codec::MsgBidWithdraw{bid_id}});
  if (g.Json())
    PrintJson(SentJson(sent));
  else
    std::cout << "bid " << bid_id << " on order " << IdOf(sent, "order_id")
              << " withdrawn; it can no longer be accepted or awarded" << std::endl;
}

// ---------------------------------------------------------------- leases

struct LeaseArgs {
  std::string id, from, fee, amount, manifest, manifest_hash, tenant, provider, deposit;
  uint32_t gpus = 0, machines = 1;
  bool yes = false, all = false, no_manifest = false;
  PageArgs page;
};

/// An amount in GPN, in ugpn past 2^64 (a sum of the supply equation, which no
/// holding reaches since the supply is a u64; a rate times hours).
std::string GpnWide(unsigned __int128 ugpn) {
  if (ugpn <= UINT64_MAX) return Gpn(static_cast<uint64_t>(ugpn));
  return base::U128ToString(ugpn) + " ugpn";
}

void PrintLease(const client::LeaseInfo& l) {
  std::string machines;
  for (const auto& a : l.allocations)
    machines += (machines.empty() ? "" : ", ") + std::string("machine ") +
                std::to_string(a.machine_id) + " x" + std::to_string(a.gpus);
  std::cout << "lease " << l.lease_id << "  " << l.state
            << (l.end == "none" ? "" : " (" + l.end + ")") << "\n"
            << "  tenant      " << l.tenant << "\n"
            << "  provider    " << l.provider << "\n"
            << "  GPUs        " << l.gpus << " (" << machines << ")\n"
            << "  price       " << PriceText(l.price_ugpn_per_gpu_hour) << " = "
            << Gpn(l.rate_ugpn_per_hour) << " per hour\n"
            << "  deposited   " << Gpn(l.deposited_ugpn) << ", in escrow " << Gpn(l.escrow_ugpn)
            << "\n"
            << "  accrued     " << Gpn(l.accrued_ugpn) << ", paid to provider " << Gpn(l.paid_ugpn)
            << ", withdrawable " << Gpn(l.withdrawable_ugpn) << "\n";
  if (l.refunded_ugpn || l.penalty_ugpn)
    std::cout << "  refunded    " << Gpn(l.refunded_ugpn) << ", penalty to tenant "
              << Gpn(l.penalty_ugpn) << "\n";
  if (l.max_hours != 0)
    std::cout << "  max hours   " << l.max_hours << " (its offer's): deposits in all at most "
              << GpnWide(static_cast<unsigned __int128>(l.rate_ugpn_per_hour) * l.max_hours)
              << "\n";
}

void RunLeaseAccept(const GlobalOptions& g, const LeaseArgs& a) {
  uint64_t bid_id = ParseId(a.id, "BID");
  client::MarketClient market = Market(g);
  const client::BidInfo bid = OrFail(market.Bid(bid_id)).value;
  const client::OrderInfo order = OrFail(market.Order(bid.order_id)).value;
  uint64_t price = bid.price_ugpn_per_gpu_hour;
  uint64_t gpus = uint64_t{order.requirements.gpus_per_machine} * order.requirements.machines;
  uint64_t deposit = order.deposit_ugpn;
  auto est = OrFail(client::EstimateLease(price, gpus, deposit, ChainParams(g)));
  if (!g.Json())
    std::cout << "Accepting bid " << bid_id << " on order " << bid.order_id << ": " << gpus
              << " GPUs at " << PriceText(price) << " = " << Gpn(est.rate_ugpn_per_hour)
              << " per hour\n"
              << "  the order's deposit " << Gpn(deposit)
              << " becomes the lease's escrow: " << client::DescribeDurationMs(est.covered_ms)
              << " of compute once started" << std::endl;
  Confirm(a.yes, "Accept the bid and start paying once the provider starts the lease?");
  auto sent = SendMsgs(g, {a.from, 0, a.fee}, {codec::MsgBidAccept{bid_id}});
  if (g.Json())
    PrintJson(SentJson(sent));
  else
    std::cout << "lease " << IdOf(sent, "lease_id")
              << " reserved; billing starts when the provider starts it\n"
              << "  then send the order's manifest (it waits for the start): gpunet lease submit "
              << IdOf(sent, "lease_id") << " --manifest FILE" << std::endl;
}

void RunLeaseCreate(const GlobalOptions& g, const LeaseArgs& a) {
  codec::MsgLeaseCreate msg;
  msg.offer_id = ParseId(a.id, "OFFER");
  if (a.gpus == 0)
    FailCommand(ErrorCode::kInvalidArgument, "--gpus N is required: GPUs on each machine");
  msg.gpus_per_machine = a.gpus;
  msg.machines = a.machines;
  msg.deposit_ugpn = OrFail(client::ParseAmount(a.deposit), "--deposit");
  if (a.manifest.empty() == a.manifest_hash.empty())
    FailCommand(ErrorCode::kInvalidArgument,
                "give --manifest FILE (hashed for you) or --manifest-hash HEX, exactly one");
  if (!a.manifest_hash.empty()) {
    msg.manifest_hash = OrFail(base::FixedFromHex<32>(a.manifest_hash), "--manifest-hash");
  } else {
    // The hash of the manifest's canonical JSON, which the provider checks the
    // submitted bytes against (docs/manifest.md), never of the file's own bytes.
    msg.manifest_hash = OrFail(client::LoadManifestFile(a.manifest), "--manifest").hash;
  }
  const client::OfferInfo offer = OrFail(Market(g).Offer(msg.offer_id)).value;
  uint64_t price = offer.price_ugpn_per_gpu_hour;
  uint64_t gpus = uint64_t{msg.gpus_per_machine} * msg.machines;
  const market::Params params = ChainParams(g);
  auto est = OrFail(client::EstimateLease(price, gpus, msg.deposit_ugpn, params));
  if (msg.deposit_ugpn < est.min_deposit_ugpn)
    FailCommand(ErrorCode::kInvalidArgument,
                "--deposit " + client::DescribeAmount(msg.deposit_ugpn) + " is under " +
                    client::DescribeHours(params.deposit_min_hours) + " of " +
                    std::to_string(gpus) + " GPUs at " + PriceText(price) + "; deposit at least " +
                    Gpn(est.min_deposit_ugpn));
  if (!g.Json())
    std::cout << "Leasing " << msg.machines << " machine(s) x " << msg.gpus_per_machine << " "
              << offer.gpu_model << " from offer " << msg.offer_id << " (" << offer.provider
              << ")\n"
              << "  rate        " << PriceText(price) << " x " << gpus
              << " GPUs = " << Gpn(est.rate_ugpn_per_hour) << " per hour\n"
              << "  deposit     " << client::DescribeAmount(msg.deposit_ugpn)
              << " into escrow: " << client::DescribeDurationMs(est.covered_ms)
              << " of compute; unused funds are refunded at close\n"
              << "  manifest    " << base::ToHex(msg.manifest_hash)
              << (a.manifest.empty() ? "" : " (" + a.manifest + ")") << std::endl;
  Confirm(a.yes, "Escrow " + Gpn(msg.deposit_ugpn) + " and lease now?");
  auto sent = SendMsgs(g, {a.from, msg.deposit_ugpn, a.fee}, {msg});
  if (g.Json())
    PrintJson(SentJson(sent));
  else
    std::cout << "lease " << IdOf(sent, "lease_id")
              << " reserved; billing starts when the provider starts it\n"
              << "  then send the manifest (it waits for the start): gpunet lease submit "
              << IdOf(sent, "lease_id") << " --manifest "
              << (a.manifest.empty() ? std::string("FILE") : a.manifest) << std::endl;
}

void RunLeaseShow(const GlobalOptions& g, const LeaseArgs& a) {
  auto answer = OrFail(Market(g).Lease(ParseId(a.id, "LEASE")));
  if (g.Json()) return PrintJson(answer.raw);
  PrintLease(answer.value);
  std::cout << std::flush;
}

void RunLeaseList(const GlobalOptions& g, const LeaseArgs& a) {
  if (!a.tenant.empty() && !a.provider.empty())
    FailCommand(ErrorCode::kInvalidArgument, "give --tenant or --provider, not both");
  client::MarketListQuery query = ListQuery(a.page, a.all);
  if (!a.provider.empty())
    query.provider = crypto::AddressToString(Resolve(g, a.provider, "--provider"));
  else
    query.tenant = crypto::AddressToString(
        Resolve(g, a.tenant.empty() ? a.from : a.tenant, a.tenant.empty() ? "--from" : "--tenant"));
  auto page = OrFail(Market(g).Leases(query));
  // Whose funds end soon, by the later of the ledger's clock and this machine's.
  const uint64_t now = std::max<uint64_t>(
      page.time_ms,
      static_cast<uint64_t>(std::max<int64_t>(base::SystemClock::Instance().NowMs(), 0)));
  if (g.Json()) {
    // funds_end_ms: when a started lease's deposits pay no further (null otherwise).
    if (auto it = page.raw.find("leases"); it != page.raw.end() && it->is_array())
      for (size_t i = 0; i < it->size() && i < page.entries.size(); ++i) {
        const auto& l = page.entries[i];
        (*it)[i]["funds_end_ms"] = l.state == "started" ? json(l.paid_until_ms) : json(nullptr);
      }
    return PrintJson(page.raw);
  }
  if (page.entries.empty()) std::cout << "no leases\n";
  for (const auto& l : page.entries) {
    PrintLease(l);
    if (l.state == "started" && client::FundsLeftMs(l, now) <= client::kFundsWarnMs)
      std::cout << "  funds end   " << client::UtcTimeText(l.paid_until_ms)
                << (client::FundsLeftMs(l, now) == 0 ? " (now: it closes as expired)"
                                                     : " (within 10 minutes): gpunet lease "
                                                       "deposit " +
                                                           std::to_string(l.lease_id) +
                                                           " GPN --from KEY, or it closes as "
                                                           "expired")
                << "\n";
  }
  PrintNextHint(page.next, "leases");
  std::cout << std::flush;
}

/// What closing lease `l` (as of its as_of_ms) will cost `sender`, by the rules of
/// docs/market.md "Lease life" with the chain's market parameters; empty when it
/// costs nothing beyond the GPU time used.
std::string CloseCost(const client::LeaseInfo& l, const std::string& sender, bool no_manifest,
                      const market::Params& params) {
  const uint64_t rate = l.rate_ugpn_per_hour;
  const uint64_t now = l.as_of_ms;
  const uint64_t deadline = l.start_deadline_ms;
  const bool reserved = l.state == "reserved";
  if (sender == l.tenant) {
    if (now >= deadline) return {};
    uint64_t charge = market::ReservedCloseCharge(rate, l.accrued_ugpn, l.escrow_ugpn, params);
    return "closing before the start deadline (" + std::to_string(deadline) +
           " ms) pays the provider a charge of about " + Gpn(charge) +
           " on top of the GPU time used (it held the GPUs for you); from the deadline on, "
           "closing pays the GPU time only";
  }
  if (no_manifest) return {};
  uint64_t penalty = market::FaultPenalty(rate, params);
  if (!reserved) penalty = std::min(penalty, params.fault_penalty_floor_ugpn);
  return "a provider closing a " + std::string(reserved ? "reserved" : "started") +
         " lease pays the tenant a penalty of " + Gpn(penalty) +
         " from its bond and counts as a fault";
}

void RunLeaseMsg(const GlobalOptions& g, const LeaseArgs& a, std::string_view what) {
  uint64_t id = ParseId(a.id, "LEASE");
  uint64_t money = 0;
  codec::Msg msg;
  if (what == "deposit") {
    money = OrFail(client::ParseAmount(a.amount), "AMOUNT");
    if (money == 0)
      FailCommand(ErrorCode::kInvalidArgument, "AMOUNT is 0; deposit at least 0.000001 GPN");
    const client::LeaseInfo l = OrFail(Market(g).Lease(id)).value;
    auto est =
        OrFail(client::EstimateLease(l.price_ugpn_per_gpu_hour, l.gpus, money, ChainParams(g)));
    if (!g.Json())
      std::cout << "Depositing " << client::DescribeAmount(money) << " into lease " << id << ": "
                << client::DescribeDurationMs(est.covered_ms) << " more at "
                << Gpn(est.rate_ugpn_per_hour) << " per hour" << std::endl;
    // The ledger's time, or this machine's when later (a block may be late).
    const uint64_t now = std::max<uint64_t>(
        l.as_of_ms,
        static_cast<uint64_t>(std::max<int64_t>(base::SystemClock::Instance().NowMs(), 0)));
    if (auto late = client::LateDepositText(l, now, {}))
      std::cerr << "warning: " << *late << std::endl;
    Confirm(a.yes, "Deposit " + Gpn(money) + "?");
    msg = codec::MsgLeaseDeposit{id, money};
  } else if (what == "withdraw") {
    msg = codec::MsgLeaseWithdraw{id};
  } else if (what == "close") {
    const client::LeaseInfo l = OrFail(Market(g).Lease(id)).value;
    std::string cost = CloseCost(l, crypto::AddressToString(Resolve(g, a.from, "--from")),
                                 a.no_manifest, ChainParams(g));
    if (!g.Json() && !cost.empty() && l.state != "closed")
      std::cout << "Closing lease " << id << ": " << cost << std::endl;
    msg = codec::MsgLeaseClose{
        id, a.no_manifest ? codec::CloseReason::kNoManifest : codec::CloseReason::kNormal};
  } else {
    msg = codec::MsgLeaseStarted{id};
  }
  auto sent = SendMsgs(g, {a.from, money, a.fee}, {msg});
  auto after = OrFail(Market(g).Lease(id));
  if (g.Json()) {
    json j = SentJson(sent);
    j["lease"] = std::move(after.raw_record);
    return PrintJson(j);
  }
  for (const auto& s : sent)
    for (const auto& e : s.events) {
      std::cout << "  event " << e.type;
      for (const auto& [k, v] : AttributesOf(e)) std::cout << " " << k << "=" << v;
      std::cout << "\n";
    }
  PrintLease(after.value);
  std::cout << std::flush;
}

// ---------------------------------------------------------------- attest, conservation

struct AttestArgs {
  std::string provider, from, fee, expires = "30d";
  uint32_t machine = 0;
  std::vector<std::string> attributes;
};

void RunAttest(const GlobalOptions& g, const AttestArgs& a) {
  codec::MsgAttest msg;
  msg.provider = Resolve(g, a.provider, "--provider");
  msg.machine_id = a.machine;
  std::map<std::string, std::string> attrs;
  for (const auto& kv : a.attributes) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      FailCommand(ErrorCode::kInvalidArgument,
                  "ATTRIBUTE \"" + kv + "\" must be KEY=VALUE, e.g. tier=3");
    if (!attrs.emplace(kv.substr(0, eq), kv.substr(eq + 1)).second)
      FailCommand(ErrorCode::kInvalidArgument,
                  "attribute \"" + kv.substr(0, eq) + "\" is given twice");
  }
  for (const auto& [k, v] : attrs) msg.attributes.push_back({k, v});
  std::string expires = a.expires;
  if (expires.ends_with("d")) {
    auto days = ParseDigits(std::string_view(expires).substr(0, expires.size() - 1), 4);
    if (!days)
      FailCommand(ErrorCode::kInvalidArgument,
                  "--expires \"" + a.expires + "\": give whole days (30d) or hours (12h)");
    expires = std::to_string(*days * 24) + "h";
  }
  uint64_t ttl_ms = OrFail(client::ParseDurationMs(expires), "--expires");
  client::NodeClient node(g.NodeUrl());
  auto status = OrFail(node.Status());
  msg.expires_at_ms = status.latest_time_ms + ttl_ms;
  auto sent = SendMsgs(g, {a.from, 0, a.fee}, {msg});
  if (g.Json())
    PrintJson(SentJson(sent));
  else
    std::cout << "attested " << attrs.size() << " attribute(s) of "
              << crypto::AddressToString(msg.provider)
              << (a.machine ? " machine " + std::to_string(a.machine) : "") << " for "
              << client::DescribeDurationMs(ttl_ms) << std::endl;
}

void RunConservation(const GlobalOptions& g) {
  auto c = OrFail(Market(g).CheckConservation());
  if (g.Json())
    PrintJson(c.raw);
  else if (c.holds && c.sums)
    std::cout << "conservation holds at height " << c.height << ": balances "
              << GpnWide(c.sums->balances_ugpn) << " + escrow " << GpnWide(c.sums->escrow_ugpn)
              << " + bonds " << GpnWide(c.sums->bonds_ugpn) << " + unbonding "
              << GpnWide(c.sums->unbonding_ugpn) << " + fee pool " << Gpn(c.sums->fee_pool_ugpn)
              << " = genesis " << Gpn(c.sums->genesis_ugpn) << " + minted "
              << Gpn(c.sums->minted_ugpn) << " - burned " << Gpn(c.sums->burned_ugpn) << std::endl;
  if (!c.holds)
    FailCommand(ErrorCode::kCorrupt, "conservation does NOT hold at height " +
                                         std::to_string(c.height) + ": " +
                                         (c.message ? *c.message
                                          : c.sums  ? c.sums->equation
                                                    : std::string("?")));
}

/// --from and --fee of a command that signs a tx; `who` says whose key it is.
void AddFrom(CLI::App* cmd, std::string& from, std::string& fee, std::string_view who) {
  cmd->add_option("--from", from, "Key name that signs (" + std::string(who) + ")")->required();
  cmd->add_option("--fee", fee,
                  "Fee per tx (GPN or ugpn); default: the gas the node's simulation says plus "
                  "20%, at least the minimum fee");
}

// ---- provider: register, update, show, list, heartbeat

void RegisterProviderCommands(CLI::App* provider, GlobalOptions& g,
                              const std::shared_ptr<ProviderArgs>& pa) {
  auto* reg = provider->add_subcommand(
      "register", "Register a provider, its sites, machines and offers from provider.yaml");
  reg->add_option("--config", pa->config, "provider.yaml (schema: docs/market-cli.md)")
      ->required()
      ->check(CLI::ExistingFile);
  AddFrom(reg, pa->from, pa->fee, "the owner key; its address is the provider's id");
  reg->add_flag("--yes,-y", pa->yes, "Do not ask before bonding");
  reg->footer(
      "The bond leaves the owner's balance; machines are self-reported until attested.\n"
      "Examples:\n"
      "  gpunet provider register --config provider.yaml --from provider\n"
      "  gpunet -o json provider register --config provider.yaml --from provider --yes");
  reg->callback([&g, pa] { RunProviderRegister(g, *pa); });

  auto* upd = provider->add_subcommand(
      "update", "Update operator, URI, region, payouts, policy and inventory from provider.yaml");
  upd->add_option("--config", pa->config, "provider.yaml")->required()->check(CLI::ExistingFile);
  AddFrom(upd, pa->from, pa->fee, "the owner key");
  upd->add_flag("--offers", pa->offers,
                "Also create the offers listed in the file (new offer ids)");
  upd->footer("Example:\n  gpunet provider update --config provider.yaml --from provider");
  upd->callback([&g, pa] { RunProviderUpdate(g, *pa); });

  auto show_who = std::make_shared<std::string>();
  auto* show = provider->add_subcommand(
      "show", "A provider: terms, bond, reputation, sites, machines, offers");
  show->add_option("PROVIDER", *show_who, "Owner key name or gpn1... address")->required();
  show->footer(
      "Examples:\n  gpunet provider show provider\n  gpunet -o json provider show gpn1...");
  show->callback([&g, show_who] { RunProviderShow(g, *show_who); });

  auto* list = provider->add_subcommand("list", "Every registered provider");
  list->footer("Example:\n  gpunet provider list");
  list->callback([&g] { RunProviderList(g); });

  auto* hb = provider->add_subcommand(
      "heartbeat", "Prove the provider is up (one tx covers all its started leases)");
  AddFrom(hb, pa->from, pa->fee, "the owner or operator key");
  hb->add_option("--provider", pa->provider, "The provider (default: the --from key's own)");
  hb->footer(
      "Missing heartbeats past the timeout (+ a grace in blocks) fault the provider's leases.\n"
      "Example:\n  gpunet provider heartbeat --from operator --provider provider");
  hb->callback([&g, pa] { RunHeartbeat(g, *pa); });
}

// ---- provider: bond, unbond, claim, deregister

void RegisterProviderBondCommands(CLI::App* provider, GlobalOptions& g,
                                  const std::shared_ptr<ProviderArgs>& pa) {
  auto bond_amount = std::make_shared<std::string>();
  for (std::string_view what : {"bond", "unbond"}) {
    auto* cmd = provider->add_subcommand(
        std::string(what), what == "bond"
                               ? "Add to the provider's bond from the owner's balance"
                               : "Start unbonding part of the bond (for the chain's unbonding "
                                 "delay, 7 days on a default genesis)");
    cmd->add_option("AMOUNT", *bond_amount, "GPN or ugpn")->required();
    AddFrom(cmd, pa->from, pa->fee, "the owner");
    if (what == "bond") cmd->add_flag("--yes,-y", pa->yes, "Do not ask");
    cmd->footer("Example:\n  gpunet provider " + std::string(what) + " 500 --from provider");
    cmd->callback([&g, pa, bond_amount, what] { RunProviderBondMsg(g, *pa, what, *bond_amount); });
  }
  auto* claim = provider->add_subcommand("claim", "Pay matured unbonding to the owner");
  AddFrom(claim, pa->from, pa->fee, "the owner");
  claim->footer("Example:\n  gpunet provider claim --from provider");
  claim->callback([&g, pa] { RunProviderBondMsg(g, *pa, "claim", ""); });
  auto* dereg =
      provider->add_subcommand("deregister", "Stop being a provider (no open leases); unbonds");
  AddFrom(dereg, pa->from, pa->fee, "the owner");
  dereg->add_flag("--yes,-y", pa->yes, "Do not ask");
  dereg->footer("Example:\n  gpunet provider deregister --from provider");
  dereg->callback([&g, pa] { RunProviderBondMsg(g, *pa, "deregister", ""); });
}

// ---- offer close, offers

void RegisterOfferCommands(CLI::App& app, GlobalOptions& g) {
  auto pa = std::make_shared<ProviderArgs>();
  auto offer_id = std::make_shared<std::string>();
  auto* offer = app.add_subcommand("offer", "Manage your offers (create them in provider.yaml)");
  offer->require_subcommand(1);
  auto* oclose_offer = offer->add_subcommand("close", "Close an offer; open leases are unaffected");
  oclose_offer->add_option("OFFER", *offer_id, "Offer id")->required();
  oclose_offer->add_option("--provider", pa->provider,
                           "The provider (default: the --from key's own)");
  AddFrom(oclose_offer, pa->from, pa->fee, "the provider's owner or operator");
  oclose_offer->footer("Example:\n  gpunet offer close 1 --from operator --provider provider");
  oclose_offer->callback([&g, pa, offer_id] { RunOfferClose(g, *pa, *offer_id); });

  auto words = std::make_shared<std::vector<std::string>>();
  auto* offers = app.add_subcommand("offers", "Offers to rent now, cheapest first, filtered");
  offers->add_option("FILTER", *words, "Terms like gpu=H100 gpus>=8 price<=2.5 (all must hold)");
  offers->footer(std::string(client::OfferFilterHelp()));
  offers->callback([&g, words] { RunOffers(g, *words); });
}

// ---- order: create, show, list, close

void RegisterOrderCommands(CLI::App& app, GlobalOptions& g) {
  auto oa = std::make_shared<OrderArgs>();
  auto* order = app.add_subcommand("order", "Ask providers to bid for your job (reverse auction)");
  order->require_subcommand(1);
  auto* ocreate = order->add_subcommand(
      "create", "Open an order from order.yaml; its deposit goes into escrow");
  ocreate->add_option("ORDER_YAML", oa->file, "order.yaml (schema: docs/market-cli.md)")
      ->required()
      ->check(CLI::ExistingFile);
  AddFrom(ocreate, oa->from, oa->fee, "the tenant");
  ocreate->add_flag("--yes,-y", oa->yes, "Do not ask before escrowing the deposit");
  ocreate->footer(
      "Shows the most the lease can cost per hour and how long the deposit lasts first.\n"
      "Examples:\n  gpunet order create order.yaml --from tenant\n"
      "  gpunet -o json order create order.yaml --from tenant --yes");
  ocreate->callback([&g, oa] { RunOrderCreate(g, *oa); });
  auto* oshow = order->add_subcommand("show", "One order");
  oshow->add_option("ORDER", oa->id, "Order id")->required();
  oshow->footer("Example:\n  gpunet order show 1");
  oshow->callback([&g, oa] { RunOrderShow(g, *oa); });
  auto* olist =
      order->add_subcommand("list", "Open orders (all with --all), of one tenant with --tenant");
  olist->add_option("--tenant", oa->tenant, "Key name or address");
  olist->add_flag("--all", oa->all, "Also awarded and closed orders");
  AddPageOptions(olist, oa->page);
  olist->footer(
      "Examples:\n  gpunet order list\n  gpunet order list --tenant tenant --all\n  gpunet "
      "order list --after 100");
  olist->callback([&g, oa] { RunOrderList(g, *oa); });
  auto* oclose =
      order->add_subcommand("close", "Close an order not yet awarded; refunds its deposit");
  oclose->add_option("ORDER", oa->id, "Order id")->required();
  AddFrom(oclose, oa->from, oa->fee, "the tenant");
  oclose->footer("Example:\n  gpunet order close 1 --from tenant");
  oclose->callback([&g, oa] { RunOrderClose(g, *oa); });
}

// ---- bids, bid

void RegisterBidCommands(CLI::App& app, GlobalOptions& g) {
  auto bids_order = std::make_shared<std::string>();
  auto* bids = app.add_subcommand("bids", "The bids on an order, cheapest first");
  bids->add_option("ORDER", *bids_order, "Order id")->required();
  bids->footer("Example:\n  gpunet bids 1");
  bids->callback([&g, bids_order] { RunBids(g, *bids_order); });

  auto ba = std::make_shared<BidArgs>();
  auto* bid = app.add_subcommand("bid", "Bid on an order with named machines (reserves nothing)");
  // ORDER, --price and --machines are checked in RunBid: `bid withdraw` needs none.
  bid->add_option("ORDER", ba->order, "Order id (required)");
  bid->add_option("--price", ba->price, "GPN per GPU-hour, at most the order's max (required)");
  bid->add_option("--machines", ba->machines,
                  "Machine ids, comma-separated, as many as the order asks (required)");
  bid->add_option("--provider", ba->provider, "The provider (default: the --from key's own)");
  AddFrom(bid, ba->from, ba->fee, "the provider's owner or operator (required)");
  bid->get_option("--from")->required(false);  // `bid withdraw` takes its own
  bid->footer(
      "Example:\n  gpunet bid 1 --price 2.2 --machines 1 --provider provider --from operator\n"
      "Take a bid back: gpunet bid withdraw BID");
  auto* withdraw = bid->add_subcommand(
      "withdraw",
      "Take back your bid on an order still in its bid window (its machines went "
      "elsewhere); you may bid again");
  withdraw->add_option("BID", ba->bid, "Bid id (`gpunet bids ORDER` lists them)")->required();
  AddFrom(withdraw, ba->from, ba->fee, "the bid's provider's owner or operator");
  withdraw->footer(
      "Example:\n  gpunet bid withdraw 3 --from operator\n"
      "Refused once the order is awarded or closed (221) or its bid window has ended (222).");
  withdraw->callback([&g, ba] { RunBidWithdraw(g, *ba); });
  bid->callback([&g, ba, withdraw] {
    if (!withdraw->parsed()) RunBid(g, *ba);
  });
}

// ---- lease: accept, create, show, list

void RegisterLeaseOpenCommands(CLI::App* lease, GlobalOptions& g,
                               const std::shared_ptr<LeaseArgs>& la) {
  auto* accept =
      lease->add_subcommand("accept", "Accept a bid on your order: its machines are leased now");
  accept->add_option("BID", la->id, "Bid id (`gpunet bids ORDER`)")->required();
  AddFrom(accept, la->from, la->fee, "the order's tenant");
  accept->add_flag("--yes,-y", la->yes, "Do not ask");
  accept->footer("Example:\n  gpunet lease accept 1 --from tenant");
  accept->callback([&g, la] { RunLeaseAccept(g, *la); });
  auto* create = lease->add_subcommand("create", "Rent from an offer now (first free machines)");
  create->add_option("OFFER", la->id, "Offer id (`gpunet offers`)")->required();
  create->add_option("--gpus", la->gpus, "GPUs on each machine")->required();
  create->add_option("--machines", la->machines, "Machines (default 1; more = one site)");
  create
      ->add_option("--deposit", la->deposit,
                   "GPN into escrow (at least the chain's deposit_min_hours at the rate)")
      ->required();
  create->add_option("--manifest", la->manifest,
                     "The workload manifest, YAML or JSON (docs/manifest.md); the hash of its "
                     "canonical JSON goes on the ledger");
  create->add_option("--manifest-hash", la->manifest_hash, "Or its BLAKE2b-256, 64 hex");
  AddFrom(create, la->from, la->fee, "the tenant");
  create->add_flag("--yes,-y", la->yes, "Do not ask before escrowing");
  create->footer(
      "Example:\n"
      "  gpunet lease create 1 --gpus 2 --deposit 50 --manifest manifest.yaml --from tenant");
  create->callback([&g, la] { RunLeaseCreate(g, *la); });
  auto* lshow = lease->add_subcommand("show", "One lease, with what has accrued");
  lshow->add_option("LEASE", la->id, "Lease id")->required();
  lshow->footer("Example:\n  gpunet lease show 1");
  lshow->callback([&g, la] { RunLeaseShow(g, *la); });
  auto* llist =
      lease->add_subcommand("list", "Open leases (all with --all) of a tenant or provider");
  llist->add_option("--tenant", la->tenant, "Key name or address");
  llist->add_option("--provider", la->provider, "Key name or address");
  llist->add_option("--from", la->from, "Shorthand: leases of this key as tenant");
  llist->add_flag("--all", la->all, "Also closed leases");
  AddPageOptions(llist, la->page);
  llist->footer(
      "Examples:\n  gpunet lease list --tenant tenant\n  gpunet lease list --provider provider "
      "--all --after 40");
  llist->callback([&g, la] {
    if (la->tenant.empty() && la->provider.empty() && la->from.empty())
      FailCommand(ErrorCode::kInvalidArgument, "give --tenant or --provider (key name or address)");
    RunLeaseList(g, *la);
  });
}

// ---- lease: deposit, withdraw, close, started

void RegisterLeaseMsgCommands(CLI::App* lease, GlobalOptions& g,
                              const std::shared_ptr<LeaseArgs>& la) {
  auto* deposit = lease->add_subcommand("deposit", "Add funds to a lease's escrow (extends it)");
  deposit->add_option("LEASE", la->id, "Lease id")->required();
  deposit->add_option("AMOUNT", la->amount, "GPN or ugpn")->required();
  AddFrom(deposit, la->from, la->fee, "anyone; usually the tenant");
  deposit->add_flag("--yes,-y", la->yes, "Do not ask");
  deposit->footer("Example:\n  gpunet lease deposit 1 25 --from tenant");
  deposit->callback([&g, la] { RunLeaseMsg(g, *la, "deposit"); });
  auto* withdraw = lease->add_subcommand("withdraw", "Pay what accrued to the provider's payees");
  withdraw->add_option("LEASE", la->id, "Lease id")->required();
  AddFrom(withdraw, la->from, la->fee, "the provider's owner or operator");
  withdraw->footer("Example:\n  gpunet lease withdraw 1 --from operator");
  withdraw->callback([&g, la] { RunLeaseMsg(g, *la, "withdraw"); });
  auto* close = lease->add_subcommand("close", "End a lease now: settle, refund the rest");
  close->add_option("LEASE", la->id, "Lease id")->required();
  close->add_flag("--no-manifest", la->no_manifest,
                  "Provider only: no manifest arrived in time (no fault)");
  AddFrom(close, la->from, la->fee, "the tenant, or the provider's owner/operator");
  close->footer("Example:\n  gpunet lease close 1 --from tenant");
  close->callback([&g, la] { RunLeaseMsg(g, *la, "close"); });
  auto* started =
      lease->add_subcommand("started", "Provider: the lease is live; billing starts now");
  started->add_option("LEASE", la->id, "Lease id")->required();
  AddFrom(started, la->from, la->fee, "the provider's owner or operator");
  started->footer("Example:\n  gpunet lease started 1 --from operator");
  started->callback([&g, la] { RunLeaseMsg(g, *la, "started"); });
}

// ---- attest

void RegisterAttestCommand(CLI::App& app, GlobalOptions& g) {
  auto aa = std::make_shared<AttestArgs>();
  auto* attest =
      app.add_subcommand("attest", "As an auditor, attest attributes of a provider or machine");
  attest->add_option("ATTRIBUTE", aa->attributes, "KEY=VALUE, one or more")->required();
  attest->add_option("--provider", aa->provider, "Provider key name or address")->required();
  attest->add_option("--machine", aa->machine, "Machine id (default: the provider itself)");
  attest->add_option("--expires", aa->expires, "How long it holds: 12h, 30d (default 30d)");
  AddFrom(attest, aa->from, aa->fee, "the auditor");
  attest->footer(
      "Example:\n  gpunet attest tier=3 country=de --provider provider --machine 1 --from auditor");
  attest->callback([&g, aa] { RunAttest(g, *aa); });
}

// ---- query conservation (under the `query` group of cmd_client.cpp)

void RegisterConservationCommand(CLI::App& app, GlobalOptions& g) {
  CLI::App* query = nullptr;
  try {
    query = app.get_subcommand("query");
  } catch (const CLI::OptionNotFound&) {
    query = app.add_subcommand("query", "Read from the node");
  }
  auto* cons = query->add_subcommand(
      "conservation",
      "Check that no token was created or lost: balances + escrow + bonds + ... = supply");
  cons->footer("Exits 1 when the equation does not hold.\nExample:\n  gpunet query conservation");
  cons->callback([&g] { RunConservation(g); });
}

}  // namespace

void RegisterMarketCommands(CLI::App& app, GlobalOptions& g) {
  auto* provider = app.add_subcommand(
      "provider", "Sell GPU time: register machines, show providers, heartbeats");
  provider->require_subcommand(1);
  auto pa = std::make_shared<ProviderArgs>();
  RegisterProviderCommands(provider, g, pa);
  RegisterProviderBondCommands(provider, g, pa);
  RegisterOfferCommands(app, g);
  RegisterOrderCommands(app, g);
  RegisterBidCommands(app, g);
  auto la = std::make_shared<LeaseArgs>();
  auto* lease =
      app.add_subcommand("lease", "Leases: accept a bid, rent from an offer, pay, withdraw, close");
  lease->require_subcommand(1);
  RegisterLeaseOpenCommands(lease, g, la);
  RegisterLeaseMsgCommands(lease, g, la);
  RegisterAttestCommand(app, g);
  RegisterConservationCommand(app, g);
}

}  // namespace gpunet::apps
