// kernels/cpu/gdn.cpp: fast gated delta rule. Recurrent form: two fused passes over each head's
// [Dk, Dv] state per token (decay + S^T k, then rank-1 update + S^T q). Chunked form: per head and
// 64-token chunk, the WY/UT transform of cpu/ref/gdn.cpp in fp32, its products run on the GEMM
// microkernel (state kept transposed so every product is y = x w^T).
// Heads run in parallel (thread pool); hot loops are compiled for AVX2+FMA (called only when present).
// Compared against cpu/ref by tests/kernels/test_ops.cpp (gdn_* cases, GdnChunkedEqualsRecurrent).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/thread_pool.h"

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

// Per-thread scratch for one chunk. "T" suffix = transposed ([cols][rows]) so that every product
// below is y = x w^T for the row-major GEMM microkernel (w rows contiguous).
struct ChunkScratch {
    int64_t C, Dk, Dv;
    std::vector<float> Q, K, V, B, G, KK, QK, A, row, VbT, KbT, U, W, WS, VpT, KdT, O, St;
    ChunkScratch(int64_t c, int64_t dk, int64_t dv)
        : C(c), Dk(dk), Dv(dv), Q(c * dk), K(c * dk), V(c * dv), B(c), G(c), KK(c * c), QK(c * c), A(c * c), row(c),
          VbT(dv * c), KbT(dk * c), U(c * dv), W(c * dk), WS(c * dv), VpT(dv * c), KdT(dk * c), O(c * dv), St(dv * dk) {}
};

