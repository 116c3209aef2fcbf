// The workload manifest (client/manifest.h, docs/manifest.md): strict JSON, the
// canonical form and its hash, the provider's acceptance rule, YAML files, limits.
#include "client/manifest.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "base/bytes.h"
#include "crypto/hash.h"
#include "util/temp_dir.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;

Manifest FullManifest() {
  Manifest m;
  m.environment = "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime";
  m.command = {"torchrun", "--nproc-per-node", "2", "train.py"};
  m.workdir = "/work/src";
  m.env = {{"HF_HOME", "/work/hf"}, {"OMP_NUM_THREADS", "4"}};
  m.secrets = {"HF_TOKEN", "WANDB_API_KEY"};
  m.network = ManifestNetwork::kPorts;
  m.ports = {8888, 6006};
  m.resources.memory_mib = 65536;
  m.resources.shm_mib = 8192;
  m.outputs_dir = "/outputs/run1";
  m.stop_grace_ms = 30000;
  return m;
}

constexpr std::string_view kMinimal = R"({"version": 1, "environment": "host"})";

void ExpectRefused(std::string_view json, ErrorCode code, std::string_view words) {
  auto m = ParseManifestJson(json);
  ASSERT_FALSE(m) << "accepted: " << json;
  EXPECT_EQ(m.error().code, code) << m.error().message;
  EXPECT_NE(m.error().message.find(words), std::string::npos)
      << "message \"" << m.error().message << "\" lacks \"" << words << "\"";
}

TEST(Manifest, MinimalFillsTheDefaults) {
  auto m = ParseManifestJson(kMinimal);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->environment, "host");
  EXPECT_TRUE(m->command.empty());  // interactive
  EXPECT_EQ(m->workdir, "/work");
  EXPECT_EQ(m->outputs_dir, "/outputs");
  EXPECT_EQ(m->network, ManifestNetwork::kNone);
  EXPECT_EQ(m->stop_grace_ms, kManifestDefaultStopGraceMs);
  EXPECT_EQ(m->resources, ManifestResources{});
}

TEST(Manifest, CanonicalFormIsPinned) {
  // Golden bytes: a change here changes every manifest_hash on every ledger.
  auto m = ParseManifestJson(kMinimal);
  ASSERT_TRUE(m);
  EXPECT_EQ(CanonicalManifestJson(*m),
            R"({"command":[],"env":{},"environment":"host","network":"none",)"
            R"("outputs_dir":"/outputs","ports":[],"resources":{},"secrets":[],)"
            R"("stop_grace_ms":10000,"version":1,"workdir":"/work"})");
  EXPECT_EQ(CanonicalManifestJson(FullManifest()),
            R"({"command":["torchrun","--nproc-per-node","2","train.py"],)"
            R"("env":{"HF_HOME":"/work/hf","OMP_NUM_THREADS":"4"},)"
            R"("environment":"pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime",)"
            R"("network":"ports","outputs_dir":"/outputs/run1","ports":[8888,6006],)"
            R"("resources":{"memory_mib":65536,"shm_mib":8192},)"
            R"("secrets":["HF_TOKEN","WANDB_API_KEY"],"stop_grace_ms":30000,"version":1,)"
            R"("workdir":"/work/src"})");
}

TEST(Manifest, StringsHaveOneEncoding) {
  Manifest m;
  m.environment = "host";
  m.command = {"sh", "-c", "printf 'a\tb\\n\"q\"' \x01 \xc3\xa9 \x7f"};
  std::string c = CanonicalManifestJson(m);
  // '"' and '\' escaped, \t short, U+0001 as \u0001, é and DEL raw (as JCS writes them).
  EXPECT_NE(c.find(R"("printf 'a\tb\\n\"q\"' \u0001 )"
                   "\xc3\xa9 \x7f\"]"),
            std::string::npos)
      << c;
  auto back = ParseCanonicalManifest(c);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, m);
  // The same text written with an escape is the same manifest, but not canonical.
  std::string escaped = c;
  escaped.replace(escaped.find("\"sh\""), 4, R"("\u0073h")");
  auto same = ParseManifestJson(escaped);
  ASSERT_TRUE(same) << same.error().message;
  EXPECT_EQ(*same, m);
  EXPECT_EQ(ParseCanonicalManifest(escaped).error().code, ErrorCode::kNonCanonical);
}

