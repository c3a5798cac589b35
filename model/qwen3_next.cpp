// Qwen3-Next forward pass. Notation in shape comments: T tokens in this piece, H hidden, V vocab,
// nk/nv GDN key/value heads of dk/dv, C = 2*nk*dk + nv*dv conv channels, K conv kernel,
// nh/nkv attention heads of D, R = nv/nk value heads per key head. All activations are f32.
#include "model/qwen3_next.h"

#include <cmath>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>
#include <optional>
#include <stdexcept>
#include <string>

#include "kernels/ops.h"
#include "model/forward_limits.h"
#include "model/model_folder.h"
#include "model/weights.h"

namespace qnext {

using kern::DType;
using kern::Tensor;
using kern::TensorBuffer;

// ---- weights as kernel views -------------------------------------------------------------------

namespace {

// HF block-scaled FP8 ([N, K] e4m3 + `_scale_inv` [ceil(N/br), ceil(K/bc)]) repacked once into the kernels'
// F8_B128 rows: per 128 values, the block's f32 scale then the 128 e4m3 bytes (1.03 bytes per weight).
TensorBuffer repack_fp8(const TensorView& v) {
    const TensorView* s = v.scale_inv;
    if (s == nullptr || v.rank() != 2 || s->rank() != 2)
        throw std::runtime_error("model: FP8 tensor '" + v.name + "' needs a 2-D _scale_inv (fused FP8 experts are not supported)");
    const int64_t N = v.dim(0), K = v.dim(1), br = v.scale_block_rows, bc = v.scale_block_cols;
    if (bc != 128 || K % 128 != 0)
        throw std::runtime_error("model: FP8 tensor '" + v.name + "': blocks of " + std::to_string(br) + "x" +
                                 std::to_string(bc) + " over rows of " + std::to_string(K) +
                                 " (this engine runs 128-wide blocks over whole rows)");
    TensorBuffer out(DType::F8_B128, {N, K});
    auto* dst = reinterpret_cast<uint8_t*>(out.t().data);
    const auto* src = reinterpret_cast<const uint8_t*>(v.data);
    for (int64_t r = 0; r < N; ++r)
        for (int64_t j = 0; j < K / 128; ++j) {
            const int64_t si = (r / br) * s->dim(1) + j;
            const float scale = s->dtype == TensorDType::F32 ? s->as<float>()[static_cast<size_t>(si)]
                                                              : kern::bf16_to_f32(s->as<uint16_t>()[static_cast<size_t>(si)]);
            uint8_t* blk = dst + (r * (K / 128) + j) * 132;
            std::memcpy(blk, &scale, 4);
            std::memcpy(blk + 4, src + r * K + j * 128, 128);
        }
    // The mapped FP8 pages are not read again: drop them from this process's resident set (they stay in the
    // page cache), so memory is ~1.03x the FP8 weights rather than twice that.
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t a = (reinterpret_cast<uintptr_t>(src) + page - 1) / page * page;
    const uintptr_t e = (reinterpret_cast<uintptr_t>(src) + v.nbytes) / page * page;
    if (e > a) madvise(reinterpret_cast<void*>(a), e - a, MADV_DONTNEED);
    return out;
}

// `owned` keeps tensors that had to be converted at bind time (FP8 repacks).
Tensor to_kern(const TensorView& v, std::vector<TensorBuffer>* owned = nullptr) {
    Tensor t;
    if (v.data == nullptr) return t;  // an absent optional tensor (the other GDN projection form)
    if (v.dtype == TensorDType::F8_E4M3) {
        if (owned == nullptr) throw std::logic_error("to_kern: FP8 tensor '" + v.name + "' needs an owner");
        owned->push_back(repack_fp8(v));
        return owned->back().t();
    }
    switch (v.dtype) {
        case TensorDType::F32: t.dtype = DType::F32; break;
        case TensorDType::BF16: t.dtype = DType::BF16; break;
        case TensorDType::F16: t.dtype = DType::F16; break;
        case TensorDType::Q4_0: t.dtype = DType::Q4_0; break;
        case TensorDType::Q4_1: t.dtype = DType::Q4_1; break;
        case TensorDType::Q5_0: t.dtype = DType::Q5_0; break;
        case TensorDType::Q5_1: t.dtype = DType::Q5_1; break;
        case TensorDType::Q8_0: t.dtype = DType::Q8_0; break;
        case TensorDType::Q2_K: t.dtype = DType::Q2_K; break;
        case TensorDType::Q3_K: t.dtype = DType::Q3_K; break;
        case TensorDType::Q4_K: t.dtype = DType::Q4_K; break;
        case TensorDType::Q5_K: t.dtype = DType::Q5_K; break;
        case TensorDType::Q6_K: t.dtype = DType::Q6_K; break;
        default:
            throw std::runtime_error("model: tensor '" + v.name + "' has dtype " + dtype_name(v.dtype) +
                                     ", which this engine cannot run yet (F32/BF16/F16, F8_E4M3 and GGML block formats)");
    }
    if (v.rank() < 1 || v.rank() > 4)
        throw std::runtime_error("model: tensor '" + v.name + "' has unsupported rank " + std::to_string(v.rank()));
    t.data = const_cast<std::byte*>(v.data);  // ops never write their inputs
    t.rank = static_cast<int>(v.rank());
    int64_t stride = 1;
    for (int d = t.rank - 1; d >= 0; --d) {
        t.shape[d] = v.shape[d];
        t.stride[d] = stride;
        stride *= v.shape[d];
    }
    return t;
}

kern::FfnWeights to_kern(const FfnWeights& f, std::vector<TensorBuffer>* owned = nullptr) {
    return {to_kern(f.gate_proj, owned), to_kern(f.up_proj, owned), to_kern(f.down_proj, owned)};
}

TensorBuffer f32_buffer(std::initializer_list<int64_t> shape) { return TensorBuffer(DType::F32, shape); }

}  // namespace

struct LayerViews {
    LayerType type = LayerType::LinearAttention;
    Tensor input_norm, post_norm;                                   // [H], zero-centred
    Tensor qkvz, ba, conv_w, A, dt_bias, gated_norm, out_proj;      // GDN (A = -exp(A_log), f32)
    Tensor qkv, z;                                                  // GDN split projection (qkvz empty)
    Tensor b, a;                                                    // GDN split b/a, head order (ba empty)
    Tensor q_proj, k_proj, v_proj, o_proj, q_norm, k_norm;          // attention
    bool moe = false;
    Tensor router, shared_gate;                                     // MoE [E, H], [1, H]
    std::vector<kern::FfnWeights> experts;
    kern::FfnWeights shared, dense;                                 // shared expert / dense MLP
};

struct Qwen3NextModel::Bound {
    Tensor embed, lm_head, final_norm;
    std::vector<LayerViews> layers;
    struct Mtp {
        Tensor fc, norm_embedding, norm_hidden, norm;   // [H, 2H], [H] x3 (zero-centred)
        LayerViews layer;                               // full attention + the family's MLP
    };
    std::optional<Mtp> mtp;
    kern::NormKind norm = kern::NormKind::ZeroCentered;  // Plain when the weights hold 1 + w (GGUF)
    std::vector<TensorBuffer> owned;                      // tensors computed at bind time (A from A_log)
    uint64_t active_bytes = 0;  // weight bytes read per decoded token
};

namespace {

uint64_t ffn_bytes(const kern::FfnWeights& f) { return f.gate.nbytes() + f.up.nbytes() + f.down.nbytes(); }

void check_supported(const Qwen3NextConfig& c) {
    auto no = [](const std::string& what) {
        throw std::runtime_error("model: config not supported by this engine: " + what);
    };
    if (c.hidden_act != "silu") no("hidden_act '" + c.hidden_act + "' (only silu)");
    if (c.attention_bias) no("attention_bias = true (Qwen3-Next has no biases)");
    if (c.linear_num_value_heads % c.linear_num_key_heads != 0)
        no("linear_num_value_heads must be a multiple of linear_num_key_heads");
    if (c.num_attention_heads % c.num_key_value_heads != 0)
        no("num_attention_heads must be a multiple of num_key_value_heads");
    if (c.rotary_dim() % 2 != 0 || c.rotary_dim() > c.head_dim) no("rotary dim must be even and <= head_dim");
    if (c.linear_conv_kernel_dim < 1) no("linear_conv_kernel_dim must be >= 1");
}

}  // namespace

namespace {
std::string layer_name(int l) { return l < 0 ? std::string("mtp.layers.0") : std::to_string(l); }
}  // namespace

// One decoder layer's weights as kernel views (`l` < 0: the MTP layer); `bytes` = the weight bytes one decoded
// token reads in it.
LayerViews Qwen3NextModel::bind_layer(const LayerWeights& lw, int l, Bound& b, uint64_t& bytes) const {
    LayerViews v;
    v.type = lw.type;
    v.input_norm = to_kern(lw.input_layernorm, &b.owned);
    v.post_norm = to_kern(lw.post_attention_layernorm, &b.owned);
    bytes = v.input_norm.nbytes() + v.post_norm.nbytes();
    if (lw.type == LayerType::LinearAttention) {
        if (!lw.gdn) throw std::runtime_error("model: layer " + layer_name(l) + " has no GDN weights");
        const GdnWeights& g = *lw.gdn;
        v.qkvz = to_kern(g.in_proj_qkvz, &b.owned), v.ba = to_kern(g.in_proj_ba, &b.owned), v.conv_w = to_kern(g.conv1d, &b.owned);
        v.qkv = to_kern(g.in_proj_qkv, &b.owned), v.z = to_kern(g.in_proj_z, &b.owned);
        if (v.qkvz.empty() == (v.qkv.empty() || v.z.empty()))
            throw std::runtime_error("model: layer " + layer_name(l) +
                                     " needs either in_proj_qkvz or both in_proj_qkv and in_proj_z");
        v.b = to_kern(g.in_proj_b, &b.owned), v.a = to_kern(g.in_proj_a, &b.owned);
        if (v.ba.empty() == (v.b.empty() || v.a.empty()))
            throw std::runtime_error("model: layer " + layer_name(l) +
                                     " needs either in_proj_ba or both in_proj_b and in_proj_a");
        v.dt_bias = to_kern(g.dt_bias, &b.owned), v.gated_norm = to_kern(g.norm, &b.owned);
        v.out_proj = to_kern(g.out_proj, &b.owned);
        if (g.A.data != nullptr) {
            v.A = to_kern(g.A, &b.owned);
        } else {  // A = -exp(A_log) in f32, as HF's -self.A_log.float().exp()
            const Tensor A_log = to_kern(g.A_log, &b.owned);
            TensorBuffer A = f32_buffer({A_log.numel()});
            kern::copy(A_log, A);
            for (int64_t h = 0; h < A_log.numel(); ++h) A.f32()[h] = -std::exp(A.f32()[h]);
            v.A = A.t();
            b.owned.push_back(std::move(A));
        }
        for (const Tensor* t : {&v.qkvz, &v.qkv, &v.z, &v.ba, &v.b, &v.a, &v.conv_w, &v.A, &v.dt_bias,
                                &v.gated_norm, &v.out_proj})
            if (!t->empty()) bytes += t->nbytes();
    } else {
        if (!lw.attn) throw std::runtime_error("model: layer " + layer_name(l) + " has no attention weights");
        const AttnWeights& a = *lw.attn;
        v.q_proj = to_kern(a.q_proj, &b.owned), v.k_proj = to_kern(a.k_proj, &b.owned), v.v_proj = to_kern(a.v_proj, &b.owned);
        v.o_proj = to_kern(a.o_proj, &b.owned), v.q_norm = to_kern(a.q_norm, &b.owned), v.k_norm = to_kern(a.k_norm, &b.owned);
        for (const Tensor* t : {&v.q_proj, &v.k_proj, &v.v_proj, &v.o_proj, &v.q_norm, &v.k_norm})
            bytes += t->nbytes();
    }
    if (lw.moe) {
        const MoeWeights& m = *lw.moe;
        v.moe = true;
        v.router = to_kern(m.router, &b.owned);
        v.shared_gate = to_kern(m.shared_expert_gate, &b.owned);
        v.shared = to_kern(m.shared_expert, &b.owned);
        for (const FfnWeights& e : m.experts) v.experts.push_back(to_kern(e, &b.owned));
        bytes += v.router.nbytes() + v.shared_gate.nbytes() + ffn_bytes(v.shared);
        if (!v.experts.empty()) bytes += config_.num_experts_per_tok * ffn_bytes(v.experts[0]);
    } else if (lw.dense_mlp) {
        v.dense = to_kern(*lw.dense_mlp, &b.owned);
        bytes += ffn_bytes(v.dense);
    } else {
        throw std::runtime_error("model: layer " + layer_name(l) + " has no MLP weights");
    }
    return v;
}

Qwen3NextModel::Qwen3NextModel(const ModelFolder& folder) : Qwen3NextModel(folder.config, folder.weights) {}

Qwen3NextModel::Qwen3NextModel(const Qwen3NextConfig& config, const Qwen3NextWeights& w) : config_(config) {
    check_supported(config_);
    if (static_cast<int64_t>(w.layers.size()) != config_.num_hidden_layers)
        throw std::runtime_error("model: weights have " + std::to_string(w.layers.size()) + " layers, config says " +
                                 std::to_string(config_.num_hidden_layers));
    auto b = std::make_shared<Bound>();
    // 1 + w computed in f32 (HF) and the stored f32 1 + w (GGUF) are the same number, so a plain norm over
    // the stored weights is exactly the zero-centred one.
    b->norm = w.norms == NormStorage::OnePlus ? kern::NormKind::Plain : kern::NormKind::ZeroCentered;
    b->embed = to_kern(w.embed_tokens, &b->owned);
    b->lm_head = to_kern(w.lm_head, &b->owned);
    b->final_norm = to_kern(w.final_norm, &b->owned);
    const uint64_t row_bytes = b->embed.nbytes() / static_cast<uint64_t>(config_.vocab_size);
    b->active_bytes = row_bytes + b->final_norm.nbytes() + b->lm_head.nbytes();
    for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
        uint64_t bytes = 0;
        b->layers.push_back(bind_layer(w.layers[l], static_cast<int>(l), *b, bytes));
        b->active_bytes += bytes;
    }
    if (w.mtp && !w.mtp->layers.empty()) {
        // The MTP head (spec section 6): the first of its layers is the one the engine runs (vLLM uses
        // layers[step % n], n = 1 in every released checkpoint).
        const MtpWeights& m = *w.mtp;
        Bound::Mtp mt;
        mt.fc = to_kern(m.fc, &b->owned);
        mt.norm_embedding = to_kern(m.pre_fc_norm_embedding, &b->owned);
        mt.norm_hidden = to_kern(m.pre_fc_norm_hidden, &b->owned);
        mt.norm = to_kern(m.norm, &b->owned);
        uint64_t bytes = 0;
        mt.layer = bind_layer(m.layers[0], -1, *b, bytes);
        b->mtp = std::move(mt);
        mtp_config_ = std::make_shared<Qwen3NextConfig>(config_);
        auto& mc = const_cast<Qwen3NextConfig&>(*mtp_config_);
        mc.num_hidden_layers = 1;
        mc.layer_types = {LayerType::FullAttention};
        mc.mtp_num_hidden_layers = 0;
    }
    b_ = std::move(b);
}

