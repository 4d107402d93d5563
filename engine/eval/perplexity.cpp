#include "engine/eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "engine/core/atomic_file.h"
#include "engine/eval/base_logits.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"

namespace popper::eval {
namespace {

// A model ready to score chunks: its backend and one session whose cache is emptied per chunk.
struct Runner {
  std::string path;
  std::unique_ptr<Model> model;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Session> session;
  std::vector<float> last;    // [n_vocab] scratch for the unscored first half
  std::vector<float> logits;  // [n_ctx - n_ctx/2, n_vocab]

  int64_t n_vocab() const { return model->config().n_vocab; }

  // The logits of positions n_ctx/2 .. n_ctx-1 of `chunk` (n_ctx tokens, BOS already in place),
  // from an empty cache. The first half runs without keeping its logits (llama-perplexity asks
  // for no outputs there).
  Status run_chunk(std::span<const int32_t> chunk) {
    const int64_t first = static_cast<int64_t>(chunk.size()) / 2;
    session->cache().truncate(0);
    Status st = session->forward(chunk.subspan(0, static_cast<size_t>(first)), last.data());
    if (!st.ok()) return make_error(path, ": ", st.message());
    logits.clear();
    st = session->forward(chunk.subspan(static_cast<size_t>(first)), last.data(), &logits);
    if (!st.ok()) return make_error(path, ": ", st.message());
    return Status::success();
  }
  std::span<const float> row(int64_t i) const {
    return {logits.data() + i * n_vocab(), static_cast<size_t>(n_vocab())};
  }
};

Result<std::unique_ptr<Runner>> load_runner(const std::string& path, const PerplexityJob& job,
                                            int64_t n_ctx) {
  auto r = std::make_unique<Runner>();
  r->path = path;
  auto model = Model::load(path);
  if (!model.ok()) return model.error();
  r->model = std::move(*model);
  auto backend = make_backend(job.backend, job.n_threads, r->model.get());
  if (!backend.ok()) return make_error(path, ": ", backend.message());
  r->backend = std::move(*backend);
  SessionOptions so;
  so.capacity = n_ctx;
  so.kv_type = job.kv_type;
  so.max_batch = std::min(job.n_batch, n_ctx);
  r->session = std::make_unique<Session>(*r->model, *r->backend, so);
  r->last.resize(static_cast<size_t>(r->n_vocab()));
  return r;
}

// The text's tokens as llama-perplexity's common_tokenize(ctx, text, add_special = true,
// parse_special = false) makes them: special-token text is plain text (unless asked), BOS first when the
// vocabulary asks for it (tokenizer.ggml.add_bos_token; llama.cpp's default for a gpt2/qwen2
// vocabulary is false).
struct TextTokens {
  std::vector<int32_t> tokens;
  bool add_bos = false;
  int32_t bos = -1;
};

Result<bool> read_add_bos(const GgufFile& file) {
  const GgufValue* v = file.find("tokenizer.ggml.add_bos_token");
  if (v == nullptr) return false;
  if (!v->as_bool()) return make_error(file.path(), ": tokenizer.ggml.add_bos_token: want a bool");
  return *v->as_bool();
}

Result<TextTokens> tokenize_text(const Model& model, const std::string& text, bool parse_special) {
  auto tokenizer = Tokenizer::from_gguf(model.file());
  if (!tokenizer.ok()) return tokenizer.error();
  TextTokens t;
  auto add_bos = read_add_bos(model.file());
  if (!add_bos.ok()) return add_bos.error();
  t.add_bos = *add_bos;
  if (t.add_bos) {
    if (!tokenizer->bos_id())
      return make_error(model.file().path(), ": add_bos_token is set but there is no bos_token_id");
    t.bos = *tokenizer->bos_id();
    t.tokens.push_back(t.bos);
  }
  std::vector<int32_t> ids = tokenizer->encode(text, parse_special);
  t.tokens.insert(t.tokens.end(), ids.begin(), ids.end());
  return t;
}

}  // namespace

Result<PerplexityResult> evaluate_perplexity(const PerplexityJob& job,
                                             const std::function<void(const PerplexityProgress&)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (job.n_batch < 1) return make_error("n_batch ", job.n_batch, ": want >= 1");
  if (job.n_chunks == 0 || job.n_chunks < -1)
    return make_error("chunks ", job.n_chunks, ": want >= 1 (or -1 for all)");
  if (!job.kl_base.empty() && !job.save_kl_base.empty())
    return make_error("a base to score against and a base to save are two runs: give one of them");
  PerplexityResult result;

  // The tokens and n_ctx come from the base file when there is one, else from the text.
  std::unique_ptr<BaseLogitsReader> base_file;
  const bool have_base = !job.kl_base.empty();
  if (have_base && is_base_logits_file(job.kl_base)) {
    auto reader = BaseLogitsReader::open(job.kl_base);
    if (!reader.ok()) return reader.error();
    base_file = std::move(*reader);
    if (base_file->n_ctx() != job.n_ctx)
      result.warnings.push_back(str_cat("n_ctx ", base_file->n_ctx(), " from the base file ", job.kl_base));
  }
  const int64_t n_ctx = base_file ? base_file->n_ctx() : job.n_ctx;
  if (n_ctx < 4) return make_error("n_ctx ", n_ctx, ": want >= 4 (half of each chunk is context)");

  auto runner = load_runner(job.model, job, n_ctx);
  if (!runner.ok()) return runner.error();
  Runner& model = **runner;
  std::unique_ptr<Runner> base_model;
  if (have_base && !base_file) {
    auto b = load_runner(job.kl_base, job, n_ctx);
    if (!b.ok()) return b.error();
    base_model = std::move(*b);
  }
  if (n_ctx > model.model->config().n_ctx_train)
    result.warnings.push_back(str_cat("n_ctx ", n_ctx, " is beyond the model's training context of ",
                                      model.model->config().n_ctx_train));

  TextTokens text;
  if (base_file) {
    text.tokens = base_file->tokens();
    auto add_bos = read_add_bos(model.model->file());
    if (!add_bos.ok()) return add_bos.error();
    text.add_bos = *add_bos;
    if (text.add_bos) {
      auto tokenizer = Tokenizer::from_gguf(model.model->file());
      if (!tokenizer.ok()) return tokenizer.error();
      if (!tokenizer->bos_id())
        return make_error(job.model, ": add_bos_token is set but there is no bos_token_id");
      text.bos = *tokenizer->bos_id();
    }
  } else {
    auto contents = read_file(job.text);
    if (!contents.ok()) return contents.error();
    auto tokens = tokenize_text(base_model ? *base_model->model : *model.model, *contents, job.parse_special);
    if (!tokens.ok()) return tokens.error();
    text = std::move(*tokens);
  }
  result.n_tokens = static_cast<int64_t>(text.tokens.size());
  result.add_bos = text.add_bos;
  result.n_ctx = n_ctx;

  const int64_t n_vocab = model.n_vocab();
  const int64_t base_vocab = base_file ? base_file->n_vocab() : base_model ? base_model->n_vocab() : n_vocab;
  if (base_vocab != n_vocab)
    return make_error(job.kl_base, ": the base has a vocabulary of ", base_vocab, ", the model ", job.model,
                      " of ", n_vocab, "; KL needs the same vocabulary");
  if (base_file) {
    result.n_chunk = base_file->n_chunk();
    if (job.n_chunks > 0) result.n_chunk = std::min(result.n_chunk, job.n_chunks);
  } else {
    if (result.n_tokens < 2 * n_ctx)
      return make_error(job.text, ": tokenizes to ", result.n_tokens,
                        " tokens; perplexity with a context of ", n_ctx, " needs at least ", 2 * n_ctx,
                        " (two chunks, as llama-perplexity requires)");
    result.n_chunk = result.n_tokens / n_ctx;
    if (job.n_chunks > 0) result.n_chunk = std::min(result.n_chunk, job.n_chunks);
  }

  std::unique_ptr<BaseLogitsWriter> save;
  if (!job.save_kl_base.empty()) {
    auto w = BaseLogitsWriter::open(job.save_kl_base, n_ctx, n_vocab, result.n_chunk,
                                    std::span<const int32_t>(text.tokens).subspan(0, result.n_chunk * n_ctx));
    if (!w.ok()) return w.error();
    save = std::move(*w);
  }

  const int64_t first = n_ctx / 2;
  const int64_t n_score = scored_per_chunk(n_ctx);
  const int64_t nv = base_record_u16s(n_vocab);
  std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
  std::vector<uint16_t> records;
  PplSums ppl;
  KlSums kl;
  for (int64_t c = 0; c < result.n_chunk; ++c) {
    const int32_t* start = text.tokens.data() + c * n_ctx;
    std::copy(start, start + n_ctx, chunk.begin());
    if (text.add_bos) chunk[0] = text.bos;
    auto next = [&](int64_t i) { return start[first + i + 1]; };

    if (base_file) {
      POPPER_RETURN_IF_ERROR(base_file->read_chunk(records));
    } else if (base_model) {
      POPPER_RETURN_IF_ERROR(base_model->run_chunk(chunk));
      records.resize(static_cast<size_t>(n_score * nv));
      for (int64_t i = 0; i < n_score; ++i)
        encode_base_record(base_model->row(i), next(i), records.data() + i * nv);
    }
    POPPER_RETURN_IF_ERROR(model.run_chunk(chunk));
    if (have_base) {
      for (int64_t i = 0; i < n_score; ++i) kl.add(model.row(i), records.data() + i * nv, next(i));
      result.chunk_ppl.push_back(std::exp(kl.sum_nll / static_cast<double>(kl.count)));
    } else if (save) {
      // llama-perplexity, when it saves a base, takes each nll from the coding pass.
      records.resize(static_cast<size_t>(n_score * nv));
      for (int64_t i = 0; i < n_score; ++i)
        ppl.add_nll(encode_base_record(model.row(i), next(i), records.data() + i * nv));
      result.chunk_ppl.push_back(ppl.ppl());
    } else {
      for (int64_t i = 0; i < n_score; ++i) ppl.add(model.row(i), next(i));
      result.chunk_ppl.push_back(ppl.ppl());
    }
    if (save) POPPER_RETURN_IF_ERROR(save->append_chunk(records));
    if (progress) {
      PerplexityProgress p{c + 1, result.n_chunk, result.chunk_ppl.back(), {}, {}, seconds()};
      if (have_base) {
        p.kld = kl.sum_kld / static_cast<double>(kl.count);
        p.same_top = static_cast<double>(kl.n_same_top) / static_cast<double>(kl.count);
      }
      progress(p);
    }
  }
  if (save) POPPER_RETURN_IF_ERROR(save->commit());

  if (have_base) {
    result.kl = summarise(kl);
    result.ppl = result.kl->ppl;
    result.n_scored = kl.count;
  } else {
    result.ppl = {ppl.ppl(), ppl.ppl_uncertainty()};
    result.n_scored = ppl.count;
  }
  result.seconds = seconds();
  return result;
}

}  // namespace popper::eval