TEST(Manifest, RoundTripAndFixedPoint) {
  for (const Manifest& m : {FullManifest(), *ParseManifestJson(kMinimal)}) {
    std::string c = CanonicalManifestJson(m);
    auto back = ParseCanonicalManifest(c);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, m);
    EXPECT_EQ(CanonicalManifestJson(*back), c);
    EXPECT_EQ(ManifestHash(m), crypto::Blake2b256(base::AsBytes(c)));
  }
  EXPECT_NE(ManifestHash(FullManifest()), ManifestHash(*ParseManifestJson(kMinimal)));
}

TEST(Manifest, HandWrittenJsonIsValidButNotCanonical) {
  auto m = ParseManifestJson(kMinimal);
  ASSERT_TRUE(m);
  auto refused = ParseCanonicalManifest(kMinimal);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kNonCanonical);
  EXPECT_NE(refused.error().message.find("canonical"), std::string::npos);
  // Whitespace, another key order, a default written out differently: all refused.
  std::string c = CanonicalManifestJson(*m);
  EXPECT_FALSE(ParseCanonicalManifest(c + "\n"));
  EXPECT_FALSE(ParseCanonicalManifest(" " + c));
  std::string reordered = c;
  reordered.replace(reordered.find(R"("version":1,)"), 12, "");
  reordered.insert(1, R"("version":1,)");
  ASSERT_TRUE(ParseManifestJson(reordered));
  EXPECT_EQ(ParseCanonicalManifest(reordered).error().code, ErrorCode::kNonCanonical);
}

TEST(Manifest, ProviderAcceptsOnlyTheLeaseHash) {
  std::string c = CanonicalManifestJson(FullManifest());
  base::Hash32 lease_hash = crypto::Blake2b256(base::AsBytes(c));
  auto ok = VerifySubmittedManifest(c, lease_hash);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(*ok, FullManifest());

  base::Hash32 other = lease_hash;
  other[0] ^= 1;
  auto mismatch = VerifySubmittedManifest(c, other);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(mismatch.error().message.find("manifest_hash"), std::string::npos);

  // Right hash of non-canonical bytes (a tenant hashing its own pretty file) is refused.
  std::string pretty = std::string(kMinimal);
  auto pretty_refused = VerifySubmittedManifest(pretty, crypto::Blake2b256(base::AsBytes(pretty)));
  ASSERT_FALSE(pretty_refused);
  EXPECT_EQ(pretty_refused.error().code, ErrorCode::kNonCanonical);
}

