#include "storage/rocks_kv.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>

#include "base/check.h"
#include "base/mutex.h"
#include "storage/fault_fs_internal.h"

namespace gpunet::storage {

namespace {

rocksdb::Slice ToSlice(base::ByteSpan bytes) {
  return rocksdb::Slice(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

base::ByteSpan ToSpan(const rocksdb::Slice& slice) {
  return base::ByteSpan(reinterpret_cast<const uint8_t*>(slice.data()), slice.size());
}

/// A RocksDB status as an Error whose message says what failed and where.
std::unexpected<base::Error> FromStatus(const rocksdb::Status& s, const std::string& what) {
  base::ErrorCode code = base::ErrorCode::kInternal;
  if (s.IsCorruption())
    code = base::ErrorCode::kCorrupt;
  else if (s.IsIOError())
    code = base::ErrorCode::kIo;
  else if (s.IsNotFound() || s.IsPathNotFound())
    code = base::ErrorCode::kNotFound;
  else if (s.IsInvalidArgument())
    code = base::ErrorCode::kInvalidArgument;
  else if (s.IsBusy() || s.IsTryAgain())
    code = base::ErrorCode::kConflict;
  else if (s.IsNotSupported())
    code = base::ErrorCode::kUnsupported;
  return base::Fail(code, what + ": " + s.ToString());
}

/// Open's errors, made into something a person can act on.
std::unexpected<base::Error> OpenError(const rocksdb::Status& s, const std::string& path) {
  const std::string text = s.ToString();
  if (s.IsIOError() && text.find("lock hold by current process") != std::string::npos)
    return base::Fail(
        base::ErrorCode::kConflict,
        "the database in " + path + " is already open in this process (" + text + ")");
  if (s.IsIOError() && text.find("/LOCK") != std::string::npos)
    return base::Fail(base::ErrorCode::kConflict,
                      "another gpunet process is using " + path +
                          " (its LOCK file is held): stop that process or "
                          "choose another directory (" +
                          text + ")");
  if (s.IsInvalidArgument() && text.find("does not exist") != std::string::npos)
    return base::Fail(base::ErrorCode::kNotFound, "no database in " + path + " (" + text + ")");
  if (s.IsCorruption())
    return base::Fail(base::ErrorCode::kCorrupt,
                      "the database in " + path +
                          " is corrupt; restore it from a backup or resync "
                          "the node into an empty directory (" +
                          text + ")");
  return FromStatus(s, "opening the database in " + path);
}

rocksdb::CompressionType PickCompression() {
  // Values are mostly hashes and signatures: they barely compress. LZ4 costs
  // little and still shrinks the repetitive parts (keys, encodings); use none
  // when this librocksdb was built without it.
  auto supported = rocksdb::GetSupportedCompressions();
  if (std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) != supported.end())
    return rocksdb::kLZ4Compression;
  return rocksdb::kNoCompression;
}

}  // namespace

struct RocksKvStore::Impl {
  std::string path;
  std::optional<FaultInjection> faults;
  std::unique_ptr<rocksdb::Env> env;  // the fault layer's Env; outlives db
  // Shared by every operation, exclusive to close the database under them
  // (SimulatePowerLoss); db is null once closed.
  mutable base::SharedMutex lifetime;
  std::unique_ptr<rocksdb::DB> db GUARDED_BY(lifetime);
};

namespace {

rocksdb::Options MakeOptions(const RocksKvOptions& options, rocksdb::Env* env) {
  rocksdb::Options o;
  o.create_if_missing = options.create_if_missing;
  if (env != nullptr) o.env = env;
  // Check every block and file we read; a failed check is an error, never a
  // silently wrong answer (a ledger must not serve corrupt state).
  o.paranoid_checks = true;
  // Every acknowledged Commit was fsynced, so the WAL's synced prefix holds all
  // of them; a torn or zero-filled tail can only be a write that was never
  // acknowledged (a power cut inside Commit). Point-in-time recovery replays up
  // to the first bad record and stops: exactly "all acknowledged commits, each
  // all-or-nothing". kAbsoluteConsistency would refuse to start after every
  // ordinary power cut that tore the last record, needing an operator for a
  // case that is not damage.
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  o.recycle_log_file_num = 0;  // recycled WALs weaken point-in-time recovery
  // Bounded memory: one memtable of write_buffer_bytes (two while one flushes),
  // index and filter blocks inside the block cache, a bounded table cache.
  o.write_buffer_size = options.write_buffer_bytes;
  o.max_write_buffer_number = 2;
  o.max_total_wal_size = 4 * static_cast<uint64_t>(options.write_buffer_bytes);
  o.max_open_files = options.max_open_files;
  // No bloom filter over the memtable: the ledger reads application state from
  // memory (state/resident_kv.h), so the keys read here (blocks, the tx index,
  // meta) are few, and a filter would cost a cache miss on every key written.
  // Background work: flush + compaction share the few cores of a node.
  o.max_background_jobs = 2;
  o.level_compaction_dynamic_level_bytes = true;  // stable space amplification
  o.bytes_per_sync = 1 << 20;                     // smooth write-back of big files
  o.compression = PickCompression();
  // The info LOG is diagnostics: keep it bounded.
  o.max_log_file_size = 8u << 20;
  o.keep_log_file_num = 4;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  // Point lookups (accounts, tx by hash, block by hash) dominate: a 10-bit
  // bloom filter answers "absent" without a disk read ~99% of the time.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.whole_key_filtering = true;
  table.optimize_filters_for_memory = true;
  table.format_version = 5;
  // A hash index inside each data block: a point read finds its key without a
  // binary search over the block's restart points.
  table.data_block_index_type = rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
  table.data_block_hash_table_util_ratio = 0.75;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return o;
}

std::unique_ptr<rocksdb::WriteBatch> ToRocksBatch(const state::WriteBatch& batch,
                                                  std::string* error) {
  // Room for every record up front: a block's batch is megabytes, and growing the
  // buffer by doubling copied it about log2(size) times.
  size_t bytes = 12;  // the batch header
  for (const auto& [key, value] : batch.Ops())
    bytes += 1 + 10 + key.size() + (value ? 10 + value->size() : 0);  // tag, varint lengths
  auto out = std::make_unique<rocksdb::WriteBatch>(bytes);
  for (const auto& [key, value] : batch.Ops()) {
    rocksdb::Status s = value ? out->Put(ToSlice(key), ToSlice(*value)) : out->Delete(ToSlice(key));
    if (!s.ok()) {
      *error = s.ToString();
      return nullptr;
    }
  }
  return out;
}

}  // namespace

RocksKvStore::RocksKvStore(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

RocksKvStore::~RocksKvStore() = default;

base::Result<std::unique_ptr<RocksKvStore>> RocksKvStore::Open(const std::string& path,
                                                               const RocksKvOptions& options) {
  if (path.empty())
    return base::Fail(base::ErrorCode::kInvalidArgument, "database directory path is empty");
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  if (options.fault_injection) {
    impl->faults.emplace();
    impl->env = rocksdb::NewCompositeEnv(impl->faults->FileSystem());
  }
  rocksdb::Options o = MakeOptions(options, impl->env.get());
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, path, &db);
  if (!s.ok()) return OpenError(s, path);
  {
    base::WriterLock lock(impl->lifetime);  // no other thread has the store yet
    impl->db.reset(db);
  }
  return std::unique_ptr<RocksKvStore>(new RocksKvStore(std::move(impl)));
}

namespace {
std::unexpected<base::Error> ClosedError(const std::string& path) {
  return base::Fail(base::ErrorCode::kUnavailable,
                    "the database in " + path + " was closed by a simulated power loss; reopen it");
}
}  // namespace

base::Result<std::optional<base::Bytes>> RocksKvStore::Get(base::ByteSpan key) const {
  base::ReaderLock lock(m_impl->lifetime);
  if (!m_impl->db) return ClosedError(m_impl->path);
  rocksdb::PinnableSlice value;
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  rocksdb::Status s = m_impl->db->Get(ro, m_impl->db->DefaultColumnFamily(), ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<base::Bytes>{};
  if (!s.ok()) return FromStatus(s, "reading a key from " + m_impl->path);
  auto span = ToSpan(value);
  return std::optional<base::Bytes>{base::Bytes(span.begin(), span.end())};
}

base::Status RocksKvStore::Scan(base::ByteSpan begin, base::ByteSpan end,
                                const state::KvVisitor& visit) const {
  base::ReaderLock lock(m_impl->lifetime);
  if (!m_impl->db) return ClosedError(m_impl->path);
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  // The upper bound lets RocksDB stop at `end` instead of stepping over
  // whatever lies beyond it (deleted entries included).
  rocksdb::Slice upper = ToSlice(end);
  if (!end.empty()) ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(m_impl->db->NewIterator(ro));
  for (it->Seek(ToSlice(begin)); it->Valid(); it->Next()) {
    if (!visit(ToSpan(it->key()), ToSpan(it->value()))) break;
  }
  if (!it->status().ok()) return FromStatus(it->status(), "scanning " + m_impl->path);
  return base::Ok();
}

namespace {
// A batch with at least this many changes is written to a table file at once.
// Blocks stay below it (the default 10,000 txs change ~40,000 keys); one that
// does not only pays a flush.
constexpr size_t kBulkBatchOps = 100'000;

base::Status WriteBatchTo(rocksdb::DB& db, const state::WriteBatch& batch, bool sync,
                          const std::string& path) {
  if (batch.Empty()) return base::Ok();
  std::string error;
  auto rocks_batch = ToRocksBatch(batch, &error);
  if (!rocks_batch)
    return base::Fail(base::ErrorCode::kInvalidArgument, "building a write batch: " + error);
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = db.Write(wo, rocks_batch.get());
  if (!s.ok()) return FromStatus(s, "committing to " + path);
  if (batch.Size() >= kBulkBatchOps) {
    // A bulk load (a genesis of a million accounts) would otherwise stay in the
    // memtable, where every later read and write pays a deep skiplist search,
    // and be replayed from the WAL at every start. Write it to a table file now.
    rocksdb::FlushOptions fo;
    fo.wait = true;
    s = db.Flush(fo);
    if (!s.ok()) return FromStatus(s, "flushing a bulk write to " + path);
  }
  return base::Ok();
}
}  // namespace

base::Status RocksKvStore::Commit(const state::WriteBatch& batch) {
  base::ReaderLock lock(m_impl->lifetime);
  if (!m_impl->db) return ClosedError(m_impl->path);
  return WriteBatchTo(*m_impl->db, batch, /*sync=*/true, m_impl->path);
}

base::Status RocksKvStore::CommitUnsyncedForTest(const state::WriteBatch& batch) {
  base::ReaderLock lock(m_impl->lifetime);
  if (!m_impl->db) return ClosedError(m_impl->path);
  return WriteBatchTo(*m_impl->db, batch, /*sync=*/false, m_impl->path);
}

std::optional<FaultInjection> RocksKvStore::Faults() const {
  return m_impl->faults;
}

base::Status RocksKvStore::SimulatePowerLoss() {
  if (!m_impl->faults)
    return base::Fail(base::ErrorCode::kUnsupported,
                      "SimulatePowerLoss needs a store opened with fault_injection = true");
  // Cut first, without the lifetime lock: commits in flight fail at once
  // instead of delaying the cut. Then close the database under them.
  auto cut = m_impl->faults->SimulatePowerLoss();
  base::WriterLock lock(m_impl->lifetime);
  m_impl->db.reset();  // its writes fail: the disk is off
  return cut;
}

const std::string& RocksKvStore::Path() const {
  return m_impl->path;
}

}  // namespace gpunet::storage
