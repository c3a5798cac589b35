// SequenceState: everything one sequence carries between forward() calls of a Qwen3NextModel.
//   - attention layers: a KV cache (keys after k_norm + RoPE, values), f32, capacity fixed up front;
//   - GDN layers: the causal-conv window (last K-1 pre-conv inputs) and the fp32 recurrent matrix.
// Memory for the whole requested context is reserved (and checked against available RAM) at
// construction, so a long generation cannot fail half way.
//
// Snapshots are cheap: they copy only the small GDN state and remember the KV length. The KV prefix
// stays shared with the live state; restoring is refused (with a clear error) if the prefix the
// snapshot relies on was overwritten in the meantime. clone() is a full, independent copy.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <vector>

#include "kernels/tensor.h"
#include "model/config.h"

namespace qnext {

// Byte counts for one sequence of `n_tokens` context (what the constructor reserves).
struct StateMemoryEstimate {
    uint64_t kv_bytes = 0;         // attention layers: 2 * n_kv_heads * head_dim * 4 B per token per layer
    uint64_t gdn_bytes = 0;        // GDN layers: fp32 recurrent [Hv, Dk, Dv] + conv window [K-1, conv_dim]
    uint64_t scratch_bytes = 0;    // activations of one forward over `chunk` tokens (upper bound)
    uint64_t total() const { return kv_bytes + gdn_bytes + scratch_bytes; }
};

// MemAvailable from /proc/meminfo (bytes); the limit SequenceState checks against by default.
uint64_t available_memory_bytes();

class SequenceState {
public:
    struct Snapshot {
        uint64_t owner = 0;                              // id of the state it was taken from
        int64_t n_tokens = 0;
        uint64_t epoch = 0;                              // state's overwrite counter when taken
        std::vector<kern::TensorBuffer> conv, recurrent;  // copies, per GDN layer (in layer order)
    };

    // Reserves the KV cache for `max_tokens` positions. Throws std::runtime_error when max_tokens
    // exceeds config.max_position_embeddings, or when the estimate exceeds `memory_limit_bytes`
    // (default: available_memory_bytes()); the message gives the estimate.
    SequenceState(const Qwen3NextConfig& config, int64_t max_tokens,
                  std::optional<uint64_t> memory_limit_bytes = std::nullopt);
    SequenceState(SequenceState&&) noexcept = default;
    SequenceState& operator=(SequenceState&&) noexcept = default;

    static StateMemoryEstimate estimate(const Qwen3NextConfig& config, int64_t max_tokens);

    int64_t n_tokens() const { return n_tokens_; }      // positions consumed so far
    int64_t capacity() const { return capacity_; }      // max_tokens given at construction
    const Qwen3NextConfig& config() const { return *config_; }

    Snapshot snapshot() const;
    // Throws if `s` comes from another state (clones included) or its KV prefix was overwritten.
    void restore(const Snapshot& s);
    SequenceState clone() const;                        // deep, independent copy (new identity)
    void reset();                                       // back to an empty sequence (zeros), keeps memory
    // Drops positions >= n. Only possible when every layer is attention (KV-only); hybrid models
    // must restore a snapshot instead (the GDN state cannot be rewound) and get a clear error.
    void truncate(int64_t n);

    // Per-layer views (layer = model layer index). Shapes:
    //   keys(l), values(l): f32 [capacity, n_kv_heads, head_dim] (rows >= n_tokens are unused)
    //   conv(l):            f32 [K-1, conv_dim]   oldest input first (row K-2 = the latest token)
    //   recurrent(l):       f32 [Hv, Dk, Dv]
    const kern::Tensor& keys(int64_t layer) const;
    const kern::Tensor& values(int64_t layer) const;
    const kern::Tensor& conv(int64_t layer) const;
    const kern::Tensor& recurrent(int64_t layer) const;

    // Binary save/load (session files). save() writes a header (magic, version, layer layout and dims)
    // then n_tokens, the KV rows [0, n_tokens) and the GDN conv/recurrent state. load() replaces the
    // contents of a state made for the same config (capacity >= saved n_tokens; clear error otherwise);
    // afterwards it behaves exactly like the saved one (bit-identical next logits). Snapshots taken
    // before a load() are no longer valid for this state.
    void save(std::ostream& out) const;
    void load(std::istream& in);
    // Snapshots survive a save/load too: load_snapshot() returns a snapshot valid for this state,
    // provided its KV prefix is part of what was loaded (n_tokens <= the loaded n_tokens) and it was
    // restorable on the saved state when that was saved.
    static void save_snapshot(std::ostream& out, const Snapshot& s);
    Snapshot load_snapshot(std::istream& in) const;

    // Benchmarks only: marks positions [n_tokens, n) as consumed without computing them (their KV
    // rows keep whatever they hold, zeros for a fresh state), so decode at a long context can be timed
    // without a long prefill.
    void skip_to_for_benchmark(int64_t n);

    // Used by Qwen3NextModel::forward: called before writing positions [n_tokens, n_tokens + t).
    void begin_append(int64_t t);
    void end_append(int64_t t) { n_tokens_ += t; }

private:
    SequenceState() = default;
    static uint64_t next_state_id();
    const Qwen3NextConfig* config_ = nullptr;  // owned by the model folder; outlives the state
    uint64_t id_ = 0;          // identity for snapshots (unique per constructed or cloned state)
    int64_t capacity_ = 0;
    int64_t n_tokens_ = 0;
    int64_t high_water_ = 0;   // highest position ever written + 1 (KV rows >= n_tokens may be stale)
    uint64_t epoch_ = 0;       // bumped whenever KV rows below high_water_ are overwritten
    std::vector<int64_t> overwrite_from_;  // per epoch: first position that was overwritten
    std::vector<int> slot_;                // layer -> index into kv_ / gdn_ arrays
    std::vector<kern::TensorBuffer> k_, v_, conv_, rec_;
};

}  // namespace qnext
