#include "engine/tokenizer/tokenizer.h"

#include <algorithm>

#include "engine/core/faults.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/pre_tokenizer.h"

namespace popper {
namespace {

// GGUF token types (llama.cpp's llama_token_type).
constexpr int32_t kTypeNormal = 1, kTypeUnknown = 2, kTypeControl = 3, kTypeUserDefined = 4, kTypeUnused = 5,
                  kTypeByte = 6;

uint64_t pair_key(TokenId a, TokenId b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

uint64_t mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xFF51AFD7ED558CCDull;
  k ^= k >> 33;
  return k;
}
constexpr uint64_t kEmptyKey = ~0ull;  // never a real key: ids are < 2^31

const GgufArray* find_array(const GgufFile& f, std::string_view key, GgufValueType elem, std::string& err) {
  const GgufValue* v = f.find(key);
  if (v == nullptr) {
    err = str_cat(f.path(), ": ", key, ": missing");
    return nullptr;
  }
  const GgufArray* a = v->as_array();
  const bool ints_ok = elem == GgufValueType::INT32 && a != nullptr &&
                       (a->elem_type == GgufValueType::INT32 || a->elem_type == GgufValueType::UINT32 ||
                        a->elem_type == GgufValueType::INT64 || a->elem_type == GgufValueType::UINT64 ||
                        a->elem_type == GgufValueType::INT8 || a->elem_type == GgufValueType::UINT8 ||
                        a->elem_type == GgufValueType::INT16 || a->elem_type == GgufValueType::UINT16);
  if (a == nullptr || (a->elem_type != elem && !ints_ok)) {
    err = str_cat(f.path(), ": ", key, ": want array of ", gguf_value_type_name(elem), ", got ",
                  a ? str_cat("array of ", gguf_value_type_name(a->elem_type)) : std::string(gguf_value_type_name(v->type())));
    return nullptr;
  }
  return a;
}

Result<std::optional<TokenId>> read_special_id(const GgufFile& f, std::string_view key, int64_t n_vocab) {
  const GgufValue* v = f.find(key);
  if (v == nullptr) return std::optional<TokenId>();
  const auto id = v->as_i64();
  if (!id) return make_error(f.path(), ": ", key, ": want an integer, got ", gguf_value_type_name(v->type()));
  if (*id < 0 || *id >= n_vocab) return make_error(f.path(), ": ", key, ": id ", *id, " is outside the vocab [0, ", n_vocab, ")");
  return std::optional<TokenId>(static_cast<TokenId>(*id));
}

}  // namespace

Result<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
  const auto string_key = [&](std::string_view key) -> Result<std::string> {
    const GgufValue* v = f.find(key);
    if (v == nullptr) return make_error(f.path(), ": ", key, ": missing");
    if (v->as_string() == nullptr) return make_error(f.path(), ": ", key, ": want string, got ", gguf_value_type_name(v->type()));
    return *v->as_string();
  };
  auto model = string_key("tokenizer.ggml.model");
  if (!model.ok()) return model.error();
  if (*model != "gpt2") {
    return make_error(f.path(), ": tokenizer.ggml.model: unsupported value '", *model, "' (Popper supports 'gpt2', byte-level BPE)");
  }
  auto pre = string_key("tokenizer.ggml.pre");
  if (!pre.ok()) return pre.error();
  if (*pre != "qwen2") {
    return make_error(f.path(), ": tokenizer.ggml.pre: unsupported value '", *pre, "' (Popper supports 'qwen2')");
  }

  std::string err;
  const GgufArray* tokens = find_array(f, "tokenizer.ggml.tokens", GgufValueType::STRING, err);
  if (!tokens) return make_error(err);
  const int64_t n = static_cast<int64_t>(tokens->strings.size());
  if (n == 0 || n > INT32_MAX) return make_error(f.path(), ": tokenizer.ggml.tokens: ", n, " tokens (want 1 .. 2^31-1)");

