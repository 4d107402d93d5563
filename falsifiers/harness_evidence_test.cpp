// Falsifiers for evidence, status_history and the gate: tampering is detected, --record keeps
// every old byte, kill -9 in the middle of writing never leaves a torn file, and the gate's
// exit codes follow the verdicts.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/core/atomic_file.h"
#include "engine/core/rng.h"
#include "engine/core/sha256.h"
#include "falsifiers/harness_test_util.h"
#include "harness/contract/history.h"
#include "harness/evidence/evidence.h"
#include "harness/evidence/gate.h"
#include "harness/evidence/record.h"
#include "harness/report/gate_outputs.h"

namespace popper::harness {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// A contract written the way people write them: comments, blank lines, quoted and plain
// scalars, a folded summary, a comment after the history.
const char* kContract = R"(# Leading comment, kept.
metadata:
  version: "1.2.0"   # quoted on purpose
  created: 2026-01-01
  updated: 2026-01-05
  author: tester
name: record-demo-v1
version: 1.2.0
description: >
  Folded text
  over two lines.
falsification:
  - id: FALSIFY-RECORD_DEMO_V1_001
    description: one
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: Fixture.Passes}
  - id: FALSIFY-RECORD_DEMO_V1_002
    description: two
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: Fixture.AlsoPasses}
status_history:
    - version: 1.0.0
      date: 2026-01-01
      summary: first   # trailing comment
    - version: 1.2.0
      date: 2026-01-05
      pr: 12
      summary: |
        A literal block

        with a blank line inside.

# The end.
)";

Contract parse(const std::string& text, const std::string& path = "record-demo-v1.yaml") {
  auto l = parse_contract(path, text);
  POPPER_CHECK(!l.has_errors(), "contract fixture: ", l.diagnostics.empty() ? "" : l.diagnostics[0].format());
  return *l.contract;
}

std::vector<ItemResult> results_for(const Contract& c, Verdict v) {
  std::vector<ItemResult> out;
  for (const auto& it : c.items) {
    ItemResult r;
    r.contract = c.name;
    r.id = it.id;
    r.verdict = v;
    r.reason = "because";
    out.push_back(r);
  }
  return out;
}

json evidence_for(const Contract& c, Verdict v, const std::string& commit = "0123456789abcdef0123") {
  json prov = {{"git", {{"commit", commit}, {"short_commit", commit.substr(0, 12)}, {"dirty", false}}}};
  RunInfo info{"2026-01-06T10:00:00Z", "2026-01-06T10:00:05Z", {"popper", "run"}, std::nullopt, "/b"};
  return make_evidence(c, results_for(c, v), prov, info);
}

TEST(History, AppendKeepsEveryOldByte) {
  RecordProperty("falsification_id", "harness: status_history byte preservation");
  Contract c = parse(kContract);
  NewHistoryEntry e{"1.3.0", "2026-01-06", "0123456789ab", "2 items: 2 survived", "evidence/x/y.json"};
  auto out = append_history_text(c, e);
  ASSERT_TRUE(out.ok()) << out.message();
  // Undo the three in-place values and remove the inserted block: the original comes back.
  std::string text = *out;
  auto pos = text.find("    - version: 1.3.0\n");
  ASSERT_NE(pos, std::string::npos) << text;
  auto end = text.find("evidence: \"evidence/x/y.json\"\n", pos);
  ASSERT_NE(end, std::string::npos);
  text.erase(pos, end + std::string("evidence: \"evidence/x/y.json\"\n").size() - pos);
  text.replace(text.find("\"1.3.0\""), 7, "\"1.2.0\"");
  text.replace(text.find("version: 1.3.0"), 14, "version: 1.2.0");
  text.replace(text.find("updated: 2026-01-06"), 19, "updated: 2026-01-05");
  EXPECT_EQ(text, kContract);
  // The block sits after the last entry (after its literal block) and before the final comment.
  EXPECT_LT(out->find("with a blank line inside."), out->find("- version: 1.3.0"));
  EXPECT_LT(out->find("- version: 1.3.0"), out->find("# The end."));
  Contract again = parse(*out);
  EXPECT_EQ(again.history.back().summary, "2 items: 2 survived");
  EXPECT_EQ(again.history[1].summary, "A literal block\n\nwith a blank line inside.\n");
}

