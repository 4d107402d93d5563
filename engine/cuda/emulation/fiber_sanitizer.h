// What the sanitizers must be told about the fiber machine's stack switches (fibers.cpp). A
// switch of the stack pointer behind their back makes ThreadSanitizer see one thread's accesses
// on many stacks in an order it cannot explain (reports that mean nothing), and makes
// AddressSanitizer check frames against the wrong stack's bounds. Both runtimes have a fiber API
// for this (sanitizer/tsan_interface.h, sanitizer/common_interface_defs.h); without a sanitizer
// (POPPER_TSAN / POPPER_ASAN unset, see cmake/CompilerFlags.cmake) every call here is empty.
//
// Protocol, for a switch from context A to context B:
//   start_switch(A, B, a_exits);  popper_emu_switch(...);  finish_switch(A', prev)
// where finish_switch runs on whichever context resumes, naming the one it came from.
#pragma once

#include <cstddef>

#if defined(POPPER_TSAN)
#include <sanitizer/tsan_interface.h>
#endif
#if defined(POPPER_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace popper::emu::san {

// One execution context: the scheduler's (the launching thread's own stack) or one fiber's.
struct Context {
#if defined(POPPER_TSAN)
  void* tsan = nullptr;  // TSan's fiber object; for the scheduler, the thread's own
  bool owned = false;    // created here (a fiber), so destroyed here
#endif
#if defined(POPPER_ASAN)
  void* fake_stack = nullptr;  // ASan's detect_stack_use_after_return frames while switched out
  const void* bottom = nullptr;
  size_t size = 0;
#endif
};

// The scheduler's context: the calling thread as it is. Its stack bounds (for ASan) are learnt
// from the first fiber that switches in (finish_switch's `prev`).
inline void init_thread(Context& c) {
#if defined(POPPER_TSAN)
  c.tsan = __tsan_get_current_fiber();
#endif
  (void)c;
}

// A fiber on [stack, stack + bytes), about to start from scratch (a reused stack included).
inline void init_fiber(Context& c, char* stack, size_t bytes) {
#if defined(POPPER_TSAN)
  if (c.tsan == nullptr) {
    c.tsan = __tsan_create_fiber(0);
    c.owned = true;
  }
#endif
#if defined(POPPER_ASAN)
  // A finished fiber never returned through its first frames: their redzones are still poisoned.
  __asan_unpoison_memory_region(stack, bytes);
  c.fake_stack = nullptr;
  c.bottom = stack;
  c.size = bytes;
#endif
  (void)c, (void)stack, (void)bytes;
}

inline void destroy(Context& c) {
#if defined(POPPER_TSAN)
  if (c.owned) __tsan_destroy_fiber(c.tsan);
  c.tsan = nullptr;
  c.owned = false;
#endif
  (void)c;
}

// Right before switching from `from` to `to`; `from_exits`: `from` is never resumed.
// TSan's default flags make the switch a synchronisation point: everything before it happens
// before everything after, which is exactly what a cooperative switch on one thread is.
inline void start_switch(Context& from, const Context& to, bool from_exits) {
#if defined(POPPER_ASAN)
  __sanitizer_start_switch_fiber(from_exits ? nullptr : &from.fake_stack, to.bottom, to.size);
#endif
#if defined(POPPER_TSAN)
  __tsan_switch_to_fiber(to.tsan, 0);
#endif
  (void)from, (void)to, (void)from_exits;
}

// Right after `self` resumes (or a fiber starts), coming from `prev`.
inline void finish_switch(Context& self, Context& prev) {
#if defined(POPPER_ASAN)
  __sanitizer_finish_switch_fiber(self.fake_stack, &prev.bottom, &prev.size);
#endif
  (void)self, (void)prev;
}

}  // namespace popper::emu::san