// One value head, all chunks; S [Dk, Dv] row-major fp32, kept transposed (St [Dv, Dk]) inside.
// Same math as ref::gdn_chunked: A = -strictly_lower(diag(B) K K^T * Gamma), Tm = (I - ...)^-1 by
// forward substitution, U = Tm diag(B) V, W = Tm diag(B e^G) K, V' = U - W S,
// O = diag(e^G) Q S + (Q K^T * Gamma) V', S = e^{G_last} S + (K * e^{G_last - G})^T V'.
QNEXT_AVX2 void chunked_head(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                             const Tensor& beta, float* S, const Tensor& out, float scale, const Dims& d,
                             int64_t h, ChunkScratch& s, MatmulRowsFn mm) {
    const int64_t hk = h / d.ratio, Dk = d.Dk, Dv = d.Dv, C = s.C;
    for (int64_t c = 0; c < Dk; ++c)
        for (int64_t e = 0; e < Dv; ++e) s.St[e * Dk + c] = S[c * Dv + e];
    for (int64_t t0 = 0; t0 < d.T; t0 += C) {
        const int64_t n = std::min(C, d.T - t0);  // valid rows; padding rows would contribute nothing
        for (int64_t i = 0; i < n; ++i) {
            const float* qt = detail::at3(q, t0 + i, hk);
            for (int64_t c = 0; c < Dk; ++c) s.Q[i * Dk + c] = qt[c] * scale;
            std::copy_n(detail::at3(k, t0 + i, hk), Dk, &s.K[i * Dk]);
            std::copy_n(detail::at3(v, t0 + i, h), Dv, &s.V[i * Dv]);
            s.B[i] = detail::frow(beta, t0 + i)[h];
            s.G[i] = detail::frow(g, t0 + i)[h] + (i ? s.G[i - 1] : 0.0f);  // cumulative log-decay
        }
        // KK = K K^T, QK = Q K^T  [n, n] (row stride C)
        mm(s.K.data(), Dk, n, Dk, s.K.data(), DType::F32, 0, n, s.KK.data(), C, false);
        mm(s.Q.data(), Dk, n, Dk, s.K.data(), DType::F32, 0, n, s.QK.data(), C, false);
        // A (strictly lower) then forward substitution in place; Tm = A + I
        for (int64_t i = 0; i < n; ++i) {
            float* Ai = &s.A[i * C];
            for (int64_t j = 0; j < i; ++j) Ai[j] = -s.B[i] * s.KK[i * C + j] * std::exp(s.G[i] - s.G[j]);
            for (int64_t j = i; j < n; ++j) Ai[j] = 0.0f;
        }
        for (int64_t i = 2; i < n; ++i) {
            std::copy_n(&s.A[i * C], i, s.row.data());
            for (int64_t m = 1; m < i; ++m) axpy(&s.A[i * C], s.row[m], &s.A[m * C], m);
        }
        for (int64_t i = 0; i < n; ++i) s.A[i * C + i] = 1.0f;
        // (diag(B) V)^T [Dv, n] and (diag(B e^G) K)^T [Dk, n]
        for (int64_t i = 0; i < n; ++i) {
            const float bv = s.B[i], bk = s.B[i] * std::exp(s.G[i]);
            for (int64_t e = 0; e < Dv; ++e) s.VbT[e * n + i] = bv * s.V[i * Dv + e];
            for (int64_t c = 0; c < Dk; ++c) s.KbT[c * n + i] = bk * s.K[i * Dk + c];
        }
        mm(s.A.data(), C, n, n, s.VbT.data(), DType::F32, 0, Dv, s.U.data(), Dv, false);  // U [n, Dv]
        mm(s.A.data(), C, n, n, s.KbT.data(), DType::F32, 0, Dk, s.W.data(), Dk, false);  // W [n, Dk]
        mm(s.W.data(), Dk, n, Dk, s.St.data(), DType::F32, 0, Dv, s.WS.data(), Dv, false); // W S [n, Dv]
        for (int64_t i = 0; i < n; ++i)  // V' = U - W S, stored transposed [Dv, n]
            for (int64_t e = 0; e < Dv; ++e) s.VpT[e * n + i] = s.U[i * Dv + e] - s.WS[i * Dv + e];
        // O = diag(e^G) Q S + P V', P = (Q K^T) * Gamma (causal incl. diagonal)
        mm(s.Q.data(), Dk, n, Dk, s.St.data(), DType::F32, 0, Dv, s.O.data(), Dv, false);
        for (int64_t i = 0; i < n; ++i) {
            const float eg = std::exp(s.G[i]);
#pragma omp simd
            for (int64_t e = 0; e < Dv; ++e) s.O[i * Dv + e] *= eg;
            float* Pi = &s.QK[i * C];
            for (int64_t j = 0; j <= i; ++j) Pi[j] *= std::exp(s.G[i] - s.G[j]);
            for (int64_t j = i + 1; j < n; ++j) Pi[j] = 0.0f;
        }
        mm(s.QK.data(), C, n, n, s.VpT.data(), DType::F32, 0, Dv, s.O.data(), Dv, true);
        for (int64_t i = 0; i < n; ++i) std::copy_n(&s.O[i * Dv], Dv, detail::at3(out, t0 + i, h));
        // St = e^{G_last} St + V'^T Kd, Kd = K * e^{G_last - G} stored transposed [Dk, n]
        const float gl = s.G[n - 1], egl = std::exp(gl);
        for (int64_t i = 0; i < n; ++i) {
            const float f = std::exp(gl - s.G[i]);
            for (int64_t c = 0; c < Dk; ++c) s.KdT[c * n + i] = s.K[i * Dk + c] * f;
        }
#pragma omp simd
        for (int64_t i = 0; i < Dv * Dk; ++i) s.St[i] *= egl;
        mm(s.VpT.data(), n, Dv, n, s.KdT.data(), DType::F32, 0, Dk, s.St.data(), Dk, true);
    }
    for (int64_t c = 0; c < Dk; ++c)
        for (int64_t e = 0; e < Dv; ++e) S[c * Dv + e] = s.St[e * Dk + c];
}

Dims dims(const Tensor& q, const Tensor& v) { return {q.dim(0), q.dim(1), q.dim(2), v.dim(1), v.dim(2), v.dim(1) / q.dim(1)}; }

}  // namespace

