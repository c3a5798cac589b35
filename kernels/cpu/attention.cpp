// kernels/cpu/attention.cpp: fast causal GQA attention over an f32 or bf16 KV cache with the sigmoid
// output gate. (token, head) pairs run in parallel (OpenMP); per pair: scores q.k (vectorised dot),
// fp32 softmax, weighted sum of V rows (vectorised axpy). Compiled for AVX2+FMA via target attributes
// (called only when present). Compared against cpu/ref by tests/kernels/test_ops.cpp (Attention.*).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

#define QNEXT_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace qnext::kern::cpu {
namespace {

// Row of a KV cache as f32: direct pointer for f32, else converted into `tmp`.
QNEXT_AVX2 inline const float* kv_row(const Tensor& c, int64_t s, int64_t h, int64_t D, float* tmp) {
    const int64_t off = s * c.stride[0] + h * c.stride[1];
    if (c.dtype == DType::F32) return static_cast<const float*>(c.data) + off;
    const uint16_t* src = static_cast<const uint16_t*>(c.data) + off;
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) {
        const uint32_t u = static_cast<uint32_t>(src[i]) << 16;
        float f;
        __builtin_memcpy(&f, &u, 4);
        tmp[i] = f;
    }
    return tmp;
}

QNEXT_AVX2 void one(const Tensor& q, const Tensor& kc, const Tensor& vc, int64_t n_past, float scale,
                    const Tensor& gate, const Tensor& out, int64_t t, int64_t h, int64_t group,
                    std::vector<float>& p, std::vector<float>& tmp, std::vector<float>& acc) {
    const int64_t D = q.dim(2), hkv = h / group, n_keys = n_past + t + 1;
    if (static_cast<int64_t>(p.size()) < n_keys) p.resize(static_cast<size_t>(n_keys));
    const float* qh = detail::at3(q, t, h);
    float mx = -INFINITY;
    for (int64_t s = 0; s < n_keys; ++s) {
        const float* kr = kv_row(kc, s, hkv, D, tmp.data());
        float d = 0.0f;
#pragma omp simd reduction(+ : d)
        for (int64_t i = 0; i < D; ++i) d += qh[i] * kr[i];
        p[s] = d * scale;
        mx = std::fmax(mx, p[s]);
    }
    float sum = 0.0f;
    for (int64_t s = 0; s < n_keys; ++s) sum += (p[s] = std::exp(p[s] - mx));
    const float inv = 1.0f / sum;
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t s = 0; s < n_keys; ++s) {
        const float* vr = kv_row(vc, s, hkv, D, tmp.data());
        const float w = p[s] * inv;
#pragma omp simd
        for (int64_t i = 0; i < D; ++i) acc[i] += w * vr[i];
    }
    float* oh = detail::at3(out, t, h);
    if (gate.empty()) {
        std::copy_n(acc.data(), D, oh);
    } else {
        const float* gh = detail::at3(gate, t, h);
        for (int64_t i = 0; i < D; ++i) oh[i] = acc[i] / (1.0f + std::exp(-gh[i]));
    }
}

}  // namespace

void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, float scale,
               const Tensor& gate, const Tensor& out) {
    const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), group = Hq / k_cache.dim(1);
    const int64_t pairs = T * Hq;
    const bool parallel = pairs > 1 && (n_past + T) * D * pairs >= (int64_t{1} << 14);
#pragma omp parallel if (parallel)
    {
        std::vector<float> p(static_cast<size_t>(n_past + T)), tmp(static_cast<size_t>(D)), acc(static_cast<size_t>(D));
#pragma omp for schedule(dynamic, 4)
        for (int64_t i = 0; i < pairs; ++i)
            one(q, k_cache, v_cache, n_past, scale, gate, out, i / Hq, i % Hq, group, p, tmp, acc);
    }
}

}  // namespace qnext::kern::cpu
