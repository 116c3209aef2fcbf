#include "consensus/bft_proposer.h"

#include <algorithm>

#include "base/check.h"
#include "base/limits.h"
#include "codec/reader.h"
#include "codec/writer.h"
#include "crypto/address.h"

namespace gpunet::consensus {

namespace {
// CometBFT PriorityWindowSizeFactor: priorities stay within 2 * total power.
constexpr int64_t kPriorityWindowFactor = 2;

// Floor division (Go's big.Int Div is Euclidean, i.e. floor for a positive divisor).
int64_t FloorDiv(__int128 a, int64_t b) {
  GPUNET_CHECK(b > 0);
  __int128 q = a / b;
  if ((a % b) != 0 && a < 0) --q;
  return static_cast<int64_t>(q);
}
}  // namespace

ProposerSchedule::ProposerSchedule(const codec::ValidatorSet& validators) {
  GPUNET_CHECK(!validators.validators.empty());
  for (const auto& v : validators.validators) {
    GPUNET_CHECK(v.power > 0);
    GPUNET_CHECK(v.power <= base::limits::kTotalVotingPowerMax - m_total_power);
    m_total_power += v.power;
    m_entries.push_back({crypto::AddressOf(v.public_key), v.public_key, v.power, 0});
  }
  std::sort(m_entries.begin(), m_entries.end(),
            [](const ProposerEntry& a, const ProposerEntry& b) { return a.address < b.address; });
  Increment(1);  // CometBFT NewValidatorSet
}

ProposerSchedule ProposerSchedule::AtHeight(const codec::ValidatorSet& validators,
                                            uint64_t height) {
  GPUNET_CHECK(height >= 1);
  ProposerSchedule s(validators);
  // One increment per height, each with its own rescale/centre, as CometBFT's
  // state.NextValidators = Validators.CopyIncrementProposerPriority(1) does.
  for (uint64_t h = 1; h < height; ++h) s.Increment(1);
  return s;
}

void ProposerSchedule::RescaleAndCentre() {
  // RescalePriorities(2 * total): divide all by ceil(diff / window) when too spread.
  const int64_t window = kPriorityWindowFactor * static_cast<int64_t>(m_total_power);
  int64_t max = m_entries.front().priority, min = max;
  for (const auto& e : m_entries) {
    max = std::max(max, e.priority);
    min = std::min(min, e.priority);
  }
  const int64_t diff = max - min;  // |priorities| stay far below INT64_MAX / 2
  if (diff > window) {
    const int64_t ratio = (diff + window - 1) / window;
    for (auto& e : m_entries) e.priority /= ratio;  // truncation toward zero, as Go
  }
  // shiftByAvgProposerPriority: subtract the floor average.
  __int128 sum = 0;
  for (const auto& e : m_entries) sum += e.priority;
  const int64_t avg = FloorDiv(sum, static_cast<int64_t>(m_entries.size()));
  for (auto& e : m_entries) e.priority -= avg;
}

void ProposerSchedule::IncrementOnce() {
  size_t best = 0;
  for (size_t i = 0; i < m_entries.size(); ++i) {
    m_entries[i].priority += static_cast<int64_t>(m_entries[i].power);
    // Highest priority wins; ties go to the smaller address (entries are in address
    // order, so the first one seen).
    if (m_entries[i].priority > m_entries[best].priority) best = i;
  }
  m_entries[best].priority -= static_cast<int64_t>(m_total_power);
  m_proposer = best;
}

void ProposerSchedule::Increment(uint64_t times) {
  GPUNET_CHECK(times >= 1);
  RescaleAndCentre();
  for (uint64_t i = 0; i < times; ++i) IncrementOnce();
}

const ProposerEntry& ProposerSchedule::Proposer() const {
  GPUNET_CHECK(m_proposer < m_entries.size());
  return m_entries[m_proposer];
}

ProposerSchedule ProposerSchedule::Advanced(uint64_t rounds) const {
  ProposerSchedule copy = *this;
  if (rounds > 0) copy.Increment(rounds);
  return copy;
}

std::vector<codec::Address> ProposerSchedule::ProposersForRounds(uint64_t rounds) const {
  std::vector<codec::Address> out;
  if (rounds == 0) return out;
  out.reserve(rounds);
  out.push_back(Proposer().address);
  // Increment(r) is one rescale/centre followed by r single steps, so round r's
  // proposer is the r-th single step after one rescale of this schedule.
  ProposerSchedule walk = *this;
  walk.RescaleAndCentre();
  for (uint64_t r = 1; r < rounds; ++r) {
    walk.IncrementOnce();
    out.push_back(walk.Proposer().address);
  }
  return out;
}

ProposerSchedule ProposerSchedule::WithValidators(const codec::ValidatorSet& validators) const {
  ProposerSchedule next;
  for (const auto& v : validators.validators) {
    GPUNET_CHECK(v.power > 0);
    GPUNET_CHECK(v.power <= base::limits::kTotalVotingPowerMax - next.m_total_power);
    next.m_total_power += v.power;
    next.m_entries.push_back({crypto::AddressOf(v.public_key), v.public_key, v.power, 0});
  }
  GPUNET_CHECK(!next.m_entries.empty());
  std::sort(next.m_entries.begin(), next.m_entries.end(),
            [](const ProposerEntry& a, const ProposerEntry& b) { return a.address < b.address; });
  const int64_t newcomer = -static_cast<int64_t>(next.m_total_power + next.m_total_power / 8);
  for (auto& e : next.m_entries) {
    auto old = std::find_if(m_entries.begin(), m_entries.end(),
                            [&](const ProposerEntry& o) { return o.address == e.address; });
    e.priority = old != m_entries.end() ? old->priority : newcomer;
  }
  next.RescaleAndCentre();
  next.m_proposer = 0;
  for (size_t i = 1; i < next.m_entries.size(); ++i)
    if (next.m_entries[i].priority > next.m_entries[next.m_proposer].priority) next.m_proposer = i;
  return next;
}

base::Bytes ProposerSchedule::Encode() const {
  codec::Writer w;
  w.Count(m_entries.size());
  for (const auto& e : m_entries) {
    w.Fixed(e.public_key);
    w.U64(e.power);
    w.U64(static_cast<uint64_t>(e.priority));
  }
  w.U32(static_cast<uint32_t>(m_proposer));
  return std::move(w).Take();
}

base::Result<ProposerSchedule> ProposerSchedule::Decode(base::ByteSpan bytes) {
  codec::Reader r(bytes, "proposer_schedule");
  ProposerSchedule s;
  auto n = r.Count("entries", base::limits::kValidatorsMax, "kValidatorsMax");
  if (!n) return std::unexpected(n.error());
  if (*n == 0) return r.Error(base::ErrorCode::kInvalidArgument, "entries", "empty schedule");
  // |priority| is bounded by a few times the total power after rescaling; anything
  // bigger did not come from Encode.
  const int64_t bound = 3 * static_cast<int64_t>(base::limits::kTotalVotingPowerMax);
  for (size_t i = 0; i < *n; ++i) {
    ProposerEntry e;
    auto pk = r.Fixed<32>("public_key");
    if (!pk) return std::unexpected(pk.error());
    auto power = r.U64("power");
    if (!power) return std::unexpected(power.error());
    auto prio = r.U64("priority");
    if (!prio) return std::unexpected(prio.error());
    e.public_key = *pk;
    e.address = crypto::AddressOf(*pk);
    e.power = *power;
    e.priority = static_cast<int64_t>(*prio);
    if (e.power == 0 || e.power > base::limits::kTotalVotingPowerMax - s.m_total_power)
      return r.Error(base::ErrorCode::kLimitExceeded, "power", "zero or total over the limit");
    if (e.priority > bound || e.priority < -bound)
      return r.Error(base::ErrorCode::kCorrupt, "priority", "out of range");
    if (!s.m_entries.empty() && !(s.m_entries.back().address < e.address))
      return r.Error(base::ErrorCode::kNonCanonical, "entries", "not in ascending address order");
    s.m_total_power += e.power;
    s.m_entries.push_back(e);
  }
  auto proposer = r.U32("proposer");
  if (!proposer) return std::unexpected(proposer.error());
  if (*proposer >= s.m_entries.size())
    return r.Error(base::ErrorCode::kCorrupt, "proposer", "index out of range");
  s.m_proposer = *proposer;
  GPUNET_TRY(r.Finish());
  return s;
}

}  // namespace gpunet::consensus
