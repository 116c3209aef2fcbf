// BrokerService: every op of the broker contract over a real engine (fake chain and
// runtime ports), the real event log, nonce store and verifier, and real files for
// the workload's work, run and outputs dirs; the refusals of issue 17 item 8 that the
// agent decides (bad signature, replay across a restart, wrong key, closed lease),
// secrets kept out of spec, logs and events, and uploads written as the workload's uid.
#include "provider/broker_service.h"

#include <fcntl.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/manifest.h"
#include "crypto/address.h"
#include "crypto/hash.h"
#include "provider/api_process.h"
#include "unit/provider/engine_fakes.h"
#include "util/keys.h"
#include "util/temp_dir.h"

namespace gpunet::provider {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

constexpr uint64_t kBrokerNowMs = 1'700'000'000'000;
constexpr uint64_t kBrokerLease = 7;
constexpr uint32_t kBrokerMachine = 1;
constexpr const char* kBrokerSecret = "hf_s3cr3t-value-that-must-not-leak";

std::string Canonical(std::vector<std::string> secrets) {
  client::Manifest m;
  m.environment = "host";
  m.command = {"echo", "hi"};
  m.secrets = std::move(secrets);
  return client::CanonicalManifestJson(m);
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

/// Every byte of every regular file under `dir`.
std::string ReadTree(const fs::path& dir) {
  std::string all;
  if (!fs::exists(dir)) return all;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) all += ReadAll(e.path());
  return all;
}

class BrokerServiceTest : public ::testing::Test {
 protected:
  BrokerServiceTest() {
    for (const char* d : {"book", "events", "nonces", "secrets", "run", "run/work", "run/outputs"})
      fs::create_directories(dir.Path() + "/" + d);
    chain.view.height = 10;
    chain.view.time_ms = kBrokerNowMs;
    chain.view.params.manifest_timeout_ms = 600'000;
    chain.view.params.heartbeat_timeout_ms = 30'000;
    manifest = Canonical({"HF_TOKEN"});
    client::LeaseInfo l;
    l.lease_id = kBrokerLease;
    l.tenant = crypto::AddressToString(crypto::AddressOf(tenant.Public()));
    l.provider = crypto::AddressToString(provider);
    l.allocations = {{kBrokerMachine, 1}};
    l.gpus = 1;
    l.state = "reserved";
    l.manifest_hash = crypto::Blake2b256(base::AsBytes(manifest));
    l.start_deadline_ms = kBrokerNowMs + 600'000;
    l.paid_until_ms = kBrokerNowMs + 3'600'000;
    chain.view.leases[kBrokerLease] = l;
    auto events_log = EventLog::Open(dir.Path() + "/events");
    EXPECT_TRUE(events_log) << events_log.error().ToString();
    events = std::move(*events_log);
    MakeEngine();
    Restart();
    engine->Reconcile();  // reserved, then LeaseStarted
    engine->Reconcile();  // the book learns started_ms
  }

  void MakeEngine() {
    auto book = LeaseBook::Open(dir.Path() + "/book");
    EXPECT_TRUE(book.has_value());
    EngineOptions o;
    o.provider = provider;
    o.machine_id = kBrokerMachine;
    o.outputs_retention_ms = 3'600'000;
    EngineHooks hooks;
    hooks.log = [this](std::string_view line) { logs.emplace_back(line); };
    hooks.event = [this](uint64_t id, std::string_view kind, std::string_view message) {
      (void)events->Append(id, kind, message, clock.NowMs());
    };
    hooks.verify_manifest = [](const base::Hash32& expected,
                               std::string_view bytes) -> base::Status {
      GPUNET_TRY(client::VerifySubmittedManifest(bytes, expected));
      return {};
    };
    hooks.build_spec = [](const SpecInput& in) -> base::Result<runtime::WorkloadSpec> {
      client::Manifest m;
      GPUNET_TRY_ASSIGN(m, client::VerifySubmittedManifest(in.manifest, in.lease.manifest_hash));
      runtime::WorkloadSpec spec;
      spec.command = m.command;
      GateOnSecrets(spec, m.secrets);
      return spec;
    };
    engine =
        std::make_unique<Engine>(o, std::move(hooks), chain, workloads, std::move(*book),
                                 std::vector<PoolGpu>{{"GPU-0", "H100", {}, true, {}, 0}}, clock);
  }

  /// A new nonce store, verifier and service over the same files: what a restarted
  /// agent has.
  void Restart() {
    service.reset();
    verifier.reset();
    nonces.reset();
    auto opened = NonceStore::Open(dir.Path() + "/nonces", kBrokerNowMs);
    EXPECT_TRUE(opened) << opened.error().ToString();
    nonces = std::move(*opened);
    VerifierConfig config;
    config.chain_id = "gpunet-test";
    config.provider = provider;
    config.outputs_retention_ms = 3'600'000;
    verifier = std::make_unique<RequestVerifier>(config, clock, *nonces);
    BrokerDeps deps;
    deps.engine = engine.get();
    deps.verifier = verifier.get();
    deps.events = events.get();
    deps.attach = [this](const std::string& id) -> base::Result<runtime::WorkloadInfo> {
      if (!workloads.running.contains(id)) return base::Fail(base::ErrorCode::kNotFound, id);
      runtime::WorkloadInfo info;
      info.id = id;
      info.run_dir = dir.Path() + "/run";
      info.work_dir = dir.Path() + "/run/work";
      info.outputs_dir = dir.Path() + "/run/" + outputs_beneath;
      info.fs_dir = dir.Path() + "/run";
      info.outputs_beneath = outputs_beneath;
      info.uid = workload_uid;
      info.running = workloads.running.at(id);
      return info;
    };
    deps.poll = [this](const std::string& id) -> base::Result<std::optional<runtime::ExitStatus>> {
      if (!workloads.running.contains(id)) return base::Fail(base::ErrorCode::kNotFound, id);
      if (workloads.running.at(id)) return std::nullopt;
      return runtime::ExitStatus{};
    };
    deps.environments = [] {
      return std::vector<runtime::Environment>{{"host", runtime::Backend::kSandbox, ""},
                                               {"pytorch:2", runtime::Backend::kPodman, "ab12"}};
    };
    deps.open_session = [this](const std::string& id) -> base::Result<int> {
      if (!workloads.running.contains(id) || !workloads.running.at(id))
        return base::Fail(base::ErrorCode::kUnavailable, "nothing listens on session.sock");
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return base::Fail(base::ErrorCode::kIo, "socketpair");
      init_ends.push_back(sv[1]);
      return sv[0];
    };
    deps.session_opened = [this] { ++sessions_opened; };
    deps.secrets_dir = dir.Path() + "/secrets";
    deps.log = [this](std::string_view line) { logs.emplace_back(line); };
    service = std::make_unique<BrokerService>(std::move(deps));
  }