uint64_t Qwen3NextModel::active_weight_bytes_per_token() const { return b_->active_bytes; }

// ---- activations of one piece ------------------------------------------------------------------

struct Qwen3NextModel::Scratch {
    int64_t T;
    TensorBuffer x, h, ffn_out;                  // [T, H] residual stream, normed input, FFN output
    TensorBuffer qkvz, ba, mixed, conv_out;      // [T, 2nk*dk + 2nv*dv], [T, 2nv], [T, C], [T, C]
    TensorBuffer q, k, v, z, a, b, g, beta;      // [T, nk, dk] x2, [T, nv, dv] x2, [T, nv] x4
    TensorBuffer core, y;                        // [T, nv, dv]
    TensorBuffer qg, qn, kraw, attn;             // [T, nh, 2D], [T, nh, D], [T, nkv*D], [T, nh, D]
    TensorBuffer fnorm;                          // [rows, H]

    Scratch(const Qwen3NextConfig& c, int64_t t, int64_t logit_rows) : T(t) {
        const int64_t H = c.hidden_size, nk = c.linear_num_key_heads, nv = c.linear_num_value_heads;
        const int64_t dk = c.linear_key_head_dim, dv = c.linear_value_head_dim, C = c.linear_conv_dim();
        const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads, D = c.head_dim;
        x = f32_buffer({t, H}), h = f32_buffer({t, H}), ffn_out = f32_buffer({t, H});
        qkvz = f32_buffer({t, 2 * nk * dk + 2 * nv * dv}), ba = f32_buffer({t, 2 * nv});
        mixed = f32_buffer({t, C}), conv_out = f32_buffer({t, C});
        q = f32_buffer({t, nk, dk}), k = f32_buffer({t, nk, dk});
        v = f32_buffer({t, nv, dv}), z = f32_buffer({t, nv, dv});
        a = f32_buffer({t, nv}), b = f32_buffer({t, nv}), g = f32_buffer({t, nv}), beta = f32_buffer({t, nv});
        core = f32_buffer({t, nv, dv}), y = f32_buffer({t, nv, dv});
        qg = f32_buffer({t, nh, 2 * D}), qn = f32_buffer({t, nh, D}), kraw = f32_buffer({t, nkv * D});
        attn = f32_buffer({t, nh, D});
        fnorm = f32_buffer({logit_rows, H});
    }
};

