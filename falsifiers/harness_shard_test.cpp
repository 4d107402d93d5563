// Falsifiers for `popper run --shard K/N` and `popper merge`: the plan is deterministic, covers
// every item once and is balanced; merged shards give the unsharded run's verdicts for N = 1..4;
// shards of two commits, other claims, a duplicate, a missing or a tampered shard are refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>

#include "engine/core/atomic_file.h"
#include "engine/core/sha256.h"
#include "falsifiers/harness_repo_fixture.h"
#include "harness/evidence/evidence.h"
#include "harness/run/shard.h"

namespace popper::harness {
namespace {
namespace fs = std::filesystem;
using testing::Cmd;
using testing::TempRepo;

const char* kContractA = R"(metadata:
  version: 1.0.0
  created: 2026-01-01
  updated: 2026-01-01
name: shard-a-v1
version: 1.0.0
description: sharding fixture
falsification:
  - id: FALSIFY-SHARD_A_V1_001
    description: passes
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.Passes"}
  - id: FALSIFY-SHARD_A_V1_002
    description: fails
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.FailsWithMessage"}
  - id: FALSIFY-SHARD_A_V1_003
    description: skips
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.SkipsWithReason"}
  - id: FALSIFY-SHARD_A_V1_004
    description: a figure that holds its threshold
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.ReportsMetric", env: {FIXTURE_SAMPLES: "9,10,11,10,9.5,10.5,10"}, thresholds: [{metric: tokens_per_second, op: ">=", value: 5}]}
  - id: FALSIFY-SHARD_A_V1_005
    description: a figure below its threshold
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.ReportsMetric", env: {FIXTURE_SAMPLES: "1,2,1,2,1,2,1"}, thresholds: [{metric: tokens_per_second, op: ">=", value: 5}]}
status_history:
  - version: 1.0.0
    date: 2026-01-01
    summary: seed
)";

const char* kContractB = R"(metadata:
  version: 1.0.0
  created: 2026-01-01
  updated: 2026-01-01
name: shard-b-v1
version: 1.0.0
description: sharding fixture, second contract
falsification:
  - id: FALSIFY-SHARD_B_V1_001
    description: passes too
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.AlsoPasses"}
  - id: FALSIFY-SHARD_B_V1_002
    description: not built
    falsifier: {kind: gtest, target: no_such_test, filter: "*"}
status_history:
  - version: 1.0.0
    date: 2026-01-01
    summary: seed
)";

TEST(ShardSpec, ParsesKOfNAndRejectsAnythingElse) {
  auto ok = parse_shard("2/4");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->index, 2);
  EXPECT_EQ(ok->count, 4);
  for (const char* bad : {"0/2", "3/2", "1/0", "2", "a/b", "1/2x", "-1/2", "/2", ""}) {
    auto r = parse_shard(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.message().find("expected K/N"), std::string::npos) << r.message();
    }
  }
}

TEST(ShardPlan, CoversEveryItemOnceAndIsDeterministic) {
  std::vector<ShardItem> items;
  for (int i = 0; i < 23; ++i) items.push_back({"ITEM_" + std::to_string(i), std::nullopt});
  for (int n = 1; n <= 5; ++n) {
    ShardPlan a = plan_shards(items, n), b = plan_shards(items, n);
    EXPECT_EQ(a.shard_of, b.shard_of);
    EXPECT_EQ(a.sha256, b.sha256);
    std::vector<int> count(static_cast<size_t>(n), 0);
    for (int s : a.shard_of) {
      ASSERT_GE(s, 1);
      ASSERT_LE(s, n);
      count[static_cast<size_t>(s - 1)]++;
    }
    // No durations known: the plan balances item counts.
    EXPECT_LE(*std::max_element(count.begin(), count.end()) - *std::min_element(count.begin(), count.end()),
              1)
        << "n=" << n;
  }
  EXPECT_NE(plan_shards(items, 2).sha256, plan_shards(items, 3).sha256);
}

