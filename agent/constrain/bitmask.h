// Applying a token bitmask to logits (bit i of words[i/32] set = token i allowed).
#pragma once
#include <cstddef>
#include <cstdint>

namespace qnext::constrain {

// Sets logits[i] = -inf for every disallowed token i < n (ids beyond the mask are disallowed).
void apply_token_bitmask(float* logits, size_t n, const uint32_t* words, size_t n_words);
inline bool token_allowed(const uint32_t* words, int32_t id) {
    return (words[static_cast<size_t>(id) >> 5] >> (static_cast<unsigned>(id) & 31u)) & 1u;
}
// Number of allowed tokens.
size_t count_allowed(const uint32_t* words, size_t n_words);

}  // namespace qnext::constrain
