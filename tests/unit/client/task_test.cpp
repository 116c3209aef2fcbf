#include "client/task.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/bytes.h"
#include "client/gpunetignore.h"
#include "client/manifest.h"
#include "client/market_config.h"
#include "client/offer_filter.h"
#include "util/temp_dir.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;

constexpr std::string_view kTrain = R"(# a training job
resources:
  gpus: H100:2
  machines: 2
  min_vram_gib: 80
  region: eu-west
  fabric: infiniband
  min_cuda: "12.1"
  max_price: 2.5
  hours: 3
environment: pytorch/pytorch:2.3.0
workdir: .
setup: pip install -r requirements.txt
run: |
  python train.py --out out/ckpt
env:
  OMP_NUM_THREADS: 8
secrets: [HF_TOKEN]
outputs: [out/ckpt/, out/loss.csv]
network: egress
auto_topup: 20
)";

Task MustParse(std::string_view text) {
  auto t = ParseTask(text, "task.yaml", "/home/me/proj");
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
  return t ? *t : Task{};
}

/// The error message of a task file that must be refused with `code`.
std::string Refused(std::string_view text, ErrorCode code = ErrorCode::kInvalidArgument) {
  auto t = ParseTask(text, "task.yaml", "");
  EXPECT_FALSE(t.has_value()) << text;
  if (t) return "";
  EXPECT_EQ(t.error().code, code) << t.error().message;
  return t.error().message;
}

/// Refused (kInvalidArgument) with a message that holds `needle`.
::testing::AssertionResult RefusedWith(std::string_view text, std::string_view needle) {
  auto t = ParseTask(text, "task.yaml", "");
  if (t) return ::testing::AssertionFailure() << "accepted: " << text;
  if (t.error().code != ErrorCode::kInvalidArgument ||
      t.error().message.find(needle) == std::string::npos)
    return ::testing::AssertionFailure() << t.error().ToString() << " (wanted " << needle << ")";
  return ::testing::AssertionSuccess();
}

std::string WithResources(std::string_view rest) {
  return "resources: {gpus: 1, max_price: 3}\n" + std::string(rest);
}

TEST(Task, ParsesEveryField) {
  Task t = MustParse(kTrain);
  EXPECT_EQ(t.resources.gpu_model, "H100");
  EXPECT_EQ(t.resources.gpus_per_machine, 2u);
  EXPECT_EQ(t.resources.machines, 2u);
  EXPECT_EQ(t.resources.min_vram_gib, 80u);
  EXPECT_EQ(t.resources.region, "eu-west");
  EXPECT_EQ(t.resources.fabric, "infiniband");
  EXPECT_EQ(t.resources.min_cuda, (Version{12, 1, 0}));
  EXPECT_EQ(t.resources.max_price_ugpn_per_gpu_hour, 2'500'000u);
  EXPECT_EQ(t.resources.hours, 3u);
  EXPECT_EQ(t.environment, "pytorch/pytorch:2.3.0");
  EXPECT_EQ(t.workdir, ".");
  EXPECT_EQ(t.base_dir, "/home/me/proj");
  EXPECT_EQ(t.setup, "pip install -r requirements.txt");
  EXPECT_EQ(t.run, "python train.py --out out/ckpt\n");
  EXPECT_EQ(t.env.at("OMP_NUM_THREADS"), "8");
  EXPECT_EQ(t.secrets, std::vector<std::string>{"HF_TOKEN"});
  EXPECT_EQ(t.network, ManifestNetwork::kEgress);
  EXPECT_TRUE(t.close_on_exit);  // the default with a run
  EXPECT_EQ(t.auto_topup_cap_ugpn, 20'000'000u);
  EXPECT_FALSE(t.Interactive());
}

TEST(Task, DefaultsOfAMinimalTask) {
  Task t = MustParse("resources: {gpus: 4, max_price: 1}\n");
  EXPECT_EQ(t.resources.gpu_model, "");  // any model
  EXPECT_EQ(t.resources.gpus_per_machine, 4u);
  EXPECT_EQ(t.resources.machines, 1u);
  EXPECT_EQ(t.resources.hours, 1u);
  EXPECT_EQ(t.environment, "host");
  EXPECT_TRUE(t.Interactive());
  EXPECT_FALSE(t.close_on_exit);  // nothing runs, so nothing exits
  EXPECT_FALSE(t.auto_topup_cap_ugpn.has_value());
}

