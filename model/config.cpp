// config.json -> Qwen3NextConfig. Absent fields take the defaults of transformers 5.23
// `Qwen3NextConfig` (configuration_qwen3_next.py), listed next to each read below. Both the v4 spelling
// (top-level rope_theta / partial_rotary_factor / torch_dtype) and the v5 one (rope_parameters / dtype)
// are accepted.
#include "model/config.h"
#include "common/json_limits.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace qnext {
namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& source, const std::string& field, const std::string& msg) {
    throw std::runtime_error(source + ": " + field + ": " + msg);
}

std::string type_of(const json& v) { return v.is_null() ? "null" : std::string(v.type_name()); }

// Field readers: absent -> default; present with the wrong JSON type -> error naming the field.
struct Reader {
    const json& j;
    const std::string& source;
    std::string prefix = "";   // "text_config." inside a multimodal wrapper: error messages name the full path

    const json* get(const char* key) const {
        auto it = j.find(key);
        return it == j.end() ? nullptr : &*it;
    }
    int64_t integer(const char* key, int64_t def) const {
        const json* v = get(key);
        if (!v) return def;
        if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
            fail(source, prefix + key, "integer " + v->dump() + " is out of range");
        if (v->is_number_integer()) return v->get<int64_t>();
        // a float (350.0, 1e15) is refused: HF's config classes declare these fields int
        fail(source, prefix + key, "expected an integer, got " + type_of(*v) + " " + v->dump());
    }
    double number(const char* key, double def) const {
        const json* v = get(key);
        if (!v) return def;
        if (v->is_number()) return v->get<double>();
        fail(source, prefix + key, "expected a number, got " + type_of(*v) + " " + v->dump());
    }
    bool boolean(const char* key, bool def) const {
        const json* v = get(key);
        if (!v) return def;
        if (v->is_boolean()) return v->get<bool>();
        fail(source, prefix + key, "expected true or false, got " + type_of(*v) + " " + v->dump());
    }
    std::string string(const char* key, const std::string& def) const {
        const json* v = get(key);
        if (!v || v->is_null()) return def;
        if (v->is_string()) return v->get<std::string>();
        fail(source, prefix + key, "expected a string, got " + type_of(*v) + " " + v->dump());
    }
    // int | null -> -1 for null/absent
    int64_t optional_id(const char* key) const {
        const json* v = get(key);
        if (!v || v->is_null()) return -1;
        return integer(key, -1);
    }
    std::vector<int64_t> int_list(const char* key) const {
        const json* v = get(key);
        std::vector<int64_t> out;
        if (!v || v->is_null()) return out;
        if (!v->is_array()) fail(source, prefix + key, "expected a list of integers, got " + type_of(*v));
        for (const json& e : *v) {
            if (!e.is_number_integer()) fail(source, prefix + key, "expected a list of integers, found " + e.dump());
            out.push_back(e.get<int64_t>());
        }
        return out;
    }
};

