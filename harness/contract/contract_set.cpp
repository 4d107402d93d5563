#include "harness/contract/contract_set.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace popper::harness {
namespace fs = std::filesystem;

Result<std::vector<std::string>> expand_contract_paths(const std::vector<std::string>& paths,
                                                       const std::string& repo_root) {
  std::vector<std::string> in = paths;
  if (in.empty()) {
    // Shown in messages: relative to the working directory when the contracts are below it.
    std::error_code ec;
    fs::path dir = fs::path(repo_root) / "contracts";
    fs::path rel = fs::relative(dir, fs::current_path(ec), ec);
    in.push_back(!ec && !rel.empty() && rel.string().rfind("..", 0) != 0 ? rel.string() : dir.string());
  }
  std::vector<std::string> out;
  for (const auto& p : in) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(p, ec)) {
        auto ext = e.path().extension();
        if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml")) found.push_back(e.path().string());
      }
      if (found.empty()) return make_error(p, ": no contract files (*.yaml) in this directory");
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (fs::exists(p, ec)) {
      out.push_back(p);
    } else {
      return make_error(p, ": no such file or directory");
    }
  }
  return out;
}

std::vector<const Contract*> ContractSet::contracts() const {
  std::vector<const Contract*> out;
  for (const auto& l : loaded)
    if (l.contract) out.push_back(&*l.contract);
  return out;
}

bool ContractSet::has_errors() const {
  return std::any_of(loaded.begin(), loaded.end(), [](const LoadedContract& l) { return l.has_errors(); });
}

std::vector<Diagnostic> ContractSet::diagnostics() const {
  std::vector<Diagnostic> out;
  for (const auto& l : loaded) out.insert(out.end(), l.diagnostics.begin(), l.diagnostics.end());
  return out;
}

ContractSet load_contract_set(const std::vector<std::string>& files) {
  ContractSet s;
  for (const auto& f : files) s.loaded.push_back(load_contract(f));
  return s;
}

int print_diagnostics(const std::vector<Diagnostic>& diags, bool include_notes) {
  int errors = 0;
  for (const auto& d : diags) {
    if (d.severity == Severity::kError) ++errors;
    if (d.severity == Severity::kNote && !include_notes) continue;
    std::fprintf(stderr, "%s\n", d.format().c_str());
  }
  return errors;
}

}  // namespace popper::harness
