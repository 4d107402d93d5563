// A streaming-read bandwidth probe: how fast this machine can read memory with `n_threads`
// threads, the bound a decode step (which reads every active weight once) cannot beat.
#pragma once

#include <cstdint>

namespace popper::cpu {

struct BandwidthResult {
  double gb_per_s;      // best of the repetitions, 1e9 bytes per second
  double median_gb_per_s;
  int64_t bytes;        // buffer size read per repetition
  int threads;
};

// Reads a buffer of `bytes` (default 1 GiB: far beyond any cache) `repetitions` times with
// SIMD loads split across threads.
BandwidthResult measure_read_bandwidth(int n_threads, int64_t bytes = int64_t(1) << 30, int repetitions = 5);

}  // namespace popper::cpu
