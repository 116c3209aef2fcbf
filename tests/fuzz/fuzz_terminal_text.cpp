// fuzz-libs: gpunet_client gpunet_codec gpunet_crypto gpunet_base
// The terminal sanitizer (client/terminal_text.h): on any bytes, split anywhere, the
// output holds no ESC, no C0 control but \n \t \r, no DEL, no C1 control and no
// invalid UTF-8; and a split changes nothing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/check.h"
#include "client/terminal_text.h"

using namespace gpunet::client;

namespace {

bool ValidHarmlessUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\n' && c != '\t' && c != '\r') || c == 0x7f) return false;
      ++i;
      continue;
    }
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (n == 0 || c > 0xF4 || i + n > s.size()) return false;
    uint32_t cp = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x80 && cp <= 0x9F))
      return false;
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string whole = SanitizeTerminalText(text);
  GPUNET_CHECK(ValidHarmlessUtf8(whole));
  const size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  TerminalSanitizer s;
  std::string split = s.Feed(text.substr(0, cut));
  split += s.Feed(text.substr(cut));
  split += s.Finish();
  GPUNET_CHECK(split == whole);
  return 0;
}
