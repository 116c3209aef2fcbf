#include "apps/gpunet/cli.h"

namespace gpunet::apps {
void RegisterSandboxCommands(CLI::App&, GlobalOptions&) {}
}  // namespace gpunet::apps
