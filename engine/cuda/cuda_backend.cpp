#include "engine/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "engine/core/log.h"
#include "engine/model/backend_factory.h"

namespace popper {
namespace {

// Up to this many tokens a step's expert matmuls launch on upper bounds of the group counts
// (one token tile per group), so the step never waits for the host; above it the exact counts
// are read back first, so a 512-token prefill does not launch mostly-empty grids.
constexpr int64_t kHostFreeMoeTokens = 8;

// True when environment variable `name` is set to exactly `value`.
bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, value) == 0;
}

// Pending op timings past this many are read back (a wait) so the event pool stays small.
constexpr size_t kMaxPendingOps = 4096;

// "cuda" for make_backend (backend_factory.h), registered when a binary links this library.
Result<std::unique_ptr<Backend>> make_cuda_backend(int /*n_threads: the GPU needs none*/) {
  auto b = CudaBackend::create();
  if (!b.ok()) return b.error();
  return std::unique_ptr<Backend>(std::move(b.value()));
}
[[maybe_unused]] const bool kRegistered = register_backend(BackendKind::kCuda, make_cuda_backend);

}  // namespace

Result<std::unique_ptr<CudaBackend>> CudaBackend::create() {
  auto info = cuda::init();
  if (!info.ok()) return info.error();
  std::unique_ptr<CudaBackend> b(new CudaBackend());
  b->info_ = info.value();
  b->profiling_ = env_is("POPPER_CUDA_PROFILE", "1");
  // A profile times each op with events, which a graph replay cannot report per op.
  b->graphs_enabled_ = !env_is("POPPER_CUDA_GRAPHS", "0") && !b->profiling_;
  b->need(b->position_slot_, 2 * sizeof(int32_t));
  return b;
}

CudaBackend::~CudaBackend() {
  for (const PendingOp& op : pending_ops_) {
    cuda::event_destroy(op.start);
    cuda::event_destroy(op.stop);
  }
  for (void* e : free_events_) cuda::event_destroy(e);
  for (Buffer* b :
       {&position_slot_, &norm_, &logits_, &act_, &act2_, &scratch_, &attn_scratch_, &groups_, &rows_,
        &slot_row_, &group_stats_, &moe_x_, &moe_gate_, &moe_up_, &moe_down_, &ffn_gate_, &ffn_up_}) {
    cuda::free(b->p);
  }
}

void* CudaBackend::need(Buffer& b, size_t n) {
  if (n <= b.bytes && b.p != nullptr) return b.p;
  POPPER_CHECK(!capturing_, "CUDA: a scratch buffer grew while a step was being recorded");
  cuda::free(b.p);
  b.p = nullptr;
  b.bytes = 0;
  auto r = cuda::alloc(n);
  POPPER_CHECK(r.ok(), "CUDA scratch: ", r.ok() ? "" : r.message());
  b.p = r.value();
  b.bytes = n;
  ++generation_;
  return b.p;
}

void* CudaBackend::take_event() {
  if (free_events_.empty()) return cuda::event_create();
  void* e = free_events_.back();
  free_events_.pop_back();
  return e;
}

CudaBackend::OpScope::OpScope(CudaBackend* b, const char* name) : b_(b), name_(name) {
  if (!b_->profiling_) return;
  start_ = b_->take_event();
  cuda::event_record(start_);
}

CudaBackend::OpScope::~OpScope() {
  if (start_ == nullptr) return;
  void* stop = b_->take_event();
  cuda::event_record(stop);
  b_->pending_ops_.push_back({name_, start_, stop});
  if (b_->pending_ops_.size() > kMaxPendingOps) b_->drain_profile();
}

void CudaBackend::drain_profile() {
  for (const PendingOp& op : pending_ops_) {
    OpTime& t = profile_[op.name];
    ++t.calls;
    t.ms += cuda::event_elapsed_ms(op.start, op.stop);
    free_events_.push_back(op.start);
    free_events_.push_back(op.stop);
  }
  pending_ops_.clear();
}

std::map<std::string, CudaBackend::OpTime> CudaBackend::profile() {
  drain_profile();
  return profile_;
}

void CudaBackend::reset_profile() {
  drain_profile();
  profile_.clear();
}

Result<void*> CudaBackend::allocate(size_t bytes) {
  POPPER_CHECK(!capturing_, "CUDA: allocate while a step was being recorded");
  return cuda::alloc(bytes);
}

void CudaBackend::deallocate(void* p) { cuda::free(p); }

void CudaBackend::upload(void* dst, const void* host, size_t bytes) { cuda::upload(dst, host, bytes); }

