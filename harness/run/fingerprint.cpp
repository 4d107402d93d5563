#include "harness/run/fingerprint.h"

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <mutex>

#include "engine/core/sha256.h"
#include "harness/run/kinds.h"
#include "harness/run/models.h"

namespace popper::harness {
namespace fs = std::filesystem;
using nlohmann::json;

json Fingerprint::to_json() const {
  return {{"item_sha256", item_sha256},           {"falsifier", falsifier},
          {"falsifier_sha256", falsifier_sha256}, {"model", model},
          {"model_sha256", model_sha256},         {"profile", profile}};
}

Fingerprint Fingerprint::from_json(const json& j) {
  Fingerprint f;
  if (!j.is_object()) return f;
  f.item_sha256 = j.value("item_sha256", "");
  f.falsifier = j.value("falsifier", "");
  f.falsifier_sha256 = j.value("falsifier_sha256", "");
  f.model = j.value("model", "");
  f.model_sha256 = j.value("model_sha256", "");
  f.profile = j.value("profile", "");
  return f;
}

Result<std::string> file_sha256_memo(const std::string& path) {
  struct Entry {
    off_t size;
    timespec mtime;
    std::string sha;
  };
  static std::mutex mu;
  static std::map<std::string, Entry> memo;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return make_error(path, ": cannot stat");
  std::lock_guard<std::mutex> lock(mu);
  auto it = memo.find(path);
  if (it != memo.end() && it->second.size == st.st_size && it->second.mtime.tv_sec == st.st_mtim.tv_sec &&
      it->second.mtime.tv_nsec == st.st_mtim.tv_nsec)
    return it->second.sha;
  auto sha = sha256_file(path);
  if (!sha.ok()) return sha.error();
  memo[path] = {st.st_size, st.st_mtim, *sha};
  return *sha;
}

Fingerprint current_fingerprint(const Item& item, const RunOptions& opts) {
  Fingerprint f;
  f.item_sha256 = item.text_sha256;
  if (!item.falsifier || !item.falsifier->kind) return f;
  EffectiveBinding eb = effective_binding(*item.falsifier, opts.profile);
  f.profile = eb.profile;
  TargetLocation loc = kind_strategy(*eb.binding.kind).locate(eb.binding, opts.build_dir, opts.repo_root);
  f.falsifier = loc.path;
  if (loc.found)
    if (auto sha = file_sha256_memo(loc.path); sha.ok()) f.falsifier_sha256 = *sha;
  f.model = eb.binding.model;
  if (!f.model.empty()) {
    auto spec = resolve_model_for_run(f.model, opts.model_cache, opts.repo_root, opts.model_overrides);
    std::error_code ec;
    if (spec.ok() && fs::exists(spec->path, ec))
      if (auto sha = model_sha256(spec->path); sha.ok()) f.model_sha256 = *sha;
  }
  return f;
}

std::vector<std::string> stale_reasons(const Fingerprint& then, const Fingerprint& now) {
  std::vector<std::string> why;
  if (then.item_sha256.empty() && then.falsifier_sha256.empty()) {
    why.push_back("no fingerprint in the evidence (recorded by an older popper)");
    return why;
  }
  if (then.item_sha256 != now.item_sha256) why.push_back("item text changed");
  if (then.profile != now.profile)
    why.push_back("profile differs (decided under '" + then.profile + "', would run '" + now.profile + "')");
  if (then.falsifier != now.falsifier)
    why.push_back("falsifier changed (" + then.falsifier + " -> " + now.falsifier + ")");
  else if (then.falsifier_sha256 != now.falsifier_sha256)
    why.push_back(now.falsifier_sha256.empty()    ? "falsifier no longer built"
                  : then.falsifier_sha256.empty() ? "falsifier built since"
                                                  : "falsifier rebuilt since");
  if (then.model != now.model)
    why.push_back("model changed (" + then.model + " -> " + now.model + ")");
  else if (then.model_sha256 != now.model_sha256)
    why.push_back(now.model_sha256.empty() ? "model " + now.model + " no longer present"
                                           : "model " + now.model + " changed since");
  return why;
}

}  // namespace popper::harness