void gdn_recurrent(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                   const Tensor& state, const Tensor& out, float scale) {
    const Dims d = dims(q, v);
    float* S0 = static_cast<float*>(state.data);
    auto body = [&](int64_t h0, int64_t h1, int) {
        std::vector<float> kv(static_cast<size_t>(d.Dv));
        for (int64_t h = h0; h < h1; ++h)
            recurrent_head(q, k, v, g, beta, S0 + h * d.Dk * d.Dv, out, scale, d, h, kv.data());
    };
    if (d.T * d.Dk * d.Dv * d.Hv >= (int64_t{1} << 15))
        parallel_ranges(d.Hv, body);
    else
        body(0, d.Hv, 0);
}

// Causal depthwise conv: each channel's K weights read once into f32, then every token's output from the
// [state | x] window (f32 accumulation; the reference accumulates in f64). The state rows are updated after
// all outputs are written, from the same window.
void conv1d_causal(const Tensor& x, const Tensor& w, const Tensor& state, const Tensor& out, bool apply_silu) {
    const int64_t T = x.dim(0), C = x.dim(1), K = w.dim(1), H = K - 1;
    const float* xp = static_cast<const float*>(x.data);
    float* sp = static_cast<float*>(state.data);
    float* op = static_cast<float*>(out.data);
    const int64_t lx = x.stride[0], ls = state.stride[0], lo = out.stride[0];
    const char* wp = static_cast<const char*>(w.data);
    const size_t w_row = dtype_bytes(w.dtype, K);
    // One block of channels [c0, c1): weights transposed to [K][block] so that every token's outputs are a
    // contiguous run over the channels (rows of x and out are read and written in order).
    auto body = [&](int64_t c0, int64_t c1, int) {
        const int64_t nc = c1 - c0;
        std::vector<float> wt(static_cast<size_t>(K * nc)), acc(static_cast<size_t>(nc)), ns(static_cast<size_t>(H * nc));
        for (int64_t c = c0; c < c1; ++c)
            for (int64_t j = 0; j < K; ++j)
                wt[static_cast<size_t>(j * nc + c - c0)] = detail::load(wp + static_cast<size_t>(c) * w_row, w.dtype, j);
        // window row r of the block: state row r (r < H), else x row r - H
        auto row = [&](int64_t r) { return r < H ? sp + r * ls + c0 : xp + (r - H) * lx + c0; };
        for (int64_t t = 0; t < T; ++t) {
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t j = 0; j < K; ++j) {
                const float* in = row(t + j);
                const float* wj = wt.data() + j * nc;
                for (int64_t c = 0; c < nc; ++c) acc[static_cast<size_t>(c)] += wj[c] * in[c];
            }
            float* o = op + t * lo + c0;
            for (int64_t c = 0; c < nc; ++c) o[c] = apply_silu ? detail::silu_f(acc[static_cast<size_t>(c)]) : acc[static_cast<size_t>(c)];
        }
        // New state: the last H window rows (copied first: they may be the old state rows themselves).
        for (int64_t i = 0; i < H; ++i) std::copy_n(row(T + i), nc, ns.data() + i * nc);
        for (int64_t i = 0; i < H; ++i) std::copy_n(ns.data() + i * nc, nc, sp + i * ls + c0);
    };
    // Channels in blocks of 64 over the workers (one token of the 80B: 8192 channels x 4 taps).
    const int64_t blocks = (C + 63) / 64;
    auto blocked = [&](int64_t b0, int64_t b1, int wk) { body(b0 * 64, std::min(C, b1 * 64), wk); };
    if (T * C * K >= (int64_t{1} << 16))
        parallel_ranges(blocks, blocked);
    else
        blocked(0, blocks, 0);
}

void gdn_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                 const Tensor& state, const Tensor& out, float scale, int64_t chunk) {
    const Dims d = dims(q, v);
    float* S0 = static_cast<float*>(state.data);
    const MatmulRowsFn mm = matmul_rows_fn();
    parallel_ranges(d.Hv, [&](int64_t h0, int64_t h1, int) {
        ChunkScratch s(chunk, d.Dk, d.Dv);
        for (int64_t h = h0; h < h1; ++h) chunked_head(q, k, v, g, beta, S0 + h * d.Dk * d.Dv, out, scale, d, h, s, mm);
    });
}

}  // namespace qnext::kern::cpu
