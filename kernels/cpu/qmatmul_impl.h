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
#ifndef QNEXT_NR
#define QNEXT_NR 4
#endif

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

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

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
    static constexpr bool kSigned = true;   // u holds signed int8 weights: |w| x sign(x, w)
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const float d = f16_at(b);
        f(0, load32(b + 2), _mm256_set1_ps(d), 0.0f, 0.0f);
    }
};
// Q4_0 / Q5_0 have no minimum: u - 8 (u - 16) as signed weights, like Q8_0 (no offset term per token).
struct Q4_0 {
    static constexpr int kElems = 32, kBytes = 18;
    static constexpr bool kSigned = true;
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const float d = f16_at(b);
        f(0, _mm256_sub_epi8(nibbles32(b + 2), _mm256_set1_epi8(8)), _mm256_set1_ps(d), 0.0f, 0.0f);
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
    static constexpr bool kSigned = true;
    template <class F> static void groups(const uint8_t* b, F&& f) {
        const float d = f16_at(b);
        const __m256i u = _mm256_or_si256(nibbles32(b + 6), fifth_bits(b + 2));
        f(0, _mm256_sub_epi8(u, _mm256_set1_epi8(16)), _mm256_set1_ps(d), 0.0f, 0.0f);
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

// 256-value super-blocks (K-quants), against the per-256 activations: the block decoded once into
// w_i = d * S[h] * u_i + moff * M[h] for element i of 16-value half h (S, M: 16 int16 each), then groups of
// 32 unpacked to u.
struct Super {
    float d = 0, moff = 0;
    __m256i S, M;
    alignas(32) int16_t s16[16];   // S in memory, for broadcast loads when both halves share a scale
};

// The scales of group g (halves 2g, 2g+1) as int16 lanes for madd: [S[2g] x 8 | S[2g+1] x 8].
inline __m256i group_scales(__m256i S, int g) {
    const __m256i pair = _mm256_permutevar8x32_epi32(S, _mm256_set1_epi32(g));   // (S[2g], S[2g+1]) everywhere
    const __m256i pick = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
                                          2, 3, 2, 3, 2, 3);
    return _mm256_shuffle_epi8(pair, pick);
}

// Q4_K / Q5_K: the 6-bit scales and mins of the 8 sub-blocks, bytes 0..7 and 8..15 of the result (the
// format's 12-byte packing: sub-blocks 0-3 in the low 6 bits, 4-7 split over nibbles and the top 2 bits).
inline __m128i scales_mins_k4(const uint8_t* s) {
    uint32_t u[3];
    std::memcpy(u, s, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    return _mm_setr_epi32(static_cast<int>(u[0] & m6), static_cast<int>((u[2] & m4) | (((u[0] >> 6) & m2) << 4)),
                          static_cast<int>(u[1] & m6), static_cast<int>(((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4)));
}
// 8 bytes (one per sub-block of 32) -> 16 int16 (one per half of 16).
inline __m256i per_half(__m128i bytes8) { return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(bytes8, bytes8)); }

template <bool kFive>
struct QK45 {
    static constexpr int kBytes = kFive ? 176 : 144;
    static constexpr bool kScalePer32 = true;
    static void decode(const uint8_t* b, Super& s) {
        s.d = f16_at(b);
        s.moff = -f16_at(b + 2);
        const __m128i sm = scales_mins_k4(b + 4);
        s.S = per_half(sm);
        s.M = per_half(_mm_unpackhi_epi64(sm, sm));
    }
    static __m256i group(const uint8_t* b, int g) {
        const __m256i v = load32(b + (kFive ? 48 : 16) + (g / 2) * 32);
        __m256i u = g % 2 == 0 ? low_nibbles(v) : high_nibbles(v);
        if constexpr (kFive) u = _mm256_or_si256(u, _mm256_slli_epi16(byte_bits(load32(b + 16), g, 1), 4));
        return u;
    }
};
using Q4_K = QK45<false>;
using Q5_K = QK45<true>;

struct Q6_K {   // w = d * sc[h] * (u - 32), u = 4 low bits (ql) | 2 high bits (qh) << 4
    static constexpr int kBytes = 210;
    static constexpr bool kScalePer32 = false;
    static void decode(const uint8_t* b, Super& s) {
        s.d = f16_at(b + 208);
        s.moff = -32.0f * s.d;
        s.S = s.M = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)));
    }
    static __m256i group(const uint8_t* b, int g) {
        const int half = g / 4, quarter = g % 4;
        const __m256i v = load32(b + half * 64 + (quarter % 2) * 32);
        const __m256i lo = quarter < 2 ? low_nibbles(v) : high_nibbles(v);
        const __m256i hi = _mm256_slli_epi16(byte_bits(load32(b + 128 + half * 32), 2 * quarter, 3), 4);
        return _mm256_or_si256(lo, hi);
    }
};

