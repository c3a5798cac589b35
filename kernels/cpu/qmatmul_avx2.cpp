// kernels/cpu/qmatmul_avx2.cpp: the integer kernels of qmatmul_impl.h with AVX2 (maddubs + madd), and the
// activation quantization. Compiled with -mavx2 -mfma -mf16c; called only after the run-time CPU check.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cpu/qmatmul_impl.h"

namespace qnext::kern::cpu {

void qmatmul_rows_avx2(const Q8Rows& x, int64_t t0, int64_t nt, const void* w, DType wt, int64_t n0, int64_t n1,
                       float* y, int64_t ldy, bool accumulate) {
    qimpl::qmatmul_rows<false>(x, t0, nt, w, wt, n0, n1, y, ldy, accumulate);
}

namespace {

// max |x[i]| over n values (n a multiple of 8).
float amax_of(const float* x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

int hsum_i32(__m256i a) {
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0x4E));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0xB1));
    return _mm_cvtsi128_si32(r);
}

// q[0..32) = round-half-even(x * id), in element order; sums[h] = sum of q over the h-th 16 values.
void quantize32(const float* x, __m256 id, int8_t* q, int sums[2]) {
    __m256i qi[4];
    for (int i = 0; i < 4; ++i) qi[i] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i * 8), id));
    // packs interleave 128-bit lanes; the permute restores element order.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    sums[0] = hsum_i32(_mm256_add_epi32(qi[0], qi[1]));
    sums[1] = hsum_i32(_mm256_add_epi32(qi[2], qi[3]));
}

__m256 inverse_scale(float amax) { return _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f); }

}  // namespace

void quantize_q8_rows_avx2(const float* x, int64_t ldx, int64_t t0, int64_t t1, Q8Rows& o) {
    const int64_t K = o.K;
    int sums[2];
    for (int64_t t = t0; t < t1; ++t) {
        const float* xr = x + t * ldx;
        // Per 32 (the 32-value formats): a scale per block, scaled sums per 16.
        float* d = o.d.data() + t * (K / 32);
        float* s = o.s16.data() + t * (K / 16);
        for (int64_t b = 0; b < K / 32; ++b) {
            const float amax = amax_of(xr + b * 32, 32);
            d[b] = amax / 127.0f;
            quantize32(xr + b * 32, inverse_scale(amax), o.q.data() + t * K + b * 32, sums);
            s[2 * b] = d[b] * static_cast<float>(sums[0]);
            s[2 * b + 1] = d[b] * static_cast<float>(sums[1]);
        }
        // Per 256 (the K-quants): one scale per super-block, sums per 16 as int16.
        if (o.qk.empty()) continue;
        for (int64_t sb = 0; sb < K / 256; ++sb) {
            const float amax = amax_of(xr + sb * 256, 256);
            o.dk[static_cast<size_t>(t * (K / 256) + sb)] = amax / 127.0f;
            int16_t* bs = o.bsums.data() + t * (K / 16) + sb * 16;
            for (int b = 0; b < 8; ++b) {
                quantize32(xr + sb * 256 + b * 32, inverse_scale(amax), o.qk.data() + t * K + sb * 256 + b * 32, sums);
                bs[2 * b] = static_cast<int16_t>(sums[0]);
                bs[2 * b + 1] = static_cast<int16_t>(sums[1]);
            }
        }
    }
}

}  // namespace qnext::kern::cpu
