// `gpunet provider api`: the tenant-facing process of the provider daemon
// (provider/tenant_api.h, docs/tenant-api.md "Two processes"). Internal: `provider
// run` starts it as an unprivileged user with the broker sockets and the TLS key as
// inherited descriptors, and restarts it when it exits. Hidden from `provider --help`.
#include <iostream>
#include <memory>

#include "apps/gpunet/cli.h"
#include "crypto/address.h"
#include "node/config.h"
#include "provider/tenant_api.h"

namespace gpunet::apps {
namespace {

struct ApiFlags {
  std::string broker_fds;
  int key_fd = -1;
  std::string cert;
  std::string listen = "0.0.0.0:8443";
  std::string chain_id;
  std::string provider;
};

void RunApi(const ApiFlags& f) {
  const auto fds = OrFail(provider::ParseFdList(f.broker_fds), "--broker-fds");
  if (f.key_fd < 3) FailCommand(base::ErrorCode::kInvalidArgument, "--key-fd must be 3 or more");
  for (int fd : fds) {
    if (fd == f.key_fd) {
      FailCommand(base::ErrorCode::kInvalidArgument,
                  "--key-fd " + std::to_string(fd) + " is also a broker descriptor");
    }
  }
  const auto [host, port] = OrFail(node::ParseHostPort(f.listen), "--listen");
  provider::RunTenantApiOptions options;
  options.api.server = provider::TenantApiServerDefaults(fds.size());
  options.api.server.host = host;
  options.api.server.port = port;
  options.api.cert_file = f.cert;
  if (f.chain_id.empty()) FailCommand(base::ErrorCode::kInvalidArgument, "--chain-id is empty");
  options.api.chain_id = f.chain_id;
  options.api.provider = OrFail(crypto::ParseAddress(f.provider), "--provider");
  options.broker_fds = fds;
  options.key_fd = f.key_fd;
  OrFail(provider::RunTenantApi(std::move(options),
                                [](uint16_t bound) {
                                  std::cerr << "tenant API: serving HTTPS on port " << bound
                                            << "\n";
                                }),
         "tenant API");
  std::cerr << "tenant API: every broker connection closed; exiting\n";
}

}  // namespace

void RegisterProviderApiCommand(CLI::App& provider, GlobalOptions& /*g*/) {
  auto f = std::make_shared<ApiFlags>();
  auto* api = provider.add_subcommand(
      "api", "(internal) The tenant-facing HTTPS process; `provider run` starts it without root");
  api->group("");  // hidden: nobody runs it by hand
  api->add_option("--broker-fds", f->broker_fds,
                  "Inherited broker sockets to the agent, e.g. 3,4,5,6")
      ->required();
  api->add_option("--key-fd", f->key_fd,
                  "Inherited descriptor of the TLS key (PEM); closed after reading")
      ->required();
  api->add_option("--cert", f->cert, "The TLS certificate (PEM)")->required();
  api->add_option("--listen", f->listen, "host:port to serve on (default 0.0.0.0:8443)");
  api->add_option("--chain-id", f->chain_id,
                  "The chain whose requests it serves (signatures are checked against it)")
      ->required();
  api->add_option("--provider", f->provider,
                  "This provider's address (signatures are checked against it)")
      ->required();
  api->footer(
      "Started by `gpunet provider run` (docs/tenant-api.md \"Two processes\"), which\n"
      "drops it to daemon.api_user and restarts it if it exits. It exits when every\n"
      "broker descriptor is closed.");
  api->callback([f] { RunApi(*f); });
}

}  // namespace gpunet::apps