  /// A frame as the front sends it for (method, target, body), signed by `key`.
  BrokerFrame Signed(BrokerOp op, std::string_view method, std::string_view target,
                     std::string body = "", const crypto::KeyPair* key = nullptr,
                     const client::DelegationGrant* grant = nullptr) {
    const client::RequestScope scope{"gpunet-test", provider, kBrokerLease};
    client::RequestNonce nonce;
    nonce[0] = static_cast<uint8_t>(++next_nonce);
    nonce[1] = static_cast<uint8_t>(next_nonce >> 8);
    auto headers = client::SignTenantRequest(scope, key ? *key : tenant, grant,
                                             {method, target, client::BodyHash(body)},
                                             static_cast<uint64_t>(clock.NowMs()), nonce);
    EXPECT_TRUE(headers) << headers.error().ToString();
    BrokerFrame f;
    f.op = op;
    f.lease_id = kBrokerLease;
    f.fields["method"] = std::string(method);
    f.fields["target"] = std::string(target);
    for (const auto& [name, value] : *headers) {
      std::string key_name = name.substr(std::string("Gpunet-").size());
      for (char& c : key_name) c = static_cast<char>(std::tolower(c));
      f.fields[key_name] = value;
    }
    f.body = std::move(body);
    return f;
  }

  static int StatusOf(const BrokerFrame& reply) {
    EXPECT_EQ(reply.op, BrokerOp::kReply);
    return std::stoi(std::string(reply.Field("status").value_or("0")));
  }

  BrokerFrame Call(const BrokerFrame& f) { return service->Handle(f); }
  BrokerFrame CallSession(const BrokerFrame& f, BrokerFd* session) {
    return service->Handle(f, session);
  }

  /// The agent answers an unsigned request on the socket whose front end is `fd`.
  static void ExpectServes(int fd) {
    BrokerFrame env;
    env.op = BrokerOp::kEnvironments;
    ASSERT_TRUE(WriteBrokerFrame(fd, env).has_value());
    auto reply = ReadBrokerFrame(fd);
    ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
    EXPECT_EQ(StatusOf(*reply), 200);
  }

  void SubmitManifest() {
    auto r = Call(Signed(BrokerOp::kManifest, "POST", "/leases/7/manifest", manifest));
    ASSERT_EQ(StatusOf(r), 200) << r.Field("message").value_or("");
  }

  // 0711: the workload uid of the upload test must reach its work dir below.
  gpunet::testing::TempDir dir{{.parent = "", .prefix = "gpunet-broker", .mode = 0711}};
  codec::Address provider = TestAddress("provider");
  crypto::KeyPair tenant = TestKey(1);
  gpunet::testing::FakeChain chain;
  gpunet::testing::FakeWorkloads workloads;
  base::ManualClock clock{static_cast<int64_t>(kBrokerNowMs)};
  std::unique_ptr<EventLog> events;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<NonceStore> nonces;
  std::unique_ptr<RequestVerifier> verifier;
  std::unique_ptr<BrokerService> service;
  std::vector<std::string> logs;
  std::string manifest;
  uint32_t workload_uid = static_cast<uint32_t>(::geteuid());
  std::string outputs_beneath = "outputs";  // the manifest's outputs_dir beneath the fs root
  int next_nonce = 0;
  std::vector<int> init_ends;  ///< the "init" side of each session open_session made
  int sessions_opened = 0;

