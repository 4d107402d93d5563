// A directory tree as one fuzz input, for readers that take a directory (evidence, sign-off
// bundles). Text, so libFuzzer's mutations and a dictionary work on it:
//
//   === MANIFEST
//   <bytes of MANIFEST>
//   === demo-v1/20261120T100000Z-77ca0ef0a490.json
//   <bytes ...>
//
// A file runs from the line after its "=== <path>" header up to the next line that starts with
// "=== " (the newline before it belongs to the file) or the end of the input. Paths are
// relative, at most kMaxDepth components, none empty, "." or ".."; an entry with another path is
// dropped (the reader must never be pointed outside the scratch tree), a repeated path keeps its
// last content.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "falsifiers/fuzz/fuzz_target.h"

namespace popper::fuzz {

inline constexpr int kMaxArchiveFiles = 32;  // more files add time per input, not new paths
inline constexpr int kMaxDepth = 4;

using FileTree = std::map<std::string, std::string>;  // relative path -> bytes

FileTree parse_archive(std::string_view text);
std::string pack_archive(const FileTree& files);
// Every regular file under `dir`, paths relative to it; empty when it cannot be read.
FileTree read_tree(const std::string& dir);

// Writes `files` into a fresh directory <scratch>/<name> and removes it when destroyed.
class MaterializedTree {
 public:
  MaterializedTree(const std::string& name, const FileTree& files);
  ~MaterializedTree();
  MaterializedTree(const MaterializedTree&) = delete;
  MaterializedTree& operator=(const MaterializedTree&) = delete;
  const std::string& path() const { return path_; }
  // The files actually written: "a/b" cannot be written beside a file "a".
  const FileTree& files() const { return written_; }
  // Rewrites one file in place (the tamper checks); false when it cannot.
  bool write(const std::string& rel, const std::string& bytes) const;

 private:
  std::string path_;
  FileTree written_;
};

}  // namespace popper::fuzz
