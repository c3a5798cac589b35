// kernels/cpu/matmul_avx512.cpp: AVX-512 (F/BW/VL) dot-product GEMM microkernels for y = x w^T with
// f32 activations and f32/bf16/f16 weights read in place. Register tile: up to 4 weight rows x 4
// tokens = 16 zmm accumulators; bf16 is widened with a 16-bit shift, f16 with vcvtph2ps; the K tail
// uses masked loads. Compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c; only called after
// the runtime check in backend.cpp. Compared against cpu/ref by tests/kernels/test_ops.cpp (Matmul.*).
#include <immintrin.h>

#include "kernels/cpu/cpu.h"

namespace qnext::kern::cpu {
namespace {

template <DType WT>
inline __m512 load_w16(const void* w, int64_t i) {
    if constexpr (WT == DType::F32) {
        return _mm512_loadu_ps(static_cast<const float*>(w) + i);
    } else if constexpr (WT == DType::BF16) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
        return _mm512_cvtph_ps(h);
    }
}

template <DType WT>
inline __m512 load_w16_mask(const void* w, int64_t i, __mmask16 m) {
    if constexpr (WT == DType::F32) {
        return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i);
    } else if constexpr (WT == DType::BF16) {
        const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
        const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i);
        return _mm512_cvtph_ps(h);
    }
}

constexpr size_t esize(DType t) { return t == DType::F32 ? 4 : 2; }

// y[t0 + j, n + i] for i < NR, j < NT.
template <DType WT, int NR, int NT>
void tile(const float* x, int64_t ldx, int64_t K, const char* w, int64_t n, float* y, int64_t ldy, bool accumulate) {
    const size_t ws = esize(WT);
    __m512 acc[NR][NT];
    for (int i = 0; i < NR; ++i)
        for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_ps();
    const void* wr[NR];
    for (int i = 0; i < NR; ++i) wr[i] = w + static_cast<size_t>(n + i) * static_cast<size_t>(K) * ws;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 xv[NT];
        for (int j = 0; j < NT; ++j) xv[j] = _mm512_loadu_ps(x + j * ldx + k);
        for (int i = 0; i < NR; ++i) {
            const __m512 wv = load_w16<WT>(wr[i], k);
            for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
    if (k < K) {
        const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1u);
        __m512 xv[NT];
        for (int j = 0; j < NT; ++j) xv[j] = _mm512_maskz_loadu_ps(m, x + j * ldx + k);
        for (int i = 0; i < NR; ++i) {
            const __m512 wv = load_w16_mask<WT>(wr[i], k, m);
            for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
    for (int j = 0; j < NT; ++j)
        for (int i = 0; i < NR; ++i) {
            const float s = _mm512_reduce_add_ps(acc[i][j]);
            float& dst = y[j * ldy + n + i];
            dst = accumulate ? dst + s : s;
        }
}

template <DType WT, int NR>
void tile_nt(int nt, const float* x, int64_t ldx, int64_t K, const char* w, int64_t n, float* y, int64_t ldy,
             bool acc) {
    switch (nt) {
        case 4: tile<WT, NR, 4>(x, ldx, K, w, n, y, ldy, acc); break;
        case 3: tile<WT, NR, 3>(x, ldx, K, w, n, y, ldy, acc); break;
        case 2: tile<WT, NR, 2>(x, ldx, K, w, n, y, ldy, acc); break;
        default: tile<WT, NR, 1>(x, ldx, K, w, n, y, ldy, acc); break;
    }
}

template <DType WT>
void rows(const float* x, int64_t ldx, int64_t T, int64_t K, const char* w, int64_t n0, int64_t n1, float* y,
          int64_t ldy, bool acc) {
    for (int64_t n = n0; n < n1; n += 4) {
        const int nr = static_cast<int>(n1 - n < 4 ? n1 - n : 4);
        for (int64_t t = 0; t < T; t += 4) {
            const int nt = static_cast<int>(T - t < 4 ? T - t : 4);
            const float* xt = x + t * ldx;
            float* yt = y + t * ldy;
            switch (nr) {
                case 4: tile_nt<WT, 4>(nt, xt, ldx, K, w, n, yt, ldy, acc); break;
                case 3: tile_nt<WT, 3>(nt, xt, ldx, K, w, n, yt, ldy, acc); break;
                case 2: tile_nt<WT, 2>(nt, xt, ldx, K, w, n, yt, ldy, acc); break;
                default: tile_nt<WT, 1>(nt, xt, ldx, K, w, n, yt, ldy, acc); break;
            }
        }
    }
}

}  // namespace

void matmul_rows_avx512(const float* x, int64_t ldx, int64_t T, int64_t K, const void* w, DType wt, int64_t n0,
                        int64_t n1, float* y, int64_t ldy, bool accumulate) {
    const char* wc = static_cast<const char*>(w);
    switch (wt) {
        case DType::BF16: rows<DType::BF16>(x, ldx, T, K, wc, n0, n1, y, ldy, accumulate); break;
        case DType::F16: rows<DType::F16>(x, ldx, T, K, wc, n0, n1, y, ldy, accumulate); break;
        default: rows<DType::F32>(x, ldx, T, K, wc, n0, n1, y, ldy, accumulate); break;
    }
}

}  // namespace qnext::kern::cpu
