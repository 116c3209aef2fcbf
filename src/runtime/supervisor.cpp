// The supervisor: one process per workload, started double-forked by
// Runtime::Start. It prepares the workload's uid, cgroups, disk, seccomp filter
// and network, starts bwrap, owns its logs and exit status, and tears everything
// down at the end. It outlives the caller of Runtime; it does not outlive bwrap.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <set>

#include "base/check.h"
#include "base/clock.h"
#include "runtime/cgroup.h"
#include "runtime/host_probe.h"
#include "runtime/host_resources.h"
#include "runtime/network.h"
#include "runtime/podman.h"
#include "runtime/runtime.h"
#include "runtime/sandbox_args.h"
#include "runtime/seccomp_policy.h"
#include "runtime/session_socket.h"
#include "runtime/state_files.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;
using base::SystemClock;

namespace {

/// Self-pipe for SIGCHLD/SIGTERM/SIGINT/SIGHUP. Handlers (not a blocked mask) so
/// that helpers the supervisor starts (mkfs, mount, slirp4netns) get default signals.
int g_signal_pipe_w = -1;
/// How long `podman start --attach` may take to return after its container is killed.
constexpr int64_t kPodmanStartExitMs = 5000;
volatile sig_atomic_t g_stop_requested = 0;

void OnSignal(int sig) {
  int saved = errno;
  if (sig != SIGCHLD) g_stop_requested = 1;
  char c = static_cast<char>(sig);
  if (g_signal_pipe_w >= 0) (void)!::write(g_signal_pipe_w, &c, 1);
  errno = saved;
}

void Log(const std::string& line) {
  std::string l = std::to_string(SystemClock::Instance().NowMs()) + " " + line + "\n";
  (void)!::write(2, l.data(), l.size());
}

/// A size-capped log: at `max_bytes` the file becomes <path>.1 (replacing the
/// previous one) and a new file starts, so one stream never holds more than 2x the cap.
class LogWriter {
 public:
  /// `name` in the run dir open as `dir_fd` (checked by StateDir): opened and rotated
  /// relative to that fd, never through a link.
  LogWriter(int dir_fd, std::string name, uint64_t max_bytes)
      : m_dir(dir_fd), m_name(std::move(name)), m_max(max_bytes) {
    Open();
  }
  void Write(std::string_view d) {
    while (!d.empty()) {
      if (m_size >= m_max) Rotate();
      size_t n = static_cast<size_t>(std::min<uint64_t>(d.size(), m_max - m_size));
      ssize_t w = m_fd.Valid() ? ::write(m_fd.Get(), d.data(), n) : -1;
      if (w <= 0) return;  // disk trouble: drop rather than block the workload
      m_size += static_cast<uint64_t>(w);
      d.remove_prefix(static_cast<size_t>(w));
    }
  }

 private:
  void Open() {
    m_fd = UniqueFd(::openat(m_dir, m_name.c_str(),
                             O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
                             0600));
    struct stat st {};
    // Only a regular file of ours: anything else planted under the name is not written.
    if (m_fd.Valid() &&
        (::fstat(m_fd.Get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()))
      m_fd = UniqueFd();
    m_size = m_fd.Valid() ? static_cast<uint64_t>(st.st_size) : 0;
  }
  void Rotate() {
    (void)::renameat(m_dir, m_name.c_str(), m_dir, (m_name + ".1").c_str());
    Open();
  }
  int m_dir;
  std::string m_name;
  uint64_t m_max;
  UniqueFd m_fd;
  uint64_t m_size = 0;
};

std::string SignalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

/// Waits until process `pid` is blocked in read(fd, ...) (per /proc/<pid>/syscall).
base::Status WaitForBlockedRead(pid_t pid, int fd) {
  const std::string path = "/proc/" + std::to_string(pid) + "/syscall";
  char want[64];
  std::snprintf(want, sizeof want, "%d 0x%x ", static_cast<int>(SYS_read), fd);
  const int64_t deadline = SystemClock::Instance().MonotonicMs() + 30000;
  while (SystemClock::Instance().MonotonicMs() < deadline) {
    auto text = ReadFileToString(path);
    if (!text) return Fail(base::ErrorCode::kUnavailable, "the sandbox exited during its setup");
    if (text->starts_with(want)) return base::Ok();
    SleepMs(1);
  }
  return Fail(base::ErrorCode::kTimeout, "bwrap did not finish its setup within 30 s");
}

struct Pipe {
  UniqueFd r, w;
  static base::Result<Pipe> Make() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoFail("pipe", errno);
    return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
  }
};

class Supervisor {
 public:
  Supervisor(state_files::StateDir run, std::string state_dir, int ready_fd)
      : m_run(std::move(run)),
        m_run_dir(m_run.Path()),
        m_state_dir(std::move(state_dir)),
        m_ready(ready_fd) {}
  int Run();

 private:
  base::Status Prepare();
  base::Status Launch();
  base::Status PreparePodman();
  base::Status LaunchPodman();
  base::Status SpawnPodmanStart(pid_t container_pid);
  base::Status WriteInfo();
  void Loop();
  void StepStop(int64_t now);
  void SendStopSignal();
  void KillNow();
  ExitStatus Finish();
  void Cleanup();
  void ReportReady(const std::string& line);

