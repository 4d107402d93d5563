// `popper merge DIR...`: the evidence of N shards (`popper run --shard K/N`, one evidence
// directory each) combined into one run record per contract, as an unsharded run would have
// written it: the same items in contract order, the same verdicts (each item ran in its own
// process either way), a summary recounted from them.
//
// Refused, with the reason naming the directories: a directory whose evidence fails its MANIFEST
// check, evidence that is not from a sharded run, shards of different commits (or a dirty tree in
// one of them), different contract versions or claims (claims_sha256), different profiles,
// different plans (another N or other recorded durations), a shard given twice, a shard missing,
// or items that are not covered exactly once.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/result.h"

namespace popper::harness {

struct MergedContract {
  std::string name;
  nlohmann::json doc;  // a popper-evidence document, run.merged_from lists the shard files
};

// Reads the newest evidence of every contract in each directory and merges per contract.
Result<std::vector<MergedContract>> merge_shards(const std::vector<std::string>& dirs,
                                                 const std::vector<std::string>& argv);

}  // namespace popper::harness
