// Shared by the serve falsifiers: `popper serve` started as a child process on a free loopback
// port (127.0.0.1 only), real HTTP through cpp-httplib's client, and the child always killed.
//
// The popper binary is $POPPER_BIN (set by `popper run`) or <build>/harness/popper next to this
// test's build directory. The MoE model is $POPPER_MODEL (the harness builds tiny-qwen3moe-q4_k_m)
// or the same tiny model synthesised into a temp directory; the dense model is always
// synthesised (tiny qwen3, f32).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/synth/synth.h"

namespace popper::testing {

using json = nlohmann::json;
namespace fs = std::filesystem;

inline std::string build_dir() {
  return fs::read_symlink("/proc/self/exe").parent_path().parent_path().string();
}

inline std::string popper_bin() {
  if (const char* p = std::getenv("POPPER_BIN"); p != nullptr && *p != '\0') return p;
  return build_dir() + "/harness/popper";
}

inline const fs::path& serve_temp_dir() {
  static const fs::path dir = [] {
    auto d = fs::temp_directory_path() / ("popper-serve-test-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

class ServeTempDirCleaner : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(serve_temp_dir(), ec);
  }
};
inline ::testing::Environment* const kServeTempDirCleaner =
    ::testing::AddGlobalTestEnvironment(new ServeTempDirCleaner);

inline std::string synth_tiny(SynthArch arch, SynthQuant quant) {
  const std::string path = (serve_temp_dir() / (std::string("tiny-") + synth_arch_name(arch) + "-" +
                                                synth_quant_name(quant) + ".gguf"))
                               .string();
  if (!fs::exists(path)) {
    SynthOptions o;
    o.arch = arch;
    o.preset = "tiny";
    o.quant = quant;
    Status s = synth_model(o, path);
    if (!s.ok()) ADD_FAILURE() << "synth " << path << ": " << s.message();
  }
  return path;
}

// The qwen3moe model under test: the harness's, or the tiny one built here.
inline std::string moe_model_path() {
  if (const char* p = std::getenv("POPPER_MODEL"); p != nullptr && *p != '\0') return p;
  return synth_tiny(SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M);
}
inline std::string dense_model_path() { return synth_tiny(SynthArch::kQwen3, SynthQuant::kF32); }

inline std::string read_text(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A child process with stdout and stderr in one log file.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const fs::path& log) : log_(log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~ChildProcess() { kill_now(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() {
    if (pid_ <= 0 || exited_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = status;
      return false;
    }
    return true;
  }
  // Exit status once it ends within `timeout`, or nullopt (still running).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (running()) {
      if (std::chrono::steady_clock::now() > end) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (pid_ <= 0) return std::nullopt;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  void signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }
  void kill_now() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
      exited_ = true;
    }
  }
  std::string log() const { return read_text(log_); }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

// `popper serve` on 127.0.0.1 with a port chosen by the kernel (--port 0 --port-file).
class ServerProcess {
 public:
  explicit ServerProcess(const std::string& model, std::vector<std::string> extra = {}) {
    static int counter = 0;
    const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(++counter);
    port_file_ = serve_temp_dir() / ("port-" + tag);
    log_file_ = serve_temp_dir() / ("serve-" + tag + ".log");
    std::vector<std::string> argv = {popper_bin(), "serve",  "--model", model,         "--host",
                                     "127.0.0.1",  "--port", "0",       "--port-file", port_file_.string(),
                                     "--threads",  "2"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    child_ = std::make_unique<ChildProcess>(argv, log_file_);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < end && child_->running()) {
      if (fs::exists(port_file_)) {
        port_ = std::atoi(read_text(port_file_).c_str());
        if (port_ > 0) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return child_->log(); }
  ChildProcess& process() { return *child_; }
  std::unique_ptr<httplib::Client> client(int read_timeout_s = 60) const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_read_timeout(read_timeout_s, 0);
    c->set_connection_timeout(10, 0);
    return c;
  }
  // Resident memory of the server in KiB (from /proc).
  long rss_kib() const {
    std::ifstream f("/proc/" + std::to_string(child_->pid()) + "/status");
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    }
    return -1;
  }

 private:
  fs::path port_file_, log_file_;
  std::unique_ptr<ChildProcess> child_;
  int port_ = 0;
};

inline httplib::Result post_json(httplib::Client& c, const std::string& path, const json& body) {
  return c.Post(path.c_str(), body.dump(), "application/json");
}

// Prometheus text -> {"name{labels}": value}.
inline std::map<std::string, double> parse_metrics(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    out[line.substr(0, sp)] = std::atof(line.c_str() + sp + 1);
  }
  return out;
}

inline std::map<std::string, double> get_metrics(httplib::Client& c) {
  auto r = c.Get("/metrics");
  if (!r || r->status != 200) {
    ADD_FAILURE() << "GET /metrics failed";
    return {};
  }
  return parse_metrics(r->body);
}

inline json chat_body(const std::string& user, int max_tokens) {
  return json{{"messages", json::array({json{{"role", "user"}, {"content", user}}})},
              {"max_tokens", max_tokens},
              {"temperature", 0}};
}

// SSE over POST: every `data:` payload in order, and the time each arrived.
struct SseStream {
  int status = 0;
  std::vector<std::string> events;
  std::vector<std::chrono::steady_clock::time_point> times;
};
// Stops reading (the client goes away) after stop_after_events events, or once *cancel is set.
inline SseStream post_sse(const std::string& host, int port, const std::string& path, const json& body,
                          int stop_after_events = -1, const std::atomic<bool>* cancel = nullptr) {
  httplib::Client c(host, port);
  c.set_read_timeout(60, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.set_header("Content-Type", "application/json");
  req.body = body.dump();
  SseStream s;
  std::string buffer;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      std::string ev = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (ev.rfind("data: ", 0) == 0) {
        s.events.push_back(ev.substr(6));
        s.times.push_back(std::chrono::steady_clock::now());
      }
      if (stop_after_events > 0 && int(s.events.size()) >= stop_after_events) return false;
      if (cancel != nullptr && cancel->load()) return false;
    }
    return true;
  };
  auto r = c.send(req);
  s.status = r ? r->status : -1;
  return s;
}

}  // namespace popper::testing
