#include "client/terminal_text.h"

namespace gpunet::client {

namespace {

constexpr unsigned char kEsc = 0x1b;
constexpr unsigned char kBel = 0x07;
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool IsContinuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

/// The second byte's allowed range for a lead byte (Unicode table 3-7), so overlong
/// forms, surrogates and code points past U+10FFFF are refused at that byte.
bool SecondByteFits(unsigned char lead, unsigned char c) {
  if (lead == 0xE0) return c >= 0xA0 && c <= 0xBF;
  if (lead == 0xED) return c >= 0x80 && c <= 0x9F;
  if (lead == 0xF0) return c >= 0x90 && c <= 0xBF;
  if (lead == 0xF4) return c >= 0x80 && c <= 0x8F;
  return IsContinuation(c);
}

/// The length of the character a lead byte starts (0: not a lead byte).
size_t LeadLength(unsigned char c) {
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

}  // namespace

void TerminalSanitizer::Utf8(unsigned char c, std::string& out) {
  const bool fits = m_pending_len == 1 ? SecondByteFits(m_pending[0], c) : IsContinuation(c);
  if (!fits) {  // the bytes so far are one maximal invalid subpart; c starts afresh
    out += kReplacement;
    m_pending_len = 0;
    Text(c, out);
    return;
  }
  m_pending[m_pending_len++] = c;
  if (m_pending_len < m_pending_need) return;
  // C1 controls (U+0080..U+009F: C2 80..C2 9F) are obeyed by some terminals.
  if (m_pending_need == 2 && m_pending[0] == 0xC2 && m_pending[1] <= 0x9F)
    out += kReplacement;
  else
    out.append(reinterpret_cast<const char*>(m_pending), m_pending_len);
  m_pending_len = 0;
}

void TerminalSanitizer::Text(unsigned char c, std::string& out) {
  if (m_pending_len > 0) return Utf8(c, out);
  if (c == kEsc) {
    m_state = State::kEsc;
    m_sequence_bytes = 1;
    return;
  }
  if (c == '\n' || c == '\t' || c == '\r') {
    out += static_cast<char>(c);
  } else if (c < 0x20) {
    out += '^';
    out += static_cast<char>(c + 0x40);
  } else if (c == 0x7F) {
    out += "^?";
  } else if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (size_t need = LeadLength(c); need != 0) {
    m_pending[0] = c;
    m_pending_len = 1;
    m_pending_need = need;
  } else {
    out += kReplacement;
  }
}

std::string TerminalSanitizer::Feed(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (m_state != State::kText && ++m_sequence_bytes > kSequenceBytesMax) {
      m_state = State::kText;  // dropped; what follows is text again
    }
    switch (m_state) {
      case State::kText:
        Text(c, out);
        break;
      case State::kEsc:
        if (c == '[') {
          m_state = State::kCsi;
        } else if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
          m_state = State::kString;
          m_osc = c == ']';
        } else if (c >= 0x20 && c <= 0x2F) {
          m_state = State::kEscIntermediate;
        } else if (c >= 0x30 && c <= 0x7E) {
          m_state = State::kText;
        } else if (c == kEsc) {
          m_sequence_bytes = 1;
        } else {  // not a sequence: the byte is text (a control shown as such)
          m_state = State::kText;
          Text(c, out);
        }
        break;
      case State::kEscIntermediate:
        if (c >= 0x30 && c <= 0x7E) {
          m_state = State::kText;
        } else if (c < 0x20 || c > 0x2F) {
          m_state = State::kText;
          Text(c, out);
        }
        break;
      case State::kCsi:
        if (c >= 0x40 && c <= 0x7E) {
          m_state = State::kText;
        } else if (c == kEsc) {
          m_state = State::kEsc;
          m_sequence_bytes = 1;
        } else if (c < 0x20 || c > 0x3F) {
          m_state = State::kText;
          Text(c, out);
        }
        break;
      case State::kString:
        if (c == kEsc)
          m_state = State::kStringEsc;
        else if (c == kBel && m_osc)
          m_state = State::kText;
        break;
      case State::kStringEsc:
        if (c == '\\')
          m_state = State::kText;
        else if (c != kEsc)
          m_state = State::kString;
        break;
    }
  }
  return out;
}

std::string TerminalSanitizer::Finish() {
  std::string out;
  if (m_pending_len > 0) out += kReplacement;
  *this = TerminalSanitizer();
  return out;
}

std::string SanitizeTerminalText(std::string_view bytes) {
  TerminalSanitizer s;
  std::string out = s.Feed(bytes);
  out += s.Finish();
  return out;
}

std::string TerminalLine(std::string_view bytes, size_t bytes_max) {
  std::string out = SanitizeTerminalText(bytes.substr(0, bytes_max));
  for (char& c : out)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return out;
}

}  // namespace gpunet::client
