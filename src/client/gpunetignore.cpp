#include "client/gpunetignore.h"

#include <algorithm>
#include <filesystem>

#include "base/check.h"
#include "base/file_util.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;
namespace fs = std::filesystem;

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

/// Pattern parts against path parts; "**" takes zero or more path parts. A table
/// over (pattern part, path part), so many **s cost O(pattern x path), never more.
bool MatchParts(const std::vector<std::string>& pattern, const std::vector<std::string>& path) {
  const size_t n = path.size();
  // next[i]: pattern[p + 1..] matches path[i..]; filled from the pattern's end.
  std::vector<char> next(n + 1, 0), cur(n + 1, 0);
  next[n] = 1;
  for (size_t p = pattern.size(); p-- > 0;) {
    bool any = pattern[p] == "**";
    cur[n] = any ? next[n] : 0;
    for (size_t i = n; i-- > 0;)
      cur[i] = any ? (next[i] || cur[i + 1]) : (GlobMatchName(pattern[p], path[i]) && next[i + 1]);
    std::swap(cur, next);
  }
  return next[0] != 0;
}

base::Result<IgnoreRule> ParseRule(std::string_view text, const std::string& where) {
  IgnoreRule rule;
  if (text.starts_with('!')) {
    rule.negated = true;
    text.remove_prefix(1);
  }
  if (text.find_first_of("[\\") != std::string_view::npos)
    return Fail(ErrorCode::kInvalidArgument,
                where +
                    ": character classes ([...]) and backslash escapes are not supported "
                    "here; write the names with * and ? (docs/task.md)");
  if (text.ends_with('/')) {
    rule.folders_only = true;
    while (text.ends_with('/')) text.remove_suffix(1);
  }
  // A '/' at the start or inside anchors the pattern to the workdir; without one it
  // names a file or folder at any depth.
  bool anchored = text.find('/') != std::string_view::npos;
  rule.parts = SplitPath(text);
  if (rule.parts.empty())
    return Fail(ErrorCode::kInvalidArgument,
                where + ": the pattern is empty; write a name, e.g. *.ckpt or build/");
  for (auto& part : rule.parts)
    if (part.find("**") != std::string::npos && part != "**") part = "*";  // as git reads it
  // A trailing /** is what is inside, not the folder itself (as in git): one name, then any.
  if (rule.parts.size() > 1 && rule.parts.back() == "**")
    rule.parts.insert(rule.parts.end() - 1, "*");
  if (!anchored) rule.parts.insert(rule.parts.begin(), "**");
  return rule;
}

/// The walk's state: the rules, the canonical root and what was found.
struct Walk {
  IgnoreRules rules;
  fs::path root;
  std::string canonical_root;
  WorkdirFiles out;
  size_t entries = 0;
};

/// Whether the walk leaves out the file `rel`: it, or a folder it lies in, is ignored
/// (the walk does not read an ignored folder).
bool IgnoredFile(const IgnoreRules& rules, std::string_view rel) {
  for (size_t slash = rel.find('/'); slash != std::string_view::npos;
       slash = rel.find('/', slash + 1))
    if (rules.Ignored(rel.substr(0, slash), true)) return true;
  return rules.Ignored(rel, false);
}

/// A symbolic link: sent as its target's bytes when that is a regular file inside
/// the workdir that .gpunetignore does not leave out; listed as skipped otherwise.
/// Never followed to a folder (no loops).
void AddLink(Walk& w, const fs::path& path, const std::string& rel) {
  std::error_code ec;
  fs::path target = fs::canonical(path, ec);
  if (ec) return w.out.skipped.push_back({rel, "a symbolic link to nothing"});
  std::string t = target.string();
  if (!t.starts_with(w.canonical_root + "/"))
    return w.out.skipped.push_back({rel, "a symbolic link out of the workdir (not followed)"});
  if (IgnoredFile(w.rules, std::string_view(t).substr(w.canonical_root.size() + 1)))
    return w.out.skipped.push_back(
        {rel, "a symbolic link to a file " + std::string(kIgnoreFileName) + " leaves out"});
  auto st = fs::status(target, ec);
  if (ec || !fs::is_regular_file(st))
    return w.out.skipped.push_back(
        {rel, "a symbolic link to a folder or special file (not followed)"});
  auto size = fs::file_size(target, ec);
  if (ec) return w.out.skipped.push_back({rel, "unreadable: " + ec.message()});
  w.out.files.push_back({t, rel, size});
  w.out.bytes += size;
}

