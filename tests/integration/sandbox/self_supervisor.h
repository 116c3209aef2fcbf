// Test binaries that start real workloads are their own sandbox supervisor:
// Runtime::Start execs RuntimeOptions::supervisor_command + "--run-dir D --ready-fd N",
// and SelfSupervisedOptions names this binary there with --gpunet-supervise.
// Its hook (one inline variable, however many files include the header) runs
// SupervisorMain before gtest sees argv when the binary is started that way.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace gpunet::testing {

struct SupervisorHook {
  SupervisorHook() {
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::vector<std::string> args;
    for (std::string a; std::getline(in, a, '\0');) args.push_back(a);
    if (args.size() == 6 && args[1] == "--gpunet-supervise" && args[2] == "--run-dir" &&
        args[4] == "--ready-fd")
      ::_exit(runtime::SupervisorMain(args[3], std::atoi(args[5].c_str())));
  }
};
inline SupervisorHook g_supervisor_hook;

/// Options for a runtime under `dir` (its state dir is dir/state) whose supervisor is
/// this binary, with a range of 8 uids from `uid_base` of this process's own, so
/// concurrent test runs never share one. "" supervisor command when /proc/self/exe
/// cannot be read (Start then refuses).
inline runtime::RuntimeOptions SelfSupervisedOptions(const std::string& dir, uint32_t uid_base) {
  runtime::RuntimeOptions options;
  options.state_dir = dir + "/state";
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  options.supervisor_command = {n > 0 ? std::string(exe, static_cast<size_t>(n)) : "",
                                "--gpunet-supervise"};
#ifdef GPUNET_INIT_PATH
  options.init_path = GPUNET_INIT_PATH;  // the build's gpunet-init (tests/CMakeLists.txt)
#endif
  options.uid_first = uid_base + static_cast<uint32_t>(::getpid() % 20000) * 8;
  options.uid_count = 8;
  return options;
}

/// Starts `spec` from a child process that is SIGKILLed once Start has returned, as a
/// provider daemon killed mid-lease: true when that Start succeeded. The workload is
/// then only reachable by re-attaching.
inline bool StartFromACallerThatIsKilled(const runtime::RuntimeOptions& options,
                                         const runtime::WorkloadSpec& spec) {
  int ready[2];
  if (::pipe(ready) != 0) return false;
  pid_t caller = ::fork();
  if (caller < 0) return false;
  if (caller == 0) {
    ::close(ready[0]);
    auto info = runtime::Runtime(options).Start(spec);
    char c = info ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char c = 0;
  const bool read = ::read(ready[0], &c, 1) == 1;
  ::close(ready[0]);
  ::kill(caller, SIGKILL);
  ::waitpid(caller, nullptr, 0);
  return read && c == 'y';
}

/// Waits (up to 10 s) until workload `id`'s stdout.log holds `text`: the workload has
/// set up what it announces (a trap, say) before the test acts on it.
inline bool WaitForStdout(const runtime::Runtime& rt, const std::string& id,
                          const std::string& text) {
  auto dir = rt.RunDir(id);
  for (int i = 0; dir && i < 2000; ++i) {
    std::ifstream in(*dir + "/stdout.log", std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (ss.str().find(text) != std::string::npos) return true;
    const timespec pause{0, 5'000'000};
    ::nanosleep(&pause, nullptr);
  }
  return false;
}

}  // namespace gpunet::testing
