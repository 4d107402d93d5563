#include "harness/evidence/status.h"

#include <map>

namespace popper::harness {
using nlohmann::json;

Result<StatusReport> evaluate_status(const std::vector<const Contract*>& contracts,
                                     const std::string& evidence_dir,
                                     const std::function<Fingerprint(const Item&)>& fingerprint_now) {
  StatusReport rep;
  for (const Contract* c : contracts) {
    StatusContract sc;
    sc.name = c->name;
    sc.version = c->version;
    auto le = latest_evidence(evidence_dir, c->name);
    if (!le.ok()) return le.error();
    std::map<std::string, const json*> by_id;
    if (*le) {
      sc.evidence = (*le)->path;
      const json& git = (*le)->doc["provenance"].value("git", json::object());
      sc.commit = git.value("short_commit", "");
      if (git.value("dirty", false)) sc.commit += "-dirty";
      const json& doc = (*le)->doc;  // by_id points into it: it lives as long as `le`
      if (doc.contains("items") && doc["items"].is_array())
        for (const auto& it : doc["items"]) by_id[it.value("id", "")] = &it;
    }
    for (const Item& item : c->items) {
      StatusItem si;
      si.id = item.id;
      auto f = by_id.find(item.id);
      if (f == by_id.end()) {
        ++rep.unrecorded;
        sc.items.push_back(si);
        continue;
      }
      const json& j = *f->second;
      si.recorded = true;
      si.verdict = j.value("verdict", "error");
      si.profile = j.value("profile", "");
      si.control = recorded_control(j);
      si.stale = stale_reasons(Fingerprint::from_json(j.value("fingerprint", json())), fingerprint_now(item));
      (si.stale.empty() ? rep.fresh : rep.stale)++;
      sc.items.push_back(si);
    }
    rep.contracts.push_back(std::move(sc));
  }
  return rep;
}

}  // namespace popper::harness
