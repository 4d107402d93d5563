// Models an item needs: a synthetic model named by preset (built on demand with `popper synth`
// into a cache directory keyed by its arguments) or a GGUF path.
//
// Names: <preset>-[<arch>-]<quant>[-<N>l][-s<seed>]
//   tiny-qwen3moe-q4_k_m   -> popper synth --arch qwen3moe --preset tiny --quant q4_k_m
//   tiny-qwen3-f32         -> popper synth --arch qwen3 --preset tiny --quant f32
//   30b-a3b-q4_k_m         -> popper synth --arch qwen3moe --preset 30b-a3b --quant q4_k_m (48 layers, ~17
//   GiB) 30b-a3b-q4_k_m-2l      -> ... --layers 2
// Anything containing '/' or ending in .gguf is a path (relative to the repository root).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"

namespace popper::harness {

struct ModelSpec {
  std::string name;  // as written in the contract
  bool is_path = false;
  std::string path;                     // for paths: absolute; for synthetic: the cache file
  std::vector<std::string> synth_args;  // arguments after `popper synth`, without -o
  std::string arch, preset, quant;
  std::optional<int> layers;
  std::optional<uint64_t> seed;
  bool large = false;        // not the tiny preset: built only when asked
  bool substituted = false;  // --model NAME=PATH: `path` is the user's file standing in for `name`
};

// Parses a model reference. Synthetic models resolve to <cache_dir>/<name>.<key>.gguf where
// key is the first 12 hex digits of sha256 of the synth arguments.
Result<ModelSpec> resolve_model(const std::string& ref, const std::string& cache_dir,
                                const std::string& repo_root);

// As resolve_model, unless `overrides` (from `popper run --model NAME=PATH`) names `ref`: then
// the user's file stands in for it (a path spec under the contract's name, substituted = true).
Result<ModelSpec> resolve_model_for_run(const std::string& ref, const std::string& cache_dir,
                                        const std::string& repo_root,
                                        const std::map<std::string, std::string>& overrides);

// Whether `path` can stand in for the model `name`: a GGUF of a registered arch, the same arch as
// `name`, and the same shape (layers, widths, heads, experts; not the vocabulary or the quant
// types). For a synthetic name the shape is its preset's; for a path, the named file's (when it
// exists). The error says what differs: "--model 30b-a3b-q4_k_m=x.gguf: n_expert is 64, but
// 30b-a3b-q4_k_m has 128".
Status check_substitute(const std::string& name, const std::string& path, const std::string& repo_root);

// The default cache: $POPPER_MODEL_CACHE, else <repo_root>/.cache/models.
std::string default_model_cache(const std::string& repo_root);

// Builds a missing synthetic model by running `<popper_exe> synth <args> -o <tmp>` and renaming
// the result into place (so an interrupted build never leaves a half file under the final name).
// `log_path` receives the child's output.
Status build_model(const ModelSpec& spec, const std::string& popper_exe, const std::string& log_path,
                   double timeout_s);

// sha256 of a model file, cached in <file>.sha256 next to it (valid while size and mtime match),
// so a 17 GiB model is hashed once.
Result<std::string> model_sha256(const std::string& path);

// What the file's GGUF header says: "qwen3moe", "[48 layers, n_embd 2048, 128 experts]".
struct ModelFacts {
  std::string arch;
  std::string shape;
  uint64_t file_size = 0;
};
Result<ModelFacts> read_model_facts(const std::string& path);

}  // namespace popper::harness