TEST(Task, ErrorsGiveLineColumnFieldAndWhatToWrite) {
  EXPECT_EQ(Refused("resources:\n  gpus: H100x2\n  max_price: 3\n"),
            "task.yaml:2:9: resources.gpus: \"H100x2\" is not a GPU count of 1..64 per machine; "
            "write gpus: H100:2 (2 H100 per machine) or gpus: 2 (any model)");
  EXPECT_EQ(Refused(WithResources("rn: echo hi\n")).substr(0, 30),
            "task.yaml:2:1: \"rn\": unknown f");
  std::string missing = Refused("resources: {gpus: 1}\n");
  EXPECT_TRUE(missing.starts_with("task.yaml:1:12: resources.max_price: missing;")) << missing;
  std::string hours =
      Refused("resources: {gpus: 1, max_price: 3, hours: 0}\n", ErrorCode::kLimitExceeded);
  EXPECT_TRUE(hours.starts_with("task.yaml:1:43: resources.hours: 0 is out of range")) << hours;
  std::string yaml = Refused("resources: {gpus: 1\n");
  EXPECT_NE(yaml.find("not valid YAML"), std::string::npos) << yaml;
  EXPECT_TRUE(yaml.starts_with("task.yaml:2:")) << yaml;
}

TEST(Task, RefusesWrongTypesAndValues) {
  EXPECT_TRUE(RefusedWith("resources: [1]\n", "resources: expected a mapping"));
  EXPECT_TRUE(RefusedWith("resources: {gpus: 0, max_price: 3}\n", "resources.gpus"));
  EXPECT_TRUE(RefusedWith("resources: {gpus: \"H100:\", max_price: 3}\n", "resources.gpus"));
  EXPECT_TRUE(RefusedWith("resources: {gpus: \":2\", max_price: 3}\n", "is not a GPU model"));
  // Model and region are the ledger's identifiers and one word of the offer filter.
  EXPECT_TRUE(RefusedWith("resources: {gpus: \"H 100:2\", max_price: 3}\n", "not a GPU model"));
  EXPECT_TRUE(RefusedWith("resources: {gpus: 1, max_price: 3, region: eu west}\n", "not a region"));
  EXPECT_TRUE(
      RefusedWith("resources: {gpus: 1, max_price: 3, region: \"eu,us\"}\n", "not a region"));
  EXPECT_TRUE(RefusedWith("resources: {gpus: 1, max_price: 0}\n", "more than 0"));
  EXPECT_TRUE(RefusedWith("resources: {gpus: 1, max_price: 1.0000001}\n", "max_price"));
  EXPECT_TRUE(RefusedWith("resources: {gpus: 1, max_price: 3, fabric: wifi}\n", "not one of"));
  EXPECT_TRUE(RefusedWith("resources: {gpus: 1, max_price: 3, min_cuda: twelve}\n", "min_cuda"));
  EXPECT_TRUE(RefusedWith(WithResources("close_on_exit: yes\n"), "not true or false"));
  EXPECT_TRUE(RefusedWith(WithResources("run: [a, b]\n"), "run: expected one value"));
  EXPECT_TRUE(RefusedWith(WithResources("run: \"  \"\n"), "blank"));
  EXPECT_TRUE(RefusedWith(WithResources("network: public\n"), "none, egress, ports"));
  EXPECT_TRUE(RefusedWith(WithResources("environment: -rm\n"), "environment"));
  EXPECT_TRUE(RefusedWith(WithResources("auto_topup: true\n"), "auto_topup"));
  EXPECT_TRUE(RefusedWith(WithResources("resources: {gpus: 1, max_price: 3}\n"), "appears twice"));
}

TEST(Task, ManifestRulesApplyWithThePosition) {
  EXPECT_EQ(Refused(WithResources("env: {GPUNET_LEASE_ID: 1}\n")),
            "task.yaml:2:7: env.GPUNET_LEASE_ID: GPUNET_LEASE_ID is set by the provider's runtime "
            "(docs/manifest.md); remove it");
  EXPECT_TRUE(RefusedWith(WithResources("env: {A: }\n"), "env.\"A\": has no value"));
  EXPECT_TRUE(
      RefusedWith(WithResources("env: {A: 1}\nsecrets: [A]\n"), "secrets[0]: A is also in env"));
  EXPECT_TRUE(RefusedWith(WithResources("secrets: [HF, HF]\n"), "task.yaml:2:15: secrets[1]"));
  EXPECT_TRUE(RefusedWith(WithResources("secrets: [1X]\n"), "not a variable name"));
}

