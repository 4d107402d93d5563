#include "engine/synth/vocab.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "engine/core/result.h"
#include "engine/core/rng.h"
#include "engine/gguf/gguf_writer.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/pre_tokenizer.h"

namespace popper {
namespace {

// Qwen3's added tokens (tokenizer_config.json added_tokens_decoder, ids 151643..151668) and the
// type convert_hf_to_gguf gives each: "special" tokens and any "<|...|>" token are control, the
// others (tool and think tags, marked special: false) user-defined.
struct SpecialToken {
  const char* text;
  TokenType type;
};
constexpr SpecialToken kQwen3Specials[] = {
    {"<|endoftext|>", TokenType::kControl},       {"<|im_start|>", TokenType::kControl},
    {"<|im_end|>", TokenType::kControl},          {"<|object_ref_start|>", TokenType::kControl},
    {"<|object_ref_end|>", TokenType::kControl},  {"<|box_start|>", TokenType::kControl},
    {"<|box_end|>", TokenType::kControl},         {"<|quad_start|>", TokenType::kControl},
    {"<|quad_end|>", TokenType::kControl},        {"<|vision_start|>", TokenType::kControl},
    {"<|vision_end|>", TokenType::kControl},      {"<|vision_pad|>", TokenType::kControl},
    {"<|image_pad|>", TokenType::kControl},       {"<|video_pad|>", TokenType::kControl},
    {"<tool_call>", TokenType::kUserDefined},     {"</tool_call>", TokenType::kUserDefined},
    {"<|fim_prefix|>", TokenType::kControl},      {"<|fim_middle|>", TokenType::kControl},
    {"<|fim_suffix|>", TokenType::kControl},      {"<|fim_pad|>", TokenType::kControl},
    {"<|repo_name|>", TokenType::kControl},       {"<|file_sep|>", TokenType::kControl},
    {"<tool_response>", TokenType::kUserDefined}, {"</tool_response>", TokenType::kUserDefined},
    {"<think>", TokenType::kUserDefined},         {"</think>", TokenType::kUserDefined},
};
constexpr int64_t kNumSpecials = sizeof(kQwen3Specials) / sizeof(kQwen3Specials[0]);
constexpr int64_t kQwen3VocabSize = 151936;
constexpr int64_t kQwen3Regular = 151643;
constexpr int64_t kSmallVocabReserved = 32;  // 26 added tokens + 6 fillers, a multiple of 8
constexpr uint64_t kSyntheticMergeSeed = 0x51574E33564F4342ull;  // "QWN3VOCB"
// Synthetic merges join tokens of at most this many bytes: long random tokens would never be
// used and only slow the BPE of pathological input.
constexpr size_t kMaxSyntheticTokenBytes = 16;

// The training text: plain English and a little code, so frequent words and code idioms become
// single tokens as in a real vocabulary. Written for Popper; any change changes every synthetic
// model's bytes (and the pinned digests).
constexpr std::string_view kTrainingText = R"TXT(
The quick brown fox jumps over the lazy dog. The dog did not move, and the fox ran into the
forest. It was a quiet morning in the small town, and most of the people were still asleep.
A language model reads text as a sequence of tokens. Each token is a number, and the model
learns which number is likely to come next. When the model writes an answer, it picks one
token at a time, and the tokenizer turns the numbers back into text that people can read.
The tokenizer used here is a byte-level BPE: it starts from single bytes and joins the most
frequent pairs, again and again, until common words such as "the", "and", "model" and
"number" are each a single token. Rare words are split into smaller pieces, and any byte that
was never seen on its own still has a token, so every text can be written down.
This is a test. This is only a test. If this were a real emergency, you would have been told
where to go and what to do. Please keep calm, read the instructions, and follow them step by
step. Questions? Ask the person next to you, or write to the help desk before Friday.
In 2024 the team measured 128 experts, 8 of which are used for each token; the hidden size
was 2048 and the context held 40960 positions. Numbers like 3.14159, 1e-6 and 0x7f are common
in code and in papers, and dates look like 2025-11-25 or 25/11/2025.
Why does the server answer with an error? Because the request was missing a field: the
"messages" array must hold at least one message, and each message needs a "role" and a
"content". The server checks the request, and then it sends the prompt to the model.

def tokenize(text, vocab, merges):
    """Split text into words, then apply the merges in rank order."""
    words = pre_tokenize(text)
    ids = []
    for word in words:
        symbols = list(word)
        while len(symbols) > 1:
            pairs = [(merges.get((a, b), None), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
            best = min((p for p in pairs if p[0] is not None), default=None)
            if best is None:
                break
            rank, i = best
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
        ids.extend(vocab[s] for s in symbols)
    return ids

class Model:
    def __init__(self, config):
        self.config = config
        self.layers = [Layer(config, i) for i in range(config.n_layer)]

    def forward(self, tokens, cache=None):
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, cache)
        return self.output(self.norm(x))

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  for (const std::string& arg : args) {
    if (arg == "--help") return 0;
    std::printf("%s\n", arg.c_str());
  }
  return 0;
}

for (int i = 0; i < n; ++i) { sum += x[i] * y[i]; }
const auto result = std::find_if(values.begin(), values.end(), [](int v) { return v > 0; });
if (!result.ok()) return result.error();
return {"status": "ok", "count": len(items), "items": [item.to_dict() for item in items]}
SELECT name, count(*) FROM users WHERE created_at > '2024-01-01' GROUP BY name ORDER BY 2 DESC;
git commit -m "Fix the tokenizer for long inputs" && git push origin main
User: What is the capital of France?
Assistant: The capital of France is Paris. It is also the largest city in the country.
User: And of Italy?
Assistant: The capital of Italy is Rome. Rome is known for its history, its art and its food.
I'm sure you'll like it; we've been there and they're right: it's the best place we'd seen.
)TXT";

// The vocabulary under construction.
struct Builder {
  std::vector<std::string> tokens;
  std::vector<std::string> raw;  // the bytes each token stands for
  std::vector<std::string> merges;
  std::unordered_map<std::string, int32_t> id_of;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merge_of;  // (a << 32 | b) -> (rank, id)
  std::vector<int32_t> byte_ids;  // byte -> token id
  int64_t n_regular = 0;

