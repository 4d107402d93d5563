// Falsifiers for threshold judgement: confidence intervals are right, and noisy samples around
// a threshold give `inconclusive` instead of flip-flopping between survived and falsified.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/core/rng.h"
#include "harness/stats/stats.h"

namespace popper::harness {
namespace {

Threshold floor_of(double v, Statistic statistic = Statistic::kMedian) {
  Threshold t;
  t.metric = "tokens_per_second";
  t.op = ThresholdOp::kGe;
  t.value = v;
  t.statistic = statistic;
  return t;
}

std::vector<double> noisy(Rng& rng, int n, double center, double sigma) {
  std::vector<double> s;
  for (int i = 0; i < n; ++i) s.push_back(center + sigma * rng.normal());
  return s;
}

TEST(Stats, StudentTQuantilesMatchTables) {
  // Two-sided 95% critical values from standard t tables.
  constexpr double kTableTolerance = 5e-4;  // tables print 3 decimals
  EXPECT_NEAR(student_t_quantile(0.975, 1), 12.706, kTableTolerance * 10);
  EXPECT_NEAR(student_t_quantile(0.975, 8), 2.306, kTableTolerance);
  EXPECT_NEAR(student_t_quantile(0.975, 30), 2.042, kTableTolerance);
  EXPECT_NEAR(student_t_quantile(0.5, 5), 0.0, 1e-6);
}

TEST(Stats, MedianIntervalUsesOrderStatisticsOfNine) {
  // n = 9 at 95%: P(Bin(9, 1/2) <= 1) = 10/512 <= 0.025 < P(<= 2), so ranks 2 and 8.
  auto ci = median_ci({9, 1, 8, 2, 7, 3, 6, 4, 5}, 0.95);
  ASSERT_TRUE(ci);
  EXPECT_EQ(ci->low, 2);
  EXPECT_EQ(ci->high, 8);
  EXPECT_FALSE(median_ci({1, 2, 3, 4, 5}, 0.95)) << "5 samples cannot give a 95% median interval";
  EXPECT_TRUE(median_ci({1, 2, 3, 4, 5, 6}, 0.95));
}

TEST(Stats, MeanIntervalIsTheTInterval) {
  std::vector<double> s{10, 12, 11, 13, 9};
  auto ci = mean_ci(s, 0.95);
  ASSERT_TRUE(ci);
  double half = student_t_quantile(0.975, 4) * stddev(s) / std::sqrt(5.0);
  EXPECT_NEAR(ci->low, 11 - half, 1e-12);
  EXPECT_NEAR(ci->high, 11 + half, 1e-12);
}

TEST(Stats, ClearlyAboveSurvivesClearlyBelowIsFalsified) {
  Rng rng(1);
  EXPECT_EQ(judge_threshold(floor_of(5), noisy(rng, 9, 8, 0.2)).verdict, ThresholdVerdict::kSurvived);
  EXPECT_EQ(judge_threshold(floor_of(5), noisy(rng, 9, 3, 0.2)).verdict, ThresholdVerdict::kFalsified);
  Threshold ceiling = floor_of(5);
  ceiling.op = ThresholdOp::kLe;
  EXPECT_EQ(judge_threshold(ceiling, noisy(rng, 9, 3, 0.2)).verdict, ThresholdVerdict::kSurvived);
  EXPECT_EQ(judge_threshold(ceiling, noisy(rng, 9, 8, 0.2)).verdict, ThresholdVerdict::kFalsified);
}

TEST(Stats, NeverJudgesOnOneSample) {
  auto j = judge_threshold(floor_of(5), {100});
  EXPECT_EQ(j.verdict, ThresholdVerdict::kInconclusive);
  EXPECT_NE(j.reason.find("too few"), std::string::npos) << j.reason;
  EXPECT_EQ(judge_threshold(floor_of(5, Statistic::kMean), {100}).verdict, ThresholdVerdict::kInconclusive);
}

TEST(Stats, NoisySamplesAroundTheThresholdDoNotFlipFlop) {
  RecordProperty("falsification_id", "harness: threshold flip-flop");
  // 400 runs of 9 repetitions whose true centre sits exactly on the floor, noise 5%. Judging
  // one sample would flip ~50/50; the interval rule must almost always say inconclusive, and a
  // decisive verdict may only come at the confidence interval's error rate (2.5% per side).
  constexpr int kRuns = 400;
  constexpr double kMaxDecisiveShare = 0.06;  // 2 x 2.5% plus slack for 400 draws
  for (Statistic statistic : {Statistic::kMedian, Statistic::kMean}) {
    Rng rng(2024);
    int decisive = 0, flips = 0, single_sample_flips = 0;
    ThresholdVerdict prev = ThresholdVerdict::kInconclusive;
    bool prev_single = false;
    for (int r = 0; r < kRuns; ++r) {
      auto s = noisy(rng, 9, 5.0, 0.25);
      auto v = judge_threshold(floor_of(5, statistic), s).verdict;
      decisive += v != ThresholdVerdict::kInconclusive;
      // A flip: two consecutive runs of the same code giving opposite decisive verdicts.
      flips += r > 0 && v != ThresholdVerdict::kInconclusive && prev != ThresholdVerdict::kInconclusive &&
               v != prev;
      bool single = s[0] >= 5.0;
      single_sample_flips += r > 0 && single != prev_single;
      prev = v;
      prev_single = single;
    }
    EXPECT_LE(decisive, kMaxDecisiveShare * kRuns) << statistic_name(statistic);
    EXPECT_LE(flips, 3) << statistic_name(statistic)
                        << ": consecutive runs flip between survived and falsified";
    EXPECT_GT(single_sample_flips, kRuns / 4) << "control: judging one sample does flip-flop";
  }
}

TEST(Stats, SmallMarginWithLowNoiseIsDecisive) {
  // 2% above the floor with 0.5% noise: the interval clears the floor every time.
  Rng rng(7);
  for (int r = 0; r < 100; ++r)
    EXPECT_EQ(judge_threshold(floor_of(5), noisy(rng, 9, 5.1, 0.025)).verdict, ThresholdVerdict::kSurvived);
}

TEST(Stats, ExactStatisticJudgesTheWorstSample) {
  Threshold t = floor_of(0);
  t.op = ThresholdOp::kGt;
  t.statistic = Statistic::kExact;
  EXPECT_EQ(judge_threshold(t, {0.85}).verdict, ThresholdVerdict::kSurvived);
  EXPECT_EQ(judge_threshold(t, {0.85, 0}).verdict, ThresholdVerdict::kFalsified);
  EXPECT_EQ(judge_threshold(t, {}).verdict, ThresholdVerdict::kInconclusive);
  EXPECT_EQ(judge_threshold(t, {NAN}).verdict, ThresholdVerdict::kInconclusive);
}

}  // namespace
}  // namespace popper::harness
