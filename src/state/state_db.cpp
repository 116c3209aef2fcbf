#include "state/state_db.h"

#include <algorithm>

#include "base/check.h"
#include "codec/encoding.h"
#include "state/keyspace.h"

namespace gpunet::state {

base::Error OutOfGasError() {
  return base::Error{base::ErrorCode::kLimitExceeded, "out of gas"};
}

bool StateDb::MeterGet(base::ByteSpan key, const std::optional<base::Bytes>& value,
                       GasMeter::Source source) const {
  if (m_meter == nullptr) {
    ++m_unmetered_ops;
    return true;
  }
  return m_meter->ChargeGet(key.size(), value ? value->size() : 0, source);
}

base::Result<std::optional<base::Bytes>> StateDb::Get(base::ByteSpan key) const {
  if (m_meter != nullptr && m_meter->Exhausted()) return std::unexpected(OutOfGasError());
  auto it = m_pending.find(key);
  if (it != m_pending.end()) {
    if (!MeterGet(key, it->second, GasMeter::Source::kPending))
      return std::unexpected(OutOfGasError());
    return it->second;
  }
  auto stored = m_committed->Get(key);
  if (stored && !MeterGet(key, *stored, GasMeter::Source::kStore))
    return std::unexpected(OutOfGasError());
  return stored;
}

void StateDb::Record(const base::Bytes& key) {
  if (m_checkpoints.empty()) return;  // nothing can roll this write back
  auto it = m_pending.find(key);
  if (it == m_pending.end())
    m_journal.push_back(Undo{key, std::nullopt});
  else
    m_journal.push_back(Undo{key, it->second});
}

base::Status StateDb::Scan(base::ByteSpan begin, base::ByteSpan end, const KvVisitor& visit) const {
  if (m_meter != nullptr && !m_meter->ChargeScan()) return std::unexpected(OutOfGasError());
  if (m_meter == nullptr) ++m_unmetered_ops;
  bool out_of_gas = false;
  // Every entry the merge steps on costs a step, whether the visitor sees it or it is
  // a delete of this block that hides a committed key.
  auto step = [&](base::ByteSpan key, size_t value_bytes, GasMeter::Source source) {
    if (m_meter == nullptr) {
      ++m_unmetered_ops;
      return true;
    }
    if (m_meter->ChargeScanStep(key.size(), value_bytes, source)) return true;
    out_of_gas = true;
    return false;
  };
  const base::Bytes begin_key(begin.begin(), begin.end());
  auto pending = m_pending.lower_bound(begin_key);
  auto in_range = [&](const base::Bytes& key) {
    return end.empty() ||
           std::lexicographical_compare(key.begin(), key.end(), end.begin(), end.end());
  };
  bool stopped = false;
  // Emits pending keys below `limit` (all when null); false once the visitor stops.
  auto drain = [&](const base::ByteSpan* limit) {
    while (pending != m_pending.end() && in_range(pending->first) &&
           (limit == nullptr ||
            std::lexicographical_compare(pending->first.begin(), pending->first.end(),
                                         limit->begin(), limit->end()))) {
      if (!step(pending->first, pending->second ? pending->second->size() : 0,
                GasMeter::Source::kPending))
        return false;
      if (pending->second && !visit(pending->first, *pending->second)) return false;
      ++pending;
    }
    return true;
  };
  if (m_meter != nullptr) m_meter->CountStoreScan();
  GPUNET_TRY(m_committed->Scan(begin, end, [&](base::ByteSpan key, base::ByteSpan value) {
    // The store has read this entry whatever happens next, so it is paid first,
    // even when a pending entry below it is where the visitor stops.
    if (!step(key, value.size(), GasMeter::Source::kStore) || !drain(&key)) {
      stopped = true;
      return false;
    }
    if (pending != m_pending.end() &&
        std::equal(key.begin(), key.end(), pending->first.begin(), pending->first.end())) {
      const auto& overlay = pending->second;
      ++pending;
      if (!overlay) return true;  // deleted in this block
      if (!visit(key, *overlay)) {
        stopped = true;
        return false;
      }
      return true;
    }
    if (!visit(key, value)) {
      stopped = true;
      return false;
    }
    return true;
  }));
  if (!stopped) drain(nullptr);
  if (out_of_gas) return std::unexpected(OutOfGasError());
  return base::Ok();
}

void StateDb::Put(base::Bytes key, base::Bytes value) {
  // Applied even when the meter runs out here: the pipeline finds it exhausted
  // after the message and rolls the message back.
  if (m_meter != nullptr)
    (void)m_meter->ChargePut(key.size(), value.size());
  else
    ++m_unmetered_ops;
  Record(key);
  m_pending[std::move(key)] = std::move(value);
}

void StateDb::Delete(base::Bytes key) {
  if (m_meter != nullptr)
    (void)m_meter->ChargeDelete(key.size());
  else
    ++m_unmetered_ops;
  Record(key);
  m_pending[std::move(key)] = std::nullopt;
}

size_t StateDb::Checkpoint() {
  m_checkpoints.push_back(m_journal.size());
  return m_journal.size();
}

void StateDb::Release(size_t checkpoint) {
  while (!m_checkpoints.empty() && m_checkpoints.back() >= checkpoint) m_checkpoints.pop_back();
  if (m_checkpoints.empty()) m_journal.clear();
}

void StateDb::RevertTo(size_t checkpoint) {
  GPUNET_CHECK(checkpoint <= m_journal.size());
  while (!m_checkpoints.empty() && m_checkpoints.back() > checkpoint) m_checkpoints.pop_back();
  while (m_journal.size() > checkpoint) {
    Undo& undo = m_journal.back();
    if (undo.previous.has_value())
      m_pending[undo.key] = std::move(*undo.previous);
    else
      m_pending.erase(undo.key);
    m_journal.pop_back();
  }
}

base::Status StateDb::ForEachChange(const ChangeVisitor& visit) const {
  for (const auto& [key, after] : m_pending) {
    GPUNET_TRY_ASSIGN(auto before, m_committed->Get(key));
    if (before == after) continue;  // written back to what it was
    if (!visit(key, before, after)) break;
  }
  return base::Ok();
}

WriteBatch StateDb::Changes() const {
  WriteBatch batch;
  for (const auto& [key, value] : m_pending) {
    if (value.has_value())
      batch.Put(key, *value);
    else
      batch.Delete(key);
  }
  return batch;
}

WriteBatch StateDb::TakeChanges() {
  WriteBatch batch(std::move(m_pending));
  Clear();
  return batch;
}

void StateDb::Clear() {
  m_pending.clear();
  m_journal.clear();
  m_checkpoints.clear();
}

base::Result<codec::Account> StateDb::GetAccount(const codec::Address& address) const {
  auto stored = Get(keyspace::AccountKey(address));
  if (!stored) return std::unexpected(stored.error());
  if (!stored->has_value()) return codec::Account{};
  auto account = codec::DecodeAccount(**stored);
  if (!account)
    return base::Wrap(account.error(), "stored account " + crypto::AddressToString(address));
  return *account;
}

void StateDb::PutAccount(const codec::Address& address, const codec::Account& account) {
  Put(keyspace::AccountKey(address), codec::EncodeAccount(account));
}

}  // namespace gpunet::state
