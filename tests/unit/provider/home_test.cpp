#include "provider/home.h"

#include <gtest/gtest.h>

#include <fstream>

#include "util/temp_dir.h"

namespace gpunet::provider {
namespace {

TEST(ProviderHome, RefusesADirectoryWithoutProviderYamlAndSaysWhatToRun) {
  gpunet::testing::TempDir tmp;
  auto home = OpenProviderHome(tmp.Path());
  ASSERT_FALSE(home.has_value());
  EXPECT_EQ(home.error().code, base::ErrorCode::kNotFound);
  EXPECT_NE(home.error().message.find("gpunet provider init"), std::string::npos);
}

TEST(ProviderHome, NamesItsFilesUnderTheHome) {
  gpunet::testing::TempDir tmp;
  std::ofstream(tmp.Path() + "/provider.yaml") << "region: eu\n";
  auto home = OpenProviderHome(tmp.Path() + "/./");
  ASSERT_TRUE(home.has_value()) << home.error().message;
  EXPECT_EQ(home->ConfigPath(), home->dir + "/provider.yaml");
  EXPECT_EQ(home->TlsKeyPath(), home->dir + "/tls/key.pem");
  EXPECT_EQ(home->dir.back() == '/', false);
}

}  // namespace
}  // namespace gpunet::provider
