// popper: the command line. Subcommands register themselves (commands.h); this file only
// parses, runs the chosen one and turns its result into an exit code.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "engine/core/faults.h"
#include "harness/cli/commands.h"

#ifndef POPPER_VERSION
#define POPPER_VERSION "dev"
#endif

namespace popper::cli {
namespace {

struct Registered {
  CLI::App* command;
  CommandBody body;
};

// `popper --list-faults`: every fault of this build, where it sits and what it breaks.
void print_faults() {
  std::printf(
      "%zu faults (POPPER_FAULTS=name[,name]; %s)\n", kFaultCount,
      fault_sites_compiled() ? "sites compiled in" : "this build has no fault sites: POPPER_FAULT_SITES=OFF");
  for (size_t i = 0; i < kFaultCount; ++i) {
    const FaultInfo& f = fault_table()[i];
    std::printf("  %-28s %s\n  %-28s   at %s\n", f.name, f.effect, "", f.site);
  }
}

std::vector<Registered>& bodies() {
  static std::vector<Registered> v;
  return v;
}

std::vector<std::pair<int, Registrar>>& registrars() {
  static std::vector<std::pair<int, Registrar>> v;
  return v;
}

}  // namespace

CLI::App* add_command(CLI::App& app, const char* name, const char* description, CommandBody body) {
  CLI::App* sub = app.add_subcommand(name, description);
  bodies().push_back({sub, std::move(body)});
  return sub;
}

bool register_command(int order, Registrar registrar) {
  registrars().emplace_back(order, registrar);
  return true;
}

}  // namespace popper::cli

int main(int argc, char** argv) {
  using namespace popper::cli;
  CLI::App app{"Popper: contract-driven falsification harness with an embedded Qwen3 / Qwen3-MoE engine"};
  app.set_version_flag("--version", POPPER_VERSION);
  bool list_faults = false;
  app.add_flag(
      "--list-faults", list_faults,
      "List the engine's named faults (POPPER_FAULTS=name[,name]; a contract item's control: names them)");
  app.require_subcommand(0, 1);
  auto& regs = registrars();
  std::stable_sort(regs.begin(), regs.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [order, registrar] : regs) registrar(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (list_faults) {
    print_faults();
    return 0;
  }
  for (auto& r : bodies()) {
    if (r.command->parsed()) return r.body();
  }
  std::fprintf(stderr, "popper: a subcommand is required\n%s", app.help().c_str());
  return 2;
}