TEST(History, FlowStyleHistoryIsRefusedNotMangled) {
  std::string text = kContract;
  text = text.substr(0, text.find("status_history:")) +
         "status_history: [{version: 1.2.0, date: 2026-01-05, summary: s}]\n";
  auto out = append_history_text(parse(text), {"1.3.0", "2026-01-06", "c", "s", "e"});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.message().find("flow style is not supported"), std::string::npos) << out.message();
}

TEST(History, PatchWhenVerdictsRepeatMinorWhenOneChanges) {
  std::map<std::string, Verdict> a{{"X_001", Verdict::kSurvived}, {"X_002", Verdict::kInconclusive}};
  auto b = a;
  b["X_002"] = Verdict::kSurvived;
  EXPECT_EQ(bump_version("1.2.3", a, a), (std::pair<std::string, std::string>{"1.2.4", "patch"}));
  EXPECT_EQ(bump_version("1.2.3", a, b), (std::pair<std::string, std::string>{"1.3.0", "minor"}));
  EXPECT_EQ(bump_version("1.2.3", {}, b).second, "minor") << "a first record counts as a change";
}

TEST(History, RecordRunBumpsFromThePreviousRecordedEvidence) {
  testing::TempDir root;
  fs::create_directories(root / "contracts");
  const std::string path = root / "contracts/record-demo-v1.yaml";
  ASSERT_TRUE(write_file_atomic(path, kContract).ok());
  Contract c = parse(kContract, path);
  auto rel = write_evidence(root / "evidence", evidence_for(c, Verdict::kSurvived));
  ASSERT_TRUE(rel.ok()) << rel.message();
  auto v1 = record_run(c, results_for(c, Verdict::kSurvived), "abc", "evidence/" + *rel, root.path());
  ASSERT_TRUE(v1.ok()) << v1.message();
  EXPECT_EQ(*v1, "1.3.0 (minor)");
  Contract c2 = parse(read_file(path).value(), path);
  auto v2 = record_run(c2, results_for(c2, Verdict::kSurvived), "abc", "evidence/" + *rel, root.path());
  ASSERT_TRUE(v2.ok()) << v2.message();
  EXPECT_EQ(*v2, "1.3.1 (patch)");
  Contract c3 = parse(read_file(path).value(), path);
  auto v3 = record_run(c3, results_for(c3, Verdict::kFalsified), "abc", "evidence/" + *rel, root.path());
  EXPECT_EQ(v3.value(), "1.4.0 (minor)");
  // A fresh clone holds none of the evidence its history names (evidence is not committed):
  // nothing to compare with, so a change (minor), said so; a file that is there but corrupt
  // stays an error.
  fs::remove(root / ("evidence/" + *rel));
  Contract c4 = parse(read_file(path).value(), path);
  auto v4 = record_run(c4, results_for(c4, Verdict::kFalsified), "abc", "evidence/" + *rel, root.path());
  ASSERT_TRUE(v4.ok()) << v4.message();
  EXPECT_EQ(*v4, "1.5.0 (minor; evidence/" + *rel + " is not here to compare with)");
  ASSERT_TRUE(write_file_atomic(root / ("evidence/" + *rel), "{ torn").ok());
  Contract c5 = parse(read_file(path).value(), path);
  auto v5 = record_run(c5, results_for(c5, Verdict::kFalsified), "abc", "evidence/" + *rel, root.path());
  ASSERT_FALSE(v5.ok());
  EXPECT_NE(v5.message().find("the last recorded evidence cannot be read"), std::string::npos) << v5.message();
}

