#include "harness/run/session.h"

#include "harness/run/clock.h"
#include "harness/run/controls.h"
#include "harness/run/process.h"

namespace popper::harness {

RunTotals execute_plan(const RunPlan& plan, RunOptions opts, const RunInfo& info, RunObserver& observer) {
  RunTotals totals;
  opts.on_tick = [&](double elapsed) { observer.tick(elapsed); };
  for (const PlannedContract& pc : plan.contracts) {
    RunInfo contract_info = info;
    contract_info.started_at = utc_timestamp_iso();
    std::vector<ItemResult> results;
    for (const Item* it : pc.items) {
      if (interrupted()) break;
      observer.item_started(*it);
      ItemResult r = run_item(*pc.contract, *it, opts);
      if (interrupted()) {
        observer.interrupted(*pc.contract, *it);
        break;
      }
      observer.item_finished(r);
      totals.verdicts[r.verdict]++;
      if (opts.controls && it->control) {
        if (r.verdict == Verdict::kSurvived) observer.control_started(*it);
        r.control = run_control(*pc.contract, *it, r, opts);
        if (interrupted()) {
          observer.interrupted(*pc.contract, *it);
          break;
        }
        if (r.control->ran) {
          observer.control_finished(*it, *r.control);
          totals.controls[r.control->verdict]++;
        }
      }
      results.push_back(std::move(r));
    }
    if (interrupted()) {
      totals.interrupted = true;
      break;
    }
    contract_info.finished_at = utc_timestamp_iso();
    observer.contract_finished(pc, results, contract_info);
  }
  return totals;
}

}  // namespace popper::harness