struct Q2_K {   // w = d * (sc & 15) * u - dmin * (sc >> 4), u 2 bits
    static constexpr int kBytes = 84;
    static constexpr bool kScalePer32 = false;
    static void decode(const uint8_t* b, Super& s) {
        s.d = f16_at(b + 80);
        s.moff = -f16_at(b + 82);
        const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
        const __m128i m4 = _mm_set1_epi8(0x0F);
        s.S = _mm256_cvtepu8_epi16(_mm_and_si128(sc, m4));
        s.M = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
    }
    static __m256i group(const uint8_t* b, int g) { return byte_bits(load32(b + 16 + (g / 4) * 32), 2 * (g % 4), 3); }
};

struct Q3_K {   // w = d * sc[h] * (u - 4), u = 2 low bits + 4 * (high bit), sc 6-bit signed
    static constexpr int kBytes = 110;
    static constexpr bool kScalePer32 = false;
    static int scale(const uint8_t* s, int j) {
        const int lo = j < 8 ? (s[j] & 0x0F) : (s[j - 8] >> 4);
        const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        return (lo | (hi << 4)) - 32;
    }
    static void decode(const uint8_t* b, Super& s) {
        s.d = f16_at(b + 108);
        s.moff = -4.0f * s.d;
        alignas(32) int16_t sc[16];
        for (int h = 0; h < 16; ++h) sc[h] = static_cast<int16_t>(scale(b + 96, h));
        s.S = s.M = _mm256_load_si256(reinterpret_cast<const __m256i*>(sc));
    }
    static __m256i group(const uint8_t* b, int g) {
        const __m256i ql = byte_bits(load32(b + 32 + (g / 4) * 32), 2 * (g % 4), 3);
        return _mm256_or_si256(ql, _mm256_slli_epi16(byte_bits(load32(b), g, 1), 2));
    }
};

// NR K-quant weight rows against NT tokens: per super-block, sum_h S[h] * (u . q over h) accumulates in int32
// (maddubs, then madd by the scales), sum_h M[h] * bsum[h] likewise; two f32 FMAs per super-block. The
// activation loads are shared by the NR rows, the unpacked weights by the NT tokens.
// sumi += madd(maddubs(u, x), sc): with VNNI the madd and the add are one vpdpwssd.
template <bool VNNI>
inline __m256i scaled_dot(__m256i sumi, __m256i u, __m256i x, __m256i sc) {
    const __m256i p = _mm256_maddubs_epi16(u, x);
    if constexpr (VNNI)
        return _mm256_dpwssd_epi32(sumi, p, sc);
    else
        return _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sc));
}

template <class Q, bool VNNI, int NR, int NT>
inline void tile_k(const Q8Rows& x, int64_t t0, const uint8_t* w, size_t row_bytes, float* y, int64_t ldy,
                   bool accumulate) {
    const int64_t nb = x.K / 256;
    const int8_t* xq[NT];
    const float* xd[NT];
    const int16_t* xb[NT];
    __m256 acc[NR][NT];
    for (int j = 0; j < NT; ++j) {
        xq[j] = x.qkrow(t0 + j);
        xd[j] = x.dkrow(t0 + j);
        xb[j] = x.bsrow(t0 + j);
        for (int r = 0; r < NR; ++r) acc[r][j] = _mm256_setzero_ps();
    }
    for (int64_t blk = 0; blk < nb; ++blk) {
        const uint8_t* b[NR];
        Super s[NR];
        for (int r = 0; r < NR; ++r) {
            b[r] = w + static_cast<size_t>(r) * row_bytes + static_cast<size_t>(blk) * Q::kBytes;
            Q::decode(b[r], s[r]);
            if constexpr (Q::kScalePer32) _mm256_store_si256(reinterpret_cast<__m256i*>(s[r].s16), s[r].S);
        }
        __m256i sumi[NR][NT];
        for (int r = 0; r < NR; ++r)
            for (int j = 0; j < NT; ++j) sumi[r][j] = _mm256_setzero_si256();
        for (int g = 0; g < 8; ++g) {
            __m256i xv[NT];
            for (int j = 0; j < NT; ++j)
                xv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[j] + blk * 256 + g * 32));
            for (int r = 0; r < NR; ++r) {
                const __m256i u = Q::group(b[r], g);
                __m256i sc;
                if constexpr (Q::kScalePer32)   // Q4_K / Q5_K: one scale per 32 -> one broadcast load
                    sc = _mm256_set1_epi16(s[r].s16[2 * g]);
                else
                    sc = group_scales(s[r].S, g);
                for (int j = 0; j < NT; ++j)
                    sumi[r][j] = scaled_dot<VNNI>(sumi[r][j], u, xv[j], sc);
            }
        }
        for (int j = 0; j < NT; ++j) {
            const float dk = xd[j][blk];
            const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[j] + blk * 16));
            for (int r = 0; r < NR; ++r) {
                const __m256i msum = _mm256_madd_epi16(s[r].M, bs);
                acc[r][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r][j]), _mm256_set1_ps(s[r].d * dk), acc[r][j]);
                acc[r][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(s[r].moff * dk), acc[r][j]);
            }
        }
    }
    for (int j = 0; j < NT; ++j)
        for (int r = 0; r < NR; ++r) {
            float& dst = y[j * ldy + r];
            const float v = hsum(acc[r][j]);
            dst = accumulate ? dst + v : v;
        }
}

