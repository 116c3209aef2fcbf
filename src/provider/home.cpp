#include "provider/home.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace gpunet::provider {

base::Result<ProviderHome> OpenProviderHome(const std::string& dir) {
  if (dir.empty()) {
    return base::Fail(base::ErrorCode::kInvalidArgument, "the provider home is empty");
  }
  std::error_code ec;
  const std::filesystem::path abs = std::filesystem::absolute(dir, ec);
  if (ec) {
    return base::Fail(base::ErrorCode::kIo, "provider home " + dir + ": " + ec.message());
  }
  std::string normal = abs.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  ProviderHome home{normal};
  if (!std::filesystem::is_regular_file(home.ConfigPath(), ec)) {
    return base::Fail(base::ErrorCode::kNotFound,
                      "no provider home at " + home.dir + " (no provider.yaml there); " +
                          "run `gpunet provider init --home " + home.dir + "` first");
  }
  return home;
}

std::string DefaultProviderHome() {
  if (const char* env = std::getenv("GPUNET_PROVIDER_HOME"); env != nullptr && *env != '\0') {
    return env;
  }
  if (::geteuid() == 0) return "/var/lib/gpunet/provider";
  const char* user_home = std::getenv("HOME");
  return std::string(user_home != nullptr ? user_home : ".") + "/.gpunet/provider";
}

}  // namespace gpunet::provider
