#include "harness/evidence/merge.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "engine/core/atomic_file.h"
#include "engine/core/sha256.h"
#include "harness/evidence/evidence.h"
#include "harness/evidence/provenance.h"

namespace popper::harness {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct ShardDoc {
  std::string dir;
  std::string path;  // relative to dir
  std::string sha256;
  json doc;
  int index = 0, count = 0;
  std::string plan;
};

std::string commit_of(const json& doc) {
  const json& g = doc["provenance"]["git"];
  std::string c = g.value("commit", "");
  if (c.empty()) c = "(no git)";
  return g.value("dirty", false) ? c.substr(0, 12) + "-dirty" : c.substr(0, 12);
}

// Every contract directory under `dir` that holds evidence, with its newest file.
Result<std::vector<ShardDoc>> read_shard_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return make_error(dir, ": no such directory");
  VerifyReport vr = verify_evidence(dir);
  if (!vr.problems.empty())
    return make_error(dir, ": evidence fails its MANIFEST check (", vr.problems.size(),
                      " problem(s)), first: ", vr.problems.front());
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && e.path().filename().string()[0] != '.')
      names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  std::vector<ShardDoc> out;
  for (const auto& name : names) {
    auto le = latest_evidence(dir, name);
    if (!le.ok()) return le.error();
    if (!*le) continue;
    ShardDoc sd;
    sd.dir = dir;
    sd.path = (*le)->path;
    sd.doc = std::move((*le)->doc);
    auto text = read_file((fs::path(dir) / sd.path).string());
    if (!text.ok()) return text.error();
    sd.sha256 = sha256_hex(*text);
    const json& run = sd.doc["run"];
    if (!run.is_object() || !run.contains("shard") || !run["shard"].is_object())
      return make_error(dir, "/", sd.path,
                        ": not evidence of a sharded run (no run.shard); merge takes the evidence "
                        "directories written by `popper run --shard K/N`");
    const json& sh = run["shard"];
    sd.index = sh.value("index", 0);
    sd.count = sh.value("count", 0);
    sd.plan = sh.value("plan_sha256", "");
    if (sd.count < 1 || sd.index < 1 || sd.index > sd.count)
      return make_error(dir, "/", sd.path, ": run.shard has index ", sd.index, " of ", sd.count,
                        " (want 1 <= index <= count)");
    out.push_back(std::move(sd));
  }
  if (out.empty()) return make_error(dir, ": no evidence files in it");
  return out;
}

}  // namespace

