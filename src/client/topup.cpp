#include "client/topup.h"

#include <algorithm>
#include <ctime>

#include "client/amount.h"

namespace gpunet::client {

namespace {

std::string Gpn(uint64_t ugpn) {
  return FormatGpn(ugpn) + " GPN";
}

std::string DurationText(uint64_t ms) {
  const uint64_t s = ms / 1000;
  if (s >= 3600) return std::to_string(s / 3600) + " h " + std::to_string(s % 3600 / 60) + " min";
  if (s >= 60) return std::to_string(s / 60) + " min " + std::to_string(s % 60) + " s";
  return std::to_string(s) + " s";
}

/// The first warning's threshold: min(kFundsWarnMs, a tenth of the paid length).
uint64_t FirstThresholdMs(const LeaseInfo& lease) {
  const uint64_t length =
      lease.paid_until_ms > lease.started_ms ? lease.paid_until_ms - lease.started_ms : 0;
  return std::min(kFundsWarnMs, length / 10);
}

}  // namespace

std::string UtcTimeText(uint64_t time_ms) {
  const auto seconds = static_cast<std::time_t>(time_ms / 1000);
  std::tm utc{};
  if (::gmtime_r(&seconds, &utc) == nullptr) return std::to_string(time_ms) + " ms (unix)";
  char text[64];
  const size_t n = std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &utc);
  return n ? std::string(text, n) : std::to_string(time_ms) + " ms (unix)";
}

uint64_t FundsLeftMs(const LeaseInfo& lease, uint64_t now_ms) {
  if (lease.state != "started" || lease.paid_until_ms <= now_ms) return 0;
  return lease.paid_until_ms - now_ms;
}

int FundsWarningLevel(const LeaseInfo& lease, uint64_t now_ms, uint64_t grace_ms) {
  if (lease.state != "started" || lease.paid_until_ms == 0) return 0;
  // Counted to the SIGTERM, not to the end: a deposit after it comes too late.
  const uint64_t stop_ms = lease.paid_until_ms > grace_ms ? lease.paid_until_ms - grace_ms : 0;
  const uint64_t left = stop_ms > now_ms ? stop_ms - now_ms : 0;
  const uint64_t first = FirstThresholdMs(lease);
  if (left <= kFundsLastWarnMs && kFundsLastWarnMs < first) return 2;
  return left <= first ? 1 : 0;
}

std::optional<FundsWarning> FundsWarner::Check(const LeaseInfo& lease, uint64_t now_ms) {
  const int level = FundsWarningLevel(lease, now_ms, m_grace.ms);
  if (lease.paid_until_ms != m_paid_until_ms) {
    // A deposit moved the end: warn again once it comes near again.
    if (lease.paid_until_ms > m_paid_until_ms && level < m_warned) m_warned = level;
    m_paid_until_ms = lease.paid_until_ms;
  }
  if (level <= m_warned) return std::nullopt;
  m_warned = level;
  FundsWarning w;
  w.lease_id = lease.lease_id;
  w.paid_until_ms = lease.paid_until_ms;
  w.left_ms = FundsLeftMs(lease, now_ms);
  w.last = level == 2;
  w.text = FundsWarningText(lease, now_ms, w.last, m_grace);
  return w;
}

namespace {

/// "its stop grace (10 s)" or "its stop grace (at most 5 min; ...)".
std::string GraceText(StopGrace grace) {
  return "its stop grace (" + std::string(grace.exact ? "" : "at most ") + DurationText(grace.ms) +
         (grace.exact ? "" : ", the most a manifest may ask") + ")";
}

}  // namespace

std::string FundsWarningText(const LeaseInfo& lease, uint64_t now_ms, bool last, StopGrace grace) {
  const std::string id = std::to_string(lease.lease_id);
  const uint64_t stop_ms = lease.paid_until_ms > grace.ms ? lease.paid_until_ms - grace.ms : 0;
  std::string text = std::string(last ? "last warning: " : "") + "lease " + id +
                     ": its funds end at " + UtcTimeText(lease.paid_until_ms) + " (in " +
                     DurationText(FundsLeftMs(lease, now_ms)) + ")";
  if (now_ms >= stop_ms)
    return text + "; the workload " + (grace.exact ? "has" : "may have") + " had its SIGTERM, " +
           GraceText(grace) +
           " before the end: a deposit no longer saves it (the lease would bill on, without "
           "its workload, until closed), and the lease closes as expired";
  return text + "; deposit before " + UtcTimeText(stop_ms) + ": the workload gets SIGTERM " +
         GraceText(grace) +
         " before the end, and a later deposit does not save it. Deposit: gpunet lease "
         "deposit " +
         id + " GPN --from KEY";
}