uint64_t forward_scratch_bytes(const Qwen3NextConfig& c, int64_t t) {
    const uint64_t H = c.hidden_size, nk = c.linear_num_key_heads, nv = c.linear_num_value_heads;
    const uint64_t dk = c.linear_key_head_dim, dv = c.linear_value_head_dim, C = c.linear_conv_dim();
    const uint64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads, D = c.head_dim;
    const uint64_t per_token = 3 * H + (2 * nk * dk + 2 * nv * dv) + 2 * nv + 2 * C + 2 * nk * dk + 4 * nv * dv +
                               4 * nv + 2 * nh * D + nh * D + nkv * D + nh * D;
    const uint64_t logits_rows = static_cast<uint64_t>(t);  // worst case: all rows requested
    return sizeof(float) * (per_token * static_cast<uint64_t>(t) + logits_rows * (H + c.vocab_size));
}

// ---- the layer loop ----------------------------------------------------------------------------

// Throws (leaving the state untouched) for input forward() cannot take.
void Qwen3NextModel::check_input(const SequenceState& st, std::span<const int32_t> tokens) const {
    const int64_t T = static_cast<int64_t>(tokens.size());
    if (&st.config() != &config_)
        throw std::runtime_error("forward: the sequence state was made for a different model config");
    if (T == 0) throw std::runtime_error("forward: no tokens given");
    for (int64_t i = 0; i < T; ++i)
        if (tokens[i] < 0 || tokens[i] >= config_.vocab_size)
            throw std::runtime_error("forward: token id " + std::to_string(tokens[i]) + " at input position " +
                                     std::to_string(i) + " is outside the vocabulary [0, " +
                                     std::to_string(config_.vocab_size) + ")");
    const int64_t end = st.n_tokens() + T;
    if (end > config_.max_position_embeddings)
        throw std::runtime_error("forward: context of " + std::to_string(end) +
                                 " tokens exceeds max_position_embeddings = " +
                                 std::to_string(config_.max_position_embeddings));
    if (end > st.capacity())
        throw std::runtime_error("forward: context of " + std::to_string(end) + " tokens exceeds the " +
                                 std::to_string(st.capacity()) + " tokens reserved for this sequence");
}