  base::Status ReadRunFiles();
  uint32_t PodmanUsernsBase() const;
  bool PodmanV1PeakAtLimit(const std::string& controller) const;

  state_files::StateDir m_run;  ///< the run dir, checked (state_files.h); its files go through it
  std::string m_run_dir;
  std::string m_state_dir;  ///< the state dir m_run is in
  UniqueFd m_ready;
  WorkloadSpec m_spec;
  RuntimeOptions m_options;
  HostCapabilities m_caps;
  UidLease m_uid;
  WorkloadCgroups m_cgroups;
  bool m_cgroups_created = false;
  bool m_fs_mounted = false;
  GpuDevicePlan m_gpu;
  std::vector<std::string> m_unenforced;
  std::unique_ptr<NetworkAttachment> m_network;
  std::optional<PodmanBackend> m_podman;  ///< Backend::kPodman: its container
  bool m_container_created = false;
  bool m_podman_auto_userns = false;
  UniqueFd m_container;  ///< pidfd of the container's first process
  /// The child whose end is the workload's: bwrap, or `podman start --attach`.
  pid_t m_bwrap = -1;
  int m_bwrap_status = 0;
  bool m_bwrap_done = false;
  UniqueFd m_out_r, m_err_r, m_status_r, m_block_w;
  Pipe m_signals;
  struct StopState {
    bool requested = false;          ///< SIGTERM reached the supervisor
    bool killed = false;             ///< the workload was killed (the grace is over)
    bool child_killed = false;       ///< podman start, which did not return, was killed
    int64_t kill_at_ms = INT64_MAX;  ///< monotonic time of the kill
  } m_stop;
  int64_t m_started_ms = 0;
};

/// The spec and options, read only from root's own files (never through a link) and
/// only when they describe this run dir: the options name the uid locks and cgroups
/// this root process acts on.
base::Status Supervisor::ReadRunFiles() {
  auto spec_text = m_run.Read(state_files::kSpecFile);
  if (!spec_text) return std::unexpected(spec_text.error());
  auto spec = state_files::SpecFromJson(*spec_text);
  if (!spec) return std::unexpected(spec.error());
  m_spec = std::move(*spec);
  auto opt_text = m_run.Read(state_files::kOptionsFile);
  if (!opt_text) return std::unexpected(opt_text.error());
  auto opts = state_files::OptionsFromJson(*opt_text);
  if (!opts) return std::unexpected(opts.error());
  m_options = std::move(*opts);
  GPUNET_TRY(ValidateSpec(m_spec));
  if (m_run_dir != m_state_dir + "/" + state_files::kRunsDir + "/" + m_spec.id)
    return Fail(ErrorCode::kCorrupt, m_run_dir + "/" + state_files::kSpecFile +
                                         " is for workload " + m_spec.id +
                                         ", not for this run dir");
  if (m_options.state_dir != m_state_dir)
    return Fail(ErrorCode::kCorrupt, m_run_dir + "/" + state_files::kOptionsFile +
                                         " names another state dir (" +
                                         state_files::Printable(m_options.state_dir) + ")");
  return base::Ok();
}

base::Status Supervisor::Prepare() {
  GPUNET_TRY(m_run.Write(
      state_files::kPidFile,
      std::to_string(::getpid()) + " " + std::to_string(ProcessStartTime(::getpid())) + "\n",
      0644));
  GPUNET_TRY(ReadRunFiles());

  m_caps = Probe();
  if (m_spec.backend == Backend::kPodman) GPUNET_TRY(PreparePodman());
  auto uid = AllocateUid(m_options.state_dir, m_options.uid_first, m_options.uid_count);
  if (!uid) return std::unexpected(uid.error());
  m_uid = std::move(*uid);
  const uint32_t u = m_uid.Uid();
  Log("workload " + m_spec.id + " uid " + std::to_string(u));

  m_cgroups = WorkloadCgroups(m_caps, m_options.cgroup_parents, m_spec.id);
  m_cgroups_created = true;
  GPUNET_TRY(m_cgroups.Create());
  GPUNET_TRY(m_cgroups.AddSupervisor(::getpid()));

  auto minors = m_options.gpu_minors.empty() ? HostGpuMinors() : m_options.gpu_minors;
  auto gpu = PlanGpuDevices(m_spec.gpu_uuids, minors, m_options.device_dir);
  if (!gpu) return std::unexpected(gpu.error());
  m_gpu = std::move(*gpu);
  // A podman container gets its own device cgroup from runc (the default nodes and
  // exactly the --device ones), below this one: no rules here, which would refuse it.
  std::vector<std::string> rules;
  if (m_spec.backend == Backend::kSandbox) {
    rules = BaseDeviceRules();
    rules.insert(rules.end(), m_gpu.cgroup_allow.begin(), m_gpu.cgroup_allow.end());
  }
  GPUNET_TRY(m_cgroups.ApplyLimits(m_spec.resources, rules, &m_unenforced));
  if (!m_unenforced.empty() && !m_spec.allow_unenforced_limits) {
    std::string msg = "cannot enforce:";
    for (const auto& m : m_unenforced) msg += "\n  - " + m;
    return Fail(
        ErrorCode::kUnsupported,
        msg + "\nfix the host (gpunet sandbox check) or allow unenforced limits explicitly");
  }
  for (const auto& m : m_unenforced) Log("NOT ENFORCED: " + m);

  const std::string fs = m_run_dir + "/" + state_files::kFsDir;
  if (m_caps.loop_devices && !m_caps.mkfs_ext4.empty() && !m_caps.mount.empty()) {
    m_fs_mounted = true;
    GPUNET_TRY(CreateQuotaFs(m_run_dir + "/disk.img", fs, m_spec.resources.disk_bytes));
  } else if (m_spec.allow_unenforced_limits) {
    // No loop devices (some VMs and sandboxed hosts): a plain directory, unlimited.
    const std::string why =
        "disk quota: no loop device or mkfs.ext4 here; /work, /outputs and "
        "/tmp are a plain directory without a size limit";
    m_unenforced.push_back(why);
    Log("NOT ENFORCED: " + why);
    auto made = m_run.Sub(state_files::kFsDir, state_files::Create::kNew);
    if (!made) return std::unexpected(made.error());
  } else {
    return Fail(ErrorCode::kUnsupported,
                "disk quota needs mkfs.ext4 (e2fsprogs), mount and /dev/loop-control");
  }
  auto fs_dir = m_run.Sub(state_files::kFsDir, state_files::Create::kNo);
  if (!fs_dir) return std::unexpected(fs_dir.error());
  if (m_spec.backend == Backend::kPodman) {
    // Owned by the container's root as the fixed mapping places it on the host; with
    // --userns=auto podman chowns them (":U"), knowing the mapping only at create.
    const uint32_t owner = PodmanUsernsBase() != 0 ? PodmanUsernsBase() : u;
    GPUNET_TRY(MakeWorkloadDirs(*fs_dir, owner));
    return MakeInsideDirs(*fs_dir, owner, {m_spec.workdir, m_spec.outputs_dir});
  }
  GPUNET_TRY(MakeWorkloadDirs(*fs_dir, u));
  GPUNET_TRY(MakeInsideDirs(*fs_dir, u, {m_spec.workdir, m_spec.outputs_dir}));
  return WriteSandboxEtc(m_run, u, SandboxResolvConf(m_spec.network));
}

/// The podman backend, and the spec checked against it (an image of the local store),
/// before anything is made for the workload.
base::Status Supervisor::PreparePodman() {
  auto backend = PodmanBackend::Create(m_options.podman);
  if (!backend) return std::unexpected(backend.error());
  m_podman.emplace(std::move(*backend));
  m_podman_auto_userns = m_podman->UsesAutoUserns();
  if (!m_podman_auto_userns &&
      uint64_t{m_options.podman.userns_base} + uint64_t{m_options.uid_count} * 65536u > UINT32_MAX)
    return Fail(ErrorCode::kInvalidArgument,
                "podman: userns_base + uid_count * 65536 passes 2^32: lower userns_base");
  return m_podman->CheckSpec(m_spec);
}

/// Whether the v1 `controller` ("memory", "pids") of the workload's cgroup saw its
/// usage peak at the limit: the sign, on cgroup v1, of an OOM kill or a refused fork
/// inside a podman container, whose own cgroup (where v1 counts them) is gone by the
/// end. A memory peak within 1/16 of the limit counts: the kernel kills before the
/// last pages are charged.
bool Supervisor::PodmanV1PeakAtLimit(const std::string& controller) const {
  const std::vector<std::string> keys = m_cgroups.Keys();
  if (std::ranges::find(keys, controller) == keys.end()) return false;
  const std::string dir = m_cgroups.Dir(controller, "workload");
  auto number = [](const std::string& path) {
    auto text = ReadFileToString(path);
    return text ? std::strtoull(text->c_str(), nullptr, 10) : 0ull;
  };
  if (controller == "pids") return number(dir + "/pids.peak") >= m_spec.resources.pids_max;
  const uint64_t limit = m_spec.resources.memory_bytes;
  for (const char* file : {"/memory.max_usage_in_bytes", "/memory.memsw.max_usage_in_bytes"})
    if (const uint64_t peak = number(dir + file); peak != 0 && peak + limit / 16 >= limit)
      return true;
  return false;
}

/// Base of this workload's fixed user namespace mapping (0 when podman maps with
/// --userns=auto or has no base): one 65536-id range per uid slot.
uint32_t Supervisor::PodmanUsernsBase() const {
  if (m_options.podman.userns_base == 0 || m_podman_auto_userns) return 0;
  const uint64_t base =
      uint64_t{m_options.podman.userns_base} + uint64_t{m_uid.Uid() - m_options.uid_first} * 65536u;
  GPUNET_CHECK(base + 65536u <= UINT32_MAX);
  return static_cast<uint32_t>(base);
}

// Over 70 lines: the sandbox's launch (binds, environment,
// rlimits, fds, cgroup entry, bwrap handshake, network) is one ordered sequence whose
// steps depend on the ones before; split with the provider daemon's rework
// NOLINTNEXTLINE(readability-function-size)
base::Status Supervisor::Launch() {
  if (m_spec.backend == Backend::kPodman) return LaunchPodman();
  const uint32_t u = m_uid.Uid();
  auto seccomp = BuildSeccompBpf();
  if (!seccomp) return std::unexpected(seccomp.error());
  auto out = Pipe::Make(), err = Pipe::Make(), status = Pipe::Make(), block = Pipe::Make(),
       go = Pipe::Make();
  for (auto* p : {&out, &err, &status, &block, &go})
    if (!*p) return std::unexpected(p->error());

  const std::string fs = m_run_dir + "/" + state_files::kFsDir;
  SandboxPlan plan;
  plan.bwrap = m_caps.bwrap;
  plan.work_dir = fs + "/work";
  plan.outputs_dir = fs + "/outputs";
  plan.tmp_dir = fs + "/tmp";
  plan.etc_dir = m_run_dir + "/etc";
  // Driver libraries wherever the host's loader finds them: bound when the system
  // paths do not already show them, and made findable through LD_LIBRARY_PATH when
  // ld.so.cache does not list their directory.
  DriverLibraries driver = DiscoverDriverLibraries();
  for (const auto& lib : PathsOutside(driver.files, SystemReadOnlyPaths()))
    plan.ro_binds.emplace_back(lib, lib);
  plan.ro_binds.insert(plan.ro_binds.end(), m_options.extra_ro_binds.begin(),
                       m_options.extra_ro_binds.end());
  plan.dev_binds = m_gpu.binds;
  plan.dev_binds.insert(plan.dev_binds.end(), m_options.extra_dev_binds.begin(),
                        m_options.extra_dev_binds.end());
  plan.shm_bytes = m_spec.resources.shm_bytes;
  plan.seccomp_fd = 3;
  plan.json_status_fd = 4;
  plan.block_fd = 5;
  plan.env_args_fd = 6;
  plan.init_path = m_options.init_path;
  plan.session_listen_fd = 7;
  // The session socket (docs/sandbox.md "Interactive sessions"): made here, root's
  // 0600, and held only by the sandbox's init once it runs (ours is closed below).
  auto session = ListenSessionSocket(m_run.Fd());
  if (!session) return std::unexpected(session.error());
  std::vector<std::string> args_s = BuildBwrapArgs(m_spec, plan);
  // The workload's environment goes to bwrap as `--args` data, never as bwrap's own
  // environment: bwrap starts in the host's namespaces, where LD_PRELOAD and the
  // like would run the tenant's code (docs/sandbox.md).
  auto env_args = SealedMemfd(
      "gpunet-workload-env",
      BwrapEnvArgs(WithLibraryDirs(WorkloadEnvironment(m_spec, m_gpu.cuda_visible_devices),
                                   driver.unlisted_dirs)));
  if (!env_args) return std::unexpected(env_args.error());
  const ExecStrings args(args_s);
  const ExecStrings env(HostEnvironment());
  Log("bwrap:" + [&] {
    std::string j;
    for (const auto& a : args_s) j += " " + a;
    return j;
  }());

  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  const rlim_t nofile_max = std::min<rlim_t>(nofile.rlim_max, 16384);
  const rlimit lim_nofile{nofile_max, nofile_max};
  // RLIMIT_NPROC is a backstop a little above the pids cgroup, so that the cgroup
  // (which reports what it refused) is what a fork bomb meets first.
  const rlim_t nproc = rlim_t(m_spec.resources.pids_max) + 16;
  const rlimit lim_nproc{nproc, nproc};
  const rlimit lim_core{0, 0};
  const rlimit lim_fsize{m_spec.resources.disk_bytes, m_spec.resources.disk_bytes};
  const pid_t supervisor = ::getpid();
  // Source fds for the child, in target order 0..7.
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) return ErrnoFail("open /dev/null", errno);
  UniqueFd devnull_fd(devnull);
  constexpr int kChildFds = 8;
  const int sources[kChildFds] = {devnull,         out->w.Get(),   err->w.Get(),    seccomp->Get(),
                                  status->w.Get(), block->r.Get(), env_args->Get(), session->Get()};
  const int go_r = go->r.Get();

