// Random completions under a grammar, for property tests and the benchmark: each step draws
// uniformly among the allowed tokens (the limit of random logits at high temperature), optionally
// with a closing bias: after `close_after` tokens, with growing probability, it draws among the
// allowed tokens that contain '"', '}' or ']' (or a stop token), or takes the first token of a
// shortest completion (Matcher::closing_token), and from close_after + 256 tokens on only the latter, so
// that every structure ends (free text such as an XML tool call's string value too).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "agent/constrain/grammar.h"

namespace qnext::constrain {

struct RandomCompletion {
    std::vector<int32_t> tokens;      // incl. the final stop token when complete
    bool complete = false;            // a stop token was accepted
    bool mask_ever_empty = false;     // an empty mask before completion (must never happen)
    std::vector<double> mask_us;      // per-step fill_next_token_bitmask time (when timed)
};

class RandomCompleter {
public:
    explicit RandomCompleter(VocabularyPtr vocab);
    RandomCompletion run(Matcher& m, uint64_t seed, int max_tokens, int close_after, bool time_masks = false);

private:
    VocabularyPtr vocab_;
    std::vector<int32_t> closers_;    // tokens containing '"', '}' or ']', and stop tokens
    std::vector<uint32_t> mask_;
};

}  // namespace qnext::constrain
