// Qwen3NextConfig: the typed form of a Hugging Face config.json of the Qwen3-Next design: model_type
// "qwen3_next", and the Qwen3.5 / Qwen3.6 family, "qwen3_5" (dense) and "qwen3_5_moe", either as the
// multimodal wrapper (*ForConditionalGeneration: the language model under "text_config", its weights under
// model.language_model.*) or as the plain text model ("qwen3_5_text" / "qwen3_5_moe_text", *ForCausalLM).
// One struct for all: the families differ in data (which MLP each layer has, the GDN projection layout, the
// weight names), not in the forward. Field names follow config.json exactly. Defaults are those of HF
// transformers 5.23 (configuration_qwen3_next.py, configuration_qwen3_5(_moe).py; per field in config.cpp);
// parse_config() validates every invariant and names the offending field in its error.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qnext {

enum class LayerType { LinearAttention, FullAttention };

// Qwen3Next: fused in_proj_qkvz / in_proj_ba, MoE (or dense mlp_only) layers. Qwen3_5: split in_proj_qkv /
// in_proj_z / in_proj_b / in_proj_a, a dense SwiGLU MLP in every layer. Qwen3_5Moe: split projections, MoE
// with a shared expert in every layer, top-k always renormalised.
enum class ModelFamily { Qwen3Next, Qwen3_5, Qwen3_5Moe };
const char* family_name(ModelFamily f);   // "qwen3_next", "qwen3_5", "qwen3_5_moe"

// Block-wise FP8 quantization as used by the Qwen "-FP8" checkpoints: `quantization_config` =
// {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128], "activation_scheme": "dynamic"}.
// Quantized weights are F8_E4M3 with a companion F32 tensor `<name>_scale_inv` of shape
// [ceil(rows / block_rows), ceil(cols / block_cols)].
struct QuantizationConfig {
    bool enabled = false;
    std::string quant_method;                  // "fp8"
    std::string fmt = "e4m3";
    int64_t block_rows = 128;                  // weight_block_size[0]
    int64_t block_cols = 128;                  // weight_block_size[1]
};

struct Qwen3NextConfig {
    std::string model_type = "qwen3_next";     // the text model's type: qwen3_next, qwen3_5_text, qwen3_5_moe_text
    ModelFamily family = ModelFamily::Qwen3Next;
    bool multimodal = false;                   // *ForConditionalGeneration folder (vision tower not run)
    int64_t vocab_size = 151936;
    int64_t hidden_size = 2048;
    int64_t intermediate_size = 5632;          // dense-MLP width: used only by layers that are not MoE
    int64_t num_hidden_layers = 48;
    int64_t num_attention_heads = 16;
    int64_t num_key_value_heads = 2;
    int64_t head_dim = 256;
    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    double partial_rotary_factor = 0.25;
    // Qwen3.5 multimodal RoPE (rope_parameters.mrope_section / mrope_interleaved): for text every position's
    // temporal, height and width components are equal, which makes it exactly the plain RoPE the forward
    // computes (tests/model: Qwen35 golden against HF's MRoPE). Kept for info and for the config round trip.
    std::vector<int64_t> mrope_section;
    bool mrope_interleaved = false;
    int64_t max_position_embeddings = 32768;
    bool tie_word_embeddings = false;
    bool attention_bias = false;               // only false is supported (the real model has no biases)
    std::string hidden_act = "silu";           // only "silu" is supported
    double initializer_range = 0.02;           // std of random projection weights (make-checkpoint)
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
    // Special tokens (informational; -1 = null/absent)
    int64_t bos_token_id = -1;
    int64_t eos_token_id = -1;                 // first of eos_token_ids (or -1)
    std::vector<int64_t> eos_token_ids;        // config.json may hold an int or a list
    std::string torch_dtype = "bfloat16";      // "torch_dtype" (v4) or "dtype" (v5)
    // MTP: number of MTP layers. config.json of the real model does not declare it (the checkpoint
    // still carries one layer); read from "mtp_num_hidden_layers" or "num_nextn_predict_layers" when
    // present (qnext's make-checkpoint writes "mtp_num_hidden_layers"). load_model_folder() updates it
    // from the mtp.* tensors actually present.
    int64_t mtp_num_hidden_layers = 0;
    QuantizationConfig quantization;

    // Derived helpers
    int64_t rotary_dim() const { return static_cast<int64_t>(head_dim * partial_rotary_factor); }
    int64_t linear_key_dim() const { return linear_num_key_heads * linear_key_head_dim; }
    int64_t linear_value_dim() const { return linear_num_value_heads * linear_value_head_dim; }
    int64_t linear_conv_dim() const { return 2 * linear_key_dim() + linear_value_dim(); }
    int64_t num_full_attention_layers() const;
    int64_t num_linear_attention_layers() const { return num_hidden_layers - num_full_attention_layers(); }
    bool is_full_attention(int64_t layer) const { return layer_types[layer] == LayerType::FullAttention; }
    // HF Qwen3NextDecoderLayer: MoE iff layer not in mlp_only_layers and num_experts > 0 and
    // (layer + 1) % decoder_sparse_step == 0; otherwise a dense SwiGLU MLP of intermediate_size.
    bool is_moe_layer(int64_t layer) const;
    bool split_gdn_projections() const { return family != ModelFamily::Qwen3Next; }
    // Where the language model's tensors live: "model." or "model.language_model." (multimodal wrapper).
    std::string weight_prefix() const { return multimodal ? "model.language_model." : "model."; }
};

// Parses and validates a config object. `source` names the file in error messages.
// Throws std::runtime_error("<source>: <field>: <problem>") on the first invalid field.
Qwen3NextConfig parse_config(const nlohmann::json& j, const std::string& source = "config.json");
// Reads and parses a config.json file (errors name the path).
Qwen3NextConfig load_config(const std::filesystem::path& config_json);
// Re-checks every invariant of an already-built config (parse_config calls it). Throws like parse_config.
void validate_config(const Qwen3NextConfig& c, const std::string& source = "config");
// Serialises to a Hugging Face compatible config.json object (loadable by transformers 4.57 and 5.x).
nlohmann::ordered_json config_to_json(const Qwen3NextConfig& c);

const char* layer_type_name(LayerType t);   // "linear_attention" / "full_attention"

}  // namespace qnext
