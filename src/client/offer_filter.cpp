#include "client/offer_filter.h"

#include <algorithm>
#include <array>
#include <span>

#include "base/check.h"
#include "client/amount.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;

enum class Kind : uint8_t { kText, kCount, kPrice, kVersion };

struct FieldInfo {
  std::string_view name;
  FilterField field;
  Kind kind;
  std::string_view what;  ///< for help and messages
};

constexpr std::array<FieldInfo, 13> kFields = {{
    {"gpu", FilterField::kGpu, Kind::kText, "GPU model, e.g. gpu=H100 or gpu=H100,A100"},
    {"gpus", FilterField::kGpus, Kind::kCount, "GPUs per machine, e.g. gpus>=8"},
    {"free", FilterField::kGpusFree, Kind::kCount, "GPUs free now, e.g. free>=2"},
    {"vram", FilterField::kVram, Kind::kCount, "GB of memory per GPU, e.g. vram>=80"},
    {"price", FilterField::kPrice, Kind::kPrice,
     "GPN per GPU-hour, e.g. price<=2.5 (or price<=2500000ugpn)"},
    {"region", FilterField::kRegion, Kind::kText,
     "region, e.g. region=eu (also matches eu-west, eu-west-1)"},
    {"fabric", FilterField::kFabric, Kind::kText, "infiniband, roce or ethernet"},
    {"link", FilterField::kLink, Kind::kText, "in-machine GPU link: nvlink or pcie"},
    {"cuda", FilterField::kCuda, Kind::kVersion, "CUDA version, e.g. cuda>=12.1"},
    {"driver", FilterField::kDriver, Kind::kVersion, "driver version, e.g. driver>=550"},
    {"cc", FilterField::kCompute, Kind::kVersion, "compute capability, e.g. cc>=8.0"},
    {"machines", FilterField::kMachines, Kind::kCount, "machines in the offer, e.g. machines>=2"},
    {"provider", FilterField::kProvider, Kind::kText, "provider address, e.g. provider=gpn1..."},
}};

constexpr std::array<std::string_view, 3> kFabrics = {"infiniband", "roce", "ethernet"};
constexpr std::array<std::string_view, 2> kLinks = {"nvlink", "pcie"};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

std::string KnownKeys() {
  std::string out;
  for (const auto& f : kFields) out += (out.empty() ? "" : ", ") + std::string(f.name);
  return out;
}

const FieldInfo* FindField(std::string_view key) {
  std::string lower = Lower(key);
  for (const auto& f : kFields)
    if (f.name == lower) return &f;
  // Friendly synonyms people type.
  if (lower == "model") return &kFields[0];
  if (lower == "gpu_count" || lower == "count") return &kFields[1];
  if (lower == "compute" || lower == "compute_capability") return &kFields[10];
  return nullptr;
}

struct OpText {
  std::string_view text;
  FilterOp op;
};
// Longest first so "<=" is not read as "<" followed by "=...".
constexpr std::array<OpText, 7> kOps = {{{"<=", FilterOp::kLe},
                                         {">=", FilterOp::kGe},
                                         {"!=", FilterOp::kNe},
                                         {"==", FilterOp::kEq},
                                         {"<", FilterOp::kLt},
                                         {">", FilterOp::kGt},
                                         {"=", FilterOp::kEq}}};

std::string Quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

base::Result<uint64_t> ParseCount(std::string_view value, std::string_view term) {
  if (value.empty() || value.size() > 12)
    return Fail(ErrorCode::kInvalidArgument,
                "filter " + Quoted(term) + ": the value must be a whole number, e.g. gpus>=8");
  uint64_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9')
      return Fail(ErrorCode::kInvalidArgument, "filter " + Quoted(term) + ": " + Quoted(value) +
                                                   " is not a whole number (e.g. gpus>=8)");
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

base::Status CheckOneOf(std::string_view value, std::string_view term, std::string_view key,
                        std::span<const std::string_view> allowed) {
  for (auto a : allowed)
    if (a == value) return base::Ok();
  std::string list;
  for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  return Fail(ErrorCode::kInvalidArgument, "filter " + Quoted(term) + ": unknown " +
                                               std::string(key) + " " + Quoted(value) +
                                               "; use one of " + list);
}

/// The value of a name term (gpu=a,b): a comma-separated list of names, lower-cased
/// into term.texts.
base::Status ParseNames(std::string_view text, const FieldInfo* info, std::string_view value,
                        FilterTerm& term) {
  if (term.op != FilterOp::kEq && term.op != FilterOp::kNe)
    return Fail(ErrorCode::kInvalidArgument,
                "filter " + Quoted(text) + ": " + std::string(info->name) +
                    " is a name and takes only = or != (" + std::string(info->what) + ")");
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view alt = value.substr(start, comma - start);
    if (alt.empty())
      return Fail(ErrorCode::kInvalidArgument, "filter " + Quoted(text) +
                                                   ": an empty name in the list; write e.g. " +
                                                   std::string(info->name) + "=a,b");
    std::string lower = Lower(alt);
    if (info->field == FilterField::kFabric)
      GPUNET_TRY(CheckOneOf(lower, text, "fabric", kFabrics));
    if (info->field == FilterField::kLink) GPUNET_TRY(CheckOneOf(lower, text, "link", kLinks));
    term.texts.push_back(std::move(lower));
    start = comma + 1;
  }
  return base::Ok();
}

