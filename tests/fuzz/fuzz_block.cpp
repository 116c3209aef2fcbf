// fuzz-libs: gpunet_codec
// codec::DecodeBlock on arbitrary bytes: accepted inputs are canonical (see codec_round_trip.h).
#include "codec/encoding.h"
#include "fuzz/codec_round_trip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gpunet::codec;
  return gpunet::fuzz::CodecRoundTrip(data, size, DecodeBlock, EncodeBlock);
}
