// `gpunet manifest check FILE`: reads a workload manifest (YAML or JSON), checks it and
// shows what goes on the ledger (the hash of its canonical JSON) and what a provider
// receives (that JSON). No node, key or money involved (docs/manifest.md).
#include <iostream>
#include <memory>
#include <string>

#include "apps/gpunet/cli.h"
#include "base/bytes.h"
#include "client/manifest.h"

namespace gpunet::apps {
namespace {

std::string Joined(const std::vector<std::string>& items, std::string_view none) {
  if (items.empty()) return std::string(none);
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : " ") + i;
  return out;
}

std::string LimitText(const std::optional<uint32_t>& v, std::string_view unit) {
  return v ? std::to_string(*v) + " " + std::string(unit) : "the machine share";
}

void PrintManifest(const client::LoadedManifest& l) {
  const client::Manifest& m = l.manifest;
  bool host = m.environment == client::kHostEnvironment;
  std::string ports;
  for (uint16_t p : m.ports) ports += " " + std::to_string(p);
  std::cout << "manifest " << l.path << " is valid\n"
            << "  environment  " << m.environment
            << (host ? " (the provider's host environment, sandboxed)"
                     : " (a podman image the provider must have)")
            << "; check the provider lists it: GET /environments\n"
            << "  command      "
            << Joined(m.command, "none: interactive (the sandbox waits for gpunet run)") << "\n"
            << "  workdir      " << m.workdir << "\n"
            << "  env          " << m.env.size() << " variable(s)\n"
            << "  secrets      " << Joined(m.secrets, "none")
            << (m.secrets.empty() ? "" : " (values are set after the lease starts, never here)")
            << "\n"
            << "  network      " << client::ManifestNetworkName(m.network) << ports << "\n"
            << "  memory       " << LimitText(m.resources.memory_mib, "MiB") << "\n"
            << "  cpu          " << LimitText(m.resources.cpu_millis, "thousandths of a core")
            << "\n"
            << "  disk         " << LimitText(m.resources.disk_mib, "MiB") << "\n"
            << "  outputs      " << m.outputs_dir << "\n"
            << "  stop grace   " << m.stop_grace_ms << " ms\n"
            << "  hash         " << base::ToHex(l.hash)
            << " (BLAKE2b-256 of the canonical JSON: the lease's manifest_hash)\n"
            << "  canonical    " << l.canonical.size() << " bytes (--canonical prints them)"
            << std::endl;
}

void RunCheck(const GlobalOptions& g, const std::string& file, bool canonical_only) {
  client::LoadedManifest l = OrFail(client::LoadManifestFile(file));
  if (canonical_only) {
    std::cout << l.canonical;  // exactly the bytes: no newline
    std::cout.flush();
    return;
  }
  if (!g.Json()) return PrintManifest(l);
  nlohmann::json j;
  j["path"] = l.path;
  j["manifest_hash"] = base::ToHex(l.hash);
  j["canonical"] = l.canonical;
  j["manifest"] = nlohmann::json::parse(l.canonical);
  PrintJson(j);
}

}  // namespace

void RegisterManifestCommands(CLI::App& app, GlobalOptions& g) {
  CLI::App* manifest =
      app.add_subcommand("manifest", "Check a workload manifest and show its hash");
  manifest->require_subcommand(1);
  manifest->fallthrough();
  manifest->footer(
      "A manifest says what a lease runs: environment, command, variables, secret names,\n"
      "network, limits, outputs (docs/manifest.md). The ledger carries the BLAKE2b-256 of\n"
      "its canonical JSON; the provider runs only the manifest with that hash.");
  auto file = std::make_shared<std::string>();
  auto canonical = std::make_shared<bool>(false);
  CLI::App* check = manifest->add_subcommand(
      "check", "Check a manifest file (YAML or JSON) and print its hash and canonical size");
  check->fallthrough();
  check->add_option("file", *file, "The manifest, e.g. manifest.yaml")->required();
  check->add_flag("--canonical", *canonical,
                  "Print only the canonical JSON bytes the provider receives (no newline)");
  check->footer(
      "Examples:\n"
      "  gpunet manifest check manifest.yaml          fields, limits and the hash\n"
      "  gpunet manifest check manifest.yaml -o json  {path, manifest_hash, canonical, manifest}\n"
      "  gpunet manifest check manifest.yaml --canonical > manifest.json\n"
      "Then: gpunet lease create OFFER --gpus N --deposit D --manifest manifest.yaml --from KEY");
  check->callback([&g, file, canonical] { RunCheck(g, *file, *canonical); });
}

}  // namespace gpunet::apps