TEST(ShardPlan, RecordedDurationsBalanceTheLoadWithinTheGreedyBound) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> dur(0.1, 60);
  std::vector<ShardItem> items;
  for (int i = 0; i < 40; ++i) items.push_back({"ITEM_" + std::to_string(i), dur(rng)});
  items[3].duration_s.reset();  // unknown: weighs as the mean of the known
  for (int n = 2; n <= 4; ++n) {
    ShardPlan p = plan_shards(items, n);
    double total = std::accumulate(p.load_s.begin(), p.load_s.end(), 0.0), biggest = 0;
    for (const auto& it : items) biggest = std::max(biggest, it.duration_s.value_or(0));
    double makespan = *std::max_element(p.load_s.begin(), p.load_s.end());
    // Greedy list scheduling never exceeds the average load plus the largest item (Graham).
    EXPECT_LE(makespan, total / n + biggest) << "n=" << n;
    // Loads recomputed from the assignment equal the plan's own accounting.
    std::vector<double> load(static_cast<size_t>(n), 0);
    double mean_known = 0;
    int known = 0;
    for (const auto& it : items)
      if (it.duration_s) mean_known += *it.duration_s, ++known;
    mean_known /= known;
    for (size_t i = 0; i < items.size(); ++i)
      load[static_cast<size_t>(p.shard_of[i] - 1)] += items[i].duration_s.value_or(mean_known);
    for (int s = 0; s < n; ++s)
      EXPECT_NEAR(load[static_cast<size_t>(s)], p.load_s[static_cast<size_t>(s)], 1e-9);
  }
}

std::map<std::string, std::string> verdicts_in(const std::string& evidence_dir) {
  std::map<std::string, std::string> out;
  for (const char* c : {"shard-a-v1", "shard-b-v1"}) {
    auto le = latest_evidence(evidence_dir, c);
    if (!le.ok() || !*le) continue;
    for (const auto& it : (*le)->doc["items"]) out[it["id"]] = it["verdict"];
  }
  return out;
}

std::vector<std::string> ids_in(const std::string& evidence_dir, const char* contract) {
  std::vector<std::string> out;
  auto le = latest_evidence(evidence_dir, contract);
  if (le.ok() && *le)
    for (const auto& it : (*le)->doc["items"]) out.push_back(it["id"]);
  return out;
}

class Shards : public ::testing::Test {
 protected:
  void SetUp() override { repo_.init({{"shard-a-v1", kContractA}, {"shard-b-v1", kContractB}}); }
  Cmd run_shard(int k, int n, const std::string& dir) {
    return repo_.popper({"run", testing::build_flag(), "--shard", std::to_string(k) + "/" + std::to_string(n),
                         "--evidence-dir", dir});
  }
  TempRepo repo_;
};

TEST_F(Shards, MergedVerdictsEqualTheUnshardedRunForOneToFourShards) {
  RecordProperty("falsification_id", "sharding: merged verdicts == unsharded verdicts, N = 1..4");
  // The unsharded run goes to <repo>/evidence, whose durations then steer the shard plans.
  Cmd full = repo_.popper({"run", testing::build_flag()});
  ASSERT_EQ(full.code, 1) << "fixture items falsify on purpose\n" << full.err;
  auto want = verdicts_in(repo_ / "evidence");
  ASSERT_EQ(want.size(), 7u);
  EXPECT_EQ(want["FALSIFY-SHARD_A_V1_002"], "falsified");
  EXPECT_EQ(want["FALSIFY-SHARD_A_V1_005"], "falsified");
  EXPECT_EQ(want["FALSIFY-SHARD_B_V1_002"], "inconclusive");
  for (int n = 1; n <= 4; ++n) {
    std::vector<std::string> dirs;
    size_t ran = 0;
    for (int k = 1; k <= n; ++k) {
      std::string dir = repo_.outside("n" + std::to_string(n) + "/shard" + std::to_string(k));
      Cmd r = run_shard(k, n, dir);
      ASSERT_TRUE(r.code == 0 || r.code == 1) << r.err;
      ASSERT_NE(r.err.find("shard " + std::to_string(k) + "/" + std::to_string(n)), std::string::npos)
          << r.err;
      ran += verdicts_in(dir).size();
      dirs.push_back(dir);
    }
    EXPECT_EQ(ran, want.size()) << "n=" << n << ": every item runs in exactly one shard";
    std::string out = repo_.outside("merged" + std::to_string(n));
    std::vector<std::string> args{"merge", "-o", out};
    args.insert(args.end(), dirs.begin(), dirs.end());
    Cmd m = repo_.popper(args);
    ASSERT_EQ(m.code, 0) << m.err;
    EXPECT_EQ(verdicts_in(out), want) << "n=" << n;
    // Contract order, as an unsharded run writes it.
    for (const char* c : {"shard-a-v1", "shard-b-v1"})
      EXPECT_EQ(ids_in(out, c), ids_in(repo_ / "evidence", c));
    auto le = latest_evidence(out, "shard-a-v1");
    ASSERT_TRUE(le.ok() && *le);
    EXPECT_EQ((*le)->doc["run"]["merged_from"].size(), static_cast<size_t>(n));
    EXPECT_EQ((*le)->doc["summary"]["falsified"], 2);
    EXPECT_TRUE(verify_evidence(out).problems.empty());
  }
}

