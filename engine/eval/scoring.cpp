#include "engine/eval/scoring.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/core/result.h"
#include "engine/quant/k_quant_common.h"

namespace popper::eval {
namespace {

// The base record's header: two floats in the first four uint16 slots.
struct RecordHeader {
  float scale;
  float min_log_prob;
};

RecordHeader read_header(const uint16_t* record) {
  RecordHeader h;
  std::memcpy(&h, record, sizeof h);
  return h;
}

}  // namespace

double encode_base_record(std::span<const float> logits, int32_t next, uint16_t* record) {
  const int64_t n_vocab = static_cast<int64_t>(logits.size());
  float max_logit = logits[0];
  float min_logit = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) {
    max_logit = std::max(max_logit, logits[i]);
    min_logit = std::min(min_logit, logits[i]);
  }
  min_logit = std::max(min_logit, max_logit - 16);
  double sum_exp = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum_exp += std::exp(logits[i] - max_logit);
  const float log_sum_exp = static_cast<float>(std::log(sum_exp));
  const float min_log_prob = min_logit - max_logit - log_sum_exp;
  const float scale = (max_logit - min_logit) / 65535.f;
  const RecordHeader h{scale, min_log_prob};
  std::memcpy(record, &h, sizeof h);
  uint16_t* codes = record + 4;
  if (scale != 0) {
    const float inv_scale = 1 / scale;
    for (int64_t i = 0; i < n_vocab; ++i) {
      codes[i] = logits[i] > min_logit
                     ? static_cast<uint16_t>(quant::nearest_int(inv_scale * (logits[i] - min_logit)))
                     : uint16_t{0};
    }
  } else {
    std::memset(codes, 0, static_cast<size_t>(n_vocab) * sizeof(uint16_t));
  }
  if (base_record_u16s(n_vocab) > n_vocab + 4)
    codes[n_vocab] = 0;  // the padding slot, for reproducible files
  return max_logit + log_sum_exp - logits[next];
}

void PplSums::add(std::span<const float> logits, int32_t next) {
  const int64_t n_vocab = static_cast<int64_t>(logits.size());
  float max_logit = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum_exp = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum_exp += std::exp(logits[i] - max_logit);
  const double log_softmax = logits[next] - max_logit - std::log(sum_exp);
  add_nll(-log_softmax);
}

void PplSums::add_nll(double v) {
  nll += v;
  nll2 += v * v;
  ++count;
}

double PplSums::ppl() const { return std::exp(nll / static_cast<double>(count)); }

double PplSums::ppl_uncertainty() const {
  const double mean = nll / static_cast<double>(count);
  const double var = nll2 / static_cast<double>(count) - mean * mean;
  if (!(var > 0) || count < 2) return 0;
  return std::sqrt(var / static_cast<double>(count - 1)) * std::exp(mean);
}

void KlSums::add(std::span<const float> logits, const uint16_t* base_record, int32_t next) {
  const int64_t n_vocab = static_cast<int64_t>(logits.size());
  float max_logit = logits[0];
  int64_t imax = 0;
  for (int64_t i = 1; i < n_vocab; ++i) {
    if (logits[i] > max_logit) {
      max_logit = logits[i];
      imax = i;
    }
  }
  double sum_exp = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum_exp += std::exp(logits[i] - max_logit);
  const float log_sum_exp = static_cast<float>(std::log(sum_exp));
  const RecordHeader h = read_header(base_record);
  const uint16_t* codes = base_record + 4;

  const float nll = max_logit + log_sum_exp - logits[next];
  sum_nll += nll;
  sum_nll2 += nll * nll;
  const float nll_base = -(h.scale * codes[next] + h.min_log_prob);
  sum_nll_base += nll_base;
  sum_nll_base2 += nll_base * nll_base;
  sum_nll_nll_base += nll * nll_base;

  max_logit += log_sum_exp;
  double sum = 0;
  int64_t imax_base = -1;
  float p_log_base_max = 0;
  for (int64_t i = 0; i < n_vocab; ++i) {
    const float p_log_base = h.scale * codes[i] + h.min_log_prob;
    if (i == 0 || p_log_base > p_log_base_max) {
      p_log_base_max = p_log_base;
      imax_base = i;
    }
    if (p_log_base > -16.f) {
      const float p_base = std::exp(p_log_base);
      sum += p_base * (p_log_base - logits[i] + max_logit);
    }
  }
  sum_kld += sum;
  sum_kld2 += sum * sum;
  ++count;
  if (imax == imax_base) ++n_same_top;

  const float p_base = std::exp(-nll_base);
  const float p = std::exp(-nll);
  const float p_diff = p - p_base;
  sum_p_diff += p_diff;
  const double p_diff2 = p_diff * p_diff;
  sum_p_diff2 += p_diff2;
  sum_p_diff4 += p_diff2 * p_diff2;
  max_p_diff = std::max(max_p_diff, std::fabs(p_diff));
  kld_values.push_back(static_cast<float>(sum));
  p_diff_values.push_back(p_diff);
}

Estimate mean_and_uncertainty(double sum, double sum2, int64_t count) {
  if (count < 1) return {};
  const double f = sum / static_cast<double>(count);
  double df = sum2 / static_cast<double>(count) - f * f;
  df = df > 0 && count > 10 ? std::sqrt(df / static_cast<double>(count - 1)) : 0.;
  return {f, df};
}

