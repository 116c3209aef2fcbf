// Workload ids and the state directory, attacked with real files (issue 14 item 2).
//
// The state dir is where the root supervisor reads its options and where the
// runtime reads pid and status files it acts on (kill, cgroup teardown, exit
// status). These tests make the files an attacker would make — bad ids, writable or
// foreign-owned dirs, state files replaced by links or owned by another uid — and
// check that every entry point refuses them and changes nothing. Run as root (they
// chown); each test takes milliseconds.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/host_resources.h"
#include "runtime/runtime.h"
#include "runtime/session_socket.h"
#include "runtime/state_files.h"
#include "runtime/sys_util.h"
#include "util/temp_dir.h"

namespace gpunet::runtime {
namespace {

namespace fs = std::filesystem;
using base::ErrorCode;

constexpr uid_t kOtherUid = 4242;

void WriteFile(const std::string& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path, std::ios::trunc) << text;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

/// Every entry under `dir` with its type, mode, owner and size: what "nothing
/// changed" is compared against.
std::vector<std::string> Snapshot(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    out.push_back(it->path().string() + " " + std::to_string(st.st_mode) + " " +
                  std::to_string(st.st_uid) + " " + std::to_string(st.st_size));
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// What SupervisorMain did when started as the runtime starts it.
struct SupervisorRun {
  int exit_code = -1;
  std::string reply;  ///< what it wrote on the ready fd
};

/// Runs SupervisorMain in a child (it redirects stderr and installs signal handlers).
SupervisorRun RunSupervisor(const std::string& run_dir) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    ::_exit(SupervisorMain(run_dir, fds[1]));
  }
  ::close(fds[1]);
  SupervisorRun run;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) run.reply.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

class StateDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "state dir ownership tests chown: need root";
    m_tmp.emplace(gpunet::testing::TempDirOptions{
        .parent = "/tmp", .prefix = "gpunet-statedir", .mode = 0711});
    m_dir = m_tmp->Path();
    m_state = m_dir + "/state";
    ASSERT_EQ(::mkdir(m_state.c_str(), 0711), 0);
    ASSERT_EQ(::mkdir((m_state + "/runs").c_str(), 0711), 0);
    // The attacker's own files live outside the state dir, owned by the attacker.
    m_attacker = m_dir + "/attacker";
    ASSERT_EQ(::mkdir(m_attacker.c_str(), 0755), 0);
    ASSERT_EQ(::chown(m_attacker.c_str(), kOtherUid, kOtherUid), 0);
    m_options.state_dir = m_state;
    // Never reached by these tests; a start that got this far would fail loudly.
    m_options.supervisor_command = {"/bin/false"};
    m_options.init_path = "/bin/true";  // never run: the supervisor fails first
  }
  void TearDown() override {
    if (m_victim > 0) {
      ::kill(m_victim, SIGKILL);
      ::waitpid(m_victim, nullptr, 0);
    }
  }

  static WorkloadSpec Spec(const std::string& id) {
    WorkloadSpec s;
    s.id = id;
    s.lease_id = id;
    s.command = {"/bin/true"};
    return s;
  }

  /// A run dir as Runtime::Start leaves it, without a supervisor.
  std::string MakeRunDir(const std::string& id) {
    std::string run = m_state + "/runs/" + id;
    EXPECT_EQ(::mkdir(run.c_str(), 0711), 0);
    WriteFile(run + "/" + state_files::kSpecFile, state_files::SpecToJson(Spec(id)), 0600);
    WriteFile(run + "/" + state_files::kOptionsFile, state_files::OptionsToJson(m_options), 0600);
    return run;
  }

  /// A process that is not a supervisor: what a forged pid file points at.
  pid_t Victim() {
    m_victim = ::fork();
    if (m_victim == 0) {
      ::pause();
      ::_exit(0);
    }
    return m_victim;
  }
  bool VictimAlive() const { return ::waitpid(m_victim, nullptr, WNOHANG) == 0; }

  std::optional<gpunet::testing::TempDir> m_tmp;  // made once the test knows it runs
  std::string m_dir, m_state, m_attacker;
  RuntimeOptions m_options;
  pid_t m_victim = -1;
};

// ---- ids ------------------------------------------------------------------------