TEST_F(Shards, ShardsFromTwoCommitsAreRefused) {
  RecordProperty("falsification_id", "sharding: mixing shards from two commits is refused");
  ASSERT_EQ(run_shard(1, 2, repo_.outside("s1")).code, 1);
  ASSERT_TRUE(write_file_atomic(repo_ / "NOTES.md", "a later commit\n").ok());
  repo_.commit_all("later");
  Cmd r2 = run_shard(2, 2, repo_.outside("s2"));
  ASSERT_TRUE(r2.code == 0 || r2.code == 1) << r2.err;
  Cmd m = repo_.popper({"merge", "-o", repo_.outside("m"), repo_.outside("s1"), repo_.outside("s2")});
  EXPECT_EQ(m.code, 1);
  EXPECT_NE(m.err.find("shards come from different commits"), std::string::npos) << m.err;
  EXPECT_FALSE(fs::exists(repo_.outside("m")));
}

TEST_F(Shards, DuplicateMissingTamperedAndOtherClaimsShardsAreRefused) {
  for (int k = 1; k <= 3; ++k) ASSERT_NE(run_shard(k, 3, repo_.outside("s" + std::to_string(k))).code, 2);
  auto merge = [&](std::vector<std::string> names) {
    std::vector<std::string> args{"merge", "-o", repo_.outside("m")};
    for (const auto& n : names) args.push_back(repo_.outside(n));
    return repo_.popper(args);
  };
  Cmd dup = merge({"s1", "s2", "s2"});
  EXPECT_EQ(dup.code, 1);
  EXPECT_NE(dup.err.find("shard 2/3 given twice"), std::string::npos) << dup.err;
  Cmd missing = merge({"s1", "s3"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("shard 2/3 is missing"), std::string::npos) << missing.err;
  Cmd unsharded = repo_.popper({"run", testing::build_flag(), "--evidence-dir", repo_.outside("plain")});
  ASSERT_EQ(unsharded.code, 1) << unsharded.err;
  Cmd plain = merge({"plain"});
  EXPECT_EQ(plain.code, 1);
  EXPECT_NE(plain.err.find("not evidence of a sharded run"), std::string::npos) << plain.err;

  // Another contract version in one shard: edit its claims digest and re-list it in MANIFEST
  // (so the MANIFEST check passes and the claims check has to catch it).
  fs::copy(repo_.outside("s2"), repo_.outside("s2b"), fs::copy_options::recursive);
  auto le = latest_evidence(repo_.outside("s2b"), "shard-a-v1");
  ASSERT_TRUE(le.ok() && *le);
  nlohmann::json doc = (*le)->doc;
  doc["contract"]["claims_sha256"] = sha256_hex("other claims");
  doc["contract"]["version"] = "1.1.0";
  std::string text = doc.dump(2) + "\n";
  std::string rel = (*le)->path;
  ASSERT_TRUE(write_file_atomic(repo_.outside("s2b/" + rel), text).ok());
  std::string manifest = read_file(repo_.outside("s2b/MANIFEST")).value();
  size_t at = manifest.find(rel);
  ASSERT_NE(at, std::string::npos);
  manifest.replace(at - 66, 64, sha256_hex(text));
  ASSERT_TRUE(write_file_atomic(repo_.outside("s2b/MANIFEST"), manifest).ok());
  Cmd claims = merge({"s1", "s2b", "s3"});
  EXPECT_EQ(claims.code, 1);
  EXPECT_NE(claims.err.find("shards ran different contract versions"), std::string::npos) << claims.err;

  // A shard edited after the fact fails its MANIFEST check.
  ASSERT_TRUE(
      write_file_atomic(repo_.outside("s2b/MANIFEST"), read_file(repo_.outside("s2/MANIFEST")).value()).ok());
  Cmd tampered = merge({"s1", "s2b", "s3"});
  EXPECT_EQ(tampered.code, 1);
  EXPECT_NE(tampered.err.find("fails its MANIFEST check"), std::string::npos) << tampered.err;
  EXPECT_FALSE(fs::exists(repo_.outside("m")));
}

}  // namespace
}  // namespace popper::harness
