// kernels/cpu/attention.cpp: fast causal GQA attention over an f32 or bf16 KV cache with the sigmoid
// output gate. Decode (one token): (token, kv-head) tasks; each serves up to 8 query heads of the group at
// once (group()), so every K/V row is read once per 8 heads: scores of all 8 heads per loaded K vector, a
// softmax vectorised across the heads, V rows accumulated 4 keys at a time. Prefill: (query block, kv-head)
// tasks with an online softmax over key blocks and register-tiled Q·Kᵀ and P·V (block()). Compiled for
// AVX2+FMA via target attributes (called only when present). Compared against cpu/ref by
// tests/kernels/test_ops.cpp (Attention.*).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/thread_pool.h"

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

// e^x for 8 lanes (Cephes-style: 2^n * e^r with r = x - n ln2 in [-ln2/2, ln2/2], degree-6 polynomial; within
// 2 ulp (rel 1.2e-7, checked against exp over [-87, 0]); below -87 it flushes to 0, as the softmax weights of
// far-below-max scores may).
QNEXT_AVX2 inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

// [sum(a[0]), ..., sum(a[7])]: the eight horizontal sums in one vector.
QNEXT_AVX2 inline __m256 sum8(const __m256 a[8]) {
    const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// Decode: query heads [j0, j0 + nh) (nh <= 8) of one kv group for one token, vectorised across the heads (any
// head dim: 8 lanes, then a scalar tail). Scores p[s][8]: per key row, 8 accumulators (one per head, zero-padded
// q rows) share each loaded K vector and are reduced together (sum8); the softmax runs on 8 heads per vector
// (exp8); V rows are accumulated 4 keys at a time (one load/store of the accumulator per 4 FMAs), normalised at
// the end.
QNEXT_AVX2 void group(const Tensor& q, const Tensor& kc, const Tensor& vc, int64_t n_past, float scale,
                      const Tensor& gate, const Tensor& out, int64_t t, int64_t hkv, int64_t G, int64_t j0,
                      int64_t nh, std::vector<float>& p, std::vector<float>& tmp, std::vector<float>& acc,
                      std::vector<float>& qs) {
    const int64_t D = q.dim(2), D8 = D / 8 * 8, n_keys = n_past + t + 1;
    if (static_cast<int64_t>(p.size()) < 8 * n_keys) p.resize(static_cast<size_t>(8 * n_keys));
    if (static_cast<int64_t>(tmp.size()) < 4 * D) tmp.resize(static_cast<size_t>(4 * D));
    qs.assign(static_cast<size_t>(8 * D), 0.0f);
    acc.assign(static_cast<size_t>(8 * D), 0.0f);
    for (int64_t j = 0; j < nh; ++j) std::copy_n(detail::at3(q, t, hkv * G + j0 + j), D, &qs[static_cast<size_t>(j * D)]);
    const __m256 sv = _mm256_set1_ps(scale);
    for (int64_t s = 0; s < n_keys; ++s) {  // scores [s][head]
        const float* kr = kv_row(kc, s, hkv, D, tmp.data());
        __m256 a[8];
        for (__m256& x : a) x = _mm256_setzero_ps();
        for (int64_t i = 0; i < D8; i += 8) {
            const __m256 k = _mm256_loadu_ps(kr + i);
            for (int j = 0; j < 8; ++j) a[j] = _mm256_fmadd_ps(_mm256_loadu_ps(&qs[static_cast<size_t>(j * D + i)]), k, a[j]);
        }
        __m256 d = sum8(a);
        if (D8 < D) {
            alignas(32) float tail[8];
            for (int64_t j = 0; j < 8; ++j) {
                tail[j] = 0.0f;
                for (int64_t i = D8; i < D; ++i) tail[j] += qs[static_cast<size_t>(j * D + i)] * kr[i];
            }
            d = _mm256_add_ps(d, _mm256_load_ps(tail));
        }
        _mm256_storeu_ps(&p[static_cast<size_t>(8 * s)], _mm256_mul_ps(d, sv));
    }
    __m256 mx = _mm256_set1_ps(-INFINITY), sum = _mm256_setzero_ps();  // softmax over keys, 8 heads per lane
    for (int64_t s = 0; s < n_keys; ++s) mx = _mm256_max_ps(mx, _mm256_loadu_ps(&p[static_cast<size_t>(8 * s)]));
    for (int64_t s = 0; s < n_keys; ++s) {
        float* ps = &p[static_cast<size_t>(8 * s)];
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(ps), mx));
        _mm256_storeu_ps(ps, e);
        sum = _mm256_add_ps(sum, e);
    }
    alignas(32) float inv[8];
    _mm256_store_ps(inv, _mm256_div_ps(_mm256_set1_ps(1.0f), sum));
    int64_t s = 0;
    for (; s + 4 <= n_keys; s += 4) {  // weighted sum of V rows, 4 keys per pass over the accumulators
        const float* v0 = kv_row(vc, s, hkv, D, tmp.data());
        const float* v1 = kv_row(vc, s + 1, hkv, D, tmp.data() + D);
        const float* v2 = kv_row(vc, s + 2, hkv, D, tmp.data() + 2 * D);
        const float* v3 = kv_row(vc, s + 3, hkv, D, tmp.data() + 3 * D);
        const float* w = &p[static_cast<size_t>(8 * s)];
        for (int64_t j = 0; j < nh; ++j) {
            const __m256 w0 = _mm256_set1_ps(w[j]), w1 = _mm256_set1_ps(w[8 + j]);
            const __m256 w2 = _mm256_set1_ps(w[16 + j]), w3 = _mm256_set1_ps(w[24 + j]);
            float* aj = &acc[static_cast<size_t>(j * D)];
            for (int64_t i = 0; i < D8; i += 8) {
                __m256 x = _mm256_loadu_ps(aj + i);
                x = _mm256_fmadd_ps(w0, _mm256_loadu_ps(v0 + i), x);
                x = _mm256_fmadd_ps(w1, _mm256_loadu_ps(v1 + i), x);
                x = _mm256_fmadd_ps(w2, _mm256_loadu_ps(v2 + i), x);
                x = _mm256_fmadd_ps(w3, _mm256_loadu_ps(v3 + i), x);
                _mm256_storeu_ps(aj + i, x);
            }
            for (int64_t i = D8; i < D; ++i)
                aj[i] += w[j] * v0[i] + w[8 + j] * v1[i] + w[16 + j] * v2[i] + w[24 + j] * v3[i];
        }
    }
    for (; s < n_keys; ++s) {
        const float* vr = kv_row(vc, s, hkv, D, tmp.data());
        for (int64_t j = 0; j < nh; ++j) {
            const float w = p[static_cast<size_t>(8 * s + j)];
            const __m256 wj = _mm256_set1_ps(w);
            float* aj = &acc[static_cast<size_t>(j * D)];
            for (int64_t i = 0; i < D8; i += 8)
                _mm256_storeu_ps(aj + i, _mm256_fmadd_ps(wj, _mm256_loadu_ps(vr + i), _mm256_loadu_ps(aj + i)));
            for (int64_t i = D8; i < D; ++i) aj[i] += w * vr[i];
        }
    }
    for (int64_t j = 0; j < nh; ++j) {
        float* oh = detail::at3(out, t, hkv * G + j0 + j);
        const float* aj = &acc[static_cast<size_t>(j * D)];
        if (gate.empty()) {
            for (int64_t i = 0; i < D; ++i) oh[i] = aj[i] * inv[j];
        } else {
            const float* gh = detail::at3(gate, t, hkv * G + j0 + j);
            for (int64_t i = 0; i < D; ++i) oh[i] = aj[i] * inv[j] / (1.0f + std::exp(-gh[i]));
        }
    }
}

