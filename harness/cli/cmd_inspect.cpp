// `popper inspect FILE.gguf [--json] [--all-metadata]`: the header, metadata, tensor table and
// per-type totals of a GGUF file, or the reader's reason for rejecting it (exit 1).
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/gguf/gguf_reader.h"
#include "harness/cli/commands.h"

namespace popper::cli {
namespace {

// Text width of a value in the metadata listing (without --all-metadata).
constexpr size_t kValueChars = 72;
// Array elements listed in JSON (without --all-metadata).
constexpr size_t kJsonArrayHead = 8;

struct InspectFlags {
  std::string path;
  bool json = false;
  bool all_metadata = false;
};

template <class... Args>
std::string format(const char* fmt, Args... args) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, args...);
  return buf;
}

// 18512345678 -> "18,512,345,678".
std::string with_commas(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// 177209344 -> "169.0 MiB".
std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024.0 && u < 6) {
    v /= 1024.0;
    ++u;
  }
  return u == 0 ? str_cat(n, " B") : format("%.1f %s", v, units[u]);
}

// 30532122624 -> "30.53 B" (parameter counts, decimal units as model cards write them).
std::string human_count(uint64_t n) {
  if (n >= 1000000000ull) return format("%.2f B", static_cast<double>(n) / 1e9);
  if (n >= 1000000ull) return format("%.2f M", static_cast<double>(n) / 1e6);
  if (n >= 1000ull) return format("%.1f K", static_cast<double>(n) / 1e3);
  return std::to_string(n);
}

struct TypeTotal {
  size_t n_tensors = 0;
  uint64_t n_bytes = 0;
  uint64_t n_params = 0;
};

std::map<std::string, TypeTotal> totals_by_type(const GgufFile& file, TypeTotal& all) {
  std::map<std::string, TypeTotal> by_type;
  for (const auto& t : file.tensors()) {
    auto& tt = by_type[std::string(ggml_type_name(t.type))];
    for (TypeTotal* x : {&tt, &all}) {
      x->n_tensors += 1;
      x->n_bytes += t.n_bytes;
      x->n_params += static_cast<uint64_t>(t.n_elements());
    }
  }
  return by_type;
}

void print_text(const GgufFile& file, bool all_metadata) {
  TypeTotal all;
  const auto by_type = totals_by_type(file, all);

  std::printf("%s\n", file.path().c_str());
  std::printf("  file        %s (%s bytes)\n", human_bytes(file.file_size()).c_str(),
              with_commas(file.file_size()).c_str());
  std::printf("  format      GGUF v%u, alignment %u, tensor data from byte %s\n", file.version(),
              file.alignment(), with_commas(file.data_offset()).c_str());
  std::printf("  metadata    %zu keys\n", file.metadata().size());
  std::printf("  tensors     %zu, %s parameters (%s), %s of data\n", file.tensors().size(),
              with_commas(all.n_params).c_str(), human_count(all.n_params).c_str(),
              human_bytes(all.n_bytes).c_str());

  size_t key_w = 3;
  for (const auto& kv : file.metadata()) key_w = std::max(key_w, kv.key.size());
  key_w = std::min<size_t>(key_w, 48);
  std::printf("\nmetadata\n");
  for (const auto& kv : file.metadata()) {
    const std::string value = kv.value.summary(all_metadata ? std::string::npos : kValueChars);
    std::printf("  %-*s  %-6s  %s\n", static_cast<int>(key_w), kv.key.c_str(),
                std::string(gguf_value_type_name(kv.value.type())).c_str(), value.c_str());
  }

  if (!file.tensors().empty()) {
    size_t name_w = 4;
    size_t shape_w = 5;
    for (const auto& t : file.tensors()) {
      name_w = std::max(name_w, t.name.size());
      shape_w = std::max(shape_w, t.shape_string().size());
    }
    const int idx_w = static_cast<int>(std::to_string(file.tensors().size()).size());
    std::printf("\ntensors\n");
    std::printf("  %*s  %-*s  %-7s  %-*s  %10s  %16s\n", idx_w, "#", static_cast<int>(name_w), "name", "type",
                static_cast<int>(shape_w), "shape", "bytes", "offset");
    for (size_t i = 0; i < file.tensors().size(); ++i) {
      const auto& t = file.tensors()[i];
      std::printf("  %*zu  %-*s  %-7s  %-*s  %10s  %16s\n", idx_w, i, static_cast<int>(name_w),
                  t.name.c_str(), std::string(ggml_type_name(t.type)).c_str(), static_cast<int>(shape_w),
                  t.shape_string().c_str(), human_bytes(t.n_bytes).c_str(), with_commas(t.offset).c_str());
    }
  }

  std::printf("\ntotals\n");
  std::printf("  %-8s  %7s  %10s  %18s  %12s  %6s\n", "type", "tensors", "size", "bytes", "params", "share");
  for (const auto& [name, tt] : by_type) {
    const double share =
        all.n_bytes ? 100.0 * static_cast<double>(tt.n_bytes) / static_cast<double>(all.n_bytes) : 0;
    std::printf("  %-8s  %7zu  %10s  %18s  %12s  %5.1f%%\n", name.c_str(), tt.n_tensors,
                human_bytes(tt.n_bytes).c_str(), with_commas(tt.n_bytes).c_str(),
                human_count(tt.n_params).c_str(), share);
  }
  std::printf("  %-8s  %7zu  %10s  %18s  %12s  %5.1f%%\n", "all", all.n_tensors,
              human_bytes(all.n_bytes).c_str(), with_commas(all.n_bytes).c_str(),
              human_count(all.n_params).c_str(), all.n_bytes ? 100.0 : 0.0);
}

