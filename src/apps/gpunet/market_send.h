// Signing and sending market transactions for the CLI, shared by the market verbs
// (cmd_market.cpp, where these are defined) and `gpunet run` (cmd_run.cpp): the
// funds check before signing, the fee (simulated unless --fee), one tx per chunk of
// messages, each waited for; and the "go ahead?" question before money moves.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "apps/gpunet/cli.h"
#include "client/node_client.h"
#include "client/topup.h"
#include "codec/types.h"

namespace gpunet::apps {

/// What one signed market tx did.
struct Sent {
  std::string tx_hash;
  client::SubmitResult result;
  std::map<std::string, std::string> ids;  ///< "lease_id" -> "3", from the tx's events
  std::vector<client::EventInfo> events;
};

struct SendOptions {
  std::string from;         ///< key name that signs
  uint64_t money_ugpn = 0;  ///< bond/deposit leaving the balance (for the funds check)
  std::string fee;          ///< --fee, else the node's schedule
  int64_t wait_ms = 30'000;
  bool progress_to_stderr = false;  ///< "committed in block ..." on stderr, not stdout
  /// Set to the tx's hash (hex) when its wait timed out: it may still commit.
  std::string* may_commit = nullptr;
};

/// Signs and sends `msgs` from `o.from` (in several txs when over the per-tx message
/// limit, nonces in order), waiting for each block. Ends the command on the first
/// failure, saying what was already committed. Prints a line per committed tx
/// (on stdout, or stderr with progress_to_stderr) unless -o json.
std::vector<Sent> SendMsgs(const GlobalOptions& g, const SendOptions& o,
                           std::vector<codec::Msg> msgs);

/// Auto top-up's deposit of `ugpn` into lease `lease_id`, signed as `o` says; the
/// outcome goes into `tally` (a tx whose wait timed out counts as uncertain). Does not
/// end the command: "" when it committed, else what failed, for the caller to say.
std::string SendTopup(const GlobalOptions& g, SendOptions o, uint64_t lease_id, uint64_t ugpn,
                      client::TopupTally& tally);
/// Asks the node about `tally`'s uncertain txs and records those it shows included.
void ResolveTopups(const GlobalOptions& g, client::TopupTally& tally);

/// The id named `key` ("lease_id") in the events of what was sent, or "?".
std::string IdOf(const std::vector<Sent>& sent, const std::string& key);

/// Asks "go ahead?" on the terminal unless `yes`; ends the command when refused or
/// when there is no terminal to ask on (saying to add --yes).
void Confirm(bool yes, const std::string& question);

}  // namespace gpunet::apps
