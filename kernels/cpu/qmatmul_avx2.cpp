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

void quantize_q8_rows_avx2(const float* x, int64_t ldx, int64_t t0, int64_t t1, Q8Rows& o) {
    const int64_t K = o.K;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t t = t0; t < t1; ++t) {
        const float* xr = x + t * ldx;
        int8_t* q = o.q.data() + t * K;
        float* d = o.d.data() + t * (K / 32);
        float* s = o.s16.data() + t * (K / 16);
        for (int64_t b = 0; b < K / 32; ++b) {
            __m256 v[4];
            for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xr + b * 32 + i * 8);
            __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                     _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_movehdup_ps(h));
            const float amax = _mm_cvtss_f32(h);
            const float db = amax / 127.0f;
            const __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
            __m256i qi[4];
            for (int i = 0; i < 4; ++i) qi[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], id));   // round to nearest even
            const __m256i s0 = _mm256_add_epi32(qi[0], qi[1]), s1 = _mm256_add_epi32(qi[2], qi[3]);
            const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 32), _mm256_permutevar8x32_epi32(p, order));
            d[b] = db;
            const auto isum = [](__m256i a) {
                __m128i r = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
                r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0x4E));
                r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0xB1));
                return _mm_cvtsi128_si32(r);
            };
            s[2 * b] = db * static_cast<float>(isum(s0));
            s[2 * b + 1] = db * static_cast<float>(isum(s1));
        }
    }
    // Per 256 (the K-quants): one scale per super-block, sums per 16 as int16.
    if (o.qk.empty()) return;
    for (int64_t t = t0; t < t1; ++t) {
        const float* xr = x + t * ldx;
        int8_t* q = o.qk.data() + t * K;
        for (int64_t sb = 0; sb < K / 256; ++sb) {
            const float* xs = xr + sb * 256;
            __m256 m = _mm256_setzero_ps();
            for (int i = 0; i < 32; ++i) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(xs + i * 8)));
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_movehdup_ps(h));
            const float amax = _mm_cvtss_f32(h);
            o.dk[static_cast<size_t>(t * (K / 256) + sb)] = amax / 127.0f;
            const __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
            int16_t* bs = o.bsums.data() + t * (K / 16) + sb * 16;
            for (int b = 0; b < 8; ++b) {
                __m256i qi[4];
                for (int i = 0; i < 4; ++i) qi[i] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xs + b * 32 + i * 8), id));
                const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + sb * 256 + b * 32), _mm256_permutevar8x32_epi32(p, order));
                const auto isum = [](__m256i a) {
                    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
                    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0x4E));
                    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0xB1));
                    return _mm_cvtsi128_si32(r);
                };
                bs[2 * b] = static_cast<int16_t>(isum(_mm256_add_epi32(qi[0], qi[1])));
                bs[2 * b + 1] = static_cast<int16_t>(isum(_mm256_add_epi32(qi[2], qi[3])));
            }
        }
    }
}

}  // namespace qnext::kern::cpu
