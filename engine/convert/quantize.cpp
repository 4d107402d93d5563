#include "engine/convert/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "engine/core/faults.h"
#include "engine/core/thread_pool.h"
#include "engine/gguf/gguf_writer.h"
#include "engine/quant/traits.h"

namespace popper {
namespace {

// Rows handed to a worker at a time: enough to amortise the hand-out, small enough to balance
// the last tensor rows over the threads and to notice a cancel within milliseconds.
constexpr int64_t kRowsPerTask = 16;

// Keys llama-quantize drops (split metadata: the output is one file) or sets at the end.
bool dropped_key(std::string_view key) {
  return key == "split.no" || key == "split.count" || key == "split.tensors.count" ||
         key == "general.quantization_version" || key == "general.file_type";
}

std::string element_string(int64_t index, std::span<const int64_t> dims) {
  std::string s = "[";
  for (size_t d = 0; d < dims.size(); ++d) {
    s += (d ? ", " : "") + std::to_string(index % dims[d]);
    index /= dims[d];
  }
  return s + "]";
}

// Converts a tensor's rows to f32, checks them finite and quantises them to `to`. src and out
// hold whole rows: [n_rows, n_per_row] of `from` and of `to`.
Status convert_rows(const QuantizedTensor& t, const uint8_t* src, std::span<uint8_t> out, ThreadPool& pool,
                    const std::atomic<bool>* cancel) {
  const int64_t n_per_row = t.dims[0];
  int64_t n_rows = 1;
  for (size_t i = 1; i < t.dims.size(); ++i) n_rows *= t.dims[i];
  const QuantTraits* from = quant_traits(t.from);
  const QuantTraits* to = quant_traits(t.to);
  POPPER_CHECK(from != nullptr && to != nullptr, "tensor ", t.name,
               ": the plan chose types without row functions");
  const int64_t row_in = ggml_row_size(t.from, n_per_row);
  const int64_t row_out = ggml_row_size(t.to, n_per_row);
  POPPER_CHECK(static_cast<int64_t>(out.size()) == row_out * n_rows, "tensor ", t.name,
               ": output buffer size");

  // The first bad element in row order, whichever thread finds it (so the message is the same
  // with any thread count).
  // Fault quantize_drops_last_block: the row loop stops one block short, leaving the last
  // block of each row zero.
  const int64_t block_bytes = ggml_type_info(t.to).type_size;
  const bool drop_last_block = fault_on(Fault::kQuantDropsLastBlock);
  std::atomic<int64_t> first_bad{INT64_MAX};
  std::atomic<bool> cancelled{false};
  std::vector<std::vector<float>> scratch(static_cast<size_t>(pool.size()),
                                          std::vector<float>(static_cast<size_t>(n_per_row)));
  pool.parallel_for(n_rows, kRowsPerTask, [&](int64_t begin, int64_t end, int thread) {
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) {
      cancelled = true;
      return;
    }
    float* row = scratch[static_cast<size_t>(thread)].data();
    for (int64_t r = begin; r < end; ++r) {
      from->dequantize_row(src + r * row_in, row, n_per_row);
      for (int64_t i = 0; i < n_per_row; ++i) {
        if (!std::isfinite(row[i])) {
          int64_t bad = r * n_per_row + i;
          int64_t seen = first_bad.load();
          while (bad < seen && !first_bad.compare_exchange_weak(seen, bad)) {
          }
          return;
        }
      }
      to->quantize_row_ref(row, out.data() + r * row_out, n_per_row);
      if (drop_last_block) std::memset(out.data() + (r + 1) * row_out - block_bytes, 0, block_bytes);
    }
  });
  if (cancelled) return make_error("interrupted");
  if (const int64_t bad = first_bad.load(); bad != INT64_MAX) {
    float v = 0;
    std::vector<float> row(static_cast<size_t>(n_per_row));
    from->dequantize_row(src + (bad / n_per_row) * row_in, row.data(), n_per_row);
    v = row[static_cast<size_t>(bad % n_per_row)];
    return make_error("element ", element_string(bad, t.dims), " is ", v,
                      "; non-finite weights cannot be quantised (llama-quantize rejects them too)");
  }
  return Status::success();
}

}  // namespace

