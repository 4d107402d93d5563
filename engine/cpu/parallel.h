// When a CPU op is worth the thread pool: shared by every op in engine/cpu.
#pragma once

#include <cstdint>

#include "engine/core/thread_pool.h"

namespace popper::cpu {

// Below about this much work (weight bytes x token rows, or elements touched) an op runs on the
// calling thread: a pool dispatch costs microseconds when cores are free and whole scheduler
// slices when they are oversubscribed, more than a small op itself.
inline constexpr int64_t kParallelMinWork = int64_t(1) << 20;

// fn(begin, end, thread) over [0, n) in items of one: on the pool when `parallel`, else inline as
// thread 0 (so per-thread scratch indexed by the thread stays valid either way).
template <class Fn>
void for_items(ThreadPool& pool, bool parallel, int64_t n, const Fn& fn) {
  if (parallel) {
    pool.parallel_for(n, 1, fn);
  } else {
    fn(int64_t(0), n, 0);
  }
}

}  // namespace popper::cpu
