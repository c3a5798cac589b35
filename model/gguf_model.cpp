// qwen3next GGUF metadata -> Qwen3NextConfig (see gguf_model.h). The keys are those llama.cpp's converter
// writes (conversion/qwen.py Qwen3NextModel.set_gguf_parameters and the TextModel/Qwen2MoeModel defaults):
//   block_count = layers + nextn_predict_layers, embedding_length, feed_forward_length, context_length,
//   attention.{head_count, head_count_kv, key_length, value_length, layer_norm_rms_epsilon, recurrent_layers},
//   rope.{freq_base, dimension_count}, expert_{count, used_count, feed_forward_length,
//   shared_feed_forward_length}, ssm.{conv_kernel, state_size = key head dim, group_count = key heads,
//   time_step_rank = value heads, inner_size = value heads * value head dim}, full_attention_interval.
#include "model/gguf_model.h"

#include <cmath>
#include <limits>

namespace qnext {
namespace {

constexpr const char* kArch = "qwen3next";

class Meta {
public:
    explicit Meta(const GgufFile& f) : f_(f) {}
    [[noreturn]] void fail(const std::string& what) const { throw GgufError(f_.path().string() + ": " + what); }
    std::string key(const char* k) const { return std::string(kArch) + "." + k; }
    const GgufValue* find(const char* k) const { return f_.find(key(k)); }
    const GgufValue& at(const char* k) const {
        const GgufValue* v = find(k);
        if (!v) fail("metadata '" + key(k) + "' is missing (not a qwen3next GGUF written by llama.cpp's converter?)");
        return *v;
    }
    // A non-negative integer no larger than `max` (far below what the engine's int64 arithmetic can take).
    int64_t count(const char* k, int64_t max = int64_t(1) << 40) const {
        const GgufValue& v = at(k);
        const std::string name = key(k);
        if (v.is_array() || !v.is_integer())
            fail("metadata '" + name + "' is " + gguf_type_name(v.type) + ", expected an integer");
        const auto* u = std::get_if<uint64_t>(&v.v);
        const auto* i = std::get_if<int64_t>(&v.v);
        if ((u && *u > uint64_t(max)) || (i && (*i < 0 || *i > max)))
            fail("metadata '" + name + "' = " + (u ? std::to_string(*u) : std::to_string(*i)) +
                 " is out of range [0, " + std::to_string(max) + "]");
        return u ? int64_t(*u) : *i;
    }
    double number(const char* k) const {
        const GgufValue& v = at(k);
        const std::string name = key(k);
        if (v.is_array() || !(v.is_integer() || std::holds_alternative<double>(v.v)))
            fail("metadata '" + name + "' is " + gguf_type_name(v.type) + ", expected a number");
        const double d = v.as_f64(name);
        if (!std::isfinite(d)) fail("metadata '" + name + "' is not finite");
        return d;
    }

private:
    const GgufFile& f_;
};

Qwen3NextConfig gguf_config_unchecked(const GgufFile& f) {
    Meta m(f);
    const GgufValue* arch = f.find("general.architecture");
    if (!arch) m.fail("metadata 'general.architecture' is missing");
    const std::string a = arch->as_string("general.architecture");
    if (a != kArch)
        m.fail("architecture '" + a + "' is not supported (qnext runs qwen3next GGUF files; Qwen3.5/3.6 are planned)");

    Qwen3NextConfig c;
    c.model_type = "qwen3_next";
    const int64_t blocks = m.count("block_count", 1 << 16);
    c.mtp_num_hidden_layers = m.find("nextn_predict_layers") ? m.count("nextn_predict_layers", 64) : 0;
    if (c.mtp_num_hidden_layers >= blocks)
        m.fail("metadata 'qwen3next.nextn_predict_layers' = " + std::to_string(c.mtp_num_hidden_layers) +
               " leaves no main layers of the " + std::to_string(blocks) + " blocks");
    c.num_hidden_layers = blocks - c.mtp_num_hidden_layers;
    c.hidden_size = m.count("embedding_length");
    c.intermediate_size = m.find("feed_forward_length") ? m.count("feed_forward_length") : c.intermediate_size;
    c.max_position_embeddings = m.count("context_length");
    c.num_attention_heads = m.count("attention.head_count", 1 << 16);
    c.num_key_value_heads = m.count("attention.head_count_kv", 1 << 16);
    c.head_dim = m.count("attention.key_length", 1 << 16);
    if (m.find("attention.value_length") && m.count("attention.value_length", 1 << 16) != c.head_dim)
        m.fail("metadata 'qwen3next.attention.value_length' differs from key_length (Qwen3-Next uses one head dim)");
    c.rms_norm_eps = m.number("attention.layer_norm_rms_epsilon");
    c.rope_theta = m.number("rope.freq_base");
    const int64_t rot = m.count("rope.dimension_count", 1 << 16);
    if (c.head_dim == 0 || rot > c.head_dim)
        m.fail("metadata 'qwen3next.rope.dimension_count' = " + std::to_string(rot) + " exceeds the head dim " +
               std::to_string(c.head_dim));
    c.partial_rotary_factor = double(rot) / double(c.head_dim);
    c.num_experts = m.count("expert_count", 1 << 20);
    c.num_experts_per_tok = m.count("expert_used_count", 1 << 20);
    c.moe_intermediate_size = m.count("expert_feed_forward_length");
    c.shared_expert_intermediate_size = m.count("expert_shared_feed_forward_length");
    if (const GgufValue* v = m.find("expert_weights_norm")) c.norm_topk_prob = v->as_bool("qwen3next.expert_weights_norm");
    c.linear_conv_kernel_dim = m.count("ssm.conv_kernel", 1 << 10);
    c.linear_key_head_dim = m.count("ssm.state_size", 1 << 16);
    c.linear_num_key_heads = m.count("ssm.group_count", 1 << 16);
    c.linear_num_value_heads = m.count("ssm.time_step_rank", 1 << 16);
    const int64_t inner = m.count("ssm.inner_size");
    if (c.linear_num_value_heads == 0 || inner % c.linear_num_value_heads)
        m.fail("metadata 'qwen3next.ssm.inner_size' = " + std::to_string(inner) +
               " is not a multiple of ssm.time_step_rank (the value head count) " +
               std::to_string(c.linear_num_value_heads));
    c.linear_value_head_dim = inner / c.linear_num_value_heads;
    if (m.find("full_attention_interval")) c.full_attention_interval = m.count("full_attention_interval", 1 << 16);

    c.layer_types.clear();
    if (const GgufValue* rl = m.find("attention.recurrent_layers")) {
        const auto& flags = rl->as_array("qwen3next.attention.recurrent_layers");
        if (int64_t(flags.size()) != blocks)
            m.fail("metadata 'qwen3next.attention.recurrent_layers' has " + std::to_string(flags.size()) +
                   " entries for " + std::to_string(blocks) + " blocks");
        for (int64_t i = 0; i < c.num_hidden_layers; ++i)
            c.layer_types.push_back(flags[size_t(i)].as_bool("qwen3next.attention.recurrent_layers")
                                        ? LayerType::LinearAttention
                                        : LayerType::FullAttention);
    } else {
        if (c.full_attention_interval <= 0) m.fail("metadata 'qwen3next.full_attention_interval' must be positive");
        for (int64_t i = 0; i < c.num_hidden_layers; ++i)
            c.layer_types.push_back((i + 1) % c.full_attention_interval == 0 ? LayerType::FullAttention
                                                                             : LayerType::LinearAttention);
    }

    // The vocabulary: the token table's rows (the tokenizer may list fewer tokens than the padded table).
    const GgufTensor* embd = f.find_tensor("token_embd.weight");
    if (!embd) m.fail("tensor 'token_embd.weight' is missing");
    if (embd->ne.size() != 2 || embd->ne[0] != c.hidden_size)
        m.fail("tensor 'token_embd.weight' has shape " + embd->shape_str() + ", expected [vocab, " +
               std::to_string(c.hidden_size) + "]");
    c.vocab_size = embd->ne[1];
    if (const GgufValue* toks = f.find("tokenizer.ggml.tokens")) {
        const int64_t n = int64_t(toks->as_array("tokenizer.ggml.tokens").size());
        if (n > c.vocab_size)
            m.fail("the tokenizer has " + std::to_string(n) + " tokens but token_embd.weight only " +
                   std::to_string(c.vocab_size) + " rows");
    }
    c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
    if (const GgufValue* v = f.find("tokenizer.ggml.bos_token_id")) c.bos_token_id = v->as_i64("tokenizer.ggml.bos_token_id");
    if (const GgufValue* v = f.find("tokenizer.ggml.eos_token_id")) {
        c.eos_token_id = v->as_i64("tokenizer.ggml.eos_token_id");
        c.eos_token_ids = {c.eos_token_id};
    }
    try {
        validate_config(c, f.path().string());
    } catch (const std::exception& e) {
        throw GgufError(std::string(e.what()) + " (from the GGUF metadata)");
    }
    return c;
}

}  // namespace

Qwen3NextConfig gguf_config(const GgufFile& f) {
    try {
        return gguf_config_unchecked(f);
    } catch (const GgufError& e) {
        // Accessor errors (GgufValue::as_*) name the key but not the file.
        const std::string what = e.what();
        if (what.starts_with(f.path().string() + ":")) throw;
        throw GgufError(f.path().string() + ": " + what);
    }
}

GgufTypeSummary summarize_gguf(const GgufFile& f, const Qwen3NextConfig& cfg) {
    GgufTypeSummary s;
    for (const GgufTensor& t : f.tensors()) {
        const std::string type = t.type_name();
        s.bytes_by_type[type] += int64_t(t.nbytes);
        s.tensors_by_type[type] += 1;
        s.total_bytes += int64_t(t.nbytes);
        if (t.name == "token_embd.weight") {
            // One row per token, unless the table doubles as the output projection.
            s.bytes_per_token += cfg.tie_word_embeddings ? int64_t(t.nbytes) : int64_t(t.nbytes) / std::max<int64_t>(1, t.ne[1]);
            continue;
        }
        // Main-model experts only: the MTP layer (blk.N with N >= num_hidden_layers) runs only when speculating.
        const bool mtp = t.name.starts_with("blk.") &&
                         std::atoll(t.name.c_str() + 4) >= cfg.num_hidden_layers;
        if (mtp) continue;
        if (t.name.find("_exps.") != std::string::npos && cfg.num_experts > 0) {
            s.bytes_per_token += int64_t(t.nbytes) / cfg.num_experts * cfg.num_experts_per_tok;
            continue;
        }
        s.bytes_per_token += int64_t(t.nbytes);
    }
    return s;
}

nlohmann::ordered_json gguf_summary_to_json(const GgufTypeSummary& s) {
    nlohmann::ordered_json types = nlohmann::ordered_json::object();
    for (const auto& [type, bytes] : s.bytes_by_type)
        types[type] = {{"tensors", s.tensors_by_type.at(type)}, {"bytes", bytes}};
    return {{"tensor_types", types}, {"tensor_bytes", s.total_bytes}, {"bytes_per_token", s.bytes_per_token}};
}

std::string gguf_summary_to_text(const GgufTypeSummary& s) {
    auto mib = [](int64_t b) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f MiB", double(b) / (1 << 20));
        return std::string(buf);
    };
    std::string out = "tensor types          ";
    bool first = true;
    for (const auto& [type, bytes] : s.bytes_by_type) {
        out += (first ? "" : ", ") + type + " " + std::to_string(s.tensors_by_type.at(type)) + " tensors " + mib(bytes);
        first = false;
    }
    out += "\ntensor bytes          " + mib(s.total_bytes) + "\nbytes read per token  " + mib(s.bytes_per_token) + "\n";
    return out;
}

}  // namespace qnext
