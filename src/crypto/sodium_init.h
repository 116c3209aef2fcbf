// One-time libsodium initialisation shared by every crypto source file.
#pragma once

namespace gpunet::crypto {

/// Initialises libsodium exactly once (thread-safe through a function-local
/// static). Every entry point that calls libsodium calls this first, so no
/// caller ever has to remember a global init step.
void EnsureSodium();

}  // namespace gpunet::crypto
