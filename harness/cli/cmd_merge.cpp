// `popper merge DIR... [--evidence-dir OUT]`: combine the evidence directories of the shards of
// one `popper run --shard K/N` into one run record per contract (harness/evidence/merge.h), written to
// OUT (default <repo>/evidence) with its MANIFEST line. Exit 0 merged, 1 refused (mixed
// commits, contract versions, plans; a duplicate or missing shard), 2 usage.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "harness/cli/commands.h"
#include "harness/evidence/evidence.h"
#include "harness/evidence/merge.h"
#include "harness/run/targets.h"

namespace popper::cli {
namespace {
namespace fs = std::filesystem;
using namespace harness;

struct MergeArgs {
  std::vector<std::string> dirs;
  std::string out_dir;
};

int run_merge(const MergeArgs& a) {
  const std::string root = find_repo_root(".");
  const std::string out = a.out_dir.empty() ? (fs::path(root) / "evidence").string() : a.out_dir;
  std::vector<std::string> argv{"popper", "merge"};
  argv.insert(argv.end(), a.dirs.begin(), a.dirs.end());
  auto merged = merge_shards(a.dirs, argv);
  if (!merged.ok()) {
    std::fprintf(stderr, "popper merge: refused: %s\n", merged.message().c_str());
    return 1;
  }
  for (const auto& m : *merged) {
    auto rel = write_evidence(out, m.doc);
    if (!rel.ok()) {
      std::fprintf(stderr, "popper merge: %s\n", rel.message().c_str());
      return 2;
    }
    const auto& s = m.doc["summary"];
    std::printf(
        "%s %s: %d survived, %d falsified, %d inconclusive, %d error (from %zu shards)\n    evidence: %s\n",
        m.name.c_str(), m.doc["contract"].value("version", "").c_str(), s.value("survived", 0),
        s.value("falsified", 0), s.value("inconclusive", 0), s.value("error", 0),
        m.doc["run"]["merged_from"].size(), (fs::path(out) / *rel).c_str());
  }
  return 0;
}

void register_merge(CLI::App& app) {
  auto a = std::make_shared<MergeArgs>();
  CLI::App* cmd =
      add_command(app, "merge", "Merge the evidence of `popper run --shard K/N` shards into one run",
                  [a] { return run_merge(*a); });
  cmd->add_option("dirs", a->dirs, "Each shard's evidence directory (all N of them)")->required();
  cmd->add_option("--evidence-dir,-o", a->out_dir,
                  "Where the merged evidence goes (default: <repo>/evidence)");
}

}  // namespace
POPPER_REGISTER_COMMAND(47, register_merge);
}  // namespace popper::cli
