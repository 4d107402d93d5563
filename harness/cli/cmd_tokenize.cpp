// `popper tokenize`: run a model's tokenizer on text, or decode ids back to text.
//
//   popper tokenize --model m.gguf --text "Hello world"   ids, then one line per token
//   popper tokenize --model m.gguf --ids 9707,1879        the decoded bytes on stdout
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/atomic_file.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/tokenizer.h"
#include "harness/cli/commands.h"

namespace popper::cli {
namespace {

struct TokenizeArgs {
  std::string model;
  std::string text;
  std::string text_file;
  std::string ids;
  bool no_special = false;
  bool ids_only = false;
};

// "1,2, 3" -> ids; error names the bad item.
Result<std::vector<TokenId>> parse_ids(const std::string& list, const Tokenizer& tok) {
  std::vector<TokenId> ids;
  size_t pos = 0;
  for (int index = 0; pos <= list.size(); ++index) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(pos, comma - pos);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      used = 0;
    }
    if (item.empty() || used != item.size()) return make_error("--ids: item ", index, " '", item, "' is not an integer");
    if (!tok.valid_id(v)) return make_error("--ids: item ", index, ": id ", v, " is outside the vocab [0, ", tok.n_vocab(), ")");
    ids.push_back(static_cast<TokenId>(v));
    pos = comma + 1;
  }
  return ids;
}

// Printable form of a token's bytes: escapes for control bytes and invalid UTF-8 kept visible.
std::string printable(const std::string& bytes) {
  std::string out;
  for (size_t pos = 0; pos < bytes.size();) {
    uint32_t cp = 0;
    const size_t len = utf8_next(bytes, pos, cp);
    const auto c = static_cast<unsigned char>(bytes[pos]);
    if (len > 1) {
      out.append(bytes, pos, len);
      pos += len;
      continue;
    }
    ++pos;
    if (cp == kInvalidCodePoint) out += str_cat("\\x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\\') out += "\\\\";
    else if (c < 0x20 || c == 0x7F) out += str_cat("\\x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
    else out.push_back(static_cast<char>(c));
  }
  return out;
}

int run_tokenize(const TokenizeArgs& args) {
  const int n_inputs = !args.text.empty() + !args.text_file.empty() + !args.ids.empty();
  if (n_inputs != 1) {
    std::fprintf(stderr, "popper tokenize: give exactly one of --text, --text-file, --ids\n");
    return 2;
  }
  auto file = GgufFile::open(args.model);
  if (!file.ok()) {
    std::fprintf(stderr, "popper tokenize: %s\n", file.message().c_str());
    return 1;
  }
  const auto load_start = std::chrono::steady_clock::now();
  auto tok = Tokenizer::from_gguf(**file);
  if (!tok.ok()) {
    std::fprintf(stderr, "popper tokenize: %s\n", tok.message().c_str());
    return 1;
  }
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start).count();

  if (!args.ids.empty()) {
    auto ids = parse_ids(args.ids, *tok);
    if (!ids.ok()) {
      std::fprintf(stderr, "popper tokenize: %s\n", ids.message().c_str());
      return 2;
    }
    const std::string bytes = tok->decode(*ids, !args.no_special);
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    return 0;
  }

  std::string text = args.text;
  if (!args.text_file.empty()) {
    auto contents = read_file(args.text_file);
    if (!contents.ok()) {
      std::fprintf(stderr, "popper tokenize: --text-file: %s\n", contents.message().c_str());
      return 2;
    }
    text = std::move(contents.value());
  }
  const auto start = std::chrono::steady_clock::now();
  const std::vector<TokenId> ids = tok->encode(text, !args.no_special);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += str_cat(i ? "," : "", ids[i]);
  std::printf("%s\n", line.c_str());
  if (args.ids_only) return 0;
  for (TokenId id : ids) {
    std::printf("%8d  %-24s '%s'\n", id, printable(tok->token_text(id)).c_str(), printable(tok->piece(id)).c_str());
  }
  std::fprintf(stderr, "%zu bytes -> %zu tokens in %.3f ms (vocab %lld, %lld merges, pre %s, loaded in %.1f ms)\n",
               text.size(), ids.size(), ms, static_cast<long long>(tok->n_vocab()),
               static_cast<long long>(tok->n_merges()), tok->pre_tokenizer_name().c_str(), load_ms);
  return 0;
}

void register_tokenize(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = add_command(app, "tokenize", "Tokenize text with a GGUF model's tokenizer, or decode token ids",
                              [args] { return run_tokenize(*args); });
  cmd->add_option("-m,--model", args->model, "GGUF file whose tokenizer to use")->required();
  cmd->add_option("--text", args->text, "text to tokenize");
  cmd->add_option("--text-file", args->text_file, "file whose bytes to tokenize");
  cmd->add_option("--ids", args->ids, "comma-separated token ids to decode (raw bytes to stdout)");
  cmd->add_flag("--no-special", args->no_special,
                "treat control tokens written in the text as plain text (and omit them when decoding)");
  cmd->add_flag("--ids-only", args->ids_only, "print only the comma-separated ids");
}

}  // namespace
POPPER_REGISTER_COMMAND(30, register_tokenize);
}  // namespace popper::cli
