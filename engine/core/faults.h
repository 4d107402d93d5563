// Named faults: deliberate, realistic bugs at real sites of the engine, switched on only through
// the environment, POPPER_FAULTS=name[,name] (read once, before main). They are the negative
// controls of the contracts: a claim counts as tested only when its check, run again with the
// item's `control:` faults on, comes out falsified (harness/run/controls.h, contracts/README.md).
// Models: FoundationDB's BUGGIFY and SQLite's sqlite3_test_control hooks.
//
// Cost when off: a site asks fault_on() once per operation (an op call, a forward step, a
// request, a file load) and never inside a loop over elements, so the only cost is one load and
// one well-predicted branch per op. Configuring with -DPOPPER_FAULT_SITES=OFF compiles every site
// away (fault_on() is constant false) for a build that must not carry them;
// docs/faults.md counts the checks per decode step and compares both builds (machine code,
// instructions per decode: scripts/fault_sites_ab.py).
//
// Adding a fault: an enumerator here, a row of kFaultTable in faults.cpp (same order), the site
// (`if (fault_on(Fault::kX))` at op level), and a contract item whose `control:` names it.
//
// C++17 on purpose: engine/cuda's .cu files include it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace popper {

enum class Fault : uint8_t {
  kKvStalePosition,          // KV cache
  kGenerateContextOffByOne,  // generation's context check
  kMoeRouterSkipsRenorm,     // MoE routing
  kMoeRouterReadsZeros,
  kMoeAsDense,             // arch dispatch
  kWeightsSkipShapeCheck,  // model loading
  kRopePositionPlusOne,    // RoPE
  kAttentionDropsLastKey,  // attention
  kSamplerIgnoresSeed,     // sampling
  kTokenizerDropsMerge,    // tokenizer
  kDecodeSleep,            // throughput
  kPrefillSleep,
  kServeWrongRole,         // server
  kBackendAutoIgnoresGpu,  // backend selection
  kCudaSignFlip,           // CUDA kernels
  kEvidenceSkipsFsync,     // durable writes
  kQuantDropsLastBlock,    // popper quantize
  kAttentionQuadratic,     // attention's cost at depth
  kRepackDropsLastGroup,   // CPU weight repacking
  kAtomicWriteInPlace,     // durable writes
  kServeUnboundedReads,    // server connections
  kDecodeStall,            // throughput (a short sleep: speedup claims)
  kCount
};

struct FaultInfo {
  Fault fault;
  const char* name;    // as written in POPPER_FAULTS and in a contract's `control:`
  const char* site;    // where the bug sits: "engine/cpu/rope.cpp rope_neox"
  const char* effect;  // what goes wrong, in one line
};

// Every fault, in enum order.
const FaultInfo* fault_table();
constexpr size_t kFaultCount = static_cast<size_t>(Fault::kCount);
// nullptr when `name` is not a fault.
const FaultInfo* find_fault(std::string_view name);
const FaultInfo& fault_info(Fault f);

// "a,b" -> {a, b}. Spaces around names are ignored, empty entries too. On an unknown name
// returns false and sets `error` to a message naming it and listing the known ones.
bool parse_fault_list(std::string_view text, std::vector<Fault>* out, std::string* error);

namespace detail {
extern bool g_fault_on[kFaultCount];
}  // namespace detail

// True when `f` is switched on in this process.
#ifdef POPPER_NO_FAULT_SITES
constexpr bool fault_on(Fault) { return false; }
constexpr bool fault_sites_compiled() { return false; }
#else
inline bool fault_on(Fault f) { return detail::g_fault_on[static_cast<size_t>(f)]; }
constexpr bool fault_sites_compiled() { return true; }
#endif

// The active faults' names, comma-separated ("" when none): for warning banners.
const std::string& active_faults_text();
inline bool any_fault_on() { return !active_faults_text().empty(); }

// Replaces the set of active faults in this process (tests that check a site in-process; never
// called by the engine itself).
void set_faults_for_testing(const std::vector<Fault>& faults);

}  // namespace popper