TEST(Evidence, ManifestDetectsEditsAndUnlistedFiles) {
  testing::TempDir dir;
  Contract c = parse(kContract);
  auto rel = write_evidence(dir.path(), evidence_for(c, Verdict::kSurvived));
  ASSERT_TRUE(rel.ok()) << rel.message();
  auto rel2 = write_evidence(dir.path(), evidence_for(c, Verdict::kSurvived));
  ASSERT_TRUE(rel2.ok());
  EXPECT_NE(*rel, *rel2) << "two runs in the same second get distinct names";
  VerifyReport ok = verify_evidence(dir.path());
  EXPECT_TRUE(ok.problems.empty()) << ok.problems[0];
  EXPECT_EQ(ok.files_checked, 2);

  // Flip one byte of the first file.
  std::string text = read_file(dir / *rel).value();
  text[text.find("survived")] = 'S';
  ASSERT_TRUE(write_file_atomic(dir / *rel, text).ok());
  VerifyReport bad = verify_evidence(dir.path());
  ASSERT_EQ(bad.problems.size(), 1u);
  EXPECT_NE(bad.problems[0].find(*rel + ": sha256 "), std::string::npos) << bad.problems[0];
  EXPECT_NE(bad.problems[0].find("(file changed)"), std::string::npos);

  // A file dropped in without going through the MANIFEST.
  ASSERT_TRUE(write_file_atomic(dir / "record-demo-v1/forged.json", "{}").ok());
  VerifyReport forged = verify_evidence(dir.path());
  EXPECT_EQ(forged.problems.size(), 2u);
  EXPECT_NE(forged.problems.back().find("forged.json: not listed in MANIFEST"), std::string::npos);
}

// A file that parses but has a field of the wrong type is an error naming the field, not an
// exception thrown later through `popper status` (found by the evidence fuzz target). Control:
// the same document with the field well typed reads.
TEST(Evidence, AMistypedFieldIsAnErrorNamingIt) {
  testing::TempDir dir;
  Contract c = parse(kContract);
  json doc = evidence_for(c, Verdict::kSurvived);
  ASSERT_TRUE(write_file_atomic(dir / "good.json", doc.dump()).ok());
  EXPECT_TRUE(read_evidence(dir / "good.json").ok());
  doc["items"][0]["control"] = {{"ran", "yes"}};
  ASSERT_TRUE(write_file_atomic(dir / "bad.json", doc.dump()).ok());
  auto bad = read_evidence(dir / "bad.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("bad.json: items[0].control.ran: want a boolean, got string"), std::string::npos)
      << bad.message();
}

// True when a write is in flight (or was cut off): the atomic writers' temp files carry ".tmp.".
bool has_temp_file(const fs::path& dir) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().find(".tmp.") != std::string::npos) return true;
  return false;
}

TEST(Evidence, KillNineDuringWritesNeverLeavesATornFile) {
  RecordProperty("falsification_id", "harness: kill -9 during evidence/contract writes");
  const Contract c = parse(kContract);
  json big = evidence_for(c, Verdict::kSurvived);
  big["padding"] = std::string(4 << 20, 'x');  // ~4 MiB so a kill lands mid-write often
  const std::string contract_b =
      append_history_text(c, {"1.3.0", "2026-01-06", "c", "s", "e/f.json"}).value();
  Rng rng(99);
  constexpr int kRounds = 12;
  int mid_write_kills = 0;  // rounds where a temp file shows the kill landed inside a write
  for (int round = 0; round < kRounds; ++round) {
    testing::TempDir dir;
    const std::string contract_path = dir / "contract.yaml";
    ASSERT_TRUE(write_file_atomic(contract_path, kContract).ok());
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int i = 0;; ++i) {
        (void)write_evidence(dir / "evidence", big);
        (void)write_file_atomic(contract_path, i % 2 ? std::string(kContract) : contract_b);
      }
    }
    if (round % 2 == 0) {
      // Half the rounds kill at a random moment; the other half wait until a temp file shows
      // a write in flight, so the test kills mid-write however fast or loaded the machine is.
      ::usleep(20000 + static_cast<useconds_t>(rng.next() % 200000));
    } else {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (!has_temp_file(dir.path()) && std::chrono::steady_clock::now() < give_up) ::usleep(200);
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));

    if (has_temp_file(dir.path())) ++mid_write_kills;
    std::string contract_now = read_file(contract_path).value();
    EXPECT_TRUE(contract_now == kContract || contract_now == contract_b)
        << "round " << round << ": torn contract";
    VerifyReport rep = verify_evidence(dir / "evidence");
    // At most the file being written when the kill landed may be missing from the MANIFEST
    // (written, not yet listed); every listed file is whole and matches its digest.
    int unlisted = 0;
    for (const auto& p : rep.problems) {
      if (p.find("not listed in MANIFEST") != std::string::npos)
        ++unlisted;
      else
        ADD_FAILURE() << "round " << round << ": " << p;
    }
    EXPECT_LE(unlisted, 1) << "round " << round;
    if (fs::exists(dir / "evidence"))
      for (const auto& e : fs::recursive_directory_iterator(dir / "evidence")) {
        if (e.path().extension() != ".json" || e.path().filename().string()[0] == '.') continue;
        EXPECT_TRUE(read_evidence(e.path().string()).ok()) << "round " << round << ": torn " << e.path();
      }
  }
  EXPECT_GT(mid_write_kills, 0) << "no kill landed inside a write; the test did not test anything";
}