Logits Qwen3NextModel::forward(SequenceState& st, std::span<const int32_t> tokens, LogitsRows rows,
                               std::vector<float>* hidden_out) const {
    const int64_t T = static_cast<int64_t>(tokens.size());
    check_input(st, tokens);

    Logits out;
    out.vocab = config_.vocab_size;
    out.rows = rows == LogitsRows::All ? T : 1;
    out.data.resize(static_cast<size_t>(out.rows * out.vocab));
    const int64_t H = config_.hidden_size;
    if (hidden_out) hidden_out->assign(static_cast<size_t>(out.rows * H), 0.0f);
    for (int64_t start = 0; start < T; start += kForwardPieceTokens) {
        const int64_t n = std::min(kForwardPieceTokens, T - start);
        const bool last = start + n == T;
        float* dst = rows == LogitsRows::All ? out.data.data() + start * out.vocab : (last ? out.data.data() : nullptr);
        float* hid = !hidden_out || !dst ? nullptr
                     : rows == LogitsRows::All ? hidden_out->data() + start * H : hidden_out->data();
        run_piece(st, tokens.subspan(start, n), rows, dst, hid);
    }
    return out;
}

Logits Qwen3NextModel::forward_hidden(SequenceState& st, std::span<const int32_t> tokens,
                                      std::vector<float>& hidden_all) const {
    const int64_t T = static_cast<int64_t>(tokens.size()), H = config_.hidden_size;
    check_input(st, tokens);
    hidden_all.assign(static_cast<size_t>(T * H), 0.0f);
    Logits out;   // piece by piece as forward() does, with every row's hidden state kept
    out.vocab = config_.vocab_size;
    out.rows = 1;
    out.data.resize(static_cast<size_t>(out.vocab));
    for (int64_t start = 0; start < T; start += kForwardPieceTokens) {
        const int64_t n = std::min(kForwardPieceTokens, T - start);
        const bool last = start + n == T;
        run_piece(st, tokens.subspan(start, n), LogitsRows::Last, last ? out.data.data() : nullptr,
                  hidden_all.data() + start * H, /*hidden_all=*/true);
    }
    return out;
}

