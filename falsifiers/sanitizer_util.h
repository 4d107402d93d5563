// Whether this falsifier runs under a sanitizer (POPPER_SANITIZE, cmake/CompilerFlags.cmake).
// Its shadow memory, quarantine and slower code make bounds on resident memory or wall time
// measure the sanitizer, not Popper: such a check is skipped there (LeakSanitizer checks leaks
// exactly instead) and runs in the Release tree (scripts/test.sh). Loops may run shorter too.
#pragma once

namespace popper::testing {

#if defined(POPPER_ASAN) || defined(POPPER_TSAN)
inline constexpr bool kUnderSanitizer = true;
#else
inline constexpr bool kUnderSanitizer = false;
#endif

}  // namespace popper::testing
