// kernels/cpu/qmatmul.h: integer matmul for block-quantized (GGUF) weights, as llama.cpp does it: the f32
// activations are quantized per row to int8 in blocks of 32 (one f32 scale per block, plus the scaled sum of
// every 16 values, which the formats with an offset or minimum need), and every weight group of 32 values is
// unpacked to unsigned 8-bit integers u with w = mul * u + off per 16-value half, so that
//   sum_i w_i x_i = d_x * (mul * sum_i u_i q_i) + off * (d_x * sum_i q_i)
// where sum_i u_i q_i is an integer dot product (AVX2 maddubs/madd, or AVX-512 VNNI vpdpbusd). Q8_0 weights
// are signed: |w| is the unsigned side and x takes w's sign. Every format of kernels/quant.h is covered.
// Compared against an exact dot product on the same quantized activations and against cpu/ref (which does not
// quantize activations) by tests/kernels/test_ops.cpp (QMatmul.*, the quantized matmul and moe cases).
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/tensor.h"

namespace qnext::kern::cpu {

// T rows of K activations (K a multiple of 32) quantized for the integer kernels.
struct Q8Rows {
    int64_t T = 0, K = 0;
    std::vector<int8_t> q;    // [T, K]: round(x / d), |q| <= 127
    std::vector<float> d;     // [T, K/32]: block scale, max |x| / 127
    std::vector<float> s16;   // [T, K/16]: d * (sum of q over each 16 values)
    const int8_t* qrow(int64_t t) const { return q.data() + t * K; }
    const float* drow(int64_t t) const { return d.data() + t * (K / 32); }
    const float* srow(int64_t t) const { return s16.data() + t * (K / 16); }
};

// Quantizes rows x[t * ldx + k] (t < T, k < K). Throws std::invalid_argument when K % 32 != 0.
void quantize_q8_rows(const float* x, int64_t ldx, int64_t T, int64_t K, Q8Rows& out);

// y[(t - t0) * ldy + n] (+)= w[n, :] . x[t, :] for t in [t0, t0 + nt), n in [n0, n1); w rows of K values of
// block type wt (is_quantized(wt)). Single-threaded.
using QMatmulRowsFn = void (*)(const Q8Rows& x, int64_t t0, int64_t nt, const void* w, DType wt, int64_t n0,
                               int64_t n1, float* y, int64_t ldy, bool accumulate);
void qmatmul_rows_avx2(const Q8Rows& x, int64_t t0, int64_t nt, const void* w, DType wt, int64_t n0, int64_t n1,
                       float* y, int64_t ldy, bool accumulate);
void qmatmul_rows_vnni(const Q8Rows& x, int64_t t0, int64_t nt, const void* w, DType wt, int64_t n0, int64_t n1,
                       float* y, int64_t ldy, bool accumulate);
void quantize_q8_rows_avx2(const float* x, int64_t ldx, int64_t T, int64_t K, Q8Rows& out);
// The kernel for this CPU: VNNI when the ISA is AVX-512 and the CPU has avx512vnni, else AVX2.
QMatmulRowsFn qmatmul_rows_fn();

}  // namespace qnext::kern::cpu
