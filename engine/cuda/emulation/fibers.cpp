#include "engine/cuda/emulation/fibers.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/core/result.h"
#include "engine/cuda/emulation/fiber_sanitizer.h"

// Saves the callee-saved registers and the stack pointer of the running context in *save_sp and
// resumes the context whose stack pointer is load_sp (x86-64 System V).
extern "C" void popper_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl popper_emu_switch
  .type popper_emu_switch, @function
popper_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size popper_emu_switch, .-popper_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");

namespace popper::emu {
namespace {

// Kernel frames are small (no recursion, no big locals); AddressSanitizer's redzones make them
// several times larger.
#if defined(POPPER_ASAN)
constexpr size_t kStackBytes = 128 * 1024;
#else
constexpr size_t kStackBytes = 32 * 1024;
#endif
constexpr int kWarpSize = 32;

enum class State { kRunnable, kAtBlockBarrier, kAtWarpBarrier, kDone };

struct Fiber {
  void* sp = nullptr;
  State state = State::kRunnable;
  Dim3 tid;
  int warp = 0, lane = 0;
  uint64_t exchanges = 0;  // shuffles done: picks the exchange buffer
};

// A fiber's stack and what the sanitizers know of it, kept across blocks and grids.
struct Stack {
  std::unique_ptr<char[]> bytes{new char[kStackBytes]};
  san::Context san;
  Stack() = default;
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  ~Stack() { san::destroy(san); }
};

struct Machine {
  std::vector<std::unique_ptr<Stack>> stacks;  // [i]: fiber i's
  std::vector<Fiber> fibers;
  std::vector<int> warp_live, warp_waiting;
  std::vector<uint64_t> exchange;  // [warp][2][32]
  int live = 0, block_waiting = 0;
  Fiber* current = nullptr;
  void* scheduler_sp = nullptr;
  san::Context scheduler_san;
  const std::function<void()>* body = nullptr;
  Dim3 block_idx, block_dim, grid_dim;
};

Machine g;
std::mutex g_launch_mutex;  // one grid at a time

// The fibers of warp w are g.fibers[32w, 32w + 32).
void release_warp(int w) {
  const size_t end = std::min(g.fibers.size(), size_t(w + 1) * kWarpSize);
  for (size_t i = size_t(w) * kWarpSize; i < end; ++i) {
    if (g.fibers[i].state == State::kAtWarpBarrier) g.fibers[i].state = State::kRunnable;
  }
  g.warp_waiting[size_t(w)] = 0;
}

void release_block() {
  for (Fiber& f : g.fibers) {
    if (f.state == State::kAtBlockBarrier) f.state = State::kRunnable;
  }
  g.block_waiting = 0;
}

san::Context& current_san() { return g.stacks[size_t(g.current - g.fibers.data())]->san; }

void yield_to_scheduler() {
  san::Context& self = current_san();
  san::start_switch(self, g.scheduler_san, false);
  popper_emu_switch(&g.current->sp, g.scheduler_sp);
  san::finish_switch(self, g.scheduler_san);
}

[[noreturn]] void fiber_entry() {
  san::finish_switch(current_san(), g.scheduler_san);
  (*g.body)();
  Fiber& f = *g.current;
  f.state = State::kDone;
  --g.live;
  --g.warp_live[f.warp];
  // A thread that exits no longer holds back its block's or its warp's barrier.
  if (g.warp_waiting[f.warp] > 0 && g.warp_waiting[f.warp] == g.warp_live[f.warp]) release_warp(f.warp);
  if (g.block_waiting > 0 && g.block_waiting == g.live) release_block();
  san::start_switch(current_san(), g.scheduler_san, true);
  popper_emu_switch(&f.sp, g.scheduler_sp);
  __builtin_trap();  // a finished fiber is never resumed
}

void start_fiber(Fiber& f, Stack& s) {
  char* stack = s.bytes.get();
  san::init_fiber(s.san, stack, kStackBytes);
  auto top = reinterpret_cast<uintptr_t>(stack + kStackBytes) & ~uintptr_t(15);
  auto* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = 0;                                            // fiber_entry's return address: none
  *--sp = reinterpret_cast<uint64_t>(&fiber_entry);     // popper_emu_switch's `ret` lands here
  for (int i = 0; i < 6; ++i) *--sp = 0;                // rbp rbx r12 r13 r14 r15
  f.sp = sp;
}

void run_block(unsigned n_threads) {
  const int n_warps = int((n_threads + kWarpSize - 1) / kWarpSize);
  while (g.stacks.size() < n_threads) g.stacks.push_back(std::make_unique<Stack>());
  g.fibers.assign(n_threads, Fiber{});
  g.warp_live.assign(size_t(n_warps), 0);
  g.warp_waiting.assign(size_t(n_warps), 0);
  g.exchange.assign(size_t(n_warps) * 2 * kWarpSize, 0);
  for (unsigned t = 0; t < n_threads; ++t) {
    Fiber& f = g.fibers[t];
    f.tid = Dim3(t % g.block_dim.x, (t / g.block_dim.x) % g.block_dim.y, t / (g.block_dim.x * g.block_dim.y));
    f.warp = int(t / kWarpSize);
    f.lane = int(t % kWarpSize);
    ++g.warp_live[size_t(f.warp)];
    start_fiber(f, *g.stacks[t]);
  }
  g.live = int(n_threads);
  g.block_waiting = 0;
  // Each warp runs until every lane waits at a block barrier or is done (its shuffles resolve
  // among its own lanes); then the next warp. A pass over all warps ends at a block barrier.
  while (g.live > 0) {
    bool ran = false;
    for (int w = 0; w < n_warps; ++w) {
      const size_t begin = size_t(w) * kWarpSize, end = std::min(size_t(n_threads), begin + kWarpSize);
      for (bool warp_ran = true; warp_ran;) {
        warp_ran = false;
        for (size_t i = begin; i < end; ++i) {
          Fiber& f = g.fibers[i];
          if (f.state != State::kRunnable) continue;
          g.current = &f;
          san::Context& fiber_san = g.stacks[i]->san;
          san::start_switch(g.scheduler_san, fiber_san, false);
          popper_emu_switch(&g.scheduler_sp, f.sp);
          san::finish_switch(g.scheduler_san, fiber_san);
          warp_ran = ran = true;
        }
      }
    }
    POPPER_CHECK(ran, "CUDA emulation: deadlock in block (", g.block_idx.x, ", ", g.block_idx.y, ", ", g.block_idx.z,
                 "): ", g.live, " threads wait at barriers that cannot complete (divergent __syncthreads or shuffle)");
  }
  g.current = nullptr;
}

}  // namespace

void run_grid(Dim3 grid, Dim3 block, const std::function<void()>& body) {
  const std::lock_guard<std::mutex> lock(g_launch_mutex);
  const unsigned n_threads = block.x * block.y * block.z;
  POPPER_CHECK(n_threads >= 1 && n_threads <= 1024, "CUDA emulation: ", n_threads, " threads per block");
  POPPER_CHECK(grid.y <= 65535 && grid.z <= 65535, "CUDA emulation: grid (", grid.x, ", ", grid.y, ", ", grid.z,
               ") is past the device's limits");
  san::init_thread(g.scheduler_san);  // the launching thread may differ from the last grid's
  g.body = &body;
  g.block_dim = block;
  g.grid_dim = grid;
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        g.block_idx = Dim3(x, y, z);
        run_block(n_threads);
      }
    }
  }
  g.body = nullptr;
}

const Dim3& thread_idx() { return g.current->tid; }
const Dim3& block_idx() { return g.block_idx; }
const Dim3& block_dim() { return g.block_dim; }
const Dim3& grid_dim() { return g.grid_dim; }

void sync_threads() {
  Fiber& f = *g.current;
  f.state = State::kAtBlockBarrier;
  if (++g.block_waiting == g.live) {
    release_block();
    return;
  }
  yield_to_scheduler();
}

uint64_t warp_exchange(uint64_t value, int src_lane) {
  Fiber& f = *g.current;
  // Two buffers, alternating per shuffle: a lane can run at most one shuffle ahead of the
  // slowest lane of its warp, so the buffer it writes is never the one still being read.
  uint64_t* slots = g.exchange.data() + (size_t(f.warp) * 2 + (f.exchanges & 1)) * kWarpSize;
  ++f.exchanges;
  slots[f.lane] = value;
  f.state = State::kAtWarpBarrier;
  if (++g.warp_waiting[size_t(f.warp)] == g.warp_live[size_t(f.warp)]) {
    release_warp(f.warp);
  } else {
    yield_to_scheduler();
  }
  return slots[src_lane & (kWarpSize - 1)];
}

}  // namespace popper::emu
