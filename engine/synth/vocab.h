// The synthetic models' tokenizer: a real byte-level BPE vocabulary laid out like Qwen3's.
//
// ids [0, n_regular)            regular tokens: the 256 GPT-2 byte symbols (in GPT-2's
//                               byte-encoder order, so ' ' = "Ġ" = 220 and '\n' = "Ċ" = 198),
//                               then one token per merge, id = 256 + merge rank
// ids [n_regular, +26)          the Qwen3 added tokens in Qwen3's order (<|endoftext|>,
//                               <|im_start|>, <|im_end|>, ..., <think>, </think>)
// ids [n_regular + 26, n_vocab) "[PAD<id>]" fillers (type unused), as convert_hf_to_gguf writes
//
// n_regular is 151643 for n_vocab 151936 (the real Qwen3 ids: <|im_end|> = 151645, <think> =
// 151667) and n_vocab - 32 otherwise. Merges come from real BPE training (most frequent adjacent
// pair, ties to the lowest ids) on a built-in English + code text, so common words are single
// tokens; when that text is exhausted, deterministic synthetic merges (a word piece plus one
// lowercase letter, so BPE can reach them from text) fill the rest. Every merge "a b" joins two earlier tokens into the token with text a+b.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace popper {

class GgufWriter;

// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct SynthVocab {
  std::vector<std::string> tokens;    // byte-level text of each id
  std::vector<int32_t> token_types;   // TokenType values
  std::vector<std::string> merges;    // "a b", rank order
  int32_t eos_id = 0;                 // <|im_end|>
  int32_t pad_id = 0;                 // <|endoftext|>
  int32_t bos_id = 0;                 // <|endoftext|> (never added: add_bos_token = false)
  std::string chat_template;          // the Qwen3 jinja template text
};

// Number of regular (byte + merged) tokens for a vocabulary of n_vocab ids.
int64_t synth_n_regular(int64_t n_vocab);

// Builds the vocabulary; deterministic, takes well under a second for 151936 ids.
// n_vocab must be at least 512 (a caller bug otherwise: it aborts).
SynthVocab build_synth_vocab(int64_t n_vocab);

// Adds the tokenizer keys in the order and with the types of a real Qwen3 GGUF:
// tokenizer.ggml.model "gpt2", .pre "qwen2", .tokens [string], .token_type [i32],
// .merges [string], .eos_token_id / .padding_token_id / .bos_token_id (u32),
// .add_bos_token false, tokenizer.chat_template.
void add_tokenizer_metadata(GgufWriter& w, const SynthVocab& v);

}  // namespace popper
