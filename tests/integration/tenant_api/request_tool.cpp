// Test tool of integration_tenant_api_bad_input: signs tenant-API requests with the
// client library's own signing (client/tenant_request.h), and spoils them on demand,
// for the requests `gpunet lease ...` never sends (a wrong signature, a stale or
// future timestamp, a target other than the one signed, a grant that has expired).
// It prints the headers, one "Name: value" a line; the test's Python sends them over
// TLS. No network here.
//
//   tenant_request_tool sign KEY_ARGS --chain-id C --provider ADDR --lease N
//       --method M --target T [--body-file F] [--signed-target T2]
//       [--timestamp-offset-ms D] [--bad-signature]
//   tenant_request_tool grant --home H --key NAME --chain-id C --provider ADDR --lease N
//       --session-seed HEX --expires-ms ABS --out FILE     (the grant's hex into FILE)
//
// KEY_ARGS, one of:
//   --home H --key NAME          a keystore key (its passphrase: GPUNET_PASSPHRASE)
//   --session-seed HEX --grant-file F   a session key and the grant made for it
//   --session-dir D --session NAME      a session key and its grant as `gpunet lease
//                                       grant` stored them (the grant of --lease)
#include <sys/time.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "base/bytes.h"
#include "client/session_keys.h"
#include "client/tenant_request.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"
#include "crypto/keystore.h"

using namespace gpunet;

namespace {

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "tenant_request_tool: " << message << "\n";
  std::exit(2);
}

template <typename T>
T Must(base::Result<T> r, const std::string& what) {
  if (!r) Die(what + ": " + r.error().message);
  return std::move(*r);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

uint64_t NowMs() {
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  return static_cast<uint64_t>(tv.tv_sec) * 1000 + static_cast<uint64_t>(tv.tv_usec) / 1000;
}

using Args = std::map<std::string, std::string>;

std::string Arg(const Args& args, const std::string& name) {
  auto it = args.find(name);
  if (it == args.end()) Die("missing " + name);
  return it->second;
}

std::optional<std::string> Opt(const Args& args, const std::string& name) {
  auto it = args.find(name);
  return it == args.end() ? std::nullopt : std::optional(it->second);
}

client::RequestScope Scope(const Args& args) {
  client::RequestScope scope;
  scope.chain_id = Arg(args, "--chain-id");
  scope.provider = Must(crypto::ParseAddress(Arg(args, "--provider")), "--provider");
  scope.lease_id = std::stoull(Arg(args, "--lease"));
  return scope;
}

crypto::KeyPair KeystoreKey(const Args& args) {
  const char* pass = std::getenv("GPUNET_PASSPHRASE");
  if (pass == nullptr) Die("set GPUNET_PASSPHRASE");
  return Must(crypto::Keystore::AtHome(Arg(args, "--home")).Load(Arg(args, "--key"), pass),
              "--key");
}

crypto::KeyPair SeedKey(const std::string& hex) {
  return crypto::KeyPair::FromSeed(Must(base::FixedFromHex<32>(hex), "--session-seed"));
}

/// The signing key and, for a session key, its grant.
std::pair<crypto::KeyPair, std::optional<client::DelegationGrant>> Signer(
    const Args& args, const client::RequestScope& scope) {
  if (args.contains("--key")) return {KeystoreKey(args), std::nullopt};
  if (args.contains("--session-seed")) {
    auto grant = Must(client::ParseGrant(ReadAll(Arg(args, "--grant-file"))), "--grant-file");
    return {SeedKey(Arg(args, "--session-seed")), grant};
  }
  const client::SessionKeys sessions(Arg(args, "--session-dir"));
  const std::string name = Arg(args, "--session");
  for (auto& found : Must(sessions.GrantsFor(scope.provider, scope.lease_id), "--session-dir"))
    if (found.name == name) return {found.key, found.grant};
  Die("no grant of session key " + name + " for lease " + std::to_string(scope.lease_id));
}

int Sign(const Args& args) {
  const client::RequestScope scope = Scope(args);
  const auto [key, grant] = Signer(args, scope);
  const std::string method = Arg(args, "--method");
  const std::string target = Arg(args, "--target");
  // A target the library refuses to sign can still be sent: signed as another one.
  const std::string signed_target = Opt(args, "--signed-target").value_or(target);
  const std::string body = args.contains("--body-file") ? ReadAll(args.at("--body-file")) : "";
  const int64_t offset = std::stoll(Opt(args, "--timestamp-offset-ms").value_or("0"));
  const uint64_t timestamp = static_cast<uint64_t>(static_cast<int64_t>(NowMs()) + offset);
  const client::RequestLine line{method, signed_target, client::BodyHash(body)};
  auto headers = Must(client::SignTenantRequest(scope, key, grant ? &*grant : nullptr, line,
                                                timestamp, client::RandomNonce()),
                      "signing");
  for (auto& [name, value] : headers) {
    if (args.contains("--bad-signature") && name == client::kSignatureHeader)
      value[0] = value[0] == '0' ? '1' : '0';  // still 128 lower-case hex
    std::cout << name << ": " << value << "\n";
  }
  return 0;
}

int Grant(const Args& args) {
  const client::RequestScope scope = Scope(args);
  const crypto::KeyPair tenant = KeystoreKey(args);
  const crypto::KeyPair session = SeedKey(Arg(args, "--session-seed"));
  client::GrantId id;
  for (size_t i = 0; i < id.kSize; ++i) id[i] = static_cast<uint8_t>(i + 1);
  const auto grant = client::SignGrant(tenant, scope, session.Public(),
                                       std::stoull(Arg(args, "--expires-ms")), id);
  std::ofstream(Arg(args, "--out"), std::ios::binary) << client::EncodeGrant(grant);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Die("usage: tenant_request_tool sign|grant --flag value ... (see the source)");
  const std::string verb = argv[1];
  Args args;
  for (int i = 2; i < argc; ++i) {
    const std::string name = argv[i];
    if (name == "--bad-signature") {
      args[name] = "1";
    } else if (i + 1 < argc) {
      args[name] = argv[++i];
    } else {
      Die(name + " needs a value");
    }
  }
  if (verb == "sign") return Sign(args);
  if (verb == "grant") return Grant(args);
  Die("unknown verb " + verb);
}
