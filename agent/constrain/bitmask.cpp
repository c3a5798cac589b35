#include "agent/constrain/bitmask.h"

#include <bit>
#include <limits>

namespace qnext::constrain {

void apply_token_bitmask(float* logits, size_t n, const uint32_t* words, size_t n_words) {
    const float ninf = -std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < n; ++i) {
        size_t w = i >> 5;
        bool ok = w < n_words && ((words[w] >> (i & 31u)) & 1u);
        if (!ok) logits[i] = ninf;
    }
}

size_t count_allowed(const uint32_t* words, size_t n_words) {
    size_t n = 0;
    for (size_t w = 0; w < n_words; ++w) n += static_cast<size_t>(std::popcount(words[w]));
    return n;
}

}  // namespace qnext::constrain
