// Fuzz target: contract YAML loading and `popper validate`'s rules (harness/contract).
//
// Properties: the loader never throws or crashes; a file it cannot parse gets at least one
// error; every diagnostic names the file and points inside it (line <= lines in the text); a
// parsed contract keeps the exact bytes and their sha256; a contract without structural errors
// goes through validate (bindings not executed: check_bindings off) under the same rules.
#include <algorithm>

#include "engine/core/sha256.h"
#include "falsifiers/fuzz/fuzz_target.h"
#include "harness/contract/contract.h"
#include "harness/contract/validate.h"

namespace popper::fuzz {
namespace {

using harness::Diagnostic;

void check_diagnostics(const std::vector<Diagnostic>& diags, const std::string& text) {
  // yaml-cpp counts a final line without a newline too, and an error may point just past it.
  const int lines = int(std::count(text.begin(), text.end(), '\n')) + 2;
  for (const auto& d : diags) {
    const std::string f = d.format();
    fuzz_require(f.rfind("fuzz.yaml", 0) == 0, "diagnostic names the file: " + f);
    fuzz_require(d.pos.line >= 0 && d.pos.line <= lines && d.pos.col >= 0, "diagnostic points inside: " + f);
    fuzz_require(!d.message.empty(), "diagnostic says something: " + f);
  }
}

void contract_one_input(Bytes data) {
  const std::string text(data.begin(), data.end());
  harness::LoadedContract lc = harness::parse_contract("fuzz.yaml", text);
  check_diagnostics(lc.diagnostics, text);
  if (!lc.contract) {
    fuzz_require(std::any_of(lc.diagnostics.begin(), lc.diagnostics.end(),
                             [](const Diagnostic& d) { return d.severity == harness::Severity::kError; }),
                 "an unparsed contract has an error");
    return;
  }
  const harness::Contract& c = *lc.contract;
  fuzz_require(c.text == text && c.sha256 == sha256_hex(text), "the contract keeps its exact bytes");
  for (const auto& it : c.items) fuzz_require(c.find_item(it.id) != nullptr, "every item is found by its id");
  if (lc.has_errors()) return;
  harness::ValidateOptions opts;
  opts.repo_root = source_dir();
  opts.check_bindings = false;
  std::vector<Diagnostic> diags;
  harness::validate_contracts({&c}, opts, diags);
  check_diagnostics(diags, text);
}

// Seeds: the repository's contracts and the malformed-contract corpus.
int contract_seeds(const std::string& dir) {
  int a = copy_fixture_files("contracts", ".yaml", dir);
  int b = copy_fixture_files("falsifiers/fixtures/harness/malformed", ".yaml", dir);
  return a < 0 || b < 0 ? -1 : a + b;
}

}  // namespace
}  // namespace popper::fuzz

POPPER_FUZZ_TARGET(contract, popper::fuzz::contract_one_input, popper::fuzz::contract_seeds);
