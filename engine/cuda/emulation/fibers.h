// The execution model of a CUDA grid, run on one CPU thread: every GPU thread of a block is a
// fiber (its own stack, switched cooperatively), so __syncthreads and warp shuffles block a
// thread until its block or warp has caught up, exactly where the GPU would. Blocks run one
// after another. Used only by the CPU emulation of engine/cuda (cuda_emu.h), which lets the CUDA
// backend's code and falsifiers run on machines without a GPU. It checks the kernels' logic
// (indexing, synchronisation, reductions, the host-side orchestration), not GPU arithmetic
// (host libm) or speed.
#pragma once

#include <cstdint>
#include <functional>

namespace popper::emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr Dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// Runs `body` once per thread of every block of `grid` x `block`. Aborts, naming the kernel's
// block, on a deadlock (threads of one block waiting at different barriers).
void run_grid(Dim3 grid, Dim3 block, const std::function<void()>& body);

// The calling GPU thread's coordinates (valid inside run_grid's body).
const Dim3& thread_idx();
const Dim3& block_idx();
const Dim3& block_dim();
const Dim3& grid_dim();

// __syncthreads: returns when every live thread of the block has called it.
void sync_threads();
// A warp shuffle: every live lane of the calling thread's warp offers `value`; returns the value
// lane `src_lane` offered.
uint64_t warp_exchange(uint64_t value, int src_lane);

}  // namespace popper::emu