// Prefill: a block of query tokens [t0, t1) x all heads of one kv group (rows r = (t - t0) * G + j) against the
// keys in blocks of kKeyBlock, with an online softmax (running max / sum per row, flash-attention style). Per key
// block, K is converted once into kT [D][kKeyBlock] (transposed) and V into f32 rows; then both products are
// register-tiled over 4 rows: scores S = Q·Kᵀ (4 rows x 16 keys = 8 accumulators; each loaded K vector feeds 4
// FMAs) and O = O·corr + P·V (4 rows x 16 dims, accumulated over the whole key block in registers).
// Causal: token t sees keys [0, n_past + t].
constexpr int64_t kKeyBlock = 64;
constexpr int64_t kQueryBlock = 16;

struct BlockScratch {
    std::vector<float> q, kT, v, p, o, m, l, corr, row;
};

// p[r][c*16 .. c*16+16) = q[r] · kT[:, c*16 ..) for R rows and n16 chunks of 16 keys.
template <int R>
QNEXT_AVX2 inline void scores_tile(const float* q, int64_t D, const float* kT, float* p, int64_t n16) {
    for (int64_t c = 0; c < n16; ++c) {
        __m256 acc[R][2];
        for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        const float* kc = kT + c * 16;
        for (int64_t i = 0; i < D; ++i) {
            const __m256 k0 = _mm256_loadu_ps(kc + i * kKeyBlock), k1 = _mm256_loadu_ps(kc + i * kKeyBlock + 8);
            for (int r = 0; r < R; ++r) {
                const __m256 qb = _mm256_broadcast_ss(q + r * D + i);
                acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
            }
        }
        for (int r = 0; r < R; ++r) {
            _mm256_storeu_ps(p + r * kKeyBlock + c * 16, acc[r][0]);
            _mm256_storeu_ps(p + r * kKeyBlock + c * 16 + 8, acc[r][1]);
        }
    }
}

