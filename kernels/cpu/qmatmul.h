// kernels/cpu/qmatmul.h: integer matmul for block-quantized (GGUF) weights, as llama.cpp does it: the f32
// activations are quantized per row to int8 (see Q8Rows), and every weight group of 32 values is unpacked to
// unsigned 8-bit integers u with w = mul * u + off per 16-value half, so that
//   sum_i w_i x_i = d_x * (mul * sum_i u_i q_i) + off * (d_x * sum_i q_i)
// where sum_i u_i q_i is an integer dot product (AVX2 maddubs/madd, or AVX-512 VNNI vpdpbusd). Q8_0 weights
// are signed: |w| is the unsigned side and x takes w's sign. The K-quants (256-value super-blocks) keep their
// integer sub-block scales in the integer domain (maddubs then madd by the scale) against per-256 activations
// and convert once per super-block. Every format of kernels/quant.h is covered.
// Compared against an exact dot product on the same quantized activations and against cpu/ref (which does not
// quantize activations) by tests/kernels/test_ops.cpp (QMatmul.*, the quantized matmul and moe cases).
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/tensor.h"

namespace qnext::kern::cpu {

// The block formats the integer kernels run (every GGML type; FP8 runs exactly in f32 instead).
inline bool int8_kernels(DType t) { return is_quantized(t) && t != DType::F8_B128; }

// T rows of K activations (K a multiple of 32) quantized for the integer kernels, in two layouts: per 32 values
// (the 32-value formats Q4_0..Q8_0) and, when K is a multiple of 256, per 256 values (the K-quant super-blocks:
// one scale per super-block lets a whole super-block accumulate in integers, as llama.cpp's Q8_K does).
struct Q8Rows {
    int64_t T = 0, K = 0;
    std::vector<int8_t> q;        // [T, K]: round(x / d), |q| <= 127, d per 32
    std::vector<float> d;         // [T, K/32]: block scale, max |x| / 127
    std::vector<float> s16;       // [T, K/16]: d * (sum of q over each 16 values)
    std::vector<int8_t> qk;       // [T, K]: round(x / dk), dk per 256 (empty when K % 256 != 0)
    std::vector<float> dk;        // [T, K/256]
    std::vector<int16_t> bsums;   // [T, K/16]: sum of qk over each 16 values
    const int8_t* qrow(int64_t t) const { return q.data() + t * K; }
    const float* drow(int64_t t) const { return d.data() + t * (K / 32); }
    const float* srow(int64_t t) const { return s16.data() + t * (K / 16); }
    const int8_t* qkrow(int64_t t) const { return qk.data() + t * K; }
    const float* dkrow(int64_t t) const { return dk.data() + t * (K / 256); }
    const int16_t* bsrow(int64_t t) const { return bsums.data() + t * (K / 16); }
};

// Quantizes rows x[t * ldx + k] (t < T, k < K), over the worker threads when there are many. Throws
// std::invalid_argument when K % 32 != 0.
void quantize_q8_rows(const float* x, int64_t ldx, int64_t T, int64_t K, Q8Rows& out);

// y[(t - t0) * ldy + n] (+)= w[n, :] . x[t, :] for t in [t0, t0 + nt), n in [n0, n1); w rows of K values of
// block type wt (is_quantized(wt)). Single-threaded.
using QMatmulRowsFn = void (*)(const Q8Rows& x, int64_t t0, int64_t nt, const void* w, DType wt, int64_t n0,
                               int64_t n1, float* y, int64_t ldy, bool accumulate);
void qmatmul_rows_avx2(const Q8Rows& x, int64_t t0, int64_t nt, const void* w, DType wt, int64_t n0, int64_t n1,
                       float* y, int64_t ldy, bool accumulate);
void qmatmul_rows_vnni(const Q8Rows& x, int64_t t0, int64_t nt, const void* w, DType wt, int64_t n0, int64_t n1,
                       float* y, int64_t ldy, bool accumulate);
// Rows [t0, t1) into `out`, already sized for its T and K by quantize_q8_rows.
void quantize_q8_rows_avx2(const float* x, int64_t ldx, int64_t t0, int64_t t1, Q8Rows& out);
// The kernel for this CPU: VNNI when the ISA is AVX-512 and the CPU has avx512vnni, else AVX2.
QMatmulRowsFn qmatmul_rows_fn();

}  // namespace qnext::kern::cpu
