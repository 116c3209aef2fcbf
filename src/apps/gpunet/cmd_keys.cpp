// `gpunet keys`: the wallet's key management. The logic lives in
// crypto/keystore.h; this file asks for passphrases and prints.
#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "apps/gpunet/cli.h"
#include "crypto/keystore.h"
#include "crypto/mnemonic.h"

namespace gpunet::apps {
namespace {

using base::ErrorCode;

/// A string holding a secret (passphrase, mnemonic, seed hex): wiped when it dies.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string s) : m_value(std::move(s)) {}
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  Secret(Secret&& o) noexcept : m_value(std::move(o.m_value)) { o.Wipe(); }
  ~Secret() { Wipe(); }
  std::string& Mutable() { return m_value; }
  std::string_view View() const { return m_value; }

 private:
  void Wipe() { sodium_memzero(m_value.data(), m_value.size()); }
  std::string m_value;
};

constexpr const char* kPassphraseHelp =
    "set GPUNET_PASSPHRASE in the environment (e.g. `GPUNET_PASSPHRASE='...' gpunet keys ...`) "
    "or run the command from an interactive terminal";

/// One line from the terminal into a Secret; false when there is no terminal.
bool ReadFromTty(const char* prompt, bool echo, Secret& out) {
  return ReadLineFromTty(prompt, echo, out.Mutable());
}

/// The passphrase from $GPUNET_PASSPHRASE, else asked on /dev/tty (twice when
/// `confirm`, for a new key).
Secret GetPassphrase(const std::string& key_name, bool confirm) {
  if (const char* env = std::getenv("GPUNET_PASSPHRASE"); env != nullptr) {
    if (*env == '\0')
      FailCommand(ErrorCode::kInvalidArgument, "GPUNET_PASSPHRASE is set but empty");
    return Secret(env);
  }
  Secret first;
  std::string prompt = "Passphrase for key \"" + key_name + "\": ";
  if (confirm) prompt = "New passphrase for key \"" + key_name + "\": ";
  if (!ReadFromTty(prompt.c_str(), false, first))
    FailCommand(ErrorCode::kInvalidArgument,
                std::string("a passphrase is needed and there is no terminal to ask on: ") +
                    kPassphraseHelp);
  if (first.View().empty())
    FailCommand(ErrorCode::kInvalidArgument, "the passphrase must not be empty");
  if (confirm) {
    Secret second;
    ReadFromTty("Repeat the passphrase: ", false, second);
    if (second.View() != first.View())
      FailCommand(ErrorCode::kInvalidArgument, "the two passphrases differ; nothing was written");
  }
  return first;
}

/// A mnemonic from stdin when it is piped in, else asked on the terminal.
Secret GetMnemonic() {
  Secret words;
  if (!::isatty(STDIN_FILENO)) {
    std::string& s = words.Mutable();
    char buf[512];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof(buf), stdin)) > 0 && s.size() < 4096) s.append(buf, n);
    sodium_memzero(buf, sizeof(buf));
  } else if (!ReadFromTty("Enter the 24-word mnemonic (input hidden): ", false, words)) {
    FailCommand(ErrorCode::kInvalidArgument,
                "no mnemonic given: pipe it on stdin (e.g. `gpunet keys import NAME < words.txt`)");
  }
  return words;
}

nlohmann::json EntryJson(const crypto::KeyEntry& e) {
  nlohmann::json j = {{"name", e.name}, {"path", e.path}};
  if (e.problem) {
    j["error"] = {{"code", std::string(base::ErrorCodeName(e.problem->code))},
                  {"message", e.problem->message}};
  } else {
    j["address"] = crypto::AddressToString(e.address);
    j["public_key"] = base::ToHex(e.public_key);
  }
  return j;
}

void PrintEntry(const crypto::KeyEntry& e) {
  std::cout << "  name:       " << e.name << "\n"
            << "  address:    " << crypto::AddressToString(e.address) << "\n"
            << "  public key: " << base::ToHex(e.public_key) << "\n"
            << "  file:       " << e.path << "\n";
}

void PrintMnemonicBlock(std::string_view mnemonic) {
  // Numbered, four per line: easy to copy onto paper and to check back.
  size_t index = 0, start = 0;
  while (start < mnemonic.size()) {
    size_t end = mnemonic.find(' ', start);
    if (end == std::string_view::npos) end = mnemonic.size();
    ++index;
    std::string word(mnemonic.substr(start, end - start));
    if (index % 4 == 0)
      std::printf("%2zu. %s\n", index, word.c_str());
    else
      std::printf("%s%2zu. %-10s", index % 4 == 1 ? "  " : "", index, word.c_str());
    sodium_memzero(word.data(), word.size());
    start = end + 1;
  }
  if (index % 4 != 0) std::printf("\n");
  std::fflush(stdout);
}