// o[r] = o[r] * corr[r] + sum_s p[r][s] v[s] for R rows over nk keys; 16 dims at a time, then a scalar tail.
template <int R>
QNEXT_AVX2 inline void pv_tile(const float* p, const float* v, int64_t D, int64_t nk, float* o, const float* corr) {
    int64_t d = 0;
    for (; d + 16 <= D; d += 16) {
        __m256 acc[R][2];
        for (int r = 0; r < R; ++r) {
            const __m256 c = _mm256_set1_ps(corr[r]);
            acc[r][0] = _mm256_mul_ps(_mm256_loadu_ps(o + r * D + d), c);
            acc[r][1] = _mm256_mul_ps(_mm256_loadu_ps(o + r * D + d + 8), c);
        }
        for (int64_t s = 0; s < nk; ++s) {
            const __m256 v0 = _mm256_loadu_ps(v + s * D + d), v1 = _mm256_loadu_ps(v + s * D + d + 8);
            for (int r = 0; r < R; ++r) {
                const __m256 pb = _mm256_broadcast_ss(p + r * kKeyBlock + s);
                acc[r][0] = _mm256_fmadd_ps(pb, v0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(pb, v1, acc[r][1]);
            }
        }
        for (int r = 0; r < R; ++r) {
            _mm256_storeu_ps(o + r * D + d, acc[r][0]);
            _mm256_storeu_ps(o + r * D + d + 8, acc[r][1]);
        }
    }
    for (; d < D; ++d)
        for (int r = 0; r < R; ++r) {
            float a = o[r * D + d] * corr[r];
            for (int64_t s = 0; s < nk; ++s) a += p[r * kKeyBlock + s] * v[s * D + d];
            o[r * D + d] = a;
        }
}

QNEXT_AVX2 void block(const Tensor& q, const Tensor& kc, const Tensor& vc, int64_t n_past, float scale,
                      const Tensor& gate, const Tensor& out, int64_t t0, int64_t t1, int64_t hkv, int64_t G,
                      BlockScratch& sc) {
    const int64_t D = q.dim(2), nq = (t1 - t0) * G, n_keys = n_past + t1;
    const size_t uD = static_cast<size_t>(D), uKB = static_cast<size_t>(kKeyBlock);
    sc.q.resize(static_cast<size_t>(nq) * uD);
    for (int64_t r = 0; r < nq; ++r) {   // scaled query rows, contiguous
        const float* src = detail::at3(q, t0 + r / G, hkv * G + r % G);
        for (int64_t i = 0; i < D; ++i) sc.q[static_cast<size_t>(r) * uD + static_cast<size_t>(i)] = src[i] * scale;
    }
    sc.o.assign(static_cast<size_t>(nq) * uD, 0.0f);
    sc.m.assign(static_cast<size_t>(nq), -INFINITY);
    sc.l.assign(static_cast<size_t>(nq), 0.0f);
    sc.corr.resize(static_cast<size_t>(nq));
    sc.p.resize(static_cast<size_t>(nq) * uKB);
    sc.kT.resize(uD * uKB);
    sc.v.resize(uKB * uD);
    sc.row.resize(uD);
    auto rows = [&](int64_t r0, auto&& fn) {   // fn<R>(r) over [r0, nq) in tiles of 4 rows, then 1
        int64_t r = r0;
        for (; r + 4 <= nq; r += 4) fn(std::integral_constant<int, 4>{}, r);
        for (; r < nq; ++r) fn(std::integral_constant<int, 1>{}, r);
    };
    for (int64_t s0 = 0; s0 < n_keys; s0 += kKeyBlock) {
        const int64_t nk = std::min(kKeyBlock, n_keys - s0), n16 = (nk + 15) / 16;
        for (int64_t s = 0; s < n16 * 16; ++s) {
            const float* kr = s < nk ? kv_row(kc, s0 + s, hkv, D, sc.row.data()) : nullptr;
            for (int64_t i = 0; i < D; ++i) sc.kT[static_cast<size_t>(i) * uKB + static_cast<size_t>(s)] = kr ? kr[i] : 0.0f;
            if (s < nk) {
                const float* vr = kv_row(vc, s0 + s, hkv, D, sc.row.data());
                std::copy_n(vr, D, sc.v.data() + static_cast<size_t>(s) * uD);
            }
        }
        // rows of tokens that see at least one key of this block (token t sees keys < n_past + t + 1)
        const int64_t r0 = (std::max(t0, s0 - n_past) - t0) * G;
        rows(r0, [&](auto R, int64_t r) {
            scores_tile<R()>(sc.q.data() + static_cast<size_t>(r) * uD, D, sc.kT.data(), sc.p.data() + static_cast<size_t>(r) * uKB, n16);
        });
        for (int64_t r = r0; r < nq; ++r) {   // online softmax: causal limit, running max and sum
            float* pr = sc.p.data() + static_cast<size_t>(r) * uKB;
            const int64_t limit = std::min(nk, n_past + t0 + r / G + 1 - s0);
            float bm = -INFINITY;
            for (int64_t s = 0; s < limit; ++s) bm = std::fmax(bm, pr[s]);
            float& m = sc.m[static_cast<size_t>(r)];
            const float m_new = std::fmax(m, bm);
            const float corr = std::exp(m - m_new);   // 0 on the first block (m = -inf)
            const __m256 mv = _mm256_set1_ps(m_new);
            __m256 acc = _mm256_setzero_ps();
            int64_t s = 0;
            for (; s + 8 <= limit; s += 8) {
                const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(pr + s), mv));
                _mm256_storeu_ps(pr + s, e);
                acc = _mm256_add_ps(acc, e);
            }
            alignas(32) float lanes[8];
            _mm256_store_ps(lanes, acc);
            float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
            for (; s < limit; ++s) sum += (pr[s] = std::exp(pr[s] - m_new));
            for (s = limit; s < nk; ++s) pr[s] = 0.0f;
            sc.l[static_cast<size_t>(r)] = sc.l[static_cast<size_t>(r)] * corr + sum;
            sc.corr[static_cast<size_t>(r)] = corr;
            m = m_new;
        }
        rows(r0, [&](auto R, int64_t r) {
            pv_tile<R()>(sc.p.data() + static_cast<size_t>(r) * uKB, sc.v.data(), D, nk, sc.o.data() + static_cast<size_t>(r) * uD,
                         sc.corr.data() + r);
        });
    }
    for (int64_t r = 0; r < nq; ++r) {
        const float inv = 1.0f / sc.l[static_cast<size_t>(r)];
        const float* a = sc.o.data() + static_cast<size_t>(r) * uD;
        float* oh = detail::at3(out, t0 + r / G, hkv * G + r % G);
        if (gate.empty()) {
            for (int64_t i = 0; i < D; ++i) oh[i] = a[i] * inv;
        } else {
            const float* gh = detail::at3(gate, t0 + r / G, hkv * G + r % G);
            for (int64_t i = 0; i < D; ++i) oh[i] = a[i] * inv / (1.0f + std::exp(-gh[i]));
        }
    }
}

}  // namespace

