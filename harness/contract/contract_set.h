// The contracts a command works on: the paths given (files or directories), or every
// contracts/*.yaml of the repository when none are.
#pragma once

#include <string>
#include <vector>

#include "engine/core/result.h"
#include "harness/contract/contract.h"

namespace popper::harness {

// Files in a stable (sorted) order; an error names a path that does not exist or a directory
// without contracts.
Result<std::vector<std::string>> expand_contract_paths(const std::vector<std::string>& paths,
                                                       const std::string& repo_root);

struct ContractSet {
  std::vector<LoadedContract> loaded;
  std::vector<const Contract*> contracts() const;  // those that parsed
  bool has_errors() const;
  std::vector<Diagnostic> diagnostics() const;  // every loader diagnostic, in file order
};

ContractSet load_contract_set(const std::vector<std::string>& files);

// Prints diagnostics to stderr, one per line; returns the number of errors.
int print_diagnostics(const std::vector<Diagnostic>& diags, bool include_notes = true);

}  // namespace popper::harness
