#include "harness/run/controls.h"

namespace popper::harness {

std::optional<ControlResult> run_control(const Contract& contract, const Item& item, const ItemResult& own,
                                         const RunOptions& opts) {
  if (!item.control) return std::nullopt;
  ControlResult c;
  c.faults = item.control->faults;
  c.filter = item.control->filter;
  if (own.verdict != Verdict::kSurvived) {
    c.reason = std::string("not run: the item is ") + verdict_name(own.verdict) +
               ", so there is no survived verdict to guard";
    return c;
  }
  RunVariant variant;
  variant.faults = c.faults;
  variant.filter = c.filter;
  variant.repetitions = item.control->repetitions;
  ItemResult r = run_item(contract, item, opts, &variant);
  c.ran = true;
  c.verdict = r.verdict;
  c.reason = r.reason;
  c.duration_s = r.duration_s;
  c.started_at = r.started_at;
  c.finished_at = r.finished_at;
  c.detail = std::move(r.detail);
  c.detail.erase("fingerprint");  // the item's own run carries it
  return c;
}

std::string control_summary(const ControlResult& c) {
  if (!c.ran) return "not run";
  if (c.unfalsifiable()) return "survived: unfalsifiable";
  return verdict_name(c.verdict);
}

}  // namespace popper::harness
