# `contract_targets`: what `popper run` needs and nothing more: popper, every executable a
# contract binds (`target: <name>` in contracts/*.yaml), and the benchmarks. scripts/test.sh builds
# only this in the Release tree: the other falsifiers are built and run in the ASan+UBSan tree
# (scripts/test-sanitize.sh), so compiling them at -O3 as well would only cost CI time.
# `popper validate` checks every binding against the build, so a target this misses fails CI.
file(GLOB _popper_contracts CONFIGURE_DEPENDS ${POPPER_ROOT}/contracts/*.yaml)
set(_popper_bound)
foreach(_c IN LISTS _popper_contracts)
  file(STRINGS ${_c} _lines REGEX "^[ \t]*target:[ \t]*[A-Za-z0-9_]+[ \t]*$")
  foreach(_l IN LISTS _lines)
    string(REGEX REPLACE "^[ \t]*target:[ \t]*([A-Za-z0-9_]+)[ \t]*$" "\\1" _t "${_l}")
    list(APPEND _popper_bound ${_t})
  endforeach()
endforeach()
list(REMOVE_DUPLICATES _popper_bound)
add_custom_target(contract_targets)
add_dependencies(contract_targets popper)
foreach(_t IN LISTS _popper_bound)
  if(TARGET ${_t})  # e.g. cuda_bench exists only with POPPER_CUDA
    add_dependencies(contract_targets ${_t})
  endif()
endforeach()
# Every benchmark too, bound or not: they are cheap, and no other tree compiles them.
if(POPPER_BUILD_BENCHMARKS)
  get_property(_popper_benches DIRECTORY ${POPPER_ROOT}/benchmarks PROPERTY BUILDSYSTEM_TARGETS)
  add_dependencies(contract_targets ${_popper_benches})
endif()
