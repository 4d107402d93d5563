// Falsifiers for engine/core: fp16/bf16 conversions, the RNG's portability, the thread pool,
// atomic writes and digests, the registry of named faults.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <set>

#include "engine/core/atomic_file.h"
#include "engine/core/faults.h"
#include "engine/core/fp16.h"
#include "engine/core/ggml_type.h"
#include "engine/core/rng.h"
#include "engine/core/sha256.h"
#include "engine/core/thread_pool.h"

// Counts this process's fsync calls: the executable's definition wins over libc's for the
// statically linked engine/core, and forwards to libc's.
std::atomic<int> g_fsync_calls{0};
extern "C" int fsync(int fd) {
  ++g_fsync_calls;
  using Fsync = int (*)(int);
  static const Fsync real = reinterpret_cast<Fsync>(dlsym(RTLD_NEXT, "fsync"));
  return real(fd);
}

namespace popper {
namespace {

TEST(Fp16, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = fp16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_fp16(f), h) << "half bits " << h;
  }
}

TEST(Fp16, KnownValues) {
  EXPECT_EQ(f32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_fp16(1e6f), 0x7C00);                   // overflow to +inf
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  // Round to nearest even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(f32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
}

TEST(Bf16, RoundsToNearestEvenAndKeepsNanQuiet) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F808000u)), 0x3F80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F818000u)), 0x3F82);  // tie -> even (up)
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

TEST(Rng, StreamIsPinnedAcrossMachinesAndCompilers) {
  // Synthetic model bytes depend on these exact numbers; a change here changes every model.
  Rng rng(42);
  EXPECT_EQ(rng.next(), 0x15780b2e0c2ec716ull);
  Rng normal_rng(7);
  double sum = 0, sum_sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double v = normal_rng.normal();
    sum += v;
    sum_sq += v * v;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum_sq / n, 1.0, 0.02);
}

TEST(ThreadPool, ParallelForVisitsEveryIndexOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 7, 1000, 4097}) {
      std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
      pool.parallel_for(n, 13, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) seen[i].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i].load(), 1) << "threads " << threads << " n " << n;
    }
  }
}

TEST(ThreadPool, RunGivesEachThreadItsIndexManyTimes) {
  ThreadPool pool(4);
  for (int round = 0; round < 200; ++round) {
    std::atomic<int> mask{0};
    pool.run([&](int i) { mask.fetch_or(1 << i); });
    ASSERT_EQ(mask.load(), 0xF);
  }
}

TEST(GgmlType, SizesMatchGgml) {
  EXPECT_EQ(ggml_type_info(GgmlType::Q4_K).type_size, 144);
  EXPECT_EQ(ggml_type_info(GgmlType::Q6_K).type_size, 210);
  EXPECT_EQ(ggml_row_size(GgmlType::Q8_0, 64), 68);
  EXPECT_FALSE(ggml_type_info(4).has_value());
  EXPECT_EQ(ggml_type_from_name("Q4_K"), GgmlType::Q4_K);
}

TEST(AtomicFile, WritesAndReplaces) {
  auto dir = std::filesystem::temp_directory_path() / "popper_core_test";
  std::filesystem::create_directories(dir);
  std::string path = (dir / "x.txt").string();
  ASSERT_TRUE(write_file_atomic(path, "one").ok());
  ASSERT_TRUE(write_file_atomic(path, "two").ok());
  EXPECT_EQ(read_file(path).value(), "two");
  EXPECT_FALSE(write_file_atomic((dir / "missing" / "x").string(), "z").ok());
}

TEST(Sha256, KnownDigest) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Faults, EveryFaultHasAUniqueNameASiteAndAnEffect) {
  std::set<std::string> names;
  for (size_t i = 0; i < kFaultCount; ++i) {
    const FaultInfo& f = fault_table()[i];
    EXPECT_EQ(static_cast<size_t>(f.fault), i);
    EXPECT_TRUE(names.insert(f.name).second) << f.name;
    EXPECT_NE(std::string(f.site), "");
    EXPECT_NE(std::string(f.effect), "");
    EXPECT_EQ(find_fault(f.name), &f);
    EXPECT_FALSE(fault_on(f.fault)) << "no fault is on unless POPPER_FAULTS says so";
  }
}

TEST(Faults, AFaultListParsesAndAnUnknownNameIsNamedWithTheKnownOnes) {
  std::vector<Fault> out;
  std::string error;
  ASSERT_TRUE(parse_fault_list(" kv_stale_position, decode_sleep,", &out, &error)) << error;
  EXPECT_EQ(out, (std::vector<Fault>{Fault::kKvStalePosition, Fault::kDecodeSleep}));
  EXPECT_FALSE(parse_fault_list("kv_stale_position,decode_slep", &out, &error));
  EXPECT_NE(error.find("unknown fault 'decode_slep' (known: kv_stale_position, "), std::string::npos)
      << error;
}

TEST(Faults, AnUnknownFaultInTheEnvironmentEndsTheProcessNamingIt) {
  // A misspelt control must not run the healthy engine and call its check unfalsifiable.
  const std::string err = ::testing::TempDir() + "popper-faults-env.err";
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();  // not the shell's
  const std::string cmd =
      "POPPER_FAULTS=kv_stale_positoin " + self + " --gtest_list_tests >/dev/null 2>" + err;
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  auto text = read_file(err);
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("POPPER_FAULTS: unknown fault 'kv_stale_positoin'"), std::string::npos) << *text;
  const std::string warned = "POPPER_FAULTS=decode_sleep " + self + " --gtest_list_tests >/dev/null 2>" + err;
  ASSERT_EQ(std::system(warned.c_str()), 0);
  EXPECT_NE(read_file(err)->find("WARNING: fault injection active (POPPER_FAULTS=decode_sleep)"),
            std::string::npos);
}

TEST(AtomicFile, AWriteIsFsyncedBeforeItsRenameAndTheSkipFsyncFaultShowsInTheCount) {
  RecordProperty("falsification_id", "FALSIFY-HARDENING_V1_003");
  const std::string path = ::testing::TempDir() + "popper-fsync-count.txt";
  const int before = g_fsync_calls;
  ASSERT_TRUE(write_file_atomic(path, "durable\n").ok());
  EXPECT_EQ(g_fsync_calls - before, 2) << "the temp file, then its directory after the rename";
  // The negative control, in process: with the fault on the same count must come out 0.
  set_faults_for_testing({Fault::kEvidenceSkipsFsync});
  const int faulted = g_fsync_calls;
  Status st = write_file_atomic(path, "lost on a crash\n");
  set_faults_for_testing({});
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(g_fsync_calls - faulted, 0) << "evidence_skips_fsync must skip every fsync";
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace popper