nlohmann::json array_json(const GgufArray& a, bool all) {
  const size_t n = a.size();
  const size_t shown = all ? n : std::min(n, kJsonArrayHead);
  nlohmann::json values = nlohmann::json::array();
  for (size_t i = 0; i < shown; ++i) {
    switch (a.elem_type) {
      case GgufValueType::BOOL:
        values.push_back(a.uints[i] != 0);
        break;
      case GgufValueType::UINT8:
      case GgufValueType::UINT16:
      case GgufValueType::UINT32:
      case GgufValueType::UINT64:
        values.push_back(a.uints[i]);
        break;
      case GgufValueType::INT8:
      case GgufValueType::INT16:
      case GgufValueType::INT32:
      case GgufValueType::INT64:
        values.push_back(a.ints[i]);
        break;
      case GgufValueType::FLOAT32:
      case GgufValueType::FLOAT64:
        values.push_back(a.floats[i]);
        break;
      case GgufValueType::STRING:
        values.push_back(a.strings[i]);
        break;
      case GgufValueType::ARRAY:
        values.push_back(array_json(a.arrays[i], all));
        break;
    }
  }
  nlohmann::json j = {{"elem_type", gguf_value_type_name(a.elem_type)}, {"count", n}, {"values", values}};
  if (shown < n) j["truncated"] = true;
  return j;
}

nlohmann::json value_json(const GgufValue& v, bool all) {
  if (const auto* s = v.as_string()) return *s;
  if (const auto* a = v.as_array()) return array_json(*a, all);
  if (auto b = v.as_bool()) return *b;
  if (v.is_float()) return v.raw_float();
  if (auto i = v.as_i64()) return *i;
  return v.raw_uint();  // u64 above INT64_MAX
}

void print_json(const GgufFile& file, bool all_metadata) {
  TypeTotal all;
  const auto by_type = totals_by_type(file, all);
  nlohmann::json j;
  j["path"] = file.path();
  j["file_size"] = file.file_size();
  j["version"] = file.version();
  j["alignment"] = file.alignment();
  j["data_offset"] = file.data_offset();
  j["n_kv"] = file.metadata().size();
  j["n_tensors"] = file.tensors().size();
  nlohmann::json md = nlohmann::json::array();
  for (const auto& kv : file.metadata()) {
    md.push_back({{"key", kv.key},
                  {"type", gguf_value_type_name(kv.value.type())},
                  {"value", value_json(kv.value, all_metadata)}});
  }
  j["metadata"] = std::move(md);
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : file.tensors()) {
    tensors.push_back({{"name", t.name},
                       {"type", ggml_type_name(t.type)},
                       {"shape", t.dims},
                       {"n_elements", t.n_elements()},
                       {"n_bytes", t.n_bytes},
                       {"offset", t.offset}});
  }
  j["tensors"] = std::move(tensors);
  nlohmann::json totals = nlohmann::json::object();
  for (const auto& [name, tt] : by_type) {
    totals[name] = {{"n_tensors", tt.n_tensors}, {"n_bytes", tt.n_bytes}, {"n_params", tt.n_params}};
  }
  j["totals_by_type"] = std::move(totals);
  j["total_bytes"] = all.n_bytes;
  j["total_params"] = all.n_params;
  // Metadata strings are not guaranteed UTF-8; bad bytes become U+FFFD instead of throwing.
  std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

int run_inspect(const InspectFlags& f) {
  auto file = GgufFile::open(f.path);
  if (!file.ok()) {
    std::fprintf(stderr, "popper inspect: %s\n", file.message().c_str());
    return 1;
  }
  if (f.json) {
    print_json(*file.value(), f.all_metadata);
  } else {
    print_text(*file.value(), f.all_metadata);
  }
  return 0;
}

void register_inspect(CLI::App& app) {
  auto flags = std::make_shared<InspectFlags>();
  CLI::App* cmd = add_command(app, "inspect", "Show a GGUF file's header, metadata, tensor table and totals",
                              [flags] { return run_inspect(*flags); });
  cmd->add_option("file", flags->path, "GGUF file")->required();
  cmd->add_flag("--json", flags->json, "Print JSON instead of text");
  cmd->add_flag("--all-metadata", flags->all_metadata, "Print every array element and full strings");
}

}  // namespace
POPPER_REGISTER_COMMAND(10, register_inspect);
}  // namespace popper::cli
