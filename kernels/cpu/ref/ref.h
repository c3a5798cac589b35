// kernels/cpu/ref/ref.h: the scalar reference kernels (the oracle). Same parameter lists as
// kernels/ops.h; called after ops.cpp validated shapes. Plain loops, fp64 accumulation, no SIMD,
// no threads. Covered by tests/kernels/test_ops.cpp (Ref.* hand-computed cases and every fast case).
#pragma once
#include <span>

#include "kernels/ops.h"

namespace qnext::kern::ref {

void embed_rows(const Tensor& table, std::span<const int32_t> ids, const Tensor& out);
void rms_norm(const Tensor& x, const Tensor& w, float eps, NormKind kind, const Tensor& out);
void rms_norm_gated(const Tensor& x, const Tensor& z, const Tensor& w, float eps, const Tensor& out);
void l2_norm(const Tensor& x, float eps, const Tensor& out);
void rope_neox(const Tensor& x, std::span<const int64_t> positions, int64_t rot_dim, double theta);
void matmul(const Tensor& x, const Tensor& w, const Tensor& y, bool accumulate);
void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& dst, float value);
enum class Binary { Add, Mul, SiluMul, MulSigmoid };
void binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out);
enum class Unary { Silu, Sigmoid, Scale };
void unary(Unary op, const Tensor& x, float s, const Tensor& out);
void softmax(const Tensor& x, const Tensor& out);
void conv1d_causal(const Tensor& x, const Tensor& w, const Tensor& state, const Tensor& out, bool apply_silu);
void gdn_gates(const Tensor& a, const Tensor& b, const Tensor& A, const Tensor& dt_bias,
               const Tensor& g, const Tensor& beta);
void gdn_recurrent(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                   const Tensor& beta, const Tensor& state, const Tensor& out, float scale);
void gdn_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                 const Tensor& beta, const Tensor& state, const Tensor& out, float scale, int64_t chunk);
void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
               float scale, const Tensor& gate, const Tensor& out);
void moe_route(const Tensor& logits, int64_t top_k, bool norm_topk_prob, const Tensor& ids,
               const Tensor& weights);
void ffn_swiglu(const Tensor& x, const FfnWeights& w, const Tensor& out, bool accumulate);
void moe_experts(const Tensor& x, std::span<const FfnWeights> experts, const Tensor& ids,
                 const Tensor& weights, const Tensor& out, bool accumulate);
void shared_expert(const Tensor& x, const FfnWeights& w, const Tensor& gate_w, const Tensor& out,
                   bool accumulate);

}  // namespace qnext::kern::ref
