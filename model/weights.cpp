// Weight binding. One description of the checkpoint (the build_* functions below, parameterised by a
// `Get` callback) serves both expected_tensors() (Get records the spec) and bind_weights() (Get looks the
// tensor up and records problems), so the two can never disagree.
#include "model/weights.h"

#include <algorithm>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>

namespace qnext {
namespace {

using Shape = std::vector<int64_t>;
using Get = std::function<TensorView(const std::string& name, const Shape& shape)>;

std::string shape_str(const Shape& s) {
    TensorView v;
    v.shape = s;
    return v.shape_str();
}

// A contiguous sub-block of `v`: rows [row0, row0 + rows) of slice `index` along dim 0.
// v: [N, R, C] -> [rows, C].
TensorView slice3(const TensorView& v, int64_t index, int64_t row0, int64_t rows, const std::string& name) {
    TensorView s;
    s.name = name;
    s.dtype = v.dtype;
    s.file = v.file;
    const int64_t R = v.shape[1], C = v.shape[2];
    s.shape = {rows, C};
    const size_t elem = dtype_size(v.dtype);
    s.data = v.data ? v.data + static_cast<size_t>((index * R + row0) * C) * elem : nullptr;
    s.nbytes = static_cast<size_t>(rows * C) * elem;
    return s;
}

FfnWeights build_ffn(const std::string& p, int64_t H, int64_t I, const Get& get) {
    return FfnWeights{get(p + "gate_proj.weight", {I, H}), get(p + "up_proj.weight", {I, H}),
                      get(p + "down_proj.weight", {H, I})};
}

MoeWeights build_moe(const std::string& p, const Qwen3NextConfig& c, ExpertLayout layout, const Get& get) {
    const int64_t H = c.hidden_size, E = c.num_experts, I = c.moe_intermediate_size;
    MoeWeights m;
    m.layout = layout;
    m.router = get(p + "gate.weight", {E, H});
    if (layout == ExpertLayout::PerExpert) {
        for (int64_t e = 0; e < E; ++e) m.experts.push_back(build_ffn(p + "experts." + std::to_string(e) + ".", H, I, get));
    } else {
        m.fused_gate_up = get(p + "experts.gate_up_proj", {E, 2 * I, H});
        m.fused_down = get(p + "experts.down_proj", {E, H, I});
        for (int64_t e = 0; e < E; ++e) {
            std::string n = p + "experts[" + std::to_string(e) + "].";
            FfnWeights f;
            f.gate_proj = slice3(*m.fused_gate_up, e, 0, I, n + "gate_proj");
            f.up_proj = slice3(*m.fused_gate_up, e, I, I, n + "up_proj");
            f.down_proj = slice3(*m.fused_down, e, 0, H, n + "down_proj");
            m.experts.push_back(std::move(f));
        }
    }
    m.shared_expert = build_ffn(p + "shared_expert.", H, c.shared_expert_intermediate_size, get);
    m.shared_expert_gate = get(p + "shared_expert_gate.weight", {1, H});
    return m;
}

GdnWeights build_gdn(const std::string& p, const Qwen3NextConfig& c, const Get& get) {
    const int64_t H = c.hidden_size, nv = c.linear_num_value_heads;
    const int64_t kd = c.linear_key_dim(), vd = c.linear_value_dim();
    GdnWeights g;
    if (c.split_gdn_projections()) {   // Qwen3.5: already in conv order, b and a in head order
        g.in_proj_qkv = get(p + "in_proj_qkv.weight", {2 * kd + vd, H});
        g.in_proj_z = get(p + "in_proj_z.weight", {vd, H});
        g.in_proj_b = get(p + "in_proj_b.weight", {nv, H});
        g.in_proj_a = get(p + "in_proj_a.weight", {nv, H});
    } else {
        g.in_proj_qkvz = get(p + "in_proj_qkvz.weight", {2 * kd + 2 * vd, H});
        g.in_proj_ba = get(p + "in_proj_ba.weight", {2 * nv, H});
    }
    g.conv1d = get(p + "conv1d.weight", {c.linear_conv_dim(), 1, c.linear_conv_kernel_dim});
    g.A_log = get(p + "A_log", {nv});
    g.dt_bias = get(p + "dt_bias", {nv});
    g.norm = get(p + "norm.weight", {c.linear_value_head_dim});
    g.out_proj = get(p + "out_proj.weight", {H, vd});
    return g;
}

AttnWeights build_attn(const std::string& p, const Qwen3NextConfig& c, const Get& get) {
    const int64_t H = c.hidden_size, D = c.head_dim, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
    return AttnWeights{get(p + "q_proj.weight", {nh * D * 2, H}), get(p + "k_proj.weight", {nkv * D, H}),
                       get(p + "v_proj.weight", {nkv * D, H}),    get(p + "o_proj.weight", {H, nh * D}),
                       get(p + "q_norm.weight", {D}),             get(p + "k_norm.weight", {D})};
}

LayerWeights build_layer(const std::string& p, const Qwen3NextConfig& c, LayerType type, bool moe,
                         ExpertLayout layout, const Get& get) {
    LayerWeights l;
    l.type = type;
    l.input_layernorm = get(p + "input_layernorm.weight", {c.hidden_size});
    if (type == LayerType::LinearAttention) l.gdn = build_gdn(p + "linear_attn.", c, get);
    else l.attn = build_attn(p + "self_attn.", c, get);
    l.post_attention_layernorm = get(p + "post_attention_layernorm.weight", {c.hidden_size});
    if (moe) l.moe = build_moe(p + "mlp.", c, layout, get);
    else l.dense_mlp = build_ffn(p + "mlp.", c.hidden_size, c.intermediate_size, get);
    return l;
}

// The whole model. `layout_of(prefix)` picks the expert layout per MoE block ("<prefix>mlp.").
Qwen3NextWeights build_model(const Qwen3NextConfig& c, int64_t mtp_layers,
                             const std::function<ExpertLayout(const std::string&)>& layout_of, const Get& get) {
    const int64_t H = c.hidden_size, V = c.vocab_size;
    Qwen3NextWeights w;
    const std::string model = c.weight_prefix();
    w.embed_tokens = get(model + "embed_tokens.weight", {V, H});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        std::string p = model + "layers." + std::to_string(i) + ".";
        w.layers.push_back(build_layer(p, c, c.layer_types[i], c.is_moe_layer(i), layout_of(p + "mlp."), get));
    }
    w.final_norm = get(model + "norm.weight", {H});
    w.lm_head = c.tie_word_embeddings ? w.embed_tokens : get("lm_head.weight", {V, H});
    if (mtp_layers > 0) {
        MtpWeights m;
        m.fc = get("mtp.fc.weight", {H, 2 * H});
        m.pre_fc_norm_embedding = get("mtp.pre_fc_norm_embedding.weight", {H});
        m.pre_fc_norm_hidden = get("mtp.pre_fc_norm_hidden.weight", {H});
        for (int64_t j = 0; j < mtp_layers; ++j) {
            std::string p = "mtp.layers." + std::to_string(j) + ".";
            // the MTP layer has the family's MLP: MoE (Qwen3-Next, Qwen3.5-MoE) or dense (Qwen3.5)
            m.layers.push_back(build_layer(p, c, LayerType::FullAttention, c.num_experts > 0, layout_of(p + "mlp."), get));
        }
        m.norm = get("mtp.norm.weight", {H});
        w.mtp = std::move(m);
    }
    w.expert_layout = layout_of(model + "layers.0.mlp.");
    return w;
}

// Collects binding problems; reports them all at once.
class Binder {
public:
    Binder(const Qwen3NextConfig& c, const TensorStore& s) : cfg_(c), store_(s) {}

