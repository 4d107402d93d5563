// Per-token scores and their summary statistics, defined exactly as llama.cpp's llama-perplexity
// defines them (tools/perplexity/perplexity.cpp), float and double where it uses them, so the
// figures stand beside its own on the same logits:
//  - perplexity: nll = -log softmax(logits)[next], PPL = exp(mean nll), uncertainty
//    PPL * sqrt(var(nll) / (n - 1));
//  - a base model's distribution is stored as llama.cpp stores it for --kl-divergence: per
//    token the log-probs within 16 nats of the top, coded in 16 bits (BaseLogProbs);
//  - against it: KL(base || model) per token (the base's terms below e^-16 dropped), whether
//    the top token is the same, Δp = p_model(next) - p_base(next), and ln(PPL / PPL_base) with
//    the covariance of the two nll series in its uncertainty.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace popper::eval {

// uint16 slots of one stored token: 2 floats (scale, min log-prob) then n_vocab codes, the
// count rounded up to even (llama.cpp's nv = 2 * ((n_vocab + 1) / 2) + 4).
inline int64_t base_record_u16s(int64_t n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }

// Codes one token's log-probs into `record` (base_record_u16s(n_vocab) slots): log p_i =
// scale * code_i + min_log_prob, with min_log_prob 16 nats under the top at most (llama.cpp's
// log_softmax with a log_prob argument). Returns that token's nll for `next`.
double encode_base_record(std::span<const float> logits, int32_t next, uint16_t* record);

// Running sums of llama.cpp's perplexity mode.
struct PplSums {
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  void add(std::span<const float> logits, int32_t next);
  void add_nll(double v);          // an nll computed elsewhere (encode_base_record's)
  double ppl() const;              // exp(mean nll)
  double ppl_uncertainty() const;  // llama.cpp's "+/-"; 0 when the variance is not positive
};

// Running sums of llama.cpp's --kl-divergence mode (kl_divergence_result), plus the per-token
// KL and Δp values its percentiles are taken over.
struct KlSums {
  double sum_nll = 0, sum_nll2 = 0;
  double sum_nll_base = 0, sum_nll_base2 = 0, sum_nll_nll_base = 0;
  double sum_kld = 0, sum_kld2 = 0;
  double sum_p_diff = 0, sum_p_diff2 = 0, sum_p_diff4 = 0;
  float max_p_diff = 0;
  int64_t n_same_top = 0;
  int64_t count = 0;
  std::vector<float> kld_values;
  std::vector<float> p_diff_values;
  // One token: the model's logits, the base's stored record, the next token.
  void add(std::span<const float> logits, const uint16_t* base_record, int32_t next);
};

struct Estimate {
  double value = 0;
  double uncertainty = 0;  // one standard error, llama.cpp's "±"
};

// The figures llama-perplexity --kl-divergence prints, from its formulas.
struct KlSummary {
  int64_t count = 0;
  Estimate ppl, ppl_base;
  double cor_ln_ppl = 0;  // Cor(ln PPL(Q), ln PPL(base))
  Estimate ln_ppl_ratio, ppl_ratio, ppl_diff;
  Estimate kld;
  // Maximum, 99.9, 99, 95, 90 %, median, 10, 5, 1, 0.1 %, minimum (llama.cpp's interpolation).
  float kld_max = 0, kld_p999 = 0, kld_p99 = 0, kld_p95 = 0, kld_p90 = 0, kld_median = 0, kld_p10 = 0,
        kld_p05 = 0, kld_p01 = 0, kld_p001 = 0, kld_min = 0;
  Estimate p_diff;      // mean Δp (fraction, not %)
  Estimate p_diff_rms;  // RMS Δp
  float p_diff_max = 0, p_diff_p999 = 0, p_diff_p99 = 0, p_diff_p95 = 0, p_diff_p90 = 0, p_diff_p75 = 0,
        p_diff_median = 0, p_diff_p25 = 0, p_diff_p10 = 0, p_diff_p05 = 0, p_diff_p01 = 0, p_diff_p001 = 0,
        p_diff_min = 0;
  Estimate same_top;  // fraction of tokens whose top-1 equals the base's
};

// llama.cpp prints the final statistics only from 100 scored tokens on; they are computed here
// for any count >= 2 and the caller decides.
KlSummary summarise(const KlSums& sums);

// llama.cpp's mean_and_uncertainty: mean of sum/count, uncertainty sqrt(var / (count - 1)) when
// count > 10 and the variance is positive, else 0.
Estimate mean_and_uncertainty(double sum, double sum2, int64_t count);

// llama.cpp's percentile: linear interpolation between the sorted values around
// fraction * (n - 1). `sorted` must be sorted and non-empty.
float percentile(std::span<const float> sorted, float fraction);

}  // namespace popper::eval
