// qwen3next GGUF tensors -> Qwen3NextWeights (see gguf_weights.h). Shapes below are row-major (GGUF's ne
// reversed), the same [out, in] convention as the safetensors binding in weights.cpp.
#include "model/gguf_weights.h"

#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace qnext {
namespace {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

// The TensorDType of a GGML type id, for the types the kernels run.
std::optional<TensorDType> tensor_dtype(uint32_t ggml_type) {
    switch (ggml_type) {
        case 0: return TensorDType::F32;
        case 1: return TensorDType::F16;
        case 30: return TensorDType::BF16;
        case 2: return TensorDType::Q4_0;
        case 3: return TensorDType::Q4_1;
        case 6: return TensorDType::Q5_0;
        case 7: return TensorDType::Q5_1;
        case 8: return TensorDType::Q8_0;
        case 10: return TensorDType::Q2_K;
        case 11: return TensorDType::Q3_K;
        case 12: return TensorDType::Q4_K;
        case 13: return TensorDType::Q5_K;
        case 14: return TensorDType::Q6_K;
        default: return std::nullopt;
    }
}

enum class Kind { Matrix, Float };  // Float: norms, conv, gates (read element-wise, must not be block-quantized)

// Collects every binding problem and reports them at once.
class Binder {
public:
    explicit Binder(const GgufFile& f) : f_(f) {}

    TensorView get(const std::string& name, const Shape& shape, Kind kind = Kind::Matrix) {
        TensorView v;
        v.name = name;
        v.shape = shape;
        v.file = f_.path().string();
        const GgufTensor* t = f_.find_tensor(name);
        if (!t) {
            missing_.push_back(name + " " + shape_str(shape));
            return v;
        }
        used_.insert(name);
        if (t->shape() != shape) {
            misshaped_.push_back(name + ": has " + t->shape_str() + " (row-major), expected " + shape_str(shape));
            return v;
        }
        const std::optional<TensorDType> dt = tensor_dtype(t->type);
        if (!dt) {
            bad_type_.push_back(name + ": type " + t->type_name() +
                                " is not supported (qnext runs F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K)");
            return v;
        }
        if (kind == Kind::Float && is_block_dtype(*dt)) {
            bad_type_.push_back(name + ": type " + t->type_name() + " on a tensor that must be F32/F16/BF16");
            return v;
        }
        v.dtype = *dt;
        v.data = t->data;
        v.nbytes = t->nbytes;
        return v;
    }

    // A tensor that may be absent by design (a tied lm_head) or come in two shapes: looked at, not bound.
    const GgufTensor* find(const std::string& name) const { return f_.find_tensor(name); }

    void finish() const {
        std::vector<std::string> extra;
        for (const GgufTensor& t : f_.tensors())
            if (!used_.count(t.name)) extra.push_back(t.name + " " + t.shape_str());
        const size_t n = missing_.size() + misshaped_.size() + bad_type_.size() + extra.size();
        if (n == 0) return;
        std::ostringstream os;
        os << f_.path().string() << ": tensors do not match the qwen3next layout its metadata describes (" << n
           << " problem" << (n == 1 ? "" : "s") << ")";
        list(os, "missing", missing_);
        list(os, "misshaped", misshaped_);
        list(os, "unsupported", bad_type_);
        list(os, "unexpected", extra);
        throw GgufError(os.str());
    }

private:
    static void list(std::ostringstream& os, const char* what, const std::vector<std::string>& items) {
        constexpr size_t kMaxListed = 200;
        for (size_t i = 0; i < items.size() && i < kMaxListed; ++i) os << "\n  " << what << ": " << items[i];
        if (items.size() > kMaxListed) os << "\n  ... and " << items.size() - kMaxListed << " more " << what;
    }

