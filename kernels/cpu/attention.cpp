// kernels/cpu/attention.cpp: fast causal GQA attention over an f32 or bf16 KV cache with the sigmoid
// output gate. Decode (one token): (token, kv-head) tasks; each serves all query heads of the group, so
// every K/V row is read once per group: scores q.k (vectorised dot), fp32 softmax, weighted sum of V rows
// (vectorised axpy). Prefill: (query block, kv-head) tasks with an online softmax over key blocks (block()). Compiled for AVX2+FMA via target attributes
// (called only when present). Compared against cpu/ref by tests/kernels/test_ops.cpp (Attention.*).
#include <algorithm>
#include <cmath>
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

// All query heads of one kv group for one token: each K and V row is read once for the whole group
// (GQA: 8 q-heads per kv-head in the 80B), scores [group, n_keys] in fp32.
QNEXT_AVX2 void group(const Tensor& q, const Tensor& kc, const Tensor& vc, int64_t n_past, float scale,
                      const Tensor& gate, const Tensor& out, int64_t t, int64_t hkv, int64_t G,
                      std::vector<float>& p, std::vector<float>& tmp, std::vector<float>& acc) {
    const int64_t D = q.dim(2), n_keys = n_past + t + 1;
    if (static_cast<int64_t>(p.size()) < G * n_keys) p.resize(static_cast<size_t>(G * n_keys));
    if (static_cast<int64_t>(acc.size()) < G * D) acc.resize(static_cast<size_t>(G * D));
    for (int64_t s = 0; s < n_keys; ++s) {  // scores
        const float* kr = kv_row(kc, s, hkv, D, tmp.data());
        for (int64_t j = 0; j < G; ++j) {
            const float* qh = detail::at3(q, t, hkv * G + j);
            float d = 0.0f;
#pragma omp simd reduction(+ : d)
            for (int64_t i = 0; i < D; ++i) d += qh[i] * kr[i];
            p[j * n_keys + s] = d * scale;
        }
    }
    for (int64_t j = 0; j < G; ++j) {  // softmax per head, fp32
        float* pj = &p[j * n_keys];
        float mx = -INFINITY;
        for (int64_t s = 0; s < n_keys; ++s) mx = std::fmax(mx, pj[s]);
        float sum = 0.0f;
        for (int64_t s = 0; s < n_keys; ++s) sum += (pj[s] = std::exp(pj[s] - mx));
        const float inv = 1.0f / sum;
        for (int64_t s = 0; s < n_keys; ++s) pj[s] *= inv;
    }
    std::fill_n(acc.begin(), G * D, 0.0f);
    for (int64_t s = 0; s < n_keys; ++s) {  // weighted sum of V rows
        const float* vr = kv_row(vc, s, hkv, D, tmp.data());
        for (int64_t j = 0; j < G; ++j) {
            const float w = p[j * n_keys + s];
            float* aj = &acc[j * D];
#pragma omp simd
            for (int64_t i = 0; i < D; ++i) aj[i] += w * vr[i];
        }
    }
    for (int64_t j = 0; j < G; ++j) {
        float* oh = detail::at3(out, t, hkv * G + j);
        const float* aj = &acc[j * D];
        if (gate.empty()) {
            std::copy_n(aj, D, oh);
        } else {
            const float* gh = detail::at3(gate, t, hkv * G + j);
            for (int64_t i = 0; i < D; ++i) oh[i] = aj[i] / (1.0f + std::exp(-gh[i]));
        }
    }
}

// Prefill: a block of query tokens [t0, t1) x all heads of one kv group against the keys in blocks of kKeyBlock
// rows, with an online softmax (running max / sum per query, flash-attention style). Each K/V row is read (and
// converted from bf16) once per query block instead of once per query token, and the score/axpy loops run over
// a key block that stays in cache. Causal: token t sees keys [0, n_past + t].
constexpr int64_t kKeyBlock = 64;
constexpr int64_t kQueryBlock = 16;

struct BlockScratch {
    std::vector<float> kbuf, vbuf, m, l, acc, score;
    std::vector<const float*> krow, vrow;
};

