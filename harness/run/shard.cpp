#include "harness/run/shard.h"

#include <algorithm>
#include <charconv>
#include <numeric>

#include "engine/core/sha256.h"

namespace popper::harness {
namespace {

// An item with no recorded duration and nothing else to go by: every item weighs the same.
constexpr double kUnknownDurationS = 1.0;

}  // namespace

Result<ShardSpec> parse_shard(const std::string& text) {
  auto slash = text.find('/');
  auto bad = [&] { return make_error("--shard ", text, ": expected K/N with 1 <= K <= N (e.g. 2/4)"); };
  if (slash == std::string::npos) return bad();
  ShardSpec s;
  const char* b = text.data();
  auto r1 = std::from_chars(b, b + slash, s.index);
  auto r2 = std::from_chars(b + slash + 1, b + text.size(), s.count);
  if (r1.ec != std::errc() || r1.ptr != b + slash || r2.ec != std::errc() || r2.ptr != b + text.size())
    return bad();
  if (s.count < 1 || s.index < 1 || s.index > s.count) return bad();
  return s;
}

ShardPlan plan_shards(const std::vector<ShardItem>& items, int count) {
  ShardPlan plan;
  plan.count = count;
  plan.shard_of.assign(items.size(), 1);
  plan.load_s.assign(static_cast<size_t>(count), 0.0);
  double known_sum = 0;
  int known = 0;
  for (const auto& it : items)
    if (it.duration_s) {
      known_sum += *it.duration_s;
      ++known;
    }
  const double fallback = known ? known_sum / known : kUnknownDurationS;
  std::vector<double> weight(items.size());
  for (size_t i = 0; i < items.size(); ++i) weight[i] = items[i].duration_s.value_or(fallback);
  std::vector<size_t> order(items.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (weight[a] != weight[b]) return weight[a] > weight[b];
    return items[a].id < items[b].id;
  });
  for (size_t i : order) {
    size_t best = 0;
    for (size_t s = 1; s < plan.load_s.size(); ++s)
      if (plan.load_s[s] < plan.load_s[best]) best = s;
    plan.load_s[best] += weight[i];
    plan.shard_of[i] = static_cast<int>(best) + 1;
  }
  std::string canon = std::to_string(count) + "\n";
  for (size_t i = 0; i < items.size(); ++i)
    canon += items[i].id + " " + std::to_string(plan.shard_of[i]) + "\n";
  plan.sha256 = sha256_hex(canon);
  return plan;
}

}  // namespace popper::harness
