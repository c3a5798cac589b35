// kernels/ops.h: the only public math API. Typed, backend-neutral entry points for the Qwen3-Next
// forward pass. Every op validates shapes/dtypes (std::invalid_argument naming the op and the tensor),
// then runs on the backend chosen once in kernels/backend.h (scalar reference, fast CPU, or CUDA for
// device-resident tensors). Activations are F32; weights may be F32, BF16 or F16 and are read in place.
// Outputs are passed as `const Tensor&` views whose data is written. Unless stated, `out` may alias
// the input of the same shape (in place). Numerics follow HF transformers in fp32
// (shared/reference/qwen3-next-architecture.md section 9.2). Tested by tests/kernels/test_ops.cpp.
#pragma once
#include <cstdint>
#include <span>

#include "kernels/tensor.h"

namespace qnext::kern {

// ---- embedding -------------------------------------------------------------------------------
// out[t, :] = f32(table[ids[t], :]). table [V, D] F32|BF16|F16; out [T, D] F32. Throws on id >= V.
void embed_rows(const Tensor& table, std::span<const int32_t> ids, const Tensor& out);

// ---- norms (over the last dim D, any number of leading dims) --------------------------------
enum class NormKind { Plain, ZeroCentered };  // y = x*rstd*w  |  y = x*rstd*(1+w)  (Qwen3NextRMSNorm)
// rstd = 1/sqrt(mean(x^2) + eps). w [D] F32|BF16.
void rms_norm(const Tensor& x, const Tensor& w, float eps, NormKind kind, const Tensor& out);
// Gated RMSNorm (GDN output norm, plain weight, FLA/"norm before gate", all fp32):
// y = x*rstd*w * silu(z). x, z, out [..., D]; w [D].
void rms_norm_gated(const Tensor& x, const Tensor& z, const Tensor& w, float eps, const Tensor& out);
// y = x / sqrt(sum(x^2) + eps)  (eps inside the sqrt, as HF l2norm / FLA).
void l2_norm(const Tensor& x, float eps, const Tensor& out);

// ---- rotary ----------------------------------------------------------------------------------
// Partial NeoX RoPE, in place on x [T, H, Dh]: dims [0, rot_dim) rotate as pairs (j, j + rot_dim/2);
// dims >= rot_dim pass through. inv_freq[j] = theta^(-2j/rot_dim) and freqs = pos*inv_freq in fp32.
// positions [T] are absolute (0-based).
void rope_neox(const Tensor& x, std::span<const int64_t> positions, int64_t rot_dim, double theta);

// ---- dense matmul ----------------------------------------------------------------------------
// y[t, n] (+)= sum_k x[t, k] * w[n, k]   (a bias-free Linear: y = x @ w^T).
// x [T, K] F32 (rows may be strided); w [N, K] F32|BF16|F16 contiguous (bf16 read in place, never
// expanded); y [T, N] F32, must not alias x. accumulate=true adds into y (e.g. residual += o_proj).
void matmul(const Tensor& x, const Tensor& w, const Tensor& y, bool accumulate = false);

// ---- elementwise / small ops (same shapes unless stated) -------------------------------------
void copy(const Tensor& src, const Tensor& dst);  // any strides, converts F32<->BF16/F16
void fill(const Tensor& dst, float value);        // F32
void add(const Tensor& a, const Tensor& b, const Tensor& out);
void mul(const Tensor& a, const Tensor& b, const Tensor& out);
void scale(const Tensor& x, float s, const Tensor& out);
void silu(const Tensor& x, const Tensor& out);
void sigmoid(const Tensor& x, const Tensor& out);
void silu_mul(const Tensor& gate, const Tensor& up, const Tensor& out);    // silu(gate) * up
void mul_sigmoid(const Tensor& x, const Tensor& gate, const Tensor& out);  // x * sigmoid(gate)
void softmax(const Tensor& x, const Tensor& out);                          // over the last dim

// ---- causal depthwise conv1d with rolling state (GDN) ----------------------------------------
// x [T, C]; w [C, K] or [C, 1, K] F32|BF16 (w[c, K-1] multiplies the current token);
// state [K-1, C] F32, in/out: the previous K-1 inputs, oldest first (zeros for a new sequence); on
// return it holds the last K-1 inputs of (state ++ x). out [T, C] (must not alias x):
// out[t, c] = act(sum_j w[c, j] * x_ext[t + j, c]) with x_ext = state ++ x, act = SiLU if apply_silu.
void conv1d_causal(const Tensor& x, const Tensor& w, const Tensor& state, const Tensor& out,
                   bool apply_silu = true);

// ---- gated delta rule (GDN) ------------------------------------------------------------------
// g[t, h] = A[h] * softplus(a[t, h] + dt_bias[h]) (softplus threshold 20) with A = -exp(A_log) the
// (negative) decay rate, computed in f32 by the model from HF's A_log or read from GGUF's ssm_a;
// beta[t, h] = sigmoid(b[t, h]). a, b, g, beta [T, Hv]; A, dt_bias [Hv] F32|BF16.
void gdn_gates(const Tensor& a, const Tensor& b, const Tensor& A, const Tensor& dt_bias,
               const Tensor& g, const Tensor& beta);
// Shapes for both forms: q, k [T, Hk, Dk] (already L2-normalised; q is multiplied by `scale`
// inside, HF uses 1/sqrt(Dk)); v [T, Hv, Dv]; g, beta [T, Hv]; value head h reads key head
// h / (Hv/Hk) (repeat_interleave); state [Hv, Dk, Dv] F32 in/out (zeros for a new sequence);
// out [T, Hv, Dv]. Per token: S = exp(g) S; S += k (beta (v - S^T k))^T; o = S^T (scale q).
void gdn_recurrent(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                   const Tensor& beta, const Tensor& state, const Tensor& out, float scale);
// The chunked (WY/UT) form of the same recurrence, chunk size 64 (HF torch_chunk_gated_delta_rule),
// continuing from the incoming state. Equal to gdn_recurrent up to fp32 rounding.
void gdn_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                 const Tensor& beta, const Tensor& state, const Tensor& out, float scale,
                 int64_t chunk = 64);

