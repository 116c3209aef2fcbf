// fuzz-libs: gpunet_client gpunet_codec gpunet_crypto gpunet_base
// The offer filter language (client/offer_filter.h): never crash on any text; a
// filter that parses matches deterministically, and its price terms are exact:
// an offer priced at the term's own number satisfies <=, >= and = but not < or >.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/check.h"
#include "client/offer_filter.h"

using namespace gpunet::client;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> words;
  size_t start = 0;
  while (start <= text.size()) {  // '\n' separates words, as argv would
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    words.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  auto filter = ParseOfferFilter(words);
  if (!filter) {
    GPUNET_CHECK(!filter.error().message.empty());
    return 0;
  }
  OfferView offer;
  offer.id = "1";
  offer.gpu_model = "H100";
  offer.region = "eu-west";
  offer.fabric = "infiniband";
  offer.link = "nvlink";
  bool first = Matches(*filter, offer);
  GPUNET_CHECK(first == Matches(*filter, offer));
  for (const auto& t : filter->terms) {
    if (t.field != FilterField::kPrice) continue;
    OfferView at = offer;
    at.price_ugpn_per_gpu_hour = t.number;
    OfferFilter one{{t}};
    bool holds = Matches(one, at);
    bool expected = t.op == FilterOp::kLe || t.op == FilterOp::kGe || t.op == FilterOp::kEq;
    GPUNET_CHECK(holds == expected);
  }
  auto sorted = FilterAndSort(*filter, {offer, offer});
  GPUNET_CHECK(sorted.size() == (first ? 2u : 0u));
  return 0;
}
