// Falsifiers for engine/tokenizer and the synthetic vocabulary: exact round trips, the Qwen2
// pre-tokenizer's splits, special tokens, streaming decode, load errors, and token ids compared
// with llama.cpp's tokenizer on the same vocabulary (fixtures/tokenizer/goldens.json, made by
// scripts/make_tokenizer_goldens.py).
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <unordered_map>
#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.h"
#include "engine/core/rng.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/gguf/gguf_writer.h"
#include "engine/synth/vocab.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"

namespace popper {
namespace {

constexpr int64_t kTinyVocab = 2048;     // the tiny preset's n_vocab
constexpr int64_t kQwen3Vocab = 151936;  // Qwen3's n_vocab
// Speed is benchmarks/tokenizer_bench.cpp's job (BM_BuildSynthVocab, BM_Tokenize): a wall-clock
// bound in a unit test fails on a loaded machine and passes on a slow build, so tests here
// only record how long things took.

std::unique_ptr<GgufFile> vocab_file(const SynthVocab& v, const std::string& name) {
  GgufWriter w;
  w.add_kv("general.architecture", GgufValue::string("qwen3"));
  add_tokenizer_metadata(w, v);
  auto bytes = w.write_to_bytes();
  POPPER_CHECK(bytes.ok(), "", bytes.message());
  auto f = GgufFile::parse(name, *bytes);
  POPPER_CHECK(f.ok(), "", f.message());
  return std::move(f.value());
}

const SynthVocab& vocab(int64_t n) {
  static std::map<int64_t, SynthVocab> cache;
  auto it = cache.find(n);
  if (it == cache.end()) it = cache.emplace(n, build_synth_vocab(n)).first;
  return it->second;
}

const Tokenizer& tokenizer(int64_t n) {
  static std::map<int64_t, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(n);
  if (it == cache.end()) {
    auto f = vocab_file(vocab(n), "synth-vocab-" + std::to_string(n) + ".gguf");
    auto t = Tokenizer::from_gguf(*f);
    POPPER_CHECK(t.ok(), "", t.message());
    it = cache.emplace(n, std::make_unique<Tokenizer>(std::move(t.value()))).first;
  }
  return *it->second;
}

// ---- synthetic vocabulary -------------------------------------------------------------------

TEST(SynthVocab, FullVocabHasQwen3Layout) {
  RecordProperty("falsification_id", "TOKENIZER-SYNTH-LAYOUT");
  const SynthVocab& v = vocab(kQwen3Vocab);
  ASSERT_EQ(v.tokens.size(), static_cast<size_t>(kQwen3Vocab));
  ASSERT_EQ(v.token_types.size(), v.tokens.size());
  EXPECT_EQ(v.tokens[0], "!");
  EXPECT_EQ(v.tokens[198], "Ċ");  // '\n'
  EXPECT_EQ(v.tokens[220], "Ġ");  // ' '
  EXPECT_EQ(v.tokens[151643], "<|endoftext|>");
  EXPECT_EQ(v.tokens[151644], "<|im_start|>");
  EXPECT_EQ(v.tokens[151645], "<|im_end|>");
  EXPECT_EQ(v.tokens[151657], "<tool_call>");
  EXPECT_EQ(v.tokens[151667], "<think>");
  EXPECT_EQ(v.tokens[151668], "</think>");
  EXPECT_EQ(v.tokens[151669], "[PAD151669]");
  EXPECT_EQ(v.tokens.back(), "[PAD151935]");
  EXPECT_EQ(v.eos_id, 151645);
  EXPECT_EQ(v.pad_id, 151643);
  EXPECT_EQ(v.bos_id, 151643);
  EXPECT_EQ(v.merges.size(), static_cast<size_t>(151643 - 256));
  EXPECT_EQ(v.token_types[100], static_cast<int32_t>(TokenType::kNormal));
  EXPECT_EQ(v.token_types[151644], static_cast<int32_t>(TokenType::kControl));
  EXPECT_EQ(v.token_types[151659], static_cast<int32_t>(TokenType::kControl));  // <|fim_prefix|>
  EXPECT_EQ(v.token_types[151667], static_cast<int32_t>(TokenType::kUserDefined));
  EXPECT_EQ(v.token_types[151700], static_cast<int32_t>(TokenType::kUnused));
}

TEST(SynthVocab, TinyVocabPutsAddedTokensAfterNVocabMinus32) {
  const SynthVocab& v = vocab(kTinyVocab);
  ASSERT_EQ(v.tokens.size(), static_cast<size_t>(kTinyVocab));
  EXPECT_EQ(v.tokens[kTinyVocab - 32], "<|endoftext|>");
  EXPECT_EQ(v.tokens[kTinyVocab - 32 + 25], "</think>");
  EXPECT_EQ(v.eos_id, kTinyVocab - 30);
  EXPECT_EQ(v.tokens.back(), "[PAD2047]");
}

TEST(SynthVocab, EveryMergeJoinsTwoEarlierTokensIntoItsToken) {
  RecordProperty("falsification_id", "TOKENIZER-SYNTH-MERGES");
  for (int64_t n : {kTinyVocab, kQwen3Vocab}) {
    const SynthVocab& v = vocab(n);
    std::unordered_map<std::string, int64_t> id_of;
    for (size_t i = 0; i < v.tokens.size(); ++i) ASSERT_TRUE(id_of.emplace(v.tokens[i], i).second) << "duplicate " << v.tokens[i];
    std::vector<bool> produced(v.tokens.size(), false);
    for (size_t r = 0; r < v.merges.size(); ++r) {
      const std::string& m = v.merges[r];
      const size_t sp = m.find(' ');
      ASSERT_NE(sp, std::string::npos) << m;
      const auto a = id_of.find(m.substr(0, sp)), b = id_of.find(m.substr(sp + 1)),
                 c = id_of.find(m.substr(0, sp) + m.substr(sp + 1));
      ASSERT_TRUE(a != id_of.end() && b != id_of.end() && c != id_of.end()) << "merge " << r << ": " << m;
      EXPECT_LT(a->second, c->second) << m;
      EXPECT_LT(b->second, c->second) << m;
      EXPECT_EQ(v.token_types[c->second], static_cast<int32_t>(TokenType::kNormal));
      produced[c->second] = true;
    }
    for (int64_t id = 256; id < synth_n_regular(n); ++id) EXPECT_TRUE(produced[id]) << "token " << id << " has no merge";
  }
}

TEST(SynthVocab, EveryRegularTokenIsReachedByBpeFromItsOwnText) {
  RecordProperty("falsification_id", "TOKENIZER-SYNTH-REACHABLE");
  for (int64_t n : {kTinyVocab, kQwen3Vocab}) {
    const Tokenizer& t = tokenizer(n);
    int64_t unreachable = 0;
    for (TokenId id = 0; id < synth_n_regular(n); ++id) {
      const auto ids = t.encode(t.piece(id), false);
      if (ids.size() != 1 || ids[0] != id) {
        if (++unreachable <= 5) ADD_FAILURE() << "vocab " << n << ": token " << id << " '" << t.token_text(id) << "' encodes to " << ids.size() << " tokens";
      }
    }
    EXPECT_EQ(unreachable, 0) << "vocab " << n;
  }
}

TEST(SynthVocab, CommonWordsAreSingleTokens) {
  const Tokenizer& t = tokenizer(kQwen3Vocab);
  for (const char* word : {"The", " the", " model", " token", " and", "def", " return", " number"}) {
    EXPECT_EQ(t.encode(word).size(), 1u) << "'" << word << "'";
  }
}

TEST(SynthVocab, IsDeterministic) {
  const auto start = std::chrono::steady_clock::now();
  const SynthVocab again = build_synth_vocab(kQwen3Vocab);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("full_vocab_build_s", std::to_string(s));
  const SynthVocab& first = vocab(kQwen3Vocab);
  EXPECT_EQ(again.tokens, first.tokens);
  EXPECT_EQ(again.merges, first.merges);
  EXPECT_EQ(again.token_types, first.token_types);
}

TEST(SynthVocab, GgufKeysHaveTheTypesOfARealQwen3File) {
  auto f = vocab_file(vocab(kTinyVocab), "tiny.gguf");
  const auto type_of = [&](const char* key) {
    const GgufValue* v = f->find(key);
    return v ? v->type() : GgufValueType::UINT8;
  };
  EXPECT_EQ(*f->find("tokenizer.ggml.model")->as_string(), "gpt2");
  EXPECT_EQ(*f->find("tokenizer.ggml.pre")->as_string(), "qwen2");
  EXPECT_EQ(f->find("tokenizer.ggml.tokens")->as_array()->elem_type, GgufValueType::STRING);
  EXPECT_EQ(f->find("tokenizer.ggml.token_type")->as_array()->elem_type, GgufValueType::INT32);
  EXPECT_EQ(f->find("tokenizer.ggml.merges")->as_array()->elem_type, GgufValueType::STRING);
  EXPECT_EQ(type_of("tokenizer.ggml.eos_token_id"), GgufValueType::UINT32);
  EXPECT_EQ(type_of("tokenizer.ggml.padding_token_id"), GgufValueType::UINT32);
  EXPECT_EQ(type_of("tokenizer.ggml.bos_token_id"), GgufValueType::UINT32);
  EXPECT_EQ(type_of("tokenizer.ggml.add_bos_token"), GgufValueType::BOOL);
  EXPECT_EQ(type_of("tokenizer.chat_template"), GgufValueType::STRING);
}

// ---- pre-tokenizer --------------------------------------------------------------------------

using Words = std::vector<std::string>;
Words split(std::string_view s) {
  Words out;
  for (auto w : qwen2_pre_tokenize(s)) out.emplace_back(w);
  return out;
}

TEST(Qwen2PreTokenizer, SplitsHandCheckedExamples) {
  RecordProperty("falsification_id", "TOKENIZER-PRE-SPLIT");
  EXPECT_EQ(split("Hello world"), (Words{"Hello", " world"}));
  EXPECT_EQ(split("I'm fine, you're IT'S"), (Words{"I", "'m", " fine", ",", " you", "'re", " IT", "'S"}));
  EXPECT_EQ(split("abc123def"), (Words{"abc", "1", "2", "3", "def"}));
  EXPECT_EQ(split("a  b"), (Words{"a", " ", " b"}));
  EXPECT_EQ(split("a   \n\n  b"), (Words{"a", "   \n\n", " ", " b"}));
  EXPECT_EQ(split("x = foo(bar);\n"), (Words{"x", " =", " foo", "(bar", ");\n"}));
  EXPECT_EQ(split("trailing   "), (Words{"trailing", "   "}));
  EXPECT_EQ(split("\r\n\r\n"), (Words{"\r\n\r\n"}));
  EXPECT_EQ(split("\tindent"), (Words{"\tindent"}));
  EXPECT_EQ(split("12.5%"), (Words{"1", "2", ".", "5", "%"}));
  EXPECT_EQ(split("日本語のテキスト"), (Words{"日本語のテキスト"}));
  EXPECT_EQ(split("cafe\xCC\x81!"), (Words{"cafe", "\xCC\x81!"}));      // U+0301 is a mark: not \p{L}
  EXPECT_EQ(split("\xF0\x9F\x99\x82\xF0\x9F\x99\x82 ok"), (Words{"\xF0\x9F\x99\x82\xF0\x9F\x99\x82", " ok"}));
  EXPECT_EQ(split("\xFF\xFE" "abc"), (Words{"\xFF\xFE", "abc"}));       // stray bytes: one "other" each
  EXPECT_EQ(split("x\xC2\xA0y"), (Words{"x", "\xC2\xA0y"}));            // NBSP is \s, prefixes the word
  EXPECT_EQ(split("\x1C" "a"), (Words{"\x1C" "a"}));                    // U+001C is not White_Space
  EXPECT_EQ(split("  "), (Words{"  "}));
  EXPECT_EQ(split(" !!\n\nx"), (Words{" !!\n\n", "x"}));
}

TEST(Qwen2PreTokenizer, WordsConcatenateBackToRandomBytes) {
  Rng rng(7);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s(rng.below(48), '\0');
    for (char& c : s) c = static_cast<char>(rng.below(4) == 0 ? " \n\r\t'a1"[rng.below(7)] : rng.below(256));
    std::string joined;
    for (auto w : qwen2_pre_tokenize(s)) {
      ASSERT_FALSE(w.empty());
      joined += w;
    }
    ASSERT_EQ(joined, s);
  }
}

// ---- encode / decode ------------------------------------------------------------------------

const std::vector<std::string>& round_trip_cases() {
  static const std::vector<std::string> cases = {
      "",
      "Hello, world!",
      "The quick brown fox jumps over the lazy dog.",
      "I'm sure you'll like it; we've been there.",
      "日本語のテキストと中文文本，还有한국어.",
      "emoji: \xF0\x9F\x99\x82\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD family \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9",
      "combining: e\xCC\x81 a\xCC\x8A n\xCC\x83 \xE0\xA4\xA8\xE0\xA4\xBF",
      "numbers 3.14159 1e-6 0x7f 1,000,000 ١٢٣ Ⅻ ½",
      "def f(x):\n    return x ** 2  # square\n",
      "int main() {\n\treturn 0;\n}\r\n",
      "   leading and trailing   ",
      "\n\n\n\t\t  \r\n \r\n",
      "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
      "<|im_end|><|im_start|><|endoftext|>",
      "not special: <|im_star|> <think <|unknown|>",
      "invalid \xFF\xFE bytes \xC3 alone \xE2\x82 cut \xF0\x9F\x99",
      std::string("nul\0byte", 8),
      "\xEF\xBB\xBF" "BOM and \xE2\x80\xA8 line separator",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  };
  return cases;
}

TEST(Tokenizer, DecodeOfEncodeIsTheExactBytes) {
  RecordProperty("falsification_id", "TOKENIZER-ROUND-TRIP");
  for (int64_t n : {kTinyVocab, kQwen3Vocab}) {
    const Tokenizer& t = tokenizer(n);
    for (const std::string& s : round_trip_cases()) {
      EXPECT_EQ(t.decode(t.encode(s)), s) << "vocab " << n << ": '" << s << "'";
      EXPECT_EQ(t.decode(t.encode(s, /*parse_special=*/false)), s) << "vocab " << n << ": '" << s << "'";
    }
  }
}

TEST(Tokenizer, RandomBytesRoundTrip) {
  const Tokenizer& t = tokenizer(kQwen3Vocab);
  Rng rng(11);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s(rng.below(64), '\0');
    for (char& c : s) c = static_cast<char>(rng.below(3) == 0 ? "the <|im_end|>\n"[rng.below(15)] : rng.below(256));
    ASSERT_EQ(t.decode(t.encode(s)), s) << "iteration " << iter;
  }
}

