// `popper synth`: build a deterministic synthetic Qwen3 / Qwen3-MoE GGUF.
#include <cstdio>
#include <string>

#include "engine/core/sha256.h"
#include "engine/synth/synth.h"
#include "harness/cli/commands.h"
#include "harness/cli/progress_line.h"

namespace popper::cli {
namespace {

struct SynthArgs {
  std::string arch = "qwen3moe";
  std::string preset = "tiny";
  std::string quant = "f32";
  int64_t layers = 0;
  uint64_t seed = 0;
  std::string output;
  bool quiet = false;
  bool print_sha = false;
};

int run_synth(const SynthArgs& args) {
  SynthOptions options;
  auto arch = parse_synth_arch(args.arch);
  auto quant = parse_synth_quant(args.quant);
  if (!arch.ok() || !quant.ok()) {
    std::fprintf(stderr, "popper synth: %s\n", (!arch.ok() ? arch.message() : quant.message()).c_str());
    return 2;
  }
  options.arch = arch.value();
  options.quant = quant.value();
  options.preset = args.preset;
  options.layers = args.layers;
  options.seed = args.seed;
  auto shape = synth_shape(options);
  if (!shape.ok()) {
    std::fprintf(stderr, "popper synth: %s\n", shape.message().c_str());
    return 2;
  }

  ProgressLine line(!args.quiet);
  std::function<void(const SynthProgress&)> progress;
  if (!args.quiet) {
    progress = [&](const SynthProgress& p) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "  synth: %zu/%zu tensors, %.2f/%.2f GiB, %.1f s", p.tensors_done,
                    p.tensors_total, p.bytes_done / 1073741824.0, p.bytes_total / 1073741824.0,
                    line.elapsed());
      line.update(buf, p.tensors_done == p.tensors_total);
    };
  }
  Status st = synth_model(options, args.output, progress);
  if (!st.ok()) {
    std::fprintf(stderr, "popper synth: %s\n", st.message().c_str());
    return 1;
  }
  std::printf("wrote %s (%s %s, %lld layers, %s, seed %llu) in %.2f s\n", args.output.c_str(),
              args.arch.c_str(), args.preset.c_str(), static_cast<long long>(shape->n_layer),
              args.quant.c_str(), static_cast<unsigned long long>(args.seed), line.elapsed());
  if (args.print_sha) {
    auto sha = sha256_file(args.output);
    if (!sha.ok()) {
      std::fprintf(stderr, "popper synth: %s\n", sha.message().c_str());
      return 1;
    }
    std::printf("sha256 %s\n", sha.value().c_str());
  }
  return 0;
}

void register_synth(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  CLI::App* cmd = add_command(app, "synth", "Build a deterministic synthetic Qwen3 / Qwen3-MoE GGUF model",
                              [args] { return run_synth(*args); });
  cmd->add_option("--arch", args->arch, "qwen3moe (MoE FFN) or qwen3 (dense FFN)")->capture_default_str();
  cmd->add_option("--preset", args->preset, "tiny, or 30b-a3b (the real Qwen3-30B-A3B dimensions)")
      ->capture_default_str();
  cmd->add_option("--layers", args->layers, "override the preset's layer count (0 = preset)")
      ->capture_default_str();
  cmd->add_option("--quant", args->quant, "f32, q8_0 or q4_k_m (llama.cpp's Q4_K_M recipe)")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "random seed; the output bytes depend only on the arguments")
      ->capture_default_str();
  cmd->add_option("-o,--output", args->output, "output .gguf path (written atomically)")->required();
  cmd->add_flag("-q,--quiet", args->quiet, "no progress output");
  cmd->add_flag("--sha256", args->print_sha, "print the file's sha256 when done");
}

}  // namespace
POPPER_REGISTER_COMMAND(20, register_synth);
}  // namespace popper::cli
