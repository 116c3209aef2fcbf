#include "client/tenant_secrets.h"

#include <cstdlib>
#include <set>

#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "client/manifest.h"

namespace gpunet::client {

using base::ErrorCode;
using base::Fail;

namespace {

constexpr std::string_view kHowToGiveValues =
    "a secret's value never goes on the command line (ps and the shell's history show it): "
    "give NAME=@FILE, --from-env NAME, or NAME alone to be asked";

base::Status CheckSecretName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= kManifestNameBytesMax;
  for (size_t i = 0; ok && i < name.size(); ++i) {
    const char c = name[i];
    ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
         (i > 0 && c >= '0' && c <= '9');
  }
  if (!ok)
    return Fail(ErrorCode::kInvalidArgument,
                "\"" + std::string(name.substr(0, 64)) + "\" is not a secret name (1.." +
                    std::to_string(kManifestNameBytesMax) +
                    " of [A-Za-z_][A-Za-z0-9_]*, as the manifest's secrets list holds them)");
  return base::Ok();
}

base::Status CheckValue(std::string_view value, const std::string& where) {
  if (value.empty()) return Fail(ErrorCode::kInvalidArgument, where + " is empty");
  if (value.size() > kSecretValueBytesMax)
    return Fail(ErrorCode::kLimitExceeded,
                where + " is longer than " + std::to_string(kSecretValueBytesMax) + " bytes");
  if (value.find('\0') != std::string_view::npos)
    return Fail(ErrorCode::kInvalidArgument, where + " holds a NUL byte");
  return base::Ok();
}

}  // namespace

base::Result<SecretSpec> ParseSecretArg(std::string_view arg) {
  SecretSpec spec;
  const size_t eq = arg.find('=');
  spec.name = std::string(arg.substr(0, eq));
  GPUNET_TRY(CheckSecretName(spec.name));
  if (eq == std::string_view::npos) {
    spec.source = SecretSource::kPrompt;
    return spec;
  }
  const std::string_view rest = arg.substr(eq + 1);
  if (!rest.starts_with("@") || rest.size() == 1)
    return Fail(ErrorCode::kInvalidArgument,
                spec.name + "=...: " + std::string(kHowToGiveValues) +
                    " (if the value was typed here, consider it exposed and change it)");
  spec.source = SecretSource::kFile;
  spec.file = std::string(rest.substr(1));
  return spec;
}

base::Result<std::vector<SecretSpec>> ParseSecretArgs(const std::vector<std::string>& args,
                                                      const std::vector<std::string>& from_env) {
  std::vector<SecretSpec> out;
  std::set<std::string> seen;
  auto add = [&](SecretSpec spec) -> base::Status {
    if (!seen.insert(spec.name).second)
      return Fail(ErrorCode::kInvalidArgument, "secret " + spec.name + " is given twice");
    out.push_back(std::move(spec));
    return base::Ok();
  };
  for (const auto& arg : args) {
    GPUNET_TRY_ASSIGN(SecretSpec spec, ParseSecretArg(arg));
    GPUNET_TRY(add(std::move(spec)));
  }
  for (const auto& name : from_env) {
    GPUNET_TRY(CheckSecretName(name));
    GPUNET_TRY(add(SecretSpec{name, SecretSource::kEnv, {}}));
  }
  if (out.empty())
    return Fail(
        ErrorCode::kInvalidArgument,
        "no secret given: " + std::string(kHowToGiveValues.substr(kHowToGiveValues.find("give"))));
  return out;
}

base::Result<std::string> ReadSecretFile(const std::string& path) {
  auto text = base::ReadFileNoFollow(path, kSecretValueBytesMax + 2);
  if (!text) {
    base::Error e = text.error();
    if (e.code == ErrorCode::kLimitExceeded)
      e.message = "secret file " + path + " is longer than " +
                  std::to_string(kSecretValueBytesMax) + " bytes";
    return std::unexpected(std::move(e));
  }
  std::string value = std::move(*text);
  if (value.ends_with("\r\n"))
    value.resize(value.size() - 2);
  else if (value.ends_with("\n"))
    value.pop_back();
  GPUNET_TRY(CheckValue(value, "secret file " + path));
  return value;
}

base::Result<std::string> SecretFromEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr)
    return Fail(ErrorCode::kNotFound,
                "--from-env " + name + ": the environment has no variable " + name);
  GPUNET_TRY(CheckValue(value, "--from-env " + name + ": the variable"));
  return std::string(value);
}

base::Result<std::string> SecretsBody(const std::map<std::string, std::string>& values) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, value] : values) {
    // JSON carries text: a value that is not UTF-8 is refused, never altered.
    try {
      (void)nlohmann::json(value).dump();
    } catch (const nlohmann::json::type_error&) {
      return Fail(ErrorCode::kInvalidArgument,
                  "secret " + name +
                      " is not UTF-8 text; encode it (base64) and decode it in "
                      "the workload");
    }
    j[name] = value;
  }
  return j.dump();
}

}  // namespace gpunet::client
