// `gpunet provider run`: the provider daemon in the foreground (docs/provider.md).
// Thin: reads the home, provider.yaml and the operator key, then provider::RunDaemon.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <string>

#include <sodium.h>

#include "apps/gpunet/cli.h"
#include "base/file_util.h"
#include "client/market_config.h"
#include "crypto/address.h"
#include "crypto/keystore.h"
#include "provider/daemon.h"
#include "provider/home.h"
#include "provider/tls_identity.h"

namespace gpunet::apps {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) {
  g_stop.store(true);
}

struct ProviderRunArgs {
  std::string home;
  std::string key;
  std::string provider;
};

/// One line on stderr per event: "2026-12-07T13:05:06.123Z <line>".
void LogLine(std::string_view line) {
  static std::mutex mu;
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms.count() % 1000));
  std::lock_guard lock(mu);
  std::fprintf(stderr, "%s %.*s\n", stamp, static_cast<int>(line.size()), line.data());
}

std::string ExePath() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) FailCommand(base::ErrorCode::kIo, "cannot resolve /proc/self/exe for the supervisor");
  return std::string(buf, static_cast<size_t>(n));
}

/// daemon.passphrase_file (only its owner may read it), else $GPUNET_PASSPHRASE, else
/// the terminal.
std::string DaemonPassphrase(const client::DaemonConfig& dc, const std::string& key) {
  if (!dc.passphrase_file.empty()) {
    struct stat st {};
    if (::stat(dc.passphrase_file.c_str(), &st) != 0)
      FailCommand(base::ErrorCode::kNotFound,
                  "daemon.passphrase_file " + dc.passphrase_file + " does not exist");
    if ((st.st_mode & 077) != 0)
      FailCommand(base::ErrorCode::kPermissionDenied,
                  "daemon.passphrase_file " + dc.passphrase_file +
                      " may be read by others; chmod 600 it (docs/provider.md, \"Keys\")");
    std::string text =
        OrFail(base::ReadFileNoFollow(dc.passphrase_file, 4096), "daemon.passphrase_file");
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
  }
  if (const char* env = std::getenv("GPUNET_PASSPHRASE"); env != nullptr && *env != '\0')
    return env;
  std::string out;
  if (!ReadLineFromTty("Passphrase for the operator key \"" + key + "\": ", false, out))
    FailCommand(base::ErrorCode::kInvalidArgument,
                "the operator key \"" + key +
                    "\" needs its passphrase and there is no terminal to ask on: set "
                    "daemon.passphrase_file in provider.yaml (a file only the daemon's user can "
                    "read) or GPUNET_PASSPHRASE");
  return out;
}

/// The key that signs: provider.yaml's `operator:` when it is a key name; when it is
/// an address (as `provider init` writes it), the key of <home>/keys with that
/// address; with no operator, the only key there is.
std::string OperatorKeyName(const provider::ProviderHome& home,
                            const client::ProviderConfig& config) {
  const std::string& text = config.operator_key.text;
  if (config.has_operator && !text.starts_with("gpn1")) return text;
  auto keys = OrFail(crypto::Keystore(home.KeysDir()).List(), "reading " + home.KeysDir());
  std::vector<std::string> names;
  for (const auto& k : keys)
    if (!k.problem && (!config.has_operator || crypto::AddressToString(k.address) == text))
      names.push_back(k.name);
  if (names.size() == 1) return names[0];
  FailCommand(base::ErrorCode::kInvalidArgument,
              home.ConfigPath() +
                  (config.has_operator ? " names the operator " + text : " names no operator") +
                  " and " + home.KeysDir() + " holds " + std::to_string(names.size()) +
                  " matching keys; pass --key NAME");
}

std::string OctalMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

