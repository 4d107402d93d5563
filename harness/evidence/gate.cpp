#include "harness/evidence/gate.h"

#include <map>

#include "harness/evidence/evidence.h"
#include "harness/run/outputs.h"

namespace popper::harness {

GateReport evaluate_gate(const std::vector<const Contract*>& contracts, const GateOptions& opts) {
  GateReport rep;
  bool fail = false;
  for (const Contract* c : contracts) {
    GateContract gc;
    gc.name = c->name;
    gc.version = c->version;
    auto le = latest_evidence(opts.evidence_dir, c->name);
    if (!le.ok()) {
      rep.exit_code = 2;
      rep.harness_error = le.message();
      return rep;
    }
    if (!*le) {
      gc.problem = "no evidence in " + opts.evidence_dir + "/" + c->name + "; run `popper run` first";
      fail = true;
      rep.contracts.push_back(gc);
      continue;
    }
    const auto& doc = (*le)->doc;
    gc.evidence = (*le)->path;
    try {
      std::string claims = doc["contract"].value("claims_sha256", "");
      std::string commit = doc["provenance"]["git"].value("commit", "");
      if (claims != c->claims_sha256) {
        gc.problem =
            "stale evidence: the contract's falsification items changed since " + gc.evidence + "; rerun";
        fail = true;
      } else if (!opts.head_commit.empty() && commit != opts.head_commit) {
        gc.problem = "evidence " + gc.evidence + " is from commit " + commit.substr(0, 12) + ", HEAD is " +
                     opts.head_commit.substr(0, 12) + "; rerun (or pass --any-commit)";
        fail = true;
      }
      gc.controls_ran = doc["run"].value("controls", false);
      std::map<std::string, const nlohmann::json*> by_id;
      for (const auto& it : doc["items"]) by_id[it.value("id", "")] = &it;
      for (const Item& item : c->items) {
        GateItem gi;
        gi.id = item.id;
        gi.description = item.description;
        gi.required = item.required && item.blocked_on.empty();
        auto f = by_id.find(item.id);
        if (f == by_id.end()) {
          gi.verdict = Verdict::kInconclusive;
          gi.reason = "not in the evidence (run was filtered with --id?)";
        } else {
          gi.verdict = parse_verdict(f->second->value("verdict", "")).value_or(Verdict::kError);
          gi.reason = f->second->value("reason", "");
          gi.duration_s = f->second->value("duration_s", 0.0);
          gi.control = recorded_control(*f->second);
          if (opts.fingerprint_now) {
            auto why =
                stale_reasons(Fingerprint::from_json(f->second->value("fingerprint", nlohmann::json())),
                              opts.fingerprint_now(item));
            for (const auto& w : why) gi.stale += (gi.stale.empty() ? "stale: " : "; ") + w;
          }
        }
        gc.controls_falsified += gi.control.ran && gi.control.verdict == Verdict::kFalsified;
        gi.blocks = gi.required && (gi.verdict == Verdict::kFalsified || gi.verdict == Verdict::kError ||
                                    (gi.verdict == Verdict::kInconclusive && !opts.allow_inconclusive));
        if (gi.required && !gi.blocks && gi.verdict == Verdict::kSurvived) {
          const RecordedControl& ctl = gi.control;
          const std::string faults = join(ctl.faults, ",");
          if (ctl.unfalsifiable())
            gi.blocked_by = "unfalsifiable: its check survived the control (" + faults + "): " + ctl.reason;
          else if (ctl.ran && ctl.verdict == Verdict::kError)
            gi.blocked_by = "control (" + faults + ") broke instead of falsifying: " + ctl.reason;
          else if (ctl.ran && ctl.verdict == Verdict::kInconclusive && !opts.allow_inconclusive)
            gi.blocked_by = "control (" + faults + ") inconclusive: " + ctl.reason;
          else if (opts.require_controls && !ctl.ran)
            gi.blocked_by = item.control ? "no control run in the evidence (run with --controls)"
                                         : "no control: the contract names none (see `popper validate`)";
          if (gi.blocked_by.empty() && !gi.stale.empty()) gi.blocked_by = gi.stale;
          gi.blocks = !gi.blocked_by.empty();
        } else if (gi.required && !gi.blocks && !gi.stale.empty()) {
          gi.blocked_by = gi.stale;
          gi.blocks = true;
        }
        fail = fail || gi.blocks;
        gc.items.push_back(gi);
      }
    } catch (const nlohmann::json::exception& e) {
      rep.exit_code = 2;
      rep.harness_error = gc.evidence + ": unexpected evidence shape: " + e.what();
      return rep;
    }
    rep.contracts.push_back(gc);
  }
  rep.exit_code = fail ? 1 : 0;
  return rep;
}

}  // namespace popper::harness