void ReportStored(const GlobalOptions& g, const crypto::KeyEntry& e, const char* verb) {
  if (g.Json()) {
    PrintJson(EntryJson(e));
  } else {
    std::cout << verb << " key \"" << e.name << "\"\n";
    PrintEntry(e);
  }
}

void AddCommand(const GlobalOptions& g, const std::string& name, bool recover) {
  OrFail(crypto::ValidateKeyName(name));
  auto ks = crypto::Keystore::AtHome(g.Home());
  if (ks.Show(name))
    FailCommand(ErrorCode::kAlreadyExists,
                "a key named \"" + name + "\" already exists in " + ks.Dir());
  if (recover) {
    Secret words = GetMnemonic();
    OrFail(
        crypto::MnemonicToSeed(words.View()));  // reject bad words before asking for a passphrase
    Secret pass = GetPassphrase(name, true);
    ReportStored(g, OrFail(ks.ImportMnemonic(name, words.View(), pass.View())), "Recovered");
    return;
  }
  Secret pass = GetPassphrase(name, true);
  crypto::NewKey k = OrFail(ks.Add(name, pass.View()));
  Secret mnemonic(std::move(k.mnemonic));
  if (g.Json()) {
    nlohmann::json j = EntryJson(k.entry);
    j["mnemonic"] = std::string(mnemonic.View());
    PrintJson(j);
    return;
  }
  std::cout << "Created key \"" << name << "\"\n";
  PrintEntry(k.entry);
  std::cout << "\nWrite down these 24 words and keep them offline. They are the only way to\n"
               "recover this key if its file or passphrase is lost, and anyone who has them\n"
               "controls the key. They are not shown again (see `gpunet keys export`).\n\n";
  PrintMnemonicBlock(mnemonic.View());
}

void ListCommand(const GlobalOptions& g) {
  auto ks = crypto::Keystore::AtHome(g.Home());
  std::vector<crypto::KeyEntry> keys = OrFail(ks.List());
  if (g.Json()) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& e : keys) arr.push_back(EntryJson(e));
    PrintJson({{"keys", arr}, {"dir", ks.Dir()}});
    return;
  }
  if (keys.empty()) {
    std::cout << "No keys in " << ks.Dir() << ". Create one with `gpunet keys add NAME`.\n";
    return;
  }
  size_t width = 4;
  for (const auto& e : keys) width = std::max(width, e.name.size());
  std::printf("%-*s  %-42s  %s\n", static_cast<int>(width), "NAME", "ADDRESS", "PUBLIC KEY");
  for (const auto& e : keys) {
    if (e.problem)
      std::printf("%-*s  (unreadable: %s)\n", static_cast<int>(width), e.name.c_str(),
                  e.problem->message.c_str());
    else
      std::printf("%-*s  %-42s  %s\n", static_cast<int>(width), e.name.c_str(),
                  crypto::AddressToString(e.address).c_str(), base::ToHex(e.public_key).c_str());
  }
}

void ShowCommand(const GlobalOptions& g, const std::string& name) {
  auto ks = crypto::Keystore::AtHome(g.Home());
  crypto::KeyEntry e = OrFail(ks.Show(name));
  if (g.Json()) {
    PrintJson(EntryJson(e));
  } else {
    PrintEntry(e);
  }
}

void ExportCommand(const GlobalOptions& g, const std::string& name, bool seed) {
  auto ks = crypto::Keystore::AtHome(g.Home());
  OrFail(ks.Show(name));  // not-found before asking for a passphrase
  Secret pass = GetPassphrase(name, false);
  Secret out(seed ? OrFail(ks.ExportSeedHex(name, pass.View()))
                  : OrFail(ks.ExportMnemonic(name, pass.View())));
  if (g.Json()) {
    PrintJson({{"name", name}, {seed ? "seed_hex" : "mnemonic", std::string(out.View())}});
    return;
  }
  std::cerr << "warning: anyone who sees the following " << (seed ? "seed" : "words")
            << " controls key \"" << name << "\"\n";
  std::cout << out.View() << std::endl;
}

void ImportCommand(const GlobalOptions& g, const std::string& name, const std::string& seed_hex) {
  OrFail(crypto::ValidateKeyName(name));
  auto ks = crypto::Keystore::AtHome(g.Home());
  if (ks.Show(name))
    FailCommand(ErrorCode::kAlreadyExists,
                "a key named \"" + name + "\" already exists in " + ks.Dir());
  if (!seed_hex.empty()) {
    Secret hex(seed_hex);
    OrFail(base::FixedFromHex<crypto::Seed::kSize>(hex.View()),
           "--seed-hex must be 64 hex characters");
    Secret pass = GetPassphrase(name, true);
    ReportStored(g, OrFail(ks.ImportSeedHex(name, hex.View(), pass.View())), "Imported");
    return;
  }
  Secret words = GetMnemonic();
  OrFail(crypto::MnemonicToSeed(words.View()));
  Secret pass = GetPassphrase(name, true);
  ReportStored(g, OrFail(ks.ImportMnemonic(name, words.View(), pass.View())), "Imported");
}