  bool full() const { return static_cast<int64_t>(tokens.size()) >= n_regular; }

  // Adds the merge a+b; returns the id of the joined token (existing or new).
  int32_t merge(int32_t a, int32_t b) {
    merges.push_back(tokens[a] + " " + tokens[b]);
    std::string joined = tokens[a] + tokens[b];
    auto [it, inserted] = id_of.emplace(joined, static_cast<int32_t>(tokens.size()));
    POPPER_CHECK(it->second >= 0, "merged token collides with an added token: ", it->first);
    if (inserted) {
      tokens.push_back(std::move(joined));
      raw.push_back(raw[a] + raw[b]);
    }
    merge_of.emplace(pair_key(a, b), std::make_pair(static_cast<int32_t>(merges.size() - 1), it->second));
    return it->second;
  }

  static uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

  // BPE of `bytes` with the merges so far: repeatedly join the adjacent pair of lowest rank,
  // leftmost first (the tokenizer's rule, recomputed naively: words here are <= 16 bytes).
  void bpe(std::string_view bytes, std::vector<int32_t>& syms) const {
    syms.clear();
    for (char ch : bytes) syms.push_back(byte_ids[static_cast<uint8_t>(ch)]);
    for (;;) {
      int32_t best_rank = INT32_MAX, best_id = -1;
      size_t best_at = 0;
      for (size_t i = 0; i + 1 < syms.size(); ++i) {
        auto m = merge_of.find(pair_key(syms[i], syms[i + 1]));
        if (m != merge_of.end() && m->second.first < best_rank) {
          best_rank = m->second.first;
          best_id = m->second.second;
          best_at = i;
        }
      }
      if (best_id < 0) return;
      syms[best_at] = best_id;
      syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
    }
  }
};

// Real BPE training on kTrainingText until every word is one token or the vocab is full.
void train_on_text(Builder& b, const std::vector<int32_t>& byte_ids) {
  std::map<std::string_view, int64_t> word_counts;  // ordered: deterministic word order
  for (std::string_view w : qwen2_pre_tokenize(kTrainingText)) ++word_counts[w];
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> counts;
  for (const auto& [w, c] : word_counts) {
    std::vector<int32_t> ids;
    for (char ch : w) ids.push_back(byte_ids[static_cast<uint8_t>(ch)]);
    words.push_back(std::move(ids));
    counts.push_back(c);
  }
  std::unordered_map<uint64_t, int64_t> pair_counts;
  while (!b.full()) {
    pair_counts.clear();
    for (size_t i = 0; i < words.size(); ++i) {
      const auto& w = words[i];
      for (size_t j = 0; j + 1 < w.size(); ++j) {
        pair_counts[(static_cast<uint64_t>(w[j]) << 32) | static_cast<uint32_t>(w[j + 1])] += counts[i];
      }
    }
    if (pair_counts.empty()) return;  // the text is exhausted
    uint64_t best = 0;
    int64_t best_count = -1;
    for (const auto& [key, c] : pair_counts) {
      if (c > best_count || (c == best_count && key < best)) {
        best = key;
        best_count = c;
      }
    }
    const auto left = static_cast<int32_t>(best >> 32);
    const auto right = static_cast<int32_t>(best & 0xFFFFFFFFu);
    const int32_t joined = b.merge(left, right);
    for (auto& w : words) {
      size_t out = 0;
      for (size_t j = 0; j < w.size(); ++j) {
        if (j + 1 < w.size() && w[j] == left && w[j + 1] == right) {
          w[out++] = joined;
          ++j;
        } else {
          w[out++] = w[j];
        }
      }
      w.resize(out);
    }
  }
}

// True for the byte-level text of a word piece: ASCII letters, optionally after one leading
// 'Ġ' (a space). Such a token is always inside one pre-tokenizer word.
bool is_word_piece(std::string_view text) {
  if (text.starts_with("\xC4\xA0")) text.remove_prefix(2);
  if (text.empty()) return false;
  for (char c : text) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
  }
  return true;
}

