// The client's money decisions while a lease runs (issue 18 item 4; docs/cli.md
// "lease watch"): when to warn that the funds end, when to top the lease up and by
// how much, when to close it. Pure (no I/O, the time is an argument): `gpunet lease
// watch`, `gpunet logs -f` and `gpunet run` all decide with these, and the unit tests
// drive them.
//
// The ledger's rule (docs/market.md): a started lease is paid until
// paid_until_ms = started_ms + floor(deposited x 3,600,000 / rate) and closes as
// `expired` in the first block at or after it; a deposit moves paid_until (refused
// once it has passed, and beyond the offer's max_hours in all).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/manifest.h"
#include "client/market_answers.h"

namespace gpunet::client {

/// The first warning comes when the workload's funds-end SIGTERM (its stop grace
/// before the funds end) is within this (or within a tenth of the lease's paid
/// length, when that is shorter), the last one within kFundsLastWarnMs of it.
inline constexpr uint64_t kFundsWarnMs = 10ull * 60 * 1000;
inline constexpr uint64_t kFundsLastWarnMs = 60ull * 1000;
/// `auto_topup` deposits when the funds end within this (more than any stop grace,
/// kManifestStopGraceMsMax, so a top-up comes before the SIGTERM).
inline constexpr uint64_t kTopupWhenLeftMs = 10ull * 60 * 1000;
/// `auto_topup` deposits this much paid time at once (or what is left of the cap).
inline constexpr uint64_t kTopupHoursMs = 60ull * 60 * 1000;

/// The workload's SIGTERM grace as this client knows it: the provider sends SIGTERM
/// this long before the funds end (docs/provider.md "When the funds end"), and a
/// deposit after that does not save the workload. `gpunet run` knows its manifest's;
/// the other verbs assume the most a manifest may ask (exact = false).
struct StopGrace {
  uint64_t ms = kManifestStopGraceMsMax;
  bool exact = false;
};

/// How soon the funds of a started lease end: 0 when it is not started, closed, or
/// past paid_until.
uint64_t FundsLeftMs(const LeaseInfo& lease, uint64_t now_ms);

/// Whether `lease` (started) gets a warning now: 0 none, 1 the first (its funds-end
/// SIGTERM, paid_until - grace_ms, comes within min(kFundsWarnMs, a tenth of
/// started..paid_until)), 2 the last (within kFundsLastWarnMs, when that is under the
/// first threshold; otherwise there is only the first).
int FundsWarningLevel(const LeaseInfo& lease, uint64_t now_ms, uint64_t grace_ms);

struct FundsWarning {
  uint64_t lease_id = 0;
  uint64_t paid_until_ms = 0;
  uint64_t left_ms = 0;
  bool last = false;  ///< the one-minute warning
  std::string text;   ///< one line for people, with what to do
};

/// Warns once per level while paid_until stays; a deposit that moves paid_until past
/// the thresholds re-arms it. Holds only the levels already warned.
class FundsWarner {
 public:
  explicit FundsWarner(StopGrace grace = {}) : m_grace(grace) {}
  std::optional<FundsWarning> Check(const LeaseInfo& lease, uint64_t now_ms);

 private:
  StopGrace m_grace;
  uint64_t m_paid_until_ms = 0;
  int m_warned = 0;
};

/// "lease 7: its funds end at 2026-12-08 12:03:04 UTC (in 9 min 58 s); deposit before
/// 2026-12-08 12:02:54 UTC: the workload gets SIGTERM its stop grace (10 s) before
/// the end ...", or, past that time, that a deposit no longer saves the workload.
std::string FundsWarningText(const LeaseInfo& lease, uint64_t now_ms, bool last, StopGrace grace);

/// What `gpunet lease deposit` says before depositing into a started lease whose
/// funds-end SIGTERM may already have been sent (its funds end within the grace):
/// the deposit does not save the workload, it is stopping, and the lease bills on
/// until its new end or until closed. nullopt when the deposit comes in time.
std::optional<std::string> LateDepositText(const LeaseInfo& lease, uint64_t now_ms,
                                           StopGrace grace);

/// What auto top-up has deposited, for its cap: the deposits whose tx committed, and
/// those whose tx reached the node but was not seen to commit (the wait timed out: it
/// may still commit later), counted until the node shows it included and failed. So
/// the top-up never goes past its cap, even when a late tx commits after the next
/// one was sent; at worst it stops short of the cap when such a tx never commits.
class TopupTally {
 public:
  void Committed(uint64_t ugpn);
  /// A deposit of `ugpn` sent in tx `tx_hash` (hex) whose outcome is unknown.
  void Uncertain(std::string tx_hash, uint64_t ugpn);
  /// The node shows uncertain tx `tx_hash` included with `code` (0: it deposited).
  void Resolved(const std::string& tx_hash, uint16_t code);
  /// The txs still uncertain, to ask the node about.
  std::vector<std::string> UncertainTxs() const;
  /// Committed and uncertain: what counts against the cap (WatchInput::topped_up_ugpn).
  uint64_t CountedUgpn() const;
  /// Committed only: what the top-up is known to have deposited.
  uint64_t CommittedUgpn() const { return m_committed_ugpn; }

 private:
  struct Pending {
    std::string tx_hash;
    uint64_t ugpn = 0;
  };
  uint64_t m_committed_ugpn = 0;
  std::vector<Pending> m_uncertain;
};

/// What `lease watch` (and `gpunet run`) does next.
enum class WatchAction : uint8_t {
  kWait,     ///< nothing to do now
  kDeposit,  ///< MsgLeaseDeposit of deposit_ugpn
  kClose,    ///< MsgLeaseClose: the workload exited and close_on_exit is set
  kDone,     ///< the lease is closed: stop watching
};

struct WatchInput {
  const LeaseInfo* lease = nullptr;  ///< as the ledger has it now
  uint64_t now_ms = 0;
  uint64_t cap_ugpn = 0;        ///< auto_topup's cap in all (0: no top-up)
  uint64_t topped_up_ugpn = 0;  ///< what counts against the cap (TopupTally::CountedUgpn)
  bool close_on_exit = false;
  bool workload_exited = false;  ///< the provider says the workload ended by itself
};

struct WatchDecision {
  WatchAction action = WatchAction::kWait;
  uint64_t deposit_ugpn = 0;
  std::string why;  ///< one line for people ("" for a plain kWait)
};

/// The one next step. A top-up is due when a started lease's funds end within
/// kTopupWhenLeftMs and have not ended yet; it is one hour at the lease's rate, cut to
/// what is left of the cap and to what the offer's max_hours still allows, and
/// nothing when either is used up (why says which).
WatchDecision DecideWatch(const WatchInput& in);

/// "lease 7 closed: its funds ran out at 2026-12-08 12:03:04 UTC (expired)": why a
/// closed lease closed, from the ledger's end reason, for people.
std::string LeaseClosedText(const LeaseInfo& lease);

/// "2026-12-08 12:03:04 UTC".
std::string UtcTimeText(uint64_t time_ms);

}  // namespace gpunet::client
