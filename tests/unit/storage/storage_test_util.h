// Helpers shared by storage's tests (their temporary directory is util/temp_dir.h).
#pragma once

#include <string_view>

#include "base/bytes.h"
#include "state/kv.h"

namespace gpunet::storage::testing {

inline base::Bytes B(std::string_view s) {
  return base::Bytes(s.begin(), s.end());
}

}  // namespace gpunet::storage::testing
