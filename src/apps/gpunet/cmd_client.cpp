// `gpunet status`, `gpunet send`, `gpunet query account|block|tx`: the wallet side
// of the node RPC. The logic lives in client/ (node_client.h, tx_builder.h,
// account_proof.h, amount.h); this file resolves names, asks for the passphrase
// and prints.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "apps/gpunet/cli.h"
#include "base/checked_math.h"
#include "client/account_proof.h"
#include "client/amount.h"
#include "client/market_tx.h"
#include "client/node_client.h"
#include "client/tx_builder.h"
#include "codec/hashes.h"
#include "codec/tx_result.h"
#include "crypto/address.h"
#include "crypto/keystore.h"

namespace gpunet::apps {
namespace {

using base::ErrorCode;
using nlohmann::json;

/// A named key or an address, resolved.
struct Party {
  std::string label;  ///< "alice (gpn1...)" or the address
  codec::Address address;
  std::optional<std::string> key_name;
};

Party ResolveParty(const GlobalOptions& g, const std::string& text, std::string_view role) {
  if (text.rfind("gpn1", 0) == 0 || text.rfind("GPN1", 0) == 0) {
    auto address = crypto::ParseAddress(text);
    if (!address)
      FailCommand(ErrorCode::kInvalidArgument,
                  std::string(role) + " \"" + text +
                      "\" is not a valid gpn1 address: " + address.error().message);
    return {crypto::AddressToString(*address), *address, std::nullopt};
  }
  auto keystore = crypto::Keystore::AtHome(g.Home());
  if (!crypto::ValidateKeyName(text))
    FailCommand(ErrorCode::kInvalidArgument,
                std::string(role) + " \"" + text +
                    "\" is neither a gpn1... address nor a key name ([a-z0-9_-])");
  auto entry = keystore.Show(text);
  if (!entry) {
    std::string known;
    if (auto list = keystore.List(); list)
      for (const auto& e : *list) known += (known.empty() ? "" : ", ") + e.name;
    FailCommand(
        ErrorCode::kNotFound,
        std::string(role) + " \"" + text + "\": no such key in " + keystore.Dir() +
            (known.empty() ? " (the keystore is empty; is GPUNET_HOME / --home the devnet's home?)"
                           : " (keys there: " + known + ")") +
            "; give a key name or a gpn1... address");
  }
  std::string address_text = crypto::AddressToString(entry->address);
  return {text + " (" + address_text + ")", entry->address, text};
}

std::string CodeText(uint16_t code, const std::string& name) {
  std::string text = name + " (" + std::to_string(code) + ")";
  if (auto known = codec::TxCodeFromU16(code); known && code != 0)
    text += ": " + std::string(codec::TxCodeMessage(*known));
  return text;
}

// ---------------------------------------------------------------- status

void RunStatus(const GlobalOptions& g) {
  client::NodeClient node(g.NodeUrl());
  auto s = OrFail(node.Status());
  if (g.Json()) {
    PrintJson(s.raw);
    return;
  }
  std::cout << "node       " << node.Url() << "\n"
            << "chain id   " << s.chain_id << " (engine " << s.engine << ", app version "
            << s.app_version << ", node " << s.node_version << ")\n"
            << "height     " << s.latest_height << "\n"
            << "block      " << base::ToHex(s.latest_block_hash) << "\n"
            << "state root " << base::ToHex(s.latest_state_root) << "\n"
            << "time       " << UtcText(s.latest_time_ms) << "\n"
            << "mempool    " << s.mempool_txs << " txs\n";
  if (s.gas)
    std::cout << "gas        " << s.gas->price_ugpn << " ugpn per gas, at most " << s.gas->block_max
              << " gas a block\n";
  const market::Params& m = s.market;
  std::cout << "market     bond >= " << client::FormatGpn(m.provider_bond_min_ugpn) << " GPN"
            << ", unbonding " << client::DescribeDurationMs(m.unbonding_delay_ms) << ", bid window "
            << client::DescribeDurationMs(m.bid_window_min_ms) << " .. "
            << client::DescribeDurationMs(m.bid_window_max_ms)
            << ", deposit >= " << client::DescribeHours(m.deposit_min_hours) << "\n";
  std::cout << "genesis    " << base::ToHex(s.genesis_hash) << std::endl;
}

// ---------------------------------------------------------------- send

struct SendArgs {
  std::string from, to, amount, fee, memo;
  bool no_wait = false;
  uint64_t timeout_height = 0;
  int64_t wait_ms = 30'000;
};

/// The fee of a transfer and where it came from, for the confirmation line.
struct TransferFeeChoice {
  uint64_t ugpn = 0;
  std::string source;
};

/// --fee, else the node's simulation of the transfer plus the gas margin, else the
/// node's fee schedule, else the default.
TransferFeeChoice ChooseTransferFee(const SendArgs& a, client::NodeClient& node,
                                    const client::NodeStatusInfo& status,
                                    const crypto::KeyPair& key, uint64_t nonce,
                                    const codec::Address& to, uint64_t amount_ugpn) {
  std::optional<uint64_t> simulated;
  if (a.fee.empty()) {
    // Simulated with the schedule's fee, so the transfer sees the balance it will.
    const uint64_t estimate =
        status.fees ? OrFail(client::TransferFee(*status.fees, status.chain_id, a.memo)) : 0;
    codec::TxBody body{status.chain_id, key.Public(),     nonce,
                       estimate,        a.timeout_height, {codec::MsgSend{to, amount_ugpn}},
                       a.memo};
    simulated = OrFail(client::SimulatedFee(node, status, std::move(body)));
  }
  if (!a.fee.empty()) return {OrFail(client::ParseAmount(a.fee), "--fee"), "--fee"};
  if (simulated)
    return {*simulated,
            "the node's simulation + " + std::to_string(client::kGasMarginPercent) + "% gas"};
  if (status.fees)
    return {OrFail(client::TransferFee(*status.fees, status.chain_id, a.memo)),
            "the node's fee schedule"};
  return {client::kDefaultTransferFeeUgpn,
          "default; the node does not advertise fees, set --fee to change it"};
}

/// The answer to a submitted transfer; ends the command with an error when the tx
/// was included but failed.
void PrintSendResult(const GlobalOptions& g, const client::SubmitResult& result,
                     const std::string& tx_hash, uint64_t amount_ugpn, const Party& from,
                     const Party& to) {
  if (g.Json()) {
    json out = result.raw;
    out["amount_ugpn"] = std::to_string(amount_ugpn);
    out["from"] = crypto::AddressToString(from.address);
    out["to"] = crypto::AddressToString(to.address);
    PrintJson(out);
  } else if (!result.Committed()) {
    std::cout << "Accepted into the mempool (not waiting): tx " << tx_hash << "\n"
              << "Check it with: gpunet query tx " << tx_hash << std::endl;
  } else {
    std::cout << "Committed in block " << result.height << " (index " << result.index << ")\n"
              << " result " << CodeText(result.code, result.code_name) << "\n"
              << "fee paid " << client::DescribeAmount(result.fee_ugpn) << "\n"
              << "     tx " << tx_hash << std::endl;
  }
  if (result.Committed() && result.code != 0)
    FailCommand(ErrorCode::kInvalidArgument,
                "the transaction was included in block " + std::to_string(result.height) +
                    " but FAILED: " + CodeText(result.code, result.code_name) +
                    "; the fee was charged and the nonce used, nothing else changed");
}

void RunSend(const GlobalOptions& g, const SendArgs& a) {
  uint64_t amount_ugpn = OrFail(client::ParseAmount(a.amount), "AMOUNT");
  if (amount_ugpn == 0)
    FailCommand(ErrorCode::kInvalidArgument, "AMOUNT is 0; send at least 0.000001 GPN");
  Party from = ResolveParty(g, a.from, "FROM");
  if (!from.key_name)
    FailCommand(
        ErrorCode::kInvalidArgument,
        "FROM must be the name of a key in your keystore (the one that signs), not an address");
  Party to = ResolveParty(g, a.to, "TO");

  client::NodeClient node(g.NodeUrl());
  auto status = OrFail(node.Status());
  auto account = OrFail(node.GetAccount(from.address, false));
  crypto::KeyPair key = LoadKey(g, *from.key_name);
  if (crypto::AddressOf(key.Public()) != from.address)
    FailCommand(ErrorCode::kCorrupt,
                "the key file of \"" + *from.key_name + "\" does not match its address");
  const auto [fee_ugpn, fee_source] =
      ChooseTransferFee(a, node, status, key, account.nonce, to.address, amount_ugpn);
  auto needed = base::CheckedAdd(amount_ugpn, fee_ugpn);
  if (!needed)
    FailCommand(ErrorCode::kOverflow, "amount + fee is over 2^64-1 ugpn; no account holds that");
  if (account.balance_ugpn < *needed)
    FailCommand(ErrorCode::kInvalidArgument,
                "insufficient funds: " + from.label + " has " +
                    client::DescribeAmount(account.balance_ugpn) + " at height " +
                    std::to_string(account.height) + " but the transfer needs " +
                    client::DescribeAmount(*needed) +
                    " (amount + fee); send less or fund the account first");

  if (!g.Json()) {
    std::cout << "Sending " << client::DescribeAmount(amount_ugpn) << "\n"
              << "   from " << from.label << "\n"
              << "     to " << to.label << "\n"
              << "    fee " << client::DescribeAmount(fee_ugpn) << " [" << fee_source << "]\n"
              << "  chain " << status.chain_id << ", nonce " << account.nonce << std::endl;
  }
  codec::Tx tx = OrFail(client::BuildTransfer(key, status.chain_id, account.nonce, to.address,
                                              amount_ugpn, fee_ugpn, a.timeout_height, a.memo));
  std::string tx_hash = base::ToHex(codec::TxHash(tx));
  auto result = node.SubmitTx(tx, !a.no_wait, a.wait_ms);
  if (!result) {
    base::Error e = result.error();
    if (e.code == ErrorCode::kTimeout)
      e.message +=
          " (tx " + tx_hash + " may still commit: check with `gpunet query tx " + tx_hash + "`)";
    throw CommandFailed{e};
  }
  PrintSendResult(g, *result, tx_hash, amount_ugpn, from, to);
}

// ---------------------------------------------------------------- query

void RunQueryAccount(const GlobalOptions& g, const std::string& who, bool prove) {
  Party party = ResolveParty(g, who, "ACCOUNT");
  client::NodeClient node(g.NodeUrl());
  auto info = OrFail(node.GetAccount(party.address, prove));
  std::optional<client::VerifiedAccount> verified;
  if (prove) {
    // The block hash comes from the block endpoint (whose header is checked against
    // its hash there); the account's header must be that same block.
    auto block = OrFail(node.GetBlock(info.height), "fetching the block the proof refers to");
    verified = OrFail(client::VerifyAccountProof(info, block.hash));
  }
  if (g.Json()) {
    json out = info.raw;
    if (verified) {
      out["verified"] = true;
      out["verified_state_root"] = base::ToHex(verified->state_root);
      out["verified_block_hash"] = base::ToHex(verified->block_hash);
    }
    PrintJson(out);
    return;
  }
  std::cout << "account  " << party.label << "\n"
            << "balance  " << client::DescribeAmount(info.balance_ugpn) << "\n"
            << "nonce    " << info.nonce << "\n"
            << "height   " << info.height
            << (info.exists ? "" : "  (no such account yet: never received funds)") << std::endl;
  if (verified)
    std::cout << "proof verified against state root " << base::ToHex(verified->state_root)
              << " at height " << verified->height << " (block hash "
              << base::ToHex(verified->block_hash) << ")" << std::endl;
}

void RunQueryBlock(const GlobalOptions& g, const std::string& which) {
  std::optional<uint64_t> height;
  if (which != "latest") {
    auto h = ParseDigits(which, 19);
    if (!h || *h == 0)
      FailCommand(ErrorCode::kInvalidArgument,
                  "HEIGHT \"" + which + "\" must be a block height (1, 2, ...) or latest");
    height = h;
  }
  client::NodeClient node(g.NodeUrl());
  auto b = OrFail(node.GetBlock(height));
  if (g.Json()) {
    PrintJson(b.raw);
    return;
  }
  std::cout << "block      " << b.height << "\n"
            << "hash       " << base::ToHex(b.hash) << "\n"
            << "time       " << UtcText(b.header.time_ms) << "\n"
            << "chain id   " << b.header.chain_id << "\n"
            << "previous   " << base::ToHex(b.header.last_block_hash) << "\n"
            << "state root " << base::ToHex(b.header.state_root) << "\n"
            << "tx root    " << base::ToHex(b.header.tx_root) << "\n"
            << "proposer   " << crypto::AddressToString(b.header.proposer) << "\n"
            << "txs        " << b.txs.size() << std::endl;
  for (size_t i = 0; i < b.txs.size(); ++i)
    std::cout << "  [" << i << "] " << base::ToHex(b.txs[i]) << "  "
              << CodeText(b.receipts[i].code, b.receipts[i].code_name) << ", fee "
              << client::FormatGpn(b.receipts[i].fee_ugpn) << " GPN" << std::endl;
}

void RunQueryTx(const GlobalOptions& g, const std::string& hash_text) {
  auto hash = base::FixedFromHex<32>(hash_text);
  if (!hash)
    FailCommand(
        ErrorCode::kInvalidArgument,
        "HASH \"" + hash_text + "\" is not a tx hash (64 hex characters, as `gpunet send` prints)");
  client::NodeClient node(g.NodeUrl());
  auto t = OrFail(node.GetTx(*hash));
  if (g.Json()) {
    PrintJson(t.raw);
    return;
  }
  std::cout << "tx       " << base::ToHex(t.tx_hash) << "\n"
            << "block    " << t.height << " (index " << t.index << ")\n"
            << "result   " << CodeText(t.code, t.code_name) << "\n"
            << "from     " << t.from << " (nonce " << t.nonce << ")\n"
            << "fee      " << client::DescribeAmount(t.fee_ugpn) << ", charged "
            << client::FormatGpn(t.charged_fee_ugpn) << " GPN\n";
  if (!t.memo.empty()) std::cout << "memo     " << t.memo << "\n";
  for (const auto& m : t.msgs) {
    if (m.type == "send")
      std::cout << "send     " << client::DescribeAmount(m.amount_ugpn) << " to " << m.to << "\n";
    else
      std::cout << "message  " << m.type << "\n";
  }
  for (const auto& e : t.events) {
    std::cout << "event    " << e.type;
    for (const auto& [k, v] : e.attributes) std::cout << " " << k << "=" << v;
    std::cout << "\n";
  }
  std::cout << std::flush;
}

}  // namespace

void RegisterClientCommands(CLI::App& app, GlobalOptions& g) {
  auto* status = app.add_subcommand("status", "Show the node's chain, height and latest block");
  status->footer(
      "Examples:\n"
      "  gpunet status\n"
      "  gpunet --node http://127.0.0.1:26657 --output json status");
  status->callback([&g] { RunStatus(g); });

  auto args = std::make_shared<SendArgs>();
  auto* send = app.add_subcommand(
      "send",
      "Send GPN from one of your keys to a key name or address, and wait until it is in a block");
  send->add_option("FROM", args->from, "Key name in your keystore that pays and signs")->required();
  send->add_option("TO", args->to, "Recipient: a key name in your keystore or a gpn1... address")
      ->required();
  send->add_option("AMOUNT", args->amount,
                   "GPN like 12.5 (up to 6 decimals) or ugpn like 12500000ugpn")
      ->required();
  send->add_option(
      "--fee", args->fee,
      "Fee (same forms as AMOUNT); default: the gas the node's simulation says plus 20%, at "
      "least the minimum fee (an older node: its fee schedule, else 0.001 GPN)");
  send->add_option("--memo", args->memo,
                   "Free text stored with the transaction (at most 256 bytes)");
  send->add_option("--timeout-height", args->timeout_height,
                   "Last block height that may include it (0 = none)");
  send->add_option("--wait-ms", args->wait_ms, "How long to wait for the block (default 30000)")
      ->check(CLI::Range(int64_t{1}, int64_t{600'000}));
  send->add_flag("--no-wait", args->no_wait, "Return once the node accepted it into its mempool");
  send->footer(
      "The passphrase of FROM comes from $GPUNET_PASSPHRASE or is asked on the terminal.\n"
      "Examples:\n"
      "  gpunet send alice bob 12.5\n"
      "  gpunet send alice gpn1qy...  2500000ugpn --memo 'invoice 42'\n"
      "  gpunet --output json send alice bob 1 --fee 0.002 --no-wait");
  send->callback([&g, args] { RunSend(g, *args); });

  auto* query = app.add_subcommand("query", "Read accounts, blocks and transactions from the node");
  query->require_subcommand(1);
  auto account_who = std::make_shared<std::string>();
  auto account_prove = std::make_shared<bool>(false);
  auto* account = query->add_subcommand("account", "Balance and nonce of an address or key name");
  account->add_option("ACCOUNT", *account_who, "gpn1... address or key name")->required();
  account->add_flag(
      "--prove", *account_prove,
      "Verify the answer: the account's Merkle proof against the block header's state root");
  account->footer(
      "Examples:\n"
      "  gpunet query account bob\n"
      "  gpunet query account gpn1qy... --prove");
  account->callback(
      [&g, account_who, account_prove] { RunQueryAccount(g, *account_who, *account_prove); });

  auto block_which = std::make_shared<std::string>();
  auto* block = query->add_subcommand("block", "A block's header, transactions and results");
  block->add_option("HEIGHT", *block_which, "Block height, or latest")->required();
  block->footer(
      "Examples:\n"
      "  gpunet query block latest\n"
      "  gpunet --output json query block 3");
  block->callback([&g, block_which] { RunQueryBlock(g, *block_which); });

  auto tx_hash = std::make_shared<std::string>();
  auto* tx = query->add_subcommand("tx", "A transaction and its receipt, by hash");
  tx->add_option("HASH", *tx_hash, "The 64-hex tx hash `gpunet send` printed")->required();
  tx->footer("Example:\n  gpunet query tx 3f2a...");
  tx->callback([&g, tx_hash] { RunQueryTx(g, *tx_hash); });
}

}  // namespace gpunet::apps
