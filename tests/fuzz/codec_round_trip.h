// Shared body of the codec fuzz targets: any input a decoder accepts must re-encode
// to exactly the same bytes and decode again to an equal value (canonical form);
// any input it refuses must be refused with a message. Never a crash.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/bytes.h"
#include "base/check.h"

namespace gpunet::fuzz {

template <class Decode, class Encode>
int CodecRoundTrip(const uint8_t* data, size_t size, Decode decode, Encode encode) {
  base::ByteSpan input(data, size);
  auto value = decode(input);
  if (!value) {
    GPUNET_CHECK(!value.error().message.empty());
    return 0;
  }
  base::Bytes again = encode(*value);
  GPUNET_CHECK(again.size() == size);
  GPUNET_CHECK(std::equal(again.begin(), again.end(), input.begin()));
  auto second = decode(again);
  GPUNET_CHECK(second.has_value());
  GPUNET_CHECK(*second == *value);
  return 0;
}

}  // namespace gpunet::fuzz