TEST(Tokenizer, SpecialTokensAreMatchedWhole) {
  RecordProperty("falsification_id", "TOKENIZER-SPECIAL");
  const Tokenizer& t = tokenizer(kQwen3Vocab);
  const auto ids = t.encode("<|im_start|>user\nhi<|im_end|><|im_start|>assistant\n<think>x</think>");
  ASSERT_GE(ids.size(), 7u);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(ids.back(), 151668);
  int n_im_end = 0, n_think = 0;
  for (TokenId id : ids) {
    n_im_end += id == 151645;
    n_think += id == 151667;
  }
  EXPECT_EQ(n_im_end, 1);
  EXPECT_EQ(n_think, 1);
  // Without special parsing, control tokens are plain text but user-defined ones still match.
  const auto plain = t.encode("<|im_end|><think>", false);
  EXPECT_GT(plain.size(), 2u);
  EXPECT_EQ(plain.back(), 151667);
  for (TokenId id : plain) EXPECT_NE(id, 151645);
  // A near miss is not a special token.
  for (TokenId id : t.encode("<|im_end|", true)) EXPECT_LT(id, 151643);
}

TEST(Tokenizer, DecodeWithoutSpecialDropsControlTokensOnly) {
  const Tokenizer& t = tokenizer(kQwen3Vocab);
  const std::vector<TokenId> ids = t.encode("<|im_start|>hi<think>ok<|im_end|>");
  EXPECT_EQ(t.decode(ids, false), "hi<think>ok");
  EXPECT_EQ(t.decode(ids, true), "<|im_start|>hi<think>ok<|im_end|>");
  EXPECT_EQ(t.decode(std::vector<TokenId>{151700}), "");  // [PAD151700] is unused
}

