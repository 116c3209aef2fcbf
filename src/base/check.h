// Assertions for bugs: on in every build type, never used to check outside input
// (outside input gets a Result). Modelled on Bitcoin Core's src/util/check.h.
#pragma once

namespace gpunet::base {
[[noreturn]] void CheckFailed(const char* expr, const char* file, int line, const char* func);
}

#define GPUNET_CHECK(cond)                                              \
  do {                                                                  \
    if (!(cond)) [[unlikely]]                                           \
      ::gpunet::base::CheckFailed(#cond, __FILE__, __LINE__, __func__); \
  } while (0)

#define GPUNET_UNREACHABLE() \
  ::gpunet::base::CheckFailed("unreachable", __FILE__, __LINE__, __func__)
