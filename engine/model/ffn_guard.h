// The dense-FFN guard: the one fixed message logged and returned when the dense FFN path is
// handed an MoE model. The serve contract (contracts/qwen3-moe-serve-dispatch-v1.yaml) greps the
// server log for exactly this text, so it must never change without that contract changing too.
#pragma once

#include <string_view>

namespace popper {

inline constexpr std::string_view kDenseFfnOnMoeGuardMessage =
    "POPPER-GUARD dense FFN path invoked on an MoE model; refusing (MoE layers must dispatch to the expert FFN)";

}  // namespace popper
