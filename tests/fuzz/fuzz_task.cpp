// fuzz-libs: gpunet_client gpunet_codec gpunet_crypto gpunet_base
// The task file (client/task.h) and .gpunetignore (client/gpunetignore.h) parsers:
// never crash or hang on any bytes (yaml-cpp errors, aliases, deep nesting, many
// **s included); every refusal names the file; an accepted task derives a manifest
// the manifest's own rules accept, an offer filter and an order.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/check.h"
#include "client/gpunetignore.h"
#include "client/manifest.h"
#include "client/task.h"

using namespace gpunet::client;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto task = ParseTask(text, "t.yaml", "");
  if (task) {
    Manifest m = TaskManifest(*task);
    GPUNET_CHECK(ValidateManifest(m).has_value());
    GPUNET_CHECK(m.command.empty() == (task->setup.empty() && task->run.empty()));
    GPUNET_CHECK(task->close_on_exit ? !task->Interactive() : true);
    TaskOfferFilter filter = TaskFilter(*task);  // asserts the words parse
    GPUNET_CHECK(!filter.words.empty());
    auto order = TaskOrder(*task, 30'000);
    GPUNET_CHECK(order.has_value());
    GPUNET_CHECK(order->manifest_hash == ManifestHash(m));
    GPUNET_CHECK(PlanTaskOutputs(*task).selections.size() == task->outputs.size());
  } else {
    GPUNET_CHECK(task.error().message.starts_with("t.yaml"));
  }
  auto rules = IgnoreRules::Parse(text, ".gpunetignore");
  if (rules) {
    for (std::string_view path : {"a", "a/b", "x/y/z/w.ckpt", "data/1/2/3/4/5/6/7/8/9/10/11"})
      (void)rules->Ignored(path, path.size() % 2 == 0);
  } else {
    GPUNET_CHECK(rules.error().message.starts_with(".gpunetignore"));
  }
  return 0;
}
