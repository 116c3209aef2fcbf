#include "codec/reader.h"

#include <optional>

#include "base/check.h"

namespace gpunet::codec {

using base::ErrorCode;

namespace {

std::string Num(uint64_t v) {
  return std::to_string(v);
}

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629 table 3-7 of
// Unicode: no overlong forms, no surrogates, nothing above U+10FFFF), 0 when none.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto at = [&](size_t k) -> int { return i + k < s.size() ? static_cast<uint8_t>(s[i + k]) : -1; };
  auto cont = [&](size_t k, int lo = 0x80, int hi = 0xbf) {
    int c = at(k);
    return c >= lo && c <= hi;
  };
  int b0 = at(0);
  if (b0 < 0x80) return 1;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 == 0xe0) return cont(1, 0xa0, 0xbf) && cont(2) ? 3 : 0;
  if ((b0 >= 0xe1 && b0 <= 0xec) || b0 == 0xee || b0 == 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b0 == 0xf0) return cont(1, 0x90, 0xbf) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

}  // namespace

namespace {

struct StringProblem {
  ErrorCode code;
  std::string what;
};

// Why s breaks the rule, or nullopt. Kept apart from any field name so the Reader
// builds a path only when something is wrong.
std::optional<StringProblem> FindStringProblem(std::string_view s, size_t max_bytes,
                                               StringRule rule) {
  if (s.size() > max_bytes)
    return StringProblem{ErrorCode::kLimitExceeded,
                         Num(s.size()) + " bytes, over the limit of " + Num(max_bytes)};
  switch (rule) {
    case StringRule::kIdent:
      if (s.empty()) return StringProblem{ErrorCode::kCorrupt, "must not be empty"};
      for (size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<uint8_t>(s[i]);
        if (c < 0x21 || c > 0x7e)
          return StringProblem{ErrorCode::kCorrupt, "byte " + Num(i) + " (0x" +
                                                        base::ToHex({&c, 1}) +
                                                        ") is not printable ASCII without spaces"};
      }
      return std::nullopt;
    case StringRule::kText:
      for (size_t i = 0; i < s.size();) {
        auto c = static_cast<uint8_t>(s[i]);
        if (c < 0x20 || c == 0x7f)
          return StringProblem{ErrorCode::kCorrupt, "byte " + Num(i) + " is a control character"};
        size_t n = Utf8SequenceLength(s, i);
        if (n == 0) return StringProblem{ErrorCode::kCorrupt, "invalid UTF-8 at byte " + Num(i)};
        i += n;
      }
      return std::nullopt;
  }
  return StringProblem{ErrorCode::kInternal, "unknown string rule"};
}

}  // namespace

base::Status CheckString(std::string_view s, size_t max_bytes, StringRule rule,
                         std::string_view field) {
  auto problem = FindStringProblem(s, max_bytes, rule);
  if (!problem) return base::Ok();
  return base::Fail(problem->code, std::string(field) + ": " + problem->what);
}

Reader::Reader(base::ByteSpan data, std::string_view what) : m_data(data) {
  m_frames[0] = Frame{what, kNoIndex};
  m_depth = 1;
}

Reader::Scope::~Scope() {
  GPUNET_CHECK(m_reader->m_depth > 1);
  --m_reader->m_depth;
}

Reader::Scope Reader::Enter(std::string_view name) {
  return Enter(name, kNoIndex);
}

Reader::Scope Reader::Enter(std::string_view name, size_t index) {
  GPUNET_CHECK(m_depth < kDepthMax);  // nesting is fixed by the types, not by input
  m_frames[m_depth++] = Frame{name, index};
  return Scope(this);
}

std::string Reader::Path(std::string_view field) const {
  std::string out;
  for (size_t i = 0; i < m_depth; ++i) {
    if (!out.empty()) out += '.';
    out += m_frames[i].name;
    if (m_frames[i].index != kNoIndex) out += "[" + Num(m_frames[i].index) + "]";
  }
  if (!field.empty()) {
    if (!out.empty()) out += '.';
    out += field;
  }
  return out;
}

std::unexpected<base::Error> Reader::Error(ErrorCode code, std::string_view field,
                                           std::string_view what) const {
  return base::Fail(code, Path(field) + ": " + std::string(what));
}

