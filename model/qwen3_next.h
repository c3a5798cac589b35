// Qwen3NextModel: the Qwen3-Next forward pass over a loaded model folder (CPU, kernels/ops.h).
// One readable layer loop: x = x + mixer(norm(x)) with mixer = Gated DeltaNet or gated attention,
// then x = x + MoE(norm(x)); final norm; lm_head. Spec: shared/reference/qwen3-next-architecture.md.
//
// forward() runs any number of tokens on top of a SequenceState (prefill, decode, or a multi-token
// continuation of an existing state: the GDN layers continue from the cached conv window and
// recurrent state, they never restart). GDN uses the chunked form (chunk 64) for T > 1 and the
// recurrent form for T == 1 unless a GdnMode forces one.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "kernels/tensor.h"
#include "model/config.h"
#include "model/state.h"

namespace qnext {

struct ModelFolder;
struct Qwen3NextWeights;
struct LayerWeights;
struct LayerViews;

// Logits rows returned by forward(): row-major f32 [rows, vocab].
struct Logits {
    int64_t rows = 0;
    int64_t vocab = 0;
    std::vector<float> data;
    std::span<const float> row(int64_t r) const {
        return {data.data() + r * vocab, static_cast<size_t>(vocab)};
    }
    std::span<const float> last() const { return row(rows - 1); }
};

enum class LogitsRows { Last, All };
enum class GdnMode { Auto, Chunked, Recurrent };

// Debug hook: called with every named intermediate (e.g. "attn.q", "gdn.core", "moe.out",
// "hidden" = residual stream after a layer, "embed" with layer -1, "final_norm" with layer -1).
// `t` is only valid during the call. Installing no hook costs one branch per intermediate.
using TraceHook = std::function<void(std::string_view name, int layer, const kern::Tensor& t)>;

class Qwen3NextModel {
public:
    // Binds to the folder's config and weights (kept by reference: `folder` must outlive the model).
    // Throws std::runtime_error for a config this engine cannot run.
    explicit Qwen3NextModel(const ModelFolder& folder);
    Qwen3NextModel(const Qwen3NextConfig& config, const Qwen3NextWeights& weights);

    const Qwen3NextConfig& config() const { return config_; }
    int64_t vocab_size() const { return config_.vocab_size; }

    // A fresh state with room for `max_tokens` positions (memory reserved and checked now).
    SequenceState new_state(int64_t max_tokens) const { return SequenceState(config_, max_tokens); }

    // Feeds `tokens` after the state's current position and returns logits for the last token or all
    // of them. Throws (leaving `state` untouched) for an empty input, an id outside [0, vocab), or a
    // context beyond the state's capacity / max_position_embeddings.
    // `hidden_out` (optional): the final-norm hidden states of the returned rows, [rows, H] (the MTP head's input).
    Logits forward(SequenceState& state, std::span<const int32_t> tokens,
                   LogitsRows rows = LogitsRows::Last, std::vector<float>* hidden_out = nullptr) const;

    // Logits of the last token only, and the final-norm hidden states of ALL T tokens into `hidden_all` [T, H]
    // (what the MTP head needs after a prefill, without T rows of logits).
    Logits forward_hidden(SequenceState& state, std::span<const int32_t> tokens, std::vector<float>& hidden_all) const;

    // ---- the MTP head (architecture spec section 6) ----
    bool has_mtp() const;
    // A state for the MTP head's own KV cache (one full-attention layer).
    SequenceState new_mtp_state(int64_t max_tokens) const;
    // For T consecutive positions p.. (p = mtp_state.n_tokens()): `hidden` [T, H] are the main model's final-norm
    // hidden states at those positions (or, chained, the MTP's own output), `next_ids` the tokens at p+1..; the
    // logits predict the tokens at p+2... `hidden_out`: the MTP's post-norm hidden states [rows, H] (the next
    // chained step's input). Advances mtp_state by T. Throws when the model has no MTP head.
    Logits mtp_forward(SequenceState& mtp_state, std::span<const float> hidden, std::span<const int32_t> next_ids,
                       LogitsRows rows = LogitsRows::Last, std::vector<float>* hidden_out = nullptr) const;

    void set_trace(TraceHook hook) { trace_ = std::move(hook); }
    void set_gdn_mode(GdnMode m) { gdn_mode_ = m; }

    // Weight bytes read to decode one token (embedding row + all mixer weights + router + top-k and
    // shared experts + lm_head): the numerator of the bandwidth roofline in `qnext bench`.
    uint64_t active_weight_bytes_per_token() const;

private:
    struct Bound;    // the weights as kernel tensor views, per layer (qwen3_next.cpp)
    struct Scratch;  // activations of one forward piece
    // hidden_out: final-norm hidden of the logits rows, or of all T rows when hidden_all
    void run_piece(SequenceState& st, std::span<const int32_t> ids, LogitsRows rows, float* logits,
                   float* hidden_out, bool hidden_all = false) const;
    LayerViews bind_layer(const LayerWeights& lw, int layer, Bound& b, uint64_t& bytes) const;
    void check_input(const SequenceState& st, std::span<const int32_t> tokens) const;
    void gdn_mixer(int layer, SequenceState& st, Scratch& s) const;
    // `layer`: the state's layer index and the trace label; the weights are L's (a main layer or the MTP's).
    void attention_mixer(const LayerViews& L, int layer, SequenceState& st, Scratch& s,
                         std::span<const int64_t> positions) const;
    void ffn(const LayerViews& L, int layer, Scratch& s) const;
    void trace(std::string_view name, int layer, const kern::Tensor& t) const {
        if (trace_) trace_(name, layer, t);
    }

    const Qwen3NextConfig& config_;
    std::shared_ptr<const Qwen3NextConfig> mtp_config_;   // one full-attention layer (the MTP state's layout)
    std::shared_ptr<const Bound> b_;
    TraceHook trace_;
    GdnMode gdn_mode_ = GdnMode::Auto;
};

}  // namespace qnext