  Tokenizer t;
  t.pre_ = *pre;
  t.texts_ = tokens->strings;
  t.types_.assign(static_cast<size_t>(n), kTypeNormal);
  if (f.find("tokenizer.ggml.token_type") != nullptr) {  // optional in llama.cpp too: default normal
    const GgufArray* types = find_array(f, "tokenizer.ggml.token_type", GgufValueType::INT32, err);
    if (!types) return make_error(err);
    if (static_cast<int64_t>(types->size()) != n) {
      return make_error(f.path(), ": tokenizer.ggml.token_type: ", types->size(), " entries, but tokenizer.ggml.tokens has ", n);
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t ty = types->ints.empty() ? static_cast<int64_t>(types->uints[i]) : types->ints[i];
      if (ty < kTypeNormal || ty > kTypeByte) {
        return make_error(f.path(), ": tokenizer.ggml.token_type[", i, "]: ", ty, " is not a token type (1..6)");
      }
      t.types_[i] = static_cast<int32_t>(ty);
    }
  }

  size_t id_cap = 16;
  while (id_cap < static_cast<size_t>(n) * 2) id_cap <<= 1;
  t.id_slots_.assign(id_cap, kEmptyKey);
  t.id_mask_ = id_cap - 1;
  t.pieces_.resize(static_cast<size_t>(n));
  t.special_pieces_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const std::string& text = t.texts_[i];
    t.index_token(static_cast<TokenId>(i));  // a repeated text maps to its last id, as in llama.cpp
    switch (t.types_[i]) {
      case kTypeNormal:
      case kTypeByte:
        if (!byte_level_decode(text, t.pieces_[i])) {
          return make_error(f.path(), ": tokenizer.ggml.tokens[", i, "]: normal token '", text,
                            "' holds a character that is not a byte-level symbol");
        }
        t.special_pieces_[i] = t.pieces_[i];
        break;
      case kTypeUserDefined:
        t.pieces_[i] = text;
        t.special_pieces_[i] = text;
        break;
      case kTypeControl:
      case kTypeUnknown:
        t.special_pieces_[i] = text;  // rendered only on request
        break;
      case kTypeUnused:
        break;
    }
    if (!text.empty() && (t.types_[i] == kTypeControl || t.types_[i] == kTypeUserDefined || t.types_[i] == kTypeUnknown)) {
      t.specials_.push_back({text, static_cast<TokenId>(i), t.types_[i] != kTypeUserDefined});
    }
  }
  std::stable_sort(t.specials_.begin(), t.specials_.end(),
                   [](const Special& a, const Special& b) { return a.text.size() > b.text.size(); });

  for (int b = 0; b < 256; ++b) {
    std::string sym;
    append_utf8(sym, byte_to_codepoint(static_cast<uint8_t>(b)));
    const auto it = t.find_token(sym);
    if (!it) {
      return make_error(f.path(), ": tokenizer.ggml.tokens: no token for byte 0x", std::hex, b, std::dec, " ('", sym,
                        "'); a byte-level vocab needs all 256");
    }
    t.byte_token_[b] = *it;
  }

  const GgufArray* merges = find_array(f, "tokenizer.ggml.merges", GgufValueType::STRING, err);
  if (!merges) return make_error(err);
  t.n_merges_ = static_cast<int64_t>(merges->strings.size());
  size_t cap = 16;
  while (cap < static_cast<size_t>(t.n_merges_) * 2) cap <<= 1;
  t.merge_slots_.assign(cap, MergeSlot{kEmptyKey, Merge{0, 0}});
  t.merge_mask_ = cap - 1;
  std::string joined;
  // Fault tokenizer_drops_merge: an off-by-one start skips the highest-priority merge.
  for (int64_t r = fault_on(Fault::kTokenizerDropsMerge) ? 1 : 0; r < t.n_merges_; ++r) {
    const std::string& m = merges->strings[r];
    const size_t space = m.find(' ', 1);  // llama.cpp splits at the first space after index 0
    if (space == std::string::npos) {
      return make_error(f.path(), ": tokenizer.ggml.merges[", r, "]: '", m, "' is not two tokens separated by a space");
    }
    const std::string_view left(m.data(), space), right(m.data() + space + 1, m.size() - space - 1);
    const auto l = t.find_token(left), rt = t.find_token(right);
    joined.assign(left);
    joined.append(right);
    const auto res = t.find_token(joined);
    if (!l || !rt || !res) {
      const std::string_view what = !l ? left : !rt ? right : std::string_view(joined);
      return make_error(f.path(), ": tokenizer.ggml.merges[", r, "]: '", m, "': '", what, "' is not a token");
    }
    const uint64_t key = pair_key(*l, *rt);
    for (uint64_t slot = mix(key) & t.merge_mask_;; slot = (slot + 1) & t.merge_mask_) {
      MergeSlot& s = t.merge_slots_[slot];
      if (s.key == key) break;  // repeated merge: the first (lowest rank) wins
      if (s.key == kEmptyKey) {
        s = MergeSlot{key, Merge{static_cast<int32_t>(r), *res}};
        break;
      }
    }
  }

  auto eos = read_special_id(f, "tokenizer.ggml.eos_token_id", n);
  if (!eos.ok()) return eos.error();
  auto pad = read_special_id(f, "tokenizer.ggml.padding_token_id", n);
  if (!pad.ok()) return pad.error();
  auto bos = read_special_id(f, "tokenizer.ggml.bos_token_id", n);
  if (!bos.ok()) return bos.error();
  t.eos_ = *eos;
  t.pad_ = *pad;
  t.bos_ = *bos;
  return t;
}

