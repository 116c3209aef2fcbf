#include "provider/chain_watch.h"

#include <algorithm>

#include "base/check.h"
#include "client/market_tx.h"
#include "client/tx_builder.h"
#include "codec/encoding.h"
#include "crypto/address.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;

namespace {
constexpr uint32_t kLeasePageMax = 1000;
constexpr int64_t kCommitWaitMs = 20'000;
constexpr int64_t kEventWaitMs = 500;
}  // namespace

namespace {
/// The "_sent" crash point of a tx (engine.h kCrashPoints), by its first msg.
std::pair<std::string_view, uint64_t> SentPointOf(const std::vector<codec::Msg>& msgs) {
  if (std::holds_alternative<codec::MsgHeartbeat>(msgs[0])) return {"heartbeat_sent", 0};
  if (const auto* w = std::get_if<codec::MsgLeaseWithdraw>(&msgs[0]))
    return {"withdraw_sent", w->lease_id};
  if (const auto* s = std::get_if<codec::MsgLeaseStarted>(&msgs[0]))
    return {"started_sent", s->lease_id};
  return {"", 0};
}
}  // namespace

void ChainClient::SetCrashAfterSubmit(
    std::string point, std::function<void(std::string_view point, uint64_t lease_id)> crash) {
  m_crash_point = std::move(point);
  m_crash = std::move(crash);
}

ChainClient::ChainClient(std::string node_url, codec::Address provider, const crypto::KeyPair& key)
    : m_url(std::move(node_url)), m_provider(provider), m_key(key) {}

client::HttpClientOptions ChainClient::Options() const {
  client::HttpClientOptions o;
  o.connect_timeout_ms = 2'000;
  o.request_timeout_ms = 10'000;
  return o;
}

base::Result<ChainView> ChainClient::Fetch(const std::vector<uint64_t>& also) {
  client::NodeClient node(m_url, Options());
  client::MarketClient market(m_url, Options());
  client::NodeStatusInfo status;
  GPUNET_TRY_ASSIGN(status, node.Status());
  ChainView view;
  view.height = status.latest_height;
  view.time_ms = status.latest_time_ms;
  view.params = status.market;
  client::MarketListQuery q;
  q.limit = kLeasePageMax;
  q.provider = crypto::AddressToString(m_provider);
  for (size_t page = 0; page < client::MarketClient::kListPagesMax; ++page) {
    client::MarketPage<client::LeaseInfo> p;
    GPUNET_TRY_ASSIGN(p, market.Leases(q));
    for (auto& l : p.entries) view.leases.emplace(l.lease_id, std::move(l));
    if (!p.next) break;
    q.after = p.next;
  }
  for (uint64_t id : also) {
    if (view.leases.contains(id)) continue;
    auto l = market.Lease(id);
    if (!l) {
      if (l.error().code == ErrorCode::kNotFound) continue;
      return std::unexpected(l.error());
    }
    view.leases.emplace(id, std::move(l->value));
  }
  return view;
}

base::Result<TxOutcome> ChainClient::Send(const std::vector<codec::Msg>& msgs) {
  GPUNET_CHECK(!msgs.empty());
  client::NodeClient node(m_url, Options());
  client::NodeStatusInfo status;
  GPUNET_TRY_ASSIGN(status, node.Status());
  client::AccountInfo account;
  GPUNET_TRY_ASSIGN(account, node.GetAccount(crypto::AddressOf(m_key.Public()), false));
  uint64_t fee = client::kDefaultTransferFeeUgpn;
  if (status.fees) {
    GPUNET_TRY_ASSIGN(fee, client::MarketTxFee(*status.fees, status.chain_id, msgs, ""));
  }
  if (status.fees && status.gas) {
    // Simulated first: a tx that would fail (a start the ledger already shows) comes
    // back as its code, and nothing is paid for it.
    const codec::Tx unsigned_tx{
        codec::TxBody{status.chain_id, m_key.Public(), account.nonce, fee, 0, msgs, ""},
        codec::Signature{}};
    client::SimulateResult sim;
    GPUNET_TRY_ASSIGN(sim, node.Simulate(unsigned_tx));
    if (sim.code != 0) return TxOutcome{sim.code, sim.code_name, sim.message, status.latest_height};
    auto with_gas = client::FeeWithGasMargin(
        *status.fees, *status.gas, codec::EncodeTx(unsigned_tx).size(), msgs.size(), sim.gas_used);
    if (!with_gas) return Fail(ErrorCode::kOverflow, "the fee does not fit in 64 bits");
    fee = std::max(fee, *with_gas);
  }
  codec::Tx tx;
  GPUNET_TRY_ASSIGN(tx,
                    client::BuildMarketTx(m_key, status.chain_id, account.nonce, msgs, fee, 0, ""));
  if (auto [point, lease_id] = SentPointOf(msgs); m_crash && point == m_crash_point) {
    GPUNET_TRY(node.SubmitTx(tx, false, 0));
    m_crash(point, lease_id);
    return Fail(ErrorCode::kUnavailable, std::string(point) + ": its commit was not awaited");
  }
  client::SubmitResult r;
  GPUNET_TRY_ASSIGN(r, node.SubmitTx(tx, true, kCommitWaitMs));
  return TxOutcome{r.code, r.code_name, r.message, r.height};
}

ChainWatch::ChainWatch(Options options, std::function<void()> wake,
                       std::function<void(std::string_view)> log)
    : m_options(std::move(options)), m_wake(std::move(wake)), m_log(std::move(log)) {}

ChainWatch::~ChainWatch() {
  Stop();
}

void ChainWatch::Start() {
  GPUNET_CHECK(!m_thread.joinable());
  m_thread = std::thread([this] { Run(); });
}

void ChainWatch::Stop() {
  {
    std::lock_guard lock(m_mu);
    m_stop = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

bool ChainWatch::SleepMs(int64_t ms) {
  std::unique_lock lock(m_mu);
  m_cv.wait_for(lock, std::chrono::milliseconds(ms), [this] { return m_stop.load(); });
  return !m_stop.load();
}

void ChainWatch::Run() {
  int64_t backoff_ms = m_options.backoff_min_ms;
  bool ever = false;
  bool said_down = false;
  while (!m_stop) {
    auto ws = client::WsSubscriber::Connect(m_options.node_url, {"blocks"});
    if (!ws) {
      if (!said_down)
        m_log("block watch: cannot subscribe, retrying with backoff: " + ws.error().message);
      said_down = true;
      if (!SleepMs(backoff_ms)) return;
      backoff_ms = std::min(backoff_ms * 2, m_options.backoff_max_ms);
      continue;
    }
    if (ever) ++m_reconnects;
    if (said_down || !ever) m_log("block watch: subscribed to blocks at " + m_options.node_url);
    ever = true;
    said_down = false;
    m_connected = true;
    backoff_ms = m_options.backoff_min_ms;
    m_wake();  // the catch-up: the reconcile re-reads the provider's leases
    while (!m_stop) {
      auto ev = (*ws)->Next(kEventWaitMs);
      if (ev) {
        m_wake();
        continue;
      }
      if (ev.error().code == ErrorCode::kTimeout) continue;
      m_log("block watch: connection lost, reconnecting: " + ev.error().message);
      said_down = true;
      break;
    }
    m_connected = false;
  }
}

}  // namespace gpunet::provider
