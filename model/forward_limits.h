// Internal sizing shared by the forward pass and SequenceState's memory estimate.
#pragma once
#include <cstdint>

#include "model/config.h"

namespace qnext {

// forward() processes long inputs in pieces of at most this many tokens (a multiple of the GDN chunk
// size 64, so chunk boundaries are the same as for one whole pass); activations are sized for a piece.
constexpr int64_t kForwardPieceTokens = 256;

// Bytes of activation scratch one forward piece of `tokens` tokens allocates (plus one logits row).
uint64_t forward_scratch_bytes(const Qwen3NextConfig& config, int64_t tokens);

}  // namespace qnext
