// The one temporary directory of the tests and benchmarks: a fresh directory per
// use, removed with everything in it afterwards, and two ways to look at its files.
// Header-only and free of GoogleTest, so that bench/ can use it too.
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace gpunet::testing {

/// Where and how TempDir makes its directory. The defaults suit every test that
/// only needs a private scratch folder.
struct TempDirOptions {
  /// The folder to make it in; "" is $TMPDIR, or /tmp without one. The sandbox
  /// tests name /tmp or /var/tmp: their supervisor runs as other uids, and the
  /// sandbox binds its own /tmp over the host's.
  std::string parent;
  /// The directory's name before mkdtemp's six random characters.
  std::string prefix = "gpunet-test";
  /// Its permission bits once made (mkdtemp makes it 0700). 0711 lets the
  /// sandbox's unprivileged uids reach the state directory made inside it.
  mode_t mode = 0700;
};

/// A fresh directory, removed with everything in it when the object goes. When it
/// cannot be made the constructor throws std::runtime_error naming the path and the
/// errno text: GoogleTest fails the test (or the suite set-up) that made it, and a
/// benchmark stops, instead of going on with an empty path.
class TempDir {
 public:
  explicit TempDir(const TempDirOptions& options = {}) {
    std::string parent = options.parent;
    if (parent.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    }
    std::string pattern = parent + "/" + options.prefix + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) Fail("mkdtemp " + pattern, errno);
    m_path = std::move(pattern);
    if (options.mode != 0700 && ::chmod(m_path.c_str(), options.mode) != 0) {
      const int err = errno;
      std::error_code ignored;
      std::filesystem::remove_all(m_path, ignored);
      Fail("chmod " + m_path, err);
    }
  }
  ~TempDir() {
    std::error_code ignored;
    if (!m_path.empty() && !m_keep) std::filesystem::remove_all(m_path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// The directory's path, without a trailing slash: the parent's (or $TMPDIR's)
  /// path and the new name, so relative when that is.
  const std::string& Path() const { return m_path; }
  /// A path inside the directory (not created).
  std::string Sub(const std::string& name) const { return m_path + "/" + name; }

  /// Leaves the directory in place when the object goes, for a look at what a
  /// failed run left (bench_sandbox keeps its state directory that way).
  void Keep() { m_keep = true; }

  /// Removes the directory now and says why when that fails (an empty error_code
  /// when it is gone), for the tests that check their clean-up (a sandbox that
  /// left a mount or a process behind). Once it is gone the destructor has nothing
  /// left to do; after a failure the destructor tries again.
  [[nodiscard]] std::error_code Remove() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
    if (!ec) m_path.clear();
    return ec;
  }

 private:
  [[noreturn]] static void Fail(const std::string& what, int err) {
    throw std::runtime_error("TempDir: " + what + ": " + std::strerror(err));
  }

  std::string m_path;
  bool m_keep = false;
};

/// The whole contents of a file ("" when it cannot be read).
inline std::string FileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The permission bits of path itself (a link is not followed), or kNoFileMode when
/// lstat fails: that value is no mode, so an expected mode never matches it.
inline constexpr mode_t kNoFileMode = static_cast<mode_t>(-1);
inline mode_t FileMode(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return kNoFileMode;
  return st.st_mode & 07777;
}

}  // namespace gpunet::testing