template <bool VNNI>
inline __m256i dot_u8s8(__m256i u, __m256i s) {
    if constexpr (VNNI)
        return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
    else
        return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
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

// The 256-value formats are the ones without kElems (their groups come from decode + group).
template <class Q>
constexpr bool kKQuant = !requires { Q::kElems; };

// Tiles: K-quants 1 row x 1 token (decode) or 4 (VNNI) / 2 rows x 4 tokens; 32-value formats 1 row x 4 tokens.
template <class Q, bool VNNI, int NR>
void k_rows_nt(const Q8Rows& x, int64_t t0, int64_t nt, const uint8_t* w, size_t row_bytes, float* y, int64_t ldy,
               bool accumulate) {
    for (int64_t t = 0; t < nt; t += 4) {
        float* yt = y + t * ldy;
        switch (nt - t < 4 ? nt - t : 4) {
            case 4: tile_k<Q, VNNI, NR, 4>(x, t0 + t, w, row_bytes, yt, ldy, accumulate); break;
            case 3: tile_k<Q, VNNI, NR, 3>(x, t0 + t, w, row_bytes, yt, ldy, accumulate); break;
            case 2: tile_k<Q, VNNI, NR, 2>(x, t0 + t, w, row_bytes, yt, ldy, accumulate); break;
            default: tile_k<Q, VNNI, NR, 1>(x, t0 + t, w, row_bytes, yt, ldy, accumulate); break;
        }
    }
}

template <class Q, bool VNNI>
void rows(const Q8Rows& x, int64_t t0, int64_t nt, const uint8_t* w, int64_t n0, int64_t n1, float* y, int64_t ldy,
          bool accumulate) {
    constexpr bool kq = kKQuant<Q>;
    const size_t row_bytes = static_cast<size_t>(x.K / (kq ? 256 : 32) * Q::kBytes);
    if constexpr (kq) {
        int64_t n = n0;
        if (nt == 1) {
            // One row at a time: 2- and 4-row tiles measured slower on weights streamed from memory.
            for (; n < n1; ++n) {
                // Prefetch two rows ahead: a decode GEMV streams many short weight ranges (expert slices),
                // where the hardware prefetcher starts late.
                if (n + 2 < n1) {
                    const char* pf = reinterpret_cast<const char*>(w) + static_cast<size_t>(n + 2) * row_bytes;
                    for (size_t o = 0; o < row_bytes; o += 64) _mm_prefetch(pf + o, _MM_HINT_T0);
                }
                tile_k<Q, VNNI, 1, 1>(x, t0, w + static_cast<size_t>(n) * row_bytes, row_bytes, y + n, ldy, accumulate);
            }
        } else {
            // 4 rows x 4 tokens where the VNNI build has the 32 vector registers for it, else 2 x 4.
            constexpr int kNr = VNNI ? 4 : 2;
            for (; n + kNr <= n1; n += kNr)
                k_rows_nt<Q, VNNI, kNr>(x, t0, nt, w + static_cast<size_t>(n) * row_bytes, row_bytes, y + n, ldy, accumulate);
            for (; n + 2 <= n1; n += 2)
                k_rows_nt<Q, VNNI, 2>(x, t0, nt, w + static_cast<size_t>(n) * row_bytes, row_bytes, y + n, ldy, accumulate);
        }
        for (; n < n1; ++n)
            k_rows_nt<Q, VNNI, 1>(x, t0, nt, w + static_cast<size_t>(n) * row_bytes, row_bytes, y + n, ldy, accumulate);
    } else {
        for (int64_t n = n0; n < n1; ++n) {
            const uint8_t* wr = w + static_cast<size_t>(n) * row_bytes;
            if (nt == 1 && n + 2 < n1) {   // as above
                const char* pf = reinterpret_cast<const char*>(wr) + 2 * row_bytes;
                for (size_t o = 0; o < row_bytes; o += 64) _mm_prefetch(pf + o, _MM_HINT_T0);
            }
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
