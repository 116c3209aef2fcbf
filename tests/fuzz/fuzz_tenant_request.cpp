// fuzz-libs: gpunet_client gpunet_codec gpunet_crypto gpunet_base
// The tenant API's parsers (client/tenant_request.h, client/tenant_client.h): request
// targets, the Gpunet-* signature headers, grants, revocations and the tenant-API URL.
// Never crash; what parses is canonical (encoding it again gives the same text), and
// an accepted target has none of the forms the API refuses.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/check.h"
#include "base/limits.h"
#include "client/tenant_client.h"
#include "client/tenant_request.h"

using namespace gpunet;
using namespace gpunet::client;

namespace {

bool ContainsIgnoreCase(std::string_view text, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= text.size(); ++i) {
    bool match = true;
    for (size_t j = 0; j < needle.size() && match; ++j) {
      char c = text[i + j];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      match = c == needle[j];
    }
    if (match) return true;
  }
  return false;
}

void FuzzTarget(std::string_view t) {
  if (!CheckRequestTarget(t)) return;
  GPUNET_CHECK(t.starts_with("/") && t.size() <= base::limits::kTenantTargetBytesMax);
  GPUNET_CHECK(!ContainsIgnoreCase(t, "%2f") && !ContainsIgnoreCase(t, "%00"));
  const std::string_view path = t.substr(0, t.find('?'));
  GPUNET_CHECK(path.find("/../") == std::string_view::npos && !path.ends_with("/.."));
  for (char c : t) GPUNET_CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7f);
  (void)RequestSignedBytes({"c", {}, 1}, {"GET", t, {}}, 1, {}, {});
}

void FuzzHeaders(std::string_view text) {
  HeaderList headers;
  size_t start = 0;
  while (start < text.size()) {  // one "name:value" per line
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(start, nl - start);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos)
      headers.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
    start = nl + 1;
  }
  auto auth = ParseRequestAuthHeaders(headers);
  if (!auth) {
    GPUNET_CHECK(!auth.error().message.empty());
    return;
  }
  HeaderList again = {
      {"Gpunet-Signer", base::ToHex(auth->signer)},
      {"Gpunet-Timestamp", std::to_string(auth->timestamp_ms)},
      {"Gpunet-Nonce", base::ToHex(auth->nonce)},
      {"Gpunet-Signature", base::ToHex(auth->signature)},
  };
  if (auth->grant) again.emplace_back("Gpunet-Grant", EncodeGrant(*auth->grant));
  // Only the Gpunet-* headers count, and each parsed value re-encodes to the same text.
  for (const auto& [name, value] : headers) {
    if (!ContainsIgnoreCase(name.substr(0, 7), "gpunet-")) continue;
    bool found = false;
    for (const auto& [n, v] : again) found = found || (v == value && n.size() == name.size());
    GPUNET_CHECK(found);
  }
  auto reparsed = ParseRequestAuthHeaders(again);
  GPUNET_CHECK(reparsed && reparsed->timestamp_ms == auth->timestamp_ms);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      FuzzTarget(text);
      break;
    case 1:
      FuzzHeaders(text);
      break;
    case 2:
      if (auto g = ParseGrant(text)) GPUNET_CHECK(EncodeGrant(*g) == text);
      break;
    case 3:
      if (auto r = ParseRevocation(text)) GPUNET_CHECK(EncodeRevocation(*r) == text);
      break;
    default:
      if (auto url = ParseTenantApiUrl(text)) {
        GPUNET_CHECK(!url->host.empty() && url->port != 0);
        auto again = ParseTenantApiUrl(url->base);
        GPUNET_CHECK(again && again->base == url->base);
      }
      break;
  }
  return 0;
}
