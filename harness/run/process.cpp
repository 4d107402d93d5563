#include "harness/run/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/core/atomic_file.h"

extern char** environ;

namespace popper::harness {
namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_interrupted = 0;

void on_interrupt(int) { g_interrupted = 1; }

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Our environment with `extra` laid over it, as the "K=V" strings execve wants.
std::vector<std::string> merged_env(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos && extra.count(kv.substr(0, eq))) continue;
    out.push_back(std::move(kv));
  }
  for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_array(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// What a child that could not exec writes back to the harness (over the report pipe).
struct ChildFailure {
  int error;
  char step[28];
};

[[noreturn]] void child_fail(int fd, const char* step) {
  ChildFailure f{};
  f.error = errno;
  std::strncpy(f.step, step, sizeof f.step - 1);
  ssize_t ignored = ::write(fd, &f, sizeof f);
  (void)ignored;
  ::_exit(127);
}

// Opens `path` onto descriptor `target` (the child's stdin/stdout/stderr).
bool open_onto(const char* path, int flags, int target) {
  int fd = ::open(path, flags, 0644);
  if (fd < 0) return false;
  if (fd != target) {
    if (::dup2(fd, target) < 0) return false;
    ::close(fd);
  }
  return true;
}

// The forked child, up to execve: async-signal-safe calls only (the harness is multi-threaded).
[[noreturn]] void exec_child(char* const* argv, char* const* envp, const char* out_path, const char* err_path,
                             const char* cwd, pid_t parent, int report_fd) {
  ::setpgid(0, 0);
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(report_fd, "prctl(PR_SET_PDEATHSIG)");
  if (::getppid() != parent) ::_exit(127);  // the harness died before the prctl took hold
  // Default signal handlers and an empty mask, whatever the harness has set up.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // SIGKILL/SIGSTOP refuse: fine
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (!open_onto("/dev/null", O_RDONLY, 0)) child_fail(report_fd, "open /dev/null");
  if (!open_onto(out_path, O_WRONLY | O_CREAT | O_TRUNC, 1)) child_fail(report_fd, "open stdout file");
  if (!open_onto(err_path, O_WRONLY | O_CREAT | O_TRUNC, 2)) child_fail(report_fd, "open stderr file");
  if (cwd != nullptr && ::chdir(cwd) != 0) child_fail(report_fd, "chdir");
  ::execve(argv[0], argv, envp);
  child_fail(report_fd, "exec");
}

}  // namespace

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_interrupted != 0; }

std::string signal_name(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGKILL:
      return "SIGKILL";
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGPIPE:
      return "SIGPIPE";
    default:
      return "signal " + std::to_string(sig);
  }
}

std::string ProcessResult::describe() const {
  if (!started) return "could not start: " + start_error;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f s", elapsed_s);
  if (timed_out) return std::string("timed out after ") + buf + " (process group killed)";
  if (interrupted) return std::string("interrupted after ") + buf + " (process group killed)";
  if (signal != 0) return "killed by signal " + std::to_string(signal) + " (" + signal_name(signal) + ")";
  return "exit code " + std::to_string(exit_code);
}