void CudaBackend::download(void* host, const void* src, size_t bytes) { cuda::download(host, src, bytes); }

Result<std::unique_ptr<PreparedWeights>> CudaBackend::prepare(const ModelWeights& w, const CopiedFn& copied) {
  // Shapes past what the kernels take are refused here, at load, not at the first step.
  for (const LayerWeights& L : w.layers) {
    if (L.attn_q_norm.n > cuda::kMaxAttentionHeadDim) {
      return make_error("CUDA backend: head_dim ", L.attn_q_norm.n, " is past the attention kernel's ",
                        cuda::kMaxAttentionHeadDim);
    }
    if (L.ffn_gate_inp.data != nullptr && L.ffn_gate_inp.n_out > cuda::kMaxExperts) {
      return make_error("CUDA backend: ", L.ffn_gate_inp.n_out, " experts are past the routing kernel's ",
                        cuda::kMaxExperts);
    }
  }
  const cuda::DeviceInfo now = cuda::device_info();
  if (w.bytes_total > now.free_bytes) {
    return make_error("CUDA: the weights need ", w.bytes_total, " bytes on ", info_.name, " but only ",
                      now.free_bytes, " of ", now.total_bytes, " are free");
  }
  return Backend::prepare(w, copied);
}

Result<std::unique_ptr<BackendWeight>> CudaBackend::prepare_weight(const WeightMatrix& file, int64_t n_expert,
                                                                   WeightUse use) {
  (void)use;  // every use reads the file's layout
  if (!cuda::supports_weight_type(file.type))
    return make_error("no CUDA kernel for ", ggml_type_name(file.type));
  const size_t bytes = size_t(file.n_out * file.row_bytes);
  auto d = cuda::alloc(bytes);
  if (!d.ok()) return d.error();
  cuda::upload(d.value(), file.data, bytes);
  return std::unique_ptr<BackendWeight>(new DeviceWeight(file, n_expert, d.value()));
}

Result<std::unique_ptr<KvCache>> CudaBackend::make_kv_cache(const KvCacheShape& shape) {
  POPPER_CHECK(!capturing_, "CUDA: a KV cache allocated while a step was being recorded");
  if (shape.head_dim > cuda::kMaxAttentionHeadDim) {
    return make_error("CUDA backend: head_dim ", shape.head_dim, " is past the attention kernel's ",
                      cuda::kMaxAttentionHeadDim);
  }
  const uint64_t bytes = 2 * uint64_t(shape.n_layer) * uint64_t(shape.n_head_kv) * uint64_t(shape.head_dim) *
                         uint64_t(shape.capacity) * uint64_t(shape.type == KvType::kF32 ? 4 : 2);
  auto k = cuda::alloc(size_t(bytes / 2));
  if (!k.ok()) return make_error("the KV cache (", bytes, " bytes for K and V): ", k.message());
  auto v = cuda::alloc(size_t(bytes / 2));
  if (!v.ok()) {
    cuda::free(k.value());
    return make_error("the KV cache (", bytes, " bytes for K and V): ", v.message());
  }
  return std::unique_ptr<KvCache>(new DeviceKvCache(shape, k.value(), v.value()));
}

std::unique_ptr<Backend::StepRecord> CudaBackend::make_step_record() {
  return std::make_unique<DeviceStepRecord>();
}

const void* CudaBackend::activations(GgmlType weight_type, const float* x, int64_t n_rows, int64_t n_cols,
                                     Buffer& slot) {
  const GgmlType vt = cuda::vec_dot_type(weight_type);
  if (vt == GgmlType::F32) return x;
  void* a = need(slot, size_t(n_rows * cuda::activation_row_bytes(vt, n_cols)));
  cuda::quantize_activations(x, n_rows, n_cols, vt, a);
  return a;
}

void CudaBackend::matmul_f32(const cuda::DeviceMatrix& w, const float* x, int64_t n, float* y, Buffer& slot,
                             bool allow_cublas) {
  const void* a = activations(w.type, x, n, w.n_in, slot);
  cuda::matmul(w, a, n, y, w.n_out, need(scratch_, cuda::matmul_scratch_bytes(w, n)), allow_cublas);
}

const int32_t* CudaBackend::position(int64_t pos0) {
  auto* slots = static_cast<int32_t*>(position_slot_.p);
  if (in_step_) {
    POPPER_CHECK(pos0 == step_pos0_, "an op at position ", pos0, " inside a step at ", step_pos0_);
    return slots;
  }
  if (op_pos0_ != pos0) {
    const int32_t v = int32_t(pos0);
    cuda::upload(slots + 1, &v, sizeof v);
    op_pos0_ = pos0;
  }
  return slots + 1;
}

