// kill -9 at random points of every writer whose output later runs read (issue 13 part 4):
// `popper synth` and `popper quantize` over an older model at the same path, the harness's model
// cache (models built on demand, harness/run/models.h) and `popper signoff` bundles. After each
// kill, what is at the final path is the old file or the complete new one, checked with the
// reader: the GGUF opens and its bytes are one of the two; the bundle verifies. Never torn.
//
// Each writer gets kRounds kills: even rounds at a random moment of its run, odd rounds as soon
// as its temp file appears (so at least half land inside a write however fast or loaded the
// machine is); the test counts the rounds that left a temp file behind (the kill landed inside
// a write) and requires half of them, or it tested nothing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/core/atomic_file.h"
#include "engine/core/sha256.h"
#include "engine/gguf/gguf_reader.h"
#include "falsifiers/harness_repo_fixture.h"
#include "harness/run/models.h"
#include "harness/run/process.h"
#include "harness/signoff/crypto.h"
#include "harness/signoff/signoff.h"

namespace popper::harness {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::TempDir;

constexpr int kRounds = 8;                            // per writer
constexpr auto kTempWait = std::chrono::seconds(60);  // a writer that shows no temp file by then is stuck

std::string popper_exe() { return testing::build_dir() + "/harness/popper"; }

// True when a write is in flight (or was cut off) under `dir`: the atomic writers' temp names
// carry ".tmp." (files and bundle directories), the model cache's ".partial-".
bool has_temp(const fs::path& dir) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find(".tmp.") != std::string::npos || name.find(".partial-") != std::string::npos) return true;
  }
  return false;
}

void remove_temps(const fs::path& dir) {
  std::vector<fs::path> temps;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find(".tmp.") != std::string::npos || name.find(".partial-") != std::string::npos)
      temps.push_back(it->path());
  }
  for (const auto& p : temps) fs::remove_all(p, ec);
}

// Forks; the child runs `body` (which must not return) with its output in `log`.
template <typename F>
pid_t fork_child(const std::string& log, F body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    body();
    ::_exit(127);
  }
  return pid;
}

// `faults`, when given, is the child's POPPER_FAULTS (the negative control's).
pid_t spawn(const std::vector<std::string>& argv, const std::string& cwd, const std::string& log,
            const char* faults = nullptr) {
  return fork_child(log, [&] {
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
    if (faults != nullptr) ::setenv("POPPER_FAULTS", faults, 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
  });
}

// Kills every process left that this one adopted as a subreaper (a killed writer's own children,
// such as the `popper synth` the model cache runs), and reaps them.
void kill_adopted_children() {
  std::vector<pid_t> adopted;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    auto text = read_file((it->path() / "stat").string());
    const std::string stat = text.ok() ? *text : "";
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + close + 2, "%*c %d", &ppid) == 1 && ppid == ::getpid())
      adopted.push_back(pid_t(std::stoi(it->path().filename().string())));
  }
  // Reaped one by one: once waitpid returns, a killed writer can touch no file any more.
  for (pid_t pid : adopted) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
}

struct Kill {
  bool mid_write = false;  // a temp file was left behind: the kill landed inside a write
  bool finished = false;   // the writer ended before the kill
};

// Runs one round: starts the writer, kills it (SIGKILL) after `delay`, or — when `on_write` —
// as soon as `writing()` says a write is in flight, and reaps it and whatever it left running.
template <typename Start, typename Writing>
Kill kill_round(Start start, Writing writing, bool on_write, std::chrono::microseconds delay) {
  const pid_t pid = start();
  Kill k;
  int status = 0;
  const auto t0 = Clock::now();
  const auto give_up = t0 + kTempWait;
  for (;;) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      k.finished = true;
      break;
    }
    if (on_write ? writing() || Clock::now() > give_up : Clock::now() - t0 >= delay) break;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  if (!k.finished) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  kill_adopted_children();
  k.mid_write = writing();
  return k;
}