// Deterministic synthetic merges until the vocab is full: a word piece a plus one lowercase
// letter c, kept only when BPE of a's bytes plus the letter gives exactly [a, c]. The new merge
// ranks last, so BPE then reaches the new token from its own text, and no earlier token loses
// that property (a single symbol has no pair left to merge).
void fill_synthetic(Builder& b) {
  std::vector<int32_t> pieces, syms;
  for (size_t id = 0; id < b.tokens.size(); ++id) {
    if (!is_word_piece(b.tokens[id])) continue;
    b.bpe(b.raw[id], syms);
    if (syms.size() == 1 && syms[0] == static_cast<int32_t>(id)) pieces.push_back(static_cast<int32_t>(id));
  }
  Rng rng(kSyntheticMergeSeed);
  std::string bytes;
  while (!b.full()) {
    const int32_t a = pieces[rng.below(pieces.size())];
    const char letter = static_cast<char>('a' + rng.below(26));
    const int32_t c = b.byte_ids[static_cast<uint8_t>(letter)];
    if (b.raw[a].size() + 1 > kMaxSyntheticTokenBytes) continue;
    if (b.id_of.count(b.tokens[a] + b.tokens[c])) continue;
    bytes.assign(b.raw[a]);
    bytes.push_back(letter);
    b.bpe(bytes, syms);
    if (syms.size() != 2 || syms[0] != a || syms[1] != c) continue;
    pieces.push_back(b.merge(a, c));
  }
}

}  // namespace

