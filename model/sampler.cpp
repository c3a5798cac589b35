#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace qnext {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

bool allowed(const uint32_t* words, int64_t id) { return (words[id >> 5] >> (id & 31)) & 1u; }
}  // namespace

void SamplerParams::validate() const {
    auto bad = [](const std::string& what) { throw std::runtime_error("sampler: " + what); };
    if (!(temperature >= 0.0f) || !std::isfinite(temperature)) bad("temperature must be >= 0");
    if (top_k < 0) bad("top_k must be >= 0 (0 = off)");
    if (!(top_p > 0.0f && top_p <= 1.0f)) bad("top_p must be in (0, 1]");
    if (!(min_p >= 0.0f && min_p <= 1.0f)) bad("min_p must be in [0, 1]");
    if (!std::isfinite(presence_penalty)) bad("presence_penalty must be finite");
    if (!std::isfinite(frequency_penalty)) bad("frequency_penalty must be finite");
    if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty)) bad("repetition_penalty must be > 0");
}

Sampler::Sampler(SamplerParams params, int64_t vocab_size) : p_(params), vocab_(vocab_size), rng_(params.seed) {
    p_.validate();
    if (vocab_ <= 0) throw std::runtime_error("sampler: vocab size must be positive");
    work_.resize(vocab_);
    mask_buf_.resize(mask_words(vocab_));
    order_.reserve(vocab_);
}

double Sampler::uniform01() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history, const uint32_t* mask) {
    if (static_cast<int64_t>(logits.size()) != vocab_)
        throw std::runtime_error("sampler: got " + std::to_string(logits.size()) + " logits, vocab is " +
                                 std::to_string(vocab_));
    std::copy(logits.begin(), logits.end(), work_.begin());
    // A NaN (from NaN/Inf weights or an overflow) must stop generation with a clear error, never become text.
    for (int64_t i = 0; i < vocab_; ++i)
        if (std::isnan(work_[i]))
            throw std::runtime_error("sampler: the model produced a NaN logit (token " + std::to_string(i) +
                                     "): the weights may hold NaN/Inf values or the activations overflowed");

    // 1. Penalties over the distinct tokens of the history.
    if (p_.repetition_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f) {
        std::unordered_map<int32_t, int> count;
        for (int32_t id : history)
            if (id >= 0 && id < vocab_) ++count[id];
        for (const auto& [id, n] : count) {
            float& l = work_[id];
            if (p_.repetition_penalty != 1.0f) l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
            l -= p_.presence_penalty + p_.frequency_penalty * static_cast<float>(n);
        }
    }

    // 2. Mask: argument AND hook.
    const uint32_t* words = mask;
    if (hook_) {
        std::fill(mask_buf_.begin(), mask_buf_.end(), ~0u);
        hook_(mask_buf_.data(), mask_buf_.size());
        if (mask)
            for (size_t i = 0; i < mask_buf_.size(); ++i) mask_buf_[i] &= mask[i];
        words = mask_buf_.data();
    }
    if (words)
        for (int64_t i = 0; i < vocab_; ++i)
            if (!allowed(words, i)) work_[i] = kNegInf;

    // 3. Greedy: first maximum (torch.argmax picks the lowest index on ties).
    int64_t best = -1;
    for (int64_t i = 0; i < vocab_; ++i)
        if (work_[i] != kNegInf && (best < 0 || work_[i] > work_[best])) best = i;
    if (best < 0) throw std::runtime_error("sampler: the token mask allows no token");
    if (p_.temperature == 0.0f) return static_cast<int32_t>(best);

    // 4. Candidates sorted by logit (desc, ties by id), cut by top-k.
    order_.clear();
    for (int64_t i = 0; i < vocab_; ++i)
        if (work_[i] != kNegInf && !std::isnan(work_[i])) order_.push_back(static_cast<int32_t>(i));
    auto by_logit = [&](int32_t a, int32_t b) { return work_[a] > work_[b] || (work_[a] == work_[b] && a < b); };
    size_t keep = order_.size();
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < keep) {
        keep = p_.top_k;
        std::partial_sort(order_.begin(), order_.begin() + keep, order_.end(), by_logit);
        order_.resize(keep);
    } else {
        std::sort(order_.begin(), order_.end(), by_logit);
    }

    // 5. Softmax with temperature over the candidates (double for a stable cumulative sum).
    std::vector<double> prob(order_.size());
    const double inv_t = 1.0 / p_.temperature, top = work_[order_[0]];
    double sum = 0;
    for (size_t i = 0; i < order_.size(); ++i) sum += prob[i] = std::exp((work_[order_[i]] - top) * inv_t);
    for (double& q : prob) q /= sum;

    // 6. top-p: smallest prefix whose mass reaches top_p (always at least one token).
    if (p_.top_p < 1.0f) {
        double cum = 0;
        size_t n = 0;
        while (n < prob.size()) {
            cum += prob[n++];
            if (cum >= p_.top_p) break;
        }
        prob.resize(n);
    }
    // 7. min-p relative to the most likely token.
    if (p_.min_p > 0.0f) {
        const double floor_p = p_.min_p * prob[0];
        size_t n = 1;
        while (n < prob.size() && prob[n] >= floor_p) ++n;
        prob.resize(n);
    }

    // 8. Draw.
    double mass = 0;
    for (double q : prob) mass += q;
    double r = uniform01() * mass;
    for (size_t i = 0; i < prob.size(); ++i) {
        r -= prob[i];
        if (r < 0) return order_[i];
    }
    return order_[prob.size() - 1];
}

}  // namespace qnext