const std::vector<std::string>& BadIds() {
  static const std::vector<std::string> ids = {"",
                                               ".",
                                               "..",
                                               "/",
                                               "a/b",
                                               "../x",
                                               "x/..",
                                               "../../etc",
                                               "a\\b",
                                               "a\nb",
                                               "a\tb",
                                               "a\rb",
                                               "\x7f",
                                               "\x1b[31m",
                                               "a b",
                                               "a:b",
                                               "a,b",
                                               "Upper",
                                               "-lead",
                                               "a.b",
                                               "\xc3\xa9",
                                               "a*",
                                               "a\x01",
                                               "~root",
                                               std::string("a\0b", 3),
                                               std::string(65, 'a')};
  return ids;
}

template <class T>
base::Status AsStatus(const base::Result<T>& r) {
  if (!r) return std::unexpected(r.error());
  return base::Ok();
}

TEST_F(StateDirTest, EveryEntryPointRefusesABadIdAndCreatesNothing) {
  MakeRunDir("good-1");
  const auto before = Snapshot(m_dir);
  Runtime rt(m_options);
  const std::vector<std::pair<const char*, std::function<base::Status(const std::string&)>>>
      entry_points = {
          {"Start", [&](const std::string& id) { return AsStatus(rt.Start(Spec(id))); }},
          {"Attach", [&](const std::string& id) { return AsStatus(rt.Attach(id)); }},
          {"Poll", [&](const std::string& id) { return AsStatus(rt.Poll(id)); }},
          {"Wait", [&](const std::string& id) { return AsStatus(rt.Wait(id, 0)); }},
          {"Follow",
           [&](const std::string& id) {
             return AsStatus(rt.Follow(id, [](std::string_view, std::string_view) {}));
           }},
          {"Stop", [&](const std::string& id) { return AsStatus(rt.Stop(id)); }},
          {"Outputs", [&](const std::string& id) { return AsStatus(rt.Outputs(id)); }},
          {"Remove", [&](const std::string& id) { return rt.Remove(id); }},
          {"RunDir", [&](const std::string& id) { return AsStatus(rt.RunDir(id)); }},
      };
  for (const auto& [name, call] : entry_points) {
    for (const auto& id : BadIds()) {
      auto r = call(id);
      ASSERT_FALSE(r.has_value()) << name << " accepted id '" << id << "'";
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument)
          << name << " '" << id << "': " << r.error().ToString();
      EXPECT_NE(r.error().message.find("[a-z0-9-]"), std::string::npos)
          << "the error says what is allowed: " << r.error().message;
      ASSERT_EQ(Snapshot(m_dir), before) << name << " '" << id << "' changed the state dir";
    }
  }
  // The good id is still there and still readable.
  EXPECT_TRUE(rt.Attach("good-1").has_value());
  EXPECT_EQ(rt.List(), std::vector<std::string>{"good-1"});
}

TEST_F(StateDirTest, SupervisorRefusesARunDirArgumentThatIsNotOneRunDir) {
  MakeRunDir("good-1");
  const std::string victim_dir = m_dir + "/victim";
  ASSERT_EQ(::mkdir(victim_dir.c_str(), 0711), 0);
  const auto before = Snapshot(m_dir);
  for (const std::string& arg :
       {m_state + "/runs/..", m_state + "/runs/.", m_state + "/runs/Bad",
        m_state + "/runs/../runs/good-1", m_state + "/runs//good-1", m_state + "/runs/good-1/",
        victim_dir, m_state + "/runs", std::string("state/runs/good-1"), m_state + "/runs/a\nb",
        std::string(""), m_dir + "/other/runs/good-1"}) {
    SCOPED_TRACE("--run-dir '" + arg + "'");
    SupervisorRun run = RunSupervisor(arg);
    EXPECT_NE(run.exit_code, 0);
    EXPECT_TRUE(run.reply.starts_with("error ")) << run.reply;
    ASSERT_EQ(Snapshot(m_dir), before) << "the supervisor wrote something";
  }
}

// ---- the state dir itself ----------------------------------------------------------

TEST_F(StateDirTest, StartRefusesAStateDirWritableByOthersAndLeavesItAsItIs) {
  for (mode_t mode : {0777, 0770, 0731, 0713}) {
    SCOPED_TRACE(mode);
    ASSERT_EQ(::chmod(m_state.c_str(), mode), 0);
    auto r = Runtime(m_options).Start(Spec("w1"));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied) << r.error().ToString();
    EXPECT_NE(r.error().message.find(m_state), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("chmod"), std::string::npos) << r.error().message;
    struct stat st {};
    ASSERT_EQ(::stat(m_state.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, mode) << "the runtime must not quietly repair it";
    EXPECT_FALSE(fs::exists(m_state + "/runs/w1"));
    // Readers refuse it too: a pid file there could have been planted.
    EXPECT_EQ(Runtime(m_options).Attach("w1").error().code, ErrorCode::kPermissionDenied);
  }
}