void DeleteCommand(const GlobalOptions& g, const std::string& name, bool yes) {
  auto ks = crypto::Keystore::AtHome(g.Home());
  crypto::KeyEntry e = OrFail(ks.Show(name));
  if (!yes) {
    std::string prompt =
        "Delete key \"" + name + "\" (" + crypto::AddressToString(e.address) +
        ")? Without its mnemonic it is gone for good.\nType the key name to confirm: ";
    Secret answer;
    if (!ReadFromTty(prompt.c_str(), true, answer))
      FailCommand(ErrorCode::kInvalidArgument,
                  "refusing to delete key \"" + name + "\" without confirmation: pass --yes");
    if (answer.View() != name) FailCommand(ErrorCode::kInvalidArgument, "not confirmed; key kept");
  }
  OrFail(ks.Delete(name));
  if (g.Json()) {
    PrintJson({{"deleted", name}, {"address", crypto::AddressToString(e.address)}});
  } else {
    std::cout << "Deleted key \"" << name << "\" (" << crypto::AddressToString(e.address) << ")\n";
  }
}

}  // namespace

void RegisterKeysCommands(CLI::App& app, GlobalOptions& g) {
  CLI::App* keys = app.add_subcommand("keys", "Create, list, back up and restore signing keys");
  keys->require_subcommand(1);
  keys->fallthrough();
  keys->footer(
      "Keys live in <home>/keys/NAME.json, encrypted with your passphrase (argon2id +\n"
      "XChaCha20-Poly1305). The passphrase comes from $GPUNET_PASSPHRASE or is asked on\n"
      "the terminal. Back up the 24 words `keys add` prints: they restore the key.\n\n"
      "Examples:\n"
      "  gpunet keys add alice                     create a key, print its backup words\n"
      "  gpunet keys list                          names and addresses, no passphrase needed\n"
      "  gpunet keys show alice -o json            one key as JSON\n"
      "  gpunet keys export alice                  print the 24 backup words again\n"
      "  gpunet keys import alice2 < words.txt     restore from the words on stdin\n"
      "  gpunet keys add alice --recover           same, asking for the words on the terminal\n"
      "  gpunet keys delete alice --yes            remove the key file\n"
      "  GPUNET_PASSPHRASE=s3cret gpunet --home /tmp/h keys add ci   non-interactive");

  auto name = std::make_shared<std::string>();
  auto flag = std::make_shared<bool>(false);
  auto seed_hex = std::make_shared<std::string>();

  CLI::App* add = keys->add_subcommand("add", "Create a new key (or --recover one from its words)");
  add->fallthrough();
  add->add_option("name", *name, "Key name: 1-64 of a-z 0-9 _ -")->required();
  add->add_flag("--recover", *flag,
                "Restore from a 24-word mnemonic read from stdin or the terminal");
  add->footer("Example: gpunet keys add alice");
  add->callback([&g, name, flag] { AddCommand(g, *name, *flag); });

  CLI::App* list = keys->add_subcommand("list", "List keys: name, address, public key");
  list->fallthrough();
  list->callback([&g] { ListCommand(g); });

  CLI::App* show = keys->add_subcommand("show", "Show one key's address and public key");
  show->fallthrough();
  show->add_option("name", *name, "Key name")->required();
  show->callback([&g, name] { ShowCommand(g, *name); });

  CLI::App* exp = keys->add_subcommand("export", "Print a key's 24-word backup (or --seed hex)");
  exp->fallthrough();
  exp->add_option("name", *name, "Key name")->required();
  exp->add_flag("--seed", *flag, "Print the 32-byte seed as hex instead of the mnemonic");
  exp->footer("Example: gpunet keys export alice > alice-words.txt && chmod 600 alice-words.txt");
  exp->callback([&g, name, flag] { ExportCommand(g, *name, *flag); });

  CLI::App* imp = keys->add_subcommand(
      "import", "Restore a key from its 24-word mnemonic (stdin or terminal) or --seed-hex");
  imp->fallthrough();
  imp->add_option("name", *name, "Name for the restored key")->required();
  imp->add_option(
      "--seed-hex", *seed_hex,
      "The 32-byte seed as 64 hex characters (visible in shell history: prefer the mnemonic)");
  imp->footer(
      "Examples:\n"
      "  gpunet keys import alice < alice-words.txt\n"
      "  gpunet keys import alice --seed-hex 9d61b19d...7f60");
  imp->callback([&g, name, seed_hex] { ImportCommand(g, *name, *seed_hex); });

  CLI::App* del =
      keys->add_subcommand("delete", "Delete a key file (asks to confirm unless --yes)");
  del->fallthrough();
  del->add_option("name", *name, "Key name")->required();
  del->add_flag("--yes,-y", *flag, "Do not ask for confirmation");
  del->callback([&g, name, flag] { DeleteCommand(g, *name, *flag); });
}

}  // namespace gpunet::apps
