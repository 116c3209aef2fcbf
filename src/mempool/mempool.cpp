#include "mempool/mempool.h"

#include <algorithm>
#include <queue>
#include <tuple>

#include "base/check.h"
#include "codec/hashes.h"
#include "crypto/address.h"

namespace gpunet::mempool {

using codec::TxCode;

namespace {

AddResult Reject(AddResult r, TxCode code, std::string message) {
  r.code = code;
  r.message = std::move(message);
  return r;
}

}  // namespace

Mempool::Mempool(ledger::Application& app, MempoolOptions options)
    : m_app(app), m_options(options) {
  GPUNET_CHECK(m_options.txs_max > 0 && m_options.bytes_max > 0 && m_options.sender_txs_max > 0);
  m_height = m_app.Info().last_height;  // a restarted node expires against its real height
}

// Over 70 lines: the admission checks and the eviction plan run under one lock and must
// all pass before anything changes (a refusal leaves the pool as it was).
// NOLINTNEXTLINE(readability-function-size)
AddResult Mempool::Add(base::ByteSpan tx_bytes) {
  AddResult r;
  // Signature verification and state checks outside the lock: they are the cost.
  r.check = m_app.CheckTx(tx_bytes, ledger::CheckTxMode::kNew);
  r.tx_hash = r.check.tx_hash;
  if (!r.check.Ok()) {
    std::string message =
        r.check.message.empty() ? std::string(codec::TxCodeMessage(r.check.code)) : r.check.message;
    const TxCode code = r.check.code;  // read before r is moved into Reject
    return Reject(std::move(r), code, std::move(message));
  }
  const ledger::CheckTxResponse& c = r.check;
  // The entry's copy of the bytes is made before the lock, which admission
  // threads and the engine contend on.
  Entry e;
  e.bytes.assign(tx_bytes.begin(), tx_bytes.end());
  GPUNET_CHECK(c.checked != nullptr);  // set by every CheckTx that passed
  e.checked = c.checked;
  e.hash = c.tx_hash;
  e.nonce = c.nonce;
  e.fee_ugpn = c.fee_ugpn;
  e.timeout_height = c.timeout_height;

  base::MutexLock lock(m_mutex);
  if (m_by_hash.contains(c.tx_hash))
    return Reject(std::move(r), TxCode::kAlreadyKnown,
                  "this transaction is already pending; wait for it to be included");
  if (c.nonce < c.account_nonce)  // CheckTx already refuses this; keep the pool safe anyway
    return Reject(std::move(r), TxCode::kStaleNonce,
                  "nonce " + std::to_string(c.nonce) +
                      " was already used; the account's next nonce is " +
                      std::to_string(c.account_nonce));
  if (c.nonce - c.account_nonce > m_options.nonce_gap_max)
    return Reject(std::move(r), TxCode::kNonceGapTooLarge,
                  "nonce " + std::to_string(c.nonce) + " is more than " +
                      std::to_string(m_options.nonce_gap_max) +
                      " ahead of the account's next nonce " + std::to_string(c.account_nonce) +
                      "; send the missing nonces first");
  if (c.timeout_height != 0 && c.timeout_height <= m_height)
    return Reject(std::move(r), TxCode::kExpired,
                  "timeout_height " + std::to_string(c.timeout_height) +
                      " has passed (last block " + std::to_string(m_height) + "); sign it again");

  // Nothing changes until every check has passed: a refused tx leaves no trace,
  // not even an empty queue for its sender.
  static const Sender kNoSender;
  const auto found = m_senders.find(c.sender);
  const Sender& sender = found != m_senders.end() ? found->second : kNoSender;
  auto same = sender.queue.find(c.nonce);
  if (same != sender.queue.end()) {
    const uint64_t old_fee = same->second.fee_ugpn;
    // fee >= old * (100 + bump) / 100, without overflow: compare in 128 bits.
    const unsigned __int128 need =
        (static_cast<unsigned __int128>(old_fee) * (100 + m_options.rbf_bump_percent) + 99) / 100;
    if (static_cast<unsigned __int128>(c.fee_ugpn) < need || c.fee_ugpn <= old_fee)
      return Reject(std::move(r), TxCode::kReplacementUnderpriced,
                    "a tx with nonce " + std::to_string(c.nonce) + " is already pending with fee " +
                        std::to_string(old_fee) + " ugpn; a replacement needs at least " +
                        std::to_string(static_cast<uint64_t>(need)) + " ugpn (+" +
                        std::to_string(m_options.rbf_bump_percent) + "%)");
  } else if (sender.queue.size() >= m_options.sender_txs_max) {
    return Reject(std::move(r), TxCode::kSenderLimitReached,
                  "this sender already has " + std::to_string(sender.queue.size()) +
                      " pending txs (the limit); wait for some to be included");
  }

  // The sender must be able to pay every pending fee in front of and including this one.
  unsigned __int128 fees = c.fee_ugpn;
  for (const auto& [nonce, pending] : sender.queue)
    if (nonce != c.nonce) fees += pending.fee_ugpn;
  if (fees > c.account_balance_ugpn)
    return Reject(std::move(r), TxCode::kInsufficientFeeFunds,
                  "the balance " + std::to_string(c.account_balance_ugpn) +
                      " ugpn cannot pay the fees of this and the sender's other pending txs; "
                      "wait for them to be included or fund the account");

  // Room: the replaced tx frees its slot; otherwise evict lower-fee tails of others.
  size_t freed_txs = 0, freed_bytes = 0;
  if (same != sender.queue.end()) {
    freed_txs = 1;
    freed_bytes = same->second.bytes.size();
  }
  if (tx_bytes.size() > m_options.bytes_max)
    return Reject(std::move(r), TxCode::kMempoolFull, "the tx is larger than the whole mempool");
  std::vector<std::pair<codec::Address, uint64_t>> victims;
  {
    // Plan evictions without changing anything, so a refusal leaves the pool as it was.
    size_t plan_txs = m_txs, plan_bytes = m_bytes;
    std::map<codec::Address, size_t> taken;  // tails already planned per sender
    while (!(plan_txs - freed_txs + 1 <= m_options.txs_max &&
             plan_bytes - freed_bytes + tx_bytes.size() <= m_options.bytes_max)) {
      const Entry* low = nullptr;
      codec::Address low_owner{};
      for (const auto& [addr, s] : m_senders) {
        if (addr == c.sender) continue;
        size_t skip = taken.contains(addr) ? taken[addr] : 0;
        if (skip >= s.queue.size()) continue;
        auto it = s.queue.rbegin();
        std::advance(it, skip);
        if (!low || it->second.fee_ugpn < low->fee_ugpn ||
            (it->second.fee_ugpn == low->fee_ugpn && it->second.seq > low->seq)) {
          low = &it->second;
          low_owner = addr;
        }
      }
      if (!low || low->fee_ugpn >= c.fee_ugpn)
        return Reject(std::move(r), TxCode::kMempoolFull,
                      "the mempool is full (" + std::to_string(m_txs) + " txs, " +
                          std::to_string(m_bytes) + " bytes) and holds no tx with a fee below " +
                          std::to_string(c.fee_ugpn) + " ugpn; raise the fee or retry later");
      victims.emplace_back(low_owner, low->nonce);
      ++taken[low_owner];
      plan_txs -= 1;
      plan_bytes -= low->bytes.size();
    }
  }
  for (const auto& [owner, nonce] : victims) {
    const Entry& victim = m_senders.at(owner).queue.at(nonce);
    r.evicted.push_back(Removed{victim.hash, TxCode::kMempoolFull,
                                "evicted from the full mempool by a higher-fee tx"});
    EraseLocked(owner, nonce);
  }
  Sender& s = m_senders[c.sender];  // (not a victim: eviction skips this sender)
  // The check's view of committed state is at least as new as what we saw.
  if (c.account_nonce > s.next_nonce) s.next_nonce = c.account_nonce;
  auto old = s.queue.find(c.nonce);
  if (old != s.queue.end()) {
    r.replaced = true;
    r.evicted.push_back(Removed{old->second.hash, TxCode::kReplacementUnderpriced,
                                "replaced by a higher-fee tx with the same nonce"});
    UnindexLocked(c.sender, old->second);
    s.queue.erase(old);
  }
  e.seq = ++m_seq;
  m_txs += 1;
  m_bytes += e.bytes.size();
  m_by_hash[e.hash] = Where{c.sender, e.nonce};
  if (e.timeout_height != 0) m_by_timeout.emplace(e.timeout_height, c.sender, e.nonce);
  s.queue.emplace(e.nonce, std::move(e));
  return r;
}

void Mempool::EraseLocked(const codec::Address& sender, uint64_t nonce) {
  auto sit = m_senders.find(sender);
  GPUNET_CHECK(sit != m_senders.end());
  auto it = sit->second.queue.find(nonce);
  GPUNET_CHECK(it != sit->second.queue.end());
  UnindexLocked(sender, it->second);
  sit->second.queue.erase(it);
  if (sit->second.queue.empty()) m_senders.erase(sit);
}

void Mempool::UnindexLocked(const codec::Address& sender, const Entry& e) {
  m_by_hash.erase(e.hash);
  if (e.timeout_height != 0) m_by_timeout.erase(std::make_tuple(e.timeout_height, sender, e.nonce));
  m_txs -= 1;
  m_bytes -= e.bytes.size();
}

template <class Take>
void Mempool::ReapEach(uint64_t max_bytes, uint64_t max_txs, uint64_t max_gas, Take&& take) const {
  base::MutexLock lock(m_mutex);
  // Heads of executable prefixes; highest fee first, then earliest arrival.
  using Head =
      std::tuple<uint64_t, uint64_t, const Sender*, std::map<uint64_t, Entry>::const_iterator>;
  auto worse = [](const Head& a, const Head& b) {
    if (std::get<0>(a) != std::get<0>(b)) return std::get<0>(a) < std::get<0>(b);
    return std::get<1>(a) > std::get<1>(b);
  };
  std::priority_queue<Head, std::vector<Head>, decltype(worse)> heads(worse);
  for (const auto& [addr, s] : m_senders) {
    auto it = s.queue.find(s.next_nonce);
    if (it != s.queue.end()) heads.emplace(it->second.fee_ugpn, it->second.seq, &s, it);
  }
  uint64_t bytes = 0, taken = 0, gas = 0;
  while (!heads.empty()) {
    if (max_txs != 0 && taken >= max_txs) break;
    auto [fee, seq, s, it] = heads.top();
    heads.pop();
    if (max_bytes != 0 && bytes + it->second.bytes.size() > max_bytes) continue;  // smaller may fit
    // A block's gas is the sum of its txs' limits (ledger PrepareProposal); a tx
    // over what is left stays, and a smaller one may fit.
    const uint64_t gas_limit = it->second.checked->gas_limit;
    if (max_gas != 0 && (gas_limit > max_gas || gas > max_gas - gas_limit)) continue;
    gas += gas_limit;
    bytes += it->second.bytes.size();
    ++taken;
    take(it->second);
    auto next = std::next(it);
    if (next != s->queue.end() && next->first == it->first + 1)
      heads.emplace(next->second.fee_ugpn, next->second.seq, s, next);
  }
}

std::vector<base::Bytes> Mempool::Reap(uint64_t max_bytes, uint64_t max_txs,
                                       uint64_t max_gas) const {
  std::vector<base::Bytes> out;
  ReapEach(max_bytes, max_txs, max_gas, [&](const Entry& e) { out.push_back(e.bytes); });
  return out;
}

std::vector<std::shared_ptr<const state::CheckedTx>> Mempool::ReapChecked(uint64_t max_bytes,
                                                                          uint64_t max_txs,
                                                                          uint64_t max_gas) const {
  std::vector<std::shared_ptr<const state::CheckedTx>> out;
  ReapEach(max_bytes, max_txs, max_gas, [&](const Entry& e) { out.push_back(e.checked); });
  return out;
}

bool Mempool::HasExecutable() const {
  base::MutexLock lock(m_mutex);
  for (const auto& [addr, s] : m_senders)
    if (s.queue.contains(s.next_nonce)) return true;
  return false;
}

std::vector<Removed> Mempool::Update(uint64_t height, const std::vector<base::Hash32>& included) {
  return UpdateImpl(height, included, nullptr);
}

std::vector<Removed> Mempool::Update(const codec::Block& block) {
  std::vector<base::Hash32> hashes;
  hashes.reserve(block.txs.size());
  for (const auto& tx : block.txs) hashes.push_back(codec::TxHash(tx));
  return UpdateImpl(block.header.height, hashes, &block);
}

std::vector<Removed> Mempool::Update(const codec::Block& block,
                                     std::span<const codec::Receipt> receipts) {
  GPUNET_CHECK(receipts.size() == block.txs.size());
  std::vector<base::Hash32> hashes;
  hashes.reserve(receipts.size());
  for (const auto& r : receipts) hashes.push_back(r.tx_hash);
  return UpdateImpl(block.header.height, hashes, &block);
}

// Over 70 lines: snapshot under the lock, re-check outside it, apply under it again;
// the three phases share the snapshot's entries.
// NOLINTNEXTLINE(readability-function-size)
std::vector<Removed> Mempool::UpdateImpl(uint64_t height, const std::vector<base::Hash32>& included,
                                         const codec::Block* block) {
  std::vector<Removed> dropped;
  // Snapshot what to re-check, then check outside the lock (CheckTx reads state).
  std::vector<
      std::tuple<codec::Address, uint64_t, base::Hash32, std::shared_ptr<const state::CheckedTx>>>
      rest;
  {
    base::MutexLock lock(m_mutex);
    m_height = height;
    // The block's senders, whose other txs may now be stale. A tx this pool holds
    // names its sender; only txs it never saw need it derived from the public key.
    std::vector<codec::Address> senders;
    senders.reserve(included.size());
    for (size_t i = 0; i < included.size(); ++i) {
      auto it = m_by_hash.find(included[i]);
      if (it == m_by_hash.end()) {
        if (block != nullptr) senders.push_back(crypto::AddressOf(block->txs[i].body.sender));
        continue;
      }
      const Where where = it->second;
      senders.push_back(where.sender);
      EraseLocked(where.sender, where.nonce);
    }
    // Expiry, for every sender: only the txs it drops are visited.
    while (!m_by_timeout.empty() && std::get<0>(*m_by_timeout.begin()) < height + 1) {
      const auto [timeout, sender, nonce] = *m_by_timeout.begin();
      dropped.push_back(Removed{
          m_senders.at(sender).queue.at(nonce).hash, TxCode::kExpired,
          "expired: timeout_height " + std::to_string(timeout) + " passed without inclusion"});
      EraseLocked(sender, nonce);
    }
    const auto take = [&](const codec::Address& addr, const Sender& s) {
      for (const auto& [nonce, e] : s.queue) rest.emplace_back(addr, e.nonce, e.hash, e.checked);
    };
    if (block == nullptr) {
      for (const auto& [addr, s] : m_senders) take(addr, s);
      // In sender order, like the block path: the table's order must not show.
      std::sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) {
        return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
      });
    } else {
      std::sort(senders.begin(), senders.end());
      senders.erase(std::unique(senders.begin(), senders.end()), senders.end());
      for (const codec::Address& addr : senders)
        if (auto sit = m_senders.find(addr); sit != m_senders.end()) take(addr, sit->second);
    }
  }
  std::vector<
      std::pair<ledger::CheckTxResponse, std::tuple<codec::Address, uint64_t, base::Hash32>>>
      checked;
  checked.reserve(rest.size());
  for (auto& [addr, nonce, hash, tx] : rest)
    checked.emplace_back(m_app.RecheckTx(std::move(tx)), std::make_tuple(addr, nonce, hash));
  base::MutexLock lock(m_mutex);
  for (auto& [c, key] : checked) {
    auto& [addr, nonce, hash] = key;
    auto sit = m_senders.find(addr);
    if (sit == m_senders.end()) continue;
    auto it = sit->second.queue.find(nonce);
    if (it == sit->second.queue.end() || it->second.hash != hash) continue;  // changed meanwhile
    if (c.Ok()) {
      if (c.account_nonce > sit->second.next_nonce) sit->second.next_nonce = c.account_nonce;
      continue;
    }
    dropped.push_back(
        Removed{hash, c.code,
                "dropped on re-check after block " + std::to_string(height) + ": " +
                    (c.message.empty() ? std::string(codec::TxCodeMessage(c.code)) : c.message)});
    EraseLocked(addr, nonce);
  }
  return dropped;
}

