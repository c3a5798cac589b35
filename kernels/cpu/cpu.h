// kernels/cpu/cpu.h: fast CPU kernels (AVX2+FMA baseline, AVX-512 when present, OpenMP threads).
// Same parameter lists as kernels/ops.h; called by ops.cpp after validation when backend() == Cpu.
// Ops without an entry here run the reference code (they are cheap next to the matmuls).
// Every function is compared against kernels/cpu/ref by tests/kernels/test_ops.cpp.
#pragma once
#include <span>

#include "kernels/ops.h"

namespace qnext::kern::cpu {

void matmul(const Tensor& x, const Tensor& w, const Tensor& y, bool accumulate);
void ffn_swiglu(const Tensor& x, const FfnWeights& w, const Tensor& out, bool accumulate);
void moe_experts(const Tensor& x, std::span<const FfnWeights> experts, const Tensor& ids,
                 const Tensor& weights, const Tensor& out, bool accumulate);
void shared_expert(const Tensor& x, const FfnWeights& w, const Tensor& gate_w, const Tensor& out,
                   bool accumulate);
// Whole MoE block; T <= kFusedMoeMaxTokens runs in one parallel region (cpu/moe_fused.cpp).
constexpr int64_t kFusedMoeMaxTokens = 8;
void moe_block(const Tensor& x, const MoeBlockWeights& w, const Tensor& out);
void conv1d_causal(const Tensor& x, const Tensor& w, const Tensor& state, const Tensor& out, bool apply_silu);
void gdn_recurrent(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                   const Tensor& beta, const Tensor& state, const Tensor& out, float scale);
void gdn_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                 const Tensor& beta, const Tensor& state, const Tensor& out, float scale, int64_t chunk);
void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
               float scale, const Tensor& gate, const Tensor& out);

// Dot-product GEMM microkernels by ISA (kernels/cpu/matmul_avx2.cpp, matmul_avx512.cpp):
// y[t, n] (+)= sum_k x[t, k] w[n, k] for rows n in [n0, n1), all T tokens. x rows at x + t*ldx.
void matmul_rows_avx2(const float* x, int64_t ldx, int64_t T, int64_t K, const void* w, DType wt,
                      int64_t n0, int64_t n1, float* y, int64_t ldy, bool accumulate);
void matmul_rows_avx512(const float* x, int64_t ldx, int64_t T, int64_t K, const void* w, DType wt,
                        int64_t n0, int64_t n1, float* y, int64_t ldy, bool accumulate);
// The microkernel for this CPU (AVX-512 when present, else AVX2). Single-threaded; w rows are K long.
using MatmulRowsFn = void (*)(const float* x, int64_t ldx, int64_t T, int64_t K, const void* w, DType wt,
                              int64_t n0, int64_t n1, float* y, int64_t ldy, bool accumulate);
MatmulRowsFn matmul_rows_fn();
// F8_B128 blocks -> f32 (exact; kernels/cpu/matmul_avx2.cpp). n a multiple of 128.
void dequantize_f8_b128_avx2(const void* src, float* dst, int64_t n);
// y[n] (+)= w[n, :] . x for one token over F8_B128 rows [n0, n1) (kernels/cpu/matmul_avx2.cpp).
void gemv_f8_b128_avx2(const float* x, int64_t K, const void* w, int64_t n0, int64_t n1, float* y, bool accumulate);

}  // namespace qnext::kern::cpu
