// Token sampling: greedy, or seeded temperature / top-k / top-p on the project RNG
// (engine/core/rng.h), so a seed gives the same tokens on every machine.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "engine/core/faults.h"
#include "engine/core/result.h"
#include "engine/core/rng.h"

namespace popper {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  int64_t top_k = 0;         // 0: no top-k cut
  float top_p = 1.0f;        // 1: no nucleus cut; in (0, 1]
  uint64_t seed = 0;
};

// Error naming the bad field: temperature < 0, top_k < 0, top_p outside (0, 1].
Status validate(const SamplingParams& params);

// Greedy choice: the largest logit, ties to the lowest id. NaN logits are never chosen.
int32_t argmax_token(std::span<const float> logits);

class Sampler {
 public:
  // Fault sampler_ignores_seed: every sampler starts from seed 0.
  explicit Sampler(const SamplingParams& params)
      : params_(params), rng_(fault_on(Fault::kSamplerIgnoresSeed) ? 0 : params.seed) {}

  // Greedy when temperature <= 0. Otherwise: logits / T, keep the top_k largest (ties to the lower
  // id), softmax, keep the smallest prefix whose mass reaches top_p, draw with the RNG.
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  Rng rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // reused
};

}  // namespace popper
