// Reads published test vectors checked in under tests/vectors/. ctest sets
// GPUNET_SOURCE_DIR; a missing variable or file fails the test (never skips it).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace gpunet::testing {

/// Lines of tests/vectors/<relative>, without blank lines and '#' comments, with
/// "\xNN" escapes turned into bytes (vectors include control and non-ASCII bytes).
inline std::vector<std::string> ReadVectorLines(const std::string& relative) {
  const char* root = std::getenv("GPUNET_SOURCE_DIR");
  if (root == nullptr || *root == '\0') {
    ADD_FAILURE()
        << "GPUNET_SOURCE_DIR is not set: run through ctest, or set it to the source tree";
    return {};
  }
  std::string path = std::string(root) + "/tests/vectors/" + relative;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path << " (set GPUNET_SOURCE_DIR to the source tree)";
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::string out;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 3 < line.size() && line[i + 1] == 'x') {
        out.push_back(static_cast<char>(std::stoi(line.substr(i + 2, 2), nullptr, 16)));
        i += 3;
      } else {
        out.push_back(line[i]);
      }
    }
    lines.push_back(out);
  }
  EXPECT_FALSE(lines.empty()) << path << " has no vectors";
  return lines;
}

/// Splits a vector line on tabs.
inline std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (;;) {
    size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return fields;
}

}  // namespace gpunet::testing
