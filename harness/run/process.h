// Child processes for falsifiers: each runs in its own process group with stdout/stderr going
// to files, under a wall-clock timeout. A crash, a hang or garbage output in the child never
// takes the harness down: the result says what happened and the caller turns it into a verdict.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/core/result.h"

namespace popper::harness {

struct SpawnOptions {
  std::vector<std::string> argv;                 // argv[0] is the executable path
  std::map<std::string, std::string> env_extra;  // added to (or replacing in) our environment
  std::string cwd;                               // empty: inherit
  std::string stdout_path;                       // empty: /dev/null
  std::string stderr_path;                       // empty: /dev/null
  double timeout_s = 300;
  // Called about every 100 ms while the child runs, with the elapsed seconds (live progress).
  std::function<void(double)> on_tick;
};

struct ProcessResult {
  bool started = false;
  std::string start_error;   // why it could not start (exec failed, ...)
  int exit_code = -1;        // valid when exited normally
  int signal = 0;            // the signal that ended it, 0 if none
  bool timed_out = false;    // we killed it after timeout_s
  bool interrupted = false;  // we killed it because the harness got SIGINT/SIGTERM
  double elapsed_s = 0;

  bool exited_ok() const { return started && !timed_out && signal == 0 && exit_code == 0; }
  // "exit code 1", "killed by signal 11 (SIGSEGV)", "timed out after 5.0 s (killed)", ...
  std::string describe() const;
};

// Runs the child to completion (or kills its whole process group at the timeout: SIGTERM, then
// SIGKILL 2 s later). Any processes the child left behind in its group are killed too.
ProcessResult run_process(const SpawnOptions& opts);

// Children run in their own process group, so a Ctrl-C at the terminal reaches only the
// harness. After this, SIGINT/SIGTERM set a flag instead of killing the harness; run_process
// then kills the running child's group and returns, and the caller stops.
void install_interrupt_handler();
bool interrupted();

// Runs a short command and returns its stdout (stderr discarded); an error when it cannot start,
// exits non-zero or times out.
Result<std::string> capture_output(const std::vector<std::string>& argv, const std::string& cwd = "",
                                   double timeout_s = 30);

// The last `max_bytes` of a file (whole lines where possible), for log excerpts.
std::string file_tail(const std::string& path, size_t max_bytes = 4096);

// "SIGSEGV" for 11, "signal 42" for unknown ones.
std::string signal_name(int sig);

}  // namespace popper::harness
