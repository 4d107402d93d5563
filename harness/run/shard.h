// `popper run --shard K/N`: which items a shard runs.
//
// Every shard computes the same plan from the same inputs (the contracts given, in file order,
// and the item durations recorded in the evidence directory), so N independent jobs (a CI
// matrix, a Slurm array) split the items without talking to each other. The plan is
// longest-processing-time-first: items sorted by recorded duration (longest first, ties by ID),
// each given to the shard with the least total so far (ties to the lowest index). An item
// without a recorded duration counts as the mean of the known ones (1 s when none is known, which
// makes the plan balance item counts). LPT's makespan is at most 4/3 of the optimum (Graham 1969).
//
// Each shard's evidence records the plan (its digest, the shard's items and the contract's full
// item list) so `popper merge` can prove the shards cover every item exactly once.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"

namespace popper::harness {

struct ShardSpec {
  int index = 1;  // K, 1-based
  int count = 1;  // N
};

// "2/4" -> {2, 4}; an error says what was expected ("K/N with 1 <= K <= N").
Result<ShardSpec> parse_shard(const std::string& text);

struct ShardItem {
  std::string id;
  std::optional<double> duration_s;  // from the previous evidence, when known
};

struct ShardPlan {
  int count = 1;
  std::vector<int> shard_of;   // per input item, 1-based shard index
  std::vector<double> load_s;  // per shard, estimated seconds (index 0 = shard 1)
  std::string sha256;          // digest of "<N>\n" + "<id> <shard>\n" per item
};

// Deterministic: the same items (same order, same durations) always give the same plan.
ShardPlan plan_shards(const std::vector<ShardItem>& items, int count);

}  // namespace popper::harness
