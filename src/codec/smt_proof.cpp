#include "codec/smt_proof.h"

#include <array>
#include <cstring>
#include <string>

#include "base/check.h"
#include "base/limits.h"
#include "crypto/hash.h"

namespace gpunet::codec {

using base::ErrorCode;
using base::Fail;
using base::Hash32;

namespace {

constexpr uint8_t kEndEmpty = 0;
constexpr uint8_t kEndLeaf = 1;

// One hash call over a stack buffer: cheaper than three incremental updates, and
// this is the inner loop of every tree update.
Hash32 HashTagged(uint8_t prefix, const Hash32& a, const Hash32& b) {
  std::array<uint8_t, 1 + 2 * Hash32::kSize> buf;
  buf[0] = prefix;
  std::memcpy(buf.data() + 1, a.data.data(), Hash32::kSize);
  std::memcpy(buf.data() + 1 + Hash32::kSize, b.data.data(), Hash32::kSize);
  return crypto::Blake2b256(buf);
}

// True when the first `bits` bits of a and b agree.
bool SharePrefix(const Hash32& a, const Hash32& b, size_t bits) {
  GPUNET_CHECK(bits <= 256);
  size_t whole = bits / 8;
  if (std::memcmp(a.data.data(), b.data.data(), whole) != 0) return false;
  size_t rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return ((a.data[whole] ^ b.data[whole]) & mask) == 0;
}

void AppendLeb128(base::Bytes& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

}  // namespace

Hash32 SmtKeyHash(base::ByteSpan state_key) {
  return crypto::Blake2b256(state_key);
}
Hash32 SmtValueHash(base::ByteSpan value) {
  return crypto::Blake2b256(value);
}

Hash32 SmtLeafHash(const Hash32& key_hash, const Hash32& value_hash) {
  return HashTagged(kSmtLeafPrefix, key_hash, value_hash);
}

Hash32 SmtInnerHash(const Hash32& left, const Hash32& right) {
  return HashTagged(kSmtInnerPrefix, left, right);
}

base::Bytes EncodeSmtProof(const SmtProof& proof) {
  GPUNET_CHECK(proof.siblings.size() <= base::limits::kSmtProofSiblingsMax);
  base::Bytes out;
  out.reserve(1 + 2 * Hash32::kSize + 2 + proof.siblings.size() * Hash32::kSize);
  if (proof.leaf) {
    out.push_back(kEndLeaf);
    out.insert(out.end(), proof.leaf->key_hash.begin(), proof.leaf->key_hash.end());
    out.insert(out.end(), proof.leaf->value_hash.begin(), proof.leaf->value_hash.end());
  } else {
    out.push_back(kEndEmpty);
  }
  AppendLeb128(out, proof.siblings.size());
  for (const Hash32& s : proof.siblings) out.insert(out.end(), s.begin(), s.end());
  return out;
}

base::Result<SmtProof> DecodeSmtProof(base::ByteSpan bytes) {
  size_t pos = 0;
  auto take_hash = [&](Hash32& out) -> bool {
    if (bytes.size() - pos < Hash32::kSize) return false;
    std::memcpy(out.data.data(), bytes.data() + pos, Hash32::kSize);
    pos += Hash32::kSize;
    return true;
  };

  SmtProof proof;
  if (bytes.empty())
    return Fail(ErrorCode::kCorrupt, "state proof: empty input, expected an end kind byte");
  uint8_t end_kind = bytes[pos++];
  if (end_kind == kEndLeaf) {
    SmtLeaf leaf;
    if (!take_hash(leaf.key_hash) || !take_hash(leaf.value_hash))
      return Fail(ErrorCode::kCorrupt,
                  "state proof: truncated inside the end leaf (needs 64 bytes)");
    proof.leaf = leaf;
  } else if (end_kind != kEndEmpty) {
    return Fail(ErrorCode::kCorrupt, "state proof: unknown end kind " + std::to_string(end_kind) +
                                         " (0 = empty subtree, 1 = leaf)");
  }

  // LEB128 count: at most two bytes can express the limit (256), so anything longer
  // is refused before it can overflow.
  uint64_t count = 0;
  unsigned shift = 0;
  for (;;) {
    if (pos >= bytes.size())
      return Fail(ErrorCode::kCorrupt, "state proof: truncated sibling count");
    uint8_t b = bytes[pos++];
    if (shift >= 14) return Fail(ErrorCode::kLimitExceeded, "state proof: sibling count too long");
    count |= static_cast<uint64_t>(b & 0x7f) << shift;
    shift += 7;
    if ((b & 0x80) == 0) {
      if (b == 0 && shift > 7)
        return Fail(ErrorCode::kNonCanonical,
                    "state proof: sibling count not in minimal LEB128 form");
      break;
    }
  }
  if (count > base::limits::kSmtProofSiblingsMax)
    return Fail(ErrorCode::kLimitExceeded, "state proof: " + std::to_string(count) +
                                               " siblings, at most " +
                                               std::to_string(base::limits::kSmtProofSiblingsMax) +
                                               " (one per bit of the path)");
  if ((bytes.size() - pos) / Hash32::kSize < count)
    return Fail(ErrorCode::kCorrupt, "state proof: truncated, " + std::to_string(count) +
                                         " siblings announced, bytes for " +
                                         std::to_string((bytes.size() - pos) / Hash32::kSize));
  proof.siblings.resize(count);
  for (Hash32& s : proof.siblings) GPUNET_CHECK(take_hash(s));
  if (pos != bytes.size())
    return Fail(ErrorCode::kNonCanonical, "state proof: " + std::to_string(bytes.size() - pos) +
                                              " trailing bytes after the siblings");
  return proof;
}

base::Result<std::optional<Hash32>> VerifySmtProof(const Hash32& root, const Hash32& key_hash,
                                                   const SmtProof& proof) {
  const size_t depth = proof.siblings.size();
  if (depth > base::limits::kSmtProofSiblingsMax)
    return Fail(ErrorCode::kLimitExceeded, "state proof: more siblings than path bits");
  // The end leaf must sit on the key's path; otherwise the proof describes some other
  // part of the tree (the hash check alone would also fail, but say so plainly).
  if (proof.leaf && !SharePrefix(proof.leaf->key_hash, key_hash, depth))
    return Fail(ErrorCode::kCorrupt,
                "state proof: its end leaf is not on the path of key " + base::ToHex(key_hash));
  Hash32 node = proof.leaf ? SmtLeafHash(*proof.leaf) : kSmtEmptyHash;
  for (size_t i = 0; i < depth; ++i) {
    const Hash32& sibling = proof.siblings[i];
    node = SmtPathBit(key_hash, static_cast<unsigned>(depth - 1 - i)) ? SmtInnerHash(sibling, node)
                                                                      : SmtInnerHash(node, sibling);
  }
  if (node != root)
    return Fail(ErrorCode::kCorrupt, "state proof for key " + base::ToHex(key_hash) +
                                         " does not lead to root " + base::ToHex(root) +
                                         ": tampered, or made for another key or state");
  if (proof.leaf && proof.leaf->key_hash == key_hash)
    return std::optional<Hash32>(proof.leaf->value_hash);
  return std::optional<Hash32>();
}

base::Status VerifySmtMembership(const Hash32& root, const Hash32& key_hash,
                                 const Hash32& value_hash, const SmtProof& proof) {
  auto proven = VerifySmtProof(root, key_hash, proof);
  if (!proven) return std::unexpected(proven.error());
  if (!*proven)
    return Fail(ErrorCode::kNotFound, "state proof shows key " + base::ToHex(key_hash) + " absent");
  if (**proven != value_hash)
    return Fail(ErrorCode::kCorrupt, "state proof shows key " + base::ToHex(key_hash) +
                                         " holding value hash " + base::ToHex(**proven) + ", not " +
                                         base::ToHex(value_hash));
  return base::Ok();
}

base::Status VerifySmtNonMembership(const Hash32& root, const Hash32& key_hash,
                                    const SmtProof& proof) {
  auto proven = VerifySmtProof(root, key_hash, proof);
  if (!proven) return std::unexpected(proven.error());
  if (*proven)
    return Fail(ErrorCode::kAlreadyExists,
                "state proof shows key " + base::ToHex(key_hash) + " present, not absent");
  return base::Ok();
}

}  // namespace gpunet::codec
