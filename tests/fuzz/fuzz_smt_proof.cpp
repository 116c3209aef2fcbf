// fuzz-libs: gpunet_codec
// State-tree proof decoder and verifier (codec/smt_proof.h). Input layout:
// 32-byte root || 32-byte key_hash || encoded proof (shorter inputs: the whole
// input is the proof, checked against the empty root). Properties: never crash;
// whatever decodes re-encodes to the same bytes; the three verifier entry points
// agree with each other.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "codec/smt_proof.h"

using namespace gpunet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  base::Hash32 root, key;
  base::ByteSpan proof_bytes(data, size);
  if (size >= 64) {
    std::memcpy(root.data.data(), data, 32);
    std::memcpy(key.data.data(), data + 32, 32);
    proof_bytes = proof_bytes.subspan(64);
  }
  auto proof = codec::DecodeSmtProof(proof_bytes);
  if (!proof) return 0;
  base::Bytes again = codec::EncodeSmtProof(*proof);
  if (again.size() != proof_bytes.size() ||
      std::memcmp(again.data(), proof_bytes.data(), again.size()) != 0)
    std::abort();  // two encodings of one proof: the decoder is not strict

  auto shown = codec::VerifySmtProof(root, key, *proof);
  auto absent = codec::VerifySmtNonMembership(root, key, *proof);
  if (absent.has_value() != (shown && !shown->has_value())) std::abort();
  if (shown && shown->has_value()) {
    if (!codec::VerifySmtMembership(root, key, **shown, *proof)) std::abort();
  }
  return 0;
}
