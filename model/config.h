// Qwen3NextConfig: the typed form of a Hugging Face config.json for model_type "qwen3_next".
// Field names follow config.json exactly. Defaults are those of HF transformers' Qwen3NextConfig
// (documented per field in config.cpp); parse_config() validates every invariant and names the
// offending field in its error.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace qnext {

enum class LayerType { LinearAttention, FullAttention };

struct Qwen3NextConfig {
    std::string model_type = "qwen3_next";
    int64_t vocab_size = 151936;
    int64_t hidden_size = 2048;
    int64_t intermediate_size = 5632;          // unused by Qwen3-Next (no dense MLP layers) unless mlp_only_layers
    int64_t num_hidden_layers = 48;
    int64_t num_attention_heads = 16;
    int64_t num_key_value_heads = 2;
    int64_t head_dim = 256;
    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    double partial_rotary_factor = 0.25;
    int64_t max_position_embeddings = 32768;
    bool tie_word_embeddings = false;
    bool attention_bias = false;
    std::string hidden_act = "silu";
    // Gated DeltaNet (linear attention)
    int64_t linear_conv_kernel_dim = 4;
    int64_t linear_key_head_dim = 128;
    int64_t linear_value_head_dim = 128;
    int64_t linear_num_key_heads = 16;
    int64_t linear_num_value_heads = 32;
    // MoE
    int64_t decoder_sparse_step = 1;
    int64_t moe_intermediate_size = 512;
    int64_t shared_expert_intermediate_size = 512;
    int64_t num_experts_per_tok = 10;
    int64_t num_experts = 512;
    bool norm_topk_prob = true;
    std::vector<int64_t> mlp_only_layers;
    // Layout
    int64_t full_attention_interval = 4;
    std::vector<LayerType> layer_types;        // always filled after parsing (derived or explicit)
    // Special tokens (informational)
    int64_t bos_token_id = -1;
    int64_t eos_token_id = -1;
    std::string torch_dtype = "bfloat16";
    // MTP: number of MTP layers present in the checkpoint (0 = none found / not declared)
    int64_t mtp_num_hidden_layers = 0;

    // Derived helpers
    int64_t rotary_dim() const { return static_cast<int64_t>(head_dim * partial_rotary_factor); }
    int64_t linear_key_dim() const { return linear_num_key_heads * linear_key_head_dim; }
    int64_t linear_value_dim() const { return linear_num_value_heads * linear_value_head_dim; }
    int64_t linear_conv_dim() const { return 2 * linear_key_dim() + linear_value_dim(); }
    bool is_full_attention(int64_t layer) const { return layer_types[layer] == LayerType::FullAttention; }
    bool is_moe_layer(int64_t layer) const;   // false for mlp_only_layers / decoder_sparse_step gaps
};

}  // namespace qnext