void RunProviderRun(const ProviderRunArgs& a) {
  provider::ProviderHome home =
      OrFail(provider::OpenProviderHome(a.home.empty() ? provider::DefaultProviderHome() : a.home));
  client::ProviderConfig config = OrFail(client::LoadProviderConfig(home.ConfigPath()));
  std::string key_name = a.key;
  if (key_name.empty()) key_name = OperatorKeyName(home, config);
  std::string passphrase = DaemonPassphrase(config.daemon, key_name);
  auto loaded = crypto::Keystore::AtHome(home.dir).Load(key_name, passphrase);
  sodium_memzero(passphrase.data(), passphrase.size());
  const crypto::KeyPair key =
      OrFail(std::move(loaded), "unlocking the operator key \"" + key_name + "\"");

  // The tenant API serves the home's TLS key; tenants pin the fingerprint the ledger
  // holds, which `provider apply` takes from provider.yaml. A key that is not that
  // one would be refused by every tenant as a man-in-the-middle: say so now.
  const base::Hash32 served = OrFail(provider::ReadTlsFingerprint(home),
                                     "the tenant API's TLS identity (provider init makes it)");
  if (served != config.tls_fingerprint) {
    FailCommand(base::ErrorCode::kInvalidArgument,
                home.TlsCertPath() + "'s key has the fingerprint " + base::ToHex(served) +
                    " but provider.yaml's tls_fingerprint is " +
                    base::ToHex(config.tls_fingerprint) +
                    "; tenants pin the ledger's value and would refuse this key. Put the key's "
                    "fingerprint in provider.yaml and run `gpunet provider apply`");
  }

  // Workloads run as unprivileged uids that must pass through every directory above
  // the sandbox's state dir (provider init makes the home 0711); bubblewrap would
  // otherwise fail at each start with a bare "Permission denied".
  for (std::filesystem::path dir = home.dir; !dir.empty(); dir = dir.parent_path()) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) {
      FailCommand(base::ErrorCode::kPermissionDenied,
                  dir.string() + " is not searchable by others (mode " + OctalMode(st.st_mode) +
                      "): the workloads' uids must pass through it to " + home.SandboxDir() +
                      "; chmod o+x " + dir.string() + " (provider init makes the home 0711)");
    }
    if (dir == dir.root_path()) break;
  }

  provider::DaemonSetup setup;
  setup.home = home;
  setup.api_command = {ExePath(), "provider", "api"};
  setup.config = std::move(config);
  setup.provider = a.provider;
  setup.supervisor_command = {ExePath(), "sandbox", "supervise"};
  setup.log = LogLine;

  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  LogLine("gpunet provider run: home " + home.dir);
  OrFail(provider::RunDaemon(std::move(setup), key, g_stop));
}

}  // namespace

void RegisterProviderRunCommands(CLI::App& provider, GlobalOptions&) {
  auto a = std::make_shared<ProviderRunArgs>();
  auto* run = provider.add_subcommand(
      "run",
      "Run the provider daemon in the foreground: start leases of this machine, heartbeat, "
      "withdraw, stop workloads when their lease closes");
  run->footer(
      "Logs one line per event to stderr. SIGTERM or SIGINT stop the daemon but NOT the "
      "workloads: they run under their own supervisors and the next start re-attaches to them "
      "(the systemd unit in docs/sandbox.md restarts it). The operator key's passphrase comes "
      "from daemon.passphrase_file, else $GPUNET_PASSPHRASE, else the terminal. Prometheus "
      "metrics on daemon.metrics_listen (/metrics); state in <home>/state "
      "(daemon-status.json is what `provider status` reads). docs/provider.md");
  run->add_option("--home", a->home,
                  "The provider's home (provider.yaml, keys/, state/, sandbox/); default "
                  "$GPUNET_PROVIDER_HOME, /var/lib/gpunet/provider as root, else "
                  "~/.gpunet/provider");
  run->add_option("--key", a->key,
                  "Key in <home>/keys that signs (default: provider.yaml's operator: that key "
                  "name, or the key with that address)");
  run->add_option("--provider", a->provider,
                  "The provider's owner address (default: the provider this key owns or operates)");
  run->callback([a] { RunProviderRun(*a); });
}

}  // namespace gpunet::apps