bool Qwen3NextModel::has_mtp() const { return b_->mtp.has_value(); }

SequenceState Qwen3NextModel::new_mtp_state(int64_t max_tokens) const {
    if (!has_mtp()) throw std::runtime_error("mtp: this model has no MTP head (no mtp.* tensors)");
    return SequenceState(*mtp_config_, max_tokens);
}

// The MTP head (spec 6.2): x = fc([norm_e(embed(next)) | norm_h(hidden)]), one full-attention decoder layer over
// its own KV cache at the positions of `hidden`, then mtp.norm; logits through the shared lm_head.
Logits Qwen3NextModel::mtp_forward(SequenceState& mst, std::span<const float> hidden, std::span<const int32_t> next_ids,
                                   LogitsRows rows, std::vector<float>* hidden_out) const {
    if (!has_mtp()) throw std::runtime_error("mtp: this model has no MTP head (no mtp.* tensors)");
    if (&mst.config() != mtp_config_.get())
        throw std::runtime_error("mtp: the state was not made by new_mtp_state() of this model");
    const int64_t T = static_cast<int64_t>(next_ids.size()), H = config_.hidden_size;
    if (T == 0) throw std::runtime_error("mtp: no tokens given");
    if (static_cast<int64_t>(hidden.size()) != T * H)
        throw std::runtime_error("mtp: " + std::to_string(hidden.size()) + " hidden values for " + std::to_string(T) +
                                 " tokens of width " + std::to_string(H));
    for (int64_t i = 0; i < T; ++i)
        if (next_ids[i] < 0 || next_ids[i] >= config_.vocab_size)
            throw std::runtime_error("mtp: token id " + std::to_string(next_ids[i]) + " is outside the vocabulary");
    if (mst.n_tokens() + T > mst.capacity() || mst.n_tokens() + T > config_.max_position_embeddings)
        throw std::runtime_error("mtp: context of " + std::to_string(mst.n_tokens() + T) + " tokens exceeds the " +
                                 std::to_string(mst.capacity()) + " reserved");
    const auto& M = *b_->mtp;
    const float eps = static_cast<float>(config_.rms_norm_eps);
    const int64_t n_rows = rows == LogitsRows::All ? T : 1;
    Scratch s(config_, T, n_rows);
    std::vector<int64_t> positions(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) positions[static_cast<size_t>(t)] = mst.n_tokens() + t;
    TensorBuffer cat = f32_buffer({T, 2 * H});                            // [e | hh]
    kern::embed_rows(b_->embed, next_ids, s.x);                            // embed(next) [T, H]
    kern::rms_norm(s.x, M.norm_embedding, eps, b_->norm, s.h);
    kern::copy(s.h, cat.t().slice(1, 0, H));                               // embedding first (spec 6.2)
    const Tensor hid = Tensor::view(const_cast<float*>(hidden.data()), DType::F32, {T, H});
    kern::rms_norm(hid, M.norm_hidden, eps, b_->norm, s.h);
    kern::copy(s.h, cat.t().slice(1, H, H));                               // then the hidden state
    kern::matmul(cat, M.fc, s.x);                                          // x [T, H]
    trace("mtp.fc", -1, s.x);
    mst.begin_append(T);
    kern::rms_norm(s.x, M.layer.input_norm, eps, b_->norm, s.h);
    attention_mixer(M.layer, 0, mst, s, positions);                        // x += attn(h)
    kern::rms_norm(s.x, M.layer.post_norm, eps, b_->norm, s.h);
    ffn(M.layer, 0, s);                                                    // x += mlp(h)
    mst.end_append(T);
    const Tensor x_rows = n_rows == T ? s.x.t() : s.x.t().slice(0, T - 1, 1);
    kern::rms_norm(x_rows, M.norm, eps, b_->norm, s.fnorm);                // [rows, H]
    trace("mtp.norm", -1, s.fnorm);
    if (hidden_out) hidden_out->assign(s.fnorm.f32(), s.fnorm.f32() + n_rows * H);
    Logits out;
    out.vocab = config_.vocab_size;
    out.rows = n_rows;
    out.data.resize(static_cast<size_t>(n_rows * out.vocab));
    kern::matmul(s.fnorm, b_->lm_head, Tensor::view(out.data.data(), DType::F32, {n_rows, config_.vocab_size}));
    return out;
}

