// Field lists: one function per type names its fields once, in encoded order, with
// each field's rule (limit, string rule, enum range, order), and drives both
// directions, so an encoder and its decoder cannot drift apart (the way Bitcoin
// Core's SERIALIZE_METHODS and market/records.cpp's Fields() do). A field list is a
// template over the direction:
//
//   template <class IO>  // encoding.cpp spells this head CODEC_FIELDS(Validator, v)
//   base::Status Fields(IO& io, FieldRef<IO, Validator> v) {
//     GPUNET_TRY(io.Fixed(v.public_key, "public_key"));
//     GPUNET_TRY(io.U64(v.power, "power"));
//     return io.Require([&] { return v.power != 0; }, ErrorCode::kCorrupt, "power",
//                       "a validator in a set has power > 0");
//   }
//
// WriteIO appends the fields with Writer and skips every check (writing never fails;
// ValidateX in encoding.h says whether the decoder would accept). ReadIO reads them
// with Reader, applies each check where the list puts it, and stops at the first
// error, whose message names the field's path ("tx.body.msgs[1].amount_ugpn: ...").
// Checks run in list order, so the order of the list is the order of the errors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "base/bytes.h"
#include "base/check.h"
#include "base/result.h"
#include "codec/reader.h"
#include "codec/writer.h"

namespace gpunet::codec {

/// A field of type T as a field list sees it: const when writing, writable when
/// reading. (The IO is deduced from the first argument; this parameter then picks
/// the overload of Fields for T.)
template <class IO, class T>
using FieldRef = std::conditional_t<IO::kReading, T, const T>&;

// The reading direction's one-field steps are a call to Reader and a move. Inlined
// always, they cost about what the hand-written decoders' CODEC_READ lines did;
// left to the inliner's judgement, g++ 12 kept some out of line and DecodeBlock ran
// 6 % more instructions.
#define GPUNET_CODEC_INLINE [[gnu::always_inline]] inline

namespace field_io_detail {

// The message of a failed check: a literal, or a callable that builds it only then.
template <class What>
std::string Message(const What& what) {
  if constexpr (std::is_invocable_v<const What&>)
    return what();
  else
    return std::string(what);
}

}  // namespace field_io_detail

/// The writing direction: appends each field to a Writer; checks are skipped.
class WriteIO {
 public:
  static constexpr bool kReading = false;

  explicit WriteIO(Writer& w) : m_w(w) {}

  base::Status U8(uint8_t v, std::string_view) {
    m_w.U8(v);
    return base::Ok();
  }
  base::Status U16(uint16_t v, std::string_view) {
    m_w.U16(v);
    return base::Ok();
  }
  base::Status U32(uint32_t v, std::string_view) {
    m_w.U32(v);
    return base::Ok();
  }
  base::Status U64(uint64_t v, std::string_view) {
    m_w.U64(v);
    return base::Ok();
  }
  base::Status I32(int32_t v, std::string_view) {
    m_w.I32(v);
    return base::Ok();
  }
  base::Status Bool(bool v, std::string_view) {
    m_w.Bool(v);
    return base::Ok();
  }
  template <size_t N>
  base::Status Fixed(const base::FixedBytes<N>& v, std::string_view) {
    m_w.Fixed(v);
    return base::Ok();
  }
  base::Status String(const std::string& v, std::string_view, StringRule, size_t,
                      std::string_view) {
    m_w.String(v);
    return base::Ok();
  }
  /// A one-byte enum.
  template <class E, class Valid, class What>
  requires std::is_enum_v<E> base::Status Enum(E v, std::string_view, Valid&&, What&&) {
    m_w.U8(static_cast<uint8_t>(v));
    return base::Ok();
  }

  /// A count, then each item through `item(element)`.
  template <class T, class Item>
  base::Status List(const std::vector<T>& v, std::string_view, size_t, std::string_view,
                    Item&& item) {
    m_w.Count(v.size());
    for (const auto& x : v) GPUNET_TRY(item(x));
    return base::Ok();
  }

  /// A count, then each entry as `key(k)` and `value(v)`, in the map's order.
  template <class K, class V, class Key, class Value, class What>
  base::Status SortedMap(const std::map<K, V>& m, std::string_view, size_t, std::string_view,
                         Key&& key, Value&& value, std::string_view, What&&) {
    m_w.Count(m.size());
    for (const auto& [k, v] : m) {
      GPUNET_TRY(key(k));
      GPUNET_TRY(value(v));
    }
    return base::Ok();
  }

  /// A value written by `fields(inner_io, v)` into a buffer of its own, then as
  /// length-prefixed bytes (a block's transactions, hashed and sized one by one).
  template <class T, class Fields>
  base::Status Framed(const T& v, std::string_view, size_t, std::string_view, Fields&& fields) {
    Writer inner(512);
    WriteIO inner_io(inner);
    GPUNET_TRY(fields(inner_io, v));
    m_w.LenBytes(inner.Data());
    return base::Ok();
  }

  /// A tagged union: the u16 tag of the alternative (its kTag), then its fields.
  template <class Variant, class Fields>
  base::Status Tagged(const Variant& v, Fields&& fields) {
    return Alternative(v, fields);
  }

