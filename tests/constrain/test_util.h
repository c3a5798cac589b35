// Shared helpers for the constrained-decoding tests.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "agent/constrain/constrain.h"

namespace qnext::constrain::testing {

// A small vocabulary: ids 0..255 are the single bytes, then a few multi-byte tokens (so tokens
// straddle grammar boundaries), then the Qwen added tokens (<tool_call> ... <|endoftext|>).
inline VocabularyPtr small_vocab() {
    std::vector<std::string> toks;
    for (int b = 0; b < 256; ++b) toks.push_back(std::string(1, static_cast<char>(b)));
    for (const char* t : {"{\"", "\": ", "\", \"", "\"}", "\"},", "}\n", "true", "null", "12", "3.", "\\n", "\\u00",
                          "é", "\xC3", "\xA9\"", "ab", "abc", "\", ", "[{", "}]", "\"]", "-0", "e+", ", \"", "<", "tool",
                          "_call", ">", "\n{\"name\": \"", "\"name\"", "get_weather", "\"arguments\": {", "{\"city\": \"",
                          "Paris\"}}", "\n\n", "</", "think"})
        toks.push_back(t);
    std::vector<int32_t> added;
    for (const char* t : {"<tool_call>", "</tool_call>", "<think>", "</think>", "<|im_end|>", "<|endoftext|>"}) {
        added.push_back(static_cast<int32_t>(toks.size()));
        toks.push_back(t);
    }
    const int32_t im_end = added[4], eot = added[5];
    return Vocabulary::create(std::move(toks), added, {im_end, eot});
}

// Text -> ids in the small vocabulary: "⟨name⟩" is not used; added tokens are written as
// [[<tool_call>]] etc., everything else becomes single-byte tokens.
inline std::vector<int32_t> ids_of(const Vocabulary& v, const std::string& text) {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < text.size();) {
        if (text.compare(i, 2, "[[") == 0) {
            size_t end = text.find("]]", i);
            ids.push_back(*v.added_id(text.substr(i + 2, end - i - 2)));
            i = end + 2;
        } else {
            ids.push_back(static_cast<unsigned char>(text[i++]));
        }
    }
    return ids;
}

// Feeds `text` (single-byte tokens + [[added]] tokens); true if every token is accepted and the
// structure is complete at the end.
inline bool accepts(const Grammar& g, const std::string& text) {
    Matcher m(g);
    for (int32_t id : ids_of(g.vocab(), text))
        if (!m.accept_token(id)) return false;
    return m.can_terminate();
}
inline bool accepts_prefix(const Grammar& g, const std::string& text) {
    Matcher m(g);
    for (int32_t id : ids_of(g.vocab(), text))
        if (!m.accept_token(id)) return false;
    return true;
}

// Picks a random allowed token (uniform over allowed ids).
inline int32_t random_allowed(const std::vector<uint32_t>& mask, std::mt19937_64& rng) {
    size_t n = count_allowed(mask.data(), mask.size());
    if (n == 0) return -1;
    size_t k = std::uniform_int_distribution<size_t>(0, n - 1)(rng);
    for (size_t w = 0; w < mask.size(); ++w) {
        uint32_t bits = mask[w];
        while (bits) {
            int b = __builtin_ctz(bits);
            if (k-- == 0) return static_cast<int32_t>(w * 32 + static_cast<size_t>(b));
            bits &= bits - 1;
        }
    }
    return -1;
}

}  // namespace qnext::constrain::testing
