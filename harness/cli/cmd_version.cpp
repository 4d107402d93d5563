// `popper version`: the build's version, commit-independent, and what the CPU offers.
#include <cstdio>

#include "engine/core/cpu_features.h"
#include "harness/cli/commands.h"

namespace popper::cli {
namespace {

void register_version(CLI::App& app) {
  add_command(app, "version", "Print the version, CPU model and SIMD path", [] {
    std::printf("popper %s\ncpu: %s\nfeatures: %s\nsimd path: %s\n", POPPER_VERSION, cpu_model_name().c_str(),
                cpu_features_string().c_str(), simd_level().c_str());
    return 0;
  });
}

}  // namespace
POPPER_REGISTER_COMMAND(99, register_version);
}  // namespace popper::cli
