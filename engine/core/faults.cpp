#include "engine/core/faults.h"

#include <cstdio>
#include <cstdlib>

namespace popper {
namespace {

// One row per Fault, in enum order (checked below). `site` names the file and function so that a
// reader of a control's verdict can find the bug it planted.
constexpr FaultInfo kFaultTable[] = {
    {Fault::kKvStalePosition, "kv_stale_position", "engine/model/model.cpp Session::issue_layers (store_kv)",
     "a step that continues a cache writes its keys and values one position early, so attention "
     "reads a stale entry at the newest position"},
    {Fault::kGenerateContextOffByOne, "generate_context_off_by_one", "engine/model/generate.cpp generate",
     "generation counts one position too many as used and ends with context_full a token early"},
    {Fault::kMoeRouterSkipsRenorm, "moe_router_skips_renorm", "engine/cpu/moe_route.cpp router_top_k",
     "the top-k expert weights are not divided by their sum"},
    {Fault::kMoeRouterReadsZeros, "moe_router_reads_zeros", "engine/cpu/moe_route.cpp moe_route",
     "the router scores a zeroed input: every token goes to experts 0..k-1 with equal weights"},
    {Fault::kMoeAsDense, "moe_as_dense", "engine/model/model.cpp Session::forward (FFN dispatch)",
     "a qwen3moe model is sent down the dense FFN (the seed's dispatch bug; the guard fires)"},
    {Fault::kWeightsSkipShapeCheck, "weights_skip_shape_check", "engine/model/weights.cpp bind_weights",
     "tensors of the wrong shape or type are bound without a word"},
    {Fault::kRopePositionPlusOne, "rope_position_plus_one", "engine/cpu/rope.cpp rope_neox",
     "RoPE rotates token t by position pos0 + t + 1"},
    {Fault::kAttentionDropsLastKey, "attention_drops_last_key",
     "engine/model/cpu_backend.cpp CpuBackend::attention",
     "in a step that continues a cache, each query at position p attends to [0, p) instead of "
     "[0, p]: its own key is dropped"},
    {Fault::kSamplerIgnoresSeed, "sampler_ignores_seed", "engine/model/sampler.h Sampler",
     "the sampler's RNG starts from seed 0 whatever seed was asked for"},
    {Fault::kTokenizerDropsMerge, "tokenizer_drops_merge", "engine/tokenizer/tokenizer.cpp Tokenizer::load",
     "the highest-priority BPE merge (rank 0) is never applied"},
    {Fault::kDecodeSleep, "decode_sleep", "engine/model/model.cpp Session::forward_chunk",
     "every single-token decode step sleeps 250 ms (a 4 tok/s ceiling)"},
    {Fault::kPrefillSleep, "prefill_sleep", "engine/model/model.cpp Session::forward_chunk",
     "every multi-token forward chunk (prefill) sleeps 50 ms a token (a 20 tok/s ceiling)"},
    {Fault::kServeWrongRole, "serve_wrong_role", "engine/serve/server.cpp chat completion",
     "chat completions answer with role \"user\" instead of \"assistant\""},
    {Fault::kBackendAutoIgnoresGpu, "backend_auto_ignores_gpu",
     "engine/model/backend_factory.cpp make_backend", "--backend auto picks the CPU without asking the GPU"},
    {Fault::kCudaSignFlip, "cuda_sign_flip", "engine/cuda/kernels.cu add",
     "the CUDA residual add subtracts (x -= y); runs on a GPU and on the emulated device"},
    {Fault::kEvidenceSkipsFsync, "evidence_skips_fsync",
     "engine/core/atomic_file.cpp AtomicFileWriter::commit",
     "atomic writes (evidence, MANIFEST, contracts) rename without fsync: a crash can lose them"},
    {Fault::kQuantDropsLastBlock, "quantize_drops_last_block", "engine/convert/quantize.cpp convert_rows",
     "popper quantize leaves the last block of every quantised row zero (a row loop one block short)"},
    {Fault::kAttentionQuadratic, "attention_quadratic", "engine/cpu/attention.cpp attention",
     "a one-token (decode) step recomputes each query's attention once per 256 cached positions: same "
     "result, cost quadratic in the depth (the slow long-context decode issue 12's depth item catches)"},
    {Fault::kRepackDropsLastGroup, "repack_drops_last_group", "engine/cpu/prepared_weight.cpp prepare_weight",
     "the load-time x8 repack leaves the last group of 8 rows of every repacked matrix zero (a group "
     "loop one short): those outputs read 0 on the packed path only"},
    {Fault::kAtomicWriteInPlace, "atomic_write_in_place",
     "engine/core/atomic_file.cpp AtomicFileWriter::open",
     "streamed atomic writes (GGUF models, bundles' files) truncate and write the target itself, as a naive "
     "writer does: a kill mid-write leaves a torn file (harness_kill9_test's control)"},
    {Fault::kServeUnboundedReads, "serve_unbounded_reads", "engine/serve/guarded_server.cpp Connection::begin",
     "requests read with httplib 0.11.4's bounds only: no head/body deadline or byte cap, no early "
     "413/411/400 on the framing (serve_abuse_test's control)"},
    {Fault::kDecodeStall, "decode_stall", "engine/model/model.cpp Session::forward_chunk",
     "every single-token decode step sleeps 5 ms (on a tiny model, slower than recomputing the "
     "whole sequence in one batch)"},
};
static_assert(sizeof(kFaultTable) / sizeof(kFaultTable[0]) == kFaultCount, "one kFaultTable row per Fault");

constexpr bool table_in_enum_order() {
  for (size_t i = 0; i < kFaultCount; ++i)
    if (static_cast<size_t>(kFaultTable[i].fault) != i) return false;
  return true;
}
static_assert(table_in_enum_order(), "kFaultTable rows must follow the Fault enum's order");

std::string& active_text() {
  static std::string text;
  return text;
}

void apply(const std::vector<Fault>& faults) {
  std::string text;
  for (size_t i = 0; i < kFaultCount; ++i) detail::g_fault_on[i] = false;
  for (Fault f : faults) detail::g_fault_on[static_cast<size_t>(f)] = true;
  for (size_t i = 0; i < kFaultCount; ++i)
    if (detail::g_fault_on[i]) text += (text.empty() ? "" : ",") + std::string(kFaultTable[i].name);
  active_text() = text;
}

// Reads POPPER_FAULTS before main. A name that is not a fault ends the process (exit 2): a
// misspelt control would otherwise run the healthy engine and report the claim unfalsifiable.
struct ReadEnvironment {
  ReadEnvironment() {
    const char* env = std::getenv("POPPER_FAULTS");
    if (env == nullptr || *env == '\0') return;
    std::vector<Fault> faults;
    std::string error;
    if (!parse_fault_list(env, &faults, &error)) {
      std::fprintf(stderr, "popper: POPPER_FAULTS: %s\n", error.c_str());
      std::fflush(stderr);
      std::_Exit(2);
    }
#ifdef POPPER_NO_FAULT_SITES
    std::fprintf(stderr,
                 "popper: POPPER_FAULTS=%s ignored: this build has no fault sites (POPPER_FAULT_SITES=OFF)\n",
                 env);
    std::_Exit(2);
#endif
    apply(faults);
    std::fprintf(stderr,
                 "popper: WARNING: fault injection active (POPPER_FAULTS=%s): this process is deliberately "
                 "broken; its results are a negative control, not a measurement\n",
                 active_text().c_str());
    std::fflush(stderr);
  }
};
const ReadEnvironment kReadEnvironment;

}  // namespace

namespace detail {
bool g_fault_on[kFaultCount] = {};
}  // namespace detail

const FaultInfo* fault_table() { return kFaultTable; }

const FaultInfo& fault_info(Fault f) { return kFaultTable[static_cast<size_t>(f)]; }

const FaultInfo* find_fault(std::string_view name) {
  for (const FaultInfo& f : kFaultTable)
    if (name == f.name) return &f;
  return nullptr;
}

bool parse_fault_list(std::string_view text, std::vector<Fault>* out, std::string* error) {
  out->clear();
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view name = text.substr(start, comma - start);
    while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (!name.empty()) {
      const FaultInfo* f = find_fault(name);
      if (f == nullptr) {
        std::string known;
        for (const FaultInfo& k : kFaultTable) known += (known.empty() ? "" : ", ") + std::string(k.name);
        *error = "unknown fault '" + std::string(name) + "' (known: " + known + ")";
        return false;
      }
      out->push_back(f->fault);
    }
    start = comma + 1;
  }
  return true;
}

const std::string& active_faults_text() { return active_text(); }

void set_faults_for_testing(const std::vector<Fault>& faults) { apply(faults); }

}  // namespace popper