TEST(Task, NetworkAndPorts) {
  Task t = MustParse(WithResources("network: ports\nports: [8888, 6006]\n"));
  EXPECT_EQ(t.ports, (std::vector<uint16_t>{8888, 6006}));
  EXPECT_TRUE(RefusedWith(WithResources("ports: [8888]\n"), "add it"));
  EXPECT_TRUE(RefusedWith(WithResources("network: ports\n"), "needs the ports"));
  EXPECT_TRUE(RefusedWith(WithResources("network: ports\nports: [8888, 8888]\n"), "listed twice"));
  Refused(WithResources("network: ports\nports: [70000]\n"), ErrorCode::kLimitExceeded);
  std::string many = "network: ports\nports: [";
  for (int p = 1; p <= 17; ++p) many += std::to_string(p) + (p < 17 ? "," : "]\n");
  Refused(WithResources(many), ErrorCode::kLimitExceeded);
}

TEST(Task, LimitsLikeTheManifests) {
  std::string env = "env:\n";
  for (size_t i = 0; i <= kManifestEnvMax; ++i) env += "  V" + std::to_string(i) + ": x\n";
  Refused(WithResources(env), ErrorCode::kLimitExceeded);
  std::string secrets = "secrets: [";
  for (size_t i = 0; i <= kManifestSecretsMax; ++i) secrets += "S" + std::to_string(i) + ",";
  secrets.back() = ']';
  Refused(WithResources(secrets + "\n"), ErrorCode::kLimitExceeded);
  // setup and run become one argument of the command: together at most 4096 bytes.
  std::string half(2100, 'x');
  std::string long_script = WithResources("setup: " + half + "\nrun: " + half + "\n");
  std::string msg = Refused(long_script, ErrorCode::kLimitExceeded);
  EXPECT_NE(msg.find("task.yaml:3:6: run: setup and run make a script of"), std::string::npos)
      << msg;
  Refused(std::string(kTaskBytesMax + 1, '#'), ErrorCode::kLimitExceeded);
}

TEST(Task, CloseOnExitAndInteractive) {
  EXPECT_FALSE(MustParse(WithResources("run: python a.py\nclose_on_exit: false\n")).close_on_exit);
  EXPECT_TRUE(RefusedWith(WithResources("close_on_exit: true\n"), "interactive"));
  Task setup_only = MustParse(WithResources("setup: apt-get install -y htop\n"));
  EXPECT_TRUE(setup_only.Interactive());
  EXPECT_FALSE(setup_only.close_on_exit);
}

TEST(TaskManifest, SetupAndRunBecomeOneShellCommand) {
  Task t = MustParse(kTrain);
  Manifest m = TaskManifest(t);
  ASSERT_TRUE(ValidateManifest(m).has_value());
  EXPECT_EQ(m.command, (std::vector<std::string>{
                           "/bin/sh", "-c",
                           "set -e\nwhile [ ! -e .gpunet-upload-done ]; do sleep 0.1; "
                           "done\npip install -r requirements.txt\npython train.py --out "
                           "out/ckpt\n"}));
  EXPECT_EQ(m.environment, "pytorch/pytorch:2.3.0");
  EXPECT_EQ(m.workdir, "/work");
  EXPECT_EQ(m.env, t.env);
  EXPECT_EQ(m.secrets, t.secrets);  // names only: a task never holds a secret's value
  EXPECT_EQ(m.network, ManifestNetwork::kEgress);
  EXPECT_EQ(m.outputs_dir, "/work/out");
  EXPECT_EQ(m.resources, ManifestResources{});
  EXPECT_EQ(m.stop_grace_ms, kManifestDefaultStopGraceMs);
}

TEST(TaskManifest, InteractiveMachines) {
  // Neither setup nor run: the manifest's interactive form, an empty command.
  EXPECT_TRUE(TaskManifest(MustParse(WithResources(""))).command.empty());
  // A setup alone runs, then the machine waits for shells.
  Manifest m = TaskManifest(MustParse(WithResources("setup: pip install jupyter\n")));
  EXPECT_EQ(m.command, (std::vector<std::string>{"/bin/sh", "-c",
                                                 "set -e\npip install jupyter\nexec sleep "
                                                 "infinity\n"}));
}