Result<QuantizePlan> plan_quantize(const GgufFile& in, QuantFtype ftype) {
  QuantizePlan plan;
  const GgufValue* arch = in.find("general.architecture");
  if (arch == nullptr || arch->as_string() == nullptr)
    return make_error(in.path(), ": general.architecture: missing (a model file names its arch)");
  plan.arch = *arch->as_string();
  if (Status st = check_recipe_arch(plan.arch); !st.ok()) return make_error(in.path(), ": ", st.message());
  RecipeModel model{plan.arch};
  const GgufValue* n_layer = in.find(plan.arch + ".block_count");
  if (n_layer == nullptr || !n_layer->as_u64())
    return make_error(in.path(), ": ", plan.arch, ".block_count: missing or not an integer");
  model.n_layer = static_cast<int64_t>(*n_layer->as_u64());
  if (const GgufValue* n_expert = in.find(plan.arch + ".expert_count"); n_expert != nullptr) {
    if (!n_expert->as_u64()) return make_error(in.path(), ": ", plan.arch, ".expert_count: not an integer");
    model.n_expert = static_cast<int64_t>(*n_expert->as_u64());
  }

  const auto& tensors = in.tensors();
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return llama_tensor_order_less(tensors[a].name, tensors[b].name);
  });
  std::vector<RecipeTensor> view;
  view.reserve(tensors.size());
  for (size_t i : order) view.push_back({tensors[i].name, tensors[i].dims, tensors[i].type});
  auto choices = plan_quant_types(ftype, model, view);
  if (!choices.ok()) return make_error(in.path(), ": ", choices.message());

  for (size_t k = 0; k < order.size(); ++k) {
    const GgufTensorInfo& t = tensors[order[k]];
    const RecipeChoice& c = (*choices)[k];
    QuantizedTensor q{t.name, t.dims, t.type, c.type, c.quantised, t.n_bytes, 0};
    int64_t n_rows = 1;
    for (size_t d = 1; d < t.dims.size(); ++d) n_rows *= t.dims[d];
    q.bytes_out = c.quantised ? static_cast<uint64_t>(ggml_row_size(c.type, t.dims[0]) * n_rows) : t.n_bytes;
    plan.bytes_in += q.bytes_in;
    plan.bytes_out += q.bytes_out;
    plan.n_elements += t.n_elements();
    plan.tensors.push_back(std::move(q));
  }
  for (const auto& kv : in.metadata()) {
    if (!dropped_key(kv.key)) plan.metadata.push_back(kv);
  }
  plan.metadata.push_back({"general.quantization_version", GgufValue::u32(kGgmlQuantizationVersion)});
  plan.metadata.push_back({"general.file_type", GgufValue::u32(static_cast<uint32_t>(ftype))});
  return plan;
}

Result<QuantizePlan> quantize_model(const std::string& in_path, const std::string& out_path,
                                    const QuantizeOptions& options,
                                    const std::function<void(const QuantizeProgress&)>& progress) {
  std::error_code ec;
  if (std::filesystem::equivalent(in_path, out_path, ec))
    return make_error(out_path, ": is the input file; write the quantised model to another path");
  auto in = GgufFile::open(in_path);
  if (!in.ok()) return in.error();
  const GgufFile& file = **in;
  auto plan = plan_quantize(file, options.ftype);
  if (!plan.ok()) return plan.error();

  ThreadPool pool(options.n_threads);
  GgufWriter w;
  for (const auto& kv : plan->metadata) w.add_kv(kv.key, kv.value);
  for (const QuantizedTensor& t : plan->tensors) {
    const GgufTensorInfo* info = file.find_tensor(t.name);
    POPPER_CHECK(info != nullptr, "tensor ", t.name);
    const uint8_t* src = file.tensor_data(*info);
    w.add_tensor(t.name, t.to, t.dims, [&t, src, &pool, &options](std::span<uint8_t> out) -> Status {
      if (options.cancel != nullptr && options.cancel->load()) return make_error("interrupted");
      if (!t.quantised) {
        std::memcpy(out.data(), src, out.size());
        return Status::success();
      }
      return convert_rows(t, src, out, pool, options.cancel);
    });
  }
  std::function<void(size_t, size_t, uint64_t, uint64_t)> on_tensor;
  if (progress) {
    on_tensor = [&](size_t done, size_t total, uint64_t bytes_done, uint64_t bytes_total) {
      progress(QuantizeProgress{done, total, bytes_done, bytes_total});
    };
  }
  Status st = w.write(out_path, on_tensor);
  if (!st.ok()) return make_error("quantizing ", in_path, ": ", st.message());
  return plan;
}

}  // namespace popper
