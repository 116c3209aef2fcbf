#include "client/terminal_text.h"

#include <gtest/gtest.h>

#include <string>

namespace gpunet::client {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(TerminalText, KeepsTextNewlinesTabsAndCarriageReturns) {
  EXPECT_EQ(SanitizeTerminalText("loss 0.25\tstep 3\r\nepoch 1\n"),
            "loss 0.25\tstep 3\r\nepoch 1\n");
  EXPECT_EQ(SanitizeTerminalText("50%|#####     |\r60%|######    |"),
            "50%|#####     |\r60%|######    |");
  EXPECT_EQ(SanitizeTerminalText("Grüße, 世界 🚀"), "Grüße, 世界 🚀");
}

TEST(TerminalText, DropsCsiSequencesKeepingTheText) {
  EXPECT_EQ(SanitizeTerminalText("\x1b[31mred\x1b[0m plain"), "red plain");
  EXPECT_EQ(SanitizeTerminalText("a\x1b[2J\x1b[Hb"), "ab");       // clear screen, home
  EXPECT_EQ(SanitizeTerminalText("x\x1b[6n y"), "x y");           // a cursor query
  EXPECT_EQ(SanitizeTerminalText("\x1b[?1049h\x1b[?25lz"), "z");  // private modes
}

TEST(TerminalText, DropsOscAndOtherControlStrings) {
  EXPECT_EQ(SanitizeTerminalText("\x1b]0;pwned title\x07ok"), "ok");
  EXPECT_EQ(SanitizeTerminalText("\x1b]52;c;ZXZpbA==\x1b\\ok"), "ok");  // clipboard write
  EXPECT_EQ(SanitizeTerminalText("\x1bPq#0;2;0;0;0\x1b\\ok"), "ok");    // DCS (sixel)
  EXPECT_EQ(SanitizeTerminalText("\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\ok"), "ok");
  EXPECT_EQ(SanitizeTerminalText("\x1b"
                                 "7a\x1b"
                                 "8\x1b(Bb\x1b"
                                 "c"),
            "ab");
}

TEST(TerminalText, ShowsOtherControlsInCaretNotation) {
  EXPECT_EQ(SanitizeTerminalText(std::string("a\x07"
                                             "b\x08"
                                             "c\x7f"
                                             "d\0e",
                                             9)),
            "a^Gb^Hc^?d^@e");
  // A control inside a CSI ends it and is shown.
  EXPECT_EQ(SanitizeTerminalText("\x1b[3\x07x"), "^Gx");
}

TEST(TerminalText, ReplacesC1ControlsAndInvalidUtf8) {
  EXPECT_EQ(SanitizeTerminalText("a\xc2\x9b"
                                 "31mb"),
            "a" + kFffd + "31mb");  // U+009B CSI
  EXPECT_EQ(SanitizeTerminalText("a\x9b"
                                 "b"),
            "a" + kFffd + "b");                                            // a bare C1 byte
  EXPECT_EQ(SanitizeTerminalText("\xc0\xaf"), kFffd + kFffd);              // overlong '/'
  EXPECT_EQ(SanitizeTerminalText("\xed\xa0\x80"), kFffd + kFffd + kFffd);  // a surrogate
  EXPECT_EQ(SanitizeTerminalText("\xf4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);
  EXPECT_EQ(SanitizeTerminalText("\xe4\xb8"
                                 "x"),
            kFffd + "x");                                     // cut short by ASCII
  EXPECT_EQ(SanitizeTerminalText("\xe4\xb8"), kFffd);         // cut short by the end
  EXPECT_EQ(SanitizeTerminalText("\xe4\xb8\x1b[0m"), kFffd);  // cut short by ESC
}

TEST(TerminalText, ASequenceOrCharacterSplitAcrossFeedsIsHandledAsOne) {
  const std::string input =
      "\x1b[31mr\xc3\xa9"
      "d\x1b]0;t\x07"
      "\xf0\x9f\x9a\x80!\n";
  const std::string whole = SanitizeTerminalText(input);
  EXPECT_EQ(whole,
            "r\xc3\xa9"
            "d\xf0\x9f\x9a\x80!\n");
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    TerminalSanitizer s;
    std::string out = s.Feed(input.substr(0, cut));
    out += s.Feed(input.substr(cut));
    out += s.Finish();
    EXPECT_EQ(out, whole) << "cut at " << cut;
  }
}

TEST(TerminalText, AnUnterminatedSequenceIsBoundedThenTextAgain) {
  std::string input = "\x1b]0;";
  input += std::string(TerminalSanitizer::kSequenceBytesMax + 10, 'x');
  const std::string out = SanitizeTerminalText(input);
  EXPECT_LT(out.size(), 20u);
  EXPECT_EQ(out, std::string(out.size(), 'x'));
  EXPECT_EQ(SanitizeTerminalText("text\x1b[12"), "text");  // cut off at the end: dropped
}

TEST(TerminalText, ALineOfTheProvidersIsOneHarmlessLineAndBounded) {
  EXPECT_EQ(TerminalLine("running"), "running");
  EXPECT_EQ(TerminalLine("oom\x1b]0;pwned\x07\x1b[2J\rlease 9: ok\nx\t\x07"),
            "oom lease 9: ok x ^G");
  EXPECT_EQ(TerminalLine(std::string(5000, 'a'), 100), std::string(100, 'a'));
  EXPECT_EQ(TerminalLine("ab\xc3\xa9", 3), "ab\xef\xbf\xbd");  // a character cut: U+FFFD
}

TEST(TerminalText, NoOutputByteCanStartASequence) {
  // Every byte value, alone and after ESC and after "ESC [": the output never holds
  // ESC, a C1 control in either form, or a C0 control other than \n \t \r.
  for (int a = 0; a < 256; ++a)
    for (std::string prefix : {"", "\x1b", "\x1b[", "\xc2", "\xe2\x80"}) {
      const std::string out = SanitizeTerminalText(prefix + static_cast<char>(a) + "\x9b\x1b");
      for (size_t i = 0; i < out.size(); ++i) {
        const auto c = static_cast<unsigned char>(out[i]);
        EXPECT_FALSE(c < 0x20 && c != '\n' && c != '\t' && c != '\r') << a;
        EXPECT_NE(c, 0x7f) << a;
        if (c == 0xc2 && i + 1 < out.size()) {
          EXPECT_GT(static_cast<unsigned char>(out[i + 1]), 0x9f) << a;
        }
      }
    }
}

}  // namespace
}  // namespace gpunet::client