void read_rope(const Reader& r, Qwen3NextConfig& c) {
    // Defaults: rope_theta 10000.0 (RotaryEmbeddingConfigMixin.default_theta), partial_rotary_factor
    // 0.25 (Qwen3NextConfig / Qwen3_5TextConfig __post_init__ setdefault), rope_type "default".
    c.rope_theta = r.number("rope_theta", 10000.0);
    c.partial_rotary_factor = r.number("partial_rotary_factor", 0.25);
    const bool mrope = c.family != ModelFamily::Qwen3Next;   // Qwen3.5's rope_parameters carry the MRoPE sections
    if (const json* rp = r.get("rope_parameters"); rp && !rp->is_null()) {
        const std::string at = r.prefix + "rope_parameters";
        if (!rp->is_object()) fail(r.source, at, "expected an object, got " + type_of(*rp));
        Reader sub{*rp, r.source, at + "."};
        std::string type = sub.string("rope_type", "default");
        if (type != "default") fail(r.source, at + ".rope_type", "unsupported '" + type + "' (only 'default')");
        for (const auto& [k, v] : rp->items())
            if (k != "rope_type" && k != "rope_theta" && k != "partial_rotary_factor" &&
                !(mrope && (k == "mrope_section" || k == "mrope_interleaved")))
                fail(r.source, at + "." + k,
                     std::string("unsupported key (only rope_type, rope_theta, partial_rotary_factor") +
                         (mrope ? ", mrope_section, mrope_interleaved)" : ")"));
        c.rope_theta = sub.number("rope_theta", c.rope_theta);
        c.partial_rotary_factor = sub.number("partial_rotary_factor", c.partial_rotary_factor);
        if (mrope) {
            c.mrope_section = sub.int_list("mrope_section");
            c.mrope_interleaved = sub.boolean("mrope_interleaved", false);
        }
    }
    if (const json* rs = r.get("rope_scaling"); rs && !rs->is_null()) {
        if (!rs->is_object()) fail(r.source, r.prefix + "rope_scaling", "expected an object or null, got " + type_of(*rs));
        Reader sub{*rs, r.source, r.prefix + "rope_scaling."};
        std::string type = sub.string("rope_type", sub.string("type", "default"));
        if (type != "default")
            fail(r.source, r.prefix + "rope_scaling", "unsupported rope type '" + type + "' (only 'default'/null)");
    }
}

void read_quantization(const Reader& r, Qwen3NextConfig& c) {
    const json* q = r.get("quantization_config");
    if (!q || q->is_null()) return;
    if (!q->is_object()) fail(r.source, "quantization_config", "expected an object, got " + type_of(*q));
    Reader sub{*q, r.source};
    c.quantization.enabled = true;
    c.quantization.quant_method = sub.string("quant_method", "");
    c.quantization.fmt = sub.string("fmt", "e4m3");
    std::vector<int64_t> block = sub.int_list("weight_block_size");
    if (block.empty()) block = {128, 128};
    if (block.size() != 2)
        fail(r.source, "quantization_config.weight_block_size", "expected 2 integers [rows, cols]");
    c.quantization.block_rows = block[0];
    c.quantization.block_cols = block[1];
}

void check_positive(const std::string& source, const char* field, int64_t v) {
    if (v <= 0) fail(source, field, "must be > 0, got " + std::to_string(v));
}

// Upper bounds far above every real model (Qwen3-Next-80B: 48 layers, 512 experts, 151,936 tokens; Qwen3.5-397B:
// 60 layers, 248,320 tokens), so that an absurd config is refused before anything is sized from it.
void check_bound(const std::string& source, const char* field, int64_t v, int64_t max) {
    if (v > max)
        fail(source, field, std::to_string(v) + " exceeds what this engine supports (at most " + std::to_string(max) + ")");
}

}  // namespace

const char* family_name(ModelFamily f) {
    switch (f) {
        case ModelFamily::Qwen3Next: return "qwen3_next";
        case ModelFamily::Qwen3_5: return "qwen3_5";
        case ModelFamily::Qwen3_5Moe: return "qwen3_5_moe";
    }
    return "qwen3_next";
}

const char* layer_type_name(LayerType t) {
    return t == LayerType::FullAttention ? "full_attention" : "linear_attention";
}

int64_t Qwen3NextConfig::num_full_attention_layers() const {
    return std::count(layer_types.begin(), layer_types.end(), LayerType::FullAttention);
}

bool Qwen3NextConfig::is_moe_layer(int64_t layer) const {
    bool listed = std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end();
    return !listed && num_experts > 0 && (layer + 1) % decoder_sparse_step == 0;
}