float percentile(std::span<const float> sorted, float fraction) {
  POPPER_CHECK(!sorted.empty(), "percentile of no values");
  if (fraction <= 0) return sorted.front();
  if (fraction >= 1) return sorted.back();
  float p = fraction * static_cast<float>(sorted.size() - 1);
  const size_t ip = static_cast<size_t>(p);
  p -= static_cast<float>(ip);
  return (1 - p) * sorted[ip] + p * sorted[std::min(ip + 1, sorted.size() - 1)];
}

KlSummary summarise(const KlSums& k) {
  KlSummary s;
  s.count = k.count;
  if (k.count < 2) return s;
  auto covariance = [](double suma, double sumb, double sumab, int64_t count) {
    if (count < 10) return 0.0;
    const double n = static_cast<double>(count);
    return (sumab / n - (suma / n) * (sumb / n)) / (n - 1);
  };
  const Estimate log_ppl = mean_and_uncertainty(k.sum_nll, k.sum_nll2, k.count);
  const Estimate log_ppl_base = mean_and_uncertainty(k.sum_nll_base, k.sum_nll_base2, k.count);
  s.ppl = {std::exp(log_ppl.value), std::exp(log_ppl.value) * log_ppl.uncertainty};
  s.ppl_base = {std::exp(log_ppl_base.value), std::exp(log_ppl_base.value) * log_ppl_base.uncertainty};
  const double cov = covariance(k.sum_nll, k.sum_nll_base, k.sum_nll_nll_base, k.count);
  const double unc_product = log_ppl.uncertainty * log_ppl_base.uncertainty;
  s.cor_ln_ppl = unc_product > 0 ? cov / unc_product : 0;
  const double ratio_unc2 = log_ppl.uncertainty * log_ppl.uncertainty +
                            log_ppl_base.uncertainty * log_ppl_base.uncertainty - 2.0 * cov;
  s.ln_ppl_ratio = {log_ppl.value - log_ppl_base.value, std::sqrt(std::max(0.0, ratio_unc2))};
  s.ppl_ratio = {std::exp(s.ln_ppl_ratio.value), std::exp(s.ln_ppl_ratio.value) * s.ln_ppl_ratio.uncertainty};
  const double ppl_cov = s.ppl.value * s.ppl_base.value * cov;
  const double diff_unc2 =
      s.ppl.uncertainty * s.ppl.uncertainty + s.ppl_base.uncertainty * s.ppl_base.uncertainty - 2.0 * ppl_cov;
  s.ppl_diff = {s.ppl.value - s.ppl_base.value, std::sqrt(std::max(0.0, diff_unc2))};

  s.kld = mean_and_uncertainty(k.sum_kld, k.sum_kld2, k.count);
  std::vector<float> kld = k.kld_values;
  std::sort(kld.begin(), kld.end());
  auto median = [](const std::vector<float>& v) {
    return v.size() % 2 == 0 ? 0.5f * (v[v.size() / 2] + v[v.size() / 2 - 1]) : v[v.size() / 2];
  };
  s.kld_max = kld.back();
  s.kld_p999 = percentile(kld, 0.999f);
  s.kld_p99 = percentile(kld, 0.990f);
  s.kld_p95 = percentile(kld, 0.950f);
  s.kld_p90 = percentile(kld, 0.900f);
  s.kld_median = median(kld);
  s.kld_p10 = percentile(kld, 0.100f);
  s.kld_p05 = percentile(kld, 0.050f);
  s.kld_p01 = percentile(kld, 0.010f);
  s.kld_p001 = percentile(kld, 0.001f);
  s.kld_min = kld.front();

  s.p_diff = mean_and_uncertainty(k.sum_p_diff, k.sum_p_diff2, k.count);
  std::vector<float> pd = k.p_diff_values;
  std::sort(pd.begin(), pd.end());
  s.p_diff_max = pd.back();
  s.p_diff_p999 = percentile(pd, 0.999f);
  s.p_diff_p99 = percentile(pd, 0.990f);
  s.p_diff_p95 = percentile(pd, 0.950f);
  s.p_diff_p90 = percentile(pd, 0.900f);
  s.p_diff_p75 = percentile(pd, 0.750f);
  s.p_diff_median = median(pd);
  s.p_diff_p25 = percentile(pd, 0.250f);
  s.p_diff_p10 = percentile(pd, 0.100f);
  s.p_diff_p05 = percentile(pd, 0.050f);
  s.p_diff_p01 = percentile(pd, 0.010f);
  s.p_diff_p001 = percentile(pd, 0.001f);
  s.p_diff_min = pd.front();
  const Estimate mse = mean_and_uncertainty(k.sum_p_diff2, k.sum_p_diff4, k.count);
  const double rms = std::sqrt(mse.value);
  s.p_diff_rms = {rms, rms > 0 ? 0.5 / rms * mse.uncertainty : 0};

  const double top = static_cast<double>(k.n_same_top) / static_cast<double>(k.count);
  s.same_top = {top, std::sqrt(top * (1.0 - top) / static_cast<double>(k.count - 1))};
  return s;
}

}  // namespace popper::eval
