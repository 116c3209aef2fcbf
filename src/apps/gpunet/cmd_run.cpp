// `gpunet run task.yaml` (docs/task.md "gpunet run", docs/cli.md "run"): from a
// task file to the job's logs, its outputs and the settlement in one command. The
// task is parsed and its manifest derived (client/task.h); the decisions (which
// offer, the deposit, the bid window, what to say when nothing fits or a provider
// does not start) are client/run_plan.h's pure functions; the ledger is reached
// with the market verbs' SendMsgs (market_send.h) and the provider with the tenant
// verbs' pinned client, upload and download (lease_access.h). Phases are lines on
// stderr ("==> leasing: ..."); the workload's stdout goes to stdout, its stderr to
// stderr, with control sequences made harmless unless --raw.

#include <sodium.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apps/gpunet/cli.h"
#include "apps/gpunet/lease_access.h"
#include "apps/gpunet/market_send.h"
#include "client/amount.h"
#include "client/gpunetignore.h"
#include "client/lease_follow.h"
#include "client/manifest.h"
#include "client/market_client.h"
#include "client/market_tx.h"
#include "client/node_client.h"
#include "client/run_plan.h"
#include "client/task.h"
#include "client/tenant_client.h"
#include "client/tenant_secrets.h"
#include "client/tenant_transfer.h"
#include "client/terminal_text.h"
#include "client/topup.h"
#include "crypto/address.h"
#include "crypto/keystore.h"
#include "market/math.h"

namespace gpunet::apps {
namespace run_cmd {
namespace {

using base::ErrorCode;
using nlohmann::json;
namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

struct RunArgs {
  std::string file, from, fee, outputs, bid_window;
  bool yes = false, detach = false, order = false, raw = false, timings = false;
};

// Set by SIGINT (a lock-free atomic store is async-signal-safe); the follow of the
// logs watches it too (FollowOptions::cancel).
std::atomic<bool> g_cancel{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void OnSigint(int) {
  g_cancel.store(true);
}

/// SIGINT sets a flag that the waits and the log loop look at, so Ctrl-C asks
/// keep-or-close instead of killing the client with the lease in an unknown state.
void CatchSigint() {
  struct sigaction sa {};
  sa.sa_handler = OnSigint;
  sigemptyset(&sa.sa_mask);
  // Blocking calls restart (a tx being sent is not cut off half-way); the waits and
  // the follow look at the flag at least once a second.
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
}

void Sleep(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

std::string GpnText(uint64_t ugpn) {
  return client::FormatGpn(ugpn) + " GPN";
}

/// A string field of a provider's answer as one harmless line (the provider chose
/// its bytes: no escape sequence of it reaches the terminal), or `fallback` when the
/// field is missing or not a string.
std::string ProviderText(const json& j, const char* key, const char* fallback) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return fallback;
  return client::TerminalLine(j[key].get<std::string>(), 200);
}

/// One `gpunet run`: the state its phases share.
class TaskRun {
 public:
  TaskRun(const GlobalOptions& g, const RunArgs& a)
      : m_g(g), m_a(a), m_market(g.NodeUrl()), m_start(SteadyClock::now()) {}

  void Main();

 private:
  // --- output
  void Phase(std::string_view name, const std::string& detail = {}) const {
    std::cerr << "==> " << name << (detail.empty() ? "" : ": " + detail) << std::endl;
  }
  void Say(const std::string& line) const { std::cerr << line << std::endl; }
  /// How run sends a tx: from --from with --fee, its progress on stderr.
  SendOptions Sending(uint64_t money_ugpn) const {
    SendOptions o{m_a.from, money_ugpn, m_a.fee};
    o.progress_to_stderr = true;
    return o;
  }
  uint64_t SinceStartMs() const {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - m_start)
            .count());
  }

