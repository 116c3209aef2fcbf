// Shared pieces of the `gpunet` command line: global options, output in text or
// JSON, and error reporting that tells the user what to do.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/result.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"

namespace gpunet::apps {

struct GlobalOptions {
  std::string home;             ///< --home, else $GPUNET_HOME, else ~/.gpunet
  std::string output = "text";  ///< --output text|json
  std::string node_url;         ///< --node, else $GPUNET_NODE, else http://127.0.0.1:26657

  bool Json() const { return output == "json"; }
  /// The home directory after defaults are applied.
  std::string Home() const;
  std::string NodeUrl() const;
};

/// Thrown by command callbacks to end with an error; main() prints it and
/// exits 1. Lets callbacks be written as straight-line code over Results.
struct CommandFailed {
  base::Error error;
};

/// Returns the value of a Result or ends the command with its error.
template <class T>
T OrFail(base::Result<T> r, std::string_view context = {}) {
  if (!r) {
    base::Error e = r.error();
    if (!context.empty()) e.message = std::string(context) + ": " + e.message;
    throw CommandFailed{std::move(e)};
  }
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}
inline void OrFail(base::Status s, std::string_view context = {}) {
  if (!s) {
    base::Error e = s.error();
    if (!context.empty()) e.message = std::string(context) + ": " + e.message;
    throw CommandFailed{std::move(e)};
  }
}
[[noreturn]] inline void FailCommand(base::ErrorCode code, std::string message) {
  throw CommandFailed{base::Error{code, std::move(message)}};
}

/// Prints a JSON document on stdout, pretty-printed (the `--output json` answer).
void PrintJson(const nlohmann::json& j);

/// A consensus or wall time for people: "2026-12-07 13:05:06 UTC" (whole seconds;
/// `--output json` carries the unix milliseconds instead).
std::string UtcText(uint64_t time_ms);

/// A whole number a user typed: 1 to `max_digits` ASCII digits and nothing else
/// (max_digits <= 19, so it fits in 64 bits); nullopt otherwise.
std::optional<uint64_t> ParseDigits(std::string_view text, size_t max_digits);

/// Reports an error on stderr (text) or stdout as {"error":{...}} (json).
void PrintError(const GlobalOptions& g, const base::Error& e);

/// Reads one line from the controlling terminal (/dev/tty), with echo off unless
/// `echo`, into `out` (at most 4096 bytes kept). Returns false when there is no
/// terminal to ask, so the caller can say how else to provide the value.
bool ReadLineFromTty(std::string_view prompt, bool echo, std::string& out);

/// A gpn1 address, or a key name looked up in the keystores `keystore_dirs` in
/// order, as an address. Errors start with `where` and say what was looked at
/// (the keys each keystore has), so the user can fix the name.
base::Result<crypto::Address> ResolveAddressOrKey(const std::string& text, const std::string& where,
                                                  const std::vector<std::string>& keystore_dirs);

/// Unlocks key `name` of the keystore at g.Home() for signing: the passphrase comes
/// from $GPUNET_PASSPHRASE, else the terminal; ends the command with an error that
/// says how to provide it when there is neither.
crypto::KeyPair LoadKey(const GlobalOptions& g, const std::string& name);

// Command groups, one per cmd_<group>.cpp.
void RegisterKeysCommands(CLI::App& app, GlobalOptions& g);
void RegisterSandboxCommands(CLI::App& app, GlobalOptions& g);
void RegisterClientCommands(CLI::App& app, GlobalOptions& g);  // status, send, query
void RegisterDevnetCommands(CLI::App& app, GlobalOptions& g);
void RegisterNodeCommands(CLI::App& app, GlobalOptions& g);
void RegisterMarketCommands(CLI::App& app,
                            GlobalOptions& g);  // provider, offers, order, bid(s), lease, attest
/// `provider init`, `provider apply`, `provider status` (cmd_provider_setup.cpp).
void RegisterProviderSetupCommands(CLI::App& provider, GlobalOptions& g);
void RegisterProviderGpusCommands(CLI::App& provider, GlobalOptions& g);  // provider gpus
void RegisterManifestCommands(CLI::App& app, GlobalOptions& g);           // manifest check
void RegisterTaskCommands(CLI::App& app, GlobalOptions& g);               // task check
void RegisterRunCommand(CLI::App& app, GlobalOptions& g);                 // run
/// `provider run` (cmd_provider_run.cpp), under the `provider` command.
void RegisterProviderRunCommands(CLI::App& provider, GlobalOptions& g);
/// `provider api` (internal, hidden): the tenant-facing process (cmd_provider_api.cpp).
void RegisterProviderApiCommand(CLI::App& provider, GlobalOptions& g);
/// The tenant API's verbs under `lease` (cmd_lease_tenant.cpp): environments, submit,
/// secrets, upload, status, events, logs, outputs, grant, revoke.
void RegisterLeaseTenantCommands(CLI::App& lease, GlobalOptions& g);
void RegisterLogsCommand(CLI::App& app, GlobalOptions& g);  // gpunet logs (cmd_lease_tenant.cpp)
/// exec, shell, forward, cp, ssh-config and the hidden ssh-proxy (cmd_interactive.cpp).
void RegisterInteractiveCommands(CLI::App& app, GlobalOptions& g);

}  // namespace gpunet::apps
