// kernels/cpu/ref/matmul_moe.cpp: reference dense matmul (y = x w^T, fp64 accumulation; block-quantized
// weights are dequantized row by row first), SwiGLU FFN,
// MoE routing (softmax -> top-k -> renormalise) and routed/shared experts.
// Covered by tests/kernels/test_ops.cpp (Ref.Matmul*, Ref.MoeRoute*, and the fast-vs-ref cases).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/ref/ref.h"
#include "kernels/quant.h"

namespace qnext::kern::ref {
using detail::frow;
using detail::load;

void matmul(const Tensor& x, const Tensor& w, const Tensor& y, bool accumulate) {
    const int64_t T = x.dim(0), K = x.dim(1), N = w.dim(0);
    std::vector<float> wrow(static_cast<size_t>(K));   // weight row n as f32 (dequantized for block formats)
    for (int64_t n = 0; n < N; ++n) {
        const void* wr = w.row_ptr(n);
        if (is_quantized(w.dtype))
            dequantize_row(qtype_of(w.dtype), wr, wrow.data(), K);
        else
            for (int64_t k = 0; k < K; ++k) wrow[k] = load(wr, w.dtype, k);
        for (int64_t t = 0; t < T; ++t) {
            const float* xr = frow(x, t);
            float* yr = frow(y, t);
            double acc = 0;
            for (int64_t k = 0; k < K; ++k) acc += double(xr[k]) * wrow[k];
            yr[n] = static_cast<float>(accumulate ? yr[n] + acc : acc);
        }
    }
}

void ffn_swiglu(const Tensor& x, const FfnWeights& w, const Tensor& out, bool accumulate) {
    const int64_t T = x.dim(0), F = w.gate.dim(0);
    TensorBuffer g(DType::F32, {T, F}), u(DType::F32, {T, F});
    ref::matmul(x, w.gate, g, false);
    ref::matmul(x, w.up, u, false);
    ref::binary(Binary::SiluMul, g, u, g);
    ref::matmul(g, w.down, out, accumulate);
}

void moe_route(const Tensor& logits, int64_t top_k, bool norm_topk_prob, const Tensor& ids,
               const Tensor& weights) {
    const int64_t T = logits.dim(0), E = logits.dim(1);
    std::vector<float> p(static_cast<size_t>(E));
    std::vector<int32_t> order(static_cast<size_t>(E));
    for (int64_t t = 0; t < T; ++t) {
        const float* l = frow(logits, t);
        float mx = l[0];
        for (int64_t e = 1; e < E; ++e) mx = std::fmax(mx, l[e]);
        double sum = 0;
        for (int64_t e = 0; e < E; ++e) sum += std::exp(double(l[e]) - mx);
        for (int64_t e = 0; e < E; ++e) p[e] = static_cast<float>(std::exp(double(l[e]) - mx) / sum);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
        double topsum = 0;
        for (int64_t j = 0; j < top_k; ++j) topsum += p[order[j]];
        int32_t* id = static_cast<int32_t*>(ids.row_ptr(t));
        float* wt = frow(weights, t);
        for (int64_t j = 0; j < top_k; ++j) {
            id[j] = order[j];
            wt[j] = norm_topk_prob ? static_cast<float>(p[order[j]] / topsum) : p[order[j]];
        }
    }
}

void moe_experts(const Tensor& x, std::span<const FfnWeights> experts, const Tensor& ids,
                 const Tensor& weights, const Tensor& out, bool accumulate) {
    const int64_t T = x.dim(0), D = x.dim(1), K = ids.dim(1);
    TensorBuffer y(DType::F32, {1, D});
    for (int64_t t = 0; t < T; ++t) {
        const Tensor xt = x.slice(0, t, 1);
        std::vector<double> acc(static_cast<size_t>(D), 0.0);
        const int32_t* id = static_cast<const int32_t*>(ids.row_ptr(t));
        const float* wt = frow(weights, t);
        for (int64_t j = 0; j < K; ++j) {
            ref::ffn_swiglu(xt, experts[static_cast<size_t>(id[j])], y, false);
            for (int64_t i = 0; i < D; ++i) acc[i] += double(wt[j]) * y.f32()[i];
        }
        float* o = frow(out, t);
        for (int64_t i = 0; i < D; ++i) o[i] = static_cast<float>(accumulate ? o[i] + acc[i] : acc[i]);
    }
}

void shared_expert(const Tensor& x, const FfnWeights& w, const Tensor& gate_w, const Tensor& out,
                   bool accumulate) {
    const int64_t T = x.dim(0), D = x.dim(1);
    TensorBuffer y(DType::F32, {T, D}), s(DType::F32, {T, 1});
    ref::ffn_swiglu(x, w, y, false);
    ref::matmul(x, gate_w, s, false);
    for (int64_t t = 0; t < T; ++t) {
        const float sg = detail::sigmoid_f(s.f32()[t]);
        float* o = frow(out, t);
        const float* yr = y.f32() + t * D;
        for (int64_t i = 0; i < D; ++i) o[i] = accumulate ? o[i] + sg * yr[i] : sg * yr[i];
    }
}

}  // namespace qnext::kern::ref
