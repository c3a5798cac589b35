// Internal state of qnext::Tokenizer (shared, immutable after load except the BPE word cache).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/tokenizer.h"
#include "model/tokenizer_pretokenize.h"
#include "model/tokenizer_bpe.h"

namespace qnext {

struct AddedToken {
    std::string content;
    int32_t id = 0;
    bool special = false;
    bool lstrip = false;
    bool rstrip = false;
    bool single_word = false;
    bool normalized = false;   // matched on normalized text (after NFC) instead of the raw input
};

// Leftmost-longest matcher over a set of added tokens (HF uses aho-corasick LeftmostLongest; the
// sets are tiny, so candidates are found by first byte and compared longest first).
class AddedMatcher {
public:
    void build(std::vector<const AddedToken*> tokens);
    bool empty() const { return tokens_.empty(); }
    // Earliest match starting at or after `from`: token, begin, end. nullptr when none.
    const AddedToken* find(std::string_view text, size_t from, size_t& begin, size_t& end) const;

private:
    std::vector<const AddedToken*> tokens_;          // longest first
    std::vector<std::vector<const AddedToken*>> by_first_byte_ = std::vector<std::vector<const AddedToken*>>(256);
};

struct Tokenizer::Impl {
    enum Kind : uint8_t { Hole = 0, Vocab = 1, Added = 2, Special = 3 };

    std::filesystem::path dir;
    bool nfc = false;
    text::SplitVariant split = text::SplitVariant::Qwen2;   // the pre-tokenizer regex (Qwen2/3 or Qwen3.5)
    text::BpeModel bpe;
    std::vector<std::string> bytes;                    // id -> raw bytes / literal added text
    std::vector<uint8_t> kind;                         // id -> Kind
    text::StringIdMap vocab;                           // raw bytes -> id (model vocab)
    std::vector<AddedToken> added;
    std::unordered_map<int32_t, std::string> added_decoded;   // id -> bytes the HF decoder yields
    AddedMatcher raw_matcher;                          // normalized=false added tokens
    AddedMatcher normalized_matcher;                   // normalized=true added tokens
    std::vector<int32_t> eos;
    std::optional<int32_t> pad;

    void check_id(int32_t id) const;
    // Appends what decode() yields for `id` (before UTF-8 replacement) to `out`.
    void append_decoded(int32_t id, bool skip_special, std::string& out) const;
    // Encodes one added-token-free, already normalized segment.
    void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
    // Splits `text` by `matcher` and encodes the pieces; with stage_one the pieces between matches
    // are NFC-normalized and split again by the normalized=true tokens (see tokenizer.cpp).
    // `plain`: sorted, disjoint byte ranges of `text` where no added token may match (stage one only).
    void encode_segments(std::string_view text, const AddedMatcher& matcher, bool allow_special,
                         bool stage_one, std::vector<int32_t>& out, std::span<const TextSpan> plain = {}) const;
};

namespace text {
struct TokenizerJson;
}
// Builds the tables from a vocabulary, merges and added tokens (tokenizer_load.cpp); eos/pad/dir are the
// caller's. Throws std::runtime_error naming `file`.
std::shared_ptr<Tokenizer::Impl> build_tokenizer_impl(const text::TokenizerJson& tj, bool use_nfc,
                                                      const std::filesystem::path& file);

}  // namespace qnext