QNEXT_AVX2 void block(const Tensor& q, const Tensor& kc, const Tensor& vc, int64_t n_past, float scale,
                      const Tensor& gate, const Tensor& out, int64_t t0, int64_t t1, int64_t hkv, int64_t G,
                      BlockScratch& sc) {
    const int64_t D = q.dim(2), nq = (t1 - t0) * G;
    sc.m.assign(static_cast<size_t>(nq), -INFINITY);
    sc.l.assign(static_cast<size_t>(nq), 0.0f);
    sc.acc.assign(static_cast<size_t>(nq * D), 0.0f);
    sc.kbuf.resize(static_cast<size_t>(kKeyBlock * D));
    sc.vbuf.resize(static_cast<size_t>(kKeyBlock * D));
    sc.score.resize(static_cast<size_t>(kKeyBlock));
    sc.krow.resize(static_cast<size_t>(kKeyBlock));
    sc.vrow.resize(static_cast<size_t>(kKeyBlock));
    const int64_t n_keys = n_past + t1;
    for (int64_t s0 = 0; s0 < n_keys; s0 += kKeyBlock) {
        const int64_t s1 = std::min(s0 + kKeyBlock, n_keys);
        for (int64_t s = s0; s < s1; ++s) {
            const size_t r = static_cast<size_t>(s - s0);
            sc.krow[r] = kv_row(kc, s, hkv, D, sc.kbuf.data() + r * static_cast<size_t>(D));
            sc.vrow[r] = kv_row(vc, s, hkv, D, sc.vbuf.data() + r * static_cast<size_t>(D));
        }
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t limit = std::min(s1, n_past + t + 1);
            if (limit <= s0) continue;
            for (int64_t j = 0; j < G; ++j) {
                const size_t qi = static_cast<size_t>((t - t0) * G + j);
                const float* qh = detail::at3(q, t, hkv * G + j);
                float bm = -INFINITY;
                for (int64_t s = s0; s < limit; ++s) {
                    const float* kr = sc.krow[static_cast<size_t>(s - s0)];
                    float d = 0.0f;
#pragma omp simd reduction(+ : d)
                    for (int64_t i = 0; i < D; ++i) d += qh[i] * kr[i];
                    d *= scale;
                    sc.score[static_cast<size_t>(s - s0)] = d;
                    bm = std::fmax(bm, d);
                }
                float* a = &sc.acc[qi * static_cast<size_t>(D)];
                const float m_new = std::fmax(sc.m[qi], bm);
                if (sc.m[qi] != -INFINITY && sc.m[qi] != m_new) {
                    const float corr = std::exp(sc.m[qi] - m_new);
                    sc.l[qi] *= corr;
#pragma omp simd
                    for (int64_t i = 0; i < D; ++i) a[i] *= corr;
                }
                sc.m[qi] = m_new;
                float lsum = 0.0f;
                for (int64_t s = s0; s < limit; ++s) {
                    const float w = std::exp(sc.score[static_cast<size_t>(s - s0)] - m_new);
                    lsum += w;
                    const float* vr = sc.vrow[static_cast<size_t>(s - s0)];
#pragma omp simd
                    for (int64_t i = 0; i < D; ++i) a[i] += w * vr[i];
                }
                sc.l[qi] += lsum;
            }
        }
    }
    for (int64_t t = t0; t < t1; ++t)
        for (int64_t j = 0; j < G; ++j) {
            const size_t qi = static_cast<size_t>((t - t0) * G + j);
            const float inv = 1.0f / sc.l[qi];
            const float* a = &sc.acc[qi * static_cast<size_t>(D)];
            float* oh = detail::at3(out, t, hkv * G + j);
            if (gate.empty()) {
                for (int64_t i = 0; i < D; ++i) oh[i] = a[i] * inv;
            } else {
                const float* gh = detail::at3(gate, t, hkv * G + j);
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
        std::vector<float> p, tmp, acc;
    };
    std::vector<Scratch> scratch(static_cast<size_t>(pool_threads()));
    for (Scratch& s : scratch) s.tmp.resize(static_cast<size_t>(D));
    auto task = [&](int64_t i, int w) {
        Scratch& s = scratch[static_cast<size_t>(w)];
        group(q, k_cache, v_cache, n_past, scale, gate, out, i / Hkv, i % Hkv, group_size, s.p, s.tmp, s.acc);
    };
    if (tasks > 1 && (n_past + T) * D * Hq * T >= (int64_t{1} << 14))
        parallel_dynamic(tasks, task);  // causal rows differ in cost: hand out (token, kv-head) tasks one by one
    else
        for (int64_t i = 0; i < tasks; ++i) task(i, 0);
}

}  // namespace qnext::kern::cpu