// Slots hold (hash tag << 32 | id) so a probe compares texts only when the tags agree.
void Tokenizer::index_token(TokenId id) {
  const std::string& text = texts_[id];
  const uint64_t h = mix(std::hash<std::string_view>()(text));
  const uint64_t tag = h >> 32;
  for (uint64_t slot = h & id_mask_;; slot = (slot + 1) & id_mask_) {
    uint64_t& s = id_slots_[slot];
    if (s == kEmptyKey || ((s >> 32) == tag && texts_[static_cast<uint32_t>(s)] == text)) {
      s = (tag << 32) | static_cast<uint32_t>(id);
      return;
    }
  }
}

std::optional<TokenId> Tokenizer::find_token(std::string_view text) const {
  const uint64_t h = mix(std::hash<std::string_view>()(text));
  const uint64_t tag = h >> 32;
  for (uint64_t slot = h & id_mask_;; slot = (slot + 1) & id_mask_) {
    const uint64_t s = id_slots_[slot];
    if (s == kEmptyKey) return std::nullopt;
    if ((s >> 32) == tag && texts_[static_cast<uint32_t>(s)] == text) return static_cast<TokenId>(static_cast<uint32_t>(s));
  }
}

const Tokenizer::Merge* Tokenizer::find_merge(TokenId left, TokenId right) const {
  const uint64_t key = pair_key(left, right);
  for (uint64_t slot = mix(key) & merge_mask_;; slot = (slot + 1) & merge_mask_) {
    const MergeSlot& s = merge_slots_[slot];
    if (s.key == key) return &s.merge;
    if (s.key == kEmptyKey) return nullptr;
  }
}

