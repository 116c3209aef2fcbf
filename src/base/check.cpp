#include "base/check.h"

#include <cstdio>
#include <cstdlib>

namespace gpunet::base {

void CheckFailed(const char* expr, const char* file, int line, const char* func) {
  std::fprintf(stderr, "gpunet: internal check failed: %s at %s:%d (%s)\n", expr, file, line, func);
  std::fflush(stderr);
  std::abort();
}

}  // namespace gpunet::base
