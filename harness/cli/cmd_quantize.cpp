// `popper quantize IN OUT --type q8_0|q4_k_m|q5_k_m|q6_k`: llama-quantize's job on float
// weights (engine/convert/quantize.h). Exit 0 written, 1 the input was rejected or the write
// failed (no file appears at OUT), 2 bad usage, 130 interrupted (no file appears at OUT).
#include <csignal>
#include <cstdio>
#include <map>
#include <string>

#include "engine/convert/quantize.h"
#include "engine/core/sha256.h"
#include "harness/cli/commands.h"
#include "harness/cli/progress_line.h"

namespace popper::cli {
namespace {

struct QuantizeArgs {
  std::string input;
  std::string output;
  std::string type;
  int threads = 0;
  bool dry_run = false;
  bool list = false;
  bool quiet = false;
  bool print_sha = false;
};

std::atomic<bool> g_cancel{false};
extern "C" void on_signal(int) { g_cancel.store(true); }

// "24 q4_K, 9 q6_K, 25 f32 (kept)"
std::string type_counts(const QuantizePlan& plan) {
  std::map<std::string, int> quantised, kept;
  for (const auto& t : plan.tensors) ++(t.quantised ? quantised : kept)[std::string(ggml_type_name(t.to))];
  std::string s;
  for (const auto& [name, n] : quantised) s += (s.empty() ? "" : ", ") + std::to_string(n) + " " + name;
  for (const auto& [name, n] : kept)
    s += (s.empty() ? "" : ", ") + std::to_string(n) + " " + name + " (kept)";
  return s;
}

void print_tensor_list(const QuantizePlan& plan) {
  for (const auto& t : plan.tensors) {
    std::string dims;
    for (size_t d = 0; d < t.dims.size(); ++d) dims += (d ? ", " : "") + std::to_string(t.dims[d]);
    std::printf("  %-36s [%-18s] %-5s -> %-5s %10.3f MiB%s\n", t.name.c_str(), dims.c_str(),
                std::string(ggml_type_name(t.from)).c_str(), std::string(ggml_type_name(t.to)).c_str(),
                t.bytes_out / 1048576.0, t.quantised ? "" : "  (copied)");
  }
}

void print_summary(const char* verb, const QuantizeArgs& args, const QuantizePlan& plan, double seconds) {
  const double bpw_in = 8.0 * static_cast<double>(plan.bytes_in) / static_cast<double>(plan.n_elements);
  const double bpw_out = 8.0 * static_cast<double>(plan.bytes_out) / static_cast<double>(plan.n_elements);
  std::printf("%s %s (%s, %s): %zu tensors: %s; %.2f MiB (%.2f BPW) -> %.2f MiB (%.2f BPW)", verb,
              args.output.c_str(), plan.arch.c_str(), args.type.c_str(), plan.tensors.size(),
              type_counts(plan).c_str(), plan.bytes_in / 1048576.0, bpw_in, plan.bytes_out / 1048576.0,
              bpw_out);
  if (seconds >= 0) std::printf(" in %.2f s", seconds);
  std::printf("\n");
}

int run_quantize(const QuantizeArgs& args) {
  auto ftype = parse_quant_ftype(args.type);
  if (!ftype.ok() || *ftype == QuantFtype::kAllF32) {
    std::fprintf(stderr, "popper quantize: --type %s: expected q8_0, q4_k_m, q5_k_m or q6_k\n",
                 args.type.c_str());
    return 2;
  }
  if (args.dry_run) {
    auto in = GgufFile::open(args.input);
    if (!in.ok()) {
      std::fprintf(stderr, "popper quantize: %s\n", in.message().c_str());
      return 1;
    }
    auto plan = plan_quantize(**in, *ftype);
    if (!plan.ok()) {
      std::fprintf(stderr, "popper quantize: %s\n", plan.message().c_str());
      return 1;
    }
    print_tensor_list(*plan);
    print_summary("would write", args, *plan, -1);
    return 0;
  }

  // Ctrl-C / SIGTERM stop at the next rows; the writer then removes its temp file.
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  QuantizeOptions options;
  options.ftype = *ftype;
  options.n_threads = args.threads;
  options.cancel = &g_cancel;
  ProgressLine line(!args.quiet);
  auto progress = [&](const QuantizeProgress& p) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "  quantize: %zu/%zu tensors, %.1f/%.1f MiB written, %.1f s",
                  p.tensors_done, p.tensors_total, p.bytes_done / 1048576.0, p.bytes_total / 1048576.0,
                  line.elapsed());
    line.update(buf, p.tensors_done == p.tensors_total);
  };
  auto plan = quantize_model(args.input, args.output, options, progress);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (!plan.ok()) {
    std::fprintf(stderr, "popper quantize: %s\n", plan.message().c_str());
    return g_cancel.load() ? 130 : 1;
  }
  if (args.list) print_tensor_list(*plan);
  print_summary("wrote", args, *plan, line.elapsed());
  if (args.print_sha) {
    auto sha = sha256_file(args.output);
    if (!sha.ok()) {
      std::fprintf(stderr, "popper quantize: %s\n", sha.message().c_str());
      return 1;
    }
    std::printf("sha256 %s\n", sha->c_str());
  }
  return 0;
}

void register_quantize(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = add_command(
      app, "quantize", "Quantise a float (F32/F16/BF16) Qwen3 / Qwen3-MoE GGUF with llama.cpp's recipes",
      [args] { return run_quantize(*args); });
  cmd->add_option("input", args->input, "input .gguf (F32, F16 or BF16 weights)")->required();
  cmd->add_option("output", args->output, "output .gguf (written atomically)")->required();
  cmd->add_option("--type", args->type, "q8_0, q4_k_m, q5_k_m or q6_k (llama.cpp's file types)")->required();
  cmd->add_option("-t,--threads", args->threads, "threads (0 = one per hardware thread)")
      ->capture_default_str();
  cmd->add_flag("--dry-run", args->dry_run, "print each tensor's type and the sizes; write nothing");
  cmd->add_flag("--list", args->list, "print each tensor's type when done");
  cmd->add_flag("-q,--quiet", args->quiet, "no progress output");
  cmd->add_flag("--sha256", args->print_sha, "print the output's sha256 when done");
}

}  // namespace
POPPER_REGISTER_COMMAND(21, register_quantize);
}  // namespace popper::cli