void Tokenizer::bpe_word(std::string_view word, std::vector<TokenId>& out) const {
  struct Symbol {
    TokenId id;
    int32_t prev, next;  // -1 at the ends
  };
  struct Bigram {
    int32_t rank, left, right;
    TokenId left_id, right_id, result;
    // Lowest rank first, then leftmost (llama.cpp's llm_bigram_bpe order).
    bool operator<(const Bigram& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  thread_local std::vector<Symbol> syms;
  thread_local std::vector<Bigram> heap;  // a binary heap via std::push_heap / pop_heap
  syms.clear();
  const auto n = static_cast<int32_t>(word.size());
  for (int32_t i = 0; i < n; ++i) syms.push_back({byte_token_[static_cast<uint8_t>(word[i])], i - 1, i + 1 < n ? i + 1 : -1});
  if (n == 1) {
    out.push_back(syms[0].id);
    return;
  }
  heap.clear();
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    if (const Merge* m = find_merge(syms[left].id, syms[right].id)) {
      heap.push_back({m->rank, left, right, syms[left].id, syms[right].id, m->result});
      std::push_heap(heap.begin(), heap.end());
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) try_add(i, i + 1);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Bigram b = heap.back();
    heap.pop_back();
    Symbol& l = syms[b.left];
    Symbol& r = syms[b.right];
    // Stale entry: one side was merged away or changed since it was queued.
    if (l.id != b.left_id || r.id != b.right_id || l.next != b.right) continue;
    l.id = b.result;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    r.id = -1;  // dead
    r.next = -1;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

void Tokenizer::encode_fragment(std::string_view text, std::vector<TokenId>& out,
                                std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>>& cache,
                                std::vector<TokenId>& cache_ids) const {
  thread_local std::vector<std::string_view> words;
  words.clear();
  qwen2_pre_tokenize(text, words);
  for (std::string_view w : words) {
    auto [it, inserted] = cache.try_emplace(w);
    if (inserted) {
      const auto begin = static_cast<uint32_t>(cache_ids.size());
      bpe_word(w, cache_ids);
      it->second = {begin, static_cast<uint32_t>(cache_ids.size()) - begin};
    }
    out.insert(out.end(), cache_ids.begin() + it->second.first, cache_ids.begin() + it->second.first + it->second.second);
  }
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool parse_special) const {
  // Cut the added tokens out, longest first, each across every remaining raw piece (llama.cpp's
  // tokenizer_st_partition): a piece is either a token id or a span of raw text.
  struct Piece {
    TokenId id;  // -1: raw text
    size_t offset, length;
  };
  std::vector<Piece> pieces{{-1, 0, text.size()}};
  std::vector<Piece> next;
  for (const Special& s : specials_) {
    if (s.control && !parse_special) continue;
    if (text.find(s.text) == std::string_view::npos) continue;  // cheap common case
    next.clear();
    for (const Piece& p : pieces) {
      if (p.id >= 0) {
        next.push_back(p);
        continue;
      }
      const std::string_view raw = text.substr(p.offset, p.length);
      size_t pos = 0;
      for (size_t hit; (hit = raw.find(s.text, pos)) != std::string_view::npos; pos = hit + s.text.size()) {
        if (hit > pos) next.push_back({-1, p.offset + pos, hit - pos});
        next.push_back({s.id, 0, 0});
      }
      if (pos < raw.size()) next.push_back({-1, p.offset + pos, raw.size() - pos});
    }
    pieces.swap(next);
  }

  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 8);
  std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> cache;  // word -> ids span
  std::vector<TokenId> cache_ids;
  for (const Piece& p : pieces) {
    if (p.id >= 0) {
      out.push_back(p.id);
    } else {
      encode_fragment(text.substr(p.offset, p.length), out, cache, cache_ids);
    }
  }
  return out;
}

const std::string& Tokenizer::piece(TokenId id, bool render_special) const {
  POPPER_CHECK(valid_id(id), "token id ", id, " outside [0, ", n_vocab(), ")");
  return render_special ? special_pieces_[id] : pieces_[id];
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool render_special) const {
  std::string out;
  for (TokenId id : ids) out += piece(id, render_special);
  return out;
}

std::string StreamDecoder::push(TokenId id) {
  pending_ += tokenizer_->piece(id, render_special_);
  const size_t ready = utf8_complete_prefix(pending_);
  std::string out = pending_.substr(0, ready);
  pending_.erase(0, ready);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace popper
