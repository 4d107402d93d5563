// Tokenizer throughput on the 151936-id synthetic Qwen3 vocabulary: BM_Tokenize/<bytes> encodes
// mixed English, code, CJK, emoji and chat markup (1 KB, 10 KB, 100 KB), reporting bytes/s and
// tokens/s. The contract target: 100 KB in well under 100 ms.
#include <benchmark/benchmark.h>

#include <memory>

#include "engine/core/result.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/gguf/gguf_writer.h"
#include "engine/synth/vocab.h"
#include "engine/tokenizer/tokenizer.h"

namespace popper {
namespace {

constexpr int64_t kQwen3Vocab = 151936;

const Tokenizer& full_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = [] {
    GgufWriter w;
    w.add_kv("general.architecture", GgufValue::string("qwen3moe"));
    add_tokenizer_metadata(w, build_synth_vocab(kQwen3Vocab));
    auto bytes = w.write_to_bytes();
    POPPER_CHECK(bytes.ok(), "", bytes.message());
    auto f = GgufFile::parse("synth-vocab.gguf", *bytes);
    POPPER_CHECK(f.ok(), "", f.message());
    auto t = Tokenizer::from_gguf(**f);
    POPPER_CHECK(t.ok(), "", t.message());
    return std::make_unique<Tokenizer>(std::move(t.value()));
  }();
  return *tok;
}

// Mixed text of exactly `n` bytes (cut at a byte boundary: the tail may be a partial sequence,
// which the tokenizer must handle anyway).
std::string mixed_text(size_t n) {
  static const char* kParts[] = {
      "The quick brown fox jumps over the lazy dog. ",
      "A language model reads text as a sequence of tokens, and it writes one token at a time.\n",
      "def forward(self, x):\n    for layer in self.layers:\n        x = layer(x)\n    return x\n\n",
      "for (int i = 0; i < n; ++i) { sum += x[i] * y[i]; }\r\n",
      "日本語のテキストと中文文本。 ",
      "emoji 🙂👍🏽 and numbers 3.14159, 2048, 151936. ",
      "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
      "    indented     with   runs of    spaces\t\ttabs\n\n\n",
  };
  std::string s;
  for (size_t i = 0; s.size() < n; ++i) s += kParts[(i * 5 + i / 8) % 8];
  s.resize(n);
  return s;
}

void BM_Tokenize(benchmark::State& state) {
  const Tokenizer& tok = full_tokenizer();
  const std::string text = mixed_text(static_cast<size_t>(state.range(0)));
  size_t n_tokens = 0;
  for (auto _ : state) {
    auto ids = tok.encode(text);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(n_tokens) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["bytes_per_token"] = static_cast<double>(text.size()) / static_cast<double>(n_tokens);
}
BENCHMARK(BM_Tokenize)->Arg(1024)->Arg(10 * 1024)->Arg(100 * 1024)->Unit(benchmark::kMicrosecond);

void BM_Detokenize(benchmark::State& state) {
  const Tokenizer& tok = full_tokenizer();
  const auto ids = tok.encode(mixed_text(static_cast<size_t>(state.range(0))));
  for (auto _ : state) {
    std::string s = tok.decode(ids);
    benchmark::DoNotOptimize(s.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Detokenize)->Arg(100 * 1024)->Unit(benchmark::kMicrosecond);

void BM_BuildSynthVocab(benchmark::State& state) {
  for (auto _ : state) {
    SynthVocab v = build_synth_vocab(state.range(0));
    benchmark::DoNotOptimize(v.tokens.data());
  }
}
BENCHMARK(BM_BuildSynthVocab)->Arg(kQwen3Vocab)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace popper
