// Each `popper` subcommand lives in its own cmd_<name>.cpp and registers itself with
// POPPER_REGISTER_COMMAND, so adding a command touches no central file.
//
// A command's body returns the process exit code: 0 ok, 1 the check failed (a falsified
// claim, a rejected file), 2 bad input or usage.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace popper::cli {

using CommandBody = std::function<int()>;

// Adds a subcommand whose body runs after parsing; returns it for flag setup.
CLI::App* add_command(CLI::App& app, const char* name, const char* description, CommandBody body);

// A registrar adds one subcommand (and its flags) to the app.
using Registrar = void (*)(CLI::App& app);
bool register_command(int order, Registrar registrar);

}  // namespace popper::cli

// In a cmd_*.cpp: POPPER_REGISTER_COMMAND(10, register_inspect); lower order lists first in --help.
#define POPPER_REGISTER_COMMAND(order, fn) \
  static const bool popper_registered_##fn = ::popper::cli::register_command(order, fn)