  /// Checks are for the reading direction only.
  template <class Ok, class What>
  base::Status Require(Ok&&, base::ErrorCode, std::string_view, What&&) {
    return base::Ok();
  }
  template <class T, class What, class Key = std::identity>
  base::Status Ascending(const std::vector<T>&, std::string_view, What&&, Key = {}) {
    return base::Ok();
  }
  template <class T, class What, class Key = std::identity>
  base::Status AscendingAt(const std::vector<T>&, std::string_view, std::string_view, What&&,
                           Key = {}) {
    return base::Ok();
  }
  template <class Check>
  base::Status Verify(Check&&) {
    return base::Ok();
  }

  /// A nested value, its fields written by `fields()`; only error paths use names.
  template <class Fields>
  base::Status Nested(std::string_view, Fields&& fields) {
    return fields();
  }

 private:
  // Direct calls by index rather than std::visit's table of function pointers, so
  // the compiler can inline an alternative's list into the list that holds it.
  template <class Variant, class Fields, size_t I = 0>
  base::Status Alternative(const Variant& v, Fields& fields) {
    if constexpr (I + 1 < std::variant_size_v<Variant>) {
      if (v.index() != I) return Alternative<Variant, Fields, I + 1>(v, fields);
    }
    GPUNET_CHECK(v.index() == I);  // not valueless: codec values never throw mid-assignment
    const auto& alt = *std::get_if<I>(&v);
    m_w.U16(static_cast<uint16_t>(alt.kTag));
    return fields(alt);
  }

  Writer& m_w;
};

/// The reading direction: reads each field with Reader and applies each check.
class ReadIO {
 public:
  static constexpr bool kReading = true;

  explicit ReadIO(Reader& r) : m_r(r) {}

  GPUNET_CODEC_INLINE base::Status U8(uint8_t& v, std::string_view field) {
    return Take(m_r.U8(field), v);
  }
  GPUNET_CODEC_INLINE base::Status U16(uint16_t& v, std::string_view field) {
    return Take(m_r.U16(field), v);
  }
  GPUNET_CODEC_INLINE base::Status U32(uint32_t& v, std::string_view field) {
    return Take(m_r.U32(field), v);
  }
  GPUNET_CODEC_INLINE base::Status U64(uint64_t& v, std::string_view field) {
    return Take(m_r.U64(field), v);
  }
  GPUNET_CODEC_INLINE base::Status I32(int32_t& v, std::string_view field) {
    return Take(m_r.I32(field), v);
  }
  GPUNET_CODEC_INLINE base::Status Bool(bool& v, std::string_view field) {
    return Take(m_r.Bool(field), v);
  }
  template <size_t N>
  GPUNET_CODEC_INLINE base::Status Fixed(base::FixedBytes<N>& v, std::string_view field) {
    return Take(m_r.Fixed<N>(field), v);
  }
  /// A string obeying `rule`, at most `max` bytes (`limit_name` names the limit).
  GPUNET_CODEC_INLINE base::Status String(std::string& v, std::string_view field, StringRule rule,
                                          size_t max, std::string_view limit_name) {
    return Take(m_r.String(field, max, rule, limit_name), v);
  }
  /// A one-byte enum; a value `valid(byte)` refuses is kCorrupt with `what(byte)`.
  template <class E, class Valid, class What>
  requires std::is_enum_v<E> base::Status Enum(E& v, std::string_view field, Valid&& valid,
                                               What&& what) {
    uint8_t raw = 0;
    GPUNET_TRY(Take(m_r.U8(field), raw));
    if (!valid(raw)) return m_r.Error(base::ErrorCode::kCorrupt, field, what(raw));
    v = static_cast<E>(raw);
    return base::Ok();
  }

  /// A count (at most `max`), then each item read by `item(element)` under
  /// "<name>[i]".
  template <class T, class Item>
  base::Status List(std::vector<T>& v, std::string_view name, size_t max,
                    std::string_view limit_name, Item&& item) {
    size_t n = 0;
    GPUNET_TRY(Take(m_r.Count(name, max, limit_name), n));
    v.clear();
    // Every item takes at least one byte: a count alone cannot make us allocate
    // more than the input could fill.
    v.reserve(std::min(n, m_r.Remaining()));
    for (size_t i = 0; i < n; ++i) {
      auto s = m_r.Enter(name, i);
      T x{};
      GPUNET_TRY(item(x));
      v.push_back(std::move(x));
    }
    return base::Ok();
  }

  /// A count, then entries under "<name>[i]"; each key must be greater than the one
  /// before (else kNonCanonical at `key_field`, `what`), checked as it is read.
  template <class K, class V, class Key, class Value, class What>
  base::Status SortedMap(std::map<K, V>& m, std::string_view name, size_t max,
                         std::string_view limit_name, Key&& key, Value&& value,
                         std::string_view key_field, What&& what) {
    size_t n = 0;
    GPUNET_TRY(Take(m_r.Count(name, max, limit_name), n));
    m.clear();
    for (size_t i = 0; i < n; ++i) {
      auto s = m_r.Enter(name, i);
      K k{};
      V v{};
      GPUNET_TRY(key(k));
      GPUNET_TRY(value(v));
      if (!m.empty() && !(m.rbegin()->first < k))
        return m_r.Error(base::ErrorCode::kNonCanonical, key_field, field_io_detail::Message(what));
      m.emplace_hint(m.end(), std::move(k), std::move(v));
    }
    return base::Ok();
  }

