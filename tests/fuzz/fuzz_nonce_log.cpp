// fuzz-libs: gpunet_provider
// The tenant API's nonce log (provider/nonce_store.h) as a crash or a disk may leave
// it: any bytes either open (a torn last record cut off) or are refused as corrupt;
// never a crash. A log that opens is compacted into one that opens again with the
// same entries.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "base/check.h"
#include "provider/nonce_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    std::string templ = "/tmp/fuzz_nonce_log.XXXXXX";
    GPUNET_CHECK(::mkdtemp(templ.data()) != nullptr);
    return templ;
  }();
  const std::string path = dir + "/nonces.log";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto store = gpunet::provider::NonceStore::Open(dir, 0);
  if (!store) {
    GPUNET_CHECK(store.error().code == gpunet::base::ErrorCode::kCorrupt);
    return 0;
  }
  const size_t entries = (*store)->Entries();
  store->reset();
  auto again = gpunet::provider::NonceStore::Open(dir, 0);
  GPUNET_CHECK(again && (*again)->Entries() == entries);
  return 0;
}
