// kernels/cpu/qmatmul_impl.h: the integer kernels of qmatmul.h, written once and compiled per ISA
// (qmatmul_avx2.cpp: maddubs + madd; qmatmul_vnni.cpp: vpdpbusd on 256-bit vectors). Each format describes
// its blocks as 32-value groups: unsigned 8-bit values u in element order, and per 16-value half the
// multiplier and offset with w = mul * u + off (decoded exactly as kernels/cpu/ref/quant.cpp reads the
// format). Included only by those two files.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/qmatmul.h"

namespace qnext::kern::cpu::qimpl {

inline float f16_at(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m256i low_nibbles(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0F)); }
inline __m256i high_nibbles(__m256i v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F)); }
// Bits (v >> s) & mask of every byte (s <= 7; a 16-bit shift, so only the low bits of each byte are kept).
inline __m256i byte_bits(__m256i v, int s, uint8_t mask) {
    return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(s)), _mm256_set1_epi8(static_cast<char>(mask)));
}
// Per-half multipliers: elements 0..15 get a, 16..31 get b (int32 lanes 0-3 and 4-7 of a dot product).
inline __m256 halves(float a, float b) { return _mm256_set_m128(_mm_set1_ps(b), _mm_set1_ps(a)); }

// 32-value formats. u: 16 bytes of nibbles -> elements j (low nibble) and j + 16 (high nibble).
inline __m256i nibbles32(const uint8_t* qs) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}
// The fifth bit of Q5_0 / Q5_1: bit i of qh -> 0x10 in byte i.
inline __m256i fifth_bits(const uint8_t* qh_p) {
    uint32_t qh;
    std::memcpy(&qh, qh_p, 4);
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                          3, 3, 3, 3, 3, 3);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), shuf);
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
    const __m256i on = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_and_si256(on, _mm256_set1_epi8(0x10));
}

// f(g, u, mul, off_a, off_b) for each 32-value group g of the block at b.
struct Q8_0 {
    static constexpr int kElems = 32, kBytes = 34;
    static constexpr bool kSigned = true;   // u holds the signed int8 weights themselves
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const float d = f16_at(b);
        f(0, load32(b + 2), _mm256_set1_ps(d), 0.0f, 0.0f);
    }
};
struct Q4_0 {
    static constexpr int kElems = 32, kBytes = 18;
    static constexpr bool kSigned = false;
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const float d = f16_at(b);
        f(0, nibbles32(b + 2), _mm256_set1_ps(d), -8.0f * d, -8.0f * d);
    }
};
struct Q4_1 {
    static constexpr int kElems = 32, kBytes = 20;
    static constexpr bool kSigned = false;
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const float d = f16_at(b), m = f16_at(b + 2);
        f(0, nibbles32(b + 4), _mm256_set1_ps(d), m, m);
    }
};
struct Q5_0 {
    static constexpr int kElems = 32, kBytes = 22;
    static constexpr bool kSigned = false;
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const float d = f16_at(b);
        f(0, _mm256_or_si256(nibbles32(b + 6), fifth_bits(b + 2)), _mm256_set1_ps(d), -16.0f * d, -16.0f * d);
    }
};
struct Q5_1 {
    static constexpr int kElems = 32, kBytes = 24;
    static constexpr bool kSigned = false;
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const float d = f16_at(b), m = f16_at(b + 2);
        f(0, _mm256_or_si256(nibbles32(b + 8), fifth_bits(b + 4)), _mm256_set1_ps(d), m, m);
    }
};

// 256-value super-blocks.
inline void scale_min_k4(const uint8_t* s, int j, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

template <bool kFive>
struct QK45 {
    static constexpr int kElems = 256, kBytes = kFive ? 176 : 144;
    static constexpr bool kSigned = false;
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const float d = f16_at(b), dmin = f16_at(b + 2);
        const uint8_t* s = b + 4;
        const uint8_t* qs = b + (kFive ? 48 : 16);
        __m256i qh = _mm256_setzero_si256();
        if constexpr (kFive) qh = load32(b + 16);
        for (int g = 0; g < 8; ++g) {
            int sc, m;
            scale_min_k4(s, g, sc, m);
            const __m256i v = load32(qs + (g / 2) * 32);
            __m256i u = g % 2 == 0 ? low_nibbles(v) : high_nibbles(v);
            if constexpr (kFive) u = _mm256_or_si256(u, _mm256_slli_epi16(byte_bits(qh, g, 1), 4));
            const float off = -dmin * static_cast<float>(m);
            f(g, u, _mm256_set1_ps(d * static_cast<float>(sc)), off, off);
        }
    }
};
using Q4_K = QK45<false>;
using Q5_K = QK45<true>;

