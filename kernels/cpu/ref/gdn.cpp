// kernels/cpu/ref/gdn.cpp: reference causal depthwise conv1d with rolling state, GDN gates, and the
// gated delta rule in both forms: token-by-token recurrent and chunked (HF torch_chunk_gated_delta_rule
// transcribed: cumulative decay, UT transform by forward substitution, inter/intra-chunk terms).
// The state is carried in fp64 inside a call and stored back as fp32.
// Covered by tests/kernels/test_ops.cpp (Ref.Gdn* hand cases, Ref.GdnChunkedEqualsRecurrent*).
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/ref/ref.h"

namespace qnext::kern::ref {
using detail::frow;
using detail::load;

void conv1d_causal(const Tensor& x, const Tensor& w, const Tensor& state, const Tensor& out, bool apply_silu) {
    const int64_t T = x.dim(0), C = x.dim(1), K = w.dim(1), H = K - 1;
    // x_ext row r: state row r for r < H, else x row r - H
    auto xe = [&](int64_t r, int64_t c) -> float { return r < H ? frow(state, r)[c] : frow(x, r - H)[c]; };
    for (int64_t t = 0; t < T; ++t) {
        float* o = frow(out, t);
        for (int64_t c = 0; c < C; ++c) {
            const void* wr = w.row_ptr(c);
            double acc = 0;
            for (int64_t j = 0; j < K; ++j) acc += double(load(wr, w.dtype, j)) * xe(t + j, c);
            const float a = static_cast<float>(acc);
            o[c] = apply_silu ? detail::silu_f(a) : a;
        }
    }
    std::vector<float> ns(static_cast<size_t>(H * C));
    for (int64_t i = 0; i < H; ++i)
        for (int64_t c = 0; c < C; ++c) ns[i * C + c] = xe(T + i, c);
    for (int64_t i = 0; i < H; ++i)
        for (int64_t c = 0; c < C; ++c) frow(state, i)[c] = ns[i * C + c];
}

void gdn_gates(const Tensor& a, const Tensor& b, const Tensor& A, const Tensor& dt_bias,
               const Tensor& g, const Tensor& beta) {
    const int64_t T = a.dim(0), Hv = a.dim(1);
    for (int64_t t = 0; t < T; ++t) {
        const float* pa = frow(a, t);
        const float* pb = frow(b, t);
        float* pg = frow(g, t);
        float* pbeta = frow(beta, t);
        for (int64_t h = 0; h < Hv; ++h) {
            pg[h] = load(A.data, A.dtype, h) * detail::softplus_f(pa[h] + load(dt_bias.data, dt_bias.dtype, h));
            pbeta[h] = detail::sigmoid_f(pb[h]);
        }
    }
}

namespace {
struct GdnDims {
    int64_t T, Hk, Dk, Hv, Dv, ratio;
};
GdnDims dims(const Tensor& q, const Tensor& v) {
    return {q.dim(0), q.dim(1), q.dim(2), v.dim(1), v.dim(2), v.dim(1) / q.dim(1)};
}
using Mat = std::vector<double>;  // row-major
}  // namespace

void gdn_recurrent(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                   const Tensor& beta, const Tensor& state, const Tensor& out, float scale) {
    const GdnDims d = dims(q, v);
    for (int64_t h = 0; h < d.Hv; ++h) {
        const int64_t hk = h / d.ratio;
        float* Sf = static_cast<float*>(state.data) + h * state.stride[0];
        Mat S(Sf, Sf + d.Dk * d.Dv);  // [Dk, Dv]
        std::vector<double> kv(static_cast<size_t>(d.Dv));
        for (int64_t t = 0; t < d.T; ++t) {
            const float* qt = detail::at3(q, t, hk);
            const float* kt = detail::at3(k, t, hk);
            const float* vt = detail::at3(v, t, h);
            const double decay = std::exp(double(frow(g, t)[h]));
            const double b = frow(beta, t)[h];
            for (double& s : S) s *= decay;                       // 1) decay
            for (int64_t j = 0; j < d.Dv; ++j) {                  // kv = S^T k
                double acc = 0;
                for (int64_t i = 0; i < d.Dk; ++i) acc += S[i * d.Dv + j] * kt[i];
                kv[j] = b * (vt[j] - acc);                        // 2) delta
            }
            for (int64_t i = 0; i < d.Dk; ++i)                    //    S += k (x) delta
                for (int64_t j = 0; j < d.Dv; ++j) S[i * d.Dv + j] += kt[i] * kv[j];
            float* ot = detail::at3(out, t, h);
            for (int64_t j = 0; j < d.Dv; ++j) {                  // 3) o = S^T (scale q)
                double acc = 0;
                for (int64_t i = 0; i < d.Dk; ++i) acc += S[i * d.Dv + j] * (double(qt[i]) * scale);
                ot[j] = static_cast<float>(acc);
            }
        }
        for (int64_t i = 0; i < d.Dk * d.Dv; ++i) Sf[i] = static_cast<float>(S[i]);
    }
}

void gdn_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                 const Tensor& beta, const Tensor& state, const Tensor& out, float scale, int64_t C) {
    const GdnDims d = dims(q, v);
    const int64_t Dk = d.Dk, Dv = d.Dv;
    for (int64_t h = 0; h < d.Hv; ++h) {
        const int64_t hk = h / d.ratio;
        float* Sf = static_cast<float*>(state.data) + h * state.stride[0];
        Mat S(Sf, Sf + Dk * Dv);
        for (int64_t t0 = 0; t0 < d.T; t0 += C) {
            const int64_t n = std::min(C, d.T - t0);  // rows >= n are padding: q=k=v=0, beta=0, g=0
            Mat Q(C * Dk, 0.0), K(C * Dk, 0.0), V(C * Dv, 0.0);
            std::vector<double> B(C, 0.0), G(C, 0.0);
            for (int64_t i = 0; i < n; ++i) {
                const float* qt = detail::at3(q, t0 + i, hk);
                const float* kt = detail::at3(k, t0 + i, hk);
                const float* vt = detail::at3(v, t0 + i, h);
                for (int64_t c = 0; c < Dk; ++c) Q[i * Dk + c] = double(qt[c]) * scale;
                for (int64_t c = 0; c < Dk; ++c) K[i * Dk + c] = kt[c];
                for (int64_t c = 0; c < Dv; ++c) V[i * Dv + c] = vt[c];
                B[i] = frow(beta, t0 + i)[h];
                G[i] = frow(g, t0 + i)[h];
            }
            for (int64_t i = 1; i < C; ++i) G[i] += G[i - 1];  // cumulative log-decay
            auto dot = [](const double* a, const double* b, int64_t len) {
                double s = 0;
                for (int64_t c = 0; c < len; ++c) s += a[c] * b[c];
                return s;
            };
            // A = -strictly_lower(diag(beta) K K^T * Gamma), then forward substitution, + I
            Mat A(C * C, 0.0);
            for (int64_t i = 0; i < C; ++i)
                for (int64_t j = 0; j < i; ++j)
                    A[i * C + j] = -B[i] * dot(&K[i * Dk], &K[j * Dk], Dk) * std::exp(G[i] - G[j]);
            for (int64_t i = 1; i < C; ++i) {
                std::vector<double> row(&A[i * C], &A[i * C] + i);
                for (int64_t j = 0; j < i; ++j) {
                    double s = row[j];
                    for (int64_t m = 0; m < i; ++m) s += row[m] * A[m * C + j];
                    A[i * C + j] = s;
                }
            }
            for (int64_t i = 0; i < C; ++i) A[i * C + i] += 1.0;
            // U = Tm diag(beta) V ;  W = Tm diag(beta exp(G)) K ;  V' = U - W S
            Mat Vp(C * Dv, 0.0), W(C * Dk, 0.0);
            for (int64_t i = 0; i < C; ++i)
                for (int64_t j = 0; j <= i; ++j) {
                    const double a = A[i * C + j];
                    for (int64_t c = 0; c < Dv; ++c) Vp[i * Dv + c] += a * B[j] * V[j * Dv + c];
                    for (int64_t c = 0; c < Dk; ++c) W[i * Dk + c] += a * B[j] * std::exp(G[j]) * K[j * Dk + c];
                }
            for (int64_t i = 0; i < C; ++i)
                for (int64_t c = 0; c < Dk; ++c)
                    for (int64_t e = 0; e < Dv; ++e) Vp[i * Dv + e] -= W[i * Dk + c] * S[c * Dv + e];
            // O = diag(exp G) Q S + ((Q K^T) * Gamma, causal incl. diagonal) V'
            for (int64_t i = 0; i < n; ++i) {
                std::vector<double> o(static_cast<size_t>(Dv), 0.0);
                for (int64_t c = 0; c < Dk; ++c)
                    for (int64_t e = 0; e < Dv; ++e) o[e] += std::exp(G[i]) * Q[i * Dk + c] * S[c * Dv + e];
                for (int64_t j = 0; j <= i; ++j) {
                    const double a = dot(&Q[i * Dk], &K[j * Dk], Dk) * std::exp(G[i] - G[j]);
                    for (int64_t e = 0; e < Dv; ++e) o[e] += a * Vp[j * Dv + e];
                }
                float* ot = detail::at3(out, t0 + i, h);
                for (int64_t e = 0; e < Dv; ++e) ot[e] = static_cast<float>(o[e]);
            }
            // S = exp(G_last) S + sum_i K_i exp(G_last - G_i) (x) V'_i
            const double gl = G[C - 1];
            for (double& s : S) s *= std::exp(gl);
            for (int64_t i = 0; i < C; ++i) {
                const double f = std::exp(gl - G[i]);
                for (int64_t c = 0; c < Dk; ++c)
                    for (int64_t e = 0; e < Dv; ++e) S[c * Dv + e] += K[i * Dk + c] * f * Vp[i * Dv + e];
            }
        }
        for (int64_t i = 0; i < Dk * Dv; ++i) Sf[i] = static_cast<float>(S[i]);
    }
}

}  // namespace qnext::kern::ref
