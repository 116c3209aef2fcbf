#include "client/offer_filter.h"

#include <gtest/gtest.h>

namespace gpunet::client {
namespace {

using base::ErrorCode;

OfferFilter Parse(std::vector<std::string> words) {
  auto f = ParseOfferFilter(words);
  EXPECT_TRUE(f.has_value()) << (f ? "" : f.error().message);
  return f ? *f : OfferFilter{};
}

/// The error of a filter that must be refused; its message must contain `needle`.
base::Error Refused(std::vector<std::string> words, std::string_view needle) {
  auto f = ParseOfferFilter(words);
  EXPECT_FALSE(f.has_value()) << words[0] << " was accepted";
  if (f) return {ErrorCode::kInternal, ""};
  EXPECT_NE(f.error().message.find(needle), std::string::npos)
      << "message: " << f.error().message << "\nexpected to contain: " << needle;
  return f.error();
}

OfferView H100Eu() {
  OfferView o;
  o.id = "7";
  o.provider = "gpn1provider";
  o.gpu_model = "H100";
  o.gpus = 8;
  o.gpus_free = 8;
  o.vram_gb = 80;
  o.price_ugpn_per_gpu_hour = 2'500'000;
  o.region = "eu-west-1";
  o.fabric = "infiniband";
  o.link = "nvlink";
  o.cuda = {12, 4, 0};
  o.driver = {550, 54, 15};
  o.compute_capability = {9, 0, 0};
  o.machines = 2;
  return o;
}

TEST(ParseVersion, Forms) {
  EXPECT_EQ(*ParseVersion("12"), (Version{12, 0, 0}));
  EXPECT_EQ(*ParseVersion("12.1"), (Version{12, 1, 0}));
  EXPECT_EQ(*ParseVersion("550.54.15"), (Version{550, 54, 15}));
  EXPECT_EQ(FormatVersion({12, 1, 0}), "12.1");
  EXPECT_EQ(FormatVersion({550, 54, 15}), "550.54.15");
  for (std::string_view bad :
       {"", ".", "12.", ".1", "1..2", "1.2.3.4", "v12", "12.1a", "1234567890", "-1"}) {
    auto v = ParseVersion(bad);
    EXPECT_FALSE(v.has_value()) << bad;
    if (!v) {
      EXPECT_EQ(v.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(OfferFilter, TheIssueExampleParsesExactly) {
  OfferFilter f =
      Parse({"gpu=H100", "gpus>=8", "price<=2.5", "region=eu", "fabric=infiniband", "cuda>=12.1"});
  ASSERT_EQ(f.terms.size(), 6u);
  EXPECT_EQ(f.terms[0].field, FilterField::kGpu);
  EXPECT_EQ(f.terms[0].texts, std::vector<std::string>{"h100"});
  EXPECT_EQ(f.terms[1].op, FilterOp::kGe);
  EXPECT_EQ(f.terms[1].number, 8u);
  EXPECT_EQ(f.terms[2].field, FilterField::kPrice);
  EXPECT_EQ(f.terms[2].op, FilterOp::kLe);
  EXPECT_EQ(f.terms[2].number, 2'500'000u);  // exact, not 2.4999999
  EXPECT_EQ(f.terms[5].version, (Version{12, 1, 0}));
  EXPECT_TRUE(Matches(f, H100Eu()));
}

TEST(OfferFilter, SeveralTermsInOneWordAndEmptyFilter) {
  OfferFilter f = Parse({"  gpu=H100   gpus>=8 ", "price<3"});
  EXPECT_EQ(f.terms.size(), 3u);
  EXPECT_TRUE(Parse({}).terms.empty());
  EXPECT_TRUE(Parse({"", "   "}).terms.empty());
  EXPECT_TRUE(Matches(OfferFilter{}, H100Eu()));
}

TEST(OfferFilter, PriceBoundariesAreExact) {
  OfferView o = H100Eu();  // 2.5 GPN
  EXPECT_TRUE(Matches(Parse({"price<=2.5"}), o));
  EXPECT_FALSE(Matches(Parse({"price<2.5"}), o));
  EXPECT_TRUE(Matches(Parse({"price<=2.500000"}), o));
  EXPECT_FALSE(Matches(Parse({"price<=2.499999"}), o));
  EXPECT_TRUE(Matches(Parse({"price>=2500000ugpn"}), o));
  EXPECT_FALSE(Matches(Parse({"price>2500000ugpn"}), o));
  EXPECT_TRUE(Matches(Parse({"price=2.5"}), o));
  EXPECT_TRUE(Matches(Parse({"price!=2.6"}), o));
}

TEST(OfferFilter, TextFieldsCaseInsensitiveListsAndRegionPrefix) {
  OfferView o = H100Eu();
  EXPECT_TRUE(Matches(Parse({"gpu=h100"}), o));
  EXPECT_TRUE(Matches(Parse({"gpu=A100,H100"}), o));
  EXPECT_FALSE(Matches(Parse({"gpu=A100,L40S"}), o));
  EXPECT_FALSE(Matches(Parse({"gpu!=H100"}), o));
  EXPECT_TRUE(Matches(Parse({"gpu!=A100"}), o));
  EXPECT_TRUE(Matches(Parse({"region=eu"}), o));
  EXPECT_TRUE(Matches(Parse({"region=eu-west"}), o));
  EXPECT_TRUE(Matches(Parse({"region=EU-WEST-1"}), o));
  EXPECT_FALSE(Matches(Parse({"region=eu-w"}), o));  // prefix must end at '-'
  EXPECT_FALSE(Matches(Parse({"region=us"}), o));
  EXPECT_TRUE(Matches(Parse({"region!=us"}), o));
  EXPECT_TRUE(Matches(Parse({"fabric=infiniband", "link=nvlink"}), o));
  EXPECT_FALSE(Matches(Parse({"fabric=roce,ethernet"}), o));
  EXPECT_TRUE(Matches(Parse({"provider=gpn1provider"}), o));
}

TEST(OfferFilter, CountsAndVersions) {
  OfferView o = H100Eu();
  EXPECT_TRUE(Matches(Parse({"gpus=8", "free>=8", "vram>=80", "machines>1"}), o));
  EXPECT_FALSE(Matches(Parse({"gpus>8"}), o));
  EXPECT_FALSE(Matches(Parse({"vram>80"}), o));
  EXPECT_TRUE(Matches(Parse({"cuda>=12.1", "cuda<13", "cuda=12.4.0"}), o));
  EXPECT_FALSE(Matches(Parse({"cuda>=12.5"}), o));
  EXPECT_TRUE(Matches(Parse({"driver>=550.54", "cc>=9.0", "compute_capability=9"}), o));
  EXPECT_FALSE(Matches(Parse({"driver>550.54.15"}), o));
  EXPECT_TRUE(Matches(Parse({"model=H100", "count>=8"}), o));  // synonyms
}

TEST(OfferFilter, ErrorsNameTheTermAndWhatIsAllowed) {
  EXPECT_EQ(Refused({"colour=red"}, "unknown key \"colour\"").code, ErrorCode::kInvalidArgument);
  Refused({"colour=red"}, "known keys: gpu, gpus");
  Refused({"=H100"}, "does not start with a key");
  Refused({">=8"}, "does not start with a key");
  Refused({"gpu"}, "expected an operator");
  Refused({"gpus~8"}, "expected an operator");
  Refused({"gpu="}, "no value");
  Refused({"region>eu"}, "takes only = or !=");
  Refused({"gpu<=H100"}, "takes only = or !=");
  Refused({"gpus>=eight"}, "not a whole number");
  Refused({"gpus>=-1"}, "not a whole number");
  Refused({"gpus>=1234567890123"}, "whole number");
  Refused({"price<=2.1234567"}, "at most 6");
  Refused({"price<=cheap"}, "GPN per GPU-hour");
  Refused({"price<=-1"}, "negative");
  EXPECT_EQ(Refused({"price<=99999999999999999999"}, "larger").code, ErrorCode::kOverflow);
  Refused({"fabric=infiniband,token-ring"}, "unknown fabric \"token-ring\"");
  Refused({"link=sli"}, "use one of nvlink, pcie");
  Refused({"gpu=H100,,A100"}, "empty name");
  Refused({"cuda>=twelve"}, "not a version");
  Refused({"cuda>=12.1.2.3"}, "more than 3 parts");
  Refused({"gpus>=8 bogus=1"}, "unknown key \"bogus\"");
}

TEST(OfferFilter, TermCountIsLimited) {
  std::vector<std::string> words(kFilterTermsMax, "gpus>=1");
  EXPECT_TRUE(ParseOfferFilter(words).has_value());
  words.push_back("gpus>=1");
  auto f = ParseOfferFilter(words);
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ErrorCode::kLimitExceeded);
}

TEST(OfferFilter, SortsByPriceThenFreeGpusThenId) {
  OfferView a = H100Eu(), b = H100Eu(), c = H100Eu(), d = H100Eu();
  a.id = "a";
  a.price_ugpn_per_gpu_hour = 3'000'000;
  b.id = "b";
  b.price_ugpn_per_gpu_hour = 1'000'000;
  c.id = "c";
  c.price_ugpn_per_gpu_hour = 1'000'000;
  c.gpus_free = 2;
  d.id = "d";
  d.price_ugpn_per_gpu_hour = 1'000'000;
  d.gpus_free = 2;
  d.gpu_model = "A100";
  auto all = FilterAndSort(OfferFilter{}, {a, d, c, b});
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].id, "b");  // cheapest, most free
  EXPECT_EQ(all[1].id, "c");  // same price, fewer free, id c < d
  EXPECT_EQ(all[2].id, "d");
  EXPECT_EQ(all[3].id, "a");
  auto h100 = FilterAndSort(Parse({"gpu=H100", "price<=2.5"}), {a, d, c, b});
  ASSERT_EQ(h100.size(), 2u);
  EXPECT_EQ(h100[0].id, "b");
  EXPECT_EQ(h100[1].id, "c");
}

TEST(OfferFilter, HelpListsEveryKey) {
  std::string_view help = OfferFilterHelp();
  for (std::string_view key : {"gpu", "gpus", "price", "region", "fabric", "cuda", "vram"})
    EXPECT_NE(help.find("  " + std::string(key)), std::string_view::npos) << key;
  EXPECT_NE(help.find("Examples"), std::string_view::npos);
}

}  // namespace
}  // namespace gpunet::client
