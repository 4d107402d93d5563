// Fuzz target: the byte-level BPE tokenizer (engine/tokenizer/tokenizer.h) on the committed
// trained model's vocabulary (falsifiers/fixtures/trained/trained-qwen3-bf16.gguf).
//
// Properties, for any bytes (valid UTF-8 or not): every id encode gives is in the vocabulary;
// decode(encode(x)) == x, with special-token parsing on (control tokens written in the text
// come back as their text) and off; streaming decode (every push() then finish()) equals
// decode; decoding ids of the input's own bytes read as token ids never fails.
#include <memory>
#include <string_view>

#include "engine/gguf/gguf_reader.h"
#include "engine/tokenizer/tokenizer.h"
#include "falsifiers/fuzz/fuzz_target.h"

namespace popper::fuzz {
namespace {

constexpr const char* kFixture = "/falsifiers/fixtures/trained/trained-qwen3-bf16.gguf";

const Tokenizer& tokenizer() {
  static const std::unique_ptr<Tokenizer> t = [] {
    auto f = GgufFile::open(source_dir() + kFixture);
    POPPER_CHECK(f.ok(), "fuzz: ", f.message());  // the fixture is committed: missing is a setup bug
    auto tok = Tokenizer::from_gguf(**f);
    POPPER_CHECK(tok.ok(), "fuzz: ", tok.message());
    return std::make_unique<Tokenizer>(std::move(*tok));
  }();
  return *t;
}

void tokenizer_one_input(Bytes data) {
  const Tokenizer& tok = tokenizer();
  const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
  for (bool special : {true, false}) {
    const std::vector<TokenId> ids = tok.encode(text, special);
    for (TokenId id : ids) fuzz_require(tok.valid_id(id), "encode gives vocabulary ids");
    const std::string back = tok.decode(ids, /*render_special=*/true);
    fuzz_require(back == text,
                 std::string("decode(encode(x)) == x with parse_special ") + (special ? "on" : "off"));
    StreamDecoder stream(tok);
    std::string streamed;
    for (TokenId id : ids) streamed += stream.push(id);
    streamed += stream.finish();
    fuzz_require(streamed == back, "streaming decode equals decode");
  }
  // The input's bytes as little-endian ids, reduced into the vocabulary: decode is total on
  // valid ids, with control tokens rendered or not.
  std::vector<TokenId> ids;
  for (size_t i = 0; i + 1 < data.size(); i += 2)
    ids.push_back(TokenId((data[i] | data[i + 1] << 8) % tok.n_vocab()));
  std::string with = tok.decode(ids, true), without = tok.decode(ids, false);
  fuzz_require(without.size() <= with.size(), "leaving control tokens out never adds bytes");
}

// Seeds: the tokenizer goldens' texts (falsifiers/fixtures/tokenizer/goldens.json) and the
// chat goldens' rendered prompts (ChatML control tokens, think blocks).
int tokenizer_seeds(const std::string& dir) {
  int n = 0;
  for (const char* rel :
       {"falsifiers/fixtures/tokenizer/goldens.json", "falsifiers/fixtures/tokenizer/chat_goldens.json"}) {
    const auto goldens = read_json_fixture(rel);
    if (!goldens.is_object() || !goldens.contains("cases")) return -1;
    for (const auto& c : goldens["cases"]) {
      const std::string text = c.value("text", c.value("rendered", ""));
      if (!text.empty() && !write_seed(dir, "golden-" + std::to_string(n++), text)) return -1;
    }
  }
  return n;
}

}  // namespace
}  // namespace popper::fuzz

POPPER_FUZZ_TARGET(tokenizer, popper::fuzz::tokenizer_one_input, popper::fuzz::tokenizer_seeds);