  // --- phases
  void Prepare();
  void ChooseOffer();
  bool EnvironmentListed(const std::string& provider);
  void ShowAndConfirm();
  void LeaseFromOffer();
  void LeaseFromOrder();
  void WaitForStart();
  void SendManifest(client::TenantClient& tenant);
  void Upload(client::TenantClient& tenant);
  void SendSecrets(client::TenantClient& tenant);
  void WaitForSandbox(client::TenantClient& tenant);
  int StreamLogs(client::TenantClient& tenant);
  void DownloadOutputs(client::TenantClient& tenant);
  void Close(const std::string& why);
  /// Everything after the lease exists: the start, the upload, the job, the close.
  void Leased();
  void Finish(int exit_code);
  /// Ctrl-C: keep (print how to come back) or close; ends the command either way.
  [[noreturn]] void Interrupted(bool reserved);
  json TimingsJson() const;

  const GlobalOptions& m_g;
  RunArgs m_a;  ///< a copy: --from may be filled in from the keystore
  client::MarketClient m_market;
  const SteadyClock::time_point m_start;

  client::Task m_task;
  client::Manifest m_manifest;
  std::string m_canonical;
  base::Hash32 m_hash{};
  std::optional<client::WorkdirFiles> m_workdir;
  std::map<std::string, std::string> m_secrets;
  crypto::Address m_tenant{};
  market::Params m_params;

