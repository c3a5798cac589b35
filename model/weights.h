// Weight binding: named per-layer structs of zero-copy TensorViews for a Qwen3-Next checkpoint.
// Shapes below use H = hidden_size, V = vocab_size; every matrix is [out_features, in_features]
// (PyTorch nn.Linear layout), row-major. BF16/F16/F32 weights are used in place from the mmap.
//
// Two MoE expert layouts are accepted (ExpertLayout):
//  - PerExpert: the real Qwen checkpoints and transformers 5.23 save_pretrained write
//      model.layers.{i}.mlp.experts.{e}.gate_proj.weight [I, H], .up_proj.weight [I, H], .down_proj.weight [H, I]
//  - Fused: transformers v5's in-memory form (some converted checkpoints store it):
//      model.layers.{i}.mlp.experts.gate_up_proj [E, 2I, H]  (rows [0, I) = gate, [I, 2I) = up, per expert)
//      model.layers.{i}.mlp.experts.down_proj    [E, H, I]
//    bound as per-expert views into the fused tensors (no copy), plus MoeWeights::fused_* views.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"

namespace qnext {

enum class ExpertLayout { PerExpert, Fused };

// Gated DeltaNet mixer (`model.layers.{i}.linear_attn.*`). nk/nv = linear key/value heads,
// dk/dv = key/value head dims, K = conv kernel, C = conv dim = 2*nk*dk + nv*dv.
// The q/k/v/z projection comes in one of two forms (the other's views are empty, data == nullptr):
//  - fused (HF Qwen3-Next): in_proj_qkvz, rows interleaved per key-head group;
//  - split (GGUF qwen3next, as llama.cpp's converter reorders it; HF Qwen3.5): in_proj_qkv with rows
//    [q all heads | k all heads | v all heads] (the conv channel order) and in_proj_z [nv*dv, H].
// b and a come as in_proj_ba (HF Qwen3-Next, GGUF: per key-head group [b R | a R]) or as in_proj_b and
// in_proj_a (HF Qwen3.5: plain head order). The decay comes as HF's A_log or as GGUF's ssm_a = -exp(A_log)
// (A); exactly one is set.
struct GdnWeights {
    TensorView in_proj_qkvz;   // [2*nk*dk + 2*nv*dv, H], group-interleaved rows (spec 3.2)
    TensorView in_proj_ba;     // [2*nv, H], per key-head group [b.., a..]
    TensorView conv1d;         // [C, 1, K] (HF) or [C, K] (GGUF), depthwise, no bias
    TensorView A_log;          // [nv]
    TensorView dt_bias;        // [nv]
    TensorView norm;           // [dv], plain-weight gated RMSNorm (~1)
    TensorView out_proj;       // [H, nv*dv]
    TensorView in_proj_qkv;    // split form: [2*nk*dk + nv*dv, H]
    TensorView in_proj_z;      // split form: [nv*dv, H]
    TensorView in_proj_b;      // HF Qwen3.5: [nv, H] (in_proj_ba empty)
    TensorView in_proj_a;      // HF Qwen3.5: [nv, H]
    TensorView A;              // [nv] F32, -exp(A_log) (GGUF ssm_a)
};

// Gated full attention (`model.layers.{i}.self_attn.*`). nh/nkv = heads, D = head_dim.
struct AttnWeights {
    TensorView q_proj;         // [nh*D*2, H]: per head [query D | gate D]
    TensorView k_proj;         // [nkv*D, H]
    TensorView v_proj;         // [nkv*D, H]
    TensorView o_proj;         // [H, nh*D]
    TensorView q_norm;         // [D], zero-centred (1 + w)
    TensorView k_norm;         // [D], zero-centred
};

// One SwiGLU FFN: down(silu(gate(x)) * up(x)). I = its intermediate size.
struct FfnWeights {
    TensorView gate_proj;      // [I, H]
    TensorView up_proj;        // [I, H]
    TensorView down_proj;      // [H, I]
};

// Sparse MoE block (`model.layers.{i}.mlp.*`). E = num_experts, I = moe_intermediate_size.
struct MoeWeights {
    TensorView router;                  // mlp.gate.weight [E, H]
    std::vector<FfnWeights> experts;    // E entries (views; into the fused tensors when layout == Fused)
    FfnWeights shared_expert;           // I_s = shared_expert_intermediate_size
    TensorView shared_expert_gate;      // [1, H]
    ExpertLayout layout = ExpertLayout::PerExpert;
    std::optional<TensorView> fused_gate_up;   // [E, 2I, H] (layout == Fused only)
    std::optional<TensorView> fused_down;      // [E, H, I]  (layout == Fused only)
};

// One decoder layer: mixer (exactly one of gdn/attn) + FFN (exactly one of moe/dense_mlp).
struct LayerWeights {
    LayerType type = LayerType::LinearAttention;
    TensorView input_layernorm;             // [H], zero-centred
    TensorView post_attention_layernorm;    // [H], zero-centred
    std::optional<GdnWeights> gdn;          // type == LinearAttention
    std::optional<AttnWeights> attn;        // type == FullAttention
    std::optional<MoeWeights> moe;          // config.is_moe_layer(i)
    std::optional<FfnWeights> dense_mlp;    // otherwise (mlp.{gate,up,down}_proj, I = intermediate_size)
};

// Multi-token-prediction head (`mtp.*`); shares embed_tokens and lm_head with the main model.
struct MtpWeights {
    TensorView fc;                      // [H, 2H]: input = concat(norm_emb(embed), norm_hidden(h))
    TensorView pre_fc_norm_embedding;   // [H], zero-centred
    TensorView pre_fc_norm_hidden;      // [H], zero-centred
    TensorView norm;                    // [H], zero-centred final norm
    std::vector<LayerWeights> layers;   // full-attention layers with the family's MLP (mtp.layers.{j}.*)
};

// How the zero-centred RMSNorm weights (input/post-attention, q/k, final, MTP norms) are stored:
// as HF's w (the norm multiplies by 1 + w), or as 1 + w (llama.cpp's converter adds the 1 for GGUF).
enum class NormStorage { ZeroCentred, OnePlus };

struct Qwen3NextWeights {
    NormStorage norms = NormStorage::ZeroCentred;
    TensorView embed_tokens;            // [V, H]
    TensorView lm_head;                 // [V, H] (== embed_tokens when tie_word_embeddings)
    TensorView final_norm;              // model.norm.weight [H], zero-centred
    std::vector<LayerWeights> layers;   // num_hidden_layers
    std::optional<MtpWeights> mtp;      // when mtp.* tensors are present
    ExpertLayout expert_layout = ExpertLayout::PerExpert;
};

// What a checkpoint for `cfg` must contain (name + shape), in a stable order: embed_tokens, layers,
// final norm, lm_head (unless tied), then MTP (mtp_layers layers). FP8 scale tensors are not listed.
struct TensorSpec {
    std::string name;
    std::vector<int64_t> shape;
    int64_t numel() const;
};
std::vector<TensorSpec> expected_tensors(const Qwen3NextConfig& cfg, ExpertLayout layout,
                                         int64_t mtp_layers);

// Number of MTP layers present in a store (1 + the largest j of mtp.layers.{j}.*; 0 when no mtp.*).
int64_t count_mtp_layers(const TensorStore& store);
// Expert layout present in a store (Fused iff any `mlp.experts.gate_up_proj` exists).
ExpertLayout detect_expert_layout(const TensorStore& store);

// Binds every tensor `cfg` implies (the language model's under cfg.weight_prefix(); a multimodal folder's
// vision tower, model.visual.*, is not bound and not an error), plus the MTP head with
// max(cfg.mtp_num_hidden_layers, count_mtp_layers(store)) layers. All problems are collected
// and thrown as one std::runtime_error listing missing / misshaped / unexpected (extra) tensors
// (and FP8 weights without a valid `_scale_inv`). Views stay valid as long as `store` lives.
Qwen3NextWeights bind_weights(const Qwen3NextConfig& cfg, const TensorStore& store);

}  // namespace qnext
