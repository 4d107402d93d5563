#include "harness/run/models.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>

#include "engine/core/atomic_file.h"
#include "engine/core/sha256.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/model/model_config.h"
#include "engine/quant/recipe.h"
#include "engine/synth/synth.h"
#include "harness/run/process.h"

namespace popper::harness {
namespace fs = std::filesystem;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// trained-<arch>-<quant>: the committed file (f32 or bf16, as train exported it), or a
// quantisation of it.
Result<ModelSpec> resolve_trained(const std::string& ref, const std::string& cache_dir,
                                  const std::string& repo_root) {
  const std::string grammar =
      "trained-<arch>-<quant> with arch qwen3moe|qwen3, quant bf16|f32 (the committed file) or "
      "q8_0|q4_k_m|q5_k_m|q6_k (popper quantize of it)";
  auto parts = split(ref.substr(8), '-');
  if (parts.size() != 2 || (parts[0] != "qwen3moe" && parts[0] != "qwen3"))
    return make_error("model '", ref, "': expected ", grammar);
  ModelSpec m;
  m.name = ref;
  m.arch = parts[0];
  m.quant = parts[1];
  auto committed = [&](const std::string& type) {
    return (fs::path(repo_root) / kTrainedModelDir / ("trained-" + m.arch + "-" + type + ".gguf"))
        .lexically_normal()
        .string();
  };
  if (m.quant == "bf16" || m.quant == "f32") {
    m.is_path = true;
    m.path = committed(m.quant);
    return m;
  }
  auto ftype = parse_quant_ftype(m.quant);
  if (!ftype.ok() || m.quant != quant_ftype_name(*ftype) || *ftype == QuantFtype::kAllF32)
    return make_error("model '", ref, "': unknown quant '", m.quant, "'; expected ", grammar);
  std::error_code ec;
  m.quantize_from = fs::exists(committed("f32"), ec) ? committed("f32") : committed("bf16");
  if (!fs::exists(m.quantize_from, ec)) return m;  // path stays empty: building it says the source is missing
  auto sha = sha256_file(m.quantize_from);
  if (!sha.ok()) return sha.error();
  m.path =
      (fs::path(cache_dir) / (ref + "." + sha256_hex(*sha + " " + m.quant).substr(0, 12) + ".gguf")).string();
  return m;
}

}  // namespace

std::string build_command(const ModelSpec& spec) {
  std::string s = spec.quantize_from.empty()
                      ? "popper synth"
                      : "popper quantize " + spec.quantize_from + " OUT --type " + spec.quant;
  for (const auto& a : spec.synth_args) s += " " + a;
  return s;
}

std::string default_model_cache(const std::string& repo_root) {
  const char* env = std::getenv("POPPER_MODEL_CACHE");
  if (env && *env) return env;
  return (fs::path(repo_root) / ".cache" / "models").string();
}

Result<ModelSpec> resolve_model(const std::string& ref, const std::string& cache_dir,
                                const std::string& repo_root) {
  ModelSpec m;
  m.name = ref;
  if (ref.find('/') != std::string::npos || (ref.size() > 5 && ref.substr(ref.size() - 5) == ".gguf")) {
    m.is_path = true;
    fs::path p(ref);
    m.path = (p.is_absolute() ? p : fs::path(repo_root) / p).lexically_normal().string();
    return m;
  }
  if (ref.rfind("trained-", 0) == 0) return resolve_trained(ref, cache_dir, repo_root);
  // Presets may contain '-' themselves ("30b-a3b"), so match them as a prefix.
  std::string rest;
  for (const char* preset : {"tiny", "30b-a3b"}) {
    std::string p = std::string(preset) + "-";
    if (ref.rfind(p, 0) == 0) {
      m.preset = preset;
      rest = ref.substr(p.size());
    }
  }
  const std::string grammar =
      "<preset>-[<arch>-]<quant>[-<N>l][-s<seed>] with preset tiny|30b-a3b, arch "
      "qwen3moe|qwen3, quant f32|q8_0|q4_k_m; or trained-<arch>-<quant>; or a path to a .gguf file";
  if (m.preset.empty()) return make_error("model '", ref, "': unknown model name; expected ", grammar);
  auto parts = split(rest, '-');
  size_t i = 0;
  m.arch = "qwen3moe";
  if (i < parts.size() && (parts[i] == "qwen3moe" || parts[i] == "qwen3")) m.arch = parts[i++];
  if (i >= parts.size() || (parts[i] != "f32" && parts[i] != "q8_0" && parts[i] != "q4_k_m"))
    return make_error("model '", ref, "': missing or unknown quant; expected ", grammar);
  m.quant = parts[i++];
  for (; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.size() > 1 && p.back() == 'l' && all_digits(p.substr(0, p.size() - 1))) {
      m.layers = std::stoi(p.substr(0, p.size() - 1));
    } else if (p.size() > 1 && p[0] == 's' && all_digits(p.substr(1))) {
      m.seed = std::stoull(p.substr(1));
    } else {
      return make_error("model '", ref, "': unexpected part '", p, "'; expected ", grammar);
    }
  }
  m.synth_args = {"--arch", m.arch, "--preset", m.preset, "--quant", m.quant};
  if (m.layers) m.synth_args.insert(m.synth_args.end(), {"--layers", std::to_string(*m.layers)});
  if (m.seed) m.synth_args.insert(m.synth_args.end(), {"--seed", std::to_string(*m.seed)});
  std::string key_text;
  for (const auto& a : m.synth_args) key_text += a + " ";
  m.large = m.preset != "tiny";
  m.path = (fs::path(cache_dir) / (ref + "." + sha256_hex(key_text).substr(0, 12) + ".gguf")).string();
  return m;
}