void Qwen3NextModel::run_piece(SequenceState& st, std::span<const int32_t> ids, LogitsRows rows,
                               float* logits, float* hidden_out, bool hidden_all) const {
    const int64_t T = static_cast<int64_t>(ids.size());
    const int64_t n_past = st.n_tokens();
    const float eps = static_cast<float>(config_.rms_norm_eps);
    const int64_t n_rows = logits == nullptr ? 0 : (rows == LogitsRows::All ? T : 1);
    Scratch s(config_, T, std::max<int64_t>(n_rows, 1));
    std::vector<int64_t> positions(T);
    for (int64_t t = 0; t < T; ++t) positions[t] = n_past + t;

    st.begin_append(T);
    kern::embed_rows(b_->embed, ids, s.x);                          // x [T, H]
    trace("embed", -1, s.x);
    for (int l = 0; l < config_.num_hidden_layers; ++l) {
        const LayerViews& L = b_->layers[l];
        kern::rms_norm(s.x, L.input_norm, eps, b_->norm, s.h);                      // h [T, H]
        trace("input_norm", l, s.h);
        if (L.type == LayerType::FullAttention)
            attention_mixer(L, l, st, s, positions);                // x += attn(h)
        else
            gdn_mixer(l, st, s);                                     // x += gdn(h)
        trace("mixer_residual", l, s.x);
        kern::rms_norm(s.x, L.post_norm, eps, b_->norm, s.h);                       // h [T, H]
        trace("post_norm", l, s.h);
        ffn(L, l, s);                                                // x += moe(h)
        trace("hidden", l, s.x);
    }
    st.end_append(T);
    if (hidden_all && hidden_out) {   // every row's final-norm hidden state (the logits below stay per `rows`)
        TensorBuffer all = f32_buffer({T, config_.hidden_size});
        kern::rms_norm(s.x, b_->final_norm, eps, b_->norm, all);
        std::memcpy(hidden_out, all.f32(), sizeof(float) * static_cast<size_t>(T * config_.hidden_size));
        hidden_out = nullptr;
    }
    if (n_rows == 0) return;

    const Tensor x_rows = n_rows == T ? s.x.t() : s.x.t().slice(0, T - 1, 1);  // [rows, H]
    kern::rms_norm(x_rows, b_->final_norm, eps, b_->norm, s.fnorm);
    trace("final_norm", -1, s.fnorm);
    if (hidden_out) std::memcpy(hidden_out, s.fnorm.f32(), sizeof(float) * static_cast<size_t>(n_rows * config_.hidden_size));
    const Tensor out = Tensor::view(logits, DType::F32, {n_rows, config_.vocab_size});  // [rows, V]
    kern::matmul(s.fnorm, b_->lm_head, out);
    trace("logits", -1, out);
}