  pid_t child = ::fork();
  if (child < 0) return ErrnoFail("fork", errno);
  if (child == 0) {
    char c;
    if (::read(go_r, &c, 1) != 1) ::_exit(126);
    // Move the sources out of the way, then place them at 0..7 without CLOEXEC.
    int high[kChildFds];
    for (int i = 0; i < kChildFds; ++i) high[i] = ::fcntl(sources[i], F_DUPFD_CLOEXEC, 100);
    for (int i = 0; i < kChildFds; ++i)
      if (high[i] < 0 || ::dup2(high[i], i) != i) ::_exit(126);
    ::close_range(kChildFds, ~0U, 0);  // no inherited fds: only 0-7 reach bwrap
    ::setrlimit(RLIMIT_NOFILE, &lim_nofile);
    ::setrlimit(RLIMIT_NPROC, &lim_nproc);
    ::setrlimit(RLIMIT_CORE, &lim_core);
    ::setrlimit(RLIMIT_FSIZE, &lim_fsize);
    if (::setgroups(0, nullptr) != 0 || ::setresgid(u, u, u) != 0 || ::setresuid(u, u, u) != 0)
      ::_exit(126);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(126);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != supervisor) ::_exit(126);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::sigaction(s, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(args.Get()[0], args.Get(), env.Get());
    ::_exit(127);
  }
  m_bwrap = child;
  env_args->Reset();
  session->Reset();  // once init ends, a connect is refused: the workload is not running
  out->w.Reset();
  err->w.Reset();
  status->w.Reset();
  block->r.Reset();
  go->r.Reset();
  m_out_r = std::move(out->r);
  m_err_r = std::move(err->r);
  m_status_r = std::move(status->r);
  m_block_w = std::move(block->w);
  // Into the limited cgroups before it runs a single instruction of bwrap.
  GPUNET_TRY(m_cgroups.AddWorkload(child));
  if (::write(go->w.Get(), "g", 1) != 1) return ErrnoFail("releasing the sandbox child", errno);
  go->w.Reset();