Result<ModelSpec> resolve_model_for_run(const std::string& ref, const std::string& cache_dir,
                                        const std::string& repo_root,
                                        const std::map<std::string, std::string>& overrides) {
  auto o = overrides.find(ref);
  if (o == overrides.end()) return resolve_model(ref, cache_dir, repo_root);
  ModelSpec m;
  m.name = ref;
  m.is_path = true;
  m.substituted = true;
  fs::path p(o->second);
  m.path = (p.is_absolute() ? p : fs::absolute(p)).lexically_normal().string();
  return m;
}

namespace {

// The hyper-parameters that make two files interchangeable for a check.
struct ShapeFacts {
  std::string arch;
  std::vector<std::pair<const char*, int64_t>> dims;
};

ShapeFacts shape_of(const ModelConfig& c) {
  ShapeFacts f;
  f.arch = std::string(c.arch->name);
  f.dims = {{"n_layer", c.n_layer},
            {"n_embd", c.n_embd},
            {"n_head", c.n_head},
            {"n_head_kv", c.n_head_kv},
            {"head_dim", c.head_dim}};
  if (c.is_moe()) {
    f.dims.insert(f.dims.end(),
                  {{"n_expert", c.n_expert}, {"n_expert_used", c.n_expert_used}, {"n_ff_exp", c.n_ff_exp}});
  } else {
    f.dims.push_back({"n_ff", c.n_ff});
  }
  return f;
}

ShapeFacts shape_of(const SynthShape& s, SynthArch arch) {
  ShapeFacts f;
  f.arch = synth_arch_name(arch);
  f.dims = {{"n_layer", s.n_layer},
            {"n_embd", s.n_embd},
            {"n_head", s.n_head},
            {"n_head_kv", s.n_head_kv},
            {"head_dim", s.head_dim}};
  if (arch == SynthArch::kQwen3Moe) {
    f.dims.insert(f.dims.end(),
                  {{"n_expert", s.n_expert}, {"n_expert_used", s.n_expert_used}, {"n_ff_exp", s.n_ff_exp}});
  } else {
    f.dims.push_back({"n_ff", s.n_ff});
  }
  return f;
}

Result<ShapeFacts> file_shape(const std::string& path) {
  auto file = GgufFile::open(path);
  if (!file.ok()) return file.error();
  auto config = read_model_config(**file);
  if (!config.ok()) return config.error();
  return shape_of(*config);
}

}  // namespace

Status check_substitute(const std::string& name, const std::string& path, const std::string& repo_root) {
  const std::string what = "--model " + name + "=" + path;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return make_error(what, ": no such file");
  auto have = file_shape(path);
  if (!have.ok()) return make_error(what, ": ", have.message());
  auto named = resolve_model(name, "/", repo_root);
  if (!named.ok()) return make_error(what, ": ", named.message());
  std::optional<ShapeFacts> want;
  if (named->is_path) {
    if (fs::exists(named->path, ec)) {
      auto w = file_shape(named->path);
      if (!w.ok()) return make_error(what, ": the contract's own ", name, ": ", w.message());
      want = *w;
    }
  } else {
    SynthOptions so;
    so.arch = named->arch == "qwen3" ? SynthArch::kQwen3 : SynthArch::kQwen3Moe;
    so.preset = named->preset;
    so.layers = named->layers.value_or(0);
    auto s = synth_shape(so);
    if (!s.ok()) return make_error(what, ": ", s.message());
    want = shape_of(*s, so.arch);
  }
  if (!want) return Status::success();  // nothing to compare with: any loadable model fits
  if (have->arch != want->arch)
    return make_error(what, ": the file's arch is ", have->arch, ", but ", name, " is ", want->arch);
  for (size_t i = 0; i < want->dims.size() && i < have->dims.size(); ++i)
    if (have->dims[i].second != want->dims[i].second)
      return make_error(what, ": ", have->dims[i].first, " is ", have->dims[i].second, ", but ", name,
                        " has ", want->dims[i].second);
  return Status::success();
}