  std::optional<client::OfferView> m_offer;  ///< the offer to lease from; none: an order
  uint64_t m_deposit_ugpn = 0;
  uint64_t m_lease_id = 0;
  client::LeaseInfo m_lease;  ///< as last read
  client::RunTimings m_timings;
  std::vector<json> m_downloaded;
  std::optional<client::LeaseInfo> m_closed;
};

void TaskRun::Prepare() {
  m_task = OrFail(client::LoadTaskFile(m_a.file));
  m_manifest = client::TaskManifest(m_task);
  m_canonical = client::CanonicalManifestJson(m_manifest);
  m_hash = client::ManifestHash(m_manifest);
  if (!m_task.workdir.empty()) {
    const std::string root = (fs::path(m_task.base_dir) / m_task.workdir).string();
    m_workdir = OrFail(client::ListWorkdirFiles(root), "workdir " + root);
    for (const auto& s : m_workdir->skipped)
      Say("workdir: skipped " + s.path + " (" + s.reason + ")");
  }
  // The secrets' values are read now: a missing one stops run before money moves.
  for (const auto& name : m_task.secrets)
    m_secrets[name] =
        OrFail(client::SecretFromEnv(name), "secret " + name +
                                                " (the task's secrets are read from your "
                                                "environment: export " +
                                                name + "=... first)");
  if (m_a.from.empty()) {
    // No --from: the keystore's one key, if it has exactly one.
    const auto keys = OrFail(crypto::Keystore::AtHome(m_g.Home()).List(), "listing your keys");
    std::string names;
    for (const auto& k : keys) names += (names.empty() ? "" : ", ") + k.name;
    if (keys.size() != 1)
      FailCommand(
          ErrorCode::kInvalidArgument,
          "give --from KEY, the key that pays and signs (" +
              (keys.empty() ? "the keystore in " + m_g.Home() + " has none: gpunet keys add NAME"
                            : "your keys: " + names) +
              ")");
    m_a.from = keys.front().name;
  }
  m_tenant =
      OrFail(ResolveAddressOrKey(m_a.from, "--from", {crypto::Keystore::AtHome(m_g.Home()).Dir()}));
  m_params = OrFail(client::NodeClient(m_g.NodeUrl()).Status(), "reading the chain's rules").market;
}

bool TaskRun::EnvironmentListed(const std::string& provider) {
  auto record = m_market.Provider(provider);
  if (!record || record->value.tenant_api_uri.empty()) {
    Say("skipping provider " + provider + ": no tenant API on the ledger");
    return false;
  }
  client::TenantClientOptions o;
  o.url = record->value.tenant_api_uri;
  o.spki_sha256 = record->value.tls_fingerprint;
  o.scope.provider = OrFail(crypto::ParseAddress(provider), "an offer's provider");
  o.request_timeout_ms = 10'000;
  client::TenantClient probe(o, crypto::KeyPair::Generate());  // unsigned: no key is used
  auto r = probe.GetUnsigned("/environments");
  if (!r || r->status != 200) {
    Say("skipping provider " + provider + ": GET /environments " +
        (r ? "answered " + std::to_string(r->status) : "failed: " + r.error().message));
    return false;
  }
  const json j = json::parse(r->body, nullptr, false);
  if (j.is_object() && j.contains("environments") && j["environments"].is_array())
    for (const auto& e : j["environments"])
      if (e.is_object() && e.value("name", std::string()) == m_task.environment) return true;
  Say("skipping provider " + provider + ": its GET /environments does not list \"" +
      m_task.environment + "\"");
  return false;
}

void TaskRun::ChooseOffer() {
  if (m_a.order) return;
  const auto offers = OrFail(m_market.Offers(), "reading the offers");
  const auto fits = client::FittingOffers(m_task, offers);
  if (fits.empty()) {
    Say("no offer fits the task (gpunet offers " +
        [&] {
          std::string w;
          for (const auto& word : client::TaskFilter(m_task).words)
            w += (w.empty() ? "" : " ") + word;
          return w;
        }() +
        "): " + client::ExplainNoFit(m_task, offers));
    Say("posting an order instead, for providers to bid on");
    return;
  }
  for (const auto& o : fits)
    if (EnvironmentListed(o.provider)) {
      m_offer = o;
      m_deposit_ugpn = OrFail(
          client::OfferDepositUgpn(m_task, o.price_ugpn_per_gpu_hour, o.min_hours, m_params));
      return;
    }
  Say("no provider of the " + std::to_string(fits.size()) +
      " fitting offer(s) lists environment \"" + m_task.environment +
      "\"; posting an order instead");
}

void TaskRun::ShowAndConfirm() {
  client::RunQuote q;
  q.machines = m_task.resources.machines;
  q.gpus_per_machine = m_task.resources.gpus_per_machine;
  q.hours = m_task.resources.hours;
  if (m_offer) {
    q.provider = m_offer->provider;
    q.source = "offer " + m_offer->id;
    q.gpu_model = m_offer->gpu_model;
    q.price_ugpn_per_gpu_hour = m_offer->price_ugpn_per_gpu_hour;
  } else {
    m_deposit_ugpn = OrFail(client::TaskDepositUgpn(m_task));
    q.provider = "the lowest bidder";
    q.source = "an order; at most max_price";
    q.gpu_model = m_task.resources.gpu_model;
    q.price_ugpn_per_gpu_hour = m_task.resources.max_price_ugpn_per_gpu_hour;
  }
  q.deposit_ugpn = m_deposit_ugpn;
  q.min_charge_ugpn = market::ReservedCloseCharge(
      static_cast<uint64_t>(std::min<unsigned __int128>(
          static_cast<unsigned __int128>(q.price_ugpn_per_gpu_hour) * client::TaskGpus(m_task),
          UINT64_MAX)),
      0, m_deposit_ugpn, m_params);
  q.start_timeout_ms = m_params.lease_start_timeout_ms;
  const auto account = OrFail(client::NodeClient(m_g.NodeUrl()).GetAccount(m_tenant, false),
                              "reading --from's balance");
  if (account.balance_ugpn < m_deposit_ugpn)
    FailCommand(ErrorCode::kInvalidArgument,
                client::NoFundsText(m_a.from, crypto::AddressToString(m_tenant),
                                    account.balance_ugpn, m_deposit_ugpn));
  std::cerr << "Running " << m_a.file << " (manifest " << base::ToHex(m_hash).substr(0, 16)
            << "...):\n";
  for (const auto& line : client::QuoteLines(q)) std::cerr << line << "\n";
  std::cerr << std::flush;
  Confirm(m_a.yes, "Proceed?");
}

void TaskRun::LeaseFromOffer() {
  Phase("leasing", "offer " + m_offer->id + " of " + m_offer->provider);
  codec::MsgLeaseCreate msg;
  msg.offer_id = std::stoull(m_offer->id);
  msg.machines = m_task.resources.machines;
  msg.gpus_per_machine = m_task.resources.gpus_per_machine;
  msg.deposit_ugpn = m_deposit_ugpn;
  msg.manifest_hash = m_hash;
  auto sent = SendMsgs(m_g, Sending(m_deposit_ugpn), {msg});
  m_lease_id = ParseDigits(IdOf(sent, "lease_id"), 19).value_or(0);
  if (m_lease_id == 0)
    FailCommand(ErrorCode::kCorrupt, "the lease's tx committed but named no lease id");
  m_timings.lease_committed_ms = SinceStartMs();
}

void TaskRun::LeaseFromOrder() {
  uint64_t window_ms = client::RunBidWindowMs(m_params);
  if (!m_a.bid_window.empty())
    window_ms = OrFail(client::ParseDurationMs(m_a.bid_window), "--bid-window");
  const client::OrderConfig config = OrFail(client::TaskOrder(m_task, window_ms));
  const client::PartyResolver resolver = [this](const client::PartyText& p) {
    return ResolveAddressOrKey(p.text, p.place.Describe(),
                               {crypto::Keystore::AtHome(m_g.Home()).Dir()});
  };
  const auto msg = OrFail(client::OrderCreateMsg(config, resolver, m_params));
  Phase("leasing", "posting an order, bids for " + client::DescribeDurationMs(window_ms) +
                       (m_a.bid_window.empty() ? " (--bid-window to change)" : ""));
  auto sent = SendMsgs(m_g, Sending(msg.deposit_ugpn), {msg});
  const uint64_t order_id = ParseDigits(IdOf(sent, "order_id"), 19).value_or(0);
  if (order_id == 0) FailCommand(ErrorCode::kCorrupt, "the order's tx committed but named no id");
  Phase("waiting for bids", "order " + std::to_string(order_id));
  auto last_said = SteadyClock::now();
  size_t said_bids = SIZE_MAX;
  for (;;) {
    if (g_cancel.load()) {
      Say("\ninterrupted: closing order " + std::to_string(order_id) +
          " (its deposit is refunded)");
      SendMsgs(m_g, Sending(0), {codec::MsgOrderClose{order_id}});
      std::exit(130);
    }
    const auto answer =
        OrFail(m_market.Bids(order_id), "reading order " + std::to_string(order_id));
    const client::OrderInfo& order = answer.value.order;
    if (order.state == "awarded" && order.lease_id) {
      m_lease_id = order.lease_id;
      break;
    }
    if (order.state != "open")
      FailCommand(ErrorCode::kUnavailable,
                  "no bid within max_price " +
                      client::FormatGpn(m_task.resources.max_price_ugpn_per_gpu_hour) +
                      " GPN/GPU-h came in order " + std::to_string(order_id) +
                      "'s bid window: the order closed and its deposit " +
                      GpnText(msg.deposit_ugpn) +
                      " was refunded. Raise max_price, loosen resources, or try again later");
    const auto best = client::PickBid(answer.value.bids, order.max_price_ugpn_per_gpu_hour);
    if (answer.value.bids.size() != said_bids ||
        SteadyClock::now() - last_said > std::chrono::seconds(3)) {
      Say("  " + std::to_string(answer.value.bids.size()) + " bid(s)" +
          (best ? ", best " + client::FormatGpn(best->price_ugpn_per_gpu_hour) +
                      " GPN/GPU-h from " + best->provider
                : "") +
          "; the window ends at " + UtcText(order.window_end_ms));
      said_bids = answer.value.bids.size();
      last_said = SteadyClock::now();
    }
    Sleep(200);
  }
  m_timings.lease_committed_ms = SinceStartMs();
  Say("order " + std::to_string(order_id) + " awarded: lease " + std::to_string(m_lease_id));
  // The bidder was unknown when the order went out: check its environments now, so a
  // refusal of the manifest to come is explained (the lease is already made).
  const auto lease = m_market.Lease(m_lease_id);
  if (lease && !EnvironmentListed(lease->value.provider))
    Say("warning: the winning provider does not list environment \"" + m_task.environment +
        "\"; it may refuse the manifest");
}

void TaskRun::WaitForStart() {
  Phase("waiting for provider", "lease " + std::to_string(m_lease_id));
  const auto began = SteadyClock::now();
  auto last_said = began;
  bool explained = false;
  for (;;) {
    if (g_cancel.load()) Interrupted(true);
    m_lease =
        OrFail(m_market.Lease(m_lease_id), "reading lease " + std::to_string(m_lease_id)).value;
    if (m_lease.state == "started") break;
    if (m_lease.state == "closed") {
      m_closed = m_lease;
      FailCommand(ErrorCode::kUnavailable, "lease " + std::to_string(m_lease_id) +
                                               " closed before it started (" + m_lease.end +
                                               "): " + client::SettlementText(m_lease));
    }
    const auto waited = SteadyClock::now() - began;
    if (!explained && waited > std::chrono::seconds(5)) {
      Say(client::MissedStartText(m_lease, m_params, m_lease.as_of_ms));
      explained = true;
    } else if (SteadyClock::now() - last_said > std::chrono::seconds(5)) {
      Say("  still reserved after " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(waited).count()) +
          " s (the provider has until " + UtcText(m_lease.start_deadline_ms) + ")");
      last_said = SteadyClock::now();
    }
    Sleep(100);
  }
  m_timings.provider_noticed_ms = SinceStartMs();
}

void TaskRun::SendManifest(client::TenantClient& tenant) {
  const std::string target = "/leases/" + std::to_string(m_lease_id) + "/manifest";
  // The provider's view of the ledger may trail the start by a reconcile.
  const auto deadline = SteadyClock::now() + std::chrono::seconds(60);
  base::Result<client::TenantResponse> answer;
  for (;;) {
    answer = tenant.Post(target, m_canonical);
    const bool early = answer ? client::SubmitTooEarly(answer->status, answer->body)
                              : answer.error().code == ErrorCode::kUnavailable;
    if (!early || SteadyClock::now() >= deadline) break;
    if (g_cancel.load()) Interrupted(false);
    Sleep(100);
  }
  const json j = ParseJsonAnswer(Expect(std::move(answer), "POST " + target), "POST " + target);
  m_timings.manifest_accepted_ms = SinceStartMs();
  Say("  manifest accepted; the workload is " + ProviderText(j, "workload", "starting"));
}

void TaskRun::Upload(client::TenantClient& tenant) {
  if (!m_workdir) return;
  const std::string marker(client::kUploadDoneMarker);
  Phase("uploading", std::to_string(m_workdir->files.size()) + " file(s), " +
                         std::to_string(m_workdir->bytes) + " bytes to /work");
  try {
    for (const auto& f : m_workdir->files) {
      if (f.remote == marker) continue;  // run's own, sent last
      UploadOne(m_g, tenant, m_lease_id, f);
      if (g_cancel.load()) Interrupted(false);
    }
    const std::string target = client::UploadTarget(m_lease_id, marker, 0);
    Expect(tenant.Put(target, "", {{"Gpunet-Chunk-Sha256", client::Sha256Hex("")}}),
           "PUT " + target);
  } catch (const CommandFailed& f) {
    if (f.error.code != ErrorCode::kLimitExceeded) throw;
    // The job waits for the upload's end and would never run: close the lease.
    Say(client::UploadOverDiskText(m_workdir->bytes, f.error.message));
    Close("the upload did not fit");
    FailCommand(ErrorCode::kLimitExceeded,
                client::UploadOverDiskText(m_workdir->bytes, f.error.message));
  }
}

void TaskRun::SendSecrets(client::TenantClient& tenant) {
  if (m_secrets.empty()) return;
  std::string body = OrFail(client::SecretsBody(m_secrets));
  for (auto& [name, value] : m_secrets) sodium_memzero(value.data(), value.size());
  const std::string target = "/leases/" + std::to_string(m_lease_id) + "/secrets";
  auto answer = tenant.Post(target, body);
  sodium_memzero(body.data(), body.size());
  Expect(std::move(answer), "POST " + target);
  std::string names;
  for (const auto& [name, value] : m_secrets) names += " " + name;
  Say("  secrets set:" + names);
}

void TaskRun::WaitForSandbox(client::TenantClient& tenant) {
  Phase("starting", m_task.environment + " on lease " + std::to_string(m_lease_id));
  const std::string target = "/leases/" + std::to_string(m_lease_id);
  const auto began = SteadyClock::now();
  auto last_said = began;
  for (;;) {
    if (g_cancel.load()) Interrupted(false);
    const json j = ParseJsonAnswer(Expect(tenant.Get(target), "GET " + target), "GET " + target);
    std::string state = "none";
    if (j.contains("workload") && j["workload"].is_object())
      state = ProviderText(j["workload"], "state", "none");
    if (state == "running" || state == "exited") break;
    if (SteadyClock::now() - last_said > std::chrono::seconds(5)) {
      Say("  the sandbox is not running yet (step " + ProviderText(j, "step", "?") + ", workload " +
          state + ")");
      last_said = SteadyClock::now();
    }
    Sleep(100);
  }
  m_timings.sandbox_started_ms = SinceStartMs();
}

/// Follows both streams (client/lease_follow.h) until the workload ends, tops the
/// lease up by auto_topup's policy (client/topup.h) and warns before its funds end.
/// The workload's exit code (-1 when the provider gave none).
int TaskRun::StreamLogs(client::TenantClient& tenant) {
  Phase("running", "lease " + std::to_string(m_lease_id) + " (Ctrl-C: keep it or close it)");
  client::FollowOptions o;
  o.lease_id = m_lease_id;
  o.wait_ms = 1000;  // Ctrl-C is answered within a long-poll
  o.cancel = &g_cancel;
  o.stop_grace = {m_manifest.stop_grace_ms, true};
  client::TerminalSanitizer sanitizers[2];
  // The workload's stdout is run's stdout, unless -o json keeps stdout for the answer.
  std::ostream& out = m_g.Json() ? std::cerr : std::cout;
  const auto write = [&](int i, std::ostream& os, std::string_view bytes) {
    const std::string text = m_a.raw ? std::string(bytes) : sanitizers[i].Feed(bytes);
    os.write(text.data(), static_cast<std::streamsize>(text.size()));
    os.flush();
  };
  client::TopupTally topped_up;  // a timed-out deposit counts against the cap
  client::FollowCallbacks cb;
  cb.data = [&](client::LogStream stream, std::string_view bytes) {
    if (m_timings.first_output_ms == 0 && !bytes.empty())
      m_timings.first_output_ms = SinceStartMs();
    if (stream == client::LogStream::kStdout)
      write(0, out, bytes);
    else
      write(1, std::cerr, bytes);
  };
  cb.funds = [this](const client::FundsWarning& w) { Say("gpunet: " + w.text); };
  cb.notice = [this](std::string_view line) { Say("gpunet: " + std::string(line)); };
  cb.ledger = [&](const client::LeaseInfo& lease) {
    const uint64_t cap = m_task.auto_topup_cap_ugpn.value_or(0);
    if (cap == 0) return;
    ResolveTopups(m_g, topped_up);
    const auto d =
        client::DecideWatch({&lease, lease.as_of_ms, cap, topped_up.CountedUgpn(), false, false});
    if (d.action != client::WatchAction::kDeposit) return;
    Say("gpunet: auto_topup: " + d.why);
    const std::string failed =
        SendTopup(m_g, Sending(d.deposit_ugpn), m_lease_id, d.deposit_ugpn, topped_up);
    if (!failed.empty()) Say("gpunet: auto_topup failed: " + failed);
  };
  const client::FollowEnd end = OrFail(
      client::FollowLease(client::TenantFollowSource(tenant, m_g.NodeUrl(), m_lease_id), o, cb),
      "following lease " + std::to_string(m_lease_id));
  if (!m_a.raw) {
    out << sanitizers[0].Finish() << std::flush;
    std::cerr << sanitizers[1].Finish() << std::flush;
  }
  switch (end.kind) {
    case client::FollowEndKind::kWorkloadEnded:
      return end.exit_code.value_or(-1);
    case client::FollowEndKind::kCancelled:
      Interrupted(false);
    case client::FollowEndKind::kLeaseClosed:
      if (end.lease) m_closed = end.lease;
      Say(end.message);
      if (m_closed) Say(client::SettlementText(*m_closed));
      Finish(-1);
      FailCommand(ErrorCode::kConflict, "lease " + std::to_string(m_lease_id) +
                                            " closed before the job ended: " + end.message);
    case client::FollowEndKind::kUnreachable:
      for (const auto& line : client::ComeBackLines(m_task, m_lease_id)) Say(line);
      FailCommand(ErrorCode::kUnavailable, end.message);
  }
  return -1;
}

void TaskRun::DownloadOutputs(client::TenantClient& tenant) {
  if (m_task.outputs.empty()) return;
  const std::string dest = m_a.outputs.empty()
                               ? (fs::path("gpunet-out") / std::to_string(m_lease_id)).string()
                               : m_a.outputs;
  Phase("downloading outputs", "to " + dest);
  const std::string target = client::OutputsTarget(m_lease_id);
  const auto r = Expect(tenant.Get(target), "GET " + target);
  const auto answer = OrFail(client::ParseOutputsAnswer(r.body), "GET " + target);
  for (const auto& why : answer.skipped) Say("  skipped: " + why);
  const auto plan = client::PlanTaskOutputs(m_task);
  for (const auto& e : answer.entries) {
    if (e.type == "directory" || !client::OutputSelected(e.name, plan.selections)) continue;
    if (e.type != "file") {  // a link is listed, never followed; a fifo or socket has no bytes
      Say("  skipped: " + e.name + " is a " + (e.type == "symlink" ? "symbolic link" : e.type) +
          ", not a regular file; outputs bring back regular files only");
      continue;
    }
    // ParseOutputsAnswer checked the name: relative, no "..", so it stays beneath dest.
    const std::string to = (fs::path(dest) / e.name).string();
    DownloadOutput(tenant, m_lease_id, e.name, to, e.size);
    Say("  " + e.name + " -> " + to);
    m_downloaded.push_back({{"path", e.name}, {"to", to}, {"size", e.size}});
  }
  if (m_downloaded.empty())
    Say("  no outputs were written (the task lists " + std::to_string(m_task.outputs.size()) + ")");
}

void TaskRun::Close(const std::string& why) {
  Phase("closing", "lease " + std::to_string(m_lease_id) + (why.empty() ? "" : " (" + why + ")"));
  m_lease = OrFail(m_market.Lease(m_lease_id), "reading lease").value;
  if (m_lease.state != "closed")
    SendMsgs(m_g, Sending(0), {codec::MsgLeaseClose{m_lease_id, codec::CloseReason::kNormal}});
  m_closed = OrFail(m_market.Lease(m_lease_id), "reading lease").value;
  Say(client::SettlementText(*m_closed));
}

json TaskRun::TimingsJson() const {
  return {{"lease_committed_ms", m_timings.lease_committed_ms},
          {"provider_noticed_ms", m_timings.provider_noticed_ms},
          {"manifest_accepted_ms", m_timings.manifest_accepted_ms},
          {"sandbox_started_ms", m_timings.sandbox_started_ms},
          {"first_output_ms", m_timings.first_output_ms}};
}

void TaskRun::Finish(int exit_code) {
  if (m_a.timings) Say(client::TimingsLine(m_timings));
  if (m_g.Json()) {
    json j = {{"lease_id", m_lease_id},
              {"exit_code", exit_code},
              {"outputs", m_downloaded},
              {"timings", TimingsJson()}};
    if (m_closed)
      j["settlement"] = {{"deposited_ugpn", m_closed->deposited_ugpn},
                         {"paid_ugpn", m_closed->paid_ugpn},
                         {"refunded_ugpn", m_closed->refunded_ugpn},
                         {"penalty_ugpn", m_closed->penalty_ugpn},
                         {"end", m_closed->end}};
    PrintJson(j);
  }
}

void TaskRun::Interrupted(bool reserved) {
  g_cancel.store(false);
  std::string answer;
  char choice = 'c';
  std::cerr << std::endl;
  if (reserved)
    Say("lease " + std::to_string(m_lease_id) +
        " is still reserved: closing it before its start deadline pays the provider the "
        "reserved-close charge; keeping it waits for the start or the missed-start refund");
  for (int tries = 0; tries < 3; ++tries) {
    if (!ReadLineFromTty("keep the lease running (k) or close it now (c)? ", true, answer)) {
      Say("no terminal to ask on: closing the lease");
      break;
    }
    if (auto c = client::ParseKeepOrClose(answer)) {
      choice = *c;
      break;
    }
  }
  if (choice == 'k') {
    for (const auto& line : client::ComeBackLines(m_task, m_lease_id)) Say(line);
    Finish(-1);
    std::cout.flush();
    std::exit(0);
  }
  Close("interrupted");
  Finish(-1);
  std::cout.flush();
  std::exit(130);
}

void TaskRun::Main() {
  Prepare();
  ChooseOffer();
  ShowAndConfirm();
  CatchSigint();
  if (m_offer)
    LeaseFromOffer();
  else
    LeaseFromOrder();
  try {
    Leased();
  } catch (const CommandFailed&) {
    // Money is in the lease: never end without saying where it stands.
    if (!m_closed)
      if (auto now = m_market.Lease(m_lease_id); now && now->value.state != "closed")
        Say("lease " + std::to_string(m_lease_id) + " is still " + now->value.state +
            (now->value.state == "reserved"
                 ? ": wait for the provider or the missed-start refund, or close it (before the "
                   "start deadline that pays the reserved-close charge): gpunet lease close "
                 : ": it is billed until closed: gpunet lease close ") +
            std::to_string(m_lease_id) + " --from " + m_a.from);
    throw;
  }
}

void TaskRun::Leased() {
  WaitForStart();
  const LeaseContext c = ReadLease(m_g, std::to_string(m_lease_id));
  const crypto::KeyPair key = LoadKey(m_g, m_a.from);
  client::TenantClient tenant(ClientOptions(c), key);
  SendManifest(tenant);
  Upload(tenant);
  SendSecrets(tenant);
  WaitForSandbox(tenant);
  if (m_a.detach) {
    for (const auto& line : client::ComeBackLines(m_task, m_lease_id)) Say(line);
    Finish(-1);
    return;
  }
  if (m_task.Interactive()) {
    Say("an interactive machine (the task has no run): it waits for you");
    for (const auto& line : client::ComeBackLines(m_task, m_lease_id)) Say(line);
    Finish(-1);
    return;
  }
  const int exit_code = StreamLogs(tenant);
  Say("the job exited" + (exit_code >= 0 ? " with code " + std::to_string(exit_code) : ""));
  DownloadOutputs(tenant);
  if (m_task.close_on_exit)
    Close("");
  else
    for (const auto& line : client::ComeBackLines(m_task, m_lease_id)) Say(line);
  Finish(exit_code);
  if (exit_code != 0)
    FailCommand(ErrorCode::kInvalidArgument,
                "the job exited with code " + std::to_string(exit_code) +
                    " (its output is above; `gpunet lease logs " + std::to_string(m_lease_id) +
                    " --stderr` shows its stderr again)");
}

}  // namespace
}  // namespace run_cmd

