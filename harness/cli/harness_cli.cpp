#include "harness/cli/harness_cli.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "harness/contract/validate.h"
#include "harness/run/models.h"
#include "harness/run/targets.h"

namespace popper::cli {

bool use_color(int fd) {
  const char* no = std::getenv("NO_COLOR");
  return ::isatty(fd) && !(no && *no);
}

std::string verdict_label(harness::Verdict v, bool color) {
  std::string name = harness::verdict_name(v);
  std::string padded = name + std::string(12 - name.size(), ' ');
  if (!color) return padded;
  const char* code = v == harness::Verdict::kSurvived       ? "32"
                     : v == harness::Verdict::kFalsified    ? "1;31"
                     : v == harness::Verdict::kInconclusive ? "33"
                                                            : "35";
  return std::string("\033[") + code + "m" + name + "\033[0m" + std::string(12 - name.size(), ' ');
}

harness::RunOptions options_now(const std::string& root, const std::string& build_dir,
                                const std::string& model_cache, const std::string& profile) {
  harness::RunOptions o;
  o.build_dir = build_dir.empty() ? harness::default_build_dir() : build_dir;
  o.repo_root = root;
  o.model_cache = model_cache.empty() ? harness::default_model_cache(root) : model_cache;
  if (!profile.empty()) o.profile = profile;
  return o;
}

std::optional<harness::ContractSet> load_checked_contracts(const std::vector<std::string>& paths,
                                                           const std::string& root, const char* command,
                                                           const char* on_errors) {
  auto files = harness::expand_contract_paths(paths, root);
  if (!files.ok()) {
    std::fprintf(stderr, "popper %s: %s\n", command, files.message().c_str());
    return std::nullopt;
  }
  harness::ContractSet set = harness::load_contract_set(*files);
  std::vector<harness::Diagnostic> diags = set.diagnostics();
  harness::ValidateOptions vopts;
  vopts.repo_root = root;
  vopts.check_bindings = false;
  harness::validate_contracts(set.contracts(), vopts, diags);
  if (harness::print_diagnostics(diags, false) > 0) {
    std::fprintf(stderr, "popper %s: the contracts above have errors%s\n", command, on_errors);
    return std::nullopt;
  }
  return set;
}

}  // namespace popper::cli