TEST(Manifest, StrictJsonRefusals) {
  ExpectRefused(R"({"version":1,"environment":"host","environment":"host"})",
                ErrorCode::kInvalidArgument, "environment: is given twice");
  ExpectRefused(R"({"version":1,"environment":"host","env":{"A":"1","A":"2"}})",
                ErrorCode::kInvalidArgument, "env.A: is given twice");
  ExpectRefused(R"({"version":1,"environment":"host","colour":"red"})", ErrorCode::kInvalidArgument,
                "colour: unknown field; the fields are: version,");
  // A hostile key is shown escaped, never raw.
  ExpectRefused(R"({"version":1,"environment":"host","env":{"A\u0001\n":"x"}})",
                ErrorCode::kInvalidArgument, R"(env."A\x01\x0a": "A\x01\x0a" is not a variable)");
  ExpectRefused(R"({"version":1,"environment":"host","stop_grace_ms":1.5})",
                ErrorCode::kInvalidArgument, "stop_grace_ms: must be a whole number");
  ExpectRefused(R"({"version":1,"environment":"host","stop_grace_ms":1e3})",
                ErrorCode::kInvalidArgument, "stop_grace_ms: must be a whole number");
  ExpectRefused(R"({"version":1,"environment":"host","ports":[-1]})", ErrorCode::kInvalidArgument,
                "ports[0]: must be a whole number of at least 0");
  ExpectRefused(R"({"version":1,"environment":"host","network":"ports","ports":[70000]})",
                ErrorCode::kInvalidArgument, "ports[0]: 70000 is outside 1..65535");
  ExpectRefused(R"({"version":1,"environment":"host","resources":{"memory_mib":4294967296}})",
                ErrorCode::kInvalidArgument, "resources.memory_mib");
  ExpectRefused(R"({"version":1,"environment":"host","stop_grace_ms":18446744073709551616})",
                ErrorCode::kInvalidArgument, "whole number");
  ExpectRefused(R"({"version":1,"environment":"host"} x)", ErrorCode::kInvalidArgument,
                "not valid JSON");
  ExpectRefused(R"({"version":1,/*c*/"environment":"host"})", ErrorCode::kInvalidArgument,
                "not valid JSON");
  ExpectRefused("{\"version\":1,\"environment\":\"host\",\"command\":[\"\xff\"]}",
                ErrorCode::kInvalidArgument, "not valid JSON");
  ExpectRefused(R"({"version":1,"environment":"host","command":["a",1]})",
                ErrorCode::kInvalidArgument, "command[1]: must be text");
  ExpectRefused(R"([1,2])", ErrorCode::kInvalidArgument, "manifest: must be a mapping");
  ExpectRefused(R"({"environment":"host"})", ErrorCode::kInvalidArgument, "version: missing");
  ExpectRefused(R"({"version":2,"environment":"host"})", ErrorCode::kInvalidArgument,
                "reads version 1");
  ExpectRefused(R"({"version":1})", ErrorCode::kInvalidArgument, "environment: missing");
}

TEST(Manifest, DepthIsRefusedWhileParsing) {
  // Depth 4 is allowed by the parser (the schema then refuses the shape); 5 is not,
  // and a very deep document is refused at the fifth level without building it.
  ExpectRefused(R"({"version":1,"environment":"host","env":{"A":[[1]]}})",
                ErrorCode::kInvalidArgument, "env.A: must be text");
  ExpectRefused(R"({"version":1,"environment":"host","env":{"A":[[[1]]]}})",
                ErrorCode::kLimitExceeded, "env.A[0][0]: nested deeper than 4 levels");
  std::string deep = std::string(30000, '[') + std::string(30000, ']');
  ExpectRefused(deep, ErrorCode::kLimitExceeded, "nested deeper than 4 levels");
}

TEST(Manifest, SizeCap) {
  std::string big = R"({"version":1,"environment":"host","command":[")" +
                    std::string(kManifestBytesMax, 'a') + "\"]}";
  ExpectRefused(big, ErrorCode::kLimitExceeded, "65536");
}

Manifest WithHost() {
  Manifest m;
  m.environment = "host";
  return m;
}

void ExpectInvalid(const Manifest& m, ErrorCode code, std::string_view words) {
  auto s = ValidateManifest(m);
  ASSERT_FALSE(s) << "accepted";
  EXPECT_EQ(s.error().code, code) << s.error().message;
  EXPECT_NE(s.error().message.find(words), std::string::npos)
      << "message \"" << s.error().message << "\" lacks \"" << words << "\"";
}

