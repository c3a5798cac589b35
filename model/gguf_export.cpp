// HF Qwen3-Next folder -> qwen3next GGUF (see gguf_export.h). The mapping mirrors model/gguf_weights.cpp,
// which binds the same names back; the transforms are those of llama.cpp's Qwen3NextModel.modify_tensors.
#include "model/gguf_export.h"

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "kernels/quant.h"
#include "kernels/tensor.h"
#include "model/chat_template.h"
#include "model/gguf_writer.h"
#include "model/model_folder.h"

namespace qnext {
namespace {

namespace fs = std::filesystem;
using Shape = std::vector<int64_t>;

// The export types: the matrices' type, and for the K-quant mixes llama-quantize's per-tensor choices
// (llama.cpp tests/snapshots/qwen3-coder-next.schema; the same rule on our 5-block test model is checked
// against llama-quantize's own files in test_gguf_export): the output matrix Q6_K; attn_v / attn_qkv and the
// ffn_down tensors Q6_K in the layers use_more_bits picks; for 8-expert models attn_v / attn_qkv / attn_k Q8_0
// and attn_output Q5_K (Q4_K_M); rows that are not whole 256-value super-blocks fall back to Q5_0 / Q5_1 /
// Q8_0 for Q4_K / Q5_K / Q6_K.
struct ExportType {
    const char* name;
    kern::QType matrix;   // 2-D weight matrices
    uint32_t file_type;   // general.file_type (llama_ftype)
    bool k_mix;           // Q6_K for the output and the more-bits tensors
};
constexpr ExportType kTypes[] = {
    {"q8_0", kern::QType::Q8_0, 7, false},  {"bf16", kern::QType::BF16, 32, false},
    {"f16", kern::QType::F16, 1, false},    {"f32", kern::QType::F32, 0, false},
    {"q4_k_m", kern::QType::Q4_K, 15, true}, {"q5_k_m", kern::QType::Q5_K, 17, true},
    {"q6_k", kern::QType::Q6_K, 18, true},
};

// llama.cpp's use_more_bits: the first and last eighth of the blocks and every third one between.
bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

kern::QType fallback(kern::QType t) {
    switch (t) {
        case kern::QType::Q4_K: return kern::QType::Q5_0;
        case kern::QType::Q5_K: return kern::QType::Q5_1;
        case kern::QType::Q6_K: return kern::QType::Q8_0;
        default: return kern::QType::F32;
    }
}

[[noreturn]] void fail(const fs::path& dir, const std::string& msg) {
    throw std::runtime_error("quantize: " + dir.string() + ": " + msg);
}

// A view's values as f32 (BF16 / F16 / F32 storage).
std::vector<float> to_f32(const TensorView& v, const fs::path& dir) {
    const int64_t n = v.numel();
    std::vector<float> out(static_cast<size_t>(n));
    switch (v.dtype) {
        case TensorDType::F32: {
            const auto s = v.as<float>();
            std::copy(s.begin(), s.end(), out.begin());
            break;
        }
        case TensorDType::BF16: {
            const auto s = v.as<uint16_t>();
            for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = kern::bf16_to_f32(s[static_cast<size_t>(i)]);
            break;
        }
        case TensorDType::F16: {
            const auto s = v.as<uint16_t>();
            for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = kern::f16_to_f32(s[static_cast<size_t>(i)]);
            break;
        }
        default:
            fail(dir, "tensor " + v.name + " is " + dtype_name(v.dtype) +
                          "; quantize reads bf16 / f16 / f32 checkpoints (FP8 is not supported as a source yet)");
    }
    return out;
}

// One planned GGUF tensor: its name, row-major shape, storage type and how to compute its f32 values.
struct Planned {
    std::string name;
    Shape shape;
    kern::QType type;
    std::function<std::vector<float>()> values;
};

class Plan {
public:
    Plan(const fs::path& dir, const ExportType& type, int64_t blocks, int64_t experts)
        : dir_(dir), type_(type), blocks_(blocks), experts_(experts) {}