struct Q6_K {
    static constexpr int kElems = 256, kBytes = 210;
    static constexpr bool kSigned = false;
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const uint8_t* ql = b;
        const uint8_t* qh = b + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
        const float d = f16_at(b + 208);
        for (int g = 0; g < 8; ++g) {
            const int half = g / 4, quarter = g % 4;
            const __m256i v = load32(ql + half * 64 + (quarter % 2) * 32);
            const __m256i lo = quarter < 2 ? low_nibbles(v) : high_nibbles(v);
            const __m256i hi = _mm256_slli_epi16(byte_bits(load32(qh + half * 32), 2 * quarter, 3), 4);
            const float sa = d * static_cast<float>(sc[half * 8 + quarter * 2]);
            const float sb = d * static_cast<float>(sc[half * 8 + quarter * 2 + 1]);
            f(g, _mm256_or_si256(lo, hi), halves(sa, sb), -32.0f * sa, -32.0f * sb);
        }
    }
};

struct Q2_K {
    static constexpr int kElems = 256, kBytes = 84;
    static constexpr bool kSigned = false;
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const uint8_t* scales = b;
        const uint8_t* qs = b + 16;
        const float d = f16_at(b + 80), dmin = f16_at(b + 82);
        for (int g = 0; g < 8; ++g) {
            const int half = g / 4, shift = g % 4;
            const __m256i u = byte_bits(load32(qs + half * 32), 2 * shift, 3);
            const uint8_t a = scales[2 * g], c = scales[2 * g + 1];
            f(g, u, halves(d * static_cast<float>(a & 0x0F), d * static_cast<float>(c & 0x0F)),
              -dmin * static_cast<float>(a >> 4), -dmin * static_cast<float>(c >> 4));
        }
    }
};

struct Q3_K {
    static constexpr int kElems = 256, kBytes = 110;
    static constexpr bool kSigned = false;
    static int scale(const uint8_t* s, int j) {
        const int lo = j < 8 ? (s[j] & 0x0F) : (s[j - 8] >> 4);
        const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        return (lo | (hi << 4)) - 32;
    }
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const __m256i hmask = load32(b);
        const uint8_t* qs = b + 32;
        const uint8_t* s = b + 96;
        const float d = f16_at(b + 108);
        for (int g = 0; g < 8; ++g) {
            const int half = g / 4, shift = g % 4;
            const __m256i ql = byte_bits(load32(qs + half * 32), 2 * shift, 3);
            const __m256i hb = _mm256_slli_epi16(byte_bits(hmask, g, 1), 2);   // u = ql + 4 * bit, w = d*sc*(u-4)
            const float sa = d * static_cast<float>(scale(s, 2 * g)), sb = d * static_cast<float>(scale(s, 2 * g + 1));
            f(g, _mm256_or_si256(ql, hb), halves(sa, sb), -4.0f * sa, -4.0f * sb);
        }
    }
};