  // bwrap reports the sandboxed child's pid once the namespaces exist, then waits on --block-fd.
  std::string json;
  const int64_t deadline = SystemClock::Instance().MonotonicMs() + 30000;
  while (json.find('}') == std::string::npos) {
    pollfd p{m_status_r.Get(), POLLIN, 0};
    int left =
        static_cast<int>(std::max<int64_t>(0, deadline - SystemClock::Instance().MonotonicMs()));
    int rc = ::poll(&p, 1, left);
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) return Fail(ErrorCode::kTimeout, "bwrap did not report its sandbox within 30 s");
    char buf[1024];
    ssize_t n = ::read(m_status_r.Get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string bwrap_err;
      ::fcntl(m_err_r.Get(), F_SETFL, O_NONBLOCK);
      ssize_t k = ::read(m_err_r.Get(), buf, sizeof buf);
      if (k > 0) bwrap_err.assign(buf, static_cast<size_t>(k));
      while (!bwrap_err.empty() && bwrap_err.back() == '\n') bwrap_err.pop_back();
      return Fail(ErrorCode::kUnavailable, "bwrap failed to create the sandbox: " + bwrap_err);
    }
    json.append(buf, static_cast<size_t>(n));
  }
  size_t at = json.find("\"child-pid\"");
  if (at == std::string::npos)
    return Fail(ErrorCode::kInternal, "bwrap status without child-pid: " + json);
  pid_t inner = static_cast<pid_t>(std::strtol(json.c_str() + json.find(':', at) + 1, nullptr, 10));
  if (inner <= 0) return Fail(ErrorCode::kInternal, "bwrap reported child pid " + json);
  Log("sandbox child pid " + std::to_string(inner));

  // bwrap reports the pid right after clone(), while the child is still setting up its
  // namespaces (bringing up lo among them). Network setup must come after that, so wait
  // until the child sits in read() on --block-fd: that is the end of its setup.
  if (auto blocked = WaitForBlockedRead(inner, plan.block_fd); !blocked) {
    char ebuf[2048];
    ::fcntl(m_err_r.Get(), F_SETFL, O_NONBLOCK);
    ssize_t k = ::read(m_err_r.Get(), ebuf, sizeof ebuf);
    std::string detail = k > 0 ? ": " + std::string(ebuf, static_cast<size_t>(k)) : "";
    while (!detail.empty() && detail.back() == '\n') detail.pop_back();
    return Fail(blocked.error().code, blocked.error().message + detail);
  }
  auto net = AttachNetwork(m_spec, inner, m_run_dir);
  if (!net) return Wrap(net.error(), "network");
  m_network = std::move(*net);

  GPUNET_TRY(WriteInfo());
  m_started_ms = SystemClock::Instance().NowMs();
  if (::write(m_block_w.Get(), "x", 1) != 1) return ErrnoFail("releasing the workload", errno);
  m_block_w.Reset();
  return base::Ok();
}

