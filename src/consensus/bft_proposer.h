// Proposer rotation of the BFT engine: CometBFT's proposer-priority algorithm
// (types/validator_set.go: IncrementProposerPriority, RescalePriorities,
// shiftByAvgProposerPriority), so each validator proposes in proportion to its
// stake, deterministically, with integer math only.
//
// One increment: every priority += power; the highest priority (ties: the smaller
// address) is the proposer and pays total power back. Before a batch of increments
// the priorities are rescaled so max - min <= 2 * total power (the window), then
// centred on their floor-average. Like CometBFT, a fresh schedule is the set with
// all priorities 0 and ONE increment applied; height H round 0 is that plus H - 1
// increments; round r of a height adds r more (cumulative over rounds, never carried
// into the next height: height H+1 = height H's round-0 schedule + 1).
#pragma once

#include <cstdint>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "codec/types.h"

namespace gpunet::consensus {

/// One validator's place in the rotation.
struct ProposerEntry {
  codec::Address address;
  codec::PublicKey public_key;
  uint64_t power = 0;
  int64_t priority = 0;
  bool operator==(const ProposerEntry&) const = default;
};

/// The priorities of one validator set at one (height, round). A value type: copy it
/// to look ahead (ProposerAt), persist it with Encode if a driver wants to avoid
/// AtHeight's O(height * validators) recomputation on restart.
class ProposerSchedule {
 public:
  /// CometBFT NewValidatorSet: priorities 0, then one increment. The set must be
  /// canonical and non-empty (checked: a bug otherwise).
  explicit ProposerSchedule(const codec::ValidatorSet& validators);

  /// The schedule of round 0 of `height` (>= 1) for a set that has not changed since
  /// genesis: genesis schedule + (height - 1) increments.
  static ProposerSchedule AtHeight(const codec::ValidatorSet& validators, uint64_t height);

  /// Applies `times` increments (CometBFT IncrementProposerPriority(times)):
  /// rescale, centre, then `times` single steps. times >= 1.
  void Increment(uint64_t times);

  /// The current proposer (the one chosen by the last increment).
  const ProposerEntry& Proposer() const;
  /// A copy advanced by `rounds` (the proposer of round `rounds` when this is round 0).
  ProposerSchedule Advanced(uint64_t rounds) const;

  /// Proposers of rounds 0..rounds-1 when this is round 0: element r equals
  /// Advanced(r).Proposer().address, computed in O(rounds * validators) in total.
  std::vector<codec::Address> ProposersForRounds(uint64_t rounds) const;

  /// Entries in address order.
  const std::vector<ProposerEntry>& Entries() const { return m_entries; }
  uint64_t TotalPower() const { return m_total_power; }

  /// Carries priorities over to a new set (CometBFT UpdateWithChangeSet, simplified):
  /// members that stay keep their priority, new members start at -(total + total/8),
  /// then rescale and centre. The result has NOT been incremented.
  ProposerSchedule WithValidators(const codec::ValidatorSet& validators) const;

  /// Canonical encoding: count, then per entry address, key, power, priority.
  base::Bytes Encode() const;
  static base::Result<ProposerSchedule> Decode(base::ByteSpan bytes);

  bool operator==(const ProposerSchedule&) const = default;

 private:
  ProposerSchedule() = default;
  void RescaleAndCentre();
  void IncrementOnce();

  std::vector<ProposerEntry> m_entries;  // ascending address
  uint64_t m_total_power = 0;
  size_t m_proposer = 0;  // index into m_entries
};

}  // namespace gpunet::consensus