Status CudaBackend::run_step(const Step& step, const std::function<Status()>& issue) {
  const int32_t pos = int32_t(step.pos0);
  cuda::upload(position_slot_.p, &pos, sizeof pos);  // before any launch of the step, recorded or not
  const bool recordable = graphs_enabled_ && step.replayable && step.n_tokens == 1;
  in_step_ = true;
  step_recordable_ = recordable;
  step_pos0_ = step.pos0;
  struct Leave {
    CudaBackend* b;
    ~Leave() {
      b->in_step_ = false;
      b->step_recordable_ = false;
    }
  } leave{this};
  if (!recordable || step.record == nullptr) return issue();

  // Only single-token steps are recorded, so a session's one record is its decode step's.
  auto& r = static_cast<DeviceStepRecord&>(*step.record);  // made by make_step_record
  if (r.graph != nullptr && r.generation == generation_) {
    cuda::launch_graph(r.graph);
    ++graph_replays_;
    return Status::success();
  }
  if (r.graph != nullptr) {  // a buffer it points at moved: record again
    cuda::destroy_graph(r.graph);
    r.graph = nullptr;
    r.eager_runs = 0;
  }
  // The first run is eager: it grows every scratch buffer to this step's size, which may not
  // happen inside a capture.
  if (r.failed || r.eager_runs == 0) {
    ++r.eager_runs;
    return issue();
  }
  const uint64_t generation = generation_;
  cuda::begin_capture();
  capturing_ = true;
  const Status issued = issue();
  capturing_ = false;
  auto graph = cuda::end_capture();
  if (!issued.ok()) {
    if (graph.ok()) cuda::destroy_graph(graph.value());
    return issued;
  }
  if (!graph.ok()) {
    log_warn("CUDA: decode steps run without graphs: ", graph.message());
    r.failed = true;
    return issue();
  }
  POPPER_CHECK(generation == generation_, "CUDA: scratch moved during a capture");
  r.graph = graph.value();
  r.generation = generation_;
  cuda::launch_graph(r.graph);  // the capture only recorded: run the step now
  return Status::success();
}

void CudaBackend::embed(const BackendWeight& table, const int32_t* tokens, int64_t n_tokens, float* x) {
  const OpScope timed(this, "embed");
  const cuda::DeviceMatrix& t = device_matrix(table);
  cuda::embed(t.type, t.data, t.row_bytes, t.n_in, tokens, n_tokens, x);
}

void CudaBackend::rmsnorm(const float* x, const BackendWeight& w, int64_t n_rows, float eps, float* y) {
  const OpScope timed(this, "rmsnorm");
  cuda::rmsnorm(x, device_norm(w), n_rows, w.n_in(), eps, y);
}

void CudaBackend::project(std::span<const Projection> outs, const float* x, int64_t n_tokens) {
  const OpScope timed(this, "project");
  if (outs.empty()) return;
  const int64_t n_in = outs[0].w->n_in();
  // One quantisation per activation format, shared by every projection of that format.
  GgmlType have = GgmlType::F32;
  const void* a = nullptr;
  // Runs of projections with one weight type go out as one launch (Q, K and V of a layer).
  for (size_t i = 0; i < outs.size();) {
    POPPER_CHECK(outs[i].w->n_in() == n_in, "projection inputs differ");
    const GgmlType vt = cuda::vec_dot_type(outs[i].w->type());
    if (a == nullptr || vt != have) {
      a = activations(outs[i].w->type(), x, n_tokens, n_in, a == nullptr ? act_ : act2_);
      have = vt;
    }
    cuda::DeviceMatrix run[3];
    float* ys[3];
    int n = 0;
    while (i + size_t(n) < outs.size() && n < 3 && outs[i + n].w->type() == outs[i].w->type() &&
           outs[i + n].w->n_in() == n_in) {
      run[n] = device_matrix(*outs[i + n].w);
      ys[n] = outs[i + n].y;
      ++n;
    }
    if (n > 1 && cuda::matmul_multi_fits(run, n, n_tokens)) {
      cuda::matmul_multi(run, n, a, n_tokens, ys);
    } else {
      for (int j = 0; j < n; ++j) {
        cuda::matmul(run[j], a, n_tokens, ys[j], run[j].n_out,
                     need(scratch_, cuda::matmul_scratch_bytes(run[j], n_tokens)));
      }
    }
    i += size_t(n);
  }
}

