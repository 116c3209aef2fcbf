#include "apps/gpunet/cli.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>

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

void PrintJson(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

void PrintError(const GlobalOptions& g, const base::Error& e) {
  if (g.Json()) {
    PrintJson({{"error", {{"code", std::string(base::ErrorCodeName(e.code))}, {"message", e.message}}}});
  } else {
    std::cerr << "error: " << e.message << std::endl;
  }
}

}  // namespace gpunet::apps
