// A small fixed pool of std::thread workers for the compute kernels.
//
// The caller's thread takes part as worker 0, so ThreadPool(1) runs everything inline with no
// synchronisation at all. Workers spin briefly before sleeping: a decode step issues hundreds of
// short parallel ops, and a futex wake per op would cost more than the op.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace popper {

class ThreadPool {
 public:
  // n_threads <= 0 means one per hardware thread.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(thread_index) once on each of size() threads and returns when all have finished.
  // Not re-entrant: fn must not call run() on the same pool.
  void run(const std::function<void(int)>& fn);

  // Splits [0, n) into chunks of `grain` items handed out dynamically (an atomic counter), so
  // uneven chunks (e.g. experts with different token counts) still balance.
  // fn(begin, end, thread_index).
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

  static int hardware_threads();

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace popper
