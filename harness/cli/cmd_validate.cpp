// `popper validate [PATHS]`: schema and semantic checks of contracts, file:line:col messages.
#include <cstdio>
#include <memory>

#include "harness/cli/commands.h"
#include "harness/contract/contract_set.h"
#include "harness/contract/validate.h"
#include "harness/run/targets.h"

namespace popper::cli {
namespace {

struct ValidateArgs {
  std::vector<std::string> paths;
  std::string build_dir;
  bool no_bindings = false;
  bool quiet = false;
};

int run_validate(const ValidateArgs& a) {
  using namespace harness;
  std::string root = find_repo_root(".");
  auto files = expand_contract_paths(a.paths, root);
  if (!files.ok()) {
    std::fprintf(stderr, "popper validate: %s\n", files.message().c_str());
    return 2;
  }
  ContractSet set = load_contract_set(*files);
  std::vector<Diagnostic> diags = set.diagnostics();
  ValidateOptions opts;
  opts.build_dir = a.build_dir.empty() ? default_build_dir() : a.build_dir;
  opts.repo_root = root;
  opts.check_bindings = !a.no_bindings;
  validate_contracts(set.contracts(), opts, diags);
  int errors = print_diagnostics(diags, !a.quiet);
  int warnings = 0, pending = 0, items = 0;
  for (const auto& d : diags) {
    warnings += d.severity == Severity::kWarning;
    pending += d.severity == Severity::kNote;
  }
  for (const Contract* c : set.contracts()) items += static_cast<int>(c->items.size());
  std::printf("%zu contract%s, %d items: %d error%s, %d warning%s, %d pending%s\n", files->size(),
              files->size() == 1 ? "" : "s", items, errors, errors == 1 ? "" : "s", warnings,
              warnings == 1 ? "" : "s", pending, a.no_bindings ? " (bindings not checked)" : "");
  return errors > 0 ? 1 : 0;
}

void register_validate(CLI::App& app) {
  auto a = std::make_shared<ValidateArgs>();
  CLI::App* cmd = add_command(app, "validate", "Check contracts: schema, IDs, versions, history, bindings",
                              [a] { return run_validate(*a); });
  cmd->add_option("paths", a->paths, "Contract files or directories (default: <repo>/contracts)");
  cmd->add_option("--build-dir", a->build_dir,
                  "Build directory holding falsifiers/ and benchmarks/ "
                  "(default: the one this popper was built in)");
  cmd->add_flag("--no-bindings", a->no_bindings,
                "Skip asking the test executables (schema and versions only)");
  cmd->add_flag("-q,--quiet", a->quiet, "Hide notes about pending (blocked) items");
}

}  // namespace
POPPER_REGISTER_COMMAND(40, register_validate);
}  // namespace popper::cli