  /// A length prefix (at most `max`, within the input), then the value read by
  /// `fields(io, v)`, which must take exactly that many bytes. `what` names the
  /// value in the messages ("the tx claims ...").
  template <class T, class Fields>
  base::Status Framed(T& v, std::string_view what, size_t max, std::string_view limit_name,
                      Fields&& fields) {
    uint64_t n = 0;
    GPUNET_TRY(Take(m_r.VarUint("length"), n));
    if (n > max) return m_r.OverLimit("length", n, "bytes", max, limit_name);
    if (n > m_r.Remaining())
      return m_r.Error(base::ErrorCode::kCorrupt, "length",
                       "truncated: the " + std::string(what) + " claims " + std::to_string(n) +
                           " bytes, " + std::to_string(m_r.Remaining()) + " left");
    const auto len = static_cast<size_t>(n);
    const size_t start = m_r.Offset();
    GPUNET_TRY(fields(*this, v));
    if (m_r.Offset() - start != len)
      return m_r.Error(base::ErrorCode::kCorrupt, "length",
                       "length prefix says " + std::to_string(len) + " bytes but the " +
                           std::string(what) + " takes " + std::to_string(m_r.Offset() - start));
    return base::Ok();
  }

  /// A tagged union: tag N is alternative N-1 (append-only tables); an unknown tag
  /// is kCorrupt.
  template <class Variant, class Fields>
  base::Status Tagged(Variant& v, Fields&& fields) {
    uint16_t tag = 0;
    GPUNET_TRY(Take(m_r.U16("tag"), tag));
    return Alternative(tag, v, fields);
  }

  /// kind `code` at `field` with `what` unless `ok()`.
  template <class Ok, class What>
  base::Status Require(Ok&& ok, base::ErrorCode code, std::string_view field, What&& what) {
    if (ok()) return base::Ok();
    return m_r.Error(code, field, field_io_detail::Message(what));
  }
  /// kNonCanonical at `field` unless key(v[i-1]) < key(v[i]) for every i.
  template <class T, class What, class Key = std::identity>
  base::Status Ascending(const std::vector<T>& v, std::string_view field, What&& what,
                         Key key = {}) {
    for (size_t i = 1; i < v.size(); ++i)
      if (!(std::invoke(key, v[i - 1]) < std::invoke(key, v[i])))
        return m_r.Error(base::ErrorCode::kNonCanonical, field, field_io_detail::Message(what));
    return base::Ok();
  }
  /// The same, with the error at "<name>[i].<field>".
  template <class T, class What, class Key = std::identity>
  base::Status AscendingAt(const std::vector<T>& v, std::string_view name, std::string_view field,
                           What&& what, Key key = {}) {
    for (size_t i = 1; i < v.size(); ++i) {
      if (!(std::invoke(key, v[i - 1]) < std::invoke(key, v[i]))) {
        auto s = m_r.Enter(name, i);
        return m_r.Error(base::ErrorCode::kNonCanonical, field, field_io_detail::Message(what));
      }
    }
    return base::Ok();
  }
  /// A check that needs the Reader itself (its own loop, its own error paths).
  template <class Check>
  base::Status Verify(Check&& check) {
    return check(m_r);
  }

  /// A nested value read by `fields()`, named `name` in the paths of its errors
  /// ("tx.body.memo: ...").
  template <class Fields>
  base::Status Nested(std::string_view name, Fields&& fields) {
    auto s = m_r.Enter(name);
    return fields();
  }

 private:
  template <class T>
  GPUNET_CODEC_INLINE static base::Status Take(base::Result<T> r, T& out) {
    if (!r) return std::unexpected(std::move(r.error()));
    out = std::move(*r);
    return base::Ok();
  }

  template <class Variant, class Fields, size_t I = 0>
  base::Status Alternative(uint16_t tag, Variant& out, Fields& fields) {
    if constexpr (I == std::variant_size_v<Variant>) {
      return m_r.Error(base::ErrorCode::kCorrupt, "tag",
                       "unknown tag " + std::to_string(tag) + "; this build knows tags 1.." +
                           std::to_string(I) + " (a newer protocol version?)");
    } else {
      using T = std::variant_alternative_t<I, Variant>;
      static_assert(static_cast<uint16_t>(T::kTag) == I + 1,
                    "variant alternatives must be listed in tag order, tags from 1");
      if (tag != I + 1) return Alternative<Variant, Fields, I + 1>(tag, out, fields);
      T v;
      GPUNET_TRY(fields(v));
      out = std::move(v);
      return base::Ok();
    }
  }

  Reader& m_r;
};

}  // namespace gpunet::codec
