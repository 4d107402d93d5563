#include "harness/contract/validate.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "engine/core/faults.h"
#include "harness/run/kinds.h"
#include "harness/run/models.h"

namespace popper::harness {
namespace {

struct Ctx {
  const Contract& c;
  std::vector<Diagnostic>& diags;
  void error(SourcePos p, const std::string& field, const std::string& msg) {
    diags.push_back({Severity::kError, c.path, p, field, msg});
  }
  void warn(SourcePos p, const std::string& field, const std::string& msg) {
    diags.push_back({Severity::kWarning, c.path, p, field, msg});
  }
  void note(SourcePos p, const std::string& field, const std::string& msg) {
    diags.push_back({Severity::kNote, c.path, p, field, msg});
  }
};

void check_versions(Ctx& x) {
  const Contract& c = x.c;
  // An empty value was already reported by the loader (missing or wrong type): no cascade.
  auto v = parse_semver(c.version);
  if (!v && !c.version.empty())
    x.error(c.version_pos, "version", "'" + c.version + "' is not a semantic version MAJOR.MINOR.PATCH");
  if (!c.metadata.version.empty() && !c.version.empty() && c.metadata.version != c.version)
    x.error(c.metadata.version_pos, "metadata.version",
            "'" + c.metadata.version + "' differs from version '" + c.version + "'");
  auto created = parse_date(c.metadata.created), updated = parse_date(c.metadata.updated);
  if (!c.metadata.created.empty() && !created)
    x.error(c.metadata.pos, "metadata.created", "'" + c.metadata.created + "' is not a date YYYY-MM-DD");
  if (!c.metadata.updated.empty() && !updated)
    x.error(c.metadata.updated_pos, "metadata.updated",
            "'" + c.metadata.updated + "' is not a date YYYY-MM-DD");
  if (created && updated && *updated < *created)
    x.error(c.metadata.updated_pos, "metadata.updated",
            c.metadata.updated + " is before metadata.created " + c.metadata.created);

  std::optional<SemVer> prev_v;
  std::optional<long> prev_d;
  for (size_t i = 0; i < c.history.size(); ++i) {
    const HistoryEntry& h = c.history[i];
    std::string f = "status_history[" + std::to_string(i) + "]";
    auto hv = parse_semver(h.version);
    if (!hv) {
      x.error(h.version_pos, f + ".version",
              "'" + h.version + "' is not a semantic version MAJOR.MINOR.PATCH");
    } else {
      if (prev_v && !(*prev_v < *hv))
        x.error(h.version_pos, f + ".version",
                h.version + " does not increase over the previous entry's " + prev_v->str());
      prev_v = hv;
    }
    auto hd = parse_date(h.date);
    if (!hd) {
      x.error(h.date_pos, f + ".date", "'" + h.date + "' is not a date YYYY-MM-DD");
    } else {
      if (prev_d && *hd < *prev_d)
        x.error(h.date_pos, f + ".date", h.date + " is earlier than the previous entry's date");
      prev_d = hd;
    }
  }
  if (c.history.empty()) {
    x.error(c.history_pos, "status_history", "has no entries; the first one records the current version");
  } else if (v && c.history.back().version != c.version) {
    x.error(c.history.back().version_pos,
            "status_history[" + std::to_string(c.history.size() - 1) + "].version",
            "the last entry is " + c.history.back().version + " but the contract version is " + c.version);
  }
}

void check_binding(Ctx& x, const Item& it, const std::string& f, const ValidateOptions& opts) {
  const Binding& b = *it.falsifier;
  std::set<std::string> profiles;
  for (size_t i = 0; i < b.profiles.size(); ++i) {
    const Profile& p = b.profiles[i];
    if (!profiles.insert(p.name).second)
      x.error(p.pos, f + ".profiles[" + std::to_string(i) + "].name", "duplicate profile '" + p.name + "'");
    if (p.model) {
      auto m = resolve_model(*p.model, "/", opts.repo_root);
      if (!m.ok()) x.error(p.pos, f + ".profiles[" + std::to_string(i) + "].model", m.message());
    }
  }
  auto check_requires = [&](const std::vector<std::string>& reqs, const std::string& where) {
    for (const auto& r : reqs) {
      if (r == "gpu") continue;
      if (r.rfind("model:", 0) == 0) {
        auto m = resolve_model(r.substr(6), "/", opts.repo_root);
        if (!m.ok()) x.error(b.pos, where, m.message());
        continue;
      }
      x.error(b.pos, where, "unknown requirement '" + r + "' (expected gpu or model:<name>)");
    }
  };
  check_requires(b.requires_, f + ".requires");
  for (const auto& p : b.profiles) check_requires(p.requires_, f + ".profiles." + p.name + ".requires");
  if (!b.model.empty()) {
    auto m = resolve_model(b.model, "/", opts.repo_root);
    if (!m.ok()) x.error(b.pos, f + ".model", m.message());
  }
  for (size_t i = 0; i < b.thresholds.size(); ++i) {
    const Threshold& t = b.thresholds[i];
    if (!t.profile.empty() && !profiles.count(t.profile))
      x.error(t.pos, f + ".thresholds[" + std::to_string(i) + "].profile",
              "profile '" + t.profile + "' is not defined in this binding's profiles");
  }
  // A benchmark's figures are its only way to fail.
  if (b.is(BindingKind::kBenchmark) && b.thresholds.empty())
    x.error(b.pos, f + ".thresholds", "a benchmark binding needs at least one threshold, or it cannot fail");
  if (b.is(BindingKind::kBenchmark) && b.repetitions < 6)
    x.warn(b.pos, f + ".repetitions",
           std::to_string(b.repetitions) + " repetitions are too few for a 95% CI of the median (need 6)");

  if (!opts.check_bindings || !b.kind) return;
  const KindStrategy& kind = kind_strategy(*b.kind);
  TargetLocation loc = kind.locate(b, opts.build_dir, opts.repo_root);
  if (!loc.found) {
    if (!it.blocked_on.empty())
      x.note(b.target_pos.line ? b.target_pos : b.pos, f + ".target",
             "pending: " + loc.reason + "; blocked on " + it.blocked_on);
    else
      x.error(b.target_pos.line ? b.target_pos : b.pos, f + ".target", loc.reason);
    return;
  }
  if (!kind.lists_tests()) return;
  auto names = kind.list(loc.path, b.filter);
  if (!names.ok()) {
    x.error(b.pos, f, names.message());
  } else if (names->empty()) {
    std::string msg = "filter '" + b.filter + "' matches no " + kind.unit() + " in " + b.target;
    if (!it.blocked_on.empty())
      x.note(b.pos, f + ".filter", "pending: " + msg + "; blocked on " + it.blocked_on);
    else
      x.error(b.pos, f + ".filter", msg);
  }
}

// The control names faults this build knows, and a narrower control filter still matches.
void check_control(Ctx& x, const Item& it, const std::string& f, const ValidateOptions& opts) {
  if (!it.control) {
    x.warn(it.pos, f + ".control",
           "no control: nothing shows this check can fail; name the fault under which it must come out "
           "falsified (`popper --list-faults`)");
    return;
  }
  const Control& c = *it.control;
  for (size_t i = 0; i < c.faults.size(); ++i)
    if (find_fault(c.faults[i]) == nullptr)
      x.error(c.pos, f + ".control.faults[" + std::to_string(i) + "]",
              "unknown fault '" + c.faults[i] + "' (`popper --list-faults` lists the faults of this build)");
  const Binding& b = *it.falsifier;
  if (c.repetitions && b.kind && !b.is(BindingKind::kBenchmark))
    x.error(c.pos, f + ".control.repetitions", "only a benchmark binding has repetitions");
  if (c.filter.empty() || !opts.check_bindings || !b.kind) return;
  const KindStrategy& kind = kind_strategy(*b.kind);
  if (!kind.lists_tests()) {
    x.error(c.pos, f + ".control.filter",
            std::string("kind ") + binding_kind_name(*b.kind) + " has no filter");
    return;
  }
  TargetLocation loc = kind.locate(b, opts.build_dir, opts.repo_root);
  if (!loc.found) return;  // reported with the binding
  auto names = kind.list(loc.path, c.filter);
  if (names.ok() && names->empty())
    x.error(c.pos, f + ".control.filter",
            "filter '" + c.filter + "' matches no " + kind.unit() + " in " + b.target);
}

}  // namespace

void validate_contracts(const std::vector<const Contract*>& contracts, const ValidateOptions& opts,
                        std::vector<Diagnostic>& diags) {
  std::map<std::string, std::pair<const Contract*, SourcePos>> seen_ids;
  std::map<std::string, const Contract*> seen_names;
  for (const Contract* cp : contracts) {
    Ctx x{*cp, diags};
    const Contract& c = *cp;
    if (!std::regex_match(c.name, std::regex("[a-z0-9]+(-[a-z0-9]+)*-v[0-9]+")))
      x.error(c.name_pos, "name",
              "'" + c.name +
                  "' is not a contract name like 'qwen3-moe-kvcache-v1' (lowercase, "
                  "dash-separated, ending in -v<major>)");
    if (auto it = seen_names.find(c.name); it != seen_names.end())
      x.error(c.name_pos, "name", "contract name '" + c.name + "' is also used by " + it->second->path);
    seen_names[c.name] = cp;
    std::string stem = std::filesystem::path(c.path).stem().string();
    if (stem != c.name)
      x.warn(c.name_pos, "name", "file is named '" + stem + ".yaml' but the contract is '" + c.name + "'");
    check_versions(x);

    auto v = parse_semver(c.version);
    std::string prefix =
        "FALSIFY-" + contract_id_stem(c.name) + "_V" + (v ? std::to_string(v->major) : "?") + "_";
    auto name_major =
        c.name.substr(c.name.rfind("-v") == std::string::npos ? c.name.size() : c.name.rfind("-v") + 2);
    if (v && !name_major.empty() && name_major != std::to_string(v->major))
      x.error(c.version_pos, "version",
              "major version " + std::to_string(v->major) + " does not match the name's -v" + name_major);
    if (c.items.empty() && !c.claims_sha256.empty())
      x.error(c.name_pos, "falsification", "has no items; a contract needs at least one claim");
    for (size_t i = 0; i < c.items.size(); ++i) {
      const Item& it = c.items[i];
      std::string f = "falsification[" + std::to_string(i) + "]";
      if (!it.id.empty() && v) {
        bool format_ok =
            it.id.size() == prefix.size() + 3 && it.id.rfind(prefix, 0) == 0 &&
            std::all_of(it.id.end() - 3, it.id.end(), [](unsigned char ch) { return std::isdigit(ch); });
        if (!format_ok)
          x.error(it.id_pos, f + ".id",
                  "'" + it.id + "' does not match " + prefix + "<NNN> (contract " + c.name + ", version " +
                      c.version + ")");
      }
      if (!it.id.empty()) {
        auto [where, inserted] = seen_ids.emplace(it.id, std::make_pair(cp, it.id_pos));
        if (!inserted)
          x.error(it.id_pos, f + ".id",
                  "duplicate ID " + it.id + " (first at " + where->second.first->path + ":" +
                      std::to_string(where->second.second.line) + ")");
      }
      if (!it.falsifier) {
        if (it.blocked_on.empty())
          x.error(it.pos, f + ".falsifier", "no falsifier binding; bind one, or mark the item blocked_on");
        else
          x.note(it.pos, f, "pending: no falsifier yet; blocked on " + it.blocked_on);
        if (it.control)
          x.error(it.control->pos, f + ".control", "a control reruns the falsifier; bind one first");
        continue;
      }
      check_binding(x, it, f + ".falsifier", opts);
      check_control(x, it, f, opts);
    }
  }
}

}  // namespace popper::harness