base::Result<FilterTerm> ParseTerm(std::string_view text) {
  size_t key_end = 0;
  while (key_end < text.size() && IsKeyChar(text[key_end])) ++key_end;
  std::string_view key = text.substr(0, key_end);
  if (key.empty())
    return Fail(ErrorCode::kInvalidArgument,
                "filter " + Quoted(text) + " does not start with a key; write KEY OP VALUE, e.g. " +
                    "gpu=H100 or price<=2.5 (keys: " + KnownKeys() + ")");
  const FieldInfo* info = FindField(key);
  if (info == nullptr)
    return Fail(ErrorCode::kInvalidArgument, "filter " + Quoted(text) + ": unknown key " +
                                                 Quoted(key) + "; known keys: " + KnownKeys());
  std::string_view rest = text.substr(key_end);
  const OpText* op = nullptr;
  for (const auto& o : kOps)
    if (rest.starts_with(o.text)) {
      op = &o;
      break;
    }
  if (op == nullptr)
    return Fail(ErrorCode::kInvalidArgument,
                "filter " + Quoted(text) + ": expected an operator after " + Quoted(key) +
                    " (one of = != < <= > >=), e.g. " + std::string(info->name) +
                    (info->kind == Kind::kText ? "=..." : ">=..."));
  std::string_view value = rest.substr(op->text.size());
  if (value.empty())
    return Fail(ErrorCode::kInvalidArgument, "filter " + Quoted(text) + ": no value after " +
                                                 Quoted(op->text) + "; " + std::string(info->what));
  FilterTerm term;
  term.field = info->field;
  term.op = op->op;
  term.source = std::string(text);
  switch (info->kind) {
    case Kind::kText:
      GPUNET_TRY(ParseNames(text, info, value, term));
      break;
    case Kind::kCount: {
      auto n = ParseCount(value, text);
      if (!n) return std::unexpected(n.error());
      term.number = *n;
      break;
    }
    case Kind::kPrice: {
      auto price = ParseAmount(value);
      if (!price)
        return Fail(price.error().code,
                    "filter " + Quoted(text) +
                        ": the price is in GPN per GPU-hour: " + price.error().message);
      term.number = *price;
      break;
    }
    case Kind::kVersion: {
      auto v = ParseVersion(value);
      if (!v)
        return Fail(ErrorCode::kInvalidArgument,
                    "filter " + Quoted(text) + ": " + v.error().message);
      term.version = *v;
      break;
    }
  }
  return term;
}

template <class T>
bool Compare(FilterOp op, const T& have, const T& want) {
  switch (op) {
    case FilterOp::kEq:
      return have == want;
    case FilterOp::kNe:
      return have != want;
    case FilterOp::kLt:
      return have < want;
    case FilterOp::kLe:
      return have <= want;
    case FilterOp::kGt:
      return have > want;
    case FilterOp::kGe:
      return have >= want;
  }
  GPUNET_UNREACHABLE();  // the switch returns for every FilterOp
}

bool TextMatches(FilterField field, std::string_view have_raw, std::string_view want) {
  std::string have = Lower(have_raw);
  if (have == want) return true;
  // Regions are hierarchical: "eu" covers "eu-west" and "eu-west-1".
  return field == FilterField::kRegion && have.size() > want.size() && have.starts_with(want) &&
         have[want.size()] == '-';
}

bool TermHolds(const FilterTerm& t, const OfferView& o) {
  auto text = [&](std::string_view have) {
    bool any = std::any_of(t.texts.begin(), t.texts.end(),
                           [&](const std::string& w) { return TextMatches(t.field, have, w); });
    return t.op == FilterOp::kEq ? any : !any;
  };
  switch (t.field) {
    case FilterField::kGpu:
      return text(o.gpu_model);
    case FilterField::kRegion:
      return text(o.region);
    case FilterField::kFabric:
      return text(o.fabric);
    case FilterField::kLink:
      return text(o.link);
    case FilterField::kProvider:
      return text(o.provider);
    case FilterField::kGpus:
      return Compare<uint64_t>(t.op, o.gpus, t.number);
    case FilterField::kGpusFree:
      return Compare<uint64_t>(t.op, o.gpus_free, t.number);
    case FilterField::kVram:
      return Compare<uint64_t>(t.op, o.vram_gb, t.number);
    case FilterField::kMachines:
      return Compare<uint64_t>(t.op, o.machines, t.number);
    case FilterField::kPrice:
      return Compare(t.op, o.price_ugpn_per_gpu_hour, t.number);
    case FilterField::kCuda:
      return Compare(t.op, o.cuda, t.version);
    case FilterField::kDriver:
      return Compare(t.op, o.driver, t.version);
    case FilterField::kCompute:
      return Compare(t.op, o.compute_capability, t.version);
  }
  GPUNET_UNREACHABLE();  // the switch returns for every FilterField
}

}  // namespace

