// A workload's output made harmless on the tenant's terminal (issue 18 item 2:
// `gpunet logs`, `gpunet run`; --raw skips it).
//
// A workload's bytes are the provider's and the tenant's code's: printed verbatim they
// could retitle the window (OSC), rewrite the clipboard (OSC 52), move the cursor over
// earlier lines, switch the terminal's modes or answer a query into the shell's input.
// TerminalSanitizer keeps text and drops the rest:
//   - kept: printable ASCII, valid UTF-8 above U+009F, '\n', '\t', and '\r' (a progress
//     bar's carriage return only moves to the line's start);
//   - dropped whole: escape sequences — CSI (ESC [ ... final byte), OSC (ESC ] ... BEL or
//     ESC \), DCS, SOS, PM and APC strings (ESC P/X/^/_ ... ESC \) and the two- or
//     three-byte ESC sequences; colours go with them, the text between stays. A
//     sequence longer than kSequenceBytesMax is dropped and the sanitizer starts over
//     in text (memory stays bounded whatever the workload prints);
//   - shown in caret notation: every other C0 control and DEL ("^G", "^?");
//   - shown as U+FFFD: C1 controls (U+0080..U+009F, which some terminals obey like
//     ESC [) and each maximal invalid UTF-8 subpart (overlong forms, surrogates, code
//     points past U+10FFFF, stray continuation bytes, a sequence cut short).
// Pure and streaming: a sequence or a UTF-8 character split across two Feed calls is
// handled as if it came in one; Finish flushes what a cut-off stream left pending.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gpunet::client {

class TerminalSanitizer {
 public:
  /// The longest escape sequence or control string followed before it is dropped.
  static constexpr size_t kSequenceBytesMax = 4096;

  /// The harmless text of `bytes`, given what earlier calls left pending.
  std::string Feed(std::string_view bytes);
  /// The end of the stream: an incomplete UTF-8 character becomes U+FFFD, an
  /// unfinished escape sequence is dropped; the sanitizer is back in its first state.
  std::string Finish();

 private:
  enum class State : uint8_t { kText, kEsc, kEscIntermediate, kCsi, kString, kStringEsc };
  void Text(unsigned char c, std::string& out);
  void Utf8(unsigned char c, std::string& out);
  State m_state = State::kText;
  size_t m_sequence_bytes = 0;
  unsigned char m_pending[4] = {};  ///< a UTF-8 character's bytes so far
  size_t m_pending_len = 0;
  size_t m_pending_need = 0;  ///< its full length (2..4)
  bool m_osc = false;         ///< the string is an OSC (BEL ends it too)
};

/// One-shot: TerminalSanitizer().Feed(bytes) + Finish().
std::string SanitizeTerminalText(std::string_view bytes);

/// A provider's short text printed inside a line of ours (the workload id of a
/// manifest answer, a lease's step or state, an exit reason, a session's ERROR
/// message) as one harmless line: SanitizeTerminalText of its first `bytes_max`
/// bytes, '\n', '\r' and '\t' as spaces (no line of ours is overwritten or split).
std::string TerminalLine(std::string_view bytes, size_t bytes_max = 1024);

}  // namespace gpunet::client