void CudaBackend::rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0,
                       float freq_base) {
  const OpScope timed(this, "rope");
  cuda::rope(x, n_tokens, n_heads, head_dim, position(pos0), freq_base);
}

Status CudaBackend::store_kv(KvCache& cache, int64_t il, int64_t pos0, int64_t n_tokens, const float* k,
                             const float* v) {
  const OpScope timed(this, "store_kv");
  POPPER_RETURN_IF_ERROR(cache.check_range(pos0, n_tokens));
  const DeviceKvCache& dc = kv_cache_as<DeviceKvCache>(cache, kCudaDevice);
  cuda::store_kv(dc.layer(il), position(pos0), n_tokens, k, v);
  return Status::success();
}

void CudaBackend::attention(const KvCache& cache, int64_t il, const float* q, int64_t n_tokens, int64_t pos0,
                            const AttentionShape& s, float* out) {
  const OpScope timed(this, "attention");
  const DeviceKvCache& dc = kv_cache_as<DeviceKvCache>(cache, kCudaDevice);
  // A step that may be recorded must not size its grid by the position it runs at.
  const int64_t bound = step_recordable_ ? cache.capacity() : pos0 + n_tokens;
  void* scratch = need(attn_scratch_, cuda::attention_scratch_bytes(n_tokens, s.n_head, s.head_dim, bound));
  cuda::attention(dc.layer(il), q, n_tokens, position(pos0), bound, s.n_head, s.scale, out, scratch);
}

void CudaBackend::moe_route(const BackendWeight& gate_inp, const float* x, int64_t n_tokens, int64_t k,
                            int32_t* ids, float* weights) {
  const OpScope timed(this, "moe_route");
  const int64_t n_expert = gate_inp.n_out();
  float* logits = need_floats(logits_, n_tokens * n_expert);
  // Never cuBLAS: a token's router logits must not depend on the batch it came in (prefill vs
  // decode), as they do not on the CPU.
  matmul_f32(device_matrix(gate_inp), x, n_tokens, logits, act_, /*allow_cublas=*/false);
  // One token: the routing kernel writes the expert grouping too, for the moe_ffn that follows
  // with these ids (a decode step then has one launch fewer per layer).
  cuda::SingleTokenGroups one;
  grouped_ids_ = nullptr;
  if (n_tokens == 1) {
    one = {need_ints(groups_, 3 * std::max<int64_t>(k, n_expert)), need_ints(rows_, k),
           need_ints(slot_row_, k), need_ints(group_stats_, 2)};
    grouped_ids_ = ids;
  }
  cuda::route_top_k(logits, n_tokens, n_expert, k, ids, weights, one);
}

void CudaBackend::moe_ffn(const FfnWeights& experts, const float* x, int64_t n_tokens, const int32_t* ids,
                          const float* weights, int64_t k, float* out) {
  const OpScope timed(this, "moe_ffn");
  const int64_t n_expert = experts.gate->n_expert();
  const int64_t n_embd = experts.gate->n_in();
  const int64_t n_ff = experts.gate->n_out();
  const int64_t n_assign = n_tokens * k;
  // Group (token, slot) assignments by expert on the device: expert e's group is a run of rows
  // of the grouped buffers, and each group's weights are read once per call.
  int32_t* groups = need_ints(groups_, 3 * n_expert);
  int32_t* rows = need_ints(rows_, n_assign);
  int32_t* slot_row = need_ints(slot_row_, n_assign);
  int32_t* stats = need_ints(group_stats_, 2);
  // moe_route already grouped a single token's ids (the same ids: nothing ran in between).
  if (!(n_tokens == 1 && ids == grouped_ids_)) {
    cuda::group_by_expert(ids, n_assign, k, n_expert, groups, rows, slot_row, stats);
  }
  grouped_ids_ = nullptr;
  int64_t n_groups = std::min(n_assign, n_expert), max_count = n_tokens;  // bounds: no host wait
  if (n_tokens > kHostFreeMoeTokens) {
    int32_t host_stats[2];
    cuda::download(host_stats, stats, sizeof host_stats);
    n_groups = host_stats[0];
    max_count = host_stats[1];
  }
  // One token: every grouped row is that token, so its activations are quantised once and read
  // by every group (no gather). More tokens: rows are gathered into grouped order first.
  const bool one_token = n_tokens == 1;
  const float* gx = x;
  if (!one_token) {
    float* gathered = need_floats(moe_x_, n_assign * n_embd);
    cuda::gather_rows(x, rows, n_assign, n_embd, gathered);
    gx = gathered;
  }
  const int64_t in_rows = one_token ? 1 : n_assign;
  const cuda::DeviceMatrix& gate = device_matrix(*experts.gate);
  const cuda::DeviceMatrix& up = device_matrix(*experts.up);
  const cuda::DeviceMatrix& down = device_matrix(*experts.down);
  const void* a_gate = activations(gate.type, gx, in_rows, n_embd, act_);
  const void* a_up = cuda::vec_dot_type(up.type) == cuda::vec_dot_type(gate.type)
                         ? a_gate
                         : activations(up.type, gx, in_rows, n_embd, act2_);
  float* g = need_floats(moe_gate_, n_assign * n_ff);
  float* u = need_floats(moe_up_, n_assign * n_ff);
  if (gate.type == up.type && gate.row_bytes == up.row_bytes) {  // one launch for both
    cuda::matmul_grouped_pair(gate, up, n_ff, a_gate, groups, n_groups, max_count, g, u, one_token);
  } else {
    cuda::matmul_grouped(gate, n_ff, a_gate, groups, n_groups, max_count, g, one_token);
    cuda::matmul_grouped(up, n_ff, a_up, groups, n_groups, max_count, u, one_token);
  }
  // The down projection's input, silu(g) * u, goes straight into its activation format.
  const GgmlType mid_type = cuda::vec_dot_type(down.type);
  const void* a_mid = g;
  if (mid_type == GgmlType::F32) {
    cuda::swiglu(g, u, n_assign * n_ff);
  } else {
    void* q = need(act_, size_t(n_assign * cuda::activation_row_bytes(mid_type, n_ff)));
    cuda::quantize_swiglu(g, u, n_assign, n_ff, mid_type, q);
    a_mid = q;
  }
  float* d = need_floats(moe_down_, n_assign * n_embd);
  cuda::matmul_grouped(down, n_embd, a_mid, groups, n_groups, max_count, d);
  cuda::combine_experts(d, slot_row, weights, n_tokens, k, n_embd, out);
}