TEST(TaskManifest, PinnedCanonicalBytesAndHash) {
  // What goes on the ledger for the minimal task: a change here changes every hash.
  Manifest m = TaskManifest(MustParse("resources: {gpus: 1, max_price: 1}\nrun: echo hi\n"));
  EXPECT_EQ(CanonicalManifestJson(m),
            "{\"command\":[\"/bin/sh\",\"-c\",\"set -e\\necho hi\"],\"env\":{},\"environment\":"
            "\"host\",\"network\":\"none\",\"outputs_dir\":\"/outputs\",\"ports\":[],"
            "\"resources\":{},\"secrets\":[],\"stop_grace_ms\":10000,\"version\":1,\"workdir\":"
            "\"/work\"}");
  // The same manifest written as a manifest file hashes the same (one canonical form).
  auto loaded = ParseManifestText(CanonicalManifestJson(m), "m.json");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  EXPECT_EQ(loaded->hash, ManifestHash(m));
}

TEST(TaskOutputs, TheFolderHoldingEveryOutput) {
  auto plan = [](std::string_view outputs) {
    return PlanTaskOutputs(MustParse(WithResources("run: x\noutputs: " + std::string(outputs))));
  };
  TaskOutputsPlan p = plan("[out/ckpt/, out/loss.csv]");
  EXPECT_EQ(p.outputs_dir, "/work/out");
  EXPECT_EQ(p.selections, (std::vector<std::string>{"ckpt", "loss.csv"}));
  p = plan("[checkpoints/]");
  EXPECT_EQ(p.outputs_dir, "/work/checkpoints");
  EXPECT_EQ(p.selections, (std::vector<std::string>{""}));  // all of it
  p = plan("[/outputs/model.pt]");
  EXPECT_EQ(p.outputs_dir, "/outputs");
  EXPECT_EQ(p.selections, (std::vector<std::string>{"model.pt"}));
  p = plan("/outputs");
  EXPECT_EQ(p.outputs_dir, "/outputs");
  EXPECT_EQ(plan("[a/b/c.pt, a/b/d/e.pt]").outputs_dir, "/work/a/b");
  EXPECT_EQ(PlanTaskOutputs(MustParse(WithResources(""))).outputs_dir, "/outputs");
}

TEST(TaskOutputs, RefusedPaths) {
  for (std::string_view bad : {"[../x]", "[/etc/passwd]", "[out/../x]", "[/work]", "[\"a b\"]"})
    EXPECT_NE(Refused(WithResources("outputs: " + std::string(bad) + "\n")).find("outputs[0]"),
              std::string::npos)
        << bad;
  // Outputs in /work itself would bring the uploaded code back with them.
  EXPECT_TRUE(RefusedWith(WithResources("outputs: [model.pt]\n"), "share no folder"));
  EXPECT_TRUE(RefusedWith(WithResources("outputs: [/outputs/a, out/b]\n"), "share no folder"));
}

TEST(TaskFilter, SameOffersAsTheWordsAndTheRequirements) {
  Task t = MustParse(kTrain);
  TaskOfferFilter f = TaskFilter(t);
  EXPECT_EQ(f.words, (std::vector<std::string>{"gpu=H100", "gpus>=2", "free>=4", "machines>=2",
                                               "vram>=80", "price<=2.5", "region=eu-west",
                                               "fabric=infiniband", "cuda>=12.1"}));
  OfferView fits;
  fits.id = "1";
  fits.gpu_model = "H100";
  fits.gpus = 8;
  fits.gpus_free = 4;
  fits.vram_gb = 80;
  fits.price_ugpn_per_gpu_hour = 2'500'000;
  fits.region = "eu-west";
  fits.fabric = "infiniband";
  fits.cuda = {12, 4, 0};
  fits.machines = 2;
  EXPECT_TRUE(Matches(f.filter, fits));
  auto off = [&](auto change) {
    OfferView o = fits;
    change(o);
    return Matches(f.filter, o);
  };
  EXPECT_FALSE(off([](OfferView& o) { o.gpu_model = "A100"; }));
  EXPECT_FALSE(off([](OfferView& o) { o.gpus = 1; }));
  EXPECT_FALSE(off([](OfferView& o) { o.gpus_free = 3; }));
  EXPECT_FALSE(off([](OfferView& o) { o.machines = 1; }));
  EXPECT_FALSE(off([](OfferView& o) { o.vram_gb = 40; }));
  EXPECT_FALSE(off([](OfferView& o) { o.price_ugpn_per_gpu_hour = 2'500'001; }));
  EXPECT_FALSE(off([](OfferView& o) { o.region = "us-east"; }));
  EXPECT_FALSE(off([](OfferView& o) { o.fabric = "ethernet"; }));
  EXPECT_FALSE(off([](OfferView& o) { o.cuda = {12, 0, 0}; }));
  // Any model, one machine: no model, machines or vram term.
  TaskOfferFilter any = TaskFilter(MustParse("resources: {gpus: 1, max_price: 0.5}\n"));
  EXPECT_EQ(any.words, (std::vector<std::string>{"gpus>=1", "free>=1", "price<=0.5"}));
}

