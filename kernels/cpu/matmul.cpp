// kernels/cpu/matmul.cpp: fast CPU matmul driver (thread-pool row partition, token/row cache blocking,
// AVX-512 or AVX2 microkernels picked at run time) and the FFN/MoE ops built on it: SwiGLU FFN,
// routed experts grouped by expert (gather rows -> GEMM -> weighted scatter-add), shared expert.
// Compared against cpu/ref by tests/kernels/test_ops.cpp (Matmul.*, Moe.*, Ffn.*).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/quant.h"

namespace qnext::kern::cpu {
namespace {


constexpr int64_t kTokenBlock = 64;  // x block of 64 tokens stays in L2 while weight rows stream
constexpr int64_t kRowBlock = 64;    // weight rows per inner block

// silu(g) * u in place into g, n elements.
void silu_mul_inplace(float* g, const float* u, int64_t n) {
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// Block-quantized weights through the MatmulRowsFn signature (f32 x): x is quantized for this call, then
// the integer kernel runs. Hot callers quantize once themselves (matmul below, moe_fused). FP8 rows are
// decoded exactly to f32 (SIMD, dequantize_f8_b128_avx2) and run through the f32 microkernel, one row at a time for all T tokens.
template <MatmulRowsFn F>
void rows_any(const float* x, int64_t ldx, int64_t T, int64_t K, const void* w, DType wt, int64_t n0, int64_t n1,
              float* y, int64_t ldy, bool accumulate) {
    if (wt == DType::F8_B128 && T == 1) {
        gemv_f8_b128_avx2(x, K, w, n0, n1, y, accumulate);
        return;
    }
    if (wt == DType::F8_B128) {
        thread_local std::vector<float> row;
        row.resize(static_cast<size_t>(K));
        const size_t row_bytes = dtype_bytes(wt, K);
        for (int64_t n = n0; n < n1; ++n) {
            dequantize_f8_b128_avx2(static_cast<const char*>(w) + static_cast<size_t>(n) * row_bytes, row.data(), K);
            F(x, ldx, T, K, row.data(), DType::F32, 0, 1, y + n, ldy, accumulate);
        }
        return;
    }
    if (!int8_kernels(wt)) {
        F(x, ldx, T, K, w, wt, n0, n1, y, ldy, accumulate);
        return;
    }
    thread_local Q8Rows xq;
    quantize_q8_rows(x, ldx, T, K, xq);
    qmatmul_rows_fn()(xq, 0, T, w, wt, n0, n1, y, ldy, accumulate);
}

}  // namespace

MatmulRowsFn matmul_rows_fn() {
    return cpu_isa() == CpuIsa::Avx512 ? rows_any<matmul_rows_avx512> : rows_any<matmul_rows_avx2>;
}

QMatmulRowsFn qmatmul_rows_fn() {
    return cpu_isa() == CpuIsa::Avx512 && cpu_features().avx512_vnni ? qmatmul_rows_vnni : qmatmul_rows_avx2;
}

void quantize_q8_rows(const float* x, int64_t ldx, int64_t T, int64_t K, Q8Rows& o) {
    if (K % 32 != 0) throw std::invalid_argument("quantize_q8_rows: K = " + std::to_string(K) + " is not a multiple of 32");
    o.T = T;
    o.K = K;
    o.q.resize(static_cast<size_t>(T * K));
    o.d.resize(static_cast<size_t>(T * K / 32));
    o.s16.resize(static_cast<size_t>(T * K / 16));
    const bool k256 = K % 256 == 0;
    o.qk.resize(k256 ? static_cast<size_t>(T * K) : 0);
    o.dk.resize(k256 ? static_cast<size_t>(T * K / 256) : 0);
    o.bsums.resize(k256 ? static_cast<size_t>(T * K / 16) : 0);
    if (T * K >= (int64_t{1} << 16))
        parallel_ranges(T, [&](int64_t t0, int64_t t1, int) { quantize_q8_rows_avx2(x, ldx, t0, t1, o); });
    else
        quantize_q8_rows_avx2(x, ldx, 0, T, o);
}

namespace {

// y (+)= x w^T with x given as f32 (xp) and, for block-quantized w, already quantized (xq).
void matmul_impl(const float* xp, int64_t ldx, const Q8Rows* xq, int64_t T, int64_t K, const Tensor& w, float* yp,
                 int64_t ldy, bool accumulate) {
    const int64_t N = w.dim(0);
    if (T == 0 || N == 0) return;
    const bool quantized = int8_kernels(w.dtype);
    const MatmulRowsFn fn = matmul_rows_fn();
    const QMatmulRowsFn qfn = qmatmul_rows_fn();
    // Rows split over workers in multiples of the 4-row tile; small problems stay on one thread.
    const int64_t row_tiles = (N + 3) / 4;
    auto body = [&](int64_t b, int64_t e, int) {
        const int64_t n0 = b * 4, n1 = std::min(N, e * 4);
        for (int64_t t0 = 0; t0 < T; t0 += kTokenBlock) {
            const int64_t nt = std::min(kTokenBlock, T - t0);
            for (int64_t r = n0; r < n1; r += kRowBlock) {
                const int64_t r1 = std::min(n1, r + kRowBlock);
                if (quantized)
                    qfn(*xq, t0, nt, w.data, w.dtype, r, r1, yp + t0 * ldy, ldy, accumulate);
                else
                    fn(xp + t0 * ldx, ldx, nt, K, w.data, w.dtype, r, r1, yp + t0 * ldy, ldy, accumulate);
            }
        }
    };
    if (N >= 16 && N * K * T >= (int64_t{1} << 16))
        parallel_ranges(row_tiles, body);
    else
        body(0, row_tiles, 0);
}

}  // namespace

void matmul(const Tensor& x, const Tensor& w, const Tensor& y, bool accumulate) {
    const int64_t T = x.dim(0), K = x.dim(1);
    const float* xp = static_cast<const float*>(x.data);
    Q8Rows xq;
    if (int8_kernels(w.dtype) && T > 0) quantize_q8_rows(xp, x.stride[0], T, K, xq);   // once for all rows
    matmul_impl(xp, x.stride[0], &xq, T, K, w, static_cast<float*>(y.data), y.stride[0], accumulate);
}

void ffn_swiglu(const Tensor& x, const FfnWeights& w, const Tensor& out, bool accumulate) {
    const int64_t T = x.dim(0), D = x.dim(1), F = w.gate.dim(0);
    TensorBuffer g(DType::F32, {T, F}), u(DType::F32, {T, F});
    const float* xp = static_cast<const float*>(x.data);
    Q8Rows xq;   // gate and up share the quantized x
    if ((int8_kernels(w.gate.dtype) || int8_kernels(w.up.dtype)) && T > 0) quantize_q8_rows(xp, x.stride[0], T, D, xq);
    matmul_impl(xp, x.stride[0], &xq, T, D, w.gate, g.f32(), F, false);  // [T, F]
    matmul_impl(xp, x.stride[0], &xq, T, D, w.up, u.f32(), F, false);    // [T, F]
    silu_mul_inplace(g.f32(), u.f32(), T * F);
    cpu::matmul(g, w.down, out, accumulate);  // [T, D]
}

void moe_experts(const Tensor& x, std::span<const FfnWeights> experts, const Tensor& ids, const Tensor& weights,
                 const Tensor& out, bool accumulate) {
    const int64_t T = x.dim(0), D = x.dim(1), K = ids.dim(1);
    if (!accumulate)
        for (int64_t t = 0; t < T; ++t) std::fill_n(detail::frow(out, t), D, 0.0f);
    // Token slots per expert, in token order.
    std::vector<std::vector<std::pair<int64_t, float>>> slots(experts.size());
    for (int64_t t = 0; t < T; ++t) {
        const int32_t* id = static_cast<const int32_t*>(ids.row_ptr(t));
        const float* wt = detail::frow(weights, t);
        for (int64_t j = 0; j < K; ++j) slots[static_cast<size_t>(id[j])].emplace_back(t, wt[j]);
    }
    // Experts run in parallel, one whole expert per task (handed out dynamically: token counts differ), each
    // FFN single-threaded inside its task; the weighted scatter-add then runs in expert order, as before.
    std::vector<size_t> used;
    for (size_t e = 0; e < experts.size(); ++e)
        if (!slots[e].empty()) used.push_back(e);
    std::vector<TensorBuffer> ys(experts.size());
    parallel_dynamic(static_cast<int64_t>(used.size()), [&](int64_t i, int) {
        const size_t e = used[static_cast<size_t>(i)];
        const auto& s = slots[e];
        const int64_t n = static_cast<int64_t>(s.size());
        TensorBuffer xe(DType::F32, {n, D});
        ys[e] = TensorBuffer(DType::F32, {n, D});
        for (int64_t r = 0; r < n; ++r) std::copy_n(detail::frow(x, s[static_cast<size_t>(r)].first), D, xe.f32() + r * D);
        cpu::ffn_swiglu(xe, experts[e], ys[e], false);
    });
    for (size_t e : used) {
        const auto& s = slots[e];
        for (size_t r = 0; r < s.size(); ++r) {
            float* o = detail::frow(out, s[r].first);
            const float* yr = ys[e].f32() + static_cast<int64_t>(r) * D;
            const float wgt = s[r].second;
            for (int64_t c = 0; c < D; ++c) o[c] += wgt * yr[c];
        }
    }
}

void shared_expert(const Tensor& x, const FfnWeights& w, const Tensor& gate_w, const Tensor& out, bool accumulate) {
    const int64_t T = x.dim(0), D = x.dim(1);
    TensorBuffer y(DType::F32, {T, D}), s(DType::F32, {T, 1});
    cpu::ffn_swiglu(x, w, y, false);
    cpu::matmul(x, gate_w, s, false);
    for (int64_t t = 0; t < T; ++t) {
        const float sg = 1.0f / (1.0f + std::exp(-s.f32()[t]));
        float* o = detail::frow(out, t);
        const float* yr = y.f32() + t * D;
        for (int64_t i = 0; i < D; ++i) o[i] = accumulate ? o[i] + sg * yr[i] : sg * yr[i];
    }
}

}  // namespace qnext::kern::cpu