// Times one uninterrupted run of `start` (the range of the random kill points).
template <typename Start>
std::chrono::microseconds time_run(Start start) {
  const auto t0 = Clock::now();
  int status = 0;
  ::waitpid(start(), &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the writer failed on its own";
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
}

std::string sha_of(const std::string& path) {
  auto sha = sha256_file(path);
  return sha.ok() ? *sha : "(unreadable: " + sha.message() + ")";
}

// What a GGUF writer left at `path`: "old", "new", or a description of the torn file.
std::string judge_gguf(const std::string& path, const std::string& old_sha, const std::string& new_sha) {
  if (!fs::exists(path)) return old_sha.empty() ? "old" : "missing";
  auto file = GgufFile::open(path);
  if (!file.ok()) return "torn: " + file.message();
  const std::string sha = sha_of(path);
  if (sha == old_sha) return "old";
  if (sha == new_sha) return "new";
  return "opens, but its bytes are neither the old nor the new file (sha256 " + sha + ")";
}

// The kill rounds of one GGUF writer; `reset` puts the old file back before each round,
// `writing` says whether a write is in flight. Returns the rounds that left a torn file.
template <typename Start, typename Reset, typename Writing>
int kill_gguf_writer(const char* what, Start start, Reset reset, Writing writing, const fs::path& dir,
                     const std::string& target, const std::string& old_sha, const std::string& new_sha,
                     std::chrono::microseconds run_time) {
  std::mt19937_64 rng(0x6b696c6c);
  int mid_write = 0, torn = 0;
  for (int round = 0; round < kRounds; ++round) {
    reset();
    remove_temps(dir);
    const auto delay =
        std::chrono::microseconds(int64_t(rng() % uint64_t(std::max<int64_t>(1, run_time.count()))));
    const Kill k = kill_round(start, writing, round % 2 == 1, delay);
    mid_write += k.mid_write;
    const std::string verdict = judge_gguf(target, old_sha, new_sha);
    if (verdict != "old" && verdict != "new") {
      ++torn;
      std::printf("%s round %d: %s\n", what, round, verdict.c_str());
    }
  }
  EXPECT_GE(mid_write, kRounds / 2) << what << ": too few kills landed inside a write";
  std::printf("[figures] %s: %d kills, %d inside a write, %d torn; one run %.0f ms\n", what, kRounds,
              mid_write, torn, run_time.count() / 1e3);
  return torn;
}

std::vector<std::string> synth_argv(uint64_t seed, const std::string& out) {
  return {popper_exe(),         "synth", "--arch", "qwen3", "--preset", "tiny", "--quant", "f32", "--seed",
          std::to_string(seed), "-o",    out};
}

// `popper synth` killed while it writes over an older model; `faults` as spawn's. Returns the
// rounds that left a torn file.
int kill_synth_rounds(const char* what, const char* faults) {
  TempDir ref, dir;
  const std::string old_path = ref / "old.gguf", new_path = ref / "new.gguf", target = dir / "model.gguf";
  time_run([&] { return spawn(synth_argv(1, old_path), "", ref / "old.log"); });
  const auto run_time = time_run([&] { return spawn(synth_argv(2, new_path), "", ref / "new.log"); });
  const std::string old_sha = sha_of(old_path), new_sha = sha_of(new_path);
  EXPECT_NE(old_sha, new_sha);
  const uintmax_t old_size = fs::file_size(old_path);
  return kill_gguf_writer(
      what, [&] { return spawn(synth_argv(2, target), "", ref / "kill.log", faults); },
      [&] { fs::copy_file(old_path, target, fs::copy_options::overwrite_existing); },
      // A temp file beside the target, or (written in place) the target no longer the old size.
      [&] {
        std::error_code ec;
        const uintmax_t size = fs::file_size(target, ec);
        return has_temp(dir.path()) || (!ec && size != old_size);
      },
      dir.path(), target, old_sha, new_sha, run_time);
}

// True while `pid` runs: it exists and is not a zombie (a killed child reparented to a PID 1 that
// does not reap stays a zombie, which is dead for this purpose).
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

// A harness killed outright takes the falsifier it is running with it (run_process sets the
// child's death signal): a `popper run` killed by the OOM killer or kill -9 must not leave a
// benchmark or a server running on. The harness here is a forked copy of this process that runs
// `sh -c 'echo $$ > pid; exec sleep 60'` through run_process; it is killed once the pid is
// written, and the sleep must be gone within 2 s.
TEST(KillNine, AKilledHarnessTakesItsRunningFalsifierWithIt) {
  testing::TempDir dir;
  const fs::path pid_file = fs::path(dir.path()) / "falsifier.pid";
  const std::string tmp = (fs::path(dir.path()) / "pid.tmp").string();
  const pid_t harness = ::fork();
  ASSERT_GE(harness, 0);
  if (harness == 0) {
    SpawnOptions o;
    o.argv = {"/bin/sh", "-c", "echo $$ > " + tmp + " && mv " + tmp + " " + pid_file.string() + " && exec sleep 60"};
    o.timeout_s = 120;
    run_process(o);
    ::_exit(0);
  }
  pid_t falsifier = 0;
  for (auto t0 = Clock::now(); falsifier == 0 && Clock::now() - t0 < kTempWait;) {
    std::ifstream in(pid_file);
    if (!(in >> falsifier)) {
      falsifier = 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ASSERT_GT(falsifier, 0) << "the falsifier never wrote its pid";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let it reach exec sleep
  ::kill(harness, SIGKILL);
  int status = 0;
  ::waitpid(harness, &status, 0);
  bool gone = false;
  for (auto t0 = Clock::now(); !gone && Clock::now() - t0 < std::chrono::seconds(2);) {
    gone = !running(falsifier);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "pid " << falsifier << " still runs 2 s after its harness was killed";
  if (!gone) ::kill(falsifier, SIGKILL);
}

TEST(KillNine, SynthOverAnOldModelLeavesTheOldOrTheWholeNewFile) {
  RecordProperty("falsification_id", "FALSIFY-HARDENING_V1_004");
  EXPECT_EQ(kill_synth_rounds("popper synth", nullptr), 0);
}

// The negative control: a writer that truncates and writes the target itself (fault
// atomic_write_in_place) must be caught torn by the same kills and checks.
TEST(KillNine, ControlAWriterThatWritesInPlaceIsCaughtTorn) {
  RecordProperty("falsification_id", "FALSIFY-HARDENING_V1_004 control (atomic_write_in_place)");
  EXPECT_GT(kill_synth_rounds("popper synth, in place (control)", "atomic_write_in_place"), 0)
      << "kills inside an in-place write left no torn file: the check cannot see tearing";
}

TEST(KillNine, QuantizeOverAnOldModelLeavesTheOldOrTheWholeNewFile) {
  RecordProperty("falsification_id", "FALSIFY-HARDENING_V1_004");
  TempDir ref, dir;
  const std::string src = ref / "src.gguf", old_path = ref / "old.gguf", new_path = ref / "new.gguf",
                    target = dir / "model.gguf";
  time_run([&] { return spawn(synth_argv(3, src), "", ref / "src.log"); });
  auto quantize = [&](const std::string& type, const std::string& out) {
    return std::vector<std::string>{popper_exe(), "quantize", src, out, "--type", type, "--quiet"};
  };
  time_run([&] { return spawn(quantize("q8_0", old_path), "", ref / "old.log"); });
  const auto run_time = time_run([&] { return spawn(quantize("q4_k_m", new_path), "", ref / "new.log"); });
  const std::string old_sha = sha_of(old_path), new_sha = sha_of(new_path);
  ASSERT_NE(old_sha, new_sha);
  EXPECT_EQ(kill_gguf_writer(
                "popper quantize", [&] { return spawn(quantize("q4_k_m", target), "", ref / "kill.log"); },
                [&] { fs::copy_file(old_path, target, fs::copy_options::overwrite_existing); },
                [&] { return has_temp(dir.path()); }, dir.path(), target, old_sha, new_sha, run_time),
            0);
}

TEST(KillNine, ModelCacheBuildLeavesNoModelOrTheWholeModel) {
  RecordProperty("falsification_id", "FALSIFY-HARDENING_V1_004");
  // The cache runs `popper synth` as its own child; adopted here when the harness is killed, so
  // that the test can stop it too (a real kill -9 leaves it running to its end: see below).
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  TempDir ref, cache;
  auto spec_in = [&](const std::string& dir) {
    auto s = resolve_model("tiny-qwen3-f32", dir, POPPER_SOURCE_DIR);
    EXPECT_TRUE(s.ok()) << s.message();
    return *s;
  };
  const ModelSpec ref_spec = spec_in(ref.path()), spec = spec_in(cache.path());
  auto build = [&](const ModelSpec& s, const std::string& log) {
    return fork_child(log + ".fork", [&] {
      Status st = build_model(s, popper_exe(), log, 120);
      ::_exit(st.ok() ? 0 : 1);
    });
  };
  const auto run_time = time_run([&] { return build(ref_spec, ref / "build.log"); });
  const std::string new_sha = sha_of(ref_spec.path);
  EXPECT_EQ(kill_gguf_writer(
                "model cache", [&] { return build(spec, ref / "kill.log"); }, [&] { fs::remove(spec.path); },
                [&] { return has_temp(cache.path()); }, cache.path(), spec.path, "", new_sha, run_time),
            0);
  // After all those kills a build still succeeds, whole, and clears what killed builds left: a
  // partial file of a harness that no longer runs (planted, so that there is one for certain).
  fs::remove(spec.path);
  const pid_t gone = fork_child("/dev/null", [] { ::_exit(0); });
  ::waitpid(gone, nullptr, 0);
  ASSERT_TRUE(
      write_file_atomic(spec.path + ".partial-" + std::to_string(gone) + ".gguf", "half a model").ok());
  Status st = build_model(spec, popper_exe(), ref / "final.log", 120);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(judge_gguf(spec.path, "", new_sha), "new");
  EXPECT_FALSE(has_temp(cache.path())) << "a killed build's partial file was left in the cache";
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

const char* kContract = R"(metadata:
  version: 1.0.0
  created: 2026-01-01
  updated: 2026-01-01
name: kill-demo-v1
version: 1.0.0
description: kill -9 sign-off fixture
falsification:
  - id: FALSIFY-KILL_DEMO_V1_001
    description: passes
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.Passes"}
status_history:
  - version: 1.0.0
    date: 2026-01-01
    summary: seed
)";

TEST(KillNine, SignoffLeavesNoBundleOrOneThatVerifies) {
  RecordProperty("falsification_id", "FALSIFY-HARDENING_V1_004");
  testing::TempRepo repo;
  repo.init({{"kill-demo-v1", kContract}});
  auto key = generate_ed25519();
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(write_file_atomic(repo.outside("key.pem"), key->private_pem).ok());
  ASSERT_TRUE(write_file_atomic(repo.outside("key.pub.pem"), key->public_pem).ok());
  ASSERT_EQ(repo.popper({"run", testing::build_flag()}).code, 0);
  const std::string bundle = repo.outside("bundle");
  auto start = [&] {
    return spawn({popper_exe(), "signoff", "--release", "r1", "--key", repo.outside("key.pem"), "-o", bundle},
                 repo.path(), repo.outside("signoff.log"));
  };
  const auto run_time = time_run(start);
  ASSERT_TRUE(verify_signoff(bundle, repo.outside("key.pub.pem")).problems.empty());
  std::mt19937_64 rng(0x7369676e);
  int mid_write = 0;
  for (int round = 0; round < kRounds; ++round) {
    fs::remove_all(bundle);
    remove_temps(fs::path(bundle).parent_path());
    const auto delay =
        std::chrono::microseconds(int64_t(rng() % uint64_t(std::max<int64_t>(1, run_time.count()))));
    const Kill k = kill_round(
        start, [&] { return has_temp(fs::path(bundle).parent_path()); }, round % 2 == 1, delay);
    mid_write += k.mid_write;
    if (fs::exists(bundle)) {
      VerifySignoffOutcome v = verify_signoff(bundle, repo.outside("key.pub.pem"));
      EXPECT_TRUE(v.problems.empty()) << "round " << round << ": torn bundle: " << v.problems.front();
    }
  }
  EXPECT_GE(mid_write, kRounds / 2) << "too few kills landed inside a write";
  std::printf("[figures] popper signoff: %d kills, %d inside a write; one run %.0f ms\n", kRounds, mid_write,
              run_time.count() / 1e3);
}

}  // namespace
}  // namespace popper::harness
