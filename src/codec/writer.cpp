#include "codec/writer.h"

namespace gpunet::codec {

void Writer::U16(uint16_t v) {
  m_out.push_back(static_cast<uint8_t>(v >> 8));
  m_out.push_back(static_cast<uint8_t>(v));
}

void Writer::U32(uint32_t v) {
  base::AppendU32BE(m_out, v);
}

void Writer::U64(uint64_t v) {
  base::AppendU64BE(m_out, v);
}

void Writer::I32(int32_t v) {
  U32(static_cast<uint32_t>(v));
}

void Writer::VarUint(uint64_t v) {
  while (v >= 0x80) {
    m_out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  m_out.push_back(static_cast<uint8_t>(v));
}

// Out of line on purpose: g++ 12 inlines vector::insert into callers and then warns
// (-Wstringop-overflow, a known false positive) in every file that writes fields.
void Writer::Raw(base::ByteSpan bytes) {
  m_out.insert(m_out.end(), bytes.begin(), bytes.end());
}

void Writer::LenBytes(base::ByteSpan bytes) {
  VarUint(bytes.size());
  Raw(bytes);
}

}  // namespace gpunet::codec