void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, float scale,
               const Tensor& gate, const Tensor& out) {
    const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), group_size = Hq / k_cache.dim(1);
    const int64_t Hkv = k_cache.dim(1), tasks = T * Hkv;
    if (T > 1) {   // prefill: query blocks x kv heads, blocked over keys
        const int64_t nb = (T + kQueryBlock - 1) / kQueryBlock;
        std::vector<BlockScratch> bs(static_cast<size_t>(pool_threads()));
        auto btask = [&](int64_t i, int w) {
            const int64_t b = i / Hkv, h = i % Hkv;
            block(q, k_cache, v_cache, n_past, scale, gate, out, b * kQueryBlock, std::min(T, (b + 1) * kQueryBlock), h,
                  group_size, bs[static_cast<size_t>(w)]);
        };
        if (nb * Hkv > 1) parallel_dynamic(nb * Hkv, btask);
        else btask(0, 0);
        return;
    }
    struct Scratch {
        std::vector<float> p, tmp, acc, qs;
    };
    std::vector<Scratch> scratch(static_cast<size_t>(pool_threads()));
    auto task = [&](int64_t i, int w) {
        Scratch& s = scratch[static_cast<size_t>(w)];
        for (int64_t j0 = 0; j0 < group_size; j0 += 8)
            group(q, k_cache, v_cache, n_past, scale, gate, out, i / Hkv, i % Hkv, group_size, j0,
                   std::min<int64_t>(8, group_size - j0), s.p, s.tmp, s.acc, s.qs);
    };
    if (tasks > 1 && (n_past + T) * D * Hq * T >= (int64_t{1} << 14))
        parallel_dynamic(tasks, task);  // causal rows differ in cost: hand out (token, kv-head) tasks one by one
    else
        for (int64_t i = 0; i < tasks; ++i) task(i, 0);
}

}  // namespace qnext::kern::cpu