void CudaBackend::dense_ffn(const FfnWeights& ffn, const float* x, int64_t n_tokens, float* out) {
  const OpScope timed(this, "dense_ffn");
  const int64_t n_ff = ffn.gate->n_out();
  float* g = need_floats(ffn_gate_, n_tokens * n_ff);
  float* u = need_floats(ffn_up_, n_tokens * n_ff);
  // Gate and up read one x: quantised once when their activation formats agree.
  const cuda::DeviceMatrix& gate = device_matrix(*ffn.gate);
  const cuda::DeviceMatrix& up = device_matrix(*ffn.up);
  const void* a_gate = activations(gate.type, x, n_tokens, gate.n_in, act_);
  const void* a_up = cuda::vec_dot_type(up.type) == cuda::vec_dot_type(gate.type)
                         ? a_gate
                         : activations(up.type, x, n_tokens, up.n_in, act2_);
  cuda::matmul(gate, a_gate, n_tokens, g, n_ff, need(scratch_, cuda::matmul_scratch_bytes(gate, n_tokens)));
  cuda::matmul(up, a_up, n_tokens, u, n_ff, need(scratch_, cuda::matmul_scratch_bytes(up, n_tokens)));
  cuda::swiglu(g, u, n_tokens * n_ff);
  matmul_f32(device_matrix(*ffn.down), g, n_tokens, out, act_);
}

void CudaBackend::add(float* x, const float* y, int64_t n) {
  const OpScope timed(this, "add");
  cuda::add(x, y, n);
}

void CudaBackend::add_rmsnorm(float* x, const float* y, const BackendWeight& w, int64_t n_rows, float eps,
                              float* out) {
  const OpScope timed(this, "add_rmsnorm");
  cuda::add_rmsnorm(x, y, device_norm(w), n_rows, w.n_in(), eps, out);
}

void CudaBackend::rmsnorm_rope(float* x, const BackendWeight& w, int64_t n_tokens, int64_t n_heads, float eps,
                               int64_t pos0, float freq_base) {
  const OpScope timed(this, "rmsnorm_rope");
  cuda::rmsnorm_rope(x, device_norm(w), n_tokens, n_heads, w.n_in(), eps, position(pos0), freq_base);
}

void CudaBackend::output_logits(const BackendWeight& norm, const BackendWeight& output, const float* x,
                                int64_t n_rows, float eps, float* logits) {
  const OpScope timed(this, "output_logits");
  float* xn = need_floats(norm_, n_rows * norm.n_in());
  cuda::rmsnorm(x, device_norm(norm), n_rows, norm.n_in(), eps, xn);
  matmul_f32(device_matrix(output), xn, n_rows, logits, act_);
}

}  // namespace popper