    // A weight matrix, stored as the export type's choice for it (or for the tensor named `role`, when given).
    void matrix(const std::string& name, const TensorView& v, const std::string& role = "") {
        add(name, v.shape, true, [this, v] { return to_f32(v, dir_); }, role);
    }
    // Kept f32 (norms, gates, conv, router).
    void f32(const std::string& name, const Shape& shape, std::function<std::vector<float>()> fn) {
        add(name, shape, false, std::move(fn));
    }
    void f32(const std::string& name, const TensorView& v) { f32(name, v.shape, [this, v] { return to_f32(v, dir_); }); }
    // A zero-centred RMSNorm weight, stored as 1 + w.
    void norm(const std::string& name, const TensorView& v) {
        f32(name, {v.numel()}, [this, v] {
            std::vector<float> w = to_f32(v, dir_);
            for (float& x : w) x += 1.0f;
            return w;
        });
    }
    void matrix_fn(const std::string& name, const Shape& shape, std::function<std::vector<float>()> fn) {
        add(name, shape, true, std::move(fn));
    }
    std::vector<Planned>& tensors() { return t_; }
    const fs::path& dir() const { return dir_; }

private:
    kern::QType matrix_type(const std::string& name) const {
        if (!type_.k_mix) return type_.matrix;
        if (name == "output.weight") return kern::QType::Q6_K;
        if (name.rfind("blk.", 0) != 0) return type_.matrix;
        const int64_t blk = std::stoll(name.substr(4, name.find('.', 4) - 4));
        const std::string t = name.substr(name.find('.', 4) + 1);
        const bool mix = type_.matrix != kern::QType::Q6_K;   // Q4_K_M, Q5_K_M
        if (t == "attn_v.weight" || t == "attn_qkv.weight") {
            if (experts_ == 8) return kern::QType::Q8_0;   // llama.cpp's rule for 8-expert models
            if (mix && use_more_bits(blk, blocks_)) return kern::QType::Q6_K;
        } else if (t == "attn_k.weight") {
            if (experts_ == 8) return kern::QType::Q8_0;
        } else if (t == "attn_output.weight") {
            if (experts_ == 8 && type_.matrix == kern::QType::Q4_K) return kern::QType::Q5_K;
        } else if (t == "ffn_down_exps.weight" || t == "ffn_down_shexp.weight" || t == "ffn_down.weight") {
            if (mix && use_more_bits(blk, blocks_)) return kern::QType::Q6_K;
        }
        return type_.matrix;
    }
    void add(const std::string& name, const Shape& shape, bool is_matrix, std::function<std::vector<float>()> fn,
             const std::string& role = "") {
        kern::QType type = kern::QType::F32;
        if (is_matrix && shape.size() >= 2) {
            type = matrix_type(role.empty() ? name : role);
            if (shape.back() % kern::qtype_info(static_cast<uint32_t>(type))->block_elems != 0) type = fallback(type);
            if (shape.back() % kern::qtype_info(static_cast<uint32_t>(type))->block_elems != 0) type = kern::QType::F32;
        }
        t_.push_back({name, shape, type, std::move(fn)});
    }
    fs::path dir_;
    ExportType type_;
    int64_t blocks_, experts_;
    std::vector<Planned> t_;
};

// Rows [r0, r0 + n) of every expert's [rows, cols] matrix, stacked [E, n, cols].
std::function<std::vector<float>()> stack(const std::vector<TensorView>& views, const fs::path& dir) {
    return [views, dir] {
        std::vector<float> out;
        for (const TensorView& v : views) {
            const std::vector<float> e = to_f32(v, dir);
            out.insert(out.end(), e.begin(), e.end());
        }
        return out;
    };
}

void plan_ffn(Plan& p, const std::string& pre, const std::string& suffix, const FfnWeights& f) {
    p.matrix(pre + "ffn_gate" + suffix + ".weight", f.gate_proj);
    p.matrix(pre + "ffn_up" + suffix + ".weight", f.up_proj);
    p.matrix(pre + "ffn_down" + suffix + ".weight", f.down_proj);
}

void plan_layer(Plan& p, const Qwen3NextConfig& c, const LayerWeights& l, int64_t blk) {
    const std::string pre = "blk." + std::to_string(blk) + ".";
    const fs::path dir = p.dir();
    p.norm(pre + "attn_norm.weight", l.input_layernorm);
    p.norm(pre + "post_attention_norm.weight", l.post_attention_layernorm);
    if (l.gdn) {
        const GdnWeights& g = *l.gdn;
        const int64_t H = c.hidden_size, nk = c.linear_num_key_heads, dk = c.linear_key_head_dim;
        const int64_t R = c.linear_num_value_heads / nk, dv = c.linear_value_head_dim;
        const int64_t G = 2 * dk + 2 * R * dv, kd = nk * dk, vd = nk * R * dv;
        if (g.in_proj_qkvz.data != nullptr) {
            // HF rows per key head [q dk | k dk | v R*dv | z R*dv] -> [q all | k all | v all] and z.
            const TensorView w = g.in_proj_qkvz;
            // Values of the rows picked by (offset, length) ranges of every key head's group, range by range
            // (the checkpoint tensor is read once per output tensor).
            auto pick = [w, dir, nk, G, H](std::vector<std::pair<int64_t, int64_t>> ranges) {
                return [w, dir, nk, G, H, ranges] {
                    const std::vector<float> a = to_f32(w, dir);
                    std::vector<float> out;
                    for (const auto& [off, len] : ranges)
                        for (int64_t h = 0; h < nk; ++h) {
                            const float* rows = a.data() + (h * G + off) * H;
                            out.insert(out.end(), rows, rows + len * H);
                        }
                    return out;
                };
            };
            p.matrix_fn(pre + "attn_qkv.weight", {2 * kd + vd, H}, pick({{0, dk}, {dk, dk}, {2 * dk, R * dv}}));
            p.matrix_fn(pre + "attn_gate.weight", {vd, H}, pick({{2 * dk + R * dv, R * dv}}));
        } else {
            p.matrix(pre + "attn_qkv.weight", g.in_proj_qkv);
            p.matrix(pre + "attn_gate.weight", g.in_proj_z);
        }
        p.matrix(pre + "ssm_ba.weight", g.in_proj_ba);
        p.f32(pre + "ssm_conv1d.weight", {c.linear_conv_dim(), c.linear_conv_kernel_dim},
              [v = g.conv1d, dir] { return to_f32(v, dir); });   // [C, 1, K] squeezed: same values
        if (g.A_log.data != nullptr) {
            p.f32(pre + "ssm_a", {g.A_log.numel()}, [v = g.A_log, dir] {
                std::vector<float> a = to_f32(v, dir);
                for (float& x : a) x = -std::exp(x);
                return a;
            });
        } else {
            p.f32(pre + "ssm_a", g.A);
        }
        p.f32(pre + "ssm_dt.bias", g.dt_bias);
        p.f32(pre + "ssm_norm.weight", g.norm);   // plain gated norm: no + 1
        p.matrix(pre + "ssm_out.weight", g.out_proj);
    } else {
        const AttnWeights& a = *l.attn;
        p.matrix(pre + "attn_q.weight", a.q_proj);
        p.matrix(pre + "attn_k.weight", a.k_proj);
        p.matrix(pre + "attn_v.weight", a.v_proj);
        p.matrix(pre + "attn_output.weight", a.o_proj);
        p.norm(pre + "attn_q_norm.weight", a.q_norm);
        p.norm(pre + "attn_k_norm.weight", a.k_norm);
    }
    if (l.moe) {
        const MoeWeights& m = *l.moe;
        const int64_t E = static_cast<int64_t>(m.experts.size()), I = c.moe_intermediate_size, H = c.hidden_size;
        p.f32(pre + "ffn_gate_inp.weight", m.router);
        std::vector<TensorView> gate, up, down;
        for (const FfnWeights& e : m.experts) {
            gate.push_back(e.gate_proj);
            up.push_back(e.up_proj);
            down.push_back(e.down_proj);
        }
        p.matrix_fn(pre + "ffn_gate_exps.weight", {E, I, H}, stack(gate, dir));
        p.matrix_fn(pre + "ffn_up_exps.weight", {E, I, H}, stack(up, dir));
        p.matrix_fn(pre + "ffn_down_exps.weight", {E, H, I}, stack(down, dir));
        if (m.shared_expert.gate_proj.data != nullptr) {
            plan_ffn(p, pre, "_shexp", m.shared_expert);
            p.f32(pre + "ffn_gate_inp_shexp.weight", {1, H}, [v = m.shared_expert_gate, dir] { return to_f32(v, dir); });
        }
    } else {
        plan_ffn(p, pre, "", *l.dense_mlp);
    }
}

nlohmann::json read_json(const fs::path& p) {
    std::ifstream f(p);
    if (!f) throw std::runtime_error("quantize: cannot read " + p.string());
    return nlohmann::json::parse(f, nullptr, true, true);
}

bool looks_special(const std::string& t) {
    return (t.size() >= 4 && t.rfind("<|", 0) == 0 && t.compare(t.size() - 2, 2, "|>") == 0) || t == "<pad>" ||
           t == "<mask>";
}

// tokenizer.ggml.* as the converter writes a Qwen2-style byte-level BPE (tokens padded to the embedding rows
// with [PAD<id>] UNUSED entries; CONTROL for special or <|...|> added tokens; USER_DEFINED for other added).
void add_tokenizer(GgufWriter& w, const fs::path& dir, const Qwen3NextConfig& c) {
    const nlohmann::json tj = read_json(dir / "tokenizer.json");
    const nlohmann::json& model = tj.at("model");
    if (model.value("type", "") != "BPE") fail(dir, "tokenizer.json is not a BPE model");
    std::vector<std::string> tokens(static_cast<size_t>(c.vocab_size));
    std::vector<int32_t> types(static_cast<size_t>(c.vocab_size), 1);
    std::vector<bool> set(static_cast<size_t>(c.vocab_size), false);
    for (const auto& [tok, id] : model.at("vocab").items()) {
        const int64_t i = id.get<int64_t>();
        if (i < 0 || i >= c.vocab_size) fail(dir, "tokenizer id " + std::to_string(i) + " is past vocab_size");
        tokens[static_cast<size_t>(i)] = tok;
        set[static_cast<size_t>(i)] = true;
    }
    std::map<std::string, int64_t> by_text;
    for (const auto& a : tj.value("added_tokens", nlohmann::json::array())) {
        const int64_t i = a.at("id").get<int64_t>();
        if (i < 0 || i >= c.vocab_size) fail(dir, "added token id " + std::to_string(i) + " is past vocab_size");
        const std::string t = a.at("content").get<std::string>();
        tokens[static_cast<size_t>(i)] = t;
        set[static_cast<size_t>(i)] = true;
        types[static_cast<size_t>(i)] = a.value("special", false) || looks_special(t) ? 3 : 4;
        by_text[t] = i;
    }
    for (int64_t i = 0; i < c.vocab_size; ++i)
        if (!set[static_cast<size_t>(i)]) {
            tokens[static_cast<size_t>(i)] = "[PAD" + std::to_string(i) + "]";
            types[static_cast<size_t>(i)] = 5;
        }
    std::vector<std::string> merges;
    for (const auto& m : model.at("merges"))
        merges.push_back(m.is_string() ? m.get<std::string>() : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", "qwen2");
    w.add_strings("tokenizer.ggml.tokens", tokens);
    w.add_i32s("tokenizer.ggml.token_type", types);
    w.add_strings("tokenizer.ggml.merges", merges);

    nlohmann::json tc = fs::exists(dir / "tokenizer_config.json") ? read_json(dir / "tokenizer_config.json") : nlohmann::json::object();
    auto token_id = [&](const char* key) -> int64_t {
        if (!tc.contains(key) || tc[key].is_null()) return -1;
        const std::string t = tc[key].is_string() ? tc[key].get<std::string>() : tc[key].value("content", "");
        const auto it = by_text.find(t);
        return it == by_text.end() ? -1 : it->second;
    };
    const int64_t eos = token_id("eos_token") >= 0 ? token_id("eos_token") : c.eos_token_id;
    const int64_t pad = token_id("pad_token");
    const int64_t bos = token_id("bos_token") >= 0 ? token_id("bos_token") : c.bos_token_id;
    if (eos >= 0) w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos));
    if (pad >= 0) w.add_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(pad));
    if (bos >= 0) w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(bos));
    w.add_bool("tokenizer.ggml.add_bos_token", tc.value("add_bos_token", false));
    w.add_bool("tokenizer.ggml.add_eos_token", tc.value("add_eos_token", false));
    if (const auto t = read_chat_template(dir)) w.add_string("tokenizer.chat_template", *t);
}

}  // namespace

