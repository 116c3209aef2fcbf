// The OpenSSH files `gpunet ssh-config` manages (docs/cli.md "ssh-config"): a
// `Host gpunet-<lease>` block in <home>/ssh/config whose ProxyCommand is gpunet
// itself, and the lease sshd's host key in <home>/ssh/known_hosts. Pure text
// functions; the command reads and writes the files.
//
// ProxyCommand runs in a shell (`sh -c`, after ssh's own %-expansion), so what goes
// into it is only the numeric lease id and the user's own local settings (this
// binary's path, the home, the node URL), each checked against a strict character
// set (no space, quote, '%', '$', '`', '\\', ';', '&', '|', '<', '>', '~', '#', control byte) and
// single-quoted; nothing the ledger or the provider said ever goes in.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace gpunet::client {

/// The ssh host alias of a lease: "gpunet-7".
std::string SshHostAlias(uint64_t lease_id);

/// kInvalidArgument unless `value` is non-empty and only letters, digits and
/// `/ . _ - + @ : , =`, naming `what` (e.g. "the gpunet home") and what to do.
[[nodiscard]] base::Status CheckSshConfigValue(std::string_view what, std::string_view value);

/// What a Host block is made of (each value checked by CheckSshConfigValue).
struct SshHostEntry {
  uint64_t lease_id = 0;
  std::string gpunet_path;    ///< absolute path of this gpunet binary
  std::string home;           ///< absolute gpunet home
  std::string node_url;       ///< the node's RPC URL
  std::string identity_file;  ///< the user's SSH private key (absolute)
  std::string known_hosts;    ///< <home>/ssh/known_hosts
};

/// The `Host gpunet-<lease>` block, ending in a newline.
[[nodiscard]] base::Result<std::string> SshHostBlock(const SshHostEntry& entry);

/// `config` with the block of `Host <alias>` (from that line to the next Host or
/// Match line) replaced by `block`, or `block` appended when there is none.
std::string ReplaceSshHostBlock(std::string_view config, std::string_view alias,
                                std::string_view block);

/// An OpenSSH public key line checked: `<type> <base64> [comment]`, type one of
/// ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, sk-ssh-ed25519@openssh.com,
/// sk-ecdsa-sha2-nistp256@openssh.com; no control byte; at most 8 KiB. Returns the
/// line without its trailing newline. kInvalidArgument naming `where`.
[[nodiscard]] base::Result<std::string> CheckSshPublicKeyLine(std::string_view where,
                                                              std::string_view text);

/// `known_hosts` with the lines for `alias` replaced by `alias <type> <base64>` of
/// `host_key_line` (a CheckSshPublicKeyLine line; its comment dropped).
std::string ReplaceKnownHost(std::string_view known_hosts, std::string_view alias,
                             std::string_view host_key_line);

}  // namespace gpunet::client