    const GgufFile& f_;
    std::set<std::string> used_;
    std::vector<std::string> missing_, misshaped_, bad_type_;
};

// Expert e's [rows, cols] matrix inside a fused [E, rows, cols] tensor (no copy).
TensorView expert_view(const TensorView& fused, int64_t e, const std::string& name) {
    TensorView v;
    v.name = name;
    v.dtype = fused.dtype;
    v.file = fused.file;
    v.shape = {fused.shape[1], fused.shape[2]};
    if (fused.data == nullptr) return v;
    const size_t bytes = fused.nbytes / static_cast<size_t>(fused.shape[0]);
    v.data = fused.data + static_cast<size_t>(e) * bytes;
    v.nbytes = bytes;
    return v;
}

FfnWeights ffn(Binder& b, const std::string& p, const std::string& suffix, int64_t H, int64_t I) {
    return FfnWeights{b.get(p + "ffn_gate" + suffix + ".weight", {I, H}), b.get(p + "ffn_up" + suffix + ".weight", {I, H}),
                      b.get(p + "ffn_down" + suffix + ".weight", {H, I})};
}

MoeWeights moe(Binder& b, const std::string& p, const Qwen3NextConfig& c) {
    const int64_t H = c.hidden_size, E = c.num_experts, I = c.moe_intermediate_size;
    MoeWeights m;
    m.layout = ExpertLayout::Fused;
    m.router = b.get(p + "ffn_gate_inp.weight", {E, H});
    const TensorView gate = b.get(p + "ffn_gate_exps.weight", {E, I, H});
    const TensorView up = b.get(p + "ffn_up_exps.weight", {E, I, H});
    const TensorView down = b.get(p + "ffn_down_exps.weight", {E, H, I});
    for (int64_t e = 0; e < E; ++e) {
        const std::string n = p + "experts[" + std::to_string(e) + "].";
        m.experts.push_back(FfnWeights{expert_view(gate, e, n + "gate"), expert_view(up, e, n + "up"),
                                       expert_view(down, e, n + "down")});
    }
    m.fused_down = down;
    if (c.shared_expert_intermediate_size > 0) {
        m.shared_expert = ffn(b, p, "_shexp", H, c.shared_expert_intermediate_size);
        // [1, H] as the converter writes it; llama-quantize stores it squeezed to [H].
        const std::string sg = p + "ffn_gate_inp_shexp.weight";
        const GgufTensor* t = b.find(sg);
        const bool squeezed = t && t->shape() == Shape{H};
        m.shared_expert_gate = b.get(sg, squeezed ? Shape{H} : Shape{1, H});
        m.shared_expert_gate.shape = {1, H};
    }
    return m;
}

GdnWeights gdn(Binder& b, const std::string& p, const Qwen3NextConfig& c) {
    const int64_t H = c.hidden_size, nv = c.linear_num_value_heads;
    const int64_t kd = c.linear_key_dim(), vd = c.linear_value_dim();
    GdnWeights g;
    g.in_proj_qkv = b.get(p + "attn_qkv.weight", {2 * kd + vd, H});
    g.in_proj_z = b.get(p + "attn_gate.weight", {vd, H});
    g.in_proj_ba = b.get(p + "ssm_ba.weight", {2 * nv, H});
    g.conv1d = b.get(p + "ssm_conv1d.weight", {c.linear_conv_dim(), c.linear_conv_kernel_dim}, Kind::Float);
    g.A = b.get(p + "ssm_a", {nv}, Kind::Float);
    g.dt_bias = b.get(p + "ssm_dt.bias", {nv}, Kind::Float);
    g.norm = b.get(p + "ssm_norm.weight", {c.linear_value_head_dim}, Kind::Float);
    g.out_proj = b.get(p + "ssm_out.weight", {H, vd});
    return g;
}

AttnWeights attn(Binder& b, const std::string& p, const Qwen3NextConfig& c) {
    const int64_t H = c.hidden_size, D = c.head_dim, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
    return AttnWeights{b.get(p + "attn_q.weight", {nh * D * 2, H}),   b.get(p + "attn_k.weight", {nkv * D, H}),
                       b.get(p + "attn_v.weight", {nkv * D, H}),       b.get(p + "attn_output.weight", {H, nh * D}),
                       b.get(p + "attn_q_norm.weight", {D}, Kind::Float), b.get(p + "attn_k_norm.weight", {D}, Kind::Float)};
}

LayerWeights layer(Binder& b, int64_t block, const Qwen3NextConfig& c, LayerType type, bool is_moe) {
    const std::string p = "blk." + std::to_string(block) + ".";
    LayerWeights l;
    l.type = type;
    l.input_layernorm = b.get(p + "attn_norm.weight", {c.hidden_size}, Kind::Float);
    if (type == LayerType::LinearAttention) l.gdn = gdn(b, p, c);
    else l.attn = attn(b, p, c);
    l.post_attention_layernorm = b.get(p + "post_attention_norm.weight", {c.hidden_size}, Kind::Float);
    if (is_moe) l.moe = moe(b, p, c);
    else l.dense_mlp = ffn(b, p, "", c.hidden_size, c.intermediate_size);
    return l;
}

}  // namespace

Qwen3NextWeights bind_gguf_weights(const Qwen3NextConfig& c, const GgufFile& f) {
    validate_config(c);
    Binder b(f);
    const int64_t H = c.hidden_size, V = c.vocab_size;
    Qwen3NextWeights w;
    w.norms = NormStorage::OnePlus;
    w.expert_layout = ExpertLayout::Fused;
    w.embed_tokens = b.get("token_embd.weight", {V, H});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
        w.layers.push_back(layer(b, i, c, c.layer_types[i], c.is_moe_layer(i)));
    w.final_norm = b.get("output_norm.weight", {H}, Kind::Float);
    // llama.cpp's converter omits output.weight when the embeddings are tied (and llama.cpp then reads
    // token_embd for the output too).
    w.lm_head = c.tie_word_embeddings || !b.find("output.weight") ? w.embed_tokens : b.get("output.weight", {V, H});
    for (int64_t j = 0; j < c.mtp_num_hidden_layers; ++j) {
        const int64_t blk = c.num_hidden_layers + j;
        const std::string p = "blk." + std::to_string(blk) + ".nextn.";
        if (j == 0) {
            MtpWeights m;
            m.fc = b.get(p + "eh_proj.weight", {H, 2 * H});
            m.pre_fc_norm_embedding = b.get(p + "enorm.weight", {H}, Kind::Float);
            m.pre_fc_norm_hidden = b.get(p + "hnorm.weight", {H}, Kind::Float);
            m.norm = b.get(p + "shared_head_norm.weight", {H}, Kind::Float);
            w.mtp = std::move(m);
        }
        w.mtp->layers.push_back(layer(b, blk, c, LayerType::FullAttention, true));
    }
    b.finish();
    return w;
}

}  // namespace qnext
