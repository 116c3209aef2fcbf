// The OpenSSH text `gpunet ssh-config` writes (client/ssh_config.h).
#include "client/ssh_config.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "util/temp_dir.h"

namespace gpunet::client {
namespace {

SshHostEntry Entry() {
  return {7,
          "/usr/local/bin/gpunet",
          "/home/ada/.gpunet",
          "http://127.0.0.1:26657",
          "/home/ada/.ssh/id_ed25519",
          "/home/ada/.gpunet/ssh/known_hosts"};
}

TEST(SshConfig, HostBlockHasTheSettingsAndAQuotedProxyCommand) {
  auto block = SshHostBlock(Entry());
  ASSERT_TRUE(block) << block.error().ToString();
  EXPECT_TRUE(block->starts_with("Host gpunet-7\n"));
  for (std::string_view line :
       {"  User gpunet\n", "  HostKeyAlias gpunet-7\n",
        "  UserKnownHostsFile /home/ada/.gpunet/ssh/known_hosts\n", "  StrictHostKeyChecking yes\n",
        "  IdentityFile /home/ada/.ssh/id_ed25519\n", "  IdentitiesOnly yes\n",
        "  ProxyCommand '/usr/local/bin/gpunet' --home '/home/ada/.gpunet' --node "
        "'http://127.0.0.1:26657' ssh-proxy 7\n"})
    EXPECT_NE(block->find(line), std::string::npos) << line << "\n" << *block;
}

/// What `ssh -G` (OpenSSH's own reading of a config, nothing connects) makes of
/// `config` for gpunet-7 with `args`, lower-case `key value` lines.
std::string SshResolved(const std::string& config, const std::string& args) {
  gpunet::testing::TempDir dir;
  std::ofstream(dir.Sub("config")) << config;
  std::string out;
  FILE* p =
      ::popen(("ssh -G -F " + dir.Sub("config") + " " + args + " gpunet-7 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, p)) > 0;) out.append(buffer, n);
  ::pclose(p);
  return out;
}

// A `Host *` with ForwardAgent/ForwardX11 yes after the block (ssh takes the first
// value) must not hand the user's agent or display to the lease; the user's own -L
// still works (no ClearAllForwardings).
TEST(SshConfig, HostBlockForwardsNoAgentNorX11ButKeepsTheUsersLocalForward) {
  auto block = SshHostBlock(Entry());
  ASSERT_TRUE(block) << block.error().ToString();
  for (std::string_view line : {"  ForwardAgent no\n", "  ForwardX11 no\n",
                                "  GSSAPIDelegateCredentials no\n", "  PermitLocalCommand no\n"})
    EXPECT_NE(block->find(line), std::string::npos) << line << "\n" << *block;
  EXPECT_EQ(block->find("ClearAllForwardings"), std::string::npos);
  if (::access("/usr/bin/ssh", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/ssh to read it";
  const std::string resolved =
      SshResolved(*block +
                      "\nHost *\n  ForwardAgent yes\n  ForwardX11 yes\n"
                      "  GSSAPIDelegateCredentials yes\n  PermitLocalCommand yes\n",
                  "-L 18888:127.0.0.1:8888");
  for (std::string_view line :
       {"forwardagent no\n", "forwardx11 no\n", "gssapidelegatecredentials no\n",
        "permitlocalcommand no\n", "localforward 18888 [127.0.0.1]:8888\n"})
    EXPECT_NE(resolved.find(line), std::string::npos) << line << "\n" << resolved;
}

TEST(SshConfig, ValuesAShellOrSshCouldReadOtherwiseAreRefused) {
  for (std::string_view bad :
       {"/home/a b", "/x'y", "/x%h", "/x$HOME", "/x`id`", "/x;id", "/x\\y", "~/k", "/x\ny", ""}) {
    SshHostEntry e = Entry();
    e.home = std::string(bad);
    EXPECT_FALSE(SshHostBlock(e)) << bad;
    e = Entry();
    e.identity_file = std::string(bad);
    EXPECT_FALSE(SshHostBlock(e)) << bad;
  }
  EXPECT_TRUE(CheckSshConfigValue("x", "https://node.example:443/a_b-c+d@e,f=g"));
}

TEST(SshConfig, ABlockIsReplacedNeverDuplicated) {
  const std::string mine = "Host work\n  User me\n";
  const std::string old7 = "Host gpunet-7\n  User old\n";
  const std::string other = "Host gpunet-70\n  User x\nMatch all\n  User y\n";
  const std::string config = mine + old7 + other;
  const std::string updated = ReplaceSshHostBlock(config, "gpunet-7", "Host gpunet-7\n  New 1\n");
  EXPECT_EQ(updated, mine + "Host gpunet-7\n  New 1\n" + other);
  EXPECT_EQ(ReplaceSshHostBlock(updated, "gpunet-7", "Host gpunet-7\n  New 1\n"), updated);
  EXPECT_EQ(ReplaceSshHostBlock(mine, "gpunet-8", "Host gpunet-8\n"), mine + "\nHost gpunet-8\n");
  EXPECT_EQ(ReplaceSshHostBlock("", "gpunet-8", "Host gpunet-8\n"), "Host gpunet-8\n");
}

TEST(SshConfig, PublicKeyLinesAndKnownHosts) {
  const std::string key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf0 root@lease";
  auto line = CheckSshPublicKeyLine("the host key", key + "\n");
  ASSERT_TRUE(line) << line.error().ToString();
  EXPECT_EQ(*line, key);
  EXPECT_FALSE(CheckSshPublicKeyLine("k", "ssh-dss AAAAB3NzaC1kc3MAAACBAP"));
  EXPECT_FALSE(CheckSshPublicKeyLine("k", "ssh-ed25519 AAAA\x1b[2JAAAAAAAAAAAAA"));
  EXPECT_FALSE(CheckSshPublicKeyLine("k", "ssh-ed25519 not*base64*at*all*x"));
  EXPECT_FALSE(CheckSshPublicKeyLine("k", "ssh-ed25519"));
  EXPECT_FALSE(CheckSshPublicKeyLine("k", "{\"address\": \"gpn1...\"}"));
  const std::string hosts = "gpunet-7 ssh-ed25519 OLD\ngpunet-70 ssh-ed25519 KEEP\n";
  EXPECT_EQ(ReplaceKnownHost(hosts, "gpunet-7", key),
            "gpunet-70 ssh-ed25519 KEEP\ngpunet-7 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf0\n");
}

}  // namespace
}  // namespace gpunet::client
