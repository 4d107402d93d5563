// `popper run --record`: appends a status_history entry to a contract, editing its text rather
// than re-serialising the YAML, so every existing byte (comments, quoting, order, old entries)
// stays as it was. Only three scalars change in place — `version`, `metadata.version`,
// `metadata.updated` — and one block is inserted after the last history entry. The result is
// re-parsed and checked before the caller writes it (atomically; evidence/record.h does the
// whole of --record).
#pragma once

#include <map>
#include <string>

#include "engine/core/result.h"
#include "harness/contract/contract.h"
#include "harness/contract/verdict.h"

namespace popper::harness {

struct NewHistoryEntry {
  std::string version;  // the bumped version
  std::string date;     // YYYY-MM-DD
  std::string commit;
  std::string summary;
  std::string evidence;  // path of the evidence file, relative to the repository root
};

// Patch when every item's verdict equals the previous recorded run's, minor otherwise (or when
// there is no previous record). Returns the bumped version and "patch"/"minor".
std::pair<std::string, std::string> bump_version(const std::string& current,
                                                 const std::map<std::string, Verdict>& previous,
                                                 const std::map<std::string, Verdict>& now);

// The new contract text; an error (naming the file and line) when the layout cannot be edited
// safely (flow-style history, a scalar that cannot be located).
Result<std::string> append_history_text(const Contract& c, const NewHistoryEntry& e);

// "4 items: 2 survived, 1 falsified, 1 inconclusive, 0 error; V1_004 median tokens_per_second 7.9 ..."
std::string history_summary(const std::map<std::string, Verdict>& verdicts, const std::string& key_figures);

}  // namespace popper::harness