int64_t synth_n_regular(int64_t n_vocab) {
  return n_vocab == kQwen3VocabSize ? kQwen3Regular : n_vocab - kSmallVocabReserved;
}

SynthVocab build_synth_vocab(int64_t n_vocab) {
  POPPER_CHECK(n_vocab >= 512, "synthetic vocab needs at least 512 ids, got ", n_vocab);
  Builder b;
  b.n_regular = synth_n_regular(n_vocab);
  b.tokens.reserve(static_cast<size_t>(n_vocab));
  b.raw.reserve(static_cast<size_t>(n_vocab));
  b.merge_of.reserve(static_cast<size_t>(n_vocab));
  b.merges.reserve(static_cast<size_t>(b.n_regular));
  b.id_of.reserve(static_cast<size_t>(n_vocab) * 2);
  // Reserve the added tokens' texts first so no merged token can collide with them.
  for (const SpecialToken& s : kQwen3Specials) b.id_of.emplace(s.text, -1);

  // Byte symbols in GPT-2's order: by the code point each byte maps to.
  std::vector<std::pair<uint32_t, int>> order;
  for (int byte = 0; byte < 256; ++byte) order.emplace_back(byte_to_codepoint(static_cast<uint8_t>(byte)), byte);
  std::sort(order.begin(), order.end());
  std::vector<int32_t> byte_ids(256);
  for (const auto& [cp, byte] : order) {
    std::string text;
    append_utf8(text, cp);
    byte_ids[byte] = static_cast<int32_t>(b.tokens.size());
    b.id_of.emplace(text, byte_ids[byte]);
    b.tokens.push_back(std::move(text));
    b.raw.emplace_back(1, static_cast<char>(byte));
  }
  b.byte_ids = byte_ids;
  train_on_text(b, byte_ids);
  fill_synthetic(b);

  SynthVocab v;
  v.tokens = std::move(b.tokens);
  v.merges = std::move(b.merges);
  v.token_types.assign(v.tokens.size(), static_cast<int32_t>(TokenType::kNormal));
  for (const SpecialToken& s : kQwen3Specials) {
    v.tokens.emplace_back(s.text);
    v.token_types.push_back(static_cast<int32_t>(s.type));
  }
  while (static_cast<int64_t>(v.tokens.size()) < n_vocab) {
    v.tokens.push_back(str_cat("[PAD", v.tokens.size(), "]"));
    v.token_types.push_back(static_cast<int32_t>(TokenType::kUnused));
  }
  const auto n_regular = static_cast<int32_t>(b.n_regular);
  v.pad_id = n_regular;      // <|endoftext|>
  v.bos_id = n_regular;      // <|endoftext|>
  v.eos_id = n_regular + 2;  // <|im_end|>
  v.chat_template = std::string(qwen3_chat_template_text());
  return v;
}

void add_tokenizer_metadata(GgufWriter& w, const SynthVocab& v) {
  w.add_kv("tokenizer.ggml.model", GgufValue::string("gpt2"));
  w.add_kv("tokenizer.ggml.pre", GgufValue::string("qwen2"));
  w.add_kv("tokenizer.ggml.tokens", GgufValue::array(GgufArray::of_strings(v.tokens)));
  w.add_kv("tokenizer.ggml.token_type",
           GgufValue::array(GgufArray::of_i32(std::vector<int64_t>(v.token_types.begin(), v.token_types.end()))));
  w.add_kv("tokenizer.ggml.merges", GgufValue::array(GgufArray::of_strings(v.merges)));
  w.add_kv("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(v.eos_id)));
  w.add_kv("tokenizer.ggml.padding_token_id", GgufValue::u32(static_cast<uint32_t>(v.pad_id)));
  w.add_kv("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(v.bos_id)));
  w.add_kv("tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
  w.add_kv("tokenizer.chat_template", GgufValue::string(v.chat_template));
}

}  // namespace popper
