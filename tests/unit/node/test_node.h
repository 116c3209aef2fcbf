// A fixture base for tests of a real node: a fresh home in a TempDir (InitHome), node.json's
// "rpc_limits" patched in when given, Node::Start on 127.0.0.1 with a free port, and everything
// removed at the end.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "node/node.h"
#include "util/temp_dir.h"

namespace gpunet::test {

class NodeTestBase : public ::testing::Test {
 protected:
  /// Inits <a TempDir named gpunet-<name>>/home with `init` (its home and rpc are
  /// set here) and starts the node. Fails the test on error: call under
  /// ASSERT_NO_FATAL_FAILURE.
  void StartNode(const std::string& name, node::InitOptions init,
                 const nlohmann::json& rpc_limits = nlohmann::json::object()) {
    m_tmp.emplace(gpunet::testing::TempDirOptions{.prefix = "gpunet-" + name});
    m_home = m_tmp->Sub("home");
    init.home = m_home.string();
    init.rpc = "127.0.0.1:0";
    auto inited = node::InitHome(init);
    ASSERT_TRUE(inited) << inited.error().ToString();
    if (!rpc_limits.empty()) {
      std::ifstream in(inited->node_config_path);
      nlohmann::json config = nlohmann::json::parse(in);
      in.close();
      for (const auto& [key, value] : rpc_limits.items()) config["rpc_limits"][key] = value;
      std::ofstream(inited->node_config_path) << config.dump(2);
    }
    node::NodeOptions options;
    options.home = m_home.string();
    options.log_blocks = false;
    auto started = node::Node::Start(options);
    ASSERT_TRUE(started) << started.error().ToString();
    m_node = std::move(*started);
  }
  void TearDown() override {
    m_node.reset();
    m_tmp.reset();
  }

  std::optional<gpunet::testing::TempDir> m_tmp;  // made by StartNode
  std::filesystem::path m_home;
  std::unique_ptr<node::Node> m_node;
};

}  // namespace gpunet::test
