// Which items a `popper run` runs: every item of the contracts given, narrowed to --id, and with
// --shard K/N to shard K's share (shard.h). Sharded, every contract stays in the plan even with
// no items left, so that each shard writes evidence for every contract and `popper merge` can
// prove the shards cover each item exactly once.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "harness/contract/contract.h"
#include "harness/run/shard.h"

namespace popper::harness {

struct PlanRequest {
  std::vector<std::string> ids;  // empty: every item
  std::string profile;           // --profile; "" for each item's default
  std::optional<ShardSpec> shard;
  std::map<std::string, double> durations;  // recorded per item: balances the shards
};

struct PlannedContract {
  const Contract* contract = nullptr;
  std::vector<const Item*> items;      // what runs, in contract order
  std::vector<std::string> all_items;  // sharded: every item of the contract the plan covers
};

struct RunPlan {
  std::vector<PlannedContract> contracts;
  size_t total = 0;     // items that run
  size_t id_width = 0;  // the longest ID among the contracts' items (progress columns)
  // Sharded runs only.
  std::optional<ShardSpec> shard;
  std::string shard_plan_sha256;
  size_t shard_items_total = 0;         // items of every shard
  double shard_load_s = 0, load_s = 0;  // this shard's estimated seconds, and all shards'
};

// Errors (exit 2 for the CLI): an --id no contract has, a --profile no item defines.
Result<RunPlan> plan_run(const std::vector<const Contract*>& contracts, const PlanRequest& request);

}  // namespace popper::harness