Result<std::vector<MergedContract>> merge_shards(const std::vector<std::string>& dirs,
                                                 const std::vector<std::string>& argv) {
  if (dirs.empty()) return make_error("merge: no shard directories given");
  std::vector<std::vector<ShardDoc>> per_dir;
  for (const auto& d : dirs) {
    auto docs = read_shard_dir(d);
    if (!docs.ok()) return docs.error();
    per_dir.push_back(std::move(*docs));
  }
  // Shard identity per directory: one index, one plan, one commit.
  const ShardDoc& ref = per_dir[0][0];
  std::map<int, std::string> dir_of_index;
  for (const auto& docs : per_dir) {
    for (const auto& sd : docs) {
      if (sd.index != docs[0].index)
        return make_error(sd.dir, ": holds evidence of shard ", docs[0].index, " and of shard ", sd.index,
                          "; give each shard's evidence directory once");
      if (commit_of(sd.doc) != commit_of(ref.doc))
        return make_error("shards come from different commits: ", ref.dir, "/", ref.path, " is from ",
                          commit_of(ref.doc), ", ", sd.dir, "/", sd.path, " from ", commit_of(sd.doc),
                          "; rerun every shard on one commit");
      if (sd.count != ref.count)
        return make_error("shards disagree on N: ", ref.dir, " is ", ref.index, "/", ref.count, ", ", sd.dir,
                          " is ", sd.index, "/", sd.count);
      if (sd.plan != ref.plan)
        return make_error("shards were planned differently: ", ref.dir, " and ", sd.dir,
                          " have different plan digests (other contracts, or other recorded durations; "
                          "run every shard with the same contracts and --durations-from)");
    }
    const ShardDoc& first = docs[0];
    if (auto [it, fresh] = dir_of_index.emplace(first.index, first.dir); !fresh)
      return make_error("shard ", first.index, "/", first.count, " given twice: ", it->second, " and ",
                        first.dir);
  }
  for (int k = 1; k <= ref.count; ++k)
    if (!dir_of_index.count(k))
      return make_error("shard ", k, "/", ref.count, " is missing (", dir_of_index.size(), " of ", ref.count,
                        " shard directories given)");

  // Per contract: same claims, same version, same profile, every item exactly once.
  std::map<std::string, std::vector<const ShardDoc*>> by_contract;
  for (const auto& docs : per_dir)
    for (const auto& sd : docs) by_contract[sd.doc["contract"].value("name", "")].push_back(&sd);
  std::vector<MergedContract> out;
  for (const auto& [name, docs] : by_contract) {
    if (docs.size() != static_cast<size_t>(ref.count)) {
      std::set<std::string> have;
      for (const auto* sd : docs) have.insert(sd->dir);
      std::string lacking;
      for (const auto& d : dirs)
        if (!have.count(d)) lacking += (lacking.empty() ? "" : ", ") + d;
      return make_error("contract ", name, ": no evidence in ", lacking,
                        " (every shard writes every contract)");
    }
    std::vector<const ShardDoc*> sorted = docs;
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->index < b->index; });
    const ShardDoc& r0 = *sorted[0];
    const json& c0 = r0.doc["contract"];
    const json items0 = r0.doc["run"]["shard"].value("contract_items", json::array());
    std::map<std::string, json> item_by_id;
    std::string started = r0.doc["run"].value("started_at", ""),
                finished = r0.doc["run"].value("finished_at", "");
    json merged_from = json::array();
    for (const ShardDoc* sd : sorted) {
      const json& c = sd->doc["contract"];
      if (c.value("claims_sha256", "") != c0.value("claims_sha256", "") ||
          c.value("version", "") != c0.value("version", ""))
        return make_error("contract ", name, ": shards ran different contract versions: ", r0.dir, "/",
                          r0.path, " has ", c0.value("version", ""), " (claims ",
                          c0.value("claims_sha256", "").substr(0, 12), "), ", sd->dir, "/", sd->path, " has ",
                          c.value("version", ""), " (claims ", c.value("claims_sha256", "").substr(0, 12),
                          ")");
      if (sd->doc["run"]["profile"] != r0.doc["run"]["profile"])
        return make_error("contract ", name, ": shards ran different profiles: ", r0.dir, " ",
                          r0.doc["run"]["profile"].dump(), ", ", sd->dir, " ",
                          sd->doc["run"]["profile"].dump());
      if (sd->doc["run"]["shard"].value("contract_items", json::array()) != items0)
        return make_error("contract ", name, ": ", sd->dir, " and ", r0.dir,
                          " list different items for the contract");
      for (const auto& it : sd->doc.value("items", json::array())) {
        std::string id = it.value("id", "");
        if (item_by_id.count(id))
          return make_error("contract ", name, ": item ", id, " ran in more than one shard (", sd->dir, ")");
        item_by_id[id] = it;
      }
      started = std::min(started, sd->doc["run"].value("started_at", started));
      finished = std::max(finished, sd->doc["run"].value("finished_at", finished));
      const json& prov = sd->doc["provenance"];
      merged_from.push_back({{"shard", sd->index},
                             {"dir", sd->dir},
                             {"path", sd->path},
                             {"sha256", sd->sha256},
                             {"started_at", sd->doc["run"].value("started_at", "")},
                             {"host", prov.value("host", json::object())},
                             {"gpu", prov.value("gpu", json(nullptr))}});
    }
    json items = json::array();
    std::map<std::string, int> counts{{"survived", 0}, {"falsified", 0}, {"inconclusive", 0}, {"error", 0}};
    for (const auto& idj : items0) {
      std::string id = idj.get<std::string>();
      auto f = item_by_id.find(id);
      if (f == item_by_id.end())
        return make_error("contract ", name, ": item ", id, " is in the plan but no shard ran it");
      counts[f->second.value("verdict", "error")]++;
      items.push_back(f->second);
      item_by_id.erase(f);
    }
    if (!item_by_id.empty())
      return make_error("contract ", name, ": item ", item_by_id.begin()->first,
                        " is not in the plan's item list");
    json doc = r0.doc;
    doc["run"]["started_at"] = started;
    doc["run"]["finished_at"] = finished;
    doc["run"]["argv"] = argv;
    doc["run"].erase("shard");
    doc["run"]["merged_from"] = merged_from;
    doc["run"]["merged_at"] = utc_timestamp_iso();
    doc["items"] = items;
    doc["summary"] = counts;
    out.push_back({name, std::move(doc)});
  }
  return out;
}

}  // namespace popper::harness
