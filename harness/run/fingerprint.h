// What decided a verdict: the item as written, the falsifier executable, the model and the
// profile. Evidence records it per item; `popper status`, the report and `popper gate --fresh`
// compare it with what would run now, and call the verdict stale where they differ ("stale:
// falsifier rebuilt since"), the way requirement-tracing tools mark a suspect link.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "harness/contract/contract.h"
#include "harness/run/runner.h"

namespace popper::harness {

struct Fingerprint {
  std::string item_sha256;       // Item::text_sha256
  std::string falsifier;         // the executable's path ("" when the item has no binding)
  std::string falsifier_sha256;  // "" when it was not built
  std::string model;             // the model the item names ("" for none)
  std::string model_sha256;      // "" when no model, or its file is absent
  std::string profile;

  nlohmann::json to_json() const;
  // Missing fields read as "" (evidence from before fingerprints: every comparison then says so).
  static Fingerprint from_json(const nlohmann::json& j);
};

// sha256 of a file, remembered for the life of the process while its size and mtime stay put
// (a run hashes each falsifier binary once, however many items it serves).
Result<std::string> file_sha256_memo(const std::string& path);

// What would decide `item` if it ran now under `opts` (its profile and model overrides): no
// model is built and nothing runs; a model file is hashed only when it exists.
Fingerprint current_fingerprint(const Item& item, const RunOptions& opts);

// Why a verdict decided under `then` does not stand for `now`, one reason per difference
// ("falsifier rebuilt since", "item text changed", ...); empty when it is fresh.
std::vector<std::string> stale_reasons(const Fingerprint& then, const Fingerprint& now);

}  // namespace popper::harness
