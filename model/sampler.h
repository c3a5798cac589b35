// Sampler: turns one row of logits into a token id.
// Order of operations (as in HF / vLLM): repetition + presence penalties on the raw logits, token mask
// (constrained decoding), then greedy argmax when temperature == 0, else temperature, top-k, top-p,
// min-p, and a draw from a seeded RNG (same seed + same inputs = same tokens on every platform).
//
// Token mask: a bitset of uint32 words, bit i of word i/32 set = token i allowed; length
// ceil(vocab/32) words. It comes either as an argument of sample() or from a MaskHook that fills it
// (e.g. agent/constrain's Matcher::fill_next_token_bitmask). A mask allowing nothing is an error.
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

namespace qnext {

struct SamplerParams {
    float temperature = 0.0f;         // 0 = greedy (argmax, lowest id on ties)
    int top_k = 0;                    // 0 = off
    float top_p = 1.0f;               // 1 = off; keeps the smallest set with cumulative prob >= top_p
    float min_p = 0.0f;               // 0 = off; drops tokens with p < min_p * p_max
    float presence_penalty = 0.0f;    // subtract from logits of tokens present in the history (OpenAI)
    float frequency_penalty = 0.0f;   // subtract count * this from logits of tokens in the history (OpenAI)
    float repetition_penalty = 1.0f;  // 1 = off; HF/CTRL: logit > 0 ? logit / r : logit * r
    uint64_t seed = 0;
    void validate() const;            // throws std::runtime_error naming the bad field
};

// Fills `words` (ceil(vocab/32) uint32) with the allowed-token bitset for the next position.
using MaskHook = std::function<void(uint32_t* words, size_t n_words)>;

inline size_t mask_words(int64_t vocab) { return static_cast<size_t>((vocab + 31) / 32); }

class Sampler {
public:
    Sampler(SamplerParams params, int64_t vocab_size);

    const SamplerParams& params() const { return p_; }
    void set_mask_hook(MaskHook hook) { hook_ = std::move(hook); }
    void reseed(uint64_t seed) { rng_.seed(seed); }

    // `history`: tokens the penalties look at (prompt + generated so far). `mask`: optional bitset
    // (ceil(vocab/32) words); when a hook is set it is called and combined (AND) with `mask`.
    int32_t sample(std::span<const float> logits, std::span<const int32_t> history = {},
                   const uint32_t* mask = nullptr);

private:
    SamplerParams p_;
    int64_t vocab_;
    MaskHook hook_;
    std::mt19937_64 rng_;
    std::vector<float> work_;         // [vocab] adjusted logits
    std::vector<uint32_t> mask_buf_;  // [ceil(vocab/32)]
    std::vector<int32_t> order_;      // candidate ids
    double uniform01();               // [0, 1) from the 53 high bits: identical on every libstdc++
};

}  // namespace qnext
