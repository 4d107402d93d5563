#include "harness/run/plan.h"

#include <algorithm>
#include <numeric>
#include <set>

namespace popper::harness {
namespace {

// Keeps only shard K's items (plan_shards over every planned item, in plan order).
void narrow_to_shard(const std::vector<const Contract*>& contracts, const PlanRequest& request,
                     RunPlan& plan) {
  std::vector<ShardItem> all;
  for (auto& pc : plan.contracts)
    for (const Item* it : pc.items) {
      pc.all_items.push_back(it->id);
      auto d = request.durations.find(it->id);
      all.push_back({it->id, d == request.durations.end() ? std::nullopt : std::optional<double>(d->second)});
    }
  if (request.ids.empty())
    for (const Contract* c : contracts) {
      bool planned = std::any_of(plan.contracts.begin(), plan.contracts.end(),
                                 [&](const PlannedContract& pc) { return pc.contract == c; });
      if (!planned) plan.contracts.push_back({c, {}, {}});
    }
  ShardPlan sp = plan_shards(all, request.shard->count);
  plan.shard = request.shard;
  plan.shard_plan_sha256 = sp.sha256;
  plan.shard_items_total = all.size();
  plan.shard_load_s = sp.load_s[static_cast<size_t>(request.shard->index - 1)];
  plan.load_s = std::accumulate(sp.load_s.begin(), sp.load_s.end(), 0.0);
  size_t k = 0;
  plan.total = 0;
  for (auto& pc : plan.contracts) {
    std::vector<const Item*> mine;
    for (const Item* it : pc.items)
      if (sp.shard_of[k++] == request.shard->index) mine.push_back(it);
    pc.items = mine;
    plan.total += pc.items.size();
  }
}

}  // namespace

Result<RunPlan> plan_run(const std::vector<const Contract*>& contracts, const PlanRequest& request) {
  RunPlan plan;
  std::set<std::string> wanted(request.ids.begin(), request.ids.end()), matched;
  bool profile_known = request.profile.empty();
  for (const Contract* c : contracts) {
    PlannedContract pc{c, {}, {}};
    for (const Item& it : c->items) {
      if (it.falsifier)
        for (const auto& p : it.falsifier->profiles)
          profile_known = profile_known || p.name == request.profile;
      if (!wanted.empty() && !wanted.count(it.id)) continue;
      matched.insert(it.id);
      pc.items.push_back(&it);
      plan.id_width = std::max(plan.id_width, it.id.size());
    }
    plan.total += pc.items.size();
    if (!pc.items.empty()) plan.contracts.push_back(std::move(pc));
  }
  for (const auto& id : wanted)
    if (!matched.count(id)) return make_error("--id ", id, ": no such item in the contracts given");
  if (!profile_known) return make_error("--profile ", request.profile, ": no item defines this profile");
  if (request.shard) narrow_to_shard(contracts, request, plan);
  return plan;
}

}  // namespace popper::harness
