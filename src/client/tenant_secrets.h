// Where `gpunet lease secrets` takes a secret's value from (docs/tenant-api.md
// "Secrets"). A value never appears on the command line, where `ps` and the shell's
// history would show it: it comes from a file (NAME=@FILE), from the environment
// (--from-env NAME) or from a prompt on the terminal (NAME alone). The CLI asks the
// terminal; everything else is here, so it is tested.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace gpunet::client {

/// A secret's value at most (the manifest's env values' cap, docs/manifest.md).
inline constexpr size_t kSecretValueBytesMax = 4096;

enum class SecretSource : uint8_t {
  kFile,    ///< NAME=@FILE
  kEnv,     ///< --from-env NAME: the variable NAME of this process's environment
  kPrompt,  ///< NAME: asked on the terminal, without echo
};

struct SecretSpec {
  std::string name;
  SecretSource source = SecretSource::kPrompt;
  std::string file;  ///< with kFile
};

/// Parses one SECRET argument: "NAME=@FILE" or "NAME". "NAME=VALUE" is refused
/// (kInvalidArgument saying the three ways that keep a value out of argv), and so is
/// a name the manifest could not hold (1..128 bytes of A-Z a-z 0-9 _, not starting
/// with a digit).
[[nodiscard]] base::Result<SecretSpec> ParseSecretArg(std::string_view arg);

/// The specs of all arguments and --from-env names, in order; a name given twice is
/// kInvalidArgument (which value would win is not for the CLI to guess).
[[nodiscard]] base::Result<std::vector<SecretSpec>> ParseSecretArgs(
    const std::vector<std::string>& args, const std::vector<std::string>& from_env);

/// A secret file's value: the file's bytes with one trailing "\n" (or "\r\n")
/// removed, as `echo value > file` writes it. kLimitExceeded over
/// kSecretValueBytesMax, kInvalidArgument when empty or holding a NUL byte.
[[nodiscard]] base::Result<std::string> ReadSecretFile(const std::string& path);

/// The value of the environment variable `name` (kNotFound when unset, kInvalidArgument
/// when empty, kLimitExceeded over the cap).
[[nodiscard]] base::Result<std::string> SecretFromEnv(const std::string& name);

/// The body of POST /leases/{id}/secrets: {"NAME":"value",...} (keys sorted).
/// kInvalidArgument naming the secret (never its value) when a value is not UTF-8.
[[nodiscard]] base::Result<std::string> SecretsBody(
    const std::map<std::string, std::string>& values);

}  // namespace gpunet::client