Qwen3NextConfig parse_config(const json& j, const std::string& source) {
    if (!j.is_object()) throw std::runtime_error(source + ": expected a JSON object at top level");
    Reader top{j, source};
    Qwen3NextConfig c;
    const json* mt = top.get("model_type");
    if (!mt) fail(source, "model_type", "missing (expected \"qwen3_next\", \"qwen3_5\" or \"qwen3_5_moe\")");
    std::string type = top.string("model_type", "");
    const json* text = &j;
    std::string prefix;
    if (type == "qwen3_5" || type == "qwen3_5_moe") {   // *ForConditionalGeneration: the text model inside
        const json* tc = top.get("text_config");
        if (!tc || !tc->is_object())
            fail(source, "text_config", "missing or not an object (a " + type + " config holds its language model there)");
        text = tc;
        prefix = "text_config.";
        c.multimodal = true;
        type += "_text";
        Reader inner{*tc, source, prefix};
        const std::string inner_type = inner.string("model_type", type);
        if (inner_type != type)
            fail(source, "text_config.model_type", "'" + inner_type + "' inside a " + top.string("model_type", "") +
                                                       " config (expected '" + type + "')");
    }
    if (type == "qwen3_next") c.family = ModelFamily::Qwen3Next;
    else if (type == "qwen3_5_text") c.family = ModelFamily::Qwen3_5;
    else if (type == "qwen3_5_moe_text") c.family = ModelFamily::Qwen3_5Moe;
    else
        fail(source, "model_type", "unsupported model type '" + top.string("model_type", "") +
                                       "' (expected 'qwen3_next', 'qwen3_5', 'qwen3_5_moe', 'qwen3_5_text' or "
                                       "'qwen3_5_moe_text')");
    c.model_type = type;
    Reader r{*text, source, prefix};
    const bool next = c.family == ModelFamily::Qwen3Next, dense = c.family == ModelFamily::Qwen3_5;

    // Defaults: HF Qwen3NextConfig / Qwen3_5TextConfig / Qwen3_5MoeTextConfig (transformers 5.23).
    c.vocab_size = r.integer("vocab_size", next ? 151936 : 248320);
    c.hidden_size = r.integer("hidden_size", next ? 2048 : dense ? 4096 : 2048);
    c.intermediate_size = r.integer("intermediate_size", next ? 5632 : dense ? 12288 : 0);
    c.num_hidden_layers = r.integer("num_hidden_layers", next ? 48 : dense ? 32 : 40);
    c.num_attention_heads = r.integer("num_attention_heads", 16);
    c.num_key_value_heads = r.integer("num_key_value_heads", dense ? 4 : 2);
    c.head_dim = r.integer("head_dim", 256);
    c.hidden_act = r.string("hidden_act", "silu");
    c.max_position_embeddings = r.integer("max_position_embeddings", 32768);
    c.initializer_range = r.number("initializer_range", 0.02);
    c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
    // The wrapper's tie_word_embeddings is the top-level one (HF Qwen3_5Config), the text config's otherwise.
    c.tie_word_embeddings = c.multimodal && top.get("tie_word_embeddings") ? top.boolean("tie_word_embeddings", false)
                                                                          : r.boolean("tie_word_embeddings", false);
    c.attention_bias = r.boolean("attention_bias", false);
    read_rope(r, c);
    c.linear_conv_kernel_dim = r.integer("linear_conv_kernel_dim", 4);
    c.linear_key_head_dim = r.integer("linear_key_head_dim", 128);
    c.linear_value_head_dim = r.integer("linear_value_head_dim", 128);
    c.linear_num_key_heads = r.integer("linear_num_key_heads", 16);
    c.linear_num_value_heads = r.integer("linear_num_value_heads", 32);
    if (dense) {
        // No MoE: HF's Qwen3_5TextConfig has none of the MoE fields (keys left in a file are ignored, as HF does).
        c.num_experts = 0;
        c.num_experts_per_tok = 0;
        c.moe_intermediate_size = 0;
        c.shared_expert_intermediate_size = 0;
        c.decoder_sparse_step = 1;
    } else {
        c.moe_intermediate_size = r.integer("moe_intermediate_size", 512);
        c.shared_expert_intermediate_size = r.integer("shared_expert_intermediate_size", 512);
        c.num_experts_per_tok = r.integer("num_experts_per_tok", next ? 10 : 8);
        c.num_experts = r.integer("num_experts", next ? 512 : 256);
        if (next) {
            c.decoder_sparse_step = r.integer("decoder_sparse_step", 1);
            c.norm_topk_prob = r.boolean("norm_topk_prob", true);
            c.mlp_only_layers = r.int_list("mlp_only_layers");   // None -> []
        } else {
            // Qwen3.5-MoE: every layer MoE, top-k always renormalised (HF's router); decoder_sparse_step,
            // norm_topk_prob and mlp_only_layers are not fields of it (ignored in a file, as HF does).
            c.decoder_sparse_step = 1;
            c.norm_topk_prob = true;
        }
    }
    c.bos_token_id = r.optional_id("bos_token_id");        // None
    if (const json* eos = r.get("eos_token_id"); eos && eos->is_array())
        c.eos_token_ids = r.int_list("eos_token_id");
    else if (int64_t id = r.optional_id("eos_token_id"); id >= 0)
        c.eos_token_ids = {id};
    c.eos_token_id = c.eos_token_ids.empty() ? -1 : c.eos_token_ids.front();
    c.torch_dtype = r.string("dtype", r.string("torch_dtype", c.multimodal ? top.string("dtype", top.string("torch_dtype", "bfloat16"))
                                                                           : "bfloat16"));
    c.mtp_num_hidden_layers =
        r.integer("mtp_num_hidden_layers", r.integer("num_nextn_predict_layers", 0));   // Qwen3.5 declares it
    read_quantization(c.multimodal && top.get("quantization_config") ? top : r, c);

    // layer_types: explicit, or derived from full_attention_interval (default 4):
    // layer i is full attention iff (i + 1) % interval == 0.
    c.full_attention_interval = r.integer("full_attention_interval", 4);
    if (const json* lt = r.get("layer_types"); lt && !lt->is_null()) {
        if (!lt->is_array()) fail(source, prefix + "layer_types", "expected a list of strings, got " + type_of(*lt));
        for (size_t i = 0; i < lt->size(); ++i) {
            const json& e = (*lt)[i];
            std::string s = e.is_string() ? e.get<std::string>() : e.dump();
            if (s == "linear_attention") c.layer_types.push_back(LayerType::LinearAttention);
            else if (s == "full_attention") c.layer_types.push_back(LayerType::FullAttention);
            else
                fail(source, prefix + "layer_types[" + std::to_string(i) + "]",
                     "unsupported layer type " + e.dump() + " (expected 'linear_attention' or 'full_attention')");
        }
    } else {
        check_positive(source, (prefix + "full_attention_interval").c_str(), c.full_attention_interval);
        check_positive(source, (prefix + "num_hidden_layers").c_str(), c.num_hidden_layers);
        check_bound(source, (prefix + "num_hidden_layers").c_str(), c.num_hidden_layers, 4096);
        for (int64_t i = 0; i < c.num_hidden_layers; ++i)
            c.layer_types.push_back((i + 1) % c.full_attention_interval == 0 ? LayerType::FullAttention
                                                                             : LayerType::LinearAttention);
    }
    validate_config(c, source);
    return c;
}

