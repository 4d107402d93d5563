#include "falsifiers/fuzz/fuzz_archive.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/core/atomic_file.h"

namespace popper::fuzz {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kHeader = "=== ";

bool safe_path(std::string_view p) {
  if (p.empty() || p.size() > 200 || p.front() == '/') return false;
  int depth = 0;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string_view::npos)
      return false;
    if (++depth > kMaxDepth) return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

FileTree parse_archive(std::string_view text) {
  FileTree files;
  std::string* current = nullptr;  // the file the lines go to; null while an entry is dropped
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    size_t next = eol == std::string_view::npos ? text.size() : eol + 1;
    std::string_view line = text.substr(pos, next - pos);  // with its newline
    pos = next;
    if (!line.starts_with(kHeader)) {
      if (current) current->append(line);
      continue;
    }
    std::string name(line.substr(kHeader.size()));
    if (!name.empty() && name.back() == '\n') name.pop_back();
    const bool room = files.size() < size_t(kMaxArchiveFiles) || files.count(name);
    current = room && safe_path(name) ? &(files[name] = std::string()) : nullptr;
  }
  return files;
}

std::string pack_archive(const FileTree& files) {
  std::string out;
  for (const auto& [path, bytes] : files) {
    // A file that does not end in a newline can only be last (the format has no length fields).
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += std::string(kHeader) + path + "\n" + bytes;
  }
  return out;
}

FileTree read_tree(const std::string& dir) {
  FileTree files;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    auto text = read_file(e.path().string());
    if (text.ok()) files[fs::relative(e.path(), dir).string()] = std::move(*text);
  }
  return files;
}

MaterializedTree::MaterializedTree(const std::string& name, const FileTree& files)
    : path_(scratch_dir() + "/" + name) {
  std::error_code ec;
  fs::remove_all(path_, ec);
  fs::create_directories(path_, ec);
  for (const auto& [rel, bytes] : files) {
    fs::path p = fs::path(path_) / rel;
    fs::create_directories(p.parent_path(), ec);
    if (ec) continue;  // "a/b" after a file "a": the tree cannot hold both; the reader sees "a"
    if (write(rel, bytes)) written_[rel] = bytes;
  }
}

MaterializedTree::~MaterializedTree() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

bool MaterializedTree::write(const std::string& rel, const std::string& bytes) const {
  // Plain writes: the scratch tree is private, and rename-based atomic writes cost a syscall more.
  std::ofstream out(fs::path(path_) / rel, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  return bool(out.flush());
}

}  // namespace popper::fuzz
