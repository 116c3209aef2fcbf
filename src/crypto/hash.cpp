#include "crypto/hash.h"

#include <sodium.h>

#include "base/check.h"
#include "crypto/sodium_init.h"

namespace gpunet::crypto {

static_assert(sizeof(crypto_generichash_state) <= 384, "Blake2b256Hasher::m_state too small");
static_assert(alignof(crypto_generichash_state) <= 64, "Blake2b256Hasher::m_state misaligned");

void EnsureSodium() {
  // C++ guarantees this runs once even when several threads arrive together.
  static const int kInit = sodium_init();
  GPUNET_CHECK(kInit >= 0);
}

base::Hash32 Blake2b256(base::ByteSpan data) {
  EnsureSodium();
  base::Hash32 out;
  int rc = crypto_generichash(out.data.data(), out.kSize, data.data(), data.size(), nullptr, 0);
  GPUNET_CHECK(rc == 0);
  return out;
}

Blake2b256Hasher::Blake2b256Hasher() {
  EnsureSodium();
  int rc = crypto_generichash_init(reinterpret_cast<crypto_generichash_state*>(m_state), nullptr, 0,
                                   base::Hash32::kSize);
  GPUNET_CHECK(rc == 0);
}

Blake2b256Hasher& Blake2b256Hasher::Update(base::ByteSpan data) {
  int rc = crypto_generichash_update(reinterpret_cast<crypto_generichash_state*>(m_state),
                                     data.data(), data.size());
  GPUNET_CHECK(rc == 0);
  return *this;
}

base::Hash32 Blake2b256Hasher::Final() {
  base::Hash32 out;
  int rc = crypto_generichash_final(reinterpret_cast<crypto_generichash_state*>(m_state),
                                    out.data.data(), out.kSize);
  GPUNET_CHECK(rc == 0);
  return out;
}

}  // namespace gpunet::crypto
