// fuzz-libs: gpunet_client gpunet_codec gpunet_crypto gpunet_base
// The workload manifest (client/manifest.h, docs/manifest.md): parsing never crashes
// or hangs on any bytes, as JSON or as YAML; whatever parses has a canonical form that
// parses back to the same manifest (parse(canonical(x)) == x), is a fixed point
// (canonical(parse(canonical(x))) == canonical(x)), and is what the provider accepts
// under its own hash; the input itself is accepted as canonical only when it is.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/check.h"
#include "client/manifest.h"
#include "crypto/hash.h"

using namespace gpunet;
using namespace gpunet::client;

namespace {

/// Refusals quote hostile input escaped, so they can travel as JSON to a tenant.
bool IsPrintableAscii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) return false;
  return true;
}

void CheckRoundTrip(const Manifest& m) {
  GPUNET_CHECK(ValidateManifest(m).has_value());
  std::string canonical = CanonicalManifestJson(m);
  GPUNET_CHECK(canonical.size() <= kManifestBytesMax);  // so a provider takes it
  auto again = ParseCanonicalManifest(canonical);
  GPUNET_CHECK(again.has_value());
  GPUNET_CHECK(*again == m);
  GPUNET_CHECK(CanonicalManifestJson(*again) == canonical);
  base::Hash32 hash = crypto::Blake2b256(base::AsBytes(canonical));
  GPUNET_CHECK(ManifestHash(m) == hash);
  auto accepted = VerifySubmittedManifest(canonical, hash);
  GPUNET_CHECK(accepted.has_value() && *accepted == m);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto json = ParseManifestJson(text);
  auto canonical = ParseCanonicalManifest(text);
  if (json) {
    CheckRoundTrip(*json);
    bool is_canonical = CanonicalManifestJson(*json) == text;
    GPUNET_CHECK(canonical.has_value() == is_canonical);
    if (!is_canonical) GPUNET_CHECK(canonical.error().code == base::ErrorCode::kNonCanonical);
  } else {
    GPUNET_CHECK(!json.error().message.empty());
    GPUNET_CHECK(IsPrintableAscii(json.error().message));
    GPUNET_CHECK(!canonical.has_value());
  }
  auto loaded = ParseManifestText(text, "m.yaml");
  if (loaded) {
    CheckRoundTrip(loaded->manifest);
    GPUNET_CHECK(loaded->canonical == CanonicalManifestJson(loaded->manifest));
    GPUNET_CHECK(loaded->hash == crypto::Blake2b256(base::AsBytes(loaded->canonical)));
  } else {
    GPUNET_CHECK(loaded.error().message.starts_with("m.yaml: "));
    GPUNET_CHECK(IsPrintableAscii(loaded.error().message));
  }
  return 0;
}
