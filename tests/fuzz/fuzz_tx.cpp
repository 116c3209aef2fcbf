// fuzz-libs: gpunet_codec
// codec::DecodeTx on arbitrary bytes: accepted inputs are canonical (see
// codec_round_trip.h), and hashing and signature checks of any accepted tx return
// an answer instead of crashing.
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "fuzz/codec_round_trip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gpunet::codec;
  gpunet::fuzz::CodecRoundTrip(data, size, DecodeTx, EncodeTx);
  if (auto tx = DecodeTx(gpunet::base::ByteSpan(data, size))) {
    GPUNET_CHECK(TxHash(*tx) == TxHashOfEncoded(gpunet::base::ByteSpan(data, size)));
    (void)VerifyTxSignature(*tx);
  }
  return 0;
}