TEST(Gate, ExitCodesFollowTheVerdicts) {
  Contract c = parse(kContract);
  auto gate_with = [&](Verdict v, bool allow_inconclusive, const std::string& head) {
    testing::TempDir dir;
    EXPECT_TRUE(write_evidence(dir.path(), evidence_for(c, v)).ok());
    return evaluate_gate(
        {&c}, {.evidence_dir = dir.path(), .head_commit = head, .allow_inconclusive = allow_inconclusive});
  };
  const std::string head = "0123456789abcdef0123";
  EXPECT_EQ(gate_with(Verdict::kSurvived, false, head).exit_code, 0);
  EXPECT_EQ(gate_with(Verdict::kFalsified, false, head).exit_code, 1);
  EXPECT_EQ(gate_with(Verdict::kError, true, head).exit_code, 1);
  EXPECT_EQ(gate_with(Verdict::kInconclusive, false, head).exit_code, 1);
  EXPECT_EQ(gate_with(Verdict::kInconclusive, true, head).exit_code, 0);
  GateReport other = gate_with(Verdict::kSurvived, false, "ffffffffffffffffffff");
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.contracts[0].problem.find("is from commit 0123456789ab"), std::string::npos);
  testing::TempDir empty;
  GateReport none = evaluate_gate({&c}, {.evidence_dir = empty.path(), .head_commit = head});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.contracts[0].problem.find("no evidence"), std::string::npos);
}

TEST(Gate, StaleEvidenceFailsAndHistoryOnlyChangesDoNot) {
  testing::TempDir dir;
  Contract c = parse(kContract);
  ASSERT_TRUE(write_evidence(dir.path(), evidence_for(c, Verdict::kSurvived)).ok());
  Contract recorded = parse(append_history_text(c, {"1.3.0", "2026-01-06", "c", "s", "e/f.json"}).value());
  EXPECT_EQ(evaluate_gate({&recorded}, {.evidence_dir = dir.path()}).exit_code, 0);
  std::string changed = kContract;
  changed.replace(changed.find("Fixture.AlsoPasses"), 18, "Fixture.Passes");
  Contract edited = parse(changed);
  GateReport rep = evaluate_gate({&edited}, {.evidence_dir = dir.path()});
  EXPECT_EQ(rep.exit_code, 1);
  EXPECT_NE(rep.contracts[0].problem.find("stale evidence"), std::string::npos);
}

TEST(Gate, OptionalItemsNeverBlockAndReportsNameEveryItem) {
  std::string text = kContract;
  text.insert(
      text.find("    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: Fixture.AlsoPasses}"),
      "    blocked_on: later work\n");
  Contract c = parse(text);
  testing::TempDir dir;
  std::vector<ItemResult> rs = results_for(c, Verdict::kSurvived);
  rs[1].verdict = Verdict::kInconclusive;
  json prov = {{"git", {{"commit", "c"}, {"short_commit", "c"}, {"dirty", false}}}};
  ASSERT_TRUE(
      write_evidence(dir.path(), make_evidence(c, rs, prov, RunInfo{"2026-01-06T10:00:00Z", "", {}, {}, ""}))
          .ok());
  GateReport rep = evaluate_gate({&c}, {.evidence_dir = dir.path()});
  EXPECT_EQ(rep.exit_code, 0);
  std::string junit = render_junit(rep);
  EXPECT_NE(junit.find("name=\"FALSIFY-RECORD_DEMO_V1_002\""), std::string::npos);
  EXPECT_NE(junit.find("<skipped message=\"because\"/>"), std::string::npos);
  std::string md = render_markdown(rep);
  EXPECT_NE(md.find("| `FALSIFY-RECORD_DEMO_V1_002` | ⚠️ inconclusive | no | because |"),
            std::string::npos)
      << md;
}

}  // namespace
}  // namespace popper::harness
