// Sizes derived from a config. Parameter counts come from expected_tensors(), the same list the
// loader binds, so `info` and the loader cannot disagree.
#include "model/model_info.h"

#include <sstream>

#include "model/weights.h"

namespace qnext {
namespace {

std::string with_commas(int64_t v) {
    const std::string digits = std::to_string(v < 0 ? -v : v);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
        out.push_back(digits[i]);
    }
    return v < 0 ? "-" + out : out;
}

std::string human_bytes(int64_t b) {
    char buf[64];
    const double d = static_cast<double>(b);
    if (d >= 1073741824.0) std::snprintf(buf, sizeof buf, "%.2f GiB", d / 1073741824.0);
    else if (d >= 1048576.0) std::snprintf(buf, sizeof buf, "%.2f MiB", d / 1048576.0);
    else std::snprintf(buf, sizeof buf, "%.2f KiB", d / 1024.0);
    return buf;
}

// "12 x (3 x linear_attention, 1 x full_attention)" for a periodic layout, else the run-length list.
std::string describe_layout(const std::vector<LayerType>& t) {
    const size_t n = t.size();
    size_t period = n;
    for (size_t p = 1; p < n; ++p) {
        if (n % p) continue;
        bool ok = true;
        for (size_t i = p; i < n && ok; ++i) ok = t[i] == t[i - p];
        if (ok) {
            period = p;
            break;
        }
    }
    auto runs = [&](size_t len) {
        std::string s;
        for (size_t i = 0; i < len;) {
            size_t j = i;
            while (j < len && t[j] == t[i]) ++j;
            s += (s.empty() ? "" : ", ") + std::to_string(j - i) + " x " + layer_type_name(t[i]);
            i = j;
        }
        return s;
    };
    if (period < n) return std::to_string(n / period) + " x (" + runs(period) + ")";
    return runs(n);
}

}  // namespace

ModelInfo compute_model_info(const Qwen3NextConfig& cfg, int64_t mtp_layers) {
    ModelInfo info;
    info.mtp_layers = mtp_layers < 0 ? cfg.mtp_num_hidden_layers : mtp_layers;
    info.layers = cfg.num_hidden_layers;
    info.full_attention_layers = cfg.num_full_attention_layers();
    info.linear_attention_layers = cfg.num_linear_attention_layers();
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) info.moe_layers += cfg.is_moe_layer(i) ? 1 : 0;
    info.layout = describe_layout(cfg.layer_types);

    int64_t routed = 0;   // routed-expert parameters of the main model
    // Fused layout: the same parameter counts in 3 tensors per MoE layer instead of 3 per expert.
    for (const TensorSpec& t : expected_tensors(cfg, ExpertLayout::Fused, info.mtp_layers)) {
        const bool mtp = t.name.rfind("mtp.", 0) == 0;
        (mtp ? info.mtp_params : info.total_params) += t.numel();
        if (!mtp && t.name.find(".mlp.experts.") != std::string::npos) routed += t.numel();
        if (t.name == cfg.weight_prefix() + "embed_tokens.weight") info.embedding_params = t.numel();
    }
    const int64_t lm_head = cfg.tie_word_embeddings ? cfg.vocab_size * cfg.hidden_size : 0;   // counted once if tied
    info.active_params_per_token = info.total_params - info.embedding_params + lm_head - routed +
                                   (cfg.num_experts > 0 ? routed / cfg.num_experts * cfg.num_experts_per_tok : 0);

    const int64_t kv_per_layer = 2 * cfg.num_key_value_heads * cfg.head_dim * 2;   // K and V, bf16
    info.kv_bytes_per_token = info.full_attention_layers * kv_per_layer;
    info.kv_bytes_per_token_mtp = info.mtp_layers * kv_per_layer;
    info.recurrent_state_bytes = info.linear_attention_layers * cfg.linear_num_value_heads *
                                 cfg.linear_key_head_dim * cfg.linear_value_head_dim * 4;
    info.conv_state_bytes = info.linear_attention_layers * cfg.linear_conv_dim() * (cfg.linear_conv_kernel_dim - 1) * 2;
    return info;
}

