// Greedy decoding with MTP self-speculation (architecture spec section 6): per step the MTP head drafts up to k
// tokens by chaining itself, ONE forward of the main model verifies them all, the longest prefix that equals
// the main model's own choices is accepted (plus the main model's next token), and the state is rolled back
// exactly (GDN state restored from a snapshot and the accepted tokens recomputed; attention KV past the
// accepted length is overwritten later; the MTP's KV re-filled from the main model's hidden states).
//
// The choice rule is the plain greedy one at every position: the argmax of the main model's logits under the
// constraint's mask (drafts are only compared, so a draft the grammar forbids simply ends the accepted prefix).
// Verification and recomputation run the GDN layers in the recurrent form, token by token as plain decoding
// does. Never overshoots max_new_tokens; stop tokens end generation as in plain decoding.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/qwen3_next.h"
#include "model/state.h"

namespace qnext {

struct SpeculativeStats {
    int64_t verify_steps = 0;                  // main-model forwards over drafts
    int64_t drafted = 0, accepted = 0;
    std::vector<int64_t> drafted_at_depth;     // [k]: drafts made at depth j (1-based depth j+1)
    std::vector<int64_t> accepted_at_depth;    // [k]: of those, accepted
    int64_t recomputed_tokens = 0;             // tokens re-fed after a rejection
};

struct GreedyGeneration {
    std::vector<int32_t> tokens;   // generated ids (the stop token included when one ended it)
    std::string finish;            // "stop" or "length"
    SpeculativeStats stats;
};

struct GreedyOptions {
    int64_t max_new_tokens = 64;
    int speculative = 0;                       // drafts per step, 0..8 (0: plain greedy decoding)
    std::vector<int32_t> stop_ids;             // a generated stop token ends generation (and is not fed)
    // Optional constraint: fills the allowed-token bitset for the next position (false = no constraint), and
    // learns each chosen token (return false to stop after it, e.g. a grammar that terminated).
    std::function<bool(uint32_t* words, size_t n_words)> fill_mask;
    std::function<bool(int32_t token)> on_token;
};

// Appends `prompt` (non-empty) to `state` and generates greedily. With speculative > 0 the model needs an MTP
// head; `mtp_state` (from model.new_mtp_state) must hold exactly state.n_tokens() - 1 entries at the start (0
// for a fresh sequence: both empty). Afterwards `state` holds the prompt and every generated token but the
// last, as plain decoding leaves it.
GreedyGeneration greedy_generate(const Qwen3NextModel& model, SequenceState& state, SequenceState* mtp_state,
                                 std::span<const int32_t> prompt, const GreedyOptions& options);

}  // namespace qnext