base::Result<Version> ParseVersion(std::string_view text) {
  const std::string form =
      "a version is 1 to 3 numbers separated by dots, e.g. 12, 12.1 or 550.54.15";
  if (text.empty()) return Fail(ErrorCode::kInvalidArgument, "empty version: " + form);
  std::array<uint32_t, 3> parts{};
  size_t count = 0;
  size_t start = 0;
  while (true) {
    size_t dot = text.find('.', start);
    std::string_view part =
        text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (count == 3)
      return Fail(ErrorCode::kInvalidArgument, Quoted(text) + " has more than 3 parts: " + form);
    if (part.empty() || part.size() > 9)
      return Fail(ErrorCode::kInvalidArgument, Quoted(text) + " is not a version: " + form);
    uint32_t v = 0;
    for (char c : part) {
      if (c < '0' || c > '9')
        return Fail(ErrorCode::kInvalidArgument, Quoted(text) + " is not a version: " + form);
      v = v * 10 + static_cast<uint32_t>(c - '0');
    }
    parts[count++] = v;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return Version{parts[0], parts[1], parts[2]};
}

std::string FormatVersion(const Version& v) {
  std::string out = std::to_string(v.major) + "." + std::to_string(v.minor);
  if (v.patch != 0) out += "." + std::to_string(v.patch);
  return out;
}

base::Result<OfferFilter> ParseOfferFilter(const std::vector<std::string>& words) {
  OfferFilter filter;
  for (const auto& word : words) {
    size_t i = 0;
    while (i < word.size()) {
      while (i < word.size() && (word[i] == ' ' || word[i] == '\t')) ++i;
      size_t end = i;
      while (end < word.size() && word[end] != ' ' && word[end] != '\t') ++end;
      if (end == i) break;
      if (filter.terms.size() == kFilterTermsMax)
        return Fail(ErrorCode::kLimitExceeded,
                    "a filter may have at most " + std::to_string(kFilterTermsMax) + " terms");
      auto term = ParseTerm(std::string_view(word).substr(i, end - i));
      if (!term) return std::unexpected(term.error());
      filter.terms.push_back(std::move(*term));
      i = end;
    }
  }
  return filter;
}

bool Matches(const OfferFilter& filter, const OfferView& offer) {
  return std::all_of(filter.terms.begin(), filter.terms.end(),
                     [&](const FilterTerm& t) { return TermHolds(t, offer); });
}

std::vector<OfferView> FilterAndSort(const OfferFilter& filter, std::vector<OfferView> offers) {
  std::erase_if(offers, [&](const OfferView& o) { return !Matches(filter, o); });
  std::sort(offers.begin(), offers.end(), [](const OfferView& a, const OfferView& b) {
    if (a.price_ugpn_per_gpu_hour != b.price_ugpn_per_gpu_hour)
      return a.price_ugpn_per_gpu_hour < b.price_ugpn_per_gpu_hour;
    if (a.gpus_free != b.gpus_free) return a.gpus_free > b.gpus_free;
    return a.id < b.id;
  });
  return offers;
}

std::string_view OfferFilterHelp() {
  static const std::string kHelp = [] {
    std::string out =
        "FILTER terms are KEY OP VALUE, all must hold; OP is one of = != < <= > >=\n"
        "(names take only = and !=, and a comma list means any of them). Keys:\n";
    for (const auto& f : kFields) {
      std::string name(f.name);
      name.resize(10, ' ');
      out += "  " + name + std::string(f.what) + "\n";
    }
    out +=
        "Prices are GPN per GPU-hour, exact to 0.000001 GPN (no rounding).\n"
        "Quote terms with < or > (the shell reads them as redirections); several terms\n"
        "may share one quoted word.\n"
        "Examples:\n"
        "  gpunet offers 'gpu=H100 gpus>=8 price<=2.5 region=eu fabric=infiniband cuda>=12.1'\n"
        "  gpunet offers gpu=H100,A100 'vram>=80' link=nvlink\n"
        "  gpunet --output json offers 'price<2'\n";
    return out;
  }();
  return kHelp;
}

}  // namespace gpunet::client