bool Mempool::Remove(const base::Hash32& tx_hash) {
  base::MutexLock lock(m_mutex);
  auto it = m_by_hash.find(tx_hash);
  if (it == m_by_hash.end()) return false;
  const Where where = it->second;
  EraseLocked(where.sender, where.nonce);
  return true;
}

bool Mempool::Contains(const base::Hash32& tx_hash) const {
  base::MutexLock lock(m_mutex);
  return m_by_hash.contains(tx_hash);
}

uint64_t Mempool::NextFreeNonce(const codec::Address& sender, uint64_t from_nonce) const {
  base::MutexLock lock(m_mutex);
  uint64_t next = from_nonce;
  auto s = m_senders.find(sender);
  if (s == m_senders.end()) return next;
  // Bounded by sender_txs_max: the queue holds at most that many.
  for (auto it = s->second.queue.lower_bound(from_nonce);
       it != s->second.queue.end() && it->first == next; ++it) {
    ++next;
  }
  return next;
}

base::Result<uint64_t> Mempool::NextFreeNonce(
    const codec::Address& sender,
    const std::function<base::Result<uint64_t>()>& account_nonce) const {
  constexpr int kReadsMax = 8;
  auto from = account_nonce();
  if (!from) return from;
  uint64_t next = NextFreeNonce(sender, *from);
  for (int read = 1; read < kReadsMax; ++read) {
    auto again = account_nonce();
    if (!again) return again;
    GPUNET_CHECK(*again >= *from);  // committed nonces only grow
    if (*again == *from) return next;
    from = again;
    next = NextFreeNonce(sender, *from);
  }
  return next;  // from the latest read: at worst a block more recent than the pool's
}

MempoolStats Mempool::Stats() const {
  base::MutexLock lock(m_mutex);
  return MempoolStats{m_txs, m_bytes, m_senders.size()};
}

}  // namespace gpunet::mempool