TEST(Manifest, TheCanonicalFormFitsTheCap) {
  // Every list and string within its limit, but the whole over 64 KiB as canonical
  // JSON: refused, or the provider could never take it.
  Manifest m = WithHost();
  m.command.assign(16, std::string(kManifestArgBytesMax, 'a'));
  ExpectInvalid(m, ErrorCode::kLimitExceeded, "manifest: its canonical JSON is 65");
  // From YAML, escapes grow: "\x01" (4 bytes) is written \u0001 (6 bytes).
  std::string yaml = "version: 1\nenvironment: host\ncommand:\n";
  std::string arg;
  for (int i = 0; i < 1000; ++i) arg += "\\x01";
  for (int i = 0; i < 14; ++i) yaml += "  - \"" + arg + "\"\n";
  ASSERT_LT(yaml.size(), kManifestBytesMax);
  auto loaded = ParseManifestText(yaml, "job.yaml");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, ErrorCode::kLimitExceeded);
  EXPECT_NE(loaded.error().message.find("its canonical JSON is 84"), std::string::npos)
      << loaded.error().message;
}

TEST(Manifest, ListAndStringLimitsNameTheField) {
  Manifest m = WithHost();
  m.command.assign(kManifestArgsMax + 1, "x");
  ExpectInvalid(m, ErrorCode::kLimitExceeded, "command: 257 arguments");
  m = WithHost();
  m.command = {"x", std::string(kManifestArgBytesMax + 1, 'a')};
  ExpectInvalid(m, ErrorCode::kLimitExceeded, "command[1]: 4097 bytes");
  m = WithHost();
  m.command = {"x", std::string("a\0b", 3)};
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "command[1]: holds NUL");
  m = WithHost();
  m.command = {"x", "\xed\xa0\x80"};  // an encoded surrogate
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "command[1]: is not UTF-8");
  m = WithHost();
  for (size_t i = 0; i <= kManifestEnvMax; ++i) m.env["V" + std::to_string(i)] = "1";
  ExpectInvalid(m, ErrorCode::kLimitExceeded, "env: 129 variables");
  m = WithHost();
  m.env["A"] = std::string(kManifestEnvValueBytesMax + 1, 'v');
  ExpectInvalid(m, ErrorCode::kLimitExceeded, "env.A: 4097 bytes");
  m = WithHost();
  m.env["A"] = "line\nbreak";
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "env.A: holds a line break");
  m = WithHost();
  m.env["1A"] = "x";
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "is not a variable name");
  m = WithHost();
  m.env[std::string(kManifestNameBytesMax + 1, 'A')] = "x";
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "1..128 characters");
  m = WithHost();
  m.env["GPUNET_LEASE_ID"] = "7";
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "set by the provider's runtime");
  m = WithHost();
  m.secrets.assign(kManifestSecretsMax + 1, "S");
  ExpectInvalid(m, ErrorCode::kLimitExceeded, "secrets: 33 names");
  m = WithHost();
  m.secrets = {"TOKEN", "TOKEN"};
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "secrets[1]: TOKEN is listed twice");
  m = WithHost();
  m.secrets = {"TOKEN"};
  m.env["TOKEN"] = "oops";
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "secrets[0]: TOKEN is also in env");
  m = WithHost();
  m.network = ManifestNetwork::kPorts;
  for (uint16_t p = 1; p <= kManifestPortsMax + 1; ++p) m.ports.push_back(p);
  ExpectInvalid(m, ErrorCode::kLimitExceeded, "ports: 17 ports");
  m = WithHost();
  m.ports = {80};
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "only for network \"ports\"");
  m = WithHost();
  m.network = ManifestNetwork::kPorts;
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "needs at least one port");
  m.ports = {80, 80};
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "ports[1]: 80 is listed twice");
}

TEST(Manifest, NamesPathsAndResources) {
  Manifest m = WithHost();
  m.environment = "-v/etc:/x";  // an option to podman, never an image
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "environment: \"-v/etc:/x\" is not");
  m.environment = std::string(kManifestEnvironmentBytesMax + 1, 'a');
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "environment: give \"host\"");
  m = WithHost();
  for (std::string bad : {"work", "/work/../etc", "/work//x", "/work/", "/", "/a b"}) {
    m.workdir = bad;
    ExpectInvalid(m, ErrorCode::kInvalidArgument, "workdir: ");
  }
  m = WithHost();
  m.outputs_dir = "/etc/out";
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "outputs_dir: \"/etc/out\" is not on");
  m.outputs_dir = "/outputsx";
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "outputs_dir");
  m.outputs_dir = "/work/results";
  EXPECT_TRUE(ValidateManifest(m));
  m = WithHost();
  m.resources.memory_mib = 15;
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "resources.memory_mib: 15 MiB is under");
  m.resources.memory_mib = 1024;
  m.resources.shm_mib = 2048;
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "resources.shm_mib");
  m = WithHost();
  m.stop_grace_ms = kManifestStopGraceMsMax + 1;
  ExpectInvalid(m, ErrorCode::kInvalidArgument, "stop_grace_ms");
}