void validate_config(const Qwen3NextConfig& c, const std::string& source) {
    const char* want = c.family == ModelFamily::Qwen3Next ? "qwen3_next"
                       : c.family == ModelFamily::Qwen3_5 ? "qwen3_5_text" : "qwen3_5_moe_text";
    if (c.model_type != want)
        fail(source, "model_type", "'" + c.model_type + "' does not match the family " + family_name(c.family) +
                                       " (expected '" + want + "')");
    const bool moe = c.family != ModelFamily::Qwen3_5;
    check_bound(source, "num_hidden_layers", c.num_hidden_layers, 4096);
    check_bound(source, "num_experts", c.num_experts, 16384);
    check_bound(source, "vocab_size", c.vocab_size, int64_t(1) << 24);
    check_bound(source, "hidden_size", c.hidden_size, int64_t(1) << 18);
    check_bound(source, "intermediate_size", c.intermediate_size, int64_t(1) << 22);
    check_bound(source, "moe_intermediate_size", c.moe_intermediate_size, int64_t(1) << 22);
    check_bound(source, "shared_expert_intermediate_size", c.shared_expert_intermediate_size, int64_t(1) << 22);
    check_bound(source, "num_attention_heads", c.num_attention_heads, 4096);
    check_bound(source, "num_key_value_heads", c.num_key_value_heads, 4096);
    check_bound(source, "head_dim", c.head_dim, 4096);
    check_bound(source, "linear_num_key_heads", c.linear_num_key_heads, 4096);
    check_bound(source, "linear_num_value_heads", c.linear_num_value_heads, 4096);
    check_bound(source, "linear_key_head_dim", c.linear_key_head_dim, 4096);
    check_bound(source, "linear_value_head_dim", c.linear_value_head_dim, 4096);
    check_bound(source, "linear_conv_kernel_dim", c.linear_conv_kernel_dim, 64);
    check_bound(source, "max_position_embeddings", c.max_position_embeddings, int64_t(1) << 31);
    check_bound(source, "mtp_num_hidden_layers", c.mtp_num_hidden_layers, 16);
    check_bound(source, "full_attention_interval", c.full_attention_interval, 4096);
    check_bound(source, "decoder_sparse_step", c.decoder_sparse_step, 4096);
    check_positive(source, "vocab_size", c.vocab_size);
    check_positive(source, "hidden_size", c.hidden_size);
    check_positive(source, "num_hidden_layers", c.num_hidden_layers);
    check_positive(source, "num_attention_heads", c.num_attention_heads);
    check_positive(source, "num_key_value_heads", c.num_key_value_heads);
    check_positive(source, "head_dim", c.head_dim);
    check_positive(source, "max_position_embeddings", c.max_position_embeddings);
    check_positive(source, "linear_conv_kernel_dim", c.linear_conv_kernel_dim);
    check_positive(source, "linear_key_head_dim", c.linear_key_head_dim);
    check_positive(source, "linear_value_head_dim", c.linear_value_head_dim);
    check_positive(source, "linear_num_key_heads", c.linear_num_key_heads);
    check_positive(source, "linear_num_value_heads", c.linear_num_value_heads);
    check_positive(source, "decoder_sparse_step", c.decoder_sparse_step);
    if (moe) {
        check_positive(source, "num_experts", c.num_experts);
        check_positive(source, "num_experts_per_tok", c.num_experts_per_tok);
        check_positive(source, "moe_intermediate_size", c.moe_intermediate_size);
        check_positive(source, "shared_expert_intermediate_size", c.shared_expert_intermediate_size);
    } else if (c.num_experts != 0) {
        fail(source, "num_experts", "a dense qwen3_5 model has no experts");
    }
    if (c.family != ModelFamily::Qwen3Next && (c.decoder_sparse_step != 1 || !c.mlp_only_layers.empty()))
        fail(source, "decoder_sparse_step", "Qwen3.5 models have the same MLP in every layer");
    if (!c.mrope_section.empty()) {
        int64_t sum = 0;
        for (int64_t v : c.mrope_section) {
            if (v < 0) fail(source, "rope_parameters.mrope_section", "entries must be >= 0");
            sum += v;
        }
        if (c.mrope_section.size() != 3 || sum > c.rotary_dim() / 2)
            fail(source, "rope_parameters.mrope_section",
                 "expected 3 sections (temporal, height, width) of at most rotary_dim / 2 = " +
                     std::to_string(c.rotary_dim() / 2) + " frequencies in all");
    }
    if (c.num_attention_heads % c.num_key_value_heads != 0)
        fail(source, "num_attention_heads", std::to_string(c.num_attention_heads) +
                                                " is not divisible by num_key_value_heads " +
                                                std::to_string(c.num_key_value_heads));
    if (c.linear_num_value_heads % c.linear_num_key_heads != 0)
        fail(source, "linear_num_value_heads", std::to_string(c.linear_num_value_heads) +
                                                   " is not divisible by linear_num_key_heads " +
                                                   std::to_string(c.linear_num_key_heads));
    if (c.num_experts_per_tok > c.num_experts)
        fail(source, "num_experts_per_tok", std::to_string(c.num_experts_per_tok) +
                                                " exceeds num_experts " + std::to_string(c.num_experts));
    if (!(c.partial_rotary_factor > 0.0 && c.partial_rotary_factor <= 1.0))
        fail(source, "partial_rotary_factor", "must be in (0, 1], got " + std::to_string(c.partial_rotary_factor));
    if (c.rotary_dim() <= 0 || c.rotary_dim() % 2 != 0)
        fail(source, "partial_rotary_factor",
             "rotary dim int(head_dim * partial_rotary_factor) = " + std::to_string(c.rotary_dim()) +
                 " must be even and > 0");
    if (!(c.rope_theta > 0.0)) fail(source, "rope_theta", "must be > 0");
    if (!(c.rms_norm_eps > 0.0)) fail(source, "rms_norm_eps", "must be > 0");
    if (!(c.initializer_range >= 0.0)) fail(source, "initializer_range", "must be >= 0");
    if (c.hidden_act != "silu") fail(source, "hidden_act", "unsupported activation '" + c.hidden_act + "' (only 'silu')");
    if (c.attention_bias) fail(source, "attention_bias", "true is not supported (Qwen3-Next has no biases)");
    if (c.torch_dtype != "bfloat16" && c.torch_dtype != "float16" && c.torch_dtype != "float32")
        fail(source, "dtype", "unsupported '" + c.torch_dtype + "' (bfloat16, float16 or float32)");
    if (static_cast<int64_t>(c.layer_types.size()) != c.num_hidden_layers)
        fail(source, "layer_types", "has " + std::to_string(c.layer_types.size()) +
                                        " entries but num_hidden_layers is " + std::to_string(c.num_hidden_layers));
    for (int64_t l : c.mlp_only_layers)
        if (l < 0 || l >= c.num_hidden_layers)
            fail(source, "mlp_only_layers", "layer " + std::to_string(l) + " out of range [0, " +
                                                std::to_string(c.num_hidden_layers) + ")");
    bool any_dense = false;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) any_dense |= !c.is_moe_layer(i);
    if (any_dense) check_positive(source, "intermediate_size", c.intermediate_size);
    if (c.mtp_num_hidden_layers < 0)
        fail(source, "mtp_num_hidden_layers", "must be >= 0, got " + std::to_string(c.mtp_num_hidden_layers));
    if (c.quantization.enabled) {
        if (c.quantization.quant_method != "fp8")
            fail(source, "quantization_config.quant_method",
                 "unsupported '" + c.quantization.quant_method + "' (only 'fp8')");
        if (c.quantization.fmt != "e4m3")
            fail(source, "quantization_config.fmt", "unsupported '" + c.quantization.fmt + "' (only 'e4m3')");
        if (c.quantization.block_rows <= 0 || c.quantization.block_cols <= 0)
            fail(source, "quantization_config.weight_block_size", "block sizes must be > 0");
    }
}

