// `popper perplexity --model M --text FILE [--kl-base BASE] [--ctx N] [--chunks K] [--json]`:
// llama-perplexity's perplexity and KL-divergence figures (engine/eval/perplexity.h). Exit 0
// done, 1 the evaluation failed (a model, text or base file rejected), 2 bad usage.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/eval/perplexity.h"
#include "harness/cli/commands.h"
#include "harness/cli/progress_line.h"

namespace popper::cli {
namespace {

using nlohmann::json;

struct PerplexityArgs {
  eval::PerplexityJob job;
  std::string kv_type = "f16";
  std::string backend = "cpu";
  bool json = false;
  bool quiet = false;
};

json estimate(const eval::Estimate& e) { return {{"value", e.value}, {"uncertainty", e.uncertainty}}; }

json to_json(const PerplexityArgs& args, const eval::PerplexityResult& r) {
  json j = {{"model", args.job.model}, {"n_tokens", r.n_tokens},
            {"n_ctx", r.n_ctx},        {"n_chunk", r.n_chunk},
            {"n_scored", r.n_scored},  {"add_bos", r.add_bos},
            {"kv_type", args.kv_type}, {"parse_special", args.job.parse_special},
            {"ppl", estimate(r.ppl)},  {"chunk_ppl", r.chunk_ppl},
            {"seconds", r.seconds},    {"warnings", r.warnings}};
  if (!args.job.text.empty()) j["text"] = args.job.text;
  if (r.kl) {
    const eval::KlSummary& k = *r.kl;
    j["kl"] = {{"base", args.job.kl_base},
               {"count", k.count},
               {"ppl", estimate(k.ppl)},
               {"ppl_base", estimate(k.ppl_base)},
               {"cor_ln_ppl", k.cor_ln_ppl},
               {"ln_ppl_ratio", estimate(k.ln_ppl_ratio)},
               {"ppl_ratio", estimate(k.ppl_ratio)},
               {"ppl_diff", estimate(k.ppl_diff)},
               {"kld",
                {{"mean", k.kld.value},
                 {"uncertainty", k.kld.uncertainty},
                 {"max", k.kld_max},
                 {"p99_9", k.kld_p999},
                 {"p99", k.kld_p99},
                 {"p95", k.kld_p95},
                 {"p90", k.kld_p90},
                 {"median", k.kld_median},
                 {"p10", k.kld_p10},
                 {"p5", k.kld_p05},
                 {"p1", k.kld_p01},
                 {"p0_1", k.kld_p001},
                 {"min", k.kld_min}}},
               {"delta_p",
                {{"mean", k.p_diff.value},
                 {"uncertainty", k.p_diff.uncertainty},
                 {"rms", k.p_diff_rms.value},
                 {"rms_uncertainty", k.p_diff_rms.uncertainty},
                 {"max", k.p_diff_max},
                 {"p99_9", k.p_diff_p999},
                 {"p99", k.p_diff_p99},
                 {"p95", k.p_diff_p95},
                 {"p90", k.p_diff_p90},
                 {"p75", k.p_diff_p75},
                 {"median", k.p_diff_median},
                 {"p25", k.p_diff_p25},
                 {"p10", k.p_diff_p10},
                 {"p5", k.p_diff_p05},
                 {"p1", k.p_diff_p01},
                 {"p0_1", k.p_diff_p001},
                 {"min", k.p_diff_min}}},
               {"same_top_p", estimate(k.same_top)}};
  }
  return j;
}

// The figures as llama-perplexity prints them (its labels, its precision), to read side by side.
void print_text(const PerplexityArgs& args, const eval::PerplexityResult& r) {
  for (const auto& w : r.warnings) std::printf("warning: %s\n", w.c_str());
  std::printf("%s: %lld tokens, %lld chunks of %lld, %lld scored%s, %.2f s\n", args.job.model.c_str(),
              static_cast<long long>(r.n_tokens), static_cast<long long>(r.n_chunk),
              static_cast<long long>(r.n_ctx), static_cast<long long>(r.n_scored),
              r.add_bos ? " (BOS first)" : "", r.seconds);
  if (!r.kl) {
    for (size_t i = 0; i < r.chunk_ppl.size(); ++i) std::printf("[%zu]%.4lf,", i + 1, r.chunk_ppl[i]);
    std::printf("\nFinal estimate: PPL = %.4lf +/- %.5lf\n", r.ppl.value, r.ppl.uncertainty);
    return;
  }
  const eval::KlSummary& k = *r.kl;
  std::printf("====== Perplexity statistics ======\n");
  std::printf("Mean PPL(Q)                   : %10.6lf ± %10.6lf\n", k.ppl.value, k.ppl.uncertainty);
  std::printf("Mean PPL(base)                : %10.6lf ± %10.6lf\n", k.ppl_base.value,
              k.ppl_base.uncertainty);
  std::printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2lf%%\n", 100.0 * k.cor_ln_ppl);
  std::printf("Mean ln(PPL(Q)/PPL(base))     : %10.6lf ± %10.6lf\n", k.ln_ppl_ratio.value,
              k.ln_ppl_ratio.uncertainty);
  std::printf("Mean PPL(Q)/PPL(base)         : %10.6lf ± %10.6lf\n", k.ppl_ratio.value,
              k.ppl_ratio.uncertainty);
  std::printf("Mean PPL(Q)-PPL(base)         : %10.6lf ± %10.6lf\n", k.ppl_diff.value,
              k.ppl_diff.uncertainty);
  std::printf("\n====== KL divergence statistics ======\n");
  std::printf("Mean    KLD: %10.6lf ± %10.6lf\n", k.kld.value, k.kld.uncertainty);
  std::printf("Maximum KLD: %10.6f\n99.9%%   KLD: %10.6f\n99.0%%   KLD: %10.6f\n95.0%%   KLD: %10.6f\n",
              k.kld_max, k.kld_p999, k.kld_p99, k.kld_p95);
  std::printf("90.0%%   KLD: %10.6f\nMedian  KLD: %10.6f\n10.0%%   KLD: %10.6f\n 5.0%%   KLD: %10.6f\n",
              k.kld_p90, k.kld_median, k.kld_p10, k.kld_p05);
  std::printf(" 1.0%%   KLD: %10.6f\n 0.1%%   KLD: %10.6f\nMinimum KLD: %10.6f\n", k.kld_p01, k.kld_p001,
              k.kld_min);
  std::printf("\n====== Token probability statistics ======\n");
  std::printf("Mean    Δp: %6.3lf ± %5.3lf %%\n", 100.0 * k.p_diff.value, 100.0 * k.p_diff.uncertainty);
  std::printf("Maximum Δp: %6.3lf%%\nMedian  Δp: %6.3lf%%\nMinimum Δp: %6.3lf%%\n", 100.0 * k.p_diff_max,
              100.0 * k.p_diff_median, 100.0 * k.p_diff_min);
  std::printf("RMS Δp    : %6.3lf ± %5.3lf %%\n", 100.0 * k.p_diff_rms.value,
              100.0 * k.p_diff_rms.uncertainty);
  std::printf("Same top p: %6.3lf ± %5.3lf %%\n", 100.0 * k.same_top.value, 100.0 * k.same_top.uncertainty);
  if (k.count < 100)
    std::printf("note: %lld scored tokens; llama-perplexity prints these statistics only from 100 on\n",
                static_cast<long long>(k.count));
}

int run_perplexity(PerplexityArgs& args) {
  auto kv = parse_kv_type(args.kv_type);
  auto backend = parse_backend_kind(args.backend);
  if (!kv.ok() || !backend.ok()) {
    std::fprintf(stderr, "popper perplexity: %s\n", (!kv.ok() ? kv.message() : backend.message()).c_str());
    return 2;
  }
  args.job.kv_type = *kv;
  args.job.backend = *backend;
  if (args.job.text.empty() && args.job.kl_base.empty()) {
    std::fprintf(stderr,
                 "popper perplexity: --text is required (unless --kl-base names a base logits file)\n");
    return 2;
  }
  ProgressLine line(!args.quiet);
  auto progress = [&](const eval::PerplexityProgress& p) {
    char buf[200];
    int n = std::snprintf(buf, sizeof buf, "  perplexity: chunk %lld/%lld, PPL %.4f",
                          static_cast<long long>(p.chunks_done), static_cast<long long>(p.n_chunk), p.ppl);
    if (p.kld)
      n += std::snprintf(buf + n, sizeof buf - n, ", KLD %.6f, same top %.2f%%", *p.kld, 100.0 * *p.same_top);
    const double eta =
        p.seconds / static_cast<double>(p.chunks_done) * static_cast<double>(p.n_chunk - p.chunks_done);
    std::snprintf(buf + n, sizeof buf - n, ", %.1f s (ETA %.0f s)", p.seconds, eta);
    line.update(buf, p.chunks_done == p.n_chunk);
  };
  auto r = eval::evaluate_perplexity(args.job, progress);
  if (!r.ok()) {
    std::fprintf(stderr, "popper perplexity: %s\n", r.message().c_str());
    return 1;
  }
  if (args.json) {
    std::printf("%s\n", to_json(args, *r).dump(1).c_str());
  } else {
    print_text(args, *r);
  }
  return 0;
}

void register_perplexity(CLI::App& app) {
  auto args = std::make_shared<PerplexityArgs>();
  CLI::App* cmd = add_command(
      app, "perplexity",
      "Perplexity over a text, and KL divergence from a base model, as llama-perplexity scores them",
      [args] { return run_perplexity(*args); });
  cmd->add_option("-m,--model", args->job.model, "the GGUF model to score")->required();
  cmd->add_option("-f,--text", args->job.text,
                  "text file to score (tokenised whole, special tokens as text)");
  cmd->add_option("--kl-base", args->job.kl_base,
                  "base to compare with: a GGUF (run on the same chunks) or a llama-perplexity "
                  "--kl-divergence-base file");
  cmd->add_option("--save-kl-base", args->job.save_kl_base,
                  "write this model's log-probs as a base file llama-perplexity --kl-divergence reads");
  cmd->add_option("-c,--ctx", args->job.n_ctx, "tokens per chunk (the first half is context)")
      ->capture_default_str();
  cmd->add_option("--chunks", args->job.n_chunks, "chunks to score (-1 = all)")->capture_default_str();
  cmd->add_option("-b,--batch", args->job.n_batch, "tokens per forward call")->capture_default_str();
  cmd->add_option("--kv-type", args->kv_type, "KV cache type: f16 (llama.cpp's default) or f32")
      ->capture_default_str();
  cmd->add_option("--backend", args->backend, "cpu, cuda or auto")->capture_default_str();
  cmd->add_option("-t,--threads", args->job.n_threads, "threads (0 = one per hardware thread)")
      ->capture_default_str();
  cmd->add_flag(
      "--parse-special", args->job.parse_special,
      "control tokens written in the text (<|im_start|>) become their ids (llama-perplexity reads them as "
      "text)");
  cmd->add_flag("--json", args->json, "print the figures as JSON");
  cmd->add_flag("-q,--quiet", args->quiet, "no progress output");
}

}  // namespace
POPPER_REGISTER_COMMAND(22, register_perplexity);
}  // namespace popper::cli