ProcessResult run_process(const SpawnOptions& opts) {
  ProcessResult r;
  if (opts.argv.empty()) {
    r.start_error = "empty command";
    return r;
  }
  std::vector<std::string> argv = opts.argv;
  std::vector<std::string> env = merged_env(opts.env_extra);
  auto c_argv = c_array(argv);
  auto c_env = c_array(env);

  const std::string out_path = opts.stdout_path.empty() ? "/dev/null" : opts.stdout_path;
  const std::string err_path = opts.stderr_path.empty() ? "/dev/null" : opts.stderr_path;
  const char* cwd = opts.cwd.empty() ? nullptr : opts.cwd.c_str();

  // fork + exec rather than posix_spawn, for one thing posix_spawn cannot ask for: the child's
  // PR_SET_PDEATHSIG, so a harness killed outright (SIGKILL, the OOM killer) takes its running
  // falsifier with it instead of leaving it to run on. The death signal fires when the thread
  // that forked exits; that is this thread, which does not return before the child is reaped, so
  // in practice it fires only when the whole harness dies. Exec failures come back over a
  // close-on-exec pipe. Between fork and exec the child makes only async-signal-safe calls.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    r.start_error = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  const pid_t parent = ::getpid();
  auto t0 = Clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    r.start_error = std::string("fork: ") + std::strerror(errno);
    ::close(report[0]);
    ::close(report[1]);
    return r;
  }
  if (pid == 0) exec_child(c_argv.data(), c_env.data(), out_path.c_str(), err_path.c_str(), cwd, parent, report[1]);
  ::close(report[1]);
  // Own process group (so a timeout kills everything the child started); set on both sides so
  // a kill(-pid) right after this never misses the group.
  ::setpgid(pid, pid);
  ChildFailure failure{};
  ssize_t got;
  do {
    got = ::read(report[0], &failure, sizeof failure);
  } while (got < 0 && errno == EINTR);
  ::close(report[0]);
  if (got == static_cast<ssize_t>(sizeof failure)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.start_error = opts.argv[0] + ": " + failure.step + ": " + std::strerror(failure.error);
    return r;
  }
  r.started = true;

  bool term_sent = false;
  Clock::time_point term_time;
  int status = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      r.start_error = std::string("waitpid: ") + std::strerror(errno);
      break;
    }
    double el = seconds_since(t0);
    if (!term_sent && (el > opts.timeout_s || g_interrupted)) {
      if (g_interrupted)
        r.interrupted = true;
      else
        r.timed_out = true;
      ::kill(-pid, SIGTERM);
      term_sent = true;
      term_time = Clock::now();
    } else if (term_sent && seconds_since(term_time) > 2.0) {
      ::kill(-pid, SIGKILL);
    }
    if (opts.on_tick) opts.on_tick(el);
    std::this_thread::sleep_for(std::chrono::milliseconds(term_sent ? 20 : 100));
  }
  r.elapsed_s = seconds_since(t0);
  // Whatever the child left running in its group goes too (a server a test forgot to stop).
  ::kill(-pid, SIGKILL);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

Result<std::string> capture_output(const std::vector<std::string>& argv, const std::string& cwd,
                                   double timeout_s) {
  char tmpl[] = "/tmp/popper-capture-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0) return make_error("cannot create a temp file: ", std::strerror(errno));
  ::close(fd);
  SpawnOptions o;
  o.argv = argv;
  o.cwd = cwd;
  o.stdout_path = tmpl;
  o.timeout_s = timeout_s;
  ProcessResult r = run_process(o);
  auto text = read_file(tmpl);
  ::unlink(tmpl);
  std::string cmd = argv.empty() ? "" : argv[0];
  for (size_t i = 1; i < argv.size() && i < 3; ++i) cmd += " " + argv[i];
  if (!r.exited_ok()) return make_error(cmd, ": ", r.describe());
  if (!text.ok()) return text.error();
  return std::move(*text);
}

std::string file_tail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  std::streamoff size = in.tellg();
  std::streamoff start = size > static_cast<std::streamoff>(max_bytes) ? size - max_bytes : 0;
  in.seekg(start);
  std::string s(static_cast<size_t>(size - start), '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  if (start > 0) {
    auto nl = s.find('\n');
    if (nl != std::string::npos && nl + 1 < s.size()) s = s.substr(nl + 1);
  }
  // Evidence is JSON: keep it valid UTF-8 by replacing stray bytes (garbage output, cut
  // multi-byte characters) with '?'.
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 0x2;
    if (ok && len == 1 && c < 0x20 && c != '\n' && c != '\t' && c != '\r') ok = false;
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out.push_back('?');
      ++i;
    }
  }
  return out;
}

}  // namespace popper::harness