base::Status Supervisor::WriteInfo() {
  WorkloadInfo info;
  info.uid = m_spec.backend == Backend::kPodman && PodmanUsernsBase() != 0 ? PodmanUsernsBase()
                                                                           : m_uid.Uid();
  info.ports = m_network->BoundPorts();
  info.unenforced = m_unenforced;
  return m_run.Write(state_files::kInfoFile, state_files::InfoToJson(info), 0644);
}

/// The podman workload: the container created under the workload's cgroup with its
/// quota disk, GPUs and environment, its network attached while runc holds the
/// command back, then `podman start --attach` as the child whose end is the
/// workload's, its output going to the logs like bwrap's.
base::Status Supervisor::LaunchPodman() {
  GPUNET_CHECK(m_podman.has_value());
  // podman takes one --cgroup-parent for every hierarchy it limits with: the v1 ones
  // where there are any (hybrid hosts, whose v2 tree has no controller), else v2.
  std::string parent;
  std::vector<std::string> keys = m_cgroups.Keys();
  if (keys.size() > 1) std::erase(keys, std::string(kCgroupV2Key));
  for (const auto& key : keys) {
    const std::string rel = m_cgroups.Relative(key, "workload");
    if (!parent.empty() && rel != parent)
      return Fail(ErrorCode::kUnsupported,
                  "podman: the workload's cgroup differs between hierarchies (" + parent + ", " +
                      rel + "); give the same cgroup parent for each");
    parent = rel;
  }
  const std::string fs = m_run_dir + "/" + state_files::kFsDir;
  PodmanContainerPlan plan;
  plan.outputs_dir = fs + "/outputs";
  plan.work_dir = fs + "/work";
  plan.tmp_dir = fs + "/tmp";
  plan.run_dir = m_run_dir;
  plan.cgroup_parent = parent;
  plan.userns_base = PodmanUsernsBase();
  plan.chown_volumes = plan.userns_base == 0;
  plan.devices = m_gpu.binds;
  plan.bind_devices = m_caps.devices.how == Enforcement::kCgroupV1;
  if (!plan.bind_devices)
    for (const auto& [host, inside] : plan.devices)
      if (host != inside)
        return Fail(ErrorCode::kUnsupported,
                    "podman: without a v1 devices cgroup, GPU nodes are given only from /dev (" +
                        host + " is elsewhere)");
  // The driver's libraries, bound where the host has them and put in LD_LIBRARY_PATH
  // (the image's loader cache does not list the host's directories).
  std::vector<std::string> lib_dirs;
  if (!m_gpu.binds.empty()) {
    plan.ro_files = DiscoverDriverLibraries().files;
    std::set<std::string> dirs;
    for (const auto& f : plan.ro_files) dirs.insert(f.substr(0, f.rfind('/')));
    lib_dirs.assign(dirs.begin(), dirs.end());
  }
  auto pid = m_podman->CreateContainer(
      m_spec, WithLibraryDirs(WorkloadEnvironment(m_spec, m_gpu.cuda_visible_devices), lib_dirs),
      plan);
  if (!pid) return std::unexpected(pid.error());
  m_container_created = true;
  m_container = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0)));
  if (!m_container.Valid()) return ErrnoFail("podman: pidfd_open of the container", errno);
  Log("container " + PodmanBackend::ContainerName(m_spec.id) + " pid " + std::to_string(*pid));
  if (plan.bind_devices && !plan.devices.empty())
    GPUNET_TRY(AllowDevicesInContainer(*pid, m_gpu.cgroup_allow, m_caps.cgroups.v1_mounts));
  auto net = AttachNetwork(m_spec, *pid, m_run_dir);
  if (!net) return Wrap(net.error(), "network");
  m_network = std::move(*net);
  GPUNET_TRY(WriteInfo());
  m_started_ms = SystemClock::Instance().NowMs();
  return SpawnPodmanStart(*pid);
}