TEST(Manifest, YamlFileGivesTheSameManifestAsJson) {
  testing::TempDir dir;
  std::string yaml_path = dir.Sub("job.yaml");
  std::ofstream(yaml_path) << "# a comment\n"
                              "version: 1\n"
                              "environment: pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime\n"
                              "command: [torchrun, --nproc-per-node, 2, train.py]\n"
                              "workdir: /work/src\n"
                              "env:\n"
                              "  HF_HOME: /work/hf\n"
                              "  OMP_NUM_THREADS: 4\n"
                              "secrets: [HF_TOKEN, WANDB_API_KEY]\n"
                              "network: ports\n"
                              "ports: [8888, 6006]\n"
                              "resources: {memory_mib: 65536, shm_mib: 8192}\n"
                              "outputs_dir: /outputs/run1\n"
                              "stop_grace_ms: 30000\n";
  auto loaded = LoadManifestFile(yaml_path);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->manifest, FullManifest());
  EXPECT_EQ(loaded->canonical, CanonicalManifestJson(FullManifest()));
  EXPECT_EQ(loaded->hash, ManifestHash(FullManifest()));

  std::string json_path = dir.Sub("job.json");
  std::ofstream(json_path) << "\n  " << CanonicalManifestJson(FullManifest()) << "\n";
  auto from_json = LoadManifestFile(json_path);
  ASSERT_TRUE(from_json) << from_json.error().message;
  EXPECT_EQ(from_json->hash, loaded->hash);
}

TEST(Manifest, YamlRefusals) {
  auto refused = [](std::string_view yaml, ErrorCode code, std::string_view words) {
    auto m = ParseManifestText(yaml, "job.yaml");
    ASSERT_FALSE(m) << "accepted: " << yaml;
    EXPECT_EQ(m.error().code, code) << m.error().message;
    EXPECT_NE(m.error().message.find("job.yaml: "), std::string::npos) << m.error().message;
    EXPECT_NE(m.error().message.find(words), std::string::npos) << m.error().message;
  };
  refused("version: 1\nenvironment: host\nenvironment: host\n", ErrorCode::kInvalidArgument,
          "environment: is given twice");
  refused("version: 1\nenvironment: host\nstop_grace_ms: \"10\"\n", ErrorCode::kInvalidArgument,
          "stop_grace_ms: must be a whole number");
  refused("version: 1\nenvironment: host\nstop_grace_ms: 1.5\n", ErrorCode::kInvalidArgument,
          "stop_grace_ms: must be a whole number");
  refused("version: 1\nenvironment: host\nenv: {A: [[[x]]]}\n", ErrorCode::kLimitExceeded,
          "nested deeper");
  refused("version: 1\nenvironment: host\ncommand: [a, {b: c}]\n", ErrorCode::kInvalidArgument,
          "command[1]: must be text");
  refused("", ErrorCode::kInvalidArgument, "empty");
  refused("version: 1\nenvironment: [unclosed\n", ErrorCode::kInvalidArgument, "not valid YAML");
  // Aliases cannot expand a small file into a huge one.
  std::string bomb =
      "a: &a [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x]\n"
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
      "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n";
  refused(bomb, ErrorCode::kLimitExceeded, "values");
  auto missing = LoadManifestFile("/nonexistent/job.yaml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace gpunet::client
