// kernels/cpu/matmul_avx2.cpp: AVX2+FMA dot-product GEMM microkernels for y = x w^T with f32
// activations and f32/bf16/f16 weights read in place (the fast-path baseline). Register tile: up to
// 4 weight rows x 2 tokens = 8 ymm accumulators; scalar K tail. Compiled with -mavx2 -mfma -mf16c;
// only called after the runtime check in backend.cpp. Compared against cpu/ref by test_ops (Matmul.*).
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/cpu.h"

namespace qnext::kern::cpu {
namespace {

template <DType WT>
inline __m256 load_w8(const void* w, int64_t i) {
    if constexpr (WT == DType::F32) {
        return _mm256_loadu_ps(static_cast<const float*>(w) + i);
    } else if constexpr (WT == DType::BF16) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
        return _mm256_cvtph_ps(h);
    }
}

// Scalar weight load for the K tail (local: no inline helpers shared with non-AVX2 code).
template <DType WT>
inline float load_w1(const void* w, int64_t i) {
    if constexpr (WT == DType::F32) {
        return static_cast<const float*>(w)[i];
    } else if constexpr (WT == DType::BF16) {
        const uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(w)[i]) << 16;
        float f;
        __builtin_memcpy(&f, &u, 4);
        return f;
    } else {
        return _cvtsh_ss(static_cast<const uint16_t*>(w)[i]);
    }
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

constexpr size_t esize(DType t) { return t == DType::F32 ? 4 : 2; }

template <DType WT, int NR, int NT>
void tile(const float* x, int64_t ldx, int64_t K, const char* w, int64_t n, float* y, int64_t ldy, bool accumulate) {
    const size_t ws = esize(WT);
    __m256 acc[NR][NT];
    for (int i = 0; i < NR; ++i)
        for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_setzero_ps();
    const void* wr[NR];
    for (int i = 0; i < NR; ++i) wr[i] = w + static_cast<size_t>(n + i) * static_cast<size_t>(K) * ws;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xv[NT];
        for (int j = 0; j < NT; ++j) xv[j] = _mm256_loadu_ps(x + j * ldx + k);
        for (int i = 0; i < NR; ++i) {
            const __m256 wv = load_w8<WT>(wr[i], k);
            for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
    for (int j = 0; j < NT; ++j)
        for (int i = 0; i < NR; ++i) {
            float s = hsum(acc[i][j]);
            for (int64_t kk = k; kk < K; ++kk) s += x[j * ldx + kk] * load_w1<WT>(wr[i], kk);
            float& dst = y[j * ldy + n + i];
            dst = accumulate ? dst + s : s;
        }
}

template <DType WT>
void rows(const float* x, int64_t ldx, int64_t T, int64_t K, const char* w, int64_t n0, int64_t n1, float* y,
          int64_t ldy, bool acc) {
    for (int64_t n = n0; n < n1; n += 4) {
        const int nr = static_cast<int>(n1 - n < 4 ? n1 - n : 4);
        for (int64_t t = 0; t < T; t += 2) {
            const bool two = T - t >= 2;
            const float* xt = x + t * ldx;
            float* yt = y + t * ldy;
            switch (nr * 2 + (two ? 1 : 0)) {
                case 9: tile<WT, 4, 2>(xt, ldx, K, w, n, yt, ldy, acc); break;
                case 8: tile<WT, 4, 1>(xt, ldx, K, w, n, yt, ldy, acc); break;
                case 7: tile<WT, 3, 2>(xt, ldx, K, w, n, yt, ldy, acc); break;
                case 6: tile<WT, 3, 1>(xt, ldx, K, w, n, yt, ldy, acc); break;
                case 5: tile<WT, 2, 2>(xt, ldx, K, w, n, yt, ldy, acc); break;
                case 4: tile<WT, 2, 1>(xt, ldx, K, w, n, yt, ldy, acc); break;
                case 3: tile<WT, 1, 2>(xt, ldx, K, w, n, yt, ldy, acc); break;
                default: tile<WT, 1, 1>(xt, ldx, K, w, n, yt, ldy, acc); break;
            }
        }
    }
}

}  // namespace

void matmul_rows_avx2(const float* x, int64_t ldx, int64_t T, int64_t K, const void* w, DType wt, int64_t n0,
                      int64_t n1, float* y, int64_t ldy, bool accumulate) {
    const char* wc = static_cast<const char*>(w);
    switch (wt) {
        case DType::BF16: rows<DType::BF16>(x, ldx, T, K, wc, n0, n1, y, ldy, accumulate); break;
        case DType::F16: rows<DType::F16>(x, ldx, T, K, wc, n0, n1, y, ldy, accumulate); break;
        default: rows<DType::F32>(x, ldx, T, K, wc, n0, n1, y, ldy, accumulate); break;
    }
}

// F8_B128 rows -> f32: e4m3 byte b as the f16 bits (b & 0x80) << 8 | (b & 0x7F) << 7 is its value times
// 2^-8 (normals and subnormals alike), so vcvtph2ps and one multiply by 256 * scale give the exact product
// the reference computes (the NaN codes, which no checkpoint holds, come out finite here).
void dequantize_f8_b128_avx2(const void* src, float* dst, int64_t n) {
    const auto* p = static_cast<const uint8_t*>(src);
    for (int64_t b = 0; b < n / 128; ++b, p += 132) {
        float scale;
        std::memcpy(&scale, p, 4);
        const __m256 s = _mm256_set1_ps(scale * 256.0f);
        for (int i = 0; i < 128; i += 16) {
            const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 4 + i)));
            const __m256i h = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x80)), 8),
                                              _mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x7F)), 7));
            _mm256_storeu_ps(dst + b * 128 + i, _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(h)), s));
            _mm256_storeu_ps(dst + b * 128 + i + 8, _mm256_mul_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)), s));
        }
    }
}

// One token against F8_B128 rows: each 128-value block's products accumulate unscaled, then one FMA by the
// block's scale (the decode path: the weights are read once, straight from their packed rows).
void gemv_f8_b128_avx2(const float* x, int64_t K, const void* w, int64_t n0, int64_t n1, float* y, bool accumulate) {
    const size_t row_bytes = static_cast<size_t>(K / 128) * 132;
    for (int64_t n = n0; n < n1; ++n) {
        const auto* p = static_cast<const uint8_t*>(w) + static_cast<size_t>(n) * row_bytes;
        __m256 acc = _mm256_setzero_ps();
        for (int64_t b = 0; b < K / 128; ++b, p += 132) {
            float scale;
            std::memcpy(&scale, p, 4);
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            const float* xb = x + b * 128;
            for (int i = 0; i < 128; i += 16) {
                const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 4 + i)));
                const __m256i h = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x80)), 8),
                                                  _mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x7F)), 7));
                a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(h)), _mm256_loadu_ps(xb + i), a0);
                a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)), _mm256_loadu_ps(xb + i + 8), a1);
            }
            acc = _mm256_fmadd_ps(_mm256_add_ps(a0, a1), _mm256_set1_ps(scale * 256.0f), acc);
        }
        __m128 r = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        r = _mm_add_ps(r, _mm_movehl_ps(r, r));
        r = _mm_add_ss(r, _mm_movehdup_ps(r));
        const float v = _mm_cvtss_f32(r);
        y[n] = accumulate ? y[n] + v : v;
    }
}

}  // namespace qnext::kern::cpu
