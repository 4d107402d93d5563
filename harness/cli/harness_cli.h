// Shared by the harness commands (validate, run, gate, verify-evidence): default locations and
// terminal presentation of verdicts.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "harness/contract/contract_set.h"
#include "harness/contract/verdict.h"
#include "harness/run/runner.h"

namespace popper::cli {

// Colour only on a terminal and when NO_COLOR is unset (https://no-color.org).
bool use_color(int fd);

// "survived" in green, "falsified" in red, "inconclusive" in yellow, "error" in magenta, padded
// to the widest verdict so columns line up.
std::string verdict_label(harness::Verdict v, bool color);

// What a verdict would be decided by now (run/fingerprint.h): this build (or `build_dir`), the
// repository's model cache (or `model_cache`), each item's default profile (or `profile`).
harness::RunOptions options_now(const std::string& root, const std::string& build_dir,
                                const std::string& model_cache, const std::string& profile);

// The contracts `paths` name (all of <root>/contracts when empty), loaded and validated without
// checking their bindings (a missing target is an inconclusive verdict, not a refusal), the
// diagnostics printed. nullopt, after "popper <command>: ..." on stderr, for a bad path or a
// contract with errors; `on_errors` ends that line.
std::optional<harness::ContractSet> load_checked_contracts(const std::vector<std::string>& paths,
                                                           const std::string& root, const char* command,
                                                           const char* on_errors);

}  // namespace popper::cli