std::optional<std::string> LateDepositText(const LeaseInfo& lease, uint64_t now_ms,
                                           StopGrace grace) {
  if (lease.state != "started" || lease.paid_until_ms == 0) return std::nullopt;
  if (now_ms + grace.ms < lease.paid_until_ms) return std::nullopt;
  const std::string id = std::to_string(lease.lease_id);
  return "lease " + id + "'s funds end at " + UtcTimeText(lease.paid_until_ms) + ", within " +
         GraceText(grace) + ": if the provider already sent the workload its funds-end SIGTERM " +
         "(`gpunet lease events " + id +
         "` shows funds_ending), this deposit does not save "
         "it: the workload is stopping, and the lease keeps billing, without it, until its "
         "new end or until you close it (gpunet lease close " +
         id + ")";
}

void TopupTally::Committed(uint64_t ugpn) {
  m_committed_ugpn += ugpn;
}

void TopupTally::Uncertain(std::string tx_hash, uint64_t ugpn) {
  m_uncertain.push_back({std::move(tx_hash), ugpn});
}

void TopupTally::Resolved(const std::string& tx_hash, uint16_t code) {
  const auto it = std::find_if(m_uncertain.begin(), m_uncertain.end(),
                               [&](const Pending& p) { return p.tx_hash == tx_hash; });
  if (it == m_uncertain.end()) return;
  if (code == 0) m_committed_ugpn += it->ugpn;
  m_uncertain.erase(it);
}

std::vector<std::string> TopupTally::UncertainTxs() const {
  std::vector<std::string> out;
  for (const auto& p : m_uncertain) out.push_back(p.tx_hash);
  return out;
}

uint64_t TopupTally::CountedUgpn() const {
  uint64_t n = m_committed_ugpn;
  for (const auto& p : m_uncertain) n += p.ugpn;
  return n;
}

WatchDecision DecideWatch(const WatchInput& in) {
  const LeaseInfo& lease = *in.lease;
  if (lease.state == "closed") return {WatchAction::kDone, 0, LeaseClosedText(lease)};
  if (in.workload_exited && in.close_on_exit)
    return {WatchAction::kClose, 0,
            "the workload exited: closing lease " + std::to_string(lease.lease_id) +
                " (close on exit); the unused deposit is refunded"};
  if (in.cap_ugpn == 0 || lease.state != "started" || lease.paid_until_ms <= in.now_ms ||
      lease.paid_until_ms - in.now_ms > kTopupWhenLeftMs)
    return {};
  const std::string id = std::to_string(lease.lease_id);
  const uint64_t cap_left = in.cap_ugpn > in.topped_up_ugpn ? in.cap_ugpn - in.topped_up_ugpn : 0;
  if (cap_left == 0)
    return {WatchAction::kWait, 0,
            "lease " + id + ": auto top-up reached its cap of " + Gpn(in.cap_ugpn) +
                "; the funds end at " + UtcTimeText(lease.paid_until_ms)};
  // An hour at the lease's rate (rate is per hour), never past the cap.
  uint64_t amount = std::min(lease.rate_ugpn_per_hour * (kTopupHoursMs / 3'600'000), cap_left);
  if (lease.max_hours != 0) {
    // The ledger refuses deposits past rate x max_hours in all.
    const unsigned __int128 most =
        static_cast<unsigned __int128>(lease.rate_ugpn_per_hour) * lease.max_hours;
    const uint64_t room = most > lease.deposited_ugpn
                              ? static_cast<uint64_t>(std::min<unsigned __int128>(
                                    most - lease.deposited_ugpn, UINT64_MAX))
                              : 0;
    amount = std::min(amount, room);
    if (amount == 0)
      return {WatchAction::kWait, 0,
              "lease " + id + ": its offer's max_hours (" + std::to_string(lease.max_hours) +
                  " h of deposits in all) allows no more; no top-up"};
  }
  if (amount == 0) return {};
  return {WatchAction::kDeposit, amount,
          "lease " + id + ": its funds end at " + UtcTimeText(lease.paid_until_ms) +
              "; auto top-up deposits " + Gpn(amount) + " (" + Gpn(in.topped_up_ugpn + amount) +
              " of its cap " + Gpn(in.cap_ugpn) + ")"};
}

std::string LeaseClosedText(const LeaseInfo& lease) {
  const std::string at = UtcTimeText(lease.closed_ms);
  std::string why;
  if (lease.end == "expired")
    why = "its funds ran out at " + UtcTimeText(lease.paid_until_ms);
  else if (lease.end == "tenant_closed")
    why = "the tenant closed it at " + at;
  else if (lease.end == "provider_closed")
    why = "the provider closed it at " + at;
  else if (lease.end == "no_manifest")
    why = "no manifest reached the provider before its deadline (closed at " + at + ")";
  else if (lease.end == "missed_start")
    why = "the provider never started it (closed at " + at + "; the deposit is refunded)";
  else if (lease.end == "missed_heartbeat")
    why = "its provider stopped sending heartbeats: a fault (closed at " + at + ")";
  else
    why = "closed at " + at;
  return "lease " + std::to_string(lease.lease_id) + " closed: " + why + " (" + lease.end + ")";
}

}  // namespace gpunet::client
