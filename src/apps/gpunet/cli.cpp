#include "apps/gpunet/cli.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <sodium.h>

#include "client/topup.h"
#include "crypto/keystore.h"

namespace gpunet::apps {

std::string GlobalOptions::Home() const {
  if (!home.empty()) return home;
  if (const char* env = std::getenv("GPUNET_HOME"); env && *env) return env;
  const char* user_home = std::getenv("HOME");
  return std::string(user_home && *user_home ? user_home : ".") + "/.gpunet";
}

std::string GlobalOptions::NodeUrl() const {
  if (!node_url.empty()) return node_url;
  if (const char* env = std::getenv("GPUNET_NODE"); env && *env) return env;
  return "http://127.0.0.1:26657";
}

std::optional<uint64_t> ParseDigits(std::string_view text, size_t max_digits) {
  if (text.empty() || text.size() > max_digits || max_digits > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::string UtcText(uint64_t time_ms) {
  return client::UtcTimeText(time_ms);
}

void PrintJson(const nlohmann::json& j) {
  // Invalid UTF-8 (a node's error text, a memo) is replaced rather than thrown.
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

void PrintError(const GlobalOptions& g, const base::Error& e) {
  if (g.Json()) {
    PrintJson(
        {{"error", {{"code", std::string(base::ErrorCodeName(e.code))}, {"message", e.message}}}});
  } else {
    std::cerr << "error: " << e.message << std::endl;
  }
}

bool ReadLineFromTty(std::string_view prompt, bool echo, std::string& out) {
  int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return false;
  termios old_mode{};
  if (::tcgetattr(fd, &old_mode) != 0) {
    ::close(fd);
    return false;
  }
  if (!echo) {
    termios quiet = old_mode;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  [[maybe_unused]] ssize_t w = ::write(fd, prompt.data(), prompt.size());
  out.clear();
  char c = 0;
  for (;;) {
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') break;
    if (out.size() < 4096) out.push_back(c);
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  if (!echo) ::tcsetattr(fd, TCSAFLUSH, &old_mode);
  ::close(fd);
  c = 0;
  return true;
}

base::Result<crypto::Address> ResolveAddressOrKey(const std::string& text, const std::string& where,
                                                  const std::vector<std::string>& keystore_dirs) {
  if (text.starts_with("gpn1") || text.starts_with("GPN1")) {
    auto a = crypto::ParseAddress(text);
    if (!a)
      return base::Fail(
          base::ErrorCode::kInvalidArgument,
          where + ": \"" + text + "\" is not a valid gpn1 address: " + a.error().message);
    return *a;
  }
  if (!crypto::ValidateKeyName(text))
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      where + ": \"" + text + "\" is neither a gpn1... address nor a key name");
  std::string looked;
  for (const auto& dir : keystore_dirs) {
    crypto::Keystore keystore(dir);
    if (auto entry = keystore.Show(text)) return entry->address;
    std::string known;
    if (auto list = keystore.List(); list)
      for (const auto& e : *list) known += (known.empty() ? "" : ", ") + e.name;
    looked += (looked.empty() ? "" : " or ") + keystore.Dir() +
              (known.empty() ? " (the keystore is empty)" : " (keys there: " + known + ")");
  }
  return base::Fail(base::ErrorCode::kNotFound, where + ": no key \"" + text + "\" in " + looked +
                                                    "; give a key name or a gpn1... address");
}

crypto::KeyPair LoadKey(const GlobalOptions& g, const std::string& name) {
  std::string passphrase;
  if (const char* env = std::getenv("GPUNET_PASSPHRASE"); env != nullptr && *env != '\0') {
    passphrase = env;
  } else if (!ReadLineFromTty("Passphrase for key \"" + name + "\": ", false, passphrase)) {
    FailCommand(
        base::ErrorCode::kInvalidArgument,
        "the key \"" + name +
            "\" needs its passphrase and there is no terminal to ask on: set GPUNET_PASSPHRASE "
            "(the devnet's is printed by `gpunet devnet`, \"devnet\" by default)");
  }
  auto key = crypto::Keystore::AtHome(g.Home()).Load(name, passphrase);
  sodium_memzero(passphrase.data(), passphrase.size());
  return OrFail(std::move(key), "unlocking key \"" + name + "\"");
}

}  // namespace gpunet::apps
