// Sizes derived from a config (`qnext info`): layer layout, parameter counts, per-token activity,
// KV-cache and recurrent-state memory.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace qnext {

struct ModelInfo {
    std::string layout;                    // e.g. "12 x (3 x linear_attention, 1 x full_attention)"
    int64_t layers = 0, linear_attention_layers = 0, full_attention_layers = 0, moe_layers = 0;
    int64_t total_params = 0;              // main model (embedding + layers + norm + lm_head unless tied)
    int64_t mtp_params = 0;                // MTP head (mtp_layers layers)
    int64_t embedding_params = 0;          // embed_tokens
    int64_t active_params_per_token = 0;   // everything a token touches except the embedding table:
                                           // mixers, norms, router, top-k + shared experts, lm_head
    int64_t kv_bytes_per_token = 0;        // bf16 K+V over all full-attention layers
    int64_t kv_bytes_per_token_mtp = 0;    // bf16 K+V of the MTP layers
    int64_t recurrent_state_bytes = 0;     // per sequence: fp32 delta-rule state over all GDN layers
    int64_t conv_state_bytes = 0;          // per sequence: bf16 conv window (K-1 inputs) over all GDN layers
    int64_t mtp_layers = 0;
};

// `mtp_layers` < 0: use cfg.mtp_num_hidden_layers.
ModelInfo compute_model_info(const Qwen3NextConfig& cfg, int64_t mtp_layers = -1);
nlohmann::ordered_json model_info_to_json(const Qwen3NextConfig& cfg, const ModelInfo& info);
// bf16_size: end with the "weights (bf16)" size line (a config or safetensors folder; a GGUF prints its own
// tensor types and bytes instead).
std::string model_info_to_text(const Qwen3NextConfig& cfg, const ModelInfo& info, bool bf16_size = true);

}  // namespace qnext
