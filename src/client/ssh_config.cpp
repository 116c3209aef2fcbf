#include "client/ssh_config.h"

#include <array>
#include <vector>

namespace gpunet::client {

using base::ErrorCode;
using base::Fail;

namespace {

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    out.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

/// The first word of a config line, lower-cased, and the rest trimmed.
std::pair<std::string, std::string_view> Keyword(std::string_view line) {
  line = Trim(line);
  size_t end = 0;
  while (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != '=') ++end;
  std::string key(line.substr(0, end));
  for (char& c : key)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  std::string_view rest = line.substr(end);
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t' || rest.front() == '='))
    rest.remove_prefix(1);
  return {key, Trim(rest)};
}

bool Base64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '=';
}

constexpr std::array<std::string_view, 7> kKeyTypes = {"ssh-ed25519",
                                                       "ssh-rsa",
                                                       "ecdsa-sha2-nistp256",
                                                       "ecdsa-sha2-nistp384",
                                                       "ecdsa-sha2-nistp521",
                                                       "sk-ssh-ed25519@openssh.com",
                                                       "sk-ecdsa-sha2-nistp256@openssh.com"};

}  // namespace

std::string SshHostAlias(uint64_t lease_id) {
  return "gpunet-" + std::to_string(lease_id);
}

base::Status CheckSshConfigValue(std::string_view what, std::string_view value) {
  for (char c : value) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '/' || c == '.' || c == '_' || c == '-' || c == '+' || c == '@' ||
                    c == ':' || c == ',' || c == '=';
    if (!ok)
      return Fail(ErrorCode::kInvalidArgument,
                  std::string(what) + " \"" + std::string(value) +
                      "\" has a character that ssh's config or ProxyCommand's shell could read "
                      "otherwise (only letters, digits and / . _ - + @ : , = are written there): "
                      "use a path or URL without it (e.g. move or link the file)");
  }
  if (value.empty()) return Fail(ErrorCode::kInvalidArgument, std::string(what) + " is empty");
  return base::Ok();
}

base::Result<std::string> SshHostBlock(const SshHostEntry& e) {
  GPUNET_TRY(CheckSshConfigValue("the path of gpunet", e.gpunet_path));
  GPUNET_TRY(CheckSshConfigValue("the gpunet home", e.home));
  GPUNET_TRY(CheckSshConfigValue("the node URL", e.node_url));
  GPUNET_TRY(CheckSshConfigValue("the identity file", e.identity_file));
  GPUNET_TRY(CheckSshConfigValue("the known_hosts file", e.known_hosts));
  if (e.lease_id == 0) return Fail(ErrorCode::kInvalidArgument, "lease id 0");
  const std::string alias = SshHostAlias(e.lease_id);
  return "Host " + alias + "\n" +                                             //
         "  # written by `gpunet ssh-config " + std::to_string(e.lease_id) +  //
         "`: it is replaced when that runs again\n" +                         //
         "  User gpunet\n" +                                                  //
         "  HostKeyAlias " + alias + "\n" +                                   //
         "  UserKnownHostsFile " + e.known_hosts + "\n" +                     //
         "  StrictHostKeyChecking yes\n" +                                    //
         "  IdentityFile " + e.identity_file + "\n" +                         //
         "  IdentitiesOnly yes\n" +                                           //
         "  ForwardAgent no\n" +                                              //
         "  ForwardX11 no\n" +                                                //
         "  GSSAPIDelegateCredentials no\n" +                                 //
         "  PermitLocalCommand no\n" +                                        //
         "  ProxyCommand '" + e.gpunet_path + "' --home '" + e.home + "' --node '" + e.node_url +
         "' ssh-proxy " + std::to_string(e.lease_id) + "\n";
}

std::string ReplaceSshHostBlock(std::string_view config, std::string_view alias,
                                std::string_view block) {
  std::string out;
  bool skipping = false, replaced = false;
  for (std::string_view line : Lines(config)) {
    const auto [key, rest] = Keyword(line);
    if (key == "host" || key == "match") {
      skipping = key == "host" && rest == alias;
      if (skipping && !replaced) {
        out += block;
        replaced = true;
      }
    }
    if (!skipping) {
      out += line;
      out += '\n';
    }
  }
  if (!replaced) {
    if (!out.empty() && !out.ends_with("\n\n")) out += '\n';
    out += block;
  }
  return out;
}

base::Result<std::string> CheckSshPublicKeyLine(std::string_view where, std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Fail(ErrorCode::kInvalidArgument,
                std::string(where) + " is not an OpenSSH public key line (" + std::string(why) +
                    "); expected `ssh-ed25519 AAAA... comment`");
  };
  if (text.ends_with('\n')) text.remove_suffix(1);
  if (text.size() > 8192) return bad("over 8 KiB");
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad("a control byte");
  const size_t space = text.find(' ');
  if (space == std::string_view::npos) return bad("no key after the type");
  const std::string_view type = text.substr(0, space);
  bool known = false;
  for (auto t : kKeyTypes) known = known || t == type;
  if (!known) return bad("unknown type \"" + std::string(type) + "\"");
  std::string_view blob = text.substr(space + 1);
  blob = blob.substr(0, blob.find(' '));
  if (blob.size() < 16) return bad("the key is too short");
  for (char c : blob)
    if (!Base64Char(c)) return bad("the key is not base64");
  return std::string(text);
}

std::string ReplaceKnownHost(std::string_view known_hosts, std::string_view alias,
                             std::string_view host_key_line) {
  std::string out;
  for (std::string_view line : Lines(known_hosts)) {
    const std::string_view first = line.substr(0, line.find(' '));
    if (first == alias) continue;
    out += line;
    out += '\n';
  }
  const size_t space = host_key_line.find(' ');
  const size_t end = host_key_line.find(' ', space + 1);
  out += std::string(alias) + " " + std::string(host_key_line.substr(0, end)) + "\n";
  return out;
}

}  // namespace gpunet::client