base::Status AddEntry(Walk& w, const fs::directory_entry& entry, const std::string& rel,
                      std::vector<std::pair<fs::path, std::string>>& folders) {
  std::error_code ec;
  auto st = entry.symlink_status(ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot stat " + entry.path().string() + ": " + ec.message());
  bool folder = fs::is_directory(st);
  if (w.rules.Ignored(rel, folder)) {
    ++w.out.ignored;
    return base::Ok();
  }
  if (auto ok = CheckTenantPath(rel); !ok)
    return Fail(ok.error().code, "workdir: " + rel + ": " + ok.error().message +
                                     "; rename it or add it to " + std::string(kIgnoreFileName));
  if (folder) {
    folders.emplace_back(entry.path(), rel);
  } else if (fs::is_symlink(st)) {
    AddLink(w, entry.path(), rel);
  } else if (fs::is_regular_file(st)) {
    auto size = fs::file_size(entry.path(), ec);
    if (ec) return Fail(ErrorCode::kIo, "cannot read " + entry.path().string());
    w.out.files.push_back({entry.path().string(), rel, size});
    w.out.bytes += size;
  } else {
    w.out.skipped.push_back({rel, "not a regular file (a socket, FIFO or device)"});
  }
  return base::Ok();
}

base::Status WalkFolder(Walk& w, const fs::path& folder, const std::string& rel) {
  std::error_code ec;
  fs::directory_iterator it(folder, ec), end;
  if (ec)
    return Fail(ErrorCode::kIo, "cannot read the folder " + folder.string() + ": " + ec.message());
  std::vector<std::pair<fs::path, std::string>> folders;
  for (; it != end; it.increment(ec)) {
    if (++w.entries > kWorkdirEntriesMax)
      return Fail(ErrorCode::kLimitExceeded, "workdir " + w.root.string() + " holds more than " +
                                                 std::to_string(kWorkdirEntriesMax) +
                                                 " files and folders; name what "
                                                 "need not go up in " +
                                                 std::string(kIgnoreFileName));
    std::string name = it->path().filename().string();
    GPUNET_TRY(AddEntry(w, *it, rel.empty() ? name : rel + "/" + name, folders));
  }
  if (ec)
    return Fail(ErrorCode::kIo, "cannot read the folder " + folder.string() + ": " + ec.message());
  for (const auto& [path, child] : folders) GPUNET_TRY(WalkFolder(w, path, child));
  return base::Ok();
}

}  // namespace

bool GlobMatchName(std::string_view pattern, std::string_view name) {
  // Iterative wildcard match with one backtrack point: linear in practice, never
  // exponential on patterns like *a*a*a*.
  size_t p = 0, n = 0, star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

base::Result<IgnoreRules> IgnoreRules::Parse(std::string_view text, std::string_view file) {
  if (text.size() > kIgnoreBytesMax)
    return Fail(ErrorCode::kLimitExceeded, std::string(file) + " is " +
                                               std::to_string(text.size()) + " bytes; at most " +
                                               std::to_string(kIgnoreBytesMax));
  IgnoreRules rules;
  int line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
      line.remove_suffix(1);
    if (line.empty() || line.starts_with('#')) continue;
    std::string where = std::string(file) + ":" + std::to_string(line_no);
    GPUNET_TRY_ASSIGN(auto rule, ParseRule(line, where));
    rule.line = line_no;
    if (rules.m_rules.size() >= kIgnoreRulesMax)
      return Fail(ErrorCode::kLimitExceeded,
                  where + ": more than " + std::to_string(kIgnoreRulesMax) + " patterns");
    rules.m_rules.push_back(std::move(rule));
  }
  return rules;
}

bool IgnoreRules::Ignored(std::string_view path, bool is_folder) const {
  std::vector<std::string> parts = SplitPath(path);
  bool ignored = false;
  for (const auto& rule : m_rules) {
    if (rule.folders_only && !is_folder) continue;
    if (rule.negated == ignored && MatchParts(rule.parts, parts)) ignored = !rule.negated;
  }
  return ignored;
}

base::Result<WorkdirFiles> ListWorkdirFiles(const std::string& root) {
  Walk w;
  w.root = root;
  std::error_code ec;
  if (!fs::is_directory(w.root, ec))
    return Fail(ErrorCode::kNotFound,
                "workdir " + root + " is not a folder; give the folder to upload to /work");
  w.canonical_root = fs::canonical(w.root, ec).string();
  if (ec) return Fail(ErrorCode::kIo, "cannot resolve " + root + ": " + ec.message());
  // Never through a link: the rules are the workdir's own file.
  std::string ignore_file = (w.root / std::string(kIgnoreFileName)).string();
  auto text = base::ReadFileNoFollow(ignore_file, kIgnoreBytesMax);
  if (text) {
    GPUNET_TRY_ASSIGN(w.rules, IgnoreRules::Parse(*text, ignore_file));
  } else if (text.error().code != ErrorCode::kNotFound) {
    return std::unexpected(text.error());
  }
  GPUNET_TRY(WalkFolder(w, w.root, ""));
  std::ranges::sort(w.out.files, {}, &UploadFile::remote);
  std::ranges::sort(w.out.skipped, {}, &SkippedEntry::path);
  return std::move(w.out);
}

}  // namespace gpunet::client