base::Status Supervisor::SpawnPodmanStart(pid_t container_pid) {
  auto out = Pipe::Make(), err = Pipe::Make();
  for (auto* p : {&out, &err})
    if (!*p) return std::unexpected(p->error());
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) return ErrnoFail("open /dev/null", errno);
  UniqueFd devnull_fd(devnull);
  const ExecStrings argv(m_podman->StartArgv(m_spec.id));
  const ExecStrings envp(m_podman->PodmanEnv());
  const int sources[3] = {devnull, out->w.Get(), err->w.Get()};
  pid_t child = ::fork();
  if (child < 0) return ErrnoFail("fork", errno);
  if (child == 0) {
    for (int i = 0; i < 3; ++i)
      if (::dup2(sources[i], i) != i) ::_exit(126);
    ::close_range(3, ~0U, 0);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::sigaction(sig, &dfl, nullptr);
    ::execve(argv.Get()[0], argv.Get(), envp.Get());
    ::_exit(127);
  }
  m_bwrap = child;
  m_out_r = std::move(out->r);
  m_err_r = std::move(err->r);
  // Start returns once the command runs, as for the sandbox: until then the
  // container's first process is runc's init waiting for `podman start` (a kill in that
  // window would leave podman start waiting for a container that never ran).
  const std::string comm = "/proc/" + std::to_string(container_pid) + "/comm";
  const int64_t deadline = SystemClock::Instance().MonotonicMs() + 30000;
  while (ReadFileToString(comm).value_or("").starts_with("runc:")) {
    if (::waitpid(child, &m_bwrap_status, WNOHANG) == child) {
      m_bwrap_done = true;
      return Fail(ErrorCode::kUnavailable,
                  "podman start failed (exit " + std::to_string(WEXITSTATUS(m_bwrap_status)) + ")");
    }
    if (SystemClock::Instance().MonotonicMs() > deadline)
      return Fail(ErrorCode::kTimeout, "podman start did not start the container within 30 s");
    SleepMs(1);
  }
  return base::Ok();
}

/// Stop, one step per turn of Loop: SIGTERM when asked, the kill once the grace is
/// over (at once without a grace).
void Supervisor::StepStop(int64_t now) {
  if (g_stop_requested && !m_stop.requested) {
    m_stop.requested = true;
    m_stop.kill_at_ms = now + m_spec.stop_grace_ms;
    if (m_spec.stop_grace_ms > 0 && !m_bwrap_done) {
      Log("stop requested: SIGTERM, then kill after " + std::to_string(m_spec.stop_grace_ms) +
          " ms");
      SendStopSignal();
    }
  }
  if (m_stop.requested && !m_stop.killed && now >= m_stop.kill_at_ms && !m_bwrap_done) {
    Log("stop: killing the workload");
    m_stop.killed = true;
    KillNow();
  }
  // podman start follows the container's end through conmon; should it not return,
  // the workload is dead anyway and Cleanup removes the container.
  if (m_stop.killed && !m_stop.child_killed && !m_bwrap_done &&
      now >= m_stop.kill_at_ms + kPodmanStartExitMs) {
    Log("stop: podman start still runs after the kill; killing it");
    m_stop.child_killed = true;
    ::kill(m_bwrap, SIGKILL);
  }
}