void RegisterRunCommand(CLI::App& app, GlobalOptions& g) {
  auto a = std::make_shared<run_cmd::RunArgs>();
  auto* run = app.add_subcommand(
      "run", "Run a task file: lease GPUs, upload, stream the logs, bring back the outputs, close");
  run->add_option("TASK_YAML", a->file, "The task file (docs/task.md)")
      ->required()
      ->check(CLI::ExistingFile);
  run->add_option("--from", a->from,
                  "The tenant key that pays and signs (default: the keystore's only key)");
  run->add_flag("--yes,-y", a->yes, "Do not ask before money moves");
  run->add_flag("--detach", a->detach, "Return once the workload runs, printing how to come back");
  run->add_flag("--order", a->order,
                "Post an order for bids instead of leasing the cheapest fitting offer");
  run->add_option("--bid-window", a->bid_window,
                  "How long an order takes bids (default 10s, within the chain's limits)");
  run->add_flag("--raw", a->raw, "The workload's output byte for byte, control sequences too");
  run->add_option("--outputs", a->outputs, "Where the outputs go (default ./gpunet-out/LEASE/)");
  run->add_flag("--timings", a->timings,
                "Print when each phase was reached (ms since run began; -o json always has them)");
  run->add_option("--fee", a->fee, "Fee per tx (GPN or ugpn); default: the node's simulation");
  run->footer(
      "Examples:\n  gpunet run task.yaml --from tenant\n"
      "  gpunet run task.yaml --from tenant --yes --detach\n"
      "  gpunet run task.yaml --from tenant --order --bid-window 30s");
  run->callback([&g, a] { run_cmd::TaskRun(g, *a).Main(); });
}

}  // namespace gpunet::apps
