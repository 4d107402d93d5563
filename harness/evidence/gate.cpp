#include "harness/evidence/gate.h"

#include <cstdio>
#include <map>
#include <sstream>

#include "harness/evidence/evidence.h"
#include "harness/report/markup_escape.h"

namespace popper::harness {
namespace {

const char* md_mark(Verdict v) {
  switch (v) {
    case Verdict::kSurvived:
      return "✅ survived";
    case Verdict::kFalsified:
      return "❌ falsified";
    case Verdict::kInconclusive:
      return "⚠️ inconclusive";
    case Verdict::kError:
      return "💥 error";
  }
  return "";
}

}  // namespace

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
        }
        gi.blocks = gi.required && (gi.verdict == Verdict::kFalsified || gi.verdict == Verdict::kError ||
                                    (gi.verdict == Verdict::kInconclusive && !opts.allow_inconclusive));
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

std::string render_junit(const GateReport& r) {
  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"popper gate\">\n";
  for (const auto& c : r.contracts) {
    int failures = 0, errors = 0, skipped = 0;
    double time = 0;
    for (const auto& i : c.items) {
      failures += i.verdict == Verdict::kFalsified;
      errors += i.verdict == Verdict::kError;
      skipped += i.verdict == Verdict::kInconclusive;
      time += i.duration_s;
    }
    if (!c.problem.empty()) ++errors;
    char t[32];
    std::snprintf(t, sizeof t, "%.3f", time);
    out << "  <testsuite name=\"" << markup_escape(c.name) << "\" tests=\""
        << c.items.size() + (c.problem.empty() ? 0 : 1) << "\" failures=\"" << failures << "\" errors=\""
        << errors << "\" skipped=\"" << skipped << "\" time=\"" << t << "\">\n";
    out << "    <properties><property name=\"version\" value=\"" << markup_escape(c.version)
        << "\"/><property name=\"evidence\" value=\"" << markup_escape(c.evidence) << "\"/></properties>\n";
    if (!c.problem.empty())
      out << "    <testcase classname=\"" << markup_escape(c.name) << "\" name=\"evidence\"><error message=\""
          << markup_escape(c.problem) << "\"/></testcase>\n";
    for (const auto& i : c.items) {
      std::snprintf(t, sizeof t, "%.3f", i.duration_s);
      out << "    <testcase classname=\"" << markup_escape(c.name) << "\" name=\"" << markup_escape(i.id)
          << "\" time=\"" << t << "\">";
      std::string msg = markup_escape(i.reason);
      if (i.verdict == Verdict::kFalsified)
        out << "<failure message=\"" << msg << "\"/>";
      else if (i.verdict == Verdict::kError)
        out << "<error message=\"" << msg << "\"/>";
      else if (i.verdict == Verdict::kInconclusive)
        out << "<skipped message=\"" << msg << "\"/>";
      out << "</testcase>\n";
    }
    out << "  </testsuite>\n";
  }
  out << "</testsuites>\n";
  return out.str();
}

std::string render_markdown(const GateReport& r) {
  std::ostringstream out;
  out << "## Popper gate: "
      << (r.exit_code == 0   ? "passed ✅"
          : r.exit_code == 1 ? "failed ❌"
                             : "harness error 💥")
      << "\n\n";
  if (!r.harness_error.empty()) out << "> " << markdown_cell_escape(r.harness_error) << "\n\n";
  for (const auto& c : r.contracts) {
    out << "### " << c.name << " " << c.version << "\n\n";
    if (!c.evidence.empty()) out << "Evidence: `" << c.evidence << "`\n\n";
    if (!c.problem.empty()) out << "> ❌ " << markdown_cell_escape(c.problem) << "\n\n";
    out << "| Item | Verdict | Required | Reason |\n|---|---|---|---|\n";
    for (const auto& i : c.items)
      out << "| `" << i.id << "` | " << md_mark(i.verdict) << " | " << (i.required ? "yes" : "no") << " | "
          << markdown_cell_escape(i.reason) << " |\n";
    out << "\n";
  }
  return out.str();
}

}  // namespace popper::harness
