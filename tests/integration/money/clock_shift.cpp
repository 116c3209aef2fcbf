// LD_PRELOAD shim for the money test: CLOCK_REALTIME moved forward by the
// milliseconds written in the file $GPUNET_TEST_CLOCK_SHIFT_FILE (read on every call;
// a missing or unreadable file is no shift). Loaded into the devnet's node only, so
// its block times (the ledger's clock) can jump towards a lease's paid_until in a
// test instead of the hour the smallest deposit pays for; the provider, the workload
// and the client keep the real clock. Test-only, never installed.
#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>

namespace {

long long ShiftMs() {
  const char* path = std::getenv("GPUNET_TEST_CLOCK_SHIFT_FILE");
  if (path == nullptr) return 0;
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[32] = {};
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return 0;
  return std::strtoll(text, nullptr, 10);
}

}  // namespace

// The real clock comes from the system call, not from dlsym(RTLD_NEXT): under
// AddressSanitizer the executable's own clock_gettime interceptor calls this shim
// while the sanitizer starts, and a dlsym there (with a guarded static) never returns.
extern "C" int clock_gettime(clockid_t id, timespec* ts) {
  const int rc = static_cast<int>(::syscall(SYS_clock_gettime, id, ts));
  if (rc != 0 || (id != CLOCK_REALTIME && id != CLOCK_REALTIME_COARSE)) return rc;
  const long long shift = ShiftMs();
  if (shift <= 0) return rc;
  long long ns = ts->tv_nsec + (shift % 1000) * 1'000'000;
  ts->tv_sec += static_cast<time_t>(shift / 1000 + ns / 1'000'000'000);
  ts->tv_nsec = ns % 1'000'000'000;
  return rc;
}