    TensorView get(const std::string& name, const Shape& shape) {
        const TensorView* v = store_.find(name);
        if (!v) {
            missing_.push_back(name + " " + shape_str(shape));
            TensorView empty;
            empty.name = name;
            empty.shape = shape;
            return empty;
        }
        used_.insert(name);
        if (v->shape != shape) {
            misshaped_.push_back(name + ": has " + v->shape_str() + ", expected " + shape_str(shape) + " (" + v->file + ")");
        } else if (v->dtype == TensorDType::F8_E4M3) {
            TensorView out = *v;
            out.scale_inv = check_scale(*v);
            out.scale_block_rows = cfg_.quantization.block_rows;
            out.scale_block_cols = cfg_.quantization.block_cols;
            return out;
        }
        return *v;
    }

    void finish(const std::string& where) {
        std::vector<std::string> extra;
        for (const TensorView& v : store_.tensors()) {
            if (used_.count(v.name)) continue;
            if (cfg_.multimodal && v.name.rfind("model.visual.", 0) == 0) continue;   // the vision tower: not run
            extra.push_back(v.name + " " + v.shape_str() + " (" + v.file + ")");
        }
        size_t n = missing_.size() + misshaped_.size() + bad_.size() + extra.size();
        if (n == 0) return;
        std::ostringstream os;
        os << where << ": checkpoint does not match its config (" << n << " problem" << (n == 1 ? "" : "s") << ")";
        list(os, "missing", missing_);
        list(os, "misshaped", misshaped_);
        list(os, "bad fp8 scale", bad_);
        list(os, "unexpected", extra);
        throw std::runtime_error(os.str());
    }

private:
    // The scale tensor of an FP8 weight (nullptr, with the problem recorded, when it is missing or wrong).
    const TensorView* check_scale(const TensorView& w) {
        const std::string sname = w.name + "_scale_inv";
        const TensorView* s = store_.find(sname);
        if (w.rank() < 2) {
            bad_.push_back(w.name + ": F8_E4M3 tensor must be a matrix, has " + w.shape_str());
            return nullptr;
        }
        if (!s) {
            bad_.push_back(w.name + ": F8_E4M3 weight without " + sname);
            return nullptr;
        }
        used_.insert(sname);
        const int64_t br = cfg_.quantization.block_rows, bc = cfg_.quantization.block_cols;
        Shape want(w.shape.begin(), w.shape.end() - 2);
        want.push_back((w.shape[w.shape.size() - 2] + br - 1) / br);
        want.push_back((w.shape.back() + bc - 1) / bc);
        if (s->dtype != TensorDType::F32 && s->dtype != TensorDType::BF16) {
            bad_.push_back(sname + ": dtype " + std::string(dtype_name(s->dtype)) + ", expected F32");
            return nullptr;
        }
        if (s->shape != want) {
            bad_.push_back(sname + ": has " + s->shape_str() + ", expected " + shape_str(want) + " for blocks " +
                           std::to_string(br) + "x" + std::to_string(bc));
            return nullptr;
        }
        return s;
    }

