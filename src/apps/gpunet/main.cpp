// gpunet: one binary for the ledger node, the provider daemon and the client.
// Thin: parses the command line and calls the libraries.
#include <exception>
#include <iostream>
#include <string>

#include "apps/gpunet/cli.h"

int main(int argc, char** argv) {
  using namespace gpunet::apps;
  CLI::App app{
      "gpunet — a decentralized marketplace for GPU compute.\n"
      "Providers sell time on GPU machines; developers rent it; terms, escrow and\n"
      "payment live on a public ledger.",
      "gpunet"};
  app.require_subcommand(1);
  // Global options also after the command: `gpunet status --node URL`.
  app.fallthrough();
  app.set_version_flag("--version", "gpunet 0.1.0");
  GlobalOptions g;
  app.add_option("--home", g.home,
                 "Home directory for keys, config and data (default $GPUNET_HOME or ~/.gpunet)");
  app.add_option("--output,-o", g.output, "Output format")->check(CLI::IsMember({"text", "json"}));
  app.add_option("--node", g.node_url,
                 "Node RPC URL (default $GPUNET_NODE or http://127.0.0.1:26657)");

  RegisterKeysCommands(app, g);
  RegisterSandboxCommands(app, g);
  RegisterClientCommands(app, g);
  RegisterDevnetCommands(app, g);
  RegisterNodeCommands(app, g);
  RegisterMarketCommands(app, g);
  RegisterProviderSetupCommands(*app.get_subcommand("provider"), g);
  RegisterProviderGpusCommands(*app.get_subcommand("provider"), g);
  RegisterProviderApiCommand(*app.get_subcommand("provider"), g);
  RegisterManifestCommands(app, g);
  RegisterTaskCommands(app, g);
  RegisterRunCommand(app, g);
  RegisterProviderRunCommands(*app.get_subcommand("provider"), g);
  RegisterLeaseTenantCommands(*app.get_subcommand("lease"), g);
  RegisterLogsCommand(app, g);
  RegisterInteractiveCommands(app, g);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const CommandFailed& f) {
    PrintError(g, f.error);
    return 1;
  } catch (const std::exception& e) {
    // A command's errors are CommandFailed; anything else escaping one is a bug,
    // still reported as a message and exit 1, never an abort.
    PrintError(g, {gpunet::base::ErrorCode::kInternal,
                   std::string("unexpected error: ") + e.what() +
                       " (a bug in gpunet: please report it with the command you ran)"});
    return 1;
  } catch (...) {
    PrintError(g, {gpunet::base::ErrorCode::kInternal,
                   "unexpected error of unknown type (a bug in gpunet: please report it with the "
                   "command you ran)"});
    return 1;
  }
  return 0;
}