Qwen3NextConfig load_config(const std::filesystem::path& config_json) {
    std::ifstream in(config_json, std::ios::binary);
    if (!in) throw std::runtime_error(config_json.string() + ": cannot open config file");
    std::stringstream ss;
    ss << in.rdbuf();
    json j;
    try {
        j = parse_json_limited(ss.str());
    } catch (const std::exception& e) {
        throw std::runtime_error(config_json.string() + ": invalid JSON: " + e.what());
    }
    return parse_config(j, config_json.string());
}

nlohmann::ordered_json config_to_json(const Qwen3NextConfig& c) {
    const bool next = c.family == ModelFamily::Qwen3Next, dense = c.family == ModelFamily::Qwen3_5;
    nlohmann::ordered_json j;
    j["architectures"] = {next ? "Qwen3NextForCausalLM" : dense ? "Qwen3_5ForCausalLM" : "Qwen3_5MoeForCausalLM"};
    j["model_type"] = c.model_type;
    j["vocab_size"] = c.vocab_size;
    j["hidden_size"] = c.hidden_size;
    if (c.family != ModelFamily::Qwen3_5Moe) j["intermediate_size"] = c.intermediate_size;
    j["num_hidden_layers"] = c.num_hidden_layers;
    j["num_attention_heads"] = c.num_attention_heads;
    j["num_key_value_heads"] = c.num_key_value_heads;
    j["head_dim"] = c.head_dim;
    j["hidden_act"] = c.hidden_act;
    j["max_position_embeddings"] = c.max_position_embeddings;
    j["initializer_range"] = c.initializer_range;
    j["rms_norm_eps"] = c.rms_norm_eps;
    if (next) {
        j["rope_theta"] = c.rope_theta;
        j["partial_rotary_factor"] = c.partial_rotary_factor;
    } else {
        nlohmann::ordered_json rp{{"rope_type", "default"}, {"rope_theta", c.rope_theta},
                                  {"partial_rotary_factor", c.partial_rotary_factor}};
        if (!c.mrope_section.empty()) rp["mrope_section"] = c.mrope_section;
        if (c.mrope_interleaved) rp["mrope_interleaved"] = true;
        j["rope_parameters"] = rp;
    }
    j["tie_word_embeddings"] = c.tie_word_embeddings;
    j["attention_bias"] = c.attention_bias;
    j["linear_conv_kernel_dim"] = c.linear_conv_kernel_dim;
    j["linear_key_head_dim"] = c.linear_key_head_dim;
    j["linear_value_head_dim"] = c.linear_value_head_dim;
    j["linear_num_key_heads"] = c.linear_num_key_heads;
    j["linear_num_value_heads"] = c.linear_num_value_heads;
    if (!dense) {
        if (next) j["decoder_sparse_step"] = c.decoder_sparse_step;
        j["moe_intermediate_size"] = c.moe_intermediate_size;
        j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
        j["num_experts_per_tok"] = c.num_experts_per_tok;
        j["num_experts"] = c.num_experts;
        if (next) {
            j["norm_topk_prob"] = c.norm_topk_prob;
            j["mlp_only_layers"] = c.mlp_only_layers;
        }
    }
    if (next) j["full_attention_interval"] = c.full_attention_interval;
    nlohmann::ordered_json types = nlohmann::ordered_json::array();
    for (LayerType t : c.layer_types) types.push_back(layer_type_name(t));
    j["layer_types"] = types;
    j["bos_token_id"] = c.bos_token_id >= 0 ? nlohmann::ordered_json(c.bos_token_id) : nullptr;
    if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
    else j["eos_token_id"] = c.eos_token_id >= 0 ? nlohmann::ordered_json(c.eos_token_id) : nullptr;
    j["torch_dtype"] = c.torch_dtype;
    if (c.mtp_num_hidden_layers > 0) j["mtp_num_hidden_layers"] = c.mtp_num_hidden_layers;
    if (c.quantization.enabled)
        j["quantization_config"] = {{"quant_method", c.quantization.quant_method},
                                    {"fmt", c.quantization.fmt},
                                    {"weight_block_size", {c.quantization.block_rows, c.quantization.block_cols}},
                                    {"activation_scheme", "dynamic"}};
    if (!c.multimodal) return j;
    // *ForConditionalGeneration: the text model under text_config (the vision tower's config is not written).
    nlohmann::ordered_json w;
    w["architectures"] = {dense ? "Qwen3_5ForConditionalGeneration" : "Qwen3_5MoeForConditionalGeneration"};
    w["model_type"] = dense ? "qwen3_5" : "qwen3_5_moe";
    w["tie_word_embeddings"] = c.tie_word_embeddings;
    if (j.contains("quantization_config")) {
        w["quantization_config"] = j["quantization_config"];
        j.erase("quantization_config");
    }
    j.erase("architectures");
    w["text_config"] = j;
    return w;
}

}  // namespace qnext