// Gated DeltaNet (spec section 3): projections, causal conv + SiLU, L2-normalised q/k, gated delta
// rule (chunked for prefill, recurrent for decode) continuing from the cached state, gated RMSNorm.
void Qwen3NextModel::gdn_mixer(int l, SequenceState& st, Scratch& s) const {
    const LayerViews& L = b_->layers[l];
    const int64_t T = s.T, nk = config_.linear_num_key_heads, nv = config_.linear_num_value_heads;
    const int64_t dk = config_.linear_key_head_dim, dv = config_.linear_value_head_dim, R = nv / nk;
    const int64_t key_dim = nk * dk, G = 2 * dk + 2 * R * dv;  // G: per-key-head group width of qkvz
    const float eps = static_cast<float>(config_.rms_norm_eps);

    const Tensor mixed = s.mixed.t();                                   // [T, C] = [q | k | v]
    if (!L.qkvz.empty()) {
        kern::matmul(s.h, L.qkvz, s.qkvz);                              // [T, nk*G]
        trace("gdn.qkvz", l, s.qkvz);
        // De-interleave the per-key-head groups [q dk | k dk | v R*dv | z R*dv].
        const Tensor P = s.qkvz.t().unflatten(1, {nk, G});              // [T, nk, G]
        kern::copy(P.slice(2, 0, dk), mixed.slice(1, 0, key_dim).unflatten(1, {nk, dk}));
        kern::copy(P.slice(2, dk, dk), mixed.slice(1, key_dim, key_dim).unflatten(1, {nk, dk}));
        kern::copy(P.slice(2, 2 * dk, R * dv), mixed.slice(1, 2 * key_dim, nv * dv).unflatten(1, {nk, R * dv}));
        kern::copy(P.slice(2, 2 * dk + R * dv, R * dv), s.z.t().reshape({T, nk, R * dv}));   // z [T, nv, dv]
    } else {                                                            // split: already in conv order
        kern::matmul(s.h, L.qkv, s.mixed);                              // [T, C]
        kern::matmul(s.h, L.z, s.z.t().reshape({T, nv * dv}));          // z [T, nv, dv]
    }
    if (!L.ba.empty()) {
        kern::matmul(s.h, L.ba, s.ba);                                  // [T, nk*2R]
        trace("gdn.ba", l, s.ba);
        const Tensor BA = s.ba.t().unflatten(1, {nk, 2 * R});           // [T, nk, 2R]: per group [b R | a R]
        kern::copy(BA.slice(2, 0, R), s.b.t().reshape({T, nk, R}));     // b [T, nv]
        kern::copy(BA.slice(2, R, R), s.a.t().reshape({T, nk, R}));     // a [T, nv]
    } else {                                                            // split: head order already
        kern::matmul(s.h, L.b, s.b);                                    // b [T, nv]
        kern::matmul(s.h, L.a, s.a);                                    // a [T, nv]
    }

    // Causal depthwise conv over [cached K-1 inputs | T new inputs], then SiLU.
    const Tensor conv_state = st.conv(l);                               // [K-1, C]
    kern::conv1d_causal(s.mixed, L.conv_w, conv_state, s.conv_out, /*apply_silu=*/true);   // [T, C]
    trace("gdn.conv", l, s.conv_out);
    const Tensor co = s.conv_out.t();
    // q/k L2 normalisation: a fixed 1e-6 inside the sqrt (HF l2norm / FLA), not rms_norm_eps.
    constexpr float kL2Eps = 1e-6f;
    kern::l2_norm(co.slice(1, 0, key_dim).unflatten(1, {nk, dk}), kL2Eps, s.q);          // q [T, nk, dk]
    kern::l2_norm(co.slice(1, key_dim, key_dim).unflatten(1, {nk, dk}), kL2Eps, s.k);    // k [T, nk, dk]
    kern::copy(co.slice(1, 2 * key_dim, nv * dv).unflatten(1, {nv, dv}), s.v);          // v [T, nv, dv]

    kern::gdn_gates(s.a, s.b, L.A, L.dt_bias, s.g, s.beta);             // g, beta [T, nv]
    trace("gdn.g", l, s.g);
    trace("gdn.beta", l, s.beta);
    const float scale = 1.0f / std::sqrt(static_cast<float>(dk));
    const Tensor rec = st.recurrent(l);                                 // [nv, dk, dv] fp32
    const bool recurrent = gdn_mode_ == GdnMode::Recurrent || (gdn_mode_ == GdnMode::Auto && T == 1);
    if (recurrent)
        kern::gdn_recurrent(s.q, s.k, s.v, s.g, s.beta, rec, s.core, scale);             // core [T, nv, dv]
    else
        kern::gdn_chunked(s.q, s.k, s.v, s.g, s.beta, rec, s.core, scale);
    trace("gdn.core", l, s.core);

    kern::rms_norm_gated(s.core, s.z, L.gated_norm, eps, s.y);          // y [T, nv, dv]
    trace("gdn.norm", l, s.y);
    kern::matmul(s.y.t().reshape({T, nv * dv}), L.out_proj, s.x, /*accumulate=*/true);  // x += y out_proj^T
}

