// kernels/cpu/gdn.cpp: fast gated delta rule. Recurrent form: two fused passes over each head's
// [Dk, Dv] state per token (decay + S^T k, then rank-1 update + S^T q). Chunked form: per head and
// 64-token chunk, the WY/UT transform of cpu/ref/gdn.cpp in fp32 with row-axpy loops that vectorise.
// Heads run in parallel (OpenMP); hot loops are compiled for AVX2+FMA (called only when present).
// Compared against cpu/ref by tests/kernels/test_ops.cpp (Gdn.*).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

#define QNEXT_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace qnext::kern::cpu {
namespace {

struct Dims {
    int64_t T, Hk, Dk, Hv, Dv, ratio;
};

// One value head, all T tokens, token by token. S [Dk, Dv] row-major.
QNEXT_AVX2 void recurrent_head(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                               const Tensor& beta, float* S, const Tensor& out, float scale, const Dims& d,
                               int64_t h, float* kv) {
    const int64_t hk = h / d.ratio, Dk = d.Dk, Dv = d.Dv;
    for (int64_t t = 0; t < d.T; ++t) {
        const float* qt = detail::at3(q, t, hk);
        const float* kt = detail::at3(k, t, hk);
        const float* vt = detail::at3(v, t, h);
        const float decay = std::exp(detail::frow(g, t)[h]);
        const float b = detail::frow(beta, t)[h];
        std::fill_n(kv, Dv, 0.0f);
        for (int64_t i = 0; i < Dk; ++i) {  // S *= decay; kv += k_i S_i
            float* Si = S + i * Dv;
            const float ki = kt[i];
#pragma omp simd
            for (int64_t j = 0; j < Dv; ++j) {
                Si[j] *= decay;
                kv[j] += ki * Si[j];
            }
        }
#pragma omp simd
        for (int64_t j = 0; j < Dv; ++j) kv[j] = b * (vt[j] - kv[j]);  // delta
        float* ot = detail::at3(out, t, h);
        std::fill_n(ot, Dv, 0.0f);
        for (int64_t i = 0; i < Dk; ++i) {  // S_i += k_i delta; o += (scale q_i) S_i
            float* Si = S + i * Dv;
            const float ki = kt[i], qi = qt[i] * scale;
#pragma omp simd
            for (int64_t j = 0; j < Dv; ++j) {
                Si[j] += ki * kv[j];
                ot[j] += qi * Si[j];
            }
        }
    }
}

QNEXT_AVX2 inline void axpy(float* y, float a, const float* x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
QNEXT_AVX2 inline float dot(const float* a, const float* b, int64_t n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

struct ChunkScratch {
    std::vector<float> Q, K, V, B, G, A, row, Vp, W, Kd;
    ChunkScratch(int64_t C, int64_t Dk, int64_t Dv)
        : Q(C * Dk), K(C * Dk), V(C * Dv), B(C), G(C), A(C * C), row(C), Vp(C * Dv), W(C * Dk), Kd(C * Dk) {}
};

// One value head, all chunks. S [Dk, Dv] row-major, fp32.
QNEXT_AVX2 void chunked_head(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                             const Tensor& beta, float* S, const Tensor& out, float scale, const Dims& d,
                             int64_t h, int64_t C, ChunkScratch& s) {
    const int64_t hk = h / d.ratio, Dk = d.Dk, Dv = d.Dv;
    for (int64_t t0 = 0; t0 < d.T; t0 += C) {
        const int64_t n = std::min(C, d.T - t0);  // rows >= n: padding (zeros, beta = g = 0)
        std::fill(s.Q.begin(), s.Q.end(), 0.0f);
        std::fill(s.K.begin(), s.K.end(), 0.0f);
        std::fill(s.V.begin(), s.V.end(), 0.0f);
        std::fill(s.B.begin(), s.B.end(), 0.0f);
        std::fill(s.G.begin(), s.G.end(), 0.0f);
        for (int64_t i = 0; i < n; ++i) {
            const float* qt = detail::at3(q, t0 + i, hk);
            for (int64_t c = 0; c < Dk; ++c) s.Q[i * Dk + c] = qt[c] * scale;
            std::copy_n(detail::at3(k, t0 + i, hk), Dk, &s.K[i * Dk]);
            std::copy_n(detail::at3(v, t0 + i, h), Dv, &s.V[i * Dv]);
            s.B[i] = detail::frow(beta, t0 + i)[h];
            s.G[i] = detail::frow(g, t0 + i)[h];
        }
        for (int64_t i = 1; i < C; ++i) s.G[i] += s.G[i - 1];
        // A = -strictly_lower(diag(B) K K^T * Gamma); forward substitution; Tm = A + I
        std::fill(s.A.begin(), s.A.end(), 0.0f);
        for (int64_t i = 1; i < n; ++i)
            for (int64_t j = 0; j < i; ++j)
                s.A[i * C + j] = -s.B[i] * dot(&s.K[i * Dk], &s.K[j * Dk], Dk) * std::exp(s.G[i] - s.G[j]);
        for (int64_t i = 2; i < n; ++i) {
            std::copy_n(&s.A[i * C], i, s.row.data());
            for (int64_t m = 1; m < i; ++m) axpy(&s.A[i * C], s.row[m], &s.A[m * C], m);
        }
        for (int64_t i = 0; i < C; ++i) s.A[i * C + i] = 1.0f;
        // V' = Tm diag(B) V - Tm diag(B exp G) K S
        std::fill(s.Vp.begin(), s.Vp.end(), 0.0f);
        std::fill(s.W.begin(), s.W.end(), 0.0f);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j <= i; ++j) {
                const float a = s.A[i * C + j] * s.B[j];
                axpy(&s.Vp[i * Dv], a, &s.V[j * Dv], Dv);
                axpy(&s.W[i * Dk], a * std::exp(s.G[j]), &s.K[j * Dk], Dk);
            }
        for (int64_t i = 0; i < n; ++i)
            for (int64_t c = 0; c < Dk; ++c) axpy(&s.Vp[i * Dv], -s.W[i * Dk + c], S + c * Dv, Dv);
        // O = diag(exp G) Q S + ((Q K^T) * Gamma, incl. diagonal) V'
        for (int64_t i = 0; i < n; ++i) {
            float* ot = detail::at3(out, t0 + i, h);
            std::fill_n(ot, Dv, 0.0f);
            for (int64_t c = 0; c < Dk; ++c) axpy(ot, s.Q[i * Dk + c], S + c * Dv, Dv);
            const float eg = std::exp(s.G[i]);
#pragma omp simd
            for (int64_t e = 0; e < Dv; ++e) ot[e] *= eg;
            for (int64_t j = 0; j <= i; ++j)
                axpy(ot, dot(&s.Q[i * Dk], &s.K[j * Dk], Dk) * std::exp(s.G[i] - s.G[j]), &s.Vp[j * Dv], Dv);
        }
        // S = exp(G_last) S + sum_i (K_i exp(G_last - G_i)) (x) V'_i
        const float gl = s.G[C - 1], egl = std::exp(gl);
        for (int64_t i = 0; i < n; ++i) {
            const float f = std::exp(gl - s.G[i]);
            for (int64_t c = 0; c < Dk; ++c) s.Kd[c * C + i] = s.K[i * Dk + c] * f;  // transposed [Dk, C]
        }
        for (int64_t c = 0; c < Dk; ++c) {
            float* Sc = S + c * Dv;
#pragma omp simd
            for (int64_t e = 0; e < Dv; ++e) Sc[e] *= egl;
            for (int64_t i = 0; i < n; ++i) axpy(Sc, s.Kd[c * C + i], &s.Vp[i * Dv], Dv);
        }
    }
}

Dims dims(const Tensor& q, const Tensor& v) { return {q.dim(0), q.dim(1), q.dim(2), v.dim(1), v.dim(2), v.dim(1) / q.dim(1)}; }

}  // namespace

void gdn_recurrent(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                   const Tensor& state, const Tensor& out, float scale) {
    const Dims d = dims(q, v);
    float* S0 = static_cast<float*>(state.data);
    const bool parallel = d.Hv > 1 && d.T * d.Dk * d.Dv * d.Hv >= (int64_t{1} << 15);
#pragma omp parallel if (parallel)
    {
        std::vector<float> kv(static_cast<size_t>(d.Dv));
#pragma omp for schedule(static)
        for (int64_t h = 0; h < d.Hv; ++h)
            recurrent_head(q, k, v, g, beta, S0 + h * d.Dk * d.Dv, out, scale, d, h, kv.data());
    }
}

void gdn_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                 const Tensor& state, const Tensor& out, float scale, int64_t chunk) {
    const Dims d = dims(q, v);
    float* S0 = static_cast<float*>(state.data);
#pragma omp parallel if (d.Hv > 1)
    {
        ChunkScratch s(chunk, d.Dk, d.Dv);
#pragma omp for schedule(static)
        for (int64_t h = 0; h < d.Hv; ++h)
            chunked_head(q, k, v, g, beta, S0 + h * d.Dk * d.Dv, out, scale, d, h, chunk, s);
    }
}

}  // namespace qnext::kern::cpu
