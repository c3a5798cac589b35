// Byte-level BPE tokenizer, byte-exact with Hugging Face `tokenizers` for the Qwen2/Qwen3 family
// (and any tokenizer.json built the same way: NFC normalizer, Qwen Split regex + ByteLevel
// pre-tokenizer, BPE model, ByteLevel decoder).
//
// Encoding pipeline (mirrors tokenizers' TokenizerImpl::encode_single_sequence):
//   1. invalid UTF-8 in the input is replaced by U+FFFD exactly like Python's
//      bytes.decode("utf-8", errors="replace") (so encode(b) == HF encode(b.decode(errors="replace")));
//   2. added tokens (special and non-special alike) are matched whole, leftmost-longest, before
//      normalization; with allow_special=false the special=true ones are not matched (HF's
//      `encode_special_tokens`), non-special added tokens like <think> still are;
//   3. every remaining segment is NFC-normalized, split by the Qwen regex (a scanner over Unicode
//      categories that reproduces `\s+(?!\S)` exactly) and BPE-merged on raw bytes by merge rank.
// Ids are int32_t. A Tokenizer is cheap to copy (shared immutable state) and safe to use from
// several threads at once (the word cache is internally locked).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/text_span.h"

namespace qnext {

class GgufFile;

class Tokenizer {
public:
    // `path` is a llama.cpp .gguf file (see from_gguf), or a directory holding tokenizer.json (+ optional tokenizer_config.json and
    // generation_config.json; a model folder works) or the tokenizer.json file itself.
    // Throws std::runtime_error naming the file and the problem on any unsupported or bad input.
    static Tokenizer load(const std::filesystem::path& path);
    // The tokenizer a llama.cpp GGUF file carries (tokenizer.ggml.model "gpt2" with a Qwen pre-tokenizer):
    // tokens, merges and token types; CONTROL tokens are special, USER_DEFINED ones added but not special
    // (llama.cpp's converter marks a few tokens CONTROL that HF lists as non-special, e.g. <|fim_prefix|>:
    // encoding is the same, skip_special decoding follows the GGUF). Stop tokens: eos/eot ids of the file.
    static Tokenizer from_gguf(const GgufFile& file);

    // Text (UTF-8 bytes; invalid sequences tolerated, see above) -> token ids.
    std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;

    // encode(text), except that no added token (special or not) is recognised where it would overlap
    // one of the `plain` spans: text there is ordinary text (NFC, pre-tokenizer, BPE) even when it
    // spells <|im_start|> or <tool_call>. Pieces run across span edges exactly as in encode(), so when
    // the spans hold no added-token text the ids equal encode(text). Spans: sorted, disjoint byte
    // ranges of `text` (std::invalid_argument otherwise). This is how a chat prompt is encoded
    // (model/chat_encode.h): the request's strings can never become control tokens.
    std::vector<int32_t> encode_with_plain_spans(std::string_view text, std::span<const TextSpan> plain) const;

    // Token ids -> text. Byte-level tokens are joined and decoded as UTF-8 with invalid sequences
    // replaced by U+FFFD (HF ByteLevel decoder semantics). skip_special drops special=true tokens.
    // Throws std::out_of_range for an id outside [0, vocab_size()).
    std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

    // Number of token ids, including added tokens (= highest id + 1). 151,669 for Qwen3.
    int32_t vocab_size() const;

    // The raw bytes a token stands for (byte-level alphabet undone; may be partial UTF-8).
    // Added/special tokens: their literal text. Ids that no token uses (holes): empty string.
    // Throws std::out_of_range for an id outside [0, vocab_size()).
    const std::string& token_bytes(int32_t id) const;

    // Exact lookup of one token by its text: added tokens by literal content first, then vocabulary
    // tokens by raw bytes. nullopt when no single token has exactly these bytes.
    std::optional<int32_t> token_id(std::string_view text) const;

    bool is_special(int32_t id) const;   // added token with special=true
    bool is_added(int32_t id) const;     // any added token (special or not)
    std::vector<int32_t> added_token_ids() const;

    // Stop tokens: generation_config.json's eos_token_id when the folder has one, else the
    // tokenizer_config.json eos_token plus <|endoftext|> when present. Sorted, unique.
    const std::vector<int32_t>& eos_ids() const;
    std::optional<int32_t> pad_id() const;   // tokenizer_config.json pad_token, if any

    // Where the tokenizer was loaded from (the directory; tokenizer_config.json lives there).
    const std::filesystem::path& directory() const;

    struct Impl;
    const Impl& impl() const { return *impl_; }

private:
    explicit Tokenizer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<Impl> impl_;
};

// Incremental detokenizer for streaming generation: push ids one by one and get back only text
// that is complete UTF-8. Bytes of an unfinished character are held until it completes; bytes
// that can no longer form a valid character become U+FFFD at exactly the places where
// bytes.decode("utf-8", errors="replace") of the whole stream would put them, so the
// concatenation of all push() results and finish() equals tokenizer.decode(all ids).
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);
    std::string push(int32_t id);
    std::string push(std::span<const int32_t> ids);
    std::string finish();                 // flushes held bytes (an unfinished character -> U+FFFD)
    size_t pending_bytes() const { return pending_.size(); }
    void reset() { pending_.clear(); }

private:
    Tokenizer tok_;
    bool skip_special_;
    std::string pending_;                 // undecided trailing bytes (a prefix of a valid sequence)
};

// UTF-8 helpers shared by the tokenizer, the stream decoder and the CLI.
// Replace every invalid sequence by U+FFFD following Python's errors="replace" (maximal subparts).
std::string utf8_sanitize(std::string_view bytes);
bool utf8_valid(std::string_view bytes);
// Length of the longest prefix of `bytes` that is valid or definitely invalid, i.e. everything
// except a trailing incomplete-but-still-possible sequence (at most 3 bytes are held back).
size_t utf8_decidable_prefix(std::string_view bytes);
// Unicode NFC (utf8proc) of valid UTF-8.
std::string nfc(std::string_view utf8);

}  // namespace qnext