// Gated full attention (spec section 4): per-head interleaved [query | gate], q/k zero-centred norms,
// partial NeoX RoPE, causal GQA over the KV cache, output * sigmoid(gate), o_proj.
void Qwen3NextModel::attention_mixer(const LayerViews& L, int l, SequenceState& st, Scratch& s,
                                     std::span<const int64_t> positions) const {
    const int64_t T = s.T, nh = config_.num_attention_heads, nkv = config_.num_key_value_heads;
    const int64_t D = config_.head_dim, n_past = positions[0];
    const float eps = static_cast<float>(config_.rms_norm_eps);

    kern::matmul(s.h, L.q_proj, s.qg.t().reshape({T, nh * 2 * D}));  // qg [T, nh, 2D]
    const Tensor query = s.qg.t().slice(2, 0, D);                     // [T, nh, D] (strided)
    const Tensor gate = s.qg.t().slice(2, D, D);                      // [T, nh, D] (strided)
    kern::rms_norm(query, L.q_norm, eps, b_->norm, s.qn);
    kern::rope_neox(s.qn, positions, config_.rotary_dim(), config_.rope_theta);
    trace("attn.q", l, s.qn);

    const Tensor k_new = st.keys(l).slice(0, n_past, T);              // [T, nkv, D] rows of the cache
    const Tensor v_new = st.values(l).slice(0, n_past, T);
    kern::matmul(s.h, L.k_proj, s.kraw);                              // [T, nkv*D]
    kern::rms_norm(s.kraw.t().reshape({T, nkv, D}), L.k_norm, eps, b_->norm, k_new);
    kern::rope_neox(k_new, positions, config_.rotary_dim(), config_.rope_theta);
    kern::matmul(s.h, L.v_proj, v_new.reshape({T, nkv * D}));
    trace("attn.k", l, k_new);
    trace("attn.v", l, v_new);

    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    kern::attention(s.qn, st.keys(l), st.values(l), n_past, scale, gate, s.attn);   // [T, nh, D]
    trace("attn.out", l, s.attn);
    kern::matmul(s.attn.t().reshape({T, nh * D}), L.o_proj, s.x, /*accumulate=*/true);  // x += o_proj
}

// Sparse MoE (spec section 5): softmax router, top-k (renormalised when norm_topk_prob), routed
// SwiGLU experts + sigmoid-gated shared expert. Dense SwiGLU for mlp_only / non-sparse layers.
void Qwen3NextModel::ffn(const LayerViews& L, int l, Scratch& s) const {
    if (!L.moe) {
        kern::ffn_swiglu(s.h, L.dense, s.x, /*accumulate=*/true);
        return;
    }
    kern::MoeBlockWeights w;
    w.router = L.router;
    w.experts = L.experts;
    w.shared = L.shared;
    w.shared_gate = L.shared_gate;
    w.top_k = config_.num_experts_per_tok;
    w.norm_topk_prob = config_.norm_topk_prob;
    kern::moe_block(s.h, w, s.ffn_out);                               // [T, H]
    trace("moe.out", l, s.ffn_out);
    kern::add(s.x, s.ffn_out, s.x);                                   // x += moe(h)
}

}  // namespace qnext
