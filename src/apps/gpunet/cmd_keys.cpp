#include "apps/gpunet/cli.h"

namespace gpunet::apps {
void RegisterKeysCommands(CLI::App&, GlobalOptions&) {}
}  // namespace gpunet::apps