TEST(Tokenizer, StreamDecoderHoldsBackSplitUtf8) {
  RecordProperty("falsification_id", "TOKENIZER-STREAM");
  const Tokenizer& t = tokenizer(kTinyVocab);  // the tiny vocab splits CJK and emoji into bytes
  const std::string text = "日本 \xF0\x9F\x99\x82 ok \xFF end";
  const auto ids = t.encode(text);
  StreamDecoder dec(t);
  std::string joined;
  bool held_back = false;
  for (TokenId id : ids) {
    const std::string piece = dec.push(id);
    held_back |= piece.empty();
    // Every chunk handed out ends on a UTF-8 boundary (only the stray 0xFF is invalid).
    EXPECT_EQ(utf8_complete_prefix(piece), piece.size());
    joined += piece;
  }
  joined += dec.finish();
  EXPECT_TRUE(held_back);
  EXPECT_EQ(joined, text);
  StreamDecoder cut(t);
  const std::string partial = cut.push(t.encode("\xE6")[0]);  // first byte of 日 only
  EXPECT_EQ(partial, "");
  EXPECT_EQ(cut.finish(), "\xE6");
}

TEST(Tokenizer, Encodes100KbAndRoundTrips) {
  const Tokenizer& t = tokenizer(kQwen3Vocab);
  std::string text;
  while (text.size() < 100 * 1024) text += round_trip_cases()[(text.size() / 7) % round_trip_cases().size()] + " ";
  const auto start = std::chrono::steady_clock::now();
  const auto ids = t.encode(text);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("encode_100kb_ms", std::to_string(ms));
  EXPECT_EQ(t.decode(ids), text);
}