template <bool VNNI>
inline __m256i dot_u8s8(__m256i u, __m256i s) {
    if constexpr (VNNI)
        return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
    else
        return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// One weight row against NT tokens.
template <class Q, bool VNNI, int NT>
inline void row_tokens(const Q8Rows& x, int64_t t0, const uint8_t* wrow, float* y, int64_t ldy, bool accumulate) {
    const int64_t K = x.K, nb = K / Q::kElems;
    const int8_t* xq[NT];
    const float* xd[NT];
    const float* xs[NT];
    __m256 acc[NT];
    float off[NT];
    for (int j = 0; j < NT; ++j) {
        xq[j] = x.qrow(t0 + j);
        xd[j] = x.drow(t0 + j);
        xs[j] = x.srow(t0 + j);
        acc[j] = _mm256_setzero_ps();
        off[j] = 0.0f;
    }
    for (int64_t blk = 0; blk < nb; ++blk) {
        const int64_t a0 = blk * (Q::kElems / 32);   // first activation block of this weight block
        Q::groups(wrow + blk * Q::kBytes, [&](int g, __m256i u, __m256 mul, float off_a, float off_b) {
            const int64_t a = a0 + g;
            __m256i uu = u;
            if constexpr (Q::kSigned) uu = _mm256_abs_epi8(u);
            for (int j = 0; j < NT; ++j) {
                __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[j] + a * 32));
                if constexpr (Q::kSigned) xv = _mm256_sign_epi8(xv, u);
                const __m256 p = _mm256_cvtepi32_ps(dot_u8s8<VNNI>(uu, xv));
                acc[j] = _mm256_fmadd_ps(p, _mm256_mul_ps(mul, _mm256_set1_ps(xd[j][a])), acc[j]);
                if constexpr (!Q::kSigned) off[j] += off_a * xs[j][2 * a] + off_b * xs[j][2 * a + 1];
            }
        });
    }
    for (int j = 0; j < NT; ++j) {
        const float s = hsum(acc[j]) + off[j];
        float& dst = y[j * ldy];
        dst = accumulate ? dst + s : s;
    }
}

template <class Q, bool VNNI>
void rows(const Q8Rows& x, int64_t t0, int64_t nt, const uint8_t* w, int64_t n0, int64_t n1, float* y, int64_t ldy,
          bool accumulate) {
    const size_t row_bytes = static_cast<size_t>(x.K / Q::kElems * Q::kBytes);
    for (int64_t n = n0; n < n1; ++n) {
        const uint8_t* wr = w + static_cast<size_t>(n) * row_bytes;
        for (int64_t t = 0; t < nt; t += 4) {
            float* yt = y + t * ldy + n;
            switch (nt - t < 4 ? nt - t : 4) {
                case 4: row_tokens<Q, VNNI, 4>(x, t0 + t, wr, yt, ldy, accumulate); break;
                case 3: row_tokens<Q, VNNI, 3>(x, t0 + t, wr, yt, ldy, accumulate); break;
                case 2: row_tokens<Q, VNNI, 2>(x, t0 + t, wr, yt, ldy, accumulate); break;
                default: row_tokens<Q, VNNI, 1>(x, t0 + t, wr, yt, ldy, accumulate); break;
            }
        }
    }
}

template <bool VNNI>
void qmatmul_rows(const Q8Rows& x, int64_t t0, int64_t nt, const void* w, DType wt, int64_t n0, int64_t n1, float* y,
                  int64_t ldy, bool accumulate) {
    const auto* wb = static_cast<const uint8_t*>(w);
    switch (wt) {
        case DType::Q8_0: rows<Q8_0, VNNI>(x, t0, nt, wb, n0, n1, y, ldy, accumulate); break;
        case DType::Q4_0: rows<Q4_0, VNNI>(x, t0, nt, wb, n0, n1, y, ldy, accumulate); break;
        case DType::Q4_1: rows<Q4_1, VNNI>(x, t0, nt, wb, n0, n1, y, ldy, accumulate); break;
        case DType::Q5_0: rows<Q5_0, VNNI>(x, t0, nt, wb, n0, n1, y, ldy, accumulate); break;
        case DType::Q5_1: rows<Q5_1, VNNI>(x, t0, nt, wb, n0, n1, y, ldy, accumulate); break;
        case DType::Q2_K: rows<Q2_K, VNNI>(x, t0, nt, wb, n0, n1, y, ldy, accumulate); break;
        case DType::Q3_K: rows<Q3_K, VNNI>(x, t0, nt, wb, n0, n1, y, ldy, accumulate); break;
        case DType::Q4_K: rows<Q4_K, VNNI>(x, t0, nt, wb, n0, n1, y, ldy, accumulate); break;
        case DType::Q5_K: rows<Q5_K, VNNI>(x, t0, nt, wb, n0, n1, y, ldy, accumulate); break;
        case DType::Q6_K: rows<Q6_K, VNNI>(x, t0, nt, wb, n0, n1, y, ldy, accumulate); break;
        default: break;   // callers pass block types only (ops.cpp validates)
    }
}

}  // namespace qnext::kern::cpu::qimpl