// ---- attention -------------------------------------------------------------------------------
// Causal GQA softmax attention over a KV cache. q [T, Hq, D]; k_cache, v_cache [S, Hkv, D] F32|BF16
// with rows [0, n_past + T) valid (the new keys already written, after k_norm + RoPE); query t has
// position n_past + t and attends keys [0, n_past + t]; q-head n reads kv-head n / (Hq/Hkv).
// Softmax in fp32 of scale * q.k. If gate is non-empty ([T, Hq, D]) the result is multiplied by
// sigmoid(gate) (the Qwen3-Next output gate). out [T, Hq, D] (must not alias q).
void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
               float scale, const Tensor& gate, const Tensor& out);

// ---- MoE -------------------------------------------------------------------------------------
// p = softmax(logits) over all E experts (fp32), take the top_k (ties: lower index first, sorted by
// descending p), divide by their sum when norm_topk_prob. logits [T, E]; ids I32 [T, k]; weights [T, k].
void moe_route(const Tensor& logits, int64_t top_k, bool norm_topk_prob, const Tensor& ids,
               const Tensor& weights);

struct FfnWeights {  // SwiGLU FFN: down(silu(gate(x)) * up(x))
    Tensor gate;     // [F, D]
    Tensor up;       // [F, D]
    Tensor down;     // [D, F]
};
// out (+)= down(silu(x gate^T) * (x up^T)). x [T, D]; out [T, D] (must not alias x).
void ffn_swiglu(const Tensor& x, const FfnWeights& w, const Tensor& out, bool accumulate = false);
// out[t] (+)= sum_j weights[t, j] * ffn_{ids[t, j]}(x[t]). experts: one FfnWeights per expert.
void moe_experts(const Tensor& x, std::span<const FfnWeights> experts, const Tensor& ids,
                 const Tensor& weights, const Tensor& out, bool accumulate = false);
// out[t] (+)= sigmoid(x[t] . gate_w) * ffn(x[t]). gate_w [1, D].
void shared_expert(const Tensor& x, const FfnWeights& w, const Tensor& gate_w, const Tensor& out,
                   bool accumulate = true);

struct MoeBlockWeights {
    Tensor router;                       // [E, D]
    std::span<const FfnWeights> experts; // E entries
    FfnWeights shared;                   // shared expert (gate.empty() = none)
    Tensor shared_gate;                  // [1, D]
    int64_t top_k = 0;
    bool norm_topk_prob = true;
};
// The whole sparse MoE block (Qwen3NextSparseMoeBlock): route, routed experts, shared expert.
// x [T, D]; out [T, D] (must not alias x).
void moe_block(const Tensor& x, const MoeBlockWeights& w, const Tensor& out);

}  // namespace qnext::kern