GgufExportResult export_gguf(const fs::path& hf_dir, const fs::path& out, const GgufExportOptions& o) {
    const ExportType* et = nullptr;
    for (const ExportType& t : kTypes)
        if (o.type == t.name) et = &t;
    if (!et)
        throw std::runtime_error("quantize: --type '" + o.type +
                                 "' is not supported (q8_0, q6_k, q5_k_m, q4_k_m, bf16, f16, f32)");
    if (fs::is_regular_file(hf_dir)) fail(hf_dir, "is a file; quantize reads a Hugging Face folder (config.json + safetensors)");
    LoadOptions lo;
    lo.progress = false;
    lo.prefetch = false;
    const ModelFolder m = load_model_folder(hf_dir, lo);
    for (const TensorView& v : m.store.tensors())
        if (v.dtype == TensorDType::F8_E4M3)
            fail(hf_dir, "tensor " + v.name + " is F8_E4M3; quantize reads bf16 / f16 / f32 checkpoints (FP8 is not "
                         "supported as a source yet)");
    const Qwen3NextConfig& c = m.config;
    const Qwen3NextWeights& W = m.weights;
    if (c.family != ModelFamily::Qwen3Next)
        fail(hf_dir, std::string("is a ") + family_name(c.family) + " model; quantize writes the qwen3next GGUF "
                     "architecture only (llama.cpp's qwen35 / qwen35moe layouts are not written yet)");

    const int64_t n_mtp = W.mtp ? static_cast<int64_t>(W.mtp->layers.size()) : 0;
    Plan p(hf_dir, *et, c.num_hidden_layers + n_mtp, c.num_experts);
    // Tied embeddings: token_embd is also the output matrix (and gets the output's type, as llama-quantize does).
    p.matrix("token_embd.weight", W.embed_tokens, c.tie_word_embeddings ? "output.weight" : "");
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) plan_layer(p, c, W.layers[static_cast<size_t>(i)], i);
    p.norm("output_norm.weight", W.final_norm);
    if (!c.tie_word_embeddings) p.matrix("output.weight", W.lm_head);
    for (int64_t j = 0; j < n_mtp; ++j) {
        const int64_t blk = c.num_hidden_layers + j;
        const std::string pre = "blk." + std::to_string(blk) + ".nextn.";
        if (j == 0) {
            p.matrix(pre + "eh_proj.weight", W.mtp->fc);
            p.norm(pre + "enorm.weight", W.mtp->pre_fc_norm_embedding);
            p.norm(pre + "hnorm.weight", W.mtp->pre_fc_norm_hidden);
            p.norm(pre + "shared_head_norm.weight", W.mtp->norm);
        }
        plan_layer(p, c, W.mtp->layers[static_cast<size_t>(j)], blk);
    }

    GgufWriter w;
    const std::string a = "qwen3next.";
    w.add_string("general.architecture", "qwen3next");
    w.add_string("general.type", "model");
    w.add_string("general.name", hf_dir.filename().empty() ? hf_dir.parent_path().filename().string() : hf_dir.filename().string());
    if (fs::exists(hf_dir / "generation_config.json")) {   // the converter's general.sampling.* keys
        const nlohmann::json g = read_json(hf_dir / "generation_config.json");
        if (g.contains("top_k") && g["top_k"].is_number_integer()) w.add_i32("general.sampling.top_k", g["top_k"].get<int32_t>());
        if (g.contains("top_p") && g["top_p"].is_number()) w.add_f32("general.sampling.top_p", g["top_p"].get<float>());
        if (g.contains("temperature") && g["temperature"].is_number())
            w.add_f32("general.sampling.temp", g["temperature"].get<float>());
    }
    w.add_u32(a + "block_count", static_cast<uint32_t>(c.num_hidden_layers + n_mtp));
    w.add_u32(a + "context_length", static_cast<uint32_t>(c.max_position_embeddings));
    w.add_u32(a + "embedding_length", static_cast<uint32_t>(c.hidden_size));
    w.add_u32(a + "feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
    w.add_u32(a + "attention.head_count", static_cast<uint32_t>(c.num_attention_heads));
    w.add_u32(a + "attention.head_count_kv", static_cast<uint32_t>(c.num_key_value_heads));
    w.add_f32(a + "rope.freq_base", static_cast<float>(c.rope_theta));
    w.add_f32(a + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
    w.add_u32(a + "expert_count", static_cast<uint32_t>(c.num_experts));
    w.add_u32(a + "expert_used_count", static_cast<uint32_t>(c.num_experts_per_tok));
    w.add_u32(a + "attention.key_length", static_cast<uint32_t>(c.head_dim));
    w.add_u32(a + "attention.value_length", static_cast<uint32_t>(c.head_dim));
    w.add_u32("general.file_type", et->file_type);
    w.add_u32(a + "expert_feed_forward_length", static_cast<uint32_t>(c.moe_intermediate_size));
    w.add_u32(a + "expert_shared_feed_forward_length", static_cast<uint32_t>(c.shared_expert_intermediate_size));
    if (n_mtp > 0) w.add_u32(a + "nextn_predict_layers", static_cast<uint32_t>(n_mtp));
    w.add_u32(a + "ssm.conv_kernel", static_cast<uint32_t>(c.linear_conv_kernel_dim));
    w.add_u32(a + "ssm.state_size", static_cast<uint32_t>(c.linear_key_head_dim));
    w.add_u32(a + "ssm.group_count", static_cast<uint32_t>(c.linear_num_key_heads));
    w.add_u32(a + "ssm.time_step_rank", static_cast<uint32_t>(c.linear_num_value_heads));
    w.add_u32(a + "ssm.inner_size", static_cast<uint32_t>(c.linear_value_dim()));
    std::vector<bool> recurrent;
    for (LayerType t : c.layer_types) recurrent.push_back(t == LayerType::LinearAttention);
    recurrent.resize(static_cast<size_t>(c.num_hidden_layers + n_mtp), false);
    w.add_bools(a + "attention.recurrent_layers", recurrent);
    w.add_u32(a + "full_attention_interval", static_cast<uint32_t>(c.full_attention_interval));
    w.add_u32(a + "rope.dimension_count", static_cast<uint32_t>(c.rotary_dim()));
    w.add_u32("general.quantization_version", 2);
    add_tokenizer(w, hf_dir, c);

    auto& ts = p.tensors();
    for (const Planned& t : ts) {
        int64_t n = 1;
        for (int64_t d : t.shape) n *= d;
        w.add_tensor(t.name, t.shape, static_cast<uint32_t>(t.type), kern::qtype_row_bytes(t.type, n));
    }
    w.write(out, [&](size_t i, std::vector<uint8_t>& buf) {
        const Planned& t = ts[i];
        const std::vector<float> v = t.values();
        const int64_t n = static_cast<int64_t>(v.size());
        buf.resize(kern::qtype_row_bytes(t.type, n));
        kern::ref::quantize_row(t.type, v.data(), buf.data(), n);
        if (o.progress) o.progress(i + 1, ts.size(), t.name);
    });
    GgufExportResult r;
    r.tensors = ts.size();
    r.bytes = fs::file_size(out);
    return r;
}

}  // namespace qnext