  ~BrokerServiceTest() override {
    for (int fd : init_ends) ::close(fd);
  }
};

TEST_F(BrokerServiceTest, EnvironmentsAreUnsignedAndListTheRuntimes) {
  BrokerFrame f;
  f.op = BrokerOp::kEnvironments;
  auto r = Call(f);
  ASSERT_EQ(StatusOf(r), 200);
  Json j = Json::parse(r.body);
  ASSERT_EQ(j["environments"].size(), 2u);
  EXPECT_EQ(j["environments"][0]["name"], "host");
  EXPECT_EQ(j["environments"][0]["kind"], "sandbox");
  EXPECT_EQ(j["environments"][1]["kind"], "podman");
  EXPECT_EQ(j["environments"][1]["id"], "ab12");
}

TEST_F(BrokerServiceTest, StatusNeedsTheTenantsSignatureAndALeaseOfThisMachine) {
  auto ok = Call(Signed(BrokerOp::kStatus, "GET", "/leases/7"));
  ASSERT_EQ(StatusOf(ok), 200) << ok.Field("message").value_or("");
  Json j = Json::parse(ok.body);
  EXPECT_EQ(j["lease_id"], kBrokerLease);
  EXPECT_EQ(j["workload"]["state"], "none");
  EXPECT_EQ(j["gpus"], Json::array({"GPU-0"}));

  auto bad = Signed(BrokerOp::kStatus, "GET", "/leases/7");
  bad.fields["signature"][0] = bad.fields["signature"][0] == 'a' ? 'b' : 'a';
  EXPECT_EQ(StatusOf(Call(bad)), 401);
  auto unsigned_frame = Signed(BrokerOp::kStatus, "GET", "/leases/7");
  unsigned_frame.fields.erase("signature");
  EXPECT_EQ(StatusOf(Call(unsigned_frame)), 401);
  const crypto::KeyPair stranger = TestKey(99);
  EXPECT_EQ(StatusOf(Call(Signed(BrokerOp::kStatus, "GET", "/leases/7", "", &stranger))), 403);
  auto other = Signed(BrokerOp::kStatus, "GET", "/leases/8");
  other.lease_id = 8;
  EXPECT_EQ(StatusOf(Call(other)), 404);
}

TEST_F(BrokerServiceTest, AnOpFromAnotherRouteThanItsTargetIsRefused) {
  // A signed read of the logs passed off as a manifest, a secret or a revoke.
  auto f = Signed(BrokerOp::kLogs, "GET", "/leases/7/logs");
  f.op = BrokerOp::kManifest;
  EXPECT_EQ(StatusOf(Call(f)), 400);
  f.op = BrokerOp::kAuthorize;
  EXPECT_EQ(StatusOf(Call(f)), 400);
  // The target names another lease than the frame.
  auto g = Signed(BrokerOp::kStatus, "GET", "/leases/7");
  g.fields["target"] = "/leases/70";
  EXPECT_EQ(StatusOf(Call(g)), 400);
  EXPECT_TRUE(workloads.started.empty());
}

TEST_F(BrokerServiceTest, AReplayIsRefusedEvenAfterARestartOfTheService) {
  auto f = Signed(BrokerOp::kStatus, "GET", "/leases/7");
  EXPECT_EQ(StatusOf(Call(f)), 200);
  EXPECT_EQ(StatusOf(Call(f)), 401);
  Restart();
  auto again = Call(f);
  EXPECT_EQ(StatusOf(again), 401);
  EXPECT_NE(again.Field("message")->find("replay"), std::string_view::npos)
      << again.Field("message").value_or("");
}

TEST_F(BrokerServiceTest, TheManifestMustHaveTheLeasesHashAndIsIdempotent) {
  auto wrong = Call(Signed(BrokerOp::kManifest, "POST", "/leases/7/manifest", Canonical({})));
  EXPECT_EQ(StatusOf(wrong), 400);
  EXPECT_TRUE(workloads.started.empty());
  SubmitManifest();
  ASSERT_EQ(workloads.started.size(), 1u);
  // Gated on the secret: the argv runs behind the wrapper, and the spec holds no value.
  const auto& cmd = workloads.started[0].command;
  ASSERT_GE(cmd.size(), 6u);
  EXPECT_EQ(cmd[0], "/bin/sh");
  EXPECT_EQ(cmd[cmd.size() - 2], "echo");
  auto again = Call(Signed(BrokerOp::kManifest, "POST", "/leases/7/manifest", manifest));
  EXPECT_EQ(StatusOf(again), 200);
  EXPECT_EQ(workloads.started.size(), 1u);
  auto other = Call(Signed(BrokerOp::kManifest, "POST", "/leases/7/manifest", Canonical({})));
  EXPECT_EQ(StatusOf(other), 409);
}

TEST_F(BrokerServiceTest, SecretsReachOnlyTheWorkloadsFilesNeverSpecLogsOrEvents) {
  auto early = Call(Signed(BrokerOp::kSecrets, "POST", "/leases/7/secrets",
                           Json{{"HF_TOKEN", kBrokerSecret}}.dump()));
  EXPECT_EQ(StatusOf(early), 409);  // the manifest names them
  SubmitManifest();
  auto unknown =
      Call(Signed(BrokerOp::kSecrets, "POST", "/leases/7/secrets", Json{{"OTHER", "x"}}.dump()));
  EXPECT_EQ(StatusOf(unknown), 400);
  EXPECT_FALSE(fs::exists(dir.Path() + "/run/work/.gpunet/ready"));
  auto set = Call(Signed(BrokerOp::kSecrets, "POST", "/leases/7/secrets",
                         Json{{"HF_TOKEN", kBrokerSecret}}.dump()));
  ASSERT_EQ(StatusOf(set), 200) << set.Field("message").value_or("");
  EXPECT_EQ(Json::parse(set.body)["complete"], true);
  EXPECT_EQ(ReadAll(dir.Path() + "/run/work/.gpunet/secrets/HF_TOKEN"), kBrokerSecret);
  EXPECT_TRUE(fs::exists(dir.Path() + "/run/work/.gpunet/ready"));
  auto twice = Call(Signed(BrokerOp::kSecrets, "POST", "/leases/7/secrets",
                           Json{{"HF_TOKEN", "another"}}.dump()));
  EXPECT_EQ(StatusOf(twice), 409);

  // Nowhere else: not the spec (argv, env), the agent's log, the events, the book.
  for (const auto& a : workloads.started[0].command)
    EXPECT_EQ(a.find(kBrokerSecret), std::string::npos);
  for (const auto& [k, v] : workloads.started[0].env)
    EXPECT_EQ(v.find(kBrokerSecret), std::string::npos);
  for (const auto& l : logs) EXPECT_EQ(l.find(kBrokerSecret), std::string::npos) << l;
  for (const char* d : {"events", "book", "secrets", "nonces"})
    EXPECT_EQ(ReadTree(dir.Path() + "/" + d).find(kBrokerSecret), std::string::npos) << d;
}

TEST_F(BrokerServiceTest, TheSecretsGateOpensWhenEverySecretIsSetEvenOnARetry) {
  SubmitManifest();
  const std::string work = dir.Path() + "/run/work";
  // The marker cannot be written (the workload put a directory where its temporary
  // file goes): the request says so instead of answering "complete".
  fs::create_directories(work + "/.gpunet/.ready.part");
  auto set = Call(Signed(BrokerOp::kSecrets, "POST", "/leases/7/secrets",
                         Json{{"HF_TOKEN", kBrokerSecret}}.dump()));
  EXPECT_EQ(StatusOf(set), 500) << set.Field("message").value_or("");
  EXPECT_EQ(ReadAll(work + "/.gpunet/secrets/HF_TOKEN"), kBrokerSecret);
  EXPECT_FALSE(fs::exists(work + "/.gpunet/ready"));
  // The retry names a secret that is set already: still refused as such, but every
  // secret is set, so the gate opens now.
  fs::remove(work + "/.gpunet/.ready.part");
  auto retry = Call(Signed(BrokerOp::kSecrets, "POST", "/leases/7/secrets",
                           Json{{"HF_TOKEN", kBrokerSecret}}.dump()));
  EXPECT_EQ(StatusOf(retry), 409);
  EXPECT_TRUE(fs::exists(work + "/.gpunet/ready"));
  EXPECT_EQ(ReadAll(work + "/.gpunet/secrets/HF_TOKEN"), kBrokerSecret);
  auto list = events->Since(kBrokerLease, 0, 100, 0);
  ASSERT_TRUE(list.has_value());
  EXPECT_EQ(std::ranges::count_if(*list, [](const auto& e) { return e.kind == "secrets_set"; }), 1);
}

TEST_F(BrokerServiceTest, AHalfWrittenSecretDoesNotCountAsSet) {
  SubmitManifest();
  const std::string work = dir.Path() + "/run/work";
  // What a crash in the middle of writing the value leaves: the temporary file only.
  fs::create_directories(work + "/.gpunet/secrets");
  std::ofstream(work + "/.gpunet/secrets/.HF_TOKEN.part") << "hf_s3c";
  auto set = Call(Signed(BrokerOp::kSecrets, "POST", "/leases/7/secrets",
                         Json{{"HF_TOKEN", kBrokerSecret}}.dump()));
  ASSERT_EQ(StatusOf(set), 200) << set.Field("message").value_or("");
  EXPECT_EQ(ReadAll(work + "/.gpunet/secrets/HF_TOKEN"), kBrokerSecret);
  EXPECT_FALSE(fs::exists(work + "/.gpunet/secrets/.HF_TOKEN.part"));
  EXPECT_TRUE(fs::exists(work + "/.gpunet/ready"));
}

TEST_F(BrokerServiceTest, BytesThatAreNotUtf8InANameAreAnsweredNotAnEndOfTheRootProcess) {
  // A tenant's percent-encoded 0xFF reaches the answer's JSON (the path, or the
  // error that quotes it); a plain dump() would throw on it in the root process.
  SubmitManifest();
  for (const char* target : {"/leases/7/files/%FF?offset=0", "/leases/7/files/%FF"}) {
    const bool put = std::string_view(target).find("offset") != std::string_view::npos;
    BrokerFrame r;
    ASSERT_NO_THROW(
        r = Call(Signed(BrokerOp::kUpload, put ? "PUT" : "GET", target, put ? "x" : "")))
        << target;
    EXPECT_TRUE(Json::accept(r.body)) << target << ": " << r.body;
  }
  BrokerFrame out;
  ASSERT_NO_THROW(out = Call(Signed(BrokerOp::kOutputs, "GET", "/leases/7/outputs/%FF")));
  EXPECT_TRUE(Json::accept(out.body)) << out.body;
}

TEST_F(BrokerServiceTest, UploadsAreChunkedResumableHashedAndWrittenAsTheWorkloadsUid) {
  if (::geteuid() == 0) {  // as root, a uid the test does not run as
    workload_uid = 54321;
    ASSERT_EQ(::chown((dir.Path() + "/run/work").c_str(), workload_uid, workload_uid), 0);
  }
  auto before = Call(Signed(BrokerOp::kUpload, "PUT", "/leases/7/files/data/a.bin?offset=0", "x"));
  EXPECT_EQ(StatusOf(before), 409);  // no workload yet
  SubmitManifest();
  auto first = Signed(BrokerOp::kUpload, "PUT", "/leases/7/files/data/a.bin?offset=0", "hello ");
  auto r = Call(first);
  ASSERT_EQ(StatusOf(r), 200) << r.Field("message").value_or("");
  EXPECT_EQ(Json::parse(r.body)["size"], 6);
  auto resume = Call(Signed(BrokerOp::kUpload, "GET", "/leases/7/files/data/a.bin"));
  ASSERT_EQ(StatusOf(resume), 200);
  EXPECT_EQ(Json::parse(resume.body)["size"], 6);
  // The offset is the signed target's, whatever the front's fields say.
  auto stale = Signed(BrokerOp::kUpload, "PUT", "/leases/7/files/data/a.bin?offset=3", "world");
  stale.fields["offset"] = "6";
  EXPECT_EQ(StatusOf(Call(stale)), 409);
  auto damaged = Signed(BrokerOp::kUpload, "PUT", "/leases/7/files/data/a.bin?offset=6", "world");
  damaged.fields["chunk_sha256"] = std::string(64, '0');
  EXPECT_EQ(StatusOf(Call(damaged)), 400);
  auto second =
      Call(Signed(BrokerOp::kUpload, "PUT", "/leases/7/files/data/a.bin?offset=6", "world"));
  ASSERT_EQ(StatusOf(second), 200);
  EXPECT_EQ(ReadAll(dir.Path() + "/run/work/data/a.bin"), "hello world");
  struct stat st {};
  ASSERT_EQ(::stat((dir.Path() + "/run/work/data/a.bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, workload_uid);
  // The daemon's own corner, and paths the target rules refuse.
  EXPECT_EQ(StatusOf(Call(Signed(BrokerOp::kUpload, "PUT", "/leases/7/files/.gpunet/ready", "1"))),
            403);
  auto dots = Signed(BrokerOp::kUpload, "PUT", "/leases/7/files/a", "1");
  dots.fields["target"] = "/leases/7/files/../../etc/passwd";
  EXPECT_EQ(StatusOf(Call(dots)), 400);
  auto missing = Call(Signed(BrokerOp::kUpload, "GET", "/leases/7/files/none.bin"));
  EXPECT_EQ(StatusOf(missing), 404);
}

TEST_F(BrokerServiceTest, EventsListTheLeasesLifeAfterASequenceNumber) {
  SubmitManifest();
  auto r = Call(Signed(BrokerOp::kEvents, "GET", "/leases/7/events?after=0"));
  ASSERT_EQ(StatusOf(r), 200) << r.Field("message").value_or("");
  Json list = Json::parse(r.body)["events"];
  std::vector<std::string> kinds;
  for (const auto& e : list) kinds.push_back(e["kind"]);
  EXPECT_EQ(kinds, (std::vector<std::string>{"reserved", "started", "manifest_accepted",
                                             "workload_running"}));
  auto later = Call(Signed(BrokerOp::kEvents, "GET", "/leases/7/events?after=2"));
  EXPECT_EQ(Json::parse(later.body)["events"].size(), 2u);
  EXPECT_EQ(Json::parse(later.body)["events"][0]["seq"], 3);
}

TEST_F(BrokerServiceTest, LogsAreReadByOffsetCappedAndSayWhenTheWorkloadEnded) {
  SubmitManifest();
  std::ofstream(dir.Path() + "/run/stdout.log") << "line one\nline two\n";
  auto r = Call(Signed(BrokerOp::kLogs, "GET", "/leases/7/logs?stream=stdout&offset=5&max=3"));
  ASSERT_EQ(StatusOf(r), 200) << r.Field("message").value_or("");
  EXPECT_EQ(r.body, "one");
  EXPECT_EQ(r.Field("next_offset"), "8");
  EXPECT_EQ(r.Field("ended"), "0");
  // An offset past the end (the file rotated): from the start of the current file.
  auto rotated = Call(Signed(BrokerOp::kLogs, "GET", "/leases/7/logs?offset=500"));
  EXPECT_EQ(rotated.body, "line one\nline two\n");
  EXPECT_EQ(rotated.Field("rotated"), "1");
  workloads.running["lease-7"] = false;
  auto ended = Call(Signed(BrokerOp::kLogs, "GET", "/leases/7/logs?offset=18&wait_ms=20000"));
  EXPECT_EQ(ended.body, "");
  EXPECT_EQ(ended.Field("ended"), "1");
  EXPECT_EQ(StatusOf(Call(Signed(BrokerOp::kLogs, "GET", "/leases/7/logs?stream=stdin"))), 400);
}

TEST_F(BrokerServiceTest, OutputsAreListedAndReadByRangeWithoutFollowingLinks) {
  SubmitManifest();
  std::ofstream(dir.Path() + "/run/outputs/result.txt") << "0123456789";
  fs::create_symlink("/etc/passwd", dir.Path() + "/run/outputs/escape");
  auto list = Call(Signed(BrokerOp::kOutputs, "GET", "/leases/7/outputs"));
  ASSERT_EQ(StatusOf(list), 200) << list.Field("message").value_or("");
  Json entries = Json::parse(list.body)["entries"];
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0]["name"], "escape");
  EXPECT_EQ(entries[0]["type"], "symlink");
  EXPECT_EQ(entries[1]["size"], 10);
  auto part =
      Call(Signed(BrokerOp::kOutputs, "GET", "/leases/7/outputs/result.txt?offset=2&max=3"));
  ASSERT_EQ(StatusOf(part), 200);
  EXPECT_EQ(part.body, "234");
  EXPECT_EQ(part.Field("size"), "10");
  EXPECT_EQ(part.Field("next_offset"), "5");
  auto link = Call(Signed(BrokerOp::kOutputs, "GET", "/leases/7/outputs/escape"));
  EXPECT_NE(StatusOf(link), 200);
  EXPECT_EQ(link.body.find("root:"), std::string::npos);
}

TEST_F(BrokerServiceTest, OutputsServeOnlyTheWorkloadsOwnSingleLinkFiles) {
  SubmitManifest();
  const std::string out = dir.Path() + "/run/outputs";
  std::ofstream(out + "/mine.txt") << "mine";
  // A file the workload could only read, hard-linked into its outputs: root would
  // read it for the tenant.
  std::ofstream(dir.Path() + "/run/elsewhere") << "not the tenant's";
  fs::create_hard_link(dir.Path() + "/run/elsewhere", out + "/linked");
  std::ofstream(out + "/others.txt") << "someone else's";
  ASSERT_EQ(::chown((out + "/others.txt").c_str(), workload_uid + 1, 0), 0);
  EXPECT_EQ(Call(Signed(BrokerOp::kOutputs, "GET", "/leases/7/outputs/mine.txt")).body, "mine");
  for (const char* refused : {"linked", "others.txt"}) {
    auto r = Call(Signed(BrokerOp::kOutputs, "GET", "/leases/7/outputs/" + std::string(refused)));
    EXPECT_EQ(StatusOf(r), 403) << refused;
    EXPECT_EQ(r.body.find("tenant's"), std::string::npos) << refused;
    EXPECT_EQ(r.body.find("someone"), std::string::npos) << refused;
  }
}

TEST_F(BrokerServiceTest, AnOutputsDirReachedThroughALinkTheWorkloadPlantedIsRefused) {
  SubmitManifest();
  // The manifest's outputs_dir is /work/a/b; the workload owns /work/a and swaps it
  // for a link to another uid's folder (another lease's secrets, a user's home).
  outputs_beneath = "work/a/b";
  const std::string other = dir.Path() + "/other";
  fs::create_directories(other + "/b");
  std::ofstream(other + "/b/secret.txt") << "another lease's secret";
  ASSERT_EQ(::chown((other + "/b").c_str(), workload_uid + 1, 0), 0);
  ASSERT_EQ(::chown((other + "/b/secret.txt").c_str(), workload_uid + 1, 0), 0);
  fs::create_directories(dir.Path() + "/run/work");
  fs::create_directory_symlink(other, dir.Path() + "/run/work/a");
  for (const char* target : {"/leases/7/outputs", "/leases/7/outputs/secret.txt"}) {
    auto r = Call(Signed(BrokerOp::kOutputs, "GET", target));
    EXPECT_EQ(StatusOf(r), 403) << target << ": " << r.Field("message").value_or("");
    EXPECT_EQ(r.body.find("secret"), std::string::npos) << target << ": " << r.body;
  }
  // The same folders without the link are served.
  fs::remove(dir.Path() + "/run/work/a");
  fs::create_directories(dir.Path() + "/run/work/a/b");
  std::ofstream(dir.Path() + "/run/work/a/b/mine.txt") << "mine";
  ASSERT_EQ(::chown((dir.Path() + "/run/work/a/b/mine.txt").c_str(), workload_uid, 0), 0);
  EXPECT_EQ(Call(Signed(BrokerOp::kOutputs, "GET", "/leases/7/outputs/mine.txt")).body, "mine");
}

TEST_F(BrokerServiceTest, OutputsAreListedRecursivelyWithPathsBeneathTheDirectory) {
  SubmitManifest();
  const std::string out = dir.Path() + "/run/outputs";
  fs::create_directories(out + "/ckpt/epoch1");
  std::ofstream(out + "/ckpt/epoch1/model.bin") << "w1";
  std::ofstream(out + "/top.txt") << "t";
  fs::create_directory_symlink("/etc", out + "/ckpt/etc");
  std::string deep = out;
  for (int i = 0; i < 20; ++i) deep += "/d";
  fs::create_directories(deep);
  std::ofstream(deep + "/bottom") << "b";
  auto list = Call(Signed(BrokerOp::kOutputs, "GET", "/leases/7/outputs"));
  ASSERT_EQ(StatusOf(list), 200) << list.Field("message").value_or("");
  std::map<std::string, std::string> types;
  const Json answer = Json::parse(list.body);
  for (const auto& e : answer["entries"])
    types[e["name"].get<std::string>()] = e["type"].get<std::string>();
  EXPECT_EQ(types["ckpt"], "directory");
  EXPECT_EQ(types["ckpt/epoch1"], "directory");
  EXPECT_EQ(types["ckpt/epoch1/model.bin"], "file");
  EXPECT_EQ(types["ckpt/etc"], "symlink");
  EXPECT_EQ(types["top.txt"], "file");
  for (const auto& [name, type] : types) EXPECT_FALSE(name.starts_with("ckpt/etc/")) << name;
  // Bounded depth: 16 levels, the rest not walked.
  std::string level16 = "d";
  for (int i = 1; i < 16; ++i) level16 += "/d";
  EXPECT_EQ(types[level16], "directory");
  EXPECT_FALSE(types.contains(level16 + "/d"));
  auto file = Call(Signed(BrokerOp::kOutputs, "GET", "/leases/7/outputs/ckpt/epoch1/model.bin"));
  EXPECT_EQ(file.body, "w1");
}

TEST_F(BrokerServiceTest, AClosedLeaseKeepsReadsForRetentionAndRefusesWrites) {
  SubmitManifest();
  chain.view.leases[kBrokerLease].state = "closed";
  chain.view.leases[kBrokerLease].end = "tenant_closed";
  chain.view.leases[kBrokerLease].closed_ms = kBrokerNowMs;
  engine->Reconcile();
  auto write = Call(Signed(BrokerOp::kUpload, "PUT", "/leases/7/files/late.bin?offset=0", "x"));
  EXPECT_EQ(StatusOf(write), 410);
  auto read = Call(Signed(BrokerOp::kStatus, "GET", "/leases/7"));
  ASSERT_EQ(StatusOf(read), 200);
  EXPECT_EQ(Json::parse(read.body)["end"], "tenant_closed");
  clock.AdvanceMs(3'600'001);
  EXPECT_EQ(StatusOf(Call(Signed(BrokerOp::kStatus, "GET", "/leases/7"))), 410);
  // The engine releases it (record, workload, outputs gone): still 410, with why,
  // and so after a restart of the agent too, not 404 as for a lease never seen.
  chain.view.time_ms += 3'600'001;
  engine->Reconcile();
  ASSERT_TRUE(engine->RecordsForTest().empty());
  for (int restarted = 0; restarted < 2; ++restarted) {
    auto gone = Call(Signed(BrokerOp::kOutputs, "GET", "/leases/7/outputs"));
    EXPECT_EQ(StatusOf(gone), 410) << restarted;
    EXPECT_NE(gone.Field("message").value_or("").find("tenant_closed"), std::string::npos);
    service.reset();
    engine.reset();
    MakeEngine();
    Restart();
  }
  auto other = Signed(BrokerOp::kStatus, "GET", "/leases/8");
  other.lease_id = 8;
  EXPECT_EQ(StatusOf(Call(other)), 404);
}

TEST_F(BrokerServiceTest, ASessionIsTheInitsSocketForARunningWorkloadOfAStartedLease) {
  const auto session_frame = [this](const crypto::KeyPair* key = nullptr) {
    return Signed(BrokerOp::kSession, "GET", "/leases/7/session", "", key);
  };
  BrokerFd fd;
  // No workload yet.
  auto none = CallSession(session_frame(), &fd);
  EXPECT_EQ(StatusOf(none), 409);
  EXPECT_EQ(none.Field("message").value_or(""),
            "the lease's workload is not running (state: none); send the manifest first");
  EXPECT_FALSE(fd.Valid());
  SubmitManifest();
  auto ok = CallSession(session_frame(), &fd);
  ASSERT_EQ(StatusOf(ok), 200) << ok.Field("message").value_or("");
  ASSERT_TRUE(fd.Valid());
  // The lease's tenant, for the tenant-facing process's per-tenant cap.
  EXPECT_EQ(ok.Field("tenant").value_or(""),
            crypto::AddressToString(crypto::AddressOf(tenant.Public())));
  ASSERT_EQ(init_ends.size(), 1u);
  ASSERT_EQ(::write(init_ends[0], "\x08", 1), 1);  // what init would send: its bytes arrive
  char c = 0;
  ASSERT_EQ(::read(fd.Get(), &c, 1), 1);
  EXPECT_EQ(c, '\x08');
  EXPECT_EQ(sessions_opened, 1);
  fd = BrokerFd();
  // Verified like every op: a stranger, a bad signature; and never without a place for
  // the socket (the front asked for the wrong op).
  const crypto::KeyPair stranger = TestKey(99);
  EXPECT_EQ(StatusOf(CallSession(session_frame(&stranger), &fd)), 403);
  auto bad = session_frame();
  bad.fields["signature"][0] = bad.fields["signature"][0] == 'a' ? 'b' : 'a';
  EXPECT_EQ(StatusOf(CallSession(bad, &fd)), 401);
  EXPECT_EQ(StatusOf(Call(session_frame())), 400);
  auto wrong_route = Signed(BrokerOp::kStatus, "GET", "/leases/7");
  wrong_route.op = BrokerOp::kSession;
  EXPECT_EQ(StatusOf(CallSession(wrong_route, &fd)), 400);
  EXPECT_FALSE(fd.Valid());
  EXPECT_EQ(init_ends.size(), 1u);
  // The workload ended: 409 with its state.
  workloads.running["lease-7"] = false;
  auto exited = CallSession(session_frame(), &fd);
  EXPECT_EQ(StatusOf(exited), 409);
  EXPECT_EQ(exited.Field("message").value_or(""),
            "the lease's workload is not running (state: exited)");
  // Closed: 410.
  workloads.running["lease-7"] = true;
  chain.view.leases[kBrokerLease].state = "closed";
  chain.view.leases[kBrokerLease].end = "tenant_closed";
  chain.view.leases[kBrokerLease].closed_ms = kBrokerNowMs;
  engine->Reconcile();
  EXPECT_EQ(StatusOf(CallSession(session_frame(), &fd)), 410);
  EXPECT_FALSE(fd.Valid());
  EXPECT_EQ(sessions_opened, 1);
}

TEST_F(BrokerServiceTest, ASessionsSocketGoesBackOverTheBrokerWithTheReply) {
  SubmitManifest();
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  service->Serve({sv[1]});
  ASSERT_TRUE(WriteBrokerFrame(sv[0], Signed(BrokerOp::kSession, "GET", "/leases/7/session")));
  BrokerFd passed;
  auto reply = ReadBrokerFrameWithFd(sv[0], &passed);
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(StatusOf(*reply), 200);
  ASSERT_TRUE(passed.Valid());
  ASSERT_EQ(init_ends.size(), 1u);
  ASSERT_EQ(::write(passed.Get(), "open", 4), 4);
  char buf[4] = {};
  ASSERT_EQ(::read(init_ends[0], buf, 4), 4);
  EXPECT_EQ(std::string(buf, 4), "open");
  // The agent kept no copy: once the front's is closed, init reads the end.
  passed = BrokerFd();
  EXPECT_EQ(::read(init_ends[0], buf, 1), 0);
  // A frame from the front with a descriptor attached ends that connection: the
  // agent takes none.
  ASSERT_TRUE(WriteBrokerFrame(sv[0], Signed(BrokerOp::kStatus, "GET", "/leases/7"), init_ends[0]));
  EXPECT_EQ(::read(sv[0], buf, 1), 0);
  service->Stop();
  ::close(sv[0]);
}

// Long-polls are capped per lease whoever signs them: the tenant's grant keys (signed
// off the ledger, as many as it likes) share the lease's slots, so they cannot hold
// every broker socket of the tenant-facing process. Only allowed requests count.
TEST_F(BrokerServiceTest, LongPollsAreCappedPerLeaseAcrossTheTenantAndItsGrantKeys) {
  const client::RequestScope scope{"gpunet-test", provider, kBrokerLease};
  client::GrantId gid;
  gid.data.fill(4);
  const crypto::KeyPair granted = TestKey(6);
  const auto grant = client::SignGrant(tenant, scope, granted.Public(), kBrokerNowMs + 60'000, gid);
  const std::string waits = "/leases/7/events?after=1000000&wait_ms=25000";
  static_assert(kBrokerLongPollsPerLeaseMax == 2);
  // The tenant's and a granted key's long-polls wait (no event after 1000000 yet).
  SubmitManifest();  // so that a logs long-poll gets as far as waiting
  // Signed here: the fixture's nonces are not for several threads.
  const BrokerFrame polls[2] = {Signed(BrokerOp::kEvents, "GET", waits),
                                Signed(BrokerOp::kEvents, "GET", waits, "", &granted, &grant)};
  std::vector<BrokerFrame> held(2);
  std::thread tenant_poll([&] { held[0] = Call(polls[0]); });
  std::thread granted_poll([&] { held[1] = Call(polls[1]); });
  // Once both wait, a third, by another granted key, is refused at once.
  for (int i = 0; i < 10'000 && service->LongPollsOf(kBrokerLease) < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a liveness bound only
  EXPECT_EQ(service->LongPollsOf(kBrokerLease), 2u);
  const crypto::KeyPair granted2 = TestKey(7);
  gid.data.fill(5);
  const auto grant2 =
      client::SignGrant(tenant, scope, granted2.Public(), kBrokerNowMs + 60'000, gid);
  const std::string short_wait = "/leases/7/logs?wait_ms=1";
  const std::string third_target = "/leases/7/events?after=1000000&wait_ms=1";
  const BrokerFrame third =
      Call(Signed(BrokerOp::kEvents, "GET", third_target, "", &granted2, &grant2));
  EXPECT_EQ(StatusOf(third), 429);
  EXPECT_NE(third.Field("message").value_or("").find("lease 7 has 2 long-polls waiting"),
            std::string::npos)
      << third.Field("message").value_or("");
  // A stranger is refused as a stranger (403), not counted; a short read still answers.
  const crypto::KeyPair stranger = TestKey(99);
  EXPECT_EQ(StatusOf(Call(Signed(BrokerOp::kEvents, "GET", third_target, "", &stranger))), 403);
  EXPECT_EQ(StatusOf(Call(Signed(BrokerOp::kEvents, "GET", "/leases/7/events?after=1000000"))),
            200);
  EXPECT_EQ(StatusOf(Call(Signed(BrokerOp::kLogs, "GET", short_wait, "", &granted2, &grant2))), 429)
      << "logs share the lease's long-polls";
  // The two end (the daemon stops serving): their slots are free again.
  service->Stop();
  tenant_poll.join();
  granted_poll.join();
  EXPECT_EQ(StatusOf(held[0]), 200) << held[0].Field("message").value_or("");
  EXPECT_EQ(StatusOf(held[1]), 200) << held[1].Field("message").value_or("");
  EXPECT_EQ(service->LongPollsOf(kBrokerLease), 0u);
  EXPECT_EQ(StatusOf(Call(Signed(BrokerOp::kEvents, "GET", third_target))), 200);
}

TEST_F(BrokerServiceTest, RevokingTakesTheTenantsSignedRevocation) {
  const client::RequestScope scope{"gpunet-test", provider, kBrokerLease};
  client::GrantId gid;
  gid.data.fill(3);
  const crypto::KeyPair session = TestKey(5);
  auto grant = client::SignGrant(tenant, scope, session.Public(), kBrokerNowMs + 60'000, gid);
  const std::string body = client::EncodeRevocation(client::SignRevocation(tenant, scope, grant));
  auto r = Call(Signed(BrokerOp::kAuthorize, "POST", "/leases/7/grants/revoke", body));
  ASSERT_EQ(StatusOf(r), 200) << r.Field("message").value_or("");
  EXPECT_EQ(Json::parse(r.body)["revoked"], base::ToHex(gid));
  EXPECT_TRUE(nonces->IsRevoked(tenant.Public(), gid, kBrokerNowMs));
  auto junk = Call(Signed(BrokerOp::kAuthorize, "POST", "/leases/7/grants/revoke", "{}"));
  EXPECT_EQ(StatusOf(junk), 400);
}

TEST_F(BrokerServiceTest, ServesFramesOnSocketsAndClosesOneThatSendsGarbage) {
  int good[2], bad[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, good), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bad), 0);
  service->Serve({good[1], bad[1]});
  // A frame whose length prefix says 5 bytes of an op that does not exist.
  const char junk[] = {0, 0, 0, 5, 99, 0, 0, 0, 0};
  ASSERT_EQ(::write(bad[0], junk, sizeof junk), static_cast<ssize_t>(sizeof junk));
  char c;
  EXPECT_EQ(::read(bad[0], &c, 1), 0);  // the agent closed it
  // The other connection still serves.
  ExpectServes(good[0]);
  service->Stop();
  ::close(good[0]);
  ::close(bad[0]);
}

/// Open fds of this process.
size_t OpenFds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST_F(BrokerServiceTest, ARestartingFrontCostsTheAgentNoFdsOrThreads) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to drop to another user";
  auto user = LookupUser("nobody");
  if (!user) GTEST_SKIP() << "no user nobody";
  std::ofstream(dir.Path() + "/key.pem") << "KEY";
  std::ofstream(dir.Path() + "/cert.pem") << "CERT";
  // As the daemon wires them: each start of a front that exits at once is served.
  ApiProcessOptions o;
  o.command = {"/bin/true"};
  o.listen = "127.0.0.1:1";
  o.chain_id = "gpunet-test";
  o.provider = "gpn1provider";
  o.key_path = dir.Path() + "/key.pem";
  o.cert_path = dir.Path() + "/cert.pem";
  o.user = *user;
  o.restart_backoff_first_ms = 5;
  std::mutex mu;
  std::vector<size_t> fds_after_start;
  o.on_spawn = [&](std::vector<int> fds) {
    service->Serve(fds);
    std::lock_guard lock(mu);
    fds_after_start.push_back(OpenFds());
  };
  ApiProcess api(o);
  api.Start();
  for (int i = 0; i < 600 && api.Starts() < 6; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  api.Stop();
  std::lock_guard lock(mu);
  ASSERT_GE(fds_after_start.size(), 6u);
  for (size_t i = 1; i < fds_after_start.size(); ++i)
    EXPECT_EQ(fds_after_start[i], fds_after_start[0]) << "after start " << i + 1;
}

TEST_F(BrokerServiceTest, ANewStartCutsALongPollOfTheEarlierOneShort) {
  SubmitManifest();
  int first[2], second[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, first), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, second), 0);
  service->Serve({first[1]});
  // A follow of the logs that would wait 25 s for the workload's next byte.
  ASSERT_TRUE(
      WriteBrokerFrame(first[0], Signed(BrokerOp::kLogs, "GET", "/leases/7/logs?wait_ms=25000"))
          .has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // it is waiting now
  service->Serve({second[1]});  // returns once the earlier connection's thread is joined
  EXPECT_EQ(::fcntl(first[1], F_GETFD), -1);  // and its fd closed
  ExpectServes(second[0]);
  service->Stop();
  ::close(first[0]);
  ::close(second[0]);
}

}  // namespace
}  // namespace gpunet::provider

namespace gpunet::provider {
namespace {

TEST(ParseBrokerRoute, ReadsTheSignedTargetAndRefusesWhatCouldEscape) {
  auto r = ParseBrokerRoute("/leases/7/files/data/x%20y.bin?offset=6&max=", 7);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->rest, "/files/data/x y.bin");
  EXPECT_EQ(r->query.at("offset"), "6");
  EXPECT_EQ(r->query.at("max"), "");
  EXPECT_EQ(ParseBrokerRoute("/leases/7", 7)->rest, "");
  for (std::string_view bad :
       {"/leases/70", "/leases/8/logs", "/leases/7/files/%2e%2e/etc", "/leases/7/files/../x",
        "/leases/7/files/a%2Fb", "/leases/7/files/a%00", "/leases/7?a=1&a=2", "leases/7", ""})
    EXPECT_FALSE(ParseBrokerRoute(bad, 7).has_value()) << bad;
}

}  // namespace
}  // namespace gpunet::provider