/// Stop's first step: SIGTERM to the sandbox's processes (bwrap itself excepted, whose
/// end would cut the grace short), or to the container's first process.
void Supervisor::SendStopSignal() {
  if (m_spec.backend == Backend::kPodman) {
    (void)::syscall(SYS_pidfd_send_signal, m_container.Get(), SIGTERM, nullptr, 0);
    return;
  }
  for (pid_t p : m_cgroups.WorkloadPids())
    if (p != m_bwrap) ::kill(p, SIGTERM);
}

/// Stop's last step. A container dies whole with its first process (the kernel kills
/// its pid namespace); conmon, which records the exit, is left to podman.
void Supervisor::KillNow() {
  if (m_spec.backend == Backend::kPodman) {
    (void)::syscall(SYS_pidfd_send_signal, m_container.Get(), SIGKILL, nullptr, 0);
    return;
  }
  if (auto k = m_cgroups.KillWorkload(); !k) Log(k.error().ToString());
}

void Supervisor::Loop() {
  LogWriter out(m_run.Fd(), "stdout.log", m_spec.resources.log_bytes_max);
  LogWriter err(m_run.Fd(), "stderr.log", m_spec.resources.log_bytes_max);
  int64_t drain_deadline = -1;
  char buf[65536];
  while (true) {
    const int64_t now = SystemClock::Instance().MonotonicMs();
    StepStop(now);
    if (!m_bwrap_done) {
      int st = 0;
      pid_t r = ::waitpid(m_bwrap, &st, WNOHANG);
      if (r == m_bwrap) {
        m_bwrap_done = true;
        m_bwrap_status = st;
        // Everything left in the cgroup (daemons, double forks) dies with the workload.
        // A container's processes died with its pid namespace; conmon, still recording
        // the exit, goes with the container (Cleanup).
        if (m_spec.backend == Backend::kSandbox)
          if (auto k = m_cgroups.KillWorkload(); !k) Log(k.error().ToString());
        drain_deadline = SystemClock::Instance().MonotonicMs() + 2000;
      }
    }
    if (m_bwrap_done && ((!m_out_r.Valid() && !m_err_r.Valid()) ||
                         SystemClock::Instance().MonotonicMs() > drain_deadline))
      break;
    pollfd fds[4] = {{m_signals.r.Get(), POLLIN, 0},
                     {m_out_r.Get(), POLLIN, 0},
                     {m_err_r.Get(), POLLIN, 0},
                     {m_status_r.Get(), POLLIN, 0}};
    // Woken by SIGCHLD (the signal pipe) and by output; the timeout only bounds the
    // grace and the drain.
    int64_t wait_ms = m_bwrap_done ? 50 : 1000;
    if (m_stop.requested && !m_stop.killed)
      wait_ms = std::clamp<int64_t>(m_stop.kill_at_ms - now, 0, wait_ms);
    int rc = ::poll(fds, 4, static_cast<int>(wait_ms));
    if (rc < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) (void)::read(m_signals.r.Get(), buf, sizeof buf);
    auto pump = [&](UniqueFd& fd, short revents, LogWriter& w) {
      if (!(revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t n = ::read(fd.Get(), buf, sizeof buf);
      if (n > 0)
        w.Write(std::string_view(buf, static_cast<size_t>(n)));
      else if (n == 0 || (errno != EINTR && errno != EAGAIN))
        fd.Reset();
    };
    pump(m_out_r, fds[1].revents, out);
    pump(m_err_r, fds[2].revents, err);
    if (fds[3].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(m_status_r.Get(), buf, sizeof buf);
      if (n <= 0) m_status_r.Reset();
    }
  }
}

ExitStatus Supervisor::Finish() {
  ExitStatus s;
  s.started_at_ms = m_started_ms;
  s.ended_at_ms = SystemClock::Instance().NowMs();
  s.counters = m_cgroups.Counters();
  if (WIFEXITED(m_bwrap_status)) {
    s.exit_code = WEXITSTATUS(m_bwrap_status);
    // bwrap exits 128+N when its child dies of signal N.
    if (s.exit_code > 128 && s.exit_code < 128 + 65) s.signal = s.exit_code - 128;
  } else if (WIFSIGNALED(m_bwrap_status)) {
    s.signal = WTERMSIG(m_bwrap_status);
    s.exit_code = 128 + s.signal;
  }
  bool oom = s.counters.oom_kills > 0;
  if (m_spec.backend == Backend::kPodman && !g_stop_requested) {
    // `podman start --attach` answers the container's code, or 125 for its own
    // failure: podman's record says which (and whether the kernel's OOM killer acted).
    if (auto state = m_podman->State(m_spec.id)) {
      s.exit_code = state->exit_code;
      s.signal = s.exit_code > 128 && s.exit_code < 128 + 65 ? s.exit_code - 128 : 0;
      // cgroup v1 counts the OOM kill on the container's own cgroup, which podman has
      // removed by now; the limit that was hit is on ours.
      oom = oom || state->oom_killed || (s.signal == SIGKILL && PodmanV1PeakAtLimit("memory"));
      // v1 counts a refused fork on the forking process's cgroup (the container's,
      // gone too): the peak at the limit says the same.
      if (s.counters.pids_max_hits == 0 && PodmanV1PeakAtLimit("pids"))
        s.counters.pids_max_hits = 1;
    } else {
      Log(state.error().ToString());
    }
  }
  const auto& r = m_spec.resources;
  if (g_stop_requested) {
    s.reason = ExitReason::kStopped;
    s.message = "stopped: killed by the runtime";
  } else if (oom) {
    s.reason = ExitReason::kOutOfMemory;
    s.message = "killed: out of memory (limit " + FormatByteSize(r.memory_bytes) + ")";
  } else if (s.counters.pids_max_hits > 0 && s.exit_code != 0) {
    s.reason = ExitReason::kPidsLimit;
    s.message = "failed: process limit reached (limit " + std::to_string(r.pids_max) + ", " +
                std::to_string(s.counters.pids_max_hits) + " forks refused), exit code " +
                std::to_string(s.exit_code);
  } else if (s.signal != 0) {
    s.reason = ExitReason::kSignaled;
    s.message = "killed by " + SignalName(s.signal);
  } else {
    s.reason = ExitReason::kExited;
    s.message = "exited with code " + std::to_string(s.exit_code);
  }
  return s;
}

void Supervisor::Cleanup() {
  if (m_bwrap > 0 && !m_bwrap_done) {
    ::kill(m_bwrap, SIGKILL);
    int st = 0;
    ::waitpid(m_bwrap, &st, 0);
    m_bwrap_done = true;
  }
  // The container first (conmon holds it, and records its exit until podman is done):
  // then whatever is left in the cgroups is only to be killed.
  if (m_container_created)
    if (auto rm = m_podman->RemoveContainer(m_spec.id); !rm) Log(rm.error().ToString());
  if (m_cgroups_created) {
    if (auto k = m_cgroups.KillWorkload(); !k) Log(k.error().ToString());
  }
  m_network.reset();
  if (m_cgroups_created) {
    // Leave our own cgroup for the one we started in, then remove the workload's.
    for (const auto& key : m_cgroups.Keys()) {
      std::string mount =
          key == kCgroupV2Key ? m_caps.cgroups.v2_mount : m_caps.cgroups.v1_mounts.at(key);
      std::string self = key == kCgroupV2Key ? m_caps.cgroups.v2_self : m_caps.cgroups.v1_self[key];
      (void)WriteStringToFile(mount + (self == "/" ? "" : self) + "/cgroup.procs",
                              std::to_string(::getpid()));
    }
    if (auto rm = m_cgroups.Remove(); !rm) Log(rm.error().ToString());
    if (m_podman)
      for (const auto& key : m_cgroups.Keys())
        RemoveCgroupPathEverywhere(m_cgroups.Relative(key, ""));
  }
}

void Supervisor::ReportReady(const std::string& line) {
  if (!m_ready.Valid()) return;
  (void)!::write(m_ready.Get(), line.data(), line.size());
  m_ready.Reset();
}

int Supervisor::Run() {
  auto sig = Pipe::Make();
  if (!sig) {
    ReportReady("error " + sig.error().message + "\n");
    return 1;
  }
  m_signals = std::move(*sig);
  ::fcntl(m_signals.w.Get(), F_SETFL, O_NONBLOCK);
  g_signal_pipe_w = m_signals.w.Get();
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) ::sigaction(s, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto prepared = Prepare();
  if (prepared) prepared = Launch();
  if (!prepared) {
    Log("start failed: " + prepared.error().ToString());
    Cleanup();
    if (m_fs_mounted) (void)UnmountQuotaFs(m_run_dir + "/" + state_files::kFsDir);
    ReportReady("error " + prepared.error().message + "\n");
    return 1;
  }
  ReportReady("ok\n");
  Loop();
  ExitStatus status = Finish();
  Cleanup();
  Log("workload ended: " + status.message);
  // Last: the status file is what tells readers that logs and teardown are complete.
  if (auto w = m_run.Write(state_files::kStatusFile, state_files::StatusToJson(status), 0644); !w) {
    Log(w.error().ToString());
    return 1;
  }
  return 0;
}

}  // namespace

int SupervisorMain(const std::string& run_dir, int ready_fd) {
  ::fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
  // Nothing is written anywhere before the run dir is known to be one: the argument
  // must be <state_dir>/runs/<id> with a valid id, and the tree root's alone.
  auto parsed = state_files::ParseRunDir(run_dir);
  auto run = parsed ? state_files::OpenRunDir(parsed->first, parsed->second)
                    : base::Result<state_files::StateDir>(std::unexpected(parsed.error()));
  if (!run) {
    const std::string line = "error " + run.error().message + "\n";
    (void)!::write(ready_fd, line.data(), line.size());
    return 2;
  }
  // Diagnostics go to the run dir; stdin/stdout were /dev/null already.
  int log = ::openat(run->Fd(), state_files::kSupervisorLog,
                     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (log >= 0) {
    ::dup2(log, 2);
    ::close(log);
  }
  Supervisor s(std::move(*run), parsed->first, ready_fd);
  return s.Run();
}

}  // namespace gpunet::runtime
