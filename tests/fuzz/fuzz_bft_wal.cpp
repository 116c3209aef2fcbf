// fuzz-libs: gpunet_consensus gpunet_codec gpunet_crypto gpunet_base
// The BFT WAL decoders on arbitrary bytes: a payload that decodes is canonical; a
// whole log either reads (its intact records re-encode to exactly its valid prefix)
// or is refused as corrupt, never a crash; the sign guard decoder likewise.
#include "consensus/bft_wal.h"
#include "fuzz/codec_round_trip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gpunet;
  using namespace gpunet::consensus;
  fuzz::CodecRoundTrip(data, size, DecodeWalPayload, EncodeWalPayload);
  fuzz::CodecRoundTrip(data, size, DecodeSignGuard, EncodeSignGuard);
  base::ByteSpan input(data, size);
  auto read = ReadWal(input);
  if (!read) {
    GPUNET_CHECK(!read.error().message.empty());
    return 0;
  }
  GPUNET_CHECK(read->valid_bytes <= size);
  GPUNET_CHECK(read->torn_tail == (read->valid_bytes < size));
  base::Bytes again;
  for (const auto& r : read->records) {
    auto b = EncodeWalRecord(r);
    again.insert(again.end(), b.begin(), b.end());
  }
  GPUNET_CHECK(again.size() == read->valid_bytes);
  GPUNET_CHECK(std::equal(again.begin(), again.end(), input.begin()));
  return 0;
}