    static void list(std::ostringstream& os, const char* what, const std::vector<std::string>& items) {
        constexpr size_t kMaxListed = 200;
        for (size_t i = 0; i < items.size() && i < kMaxListed; ++i) os << "\n  " << what << ": " << items[i];
        if (items.size() > kMaxListed) os << "\n  ... and " << items.size() - kMaxListed << " more " << what;
    }

    const Qwen3NextConfig& cfg_;
    const TensorStore& store_;
    std::set<std::string> used_;
    std::vector<std::string> missing_, misshaped_, bad_;
};

}  // namespace

int64_t TensorSpec::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::vector<TensorSpec> expected_tensors(const Qwen3NextConfig& cfg, ExpertLayout layout, int64_t mtp_layers) {
    std::vector<TensorSpec> out;
    Get record = [&](const std::string& name, const Shape& shape) {
        out.push_back(TensorSpec{name, shape});
        TensorView v;
        v.name = name;
        v.shape = shape;
        return v;
    };
    build_model(cfg, mtp_layers, [&](const std::string&) { return layout; }, record);
    return out;
}

int64_t count_mtp_layers(const TensorStore& store) {
    int64_t n = 0;
    bool any = false;
    const std::string prefix = "mtp.layers.";
    for (const TensorView& v : store.tensors()) {
        if (v.name.rfind("mtp.", 0) != 0) continue;
        any = true;
        if (v.name.rfind(prefix, 0) != 0) continue;
        size_t dot = v.name.find('.', prefix.size());
        std::string idx = v.name.substr(prefix.size(), dot - prefix.size());
        auto digit = [](unsigned char ch) { return ch >= '0' && ch <= '9'; };
        if (!idx.empty() && idx.size() < 6 && std::all_of(idx.begin(), idx.end(), digit))
            n = std::max<int64_t>(n, std::stoll(idx) + 1);
    }
    return any ? std::max<int64_t>(n, 1) : 0;
}

ExpertLayout detect_expert_layout(const TensorStore& store) {
    for (const TensorView& v : store.tensors())
        if (v.name.find("mlp.experts.gate_up_proj") != std::string::npos) return ExpertLayout::Fused;
    return ExpertLayout::PerExpert;
}

Qwen3NextWeights bind_weights(const Qwen3NextConfig& cfg, const TensorStore& store) {
    validate_config(cfg);
    Binder b(cfg, store);
    Get get = [&](const std::string& name, const Shape& shape) { return b.get(name, shape); };
    auto layout_of = [&](const std::string& mlp_prefix) {
        return store.contains(mlp_prefix + "experts.gate_up_proj") ? ExpertLayout::Fused : ExpertLayout::PerExpert;
    };
    const int64_t mtp = std::max(cfg.mtp_num_hidden_layers, count_mtp_layers(store));
    if (mtp > 16)
        throw std::runtime_error("checkpoint: " + std::to_string(mtp) +
                                 " MTP layers (mtp.layers.N tensors); this engine supports at most 16");
    Qwen3NextWeights w = build_model(cfg, mtp, layout_of, get);
    std::string where = store.files().empty() ? std::string("checkpoint")
                                              : store.files().front()->path().parent_path().string();
    b.finish(where);
    return w;
}

}  // namespace qnext