// ---- load errors ----------------------------------------------------------------------------

std::string load_error(const std::function<void(GgufWriter&)>& extra = {},
                       const char* model = "gpt2", const char* pre = "qwen2") {
  GgufWriter w;
  w.add_kv("tokenizer.ggml.model", GgufValue::string(model));
  w.add_kv("tokenizer.ggml.pre", GgufValue::string(pre));
  if (extra) extra(w);
  auto bytes = w.write_to_bytes();
  POPPER_CHECK(bytes.ok(), "", bytes.message());
  auto f = GgufFile::parse("bad.gguf", *bytes);
  POPPER_CHECK(f.ok(), "", f.message());
  auto t = Tokenizer::from_gguf(**f);
  return t.ok() ? std::string("(loaded)") : t.message();
}

TEST(Tokenizer, RejectsUnsupportedOrInconsistentMetadata) {
  RecordProperty("falsification_id", "TOKENIZER-LOAD-ERRORS");
  const SynthVocab& v = vocab(kTinyVocab);
  const auto tokens = [&](GgufWriter& w) { w.add_kv("tokenizer.ggml.tokens", GgufValue::array(GgufArray::of_strings(v.tokens))); };
  const auto merges = [&](std::vector<std::string> m) {
    return [m](GgufWriter& w) { w.add_kv("tokenizer.ggml.merges", GgufValue::array(GgufArray::of_strings(m))); };
  };
  EXPECT_NE(load_error(tokens, "llama").find("tokenizer.ggml.model: unsupported value 'llama'"), std::string::npos);
  EXPECT_NE(load_error(tokens, "gpt2", "llama3").find("tokenizer.ggml.pre: unsupported value 'llama3'"), std::string::npos);
  EXPECT_NE(load_error().find("tokenizer.ggml.tokens: missing"), std::string::npos);
  EXPECT_NE(load_error(tokens).find("tokenizer.ggml.merges: missing"), std::string::npos);
  EXPECT_NE(load_error([&](GgufWriter& w) {
              tokens(w);
              w.add_kv("tokenizer.ggml.token_type", GgufValue::array(GgufArray::of_i32({1, 1, 3})));
            }).find("token_type: 3 entries, but tokenizer.ggml.tokens has 2048"),
            std::string::npos);
  EXPECT_NE(load_error([&](GgufWriter& w) {
              tokens(w);
              merges({"Ġ t", "ZZZZ QQQQ"})(w);
            }).find("tokenizer.ggml.merges[1]: 'ZZZZ QQQQ': 'ZZZZ' is not a token"),
            std::string::npos);
  EXPECT_NE(load_error([&](GgufWriter& w) {
              tokens(w);
              merges({"nospace"})(w);
            }).find("merges[0]: 'nospace' is not two tokens"),
            std::string::npos);
  EXPECT_NE(load_error([&](GgufWriter& w) {
              tokens(w);
              merges({})(w);
              w.add_kv("tokenizer.ggml.eos_token_id", GgufValue::u32(5000));
            }).find("eos_token_id: id 5000 is outside the vocab [0, 2048)"),
            std::string::npos);
  EXPECT_NE(load_error([&](GgufWriter& w) {
              w.add_kv("tokenizer.ggml.tokens", GgufValue::array(GgufArray::of_strings({"a", "b"})));
              merges({})(w);
            }).find("no token for byte 0x0"),
            std::string::npos);
  EXPECT_NE(load_error([&](GgufWriter& w) {
              w.add_kv("tokenizer.ggml.tokens", GgufValue::u32(3));
            }).find("tokenizer.ggml.tokens: want array of string, got u32"),
            std::string::npos);
  // The well-formed file loads (so the checks above are not failing for another reason).
  EXPECT_EQ(load_error([&](GgufWriter& w) {
              tokens(w);
              merges(v.merges)(w);
            }),
            "(loaded)");
}

// ---- goldens from llama.cpp -----------------------------------------------------------------

TEST(Tokenizer, IdsMatchLlamaCppGoldens) {
  RecordProperty("falsification_id", "TOKENIZER-GOLDEN-LLAMACPP");
  auto text = read_file(std::string(POPPER_SOURCE_DIR) + "/falsifiers/fixtures/tokenizer/goldens.json");
  ASSERT_TRUE(text.ok()) << text.message();
  const auto j = nlohmann::json::parse(*text);
  int checked = 0, agreed = 0;
  for (const auto& c : j.at("cases")) {
    const int64_t n_vocab = c.at("n_vocab").get<int64_t>();
    const std::string s = c.at("text").get<std::string>();
    const auto want = c.at("ids").get<std::vector<TokenId>>();
    const auto got = tokenizer(n_vocab).encode(s, c.value("special", true));
    ++checked;
    agreed += got == want;
    EXPECT_EQ(got, want) << "vocab " << n_vocab << " text '" << s << "'";
  }
  RecordProperty("golden_agreement", std::to_string(agreed) + "/" + std::to_string(checked));
  EXPECT_GE(checked, 50);
}

}  // namespace
}  // namespace popper