// Removes what builds of `target` killed before their rename left beside it: "<name>.partial-
// <pid>.gguf" and its writer's ".<name>.partial-<pid>.gguf.tmp.XXXXXX", for each pid that no
// longer runs (a harness killed with -9 leaves its `popper synth` running to the end, and that
// finished file with nobody to rename it: gigabytes for the large presets).
static void remove_stale_partials(const fs::path& target) {
  const std::string mark = target.filename().string() + ".partial-";
  std::vector<fs::path> stale;
  std::error_code ec;
  for (fs::directory_iterator it(target.parent_path(), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t at = name.find(mark);
    if (at != 0 && at != 1) continue;  // 1: the writer's temp file, "." + name
    const long pid = std::strtol(name.c_str() + at + mark.size(), nullptr, 10);
    if (pid > 0 && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH) stale.push_back(it->path());
  }
  for (const auto& p : stale) fs::remove(p, ec);
}

Status build_model(const ModelSpec& spec, const std::string& popper_exe, const std::string& log_path,
                   double timeout_s) {
  std::error_code ec;
  remove_stale_partials(spec.path);
  if (!spec.quantize_from.empty() && !fs::exists(spec.quantize_from, ec))
    return make_error("the trained model ", spec.quantize_from,
                      " does not exist (the train branch commits it)");
  fs::create_directories(fs::path(spec.path).parent_path(), ec);
  if (ec) return make_error(spec.path, ": cannot create the model cache directory: ", ec.message());
  std::string tmp = spec.path + ".partial-" + std::to_string(::getpid()) + ".gguf";
  SpawnOptions o;
  if (spec.quantize_from.empty()) {
    o.argv = {popper_exe, "synth"};
    o.argv.insert(o.argv.end(), spec.synth_args.begin(), spec.synth_args.end());
    o.argv.insert(o.argv.end(), {"-o", tmp});
  } else {
    o.argv = {popper_exe, "quantize", spec.quantize_from, tmp, "--type", spec.quant};
  }
  o.stdout_path = log_path;
  o.stderr_path = log_path + ".err";
  o.timeout_s = timeout_s;
  ProcessResult r = run_process(o);
  if (!r.exited_ok()) {
    fs::remove(tmp, ec);
    std::string tail = file_tail(o.stderr_path, 600);
    return make_error("building model ", spec.name, " (", build_command(spec), ") failed: ", r.describe(),
                      tail.empty() ? "" : ": " + tail);
  }
  if (!fs::exists(tmp, ec)) return make_error(build_command(spec), " exited 0 but wrote no file at ", tmp);
  // The child wrote tmp atomically (whole or absent); the rename makes it the cache entry.
  Status moved = rename_durably(tmp, spec.path);
  if (!moved.ok()) {
    fs::remove(tmp, ec);
    return make_error("the built model: ", moved.message());
  }
  return Status::success();
}

Result<std::string> model_sha256(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return make_error(path, ": cannot stat the model file");
  std::ostringstream stamp;
  stamp << st.st_size << " " << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
  const std::string cache = path + ".sha256";
  if (auto text = read_file(cache); text.ok()) {
    auto sp = text->find(' ');
    if (sp == 64 && text->substr(sp + 1) == stamp.str() + "\n") return text->substr(0, 64);
  }
  auto sha = sha256_file(path);
  if (!sha.ok()) return sha.error();
  // Best effort: a read-only cache directory only costs a re-hash next time.
  (void)write_file_atomic(cache, *sha + " " + stamp.str() + "\n");
  return *sha;
}

Result<ModelFacts> read_model_facts(const std::string& path) {
  auto file = GgufFile::open(path);
  if (!file.ok()) return file.error();
  ModelFacts f;
  f.file_size = (*file)->file_size();
  const GgufValue* arch = (*file)->find("general.architecture");
  if (arch && arch->as_string()) f.arch = *arch->as_string();
  std::ostringstream shape;
  const char* keys[][2] = {{"block_count", "layers"},          {"embedding_length", "n_embd"},
                           {"attention.head_count", "n_head"}, {"attention.head_count_kv", "n_head_kv"},
                           {"expert_count", "n_expert"},       {"expert_used_count", "n_expert_used"}};
  bool first = true;
  for (auto& kv : keys) {
    const GgufValue* v = (*file)->find(f.arch + "." + kv[0]);
    if (!v || !v->as_u64()) continue;
    shape << (first ? "" : ", ") << kv[1] << " " << *v->as_u64();
    first = false;
  }
  shape << (first ? "" : ", ") << (*file)->tensors().size() << " tensors";
  f.shape = shape.str();
  return f;
}

}  // namespace popper::harness