TEST(TaskCost, PerHourAndDeposit) {
  Task t = MustParse(kTrain);
  EXPECT_EQ(TaskGpus(t), 4u);
  EXPECT_EQ(*TaskCostPerHourUgpn(t), 10'000'000u);  // 4 GPUs x 2.5 GPN
  EXPECT_EQ(*TaskDepositUgpn(t), 30'000'000u);      // x 3 hours
  // A price whose total cannot be held is refused when the file is read.
  std::string msg = Refused("resources: {gpus: 64, machines: 64, max_price: 18446744073709}\n",
                            ErrorCode::kOverflow);
  EXPECT_NE(msg.find("lower"), std::string::npos) << msg;
}

TEST(TaskOrder, EqualsTheOrderYamlOfTheSameRequirements) {
  Task t = MustParse(kTrain);
  auto order = TaskOrder(t, 30'000);
  ASSERT_TRUE(order.has_value()) << order.error().message;
  std::string hash = base::ToHex(ManifestHash(TaskManifest(t)));
  auto yaml = ParseOrderConfig(R"(requirements:
  gpu: H100
  gpus_per_machine: 2
  machines: 2
  min_vram_gib: 80
  region: eu-west
  fabric: infiniband
  min_cuda: "12.1"
max_price: 2.5
deposit: 30
manifest_hash: )" + hash + "\nbid_window: 30s\n",
                               "order.yaml", "");
  ASSERT_TRUE(yaml.has_value()) << yaml.error().message;
  EXPECT_EQ(order->gpu_models, yaml->gpu_models);
  EXPECT_EQ(order->gpus_per_machine, yaml->gpus_per_machine);
  EXPECT_EQ(order->machines, yaml->machines);
  EXPECT_EQ(order->min_vram_gib, yaml->min_vram_gib);
  EXPECT_EQ(order->region, yaml->region);
  EXPECT_EQ(order->fabric, yaml->fabric);
  EXPECT_EQ(order->same_site, yaml->same_site);
  EXPECT_EQ(order->min_cuda, yaml->min_cuda);
  EXPECT_EQ(order->max_price_ugpn_per_gpu_hour, yaml->max_price_ugpn_per_gpu_hour);
  EXPECT_EQ(order->deposit_ugpn, yaml->deposit_ugpn);
  EXPECT_EQ(order->manifest_hash, yaml->manifest_hash);
  EXPECT_EQ(order->bid_window_ms, yaml->bid_window_ms);
  EXPECT_EQ(order->min_provider_bond_ugpn, yaml->min_provider_bond_ugpn);
  EXPECT_EQ(order->max_provider_fault_rate_ppm, yaml->max_provider_fault_rate_ppm);
  EXPECT_TRUE(order->excluded_providers.empty());
  // Any model: no model list, as an order.yaml without gpu:.
  auto any = TaskOrder(MustParse("resources: {gpus: 1, max_price: 1}\n"), 30'000);
  ASSERT_TRUE(any.has_value());
  EXPECT_TRUE(any->gpu_models.empty());
}

TEST(TaskFile, LoadsFromDiskRelativeToItsFolder) {
  testing::TempDir dir;
  std::ofstream(dir.Sub("task.yaml")) << kTrain;
  auto t = LoadTaskFile(dir.Sub("task.yaml"));
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->base_dir, dir.Path());
  EXPECT_EQ(t->file, dir.Sub("task.yaml"));
  auto missing = LoadTaskFile(dir.Sub("nope.yaml"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST(TaskFile, TheDocsExampleIsValid) {
  const char* src = std::getenv("GPUNET_SOURCE_DIR");
  ASSERT_NE(src, nullptr) << "GPUNET_SOURCE_DIR is not set: run through ctest";
  auto t = LoadTaskFile(std::string(src) + "/docs/examples/task.yaml");
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_FALSE(t->Interactive());
  EXPECT_EQ(PlanTaskOutputs(*t).outputs_dir, "/work/out");
  auto files = ListWorkdirFiles(t->base_dir + "/" + t->workdir);
  ASSERT_TRUE(files.has_value()) << files.error().message;
  std::vector<std::string> names;
  for (const auto& f : files->files) names.push_back(f.remote);
  EXPECT_NE(std::ranges::find(names, "train.py"), names.end());
}

}  // namespace
}  // namespace gpunet::client
