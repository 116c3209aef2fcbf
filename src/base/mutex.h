// base::Mutex and base::SharedMutex: std::mutex and std::shared_mutex that clang's
// thread-safety analysis understands (base/thread_annotations.h). Lock them through
// MutexLock / WriterLock / ReaderLock; a condition variable waits on
// `lock.Native()` (the analysis treats the mutex as held across the wait, which is
// what the code after the wait relies on).
#pragma once

#include <mutex>
#include <shared_mutex>

#include "base/thread_annotations.h"

namespace gpunet::base {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { m_mutex.lock(); }
  void Unlock() RELEASE() { m_mutex.unlock(); }
  [[nodiscard]] bool TryLock() GPUNET_THREAD_ANNOTATION_(try_acquire_capability(true)) {
    return m_mutex.try_lock();
  }
  /// For std::condition_variable and friends only.
  std::mutex& Native() RETURN_CAPABILITY(this) { return m_mutex; }

 private:
  std::mutex m_mutex;
};

/// Holds a Mutex from construction to destruction (or Unlock). `Native()` gives the
/// std::unique_lock a condition variable waits on.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : m_lock(mu.Native()) {}
  ~MutexLock() RELEASE() = default;
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  /// Releases early; the destructor then does nothing.
  void Unlock() RELEASE() { m_lock.unlock(); }
  std::unique_lock<std::mutex>& Native() { return m_lock; }

 private:
  std::unique_lock<std::mutex> m_lock;
};

class CAPABILITY("shared_mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ACQUIRE() { m_mutex.lock(); }
  void Unlock() RELEASE() { m_mutex.unlock(); }
  void LockShared() ACQUIRE_SHARED() { m_mutex.lock_shared(); }
  void UnlockShared() RELEASE_SHARED() { m_mutex.unlock_shared(); }

 private:
  std::shared_mutex m_mutex;
};

/// Holds a SharedMutex exclusively for its lifetime.
class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex& mu) ACQUIRE(mu) : m_mu(mu) { m_mu.Lock(); }
  ~WriterLock() RELEASE() { m_mu.Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex& m_mu;
};

/// Holds a SharedMutex shared for its lifetime.
class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex& mu) ACQUIRE_SHARED(mu) : m_mu(mu) { m_mu.LockShared(); }
  ~ReaderLock() RELEASE() { m_mu.UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex& m_mu;
};

}  // namespace gpunet::base
