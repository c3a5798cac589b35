#include "agent/constrain/random_completion.h"

#include <chrono>

#include "agent/constrain/bitmask.h"

namespace qnext::constrain {

RandomCompleter::RandomCompleter(VocabularyPtr vocab) : vocab_(std::move(vocab)) {
    for (int32_t i = 0; i < vocab_->size(); ++i) {
        const std::string& b = vocab_->token_bytes(i);
        if (vocab_->is_stop(i) || (!vocab_->is_added(i) && b.find_first_of("\"}]") != std::string::npos))
            closers_.push_back(i);
    }
    mask_.resize(vocab_->mask_words());
}

namespace {
int32_t nth_allowed(const std::vector<uint32_t>& mask, size_t k) {
    for (size_t w = 0; w < mask.size(); ++w) {
        const size_t c = static_cast<size_t>(__builtin_popcount(mask[w]));
        if (k >= c) {
            k -= c;
            continue;
        }
        uint32_t bits = mask[w];
        for (;; bits &= bits - 1)
            if (k-- == 0) return static_cast<int32_t>(w * 32 + static_cast<size_t>(__builtin_ctz(bits)));
    }
    return -1;
}
}  // namespace

RandomCompletion RandomCompleter::run(Matcher& m, uint64_t seed, int max_tokens, int close_after, bool time_masks) {
    RandomCompletion out;
    std::mt19937_64 rng(seed);
    std::vector<int32_t> closing;
    for (int step = 0; step < max_tokens && !m.is_terminated(); ++step) {
        auto t0 = std::chrono::steady_clock::now();
        m.fill_next_token_bitmask(mask_.data(), mask_.size());
        if (time_masks)
            out.mask_us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
        const size_t n = count_allowed(mask_.data(), mask_.size());
        if (n == 0) {
            out.mask_ever_empty = true;
            break;
        }
        int32_t pick = -1;
        const double bias = step < close_after ? 0.0 : std::min(0.95, (step - close_after) / 32.0);
        if (bias > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < bias) {
            // closing: half of the time a random allowed token containing a closing byte, else
            // the first token of a shortest completion (guarantees progress, e.g. inside formats); after
            // 256 more tokens only the latter (a free-text value ends only with its closing sequence)
            if (step < close_after + 256 && std::uniform_int_distribution<int>(0, 1)(rng)) {
                closing.clear();
                for (int32_t id : closers_)
                    if (token_allowed(mask_.data(), id)) closing.push_back(id);
                if (!closing.empty()) pick = closing[std::uniform_int_distribution<size_t>(0, closing.size() - 1)(rng)];
            }
            if (pick < 0) pick = m.closing_token();
            if (pick >= 0 && !token_allowed(mask_.data(), pick)) pick = -1;
        }
        if (pick < 0) pick = nth_allowed(mask_, std::uniform_int_distribution<size_t>(0, n - 1)(rng));
        if (!m.accept_token(pick)) {   // the mask allowed it: must be accepted
            out.mask_ever_empty = true;
            break;
        }
        out.tokens.push_back(pick);
    }
    out.complete = m.is_terminated();
    return out;
}

}  // namespace qnext::constrain