nlohmann::ordered_json model_info_to_json(const Qwen3NextConfig& cfg, const ModelInfo& info) {
    nlohmann::ordered_json j;
    j["model_type"] = cfg.model_type;
    j["family"] = family_name(cfg.family);
    j["multimodal"] = cfg.multimodal;
    j["layers"] = info.layers;
    j["linear_attention_layers"] = info.linear_attention_layers;
    j["full_attention_layers"] = info.full_attention_layers;
    j["moe_layers"] = info.moe_layers;
    j["layout"] = info.layout;
    nlohmann::ordered_json types = nlohmann::ordered_json::array(), full = nlohmann::ordered_json::array();
    for (size_t i = 0; i < cfg.layer_types.size(); ++i) {
        types.push_back(layer_type_name(cfg.layer_types[i]));
        if (cfg.layer_types[i] == LayerType::FullAttention) full.push_back(i);
    }
    j["layer_types"] = types;
    j["full_attention_layer_indices"] = full;
    j["hidden_size"] = cfg.hidden_size;
    j["vocab_size"] = cfg.vocab_size;
    j["num_experts"] = cfg.num_experts;
    j["num_experts_per_tok"] = cfg.num_experts_per_tok;
    j["total_params"] = info.total_params;
    j["embedding_params"] = info.embedding_params;
    j["mtp_layers"] = info.mtp_layers;
    j["mtp_params"] = info.mtp_params;
    j["total_params_with_mtp"] = info.total_params + info.mtp_params;
    j["active_params_per_token"] = info.active_params_per_token;
    j["kv_bytes_per_token"] = info.kv_bytes_per_token;
    j["kv_bytes_per_token_mtp"] = info.kv_bytes_per_token_mtp;
    j["recurrent_state_bytes_per_sequence"] = info.recurrent_state_bytes;
    j["conv_state_bytes_per_sequence"] = info.conv_state_bytes;
    j["state_bytes_per_sequence"] = info.recurrent_state_bytes + info.conv_state_bytes;
    j["weight_bytes_bf16"] = 2 * (info.total_params + info.mtp_params);
    return j;
}

std::string model_info_to_text(const Qwen3NextConfig& cfg, const ModelInfo& info, bool bf16_size) {
    std::ostringstream os;
    os << "model_type            " << cfg.model_type << " (" << family_name(cfg.family)
       << (cfg.multimodal ? ", multimodal folder: the text model runs, the vision tower does not" : "") << ")\n";
    os << "layers                " << info.layers << " = " << info.linear_attention_layers
       << " linear_attention (Gated DeltaNet) + " << info.full_attention_layers << " full_attention\n";
    os << "layout                " << info.layout << "\n";
    os << "full attention at     ";
    bool first = true;
    for (size_t i = 0; i < cfg.layer_types.size(); ++i)
        if (cfg.layer_types[i] == LayerType::FullAttention) os << (first ? "" : ", ") << i, first = false;
    os << (first ? "(none)" : "") << "\n";
    os << "hidden / vocab        " << cfg.hidden_size << " / " << cfg.vocab_size << "\n";
    os << "attention             " << cfg.num_attention_heads << " q heads, " << cfg.num_key_value_heads
       << " kv heads, head_dim " << cfg.head_dim << ", rotary dim " << cfg.rotary_dim() << "\n";
    os << "gated deltanet        " << cfg.linear_num_key_heads << " key heads x " << cfg.linear_key_head_dim << ", "
       << cfg.linear_num_value_heads << " value heads x " << cfg.linear_value_head_dim << ", conv kernel "
       << cfg.linear_conv_kernel_dim << "\n";
    if (info.moe_layers > 0)
        os << "moe                   " << info.moe_layers << " layers, " << cfg.num_experts << " experts (top-"
           << cfg.num_experts_per_tok << ") x " << cfg.moe_intermediate_size << " + shared expert x "
           << cfg.shared_expert_intermediate_size << "\n";
    if (info.moe_layers < info.layers)
        os << "dense mlp             " << info.layers - info.moe_layers << " layers, SwiGLU x " << cfg.intermediate_size
           << "\n";
    os << "parameters            " << with_commas(info.total_params) << " (main model)\n";
    if (info.mtp_layers > 0)
        os << "  + mtp               " << with_commas(info.mtp_params) << " (" << info.mtp_layers
           << " layer) = " << with_commas(info.total_params + info.mtp_params) << "\n";
    os << "active per token      " << with_commas(info.active_params_per_token)
       << (info.moe_layers > 0 ? " (all but the embedding table; top-k + shared experts)\n"
                               : " (all but the embedding table)\n");
    os << "kv cache              " << with_commas(info.kv_bytes_per_token) << " bytes/token (bf16, "
       << info.full_attention_layers << " layers)";
    if (info.mtp_layers > 0) os << " + " << with_commas(info.kv_bytes_per_token_mtp) << " for mtp";
    os << "\n";
    os << "recurrent state       " << with_commas(info.recurrent_state_bytes) << " bytes/sequence ("
       << human_bytes(info.recurrent_state_bytes) << ", fp32) + conv " << with_commas(info.conv_state_bytes)
       << " bytes (bf16)\n";
    if (bf16_size) os << "weights (bf16)        " << human_bytes(2 * (info.total_params + info.mtp_params)) << "\n";
    return os.str();
}

}  // namespace qnext