TEST_F(StateDirTest, StartRefusesAStateDirOwnedByAnotherUid) {
  ASSERT_EQ(::chown(m_state.c_str(), kOtherUid, 0), 0);
  auto r = Runtime(m_options).Start(Spec("w1"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().message.find(m_state), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("chown"), std::string::npos) << r.error().message;
  EXPECT_FALSE(fs::exists(m_state + "/runs/w1"));
}

TEST_F(StateDirTest, StartRefusesRunsDirAndParentsThatOthersControl) {
  // runs/ writable by others: anyone could plant a run dir.
  ASSERT_EQ(::chmod((m_state + "/runs").c_str(), 0777), 0);
  auto r = Runtime(m_options).Start(Spec("w1"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().message.find(m_state + "/runs"), std::string::npos) << r.error().message;
  ASSERT_EQ(::chmod((m_state + "/runs").c_str(), 0711), 0);

  // A parent owned by another user: that user can rename the state dir away and put
  // one of their own in its place.
  ASSERT_EQ(::chown(m_dir.c_str(), kOtherUid, kOtherUid), 0);
  r = Runtime(m_options).Start(Spec("w1"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().message.find(m_dir), std::string::npos) << r.error().message;
  ASSERT_EQ(::chown(m_dir.c_str(), 0, 0), 0);

  // A state dir that is a link (even to a good dir) is not followed.
  const std::string real = m_dir + "/real-state";
  ASSERT_EQ(::mkdir(real.c_str(), 0711), 0);
  RuntimeOptions linked = m_options;
  linked.state_dir = m_dir + "/linked-state";
  ASSERT_EQ(::symlink(real.c_str(), linked.state_dir.c_str()), 0);
  r = Runtime(linked).Start(Spec("w1"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied) << r.error().ToString();
  EXPECT_TRUE(fs::is_empty(real)) << "nothing is created through the link";
}

TEST_F(StateDirTest, AStateDirPathThroughALinkIsRefusedAndNamesTheRealPath) {
  // /home/op/gpn -> /var/lib/gpunet: the resolved dirs are root's, but op may re-point
  // the link while the root supervisor writes through the path.
  const std::string link = m_attacker + "/gpn";
  ASSERT_EQ(::symlink(m_dir.c_str(), link.c_str()), 0);
  RuntimeOptions linked = m_options;
  linked.state_dir = link + "/state";
  MakeRunDir("w0");
  const auto before = Snapshot(m_dir);
  auto r = Runtime(linked).Start(Spec("w1"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().message.find(link + ","), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("give the real path: " + m_state), std::string::npos)
      << r.error().message;
  EXPECT_FALSE(Runtime(linked).Remove("w0").has_value());
  EXPECT_EQ(Snapshot(m_dir), before) << "nothing made or removed through the link";

  // The supervisor, handed a run dir through the link, refuses it before writing.
  SupervisorRun sup = RunSupervisor(linked.state_dir + "/runs/w0");
  EXPECT_NE(sup.exit_code, 0);
  EXPECT_NE(sup.reply.find("symbolic link"), std::string::npos) << sup.reply;
  EXPECT_EQ(Snapshot(m_dir), before);

  // A link root made in a root-only dir is refused as well: one rule, one message.
  const std::string root_link = m_dir + "/alias";
  ASSERT_EQ(::symlink(m_dir.c_str(), root_link.c_str()), 0);
  linked.state_dir = root_link + "/state";
  r = Runtime(linked).Start(Spec("w1"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied) << r.error().ToString();
}

TEST_F(StateDirTest, MissingParentsOfTheStateDirAreMade0755EvenUnderUmaskZero) {
  RuntimeOptions fresh = m_options;
  fresh.state_dir = m_dir + "/var/lib/state";
  const mode_t old_umask = ::umask(0);
  (void)Runtime(fresh).Start(Spec("w1"));  // the supervisor is /bin/false: Start fails later
  ::umask(old_umask);
  struct stat st {};
  for (const std::string& parent : {m_dir + "/var", m_dir + "/var/lib"}) {
    ASSERT_EQ(::stat(parent.c_str(), &st), 0) << parent;
    EXPECT_EQ(st.st_mode & 07777, 0755u) << parent << ": others could swap the state dir";
  }
}

TEST_F(StateDirTest, OpenSessionSaysWhyThereIsNoSession) {
  Runtime rt(m_options);
  auto unknown = rt.OpenSession("w0");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(rt.OpenSession("../w0").error().code, ErrorCode::kInvalidArgument);
  // A run dir whose init does not listen (never started, or ended): not running.
  const std::string run = MakeRunDir("w1");
  auto idle = rt.OpenSession("w1");
  ASSERT_FALSE(idle.has_value());
  EXPECT_EQ(idle.error().code, ErrorCode::kConflict);
  EXPECT_EQ(idle.error().message, "the workload is not running");
  // A podman workload takes no sessions yet, and says what does.
  WorkloadSpec podman = Spec("w1");
  podman.backend = Backend::kPodman;
  podman.image = "localhost/img:1";
  WriteFile(run + "/" + state_files::kSpecFile, state_files::SpecToJson(podman), 0600);
  auto refused = rt.OpenSession("w1");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnsupported);
  EXPECT_NE(refused.error().message.find("environment: host"), std::string::npos);
}

TEST_F(StateDirTest, SandboxEtcAndWorkDirsAreNeverWrittenThroughALink) {
  const std::string run = MakeRunDir("w1");
  auto run_dir = state_files::OpenRunDir(m_state, "w1");
  ASSERT_TRUE(run_dir.has_value()) << run_dir.error().ToString();
  const std::string target = m_attacker + "/passwd";
  WriteFile(target, "attacker\n");
  ASSERT_EQ(::mkdir((run + "/etc").c_str(), 0711), 0);
  ASSERT_EQ(::symlink(target.c_str(), (run + "/etc/passwd").c_str()), 0);
  auto written = WriteSandboxEtc(*run_dir, 5000, "nameserver 10.0.2.3\n");
  ASSERT_FALSE(written.has_value()) << "a link where a file of ours should be is refused";
  EXPECT_NE(written.error().message.find(run + "/etc/passwd"), std::string::npos)
      << written.error().message;
  std::ifstream in(target);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "attacker\n") << "the link's target was written";

  // etc/ itself a link to the attacker's dir: refused, nothing written there.
  fs::remove_all(run + "/etc");
  ASSERT_EQ(::symlink(m_attacker.c_str(), (run + "/etc").c_str()), 0);
  const auto attacker_before = Snapshot(m_attacker);
  auto etc = WriteSandboxEtc(*run_dir, 5000, "");
  ASSERT_FALSE(etc.has_value());
  EXPECT_EQ(etc.error().code, ErrorCode::kPermissionDenied) << etc.error().ToString();
  EXPECT_EQ(Snapshot(m_attacker), attacker_before);

  // fs/work a link to the attacker's dir: not made, and chown never reaches the target.
  ASSERT_EQ(::mkdir((run + "/fs").c_str(), 0711), 0);
  ASSERT_EQ(::symlink(m_attacker.c_str(), (run + "/fs/work").c_str()), 0);
  auto fs_dir = run_dir->Sub(state_files::kFsDir, state_files::Create::kNo);
  ASSERT_TRUE(fs_dir.has_value()) << fs_dir.error().ToString();
  EXPECT_FALSE(MakeWorkloadDirs(*fs_dir, 5000).has_value());
  EXPECT_EQ(Snapshot(m_attacker), attacker_before);
  struct stat st {};
  ASSERT_EQ(::lstat(m_attacker.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kOtherUid);
}

// ---- the files in a run dir ----------------------------------------------------------

enum class Attack { kSymlink, kForeignOwner, kGroupWritable };

const char* AttackName(Attack a) {
  switch (a) {
    case Attack::kSymlink:
      return "symlink to the attacker's file";
    case Attack::kForeignOwner:
      return "owned by another uid";
    case Attack::kGroupWritable:
      return "writable by group and others";
  }
  return "?";
}

/// Puts `content` at <run>/<name> the way the attack says.
void Plant(const std::string& run, const std::string& name, const std::string& content,
           const std::string& attacker_dir, Attack attack) {
  const std::string path = run + "/" + name;
  ::unlink(path.c_str());
  switch (attack) {
    case Attack::kSymlink: {
      const std::string target = attacker_dir + "/" + name;
      WriteFile(target, content, 0644);
      ASSERT_EQ(::chown(target.c_str(), kOtherUid, kOtherUid), 0);
      ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
      break;
    }
    case Attack::kForeignOwner:
      WriteFile(path, content, 0644);
      ASSERT_EQ(::chown(path.c_str(), kOtherUid, kOtherUid), 0);
      break;
    case Attack::kGroupWritable:
      WriteFile(path, content, 0666);
      break;
  }
}

constexpr Attack kAttacks[] = {Attack::kSymlink, Attack::kForeignOwner, Attack::kGroupWritable};

void ExpectRefusal(const base::Error& e, const std::string& path) {
  EXPECT_EQ(e.code, ErrorCode::kPermissionDenied) << e.ToString();
  EXPECT_NE(e.message.find(path), std::string::npos) << "names the file: " << e.message;
}

TEST_F(StateDirTest, ForgedPidFileIsNeitherFollowedNorKilled) {
  pid_t victim = Victim();
  const std::string forged =
      std::to_string(victim) + " " + std::to_string(ProcessStartTime(victim)) + "\n";
  for (Attack attack : kAttacks) {
    SCOPED_TRACE(AttackName(attack));
    const std::string run = MakeRunDir("w1");
    Plant(run, state_files::kPidFile, forged, m_attacker, attack);
    Runtime rt(m_options);
    auto info = rt.Attach("w1");
    ASSERT_FALSE(info.has_value()) << "Attach read the forged pid " << info->supervisor_pid;
    ExpectRefusal(info.error(), run + "/" + state_files::kPidFile);
    auto stopped = rt.Stop("w1");
    ASSERT_FALSE(stopped.has_value());
    ExpectRefusal(stopped.error(), run + "/" + state_files::kPidFile);
    EXPECT_TRUE(VictimAlive()) << "Stop signalled the process a forged pid file names";
    EXPECT_FALSE(rt.Remove("w1").has_value());
    EXPECT_TRUE(VictimAlive());
    fs::remove_all(run);
  }
}

TEST_F(StateDirTest, ForgedStatusAndInfoFilesAreRefused) {
  ExitStatus forged;
  forged.message = "forged: exited with code 0";
  WorkloadInfo forged_info;
  forged_info.uid = 0;
  for (Attack attack : kAttacks) {
    SCOPED_TRACE(AttackName(attack));
    const std::string run = MakeRunDir("w1");
    Plant(run, state_files::kStatusFile, state_files::StatusToJson(forged), m_attacker, attack);
    auto polled = Runtime(m_options).Poll("w1");
    ASSERT_FALSE(polled.has_value()) << "Poll returned the forged status";
    ExpectRefusal(polled.error(), run + "/" + state_files::kStatusFile);
    ::unlink((run + "/" + state_files::kStatusFile).c_str());

    Plant(run, state_files::kInfoFile, state_files::InfoToJson(forged_info), m_attacker, attack);
    auto info = Runtime(m_options).Attach("w1");
    ASSERT_FALSE(info.has_value()) << "Attach returned the forged info";
    ExpectRefusal(info.error(), run + "/" + state_files::kInfoFile);
    fs::remove_all(run);
  }
}

TEST_F(StateDirTest, FollowReadsOnlyLogsTheRuntimeWrote) {
  ExitStatus done;
  done.message = "exited with code 0";
  for (Attack attack : kAttacks) {
    SCOPED_TRACE(AttackName(attack));
    const std::string run = MakeRunDir("w1");
    WriteFile(run + "/" + state_files::kStatusFile, state_files::StatusToJson(done), 0600);
    WriteFile(run + "/stdout.log", "genuine\n", 0600);
    Plant(run, "stderr.log", "forged log line\n", m_attacker, attack);
    std::string out, err;
    auto followed = Runtime(m_options).Follow("w1", [&](std::string_view s, std::string_view d) {
      (s == "stdout" ? out : err).append(d);
    });
    ASSERT_TRUE(followed.has_value()) << followed.error().ToString();
    EXPECT_EQ(out, "genuine\n");
    EXPECT_EQ(err, "") << "Follow passed on a log the runtime did not write";
    fs::remove_all(run);
  }
}

TEST_F(StateDirTest, ForgedOptionsAreNotUsedToRemove) {
  // The options name the cgroups Remove kills: an attacker's copy must not be read.
  RuntimeOptions attacker_options = m_options;
  attacker_options.state_dir = m_attacker;
  for (Attack attack : kAttacks) {
    SCOPED_TRACE(AttackName(attack));
    const std::string run = MakeRunDir("w1");
    Plant(run, state_files::kOptionsFile, state_files::OptionsToJson(attacker_options), m_attacker,
          attack);
    auto removed = Runtime(m_options).Remove("w1");
    ASSERT_FALSE(removed.has_value()) << "Remove used a forged options file";
    ExpectRefusal(removed.error(), run + "/" + state_files::kOptionsFile);
    EXPECT_TRUE(fs::exists(run)) << "a refused Remove deletes nothing";
    fs::remove_all(run);
  }
}

TEST_F(StateDirTest, SupervisorRefusesForgedSpecOrOptions) {
  // Content the old supervisor would have parsed and complained about; the new one
  // must not read it at all.
  for (const char* file : {state_files::kSpecFile, state_files::kOptionsFile}) {
    for (Attack attack : kAttacks) {
      SCOPED_TRACE(std::string(file) + ": " + AttackName(attack));
      const std::string run = MakeRunDir("w1");
      Plant(run, file, "{\"forged\": true}", m_attacker, attack);
      const auto attacker_before = Snapshot(m_attacker);
      SupervisorRun sup = RunSupervisor(run);
      EXPECT_NE(sup.exit_code, 0);
      EXPECT_TRUE(sup.reply.starts_with("error ")) << sup.reply;
      EXPECT_NE(sup.reply.find(run + "/" + file), std::string::npos) << sup.reply;
      EXPECT_EQ(sup.reply.find("not valid"), std::string::npos)
          << "the supervisor parsed the forged file: " << sup.reply;
      EXPECT_EQ(Snapshot(m_attacker), attacker_before);
      fs::remove_all(run);
    }
  }
}

TEST_F(StateDirTest, SupervisorRefusesARunDirOthersCanWrite) {
  const std::string run = MakeRunDir("w1");
  ASSERT_EQ(::chmod(run.c_str(), 0777), 0);
  SupervisorRun sup = RunSupervisor(run);
  EXPECT_NE(sup.exit_code, 0);
  EXPECT_NE(sup.reply.find(run), std::string::npos) << sup.reply;
  EXPECT_NE(sup.reply.find("chmod"), std::string::npos) << sup.reply;
  EXPECT_FALSE(fs::exists(run + "/" + state_files::kPidFile)) << "nothing written into it";
  EXPECT_FALSE(fs::exists(run + "/" + state_files::kSupervisorLog));
}

// The in-sandbox init runs in every tenant's sandbox: a root runtime takes it only when
// root owns it and its folder and neither is group- or world-writable.
TEST(InitPathTest, RootRuntimeRefusesAnInitOthersCanChange) {
  if (::geteuid() != 0) GTEST_SKIP() << "the ownership check applies to a root runtime";
  gpunet::testing::TempDir tmp;
  const std::string dir = tmp.Sub("bin");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string init = dir + "/gpunet-init";
  { std::ofstream(init) << "#!/bin/sh\n"; }
  ASSERT_EQ(::chmod(init.c_str(), 0755), 0);
  auto ok = ResolveInitPath(init);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(*ok, init);
  // Reached through a link: the real file is what is checked and bound.
  const std::string link = tmp.Sub("init-link");
  ASSERT_EQ(::symlink(init.c_str(), link.c_str()), 0);
  auto linked = ResolveInitPath(link);
  ASSERT_TRUE(linked.has_value()) << linked.error().message;
  EXPECT_EQ(*linked, init);

  const auto refused = [&](const std::string& why) {
    auto r = ResolveInitPath(link);
    ASSERT_FALSE(r.has_value()) << why;
    EXPECT_EQ(r.error().code, base::ErrorCode::kPermissionDenied) << why;
    EXPECT_NE(r.error().message.find("root"), std::string::npos) << r.error().message;
  };
  // One change at a time, each undone before the next: mode and owner as given.
  struct Change {
    const std::string* path;
    mode_t mode;
    uid_t uid;
    const char* what;
  };
  for (const Change& c : {Change{&init, 0775, 0, "group-writable file"},
                          Change{&init, 0757, 0, "world-writable file"},
                          Change{&init, 0755, 65534, "file owned by nobody"},
                          Change{&dir, 0777, 0, "world-writable folder"},
                          Change{&dir, 0755, 65534, "folder owned by nobody"}}) {
    ASSERT_EQ(::chmod(c.path->c_str(), c.mode), 0);
    ASSERT_EQ(::chown(c.path->c_str(), c.uid, c.uid), 0);
    refused(c.what);
    ASSERT_EQ(::chown(c.path->c_str(), 0, 0), 0);
    ASSERT_EQ(::chmod(c.path->c_str(), 0755), 0);
  }
  EXPECT_TRUE(ResolveInitPath(link).has_value());
}

}  // namespace
}  // namespace gpunet::runtime