std::unexpected<base::Error> Reader::OverLimit(std::string_view field, uint64_t n,
                                               std::string_view unit, size_t max,
                                               std::string_view limit_name) const {
  return Error(ErrorCode::kLimitExceeded, field,
               Num(n) + " " + std::string(unit) + ", over the limit of " + Num(max) +
                   " (limits::" + std::string(limit_name) + ")");
}

base::Result<base::ByteSpan> Reader::Take(std::string_view field, size_t n) {
  if (n > Remaining())
    return Error(ErrorCode::kCorrupt, field,
                 "truncated: needs " + Num(n) + " bytes at offset " + Num(m_pos) + ", " +
                     Num(Remaining()) + " left");
  base::ByteSpan out = m_data.subspan(m_pos, n);
  m_pos += n;
  return out;
}

base::Result<uint8_t> Reader::U8(std::string_view field) {
  auto b = Take(field, 1);
  if (!b) return std::unexpected(b.error());
  return (*b)[0];
}

base::Result<uint16_t> Reader::U16(std::string_view field) {
  auto b = Take(field, 2);
  if (!b) return std::unexpected(b.error());
  return static_cast<uint16_t>((*b)[0] << 8 | (*b)[1]);
}

base::Result<uint32_t> Reader::U32(std::string_view field) {
  auto b = Take(field, 4);
  if (!b) return std::unexpected(b.error());
  return base::ReadU32BE(b->data());
}

base::Result<uint64_t> Reader::U64(std::string_view field) {
  auto b = Take(field, 8);
  if (!b) return std::unexpected(b.error());
  return base::ReadU64BE(b->data());
}

base::Result<int32_t> Reader::I32(std::string_view field) {
  auto v = U32(field);
  if (!v) return std::unexpected(v.error());
  return static_cast<int32_t>(*v);
}

base::Result<bool> Reader::Bool(std::string_view field) {
  auto v = U8(field);
  if (!v) return std::unexpected(v.error());
  if (*v > 1)
    return Error(ErrorCode::kNonCanonical, field,
                 "flag byte is " + Num(*v) + "; only 0 and 1 are allowed");
  return *v == 1;
}

base::Result<uint64_t> Reader::VarUint(std::string_view field) {
  uint64_t v = 0;
  for (unsigned i = 0; i < 10; ++i) {
    auto b = U8(field);
    if (!b) return std::unexpected(b.error());
    if (i == 9 && *b > 1)
      return Error(ErrorCode::kCorrupt, field, "varint does not fit in 64 bits");
    v |= static_cast<uint64_t>(*b & 0x7f) << (7 * i);
    if ((*b & 0x80) == 0) {
      if (i > 0 && *b == 0)
        return Error(
            ErrorCode::kNonCanonical, field,
            "varint is not minimal (a trailing 0x00 group); encode it in " + Num(i) + " bytes");
      return v;
    }
  }
  GPUNET_UNREACHABLE();  // the 10th byte either ends the varint or fails above
}

base::Result<size_t> Reader::Count(std::string_view field, size_t max,
                                   std::string_view limit_name) {
  auto v = VarUint(field);
  if (!v) return std::unexpected(v.error());
  if (*v > max) return OverLimit(field, *v, "entries", max, limit_name);
  return static_cast<size_t>(*v);
}

base::Result<base::ByteSpan> Reader::Raw(std::string_view field, size_t n) {
  return Take(field, n);
}

base::Result<base::ByteSpan> Reader::LenBytes(std::string_view field, size_t max,
                                              std::string_view limit_name) {
  auto n = VarUint(field);
  if (!n) return std::unexpected(n.error());
  if (*n > max) return OverLimit(field, *n, "bytes", max, limit_name);
  return Take(field, static_cast<size_t>(*n));
}

base::Result<std::string> Reader::String(std::string_view field, size_t max, StringRule rule,
                                         std::string_view limit_name) {
  auto bytes = LenBytes(field, max, limit_name);
  if (!bytes) return std::unexpected(bytes.error());
  std::string s(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  if (auto problem = FindStringProblem(s, max, rule))
    return Error(problem->code, field, problem->what);
  return s;
}

base::Status Reader::Finish() {
  if (Remaining() != 0)
    return Error(ErrorCode::kNonCanonical, "",
                 Num(Remaining()) + " trailing bytes after the end at offset " + Num(m_pos));
  return base::Ok();
}

}  // namespace gpunet::codec
