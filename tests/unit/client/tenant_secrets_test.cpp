// Where `gpunet lease secrets` takes values from (client/tenant_secrets.h): never argv.
#include "client/tenant_secrets.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "util/temp_dir.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;

TEST(SecretArgs, FileOrPromptNeverAValue) {
  auto s = ParseSecretArg("HF_TOKEN=@/home/me/.hf");
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ(s->name, "HF_TOKEN");
  EXPECT_EQ(s->source, SecretSource::kFile);
  EXPECT_EQ(s->file, "/home/me/.hf");
  s = ParseSecretArg("DB_PASSWORD");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->source, SecretSource::kPrompt);
  // A value typed on the command line is refused, and the message does not echo it.
  auto refused = ParseSecretArg("API_KEY=hunter2");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(refused.error().message.find("hunter2"), std::string::npos);
  EXPECT_NE(refused.error().message.find("NAME=@FILE"), std::string::npos);
  EXPECT_FALSE(ParseSecretArg("API_KEY="));
  EXPECT_FALSE(ParseSecretArg("API_KEY=@"));
  for (std::string_view bad : {"", "1ABC", "A-B", "A B", "=@f"})
    EXPECT_FALSE(ParseSecretArg(bad)) << bad;
}

TEST(SecretArgs, AllSourcesTogetherEachNameOnce) {
  auto specs = ParseSecretArgs({"A=@f", "B"}, {"C"});
  ASSERT_TRUE(specs) << specs.error().ToString();
  ASSERT_EQ(specs->size(), 3u);
  EXPECT_EQ((*specs)[2].name, "C");
  EXPECT_EQ((*specs)[2].source, SecretSource::kEnv);
  EXPECT_FALSE(ParseSecretArgs({"A=@f"}, {"A"}));
  EXPECT_FALSE(ParseSecretArgs({"A", "A=@g"}, {}));
  EXPECT_FALSE(ParseSecretArgs({}, {}));
  EXPECT_FALSE(ParseSecretArgs({}, {"bad-name"}));
}

TEST(SecretSources, FileLosesOneTrailingNewlineOnly) {
  testing::TempDir dir;
  std::ofstream(dir.Sub("a")) << "s3cret\n";
  std::ofstream(dir.Sub("b")) << "line1\nline2\r\n";
  std::ofstream(dir.Sub("c")) << "kept\n\n";
  std::ofstream(dir.Sub("empty")) << "\n";
  std::ofstream(dir.Sub("big")) << std::string(kSecretValueBytesMax + 1, 'x');
  std::ofstream(dir.Sub("max")) << std::string(kSecretValueBytesMax, 'x') << "\n";
  EXPECT_EQ(*ReadSecretFile(dir.Sub("a")), "s3cret");
  EXPECT_EQ(*ReadSecretFile(dir.Sub("b")), "line1\nline2");
  EXPECT_EQ(*ReadSecretFile(dir.Sub("c")), "kept\n");
  EXPECT_EQ(ReadSecretFile(dir.Sub("empty")).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ReadSecretFile(dir.Sub("big")).error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(ReadSecretFile(dir.Sub("max"))->size(), kSecretValueBytesMax);
  EXPECT_EQ(ReadSecretFile(dir.Sub("none")).error().code, ErrorCode::kNotFound);
}

TEST(SecretSources, EnvironmentVariable) {
  ::setenv("GPUNET_TEST_SECRET_X", "v4lue", 1);
  ::setenv("GPUNET_TEST_SECRET_EMPTY", "", 1);
  ::unsetenv("GPUNET_TEST_SECRET_UNSET");
  EXPECT_EQ(*SecretFromEnv("GPUNET_TEST_SECRET_X"), "v4lue");
  EXPECT_EQ(SecretFromEnv("GPUNET_TEST_SECRET_EMPTY").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(SecretFromEnv("GPUNET_TEST_SECRET_UNSET").error().code, ErrorCode::kNotFound);
}

TEST(SecretSources, BodyIsAJsonObjectAndRefusesNonUtf8WithoutQuotingIt) {
  auto body = SecretsBody({{"B", "x\"y"}, {"A", "\xc3\xa9"}});
  ASSERT_TRUE(body) << body.error().ToString();
  EXPECT_EQ(*body, "{\"A\":\"\xc3\xa9\",\"B\":\"x\\\"y\"}");
  auto bad = SecretsBody({{"K", "ok\xff"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("K"), std::string::npos);
  EXPECT_EQ(bad.error().message.find("ok"), std::string::npos);
}

}  // namespace
}  // namespace gpunet::client
