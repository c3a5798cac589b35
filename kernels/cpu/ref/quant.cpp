// Reference dequantizers of the GGML block formats, written from the format definitions: plain loops,
// one value at a time, in the operation order of gguf-py's numpy reference (d*scale first, then times
// the quant, minus dmin*min), so results are bit-exact with it.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/quant.h"
#include "kernels/tensor.h"

namespace qnext::kern {
namespace {

constexpr QTypeInfo kTypes[] = {
    {QType::F32, "f32", 1, 4},         {QType::F16, "f16", 1, 2},          {QType::BF16, "bf16", 1, 2},
    {QType::Q4_0, "q4_0", 32, 18},     {QType::Q4_1, "q4_1", 32, 20},      {QType::Q5_0, "q5_0", 32, 22},
    {QType::Q5_1, "q5_1", 32, 24},     {QType::Q8_0, "q8_0", 32, 34},      {QType::Q2_K, "q2_K", 256, 84},
    {QType::Q3_K, "q3_K", 256, 110},   {QType::Q4_K, "q4_K", 256, 144},    {QType::Q5_K, "q5_K", 256, 176},
    {QType::Q6_K, "q6_K", 256, 210},   {QType::F8_B128, "f8_e4m3_b128", 128, 132},
};

const QTypeInfo& info(QType t) {
    for (const auto& i : kTypes)
        if (i.type == t) return i;
    throw std::invalid_argument("unsupported quantization type id " + std::to_string(static_cast<uint32_t>(t)));
}

float f16_at(const uint8_t* p) { return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) packed in 12 bytes.
void scale_min_k4(const uint8_t* s, int j, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

void block_q4_0(const uint8_t* b, float* y) {
    const float d = f16_at(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
}

void block_q4_1(const uint8_t* b, float* y) {
    const float d = f16_at(b), m = f16_at(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        y[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
        y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
    }
}

void block_q5(const uint8_t* b, float* y, bool with_min) {
    const float d = f16_at(b);
    const float m = with_min ? f16_at(b + 2) : 0.0f;
    const uint8_t* h = b + (with_min ? 4 : 2);
    const uint32_t qh = h[0] | (h[1] << 8) | (h[2] << 16) | (static_cast<uint32_t>(h[3]) << 24);
    const uint8_t* qs = h + 4;
    for (int j = 0; j < 16; ++j) {
        const int lo = (qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
        const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
        if (with_min) {
            y[j] = d * static_cast<float>(lo) + m;
            y[j + 16] = d * static_cast<float>(hi) + m;
        } else {
            y[j] = static_cast<float>(lo - 16) * d;
            y[j + 16] = static_cast<float>(hi - 16) * d;
        }
    }
}

void block_q8_0(const uint8_t* b, float* y) {
    const float d = f16_at(b);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

void block_q2_k(const uint8_t* b, float* y) {
    const uint8_t* scales = b;
    const uint8_t* qs = b + 16;
    const float d = f16_at(b + 80), dmin = f16_at(b + 82);
    for (int i = 0; i < 256; ++i) {
        const int half = i / 128, shift = (i % 128) / 32;
        const int q = (qs[half * 32 + i % 32] >> (2 * shift)) & 3;
        const uint8_t sc = scales[i / 16];
        const float dl = d * static_cast<float>(sc & 0x0F), ml = dmin * static_cast<float>(sc >> 4);
        y[i] = dl * static_cast<float>(q) - ml;
    }
}

void block_q3_k(const uint8_t* b, float* y) {
    const uint8_t* hmask = b;
    const uint8_t* qs = b + 32;
    const uint8_t* s = b + 96;
    const float d = f16_at(b + 108);
    for (int i = 0; i < 256; ++i) {
        const int j = i / 16;   // sub-block of 16
        const int lo = j < 8 ? (s[j] & 0x0F) : (s[j - 8] >> 4);
        const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        const int sc = (lo | (hi << 4)) - 32;
        const int half = i / 128, shift = (i % 128) / 32;
        const int ql = (qs[half * 32 + i % 32] >> (2 * shift)) & 3;
        const int bit = (hmask[i % 32] >> (i / 32)) & 1;
        const int q = ql - (bit ? 0 : 4);
        y[i] = d * static_cast<float>(sc) * static_cast<float>(q);
    }
}

void block_q45_k(const uint8_t* b, float* y, bool five) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t* s = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* qs = b + (five ? 48 : 16);
    for (int i = 0; i < 256; ++i) {
        const int sub = i / 32, chunk = i / 64, l = i % 32;
        int sc = 0, m = 0;
        scale_min_k4(s, sub, sc, m);
        int q = sub % 2 == 0 ? (qs[chunk * 32 + l] & 0x0F) : (qs[chunk * 32 + l] >> 4);
        if (five) q |= ((qh[l] >> sub) & 1) << 4;
        const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
        y[i] = dl * static_cast<float>(q) - ml;
    }
}

void block_q6_k(const uint8_t* b, float* y) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = f16_at(b + 208);
    for (int i = 0; i < 256; ++i) {
        const int half = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
        const uint8_t lbyte = ql[half * 64 + (quarter % 2) * 32 + l];
        const int lo = quarter < 2 ? (lbyte & 0x0F) : (lbyte >> 4);
        const int hi = (qh[half * 32 + l] >> (2 * quarter)) & 3;
        const int q = (lo | (hi << 4)) - 32;
        const float dl = d * static_cast<float>(sc[half * 8 + quarter * 2 + l / 16]);
        y[i] = dl * static_cast<float>(q);
    }
}


// ---- quantizers ---------------------------------------------------------------------------------------------
// Q8_0 follows llama.cpp's reference exactly. The others fit each (sub-)block by weighted least squares over a
// small grid of candidate scales (importance w_i = rms(x) + |x_i|, the usual choice for these formats), then
// quantize the sub-block scales themselves, then re-round every value against the final scales.

int nearest(float v) { return static_cast<int>(std::nearbyint(v)); }
void put_f16(uint8_t* p, float v) {
    const uint16_t h = f32_to_f16(v);
    p[0] = static_cast<uint8_t>(h & 0xff);
    p[1] = static_cast<uint8_t>(h >> 8);
}

// Fits x[i] ~ scale * q[i] + mn with q in [0, nmax] (mn <= 0): returns scale, sets mn. Weighted by w.
float fit_affine(const float* x, const float* w, int n, int nmax, float& mn) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    lo = std::min(lo, 0.0f);
    if (hi <= lo) {
        mn = lo;
        return 0.0f;
    }
    float best_err = INFINITY, best_scale = (hi - lo) / static_cast<float>(nmax), best_min = lo;
    for (int step = 0; step <= 20; ++step) {
        const float iscale = (static_cast<float>(nmax) - 1.0f + 0.1f * static_cast<float>(step)) / (hi - lo);
        double sw = 0, sq = 0, sq2 = 0, sx = 0, sqx = 0;
        int q[256];
        for (int i = 0; i < n; ++i) {
            q[i] = std::clamp(nearest(iscale * (x[i] - lo)), 0, nmax);
            sw += w[i], sq += w[i] * q[i], sq2 += w[i] * q[i] * q[i], sx += w[i] * x[i], sqx += w[i] * q[i] * x[i];
        }
        const double D = sw * sq2 - sq * sq;
        if (D <= 0) continue;
        double scale = (sw * sqx - sx * sq) / D, m = (sq2 * sx - sq * sqx) / D;
        if (m > 0) m = 0, scale = sq2 > 0 ? sqx / sq2 : 0;
        double err = 0;
        for (int i = 0; i < n; ++i) {
            const double e = scale * q[i] + m - x[i];
            err += w[i] * e * e;
        }
        if (err < best_err) best_err = static_cast<float>(err), best_scale = static_cast<float>(scale), best_min = static_cast<float>(m);
    }
    mn = best_min;
    return best_scale;
}

// Fits x[i] ~ scale * q[i] with q in [-nmax, nmax - 1] (the extreme value may map to -nmax): returns scale.
float fit_symmetric(const float* x, const float* w, int n, int nmax) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), vmax = x[i];
    if (amax == 0) return 0.0f;
    float best_err = INFINITY, best = -vmax / static_cast<float>(nmax);
    for (int step = -9; step <= 9; ++step) {
        const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / vmax;
        double sqx = 0, sq2 = 0;
        int q[32];
        for (int i = 0; i < n; ++i) {
            q[i] = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
            sqx += w[i] * q[i] * x[i], sq2 += w[i] * q[i] * q[i];
        }
        if (sq2 <= 0) continue;
        const double scale = sqx / sq2;
        double err = 0;
        for (int i = 0; i < n; ++i) {
            const double e = scale * q[i] - x[i];
            err += w[i] * e * e;
        }
        if (err < best_err) best_err = static_cast<float>(err), best = static_cast<float>(scale);
    }
    return best;
}

void importance(const float* x, int n, float* w) {
    double s = 0;
    for (int i = 0; i < n; ++i) s += double(x[i]) * x[i];
    const float av = static_cast<float>(std::sqrt(s / n));
    for (int i = 0; i < n; ++i) w[i] = av + std::fabs(x[i]);
}

// Q4_K / Q5_K: 8 sub-blocks of 32, each x ~ d*sc*q - dmin*m with 6-bit sc, m.
void quantize_q45_k(const float* x, uint8_t* b, bool five) {
    const int nmax = five ? 31 : 15;
    float scale[8], mins[8], w[256];
    importance(x, 256, w);
    for (int j = 0; j < 8; ++j) {
        float mn;
        scale[j] = fit_affine(x + 32 * j, w + 32 * j, 32, nmax, mn);
        mins[j] = -mn;
    }
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) max_scale = std::max(max_scale, scale[j]), max_min = std::max(max_min, mins[j]);
    const float isc = max_scale > 0 ? 63.0f / max_scale : 0.0f, imn = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t* s = b + 4;
    std::fill_n(s, 12, 0);
    int ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        ls[j] = std::clamp(nearest(isc * scale[j]), 0, 63);
        lm[j] = std::clamp(nearest(imn * mins[j]), 0, 63);
        if (j < 4) {
            s[j] = static_cast<uint8_t>(ls[j]);
            s[j + 4] = static_cast<uint8_t>(lm[j]);
        } else {
            s[j + 4] = static_cast<uint8_t>((ls[j] & 0x0F) | ((lm[j] & 0x0F) << 4));
            s[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
            s[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
        }
    }
    put_f16(b, max_scale / 63.0f);
    put_f16(b + 2, max_min / 63.0f);
    const float d = f16_at(b), dmin = f16_at(b + 2);
    uint8_t* qh = b + 16;
    uint8_t* qs = b + (five ? 48 : 16);
    if (five) std::fill_n(qh, 32, 0);
    for (int j = 0; j < 8; ++j) {
        int sc = 0, m = 0;
        scale_min_k4(s, j, sc, m);
        const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
        for (int l = 0; l < 32; ++l) {
            const int q = dl > 0 ? std::clamp(nearest((x[32 * j + l] + ml) / dl), 0, nmax) : 0;
            uint8_t& byte = qs[(j / 2) * 32 + l];
            if (j % 2 == 0) byte = static_cast<uint8_t>(q & 0x0F);
            else byte |= static_cast<uint8_t>((q & 0x0F) << 4);
            if (five && q > 15) qh[l] |= static_cast<uint8_t>(1 << j);
        }
    }
}

// Q6_K: 16 sub-blocks of 16, x ~ d*sc*(q-32) with int8 sc, 6-bit q.
void quantize_q6_k(const float* x, uint8_t* b) {
    float scale[16], w[256];
    importance(x, 256, w);
    float amax = 0, vmax = 0;
    for (int j = 0; j < 16; ++j) {
        scale[j] = fit_symmetric(x + 16 * j, w + 16 * j, 16, 32);
        if (std::fabs(scale[j]) > amax) amax = std::fabs(scale[j]), vmax = scale[j];
    }
    int8_t* sc = reinterpret_cast<int8_t*>(b + 192);
    const float iscale = amax > 0 ? -128.0f / vmax : 0.0f;
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<int8_t>(std::clamp(nearest(iscale * scale[j]), -128, 127));
    put_f16(b + 208, amax > 0 ? 1.0f / iscale : 0.0f);
    const float d = f16_at(b + 208);
    uint8_t* ql = b;
    uint8_t* qh = b + 128;
    std::fill_n(ql, 128, 0);
    std::fill_n(qh, 64, 0);
    for (int i = 0; i < 256; ++i) {
        const float dl = d * static_cast<float>(sc[i / 16]);
        const int q = (dl != 0 ? std::clamp(nearest(x[i] / dl), -32, 31) : 0) + 32;
        const int half = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
        uint8_t& lb = ql[half * 64 + (quarter % 2) * 32 + l];
        lb |= static_cast<uint8_t>(quarter < 2 ? (q & 0x0F) : ((q & 0x0F) << 4));
        qh[half * 32 + l] |= static_cast<uint8_t>((q >> 4) << (2 * quarter));
    }
}

// Q5_0 / Q5_1 (the fallbacks of Q4_K / Q5_K for rows that are not a multiple of 256).
void quantize_q5(const float* x, uint8_t* b, bool with_min) {
    float w[32];
    importance(x, 32, w);
    float d, m = 0;
    if (with_min) {
        d = fit_affine(x, w, 32, 31, m);
    } else {
        d = fit_symmetric(x, w, 32, 16);
    }
    put_f16(b, d);
    if (with_min) put_f16(b + 2, m);
    const float dq = f16_at(b), mq = with_min ? f16_at(b + 2) : 0.0f;
    uint8_t* hp = b + (with_min ? 4 : 2);
    uint8_t* qs = hp + 4;
    uint32_t qh = 0;
    std::fill_n(qs, 16, 0);
    for (int i = 0; i < 32; ++i) {
        const int q = with_min ? (dq > 0 ? std::clamp(nearest((x[i] - mq) / dq), 0, 31) : 0)
                               : (dq != 0 ? std::clamp(nearest(x[i] / dq), -16, 15) + 16 : 16);
        qs[i % 16] |= static_cast<uint8_t>(i < 16 ? (q & 0x0F) : ((q & 0x0F) << 4));
        if (q & 0x10) qh |= 1u << i;
    }
    for (int k = 0; k < 4; ++k) hp[k] = static_cast<uint8_t>(qh >> (8 * k));
}

}  // namespace

std::optional<QTypeInfo> qtype_info(uint32_t ggml_type) {
    for (const auto& i : kTypes)
        if (static_cast<uint32_t>(i.type) == ggml_type) return i;
    return std::nullopt;
}

namespace {
constexpr std::pair<QType, DType> kDTypes[] = {
    {QType::F32, DType::F32},   {QType::F16, DType::F16},   {QType::BF16, DType::BF16}, {QType::Q4_0, DType::Q4_0},
    {QType::Q4_1, DType::Q4_1}, {QType::Q5_0, DType::Q5_0}, {QType::Q5_1, DType::Q5_1}, {QType::Q8_0, DType::Q8_0},
    {QType::Q2_K, DType::Q2_K}, {QType::Q3_K, DType::Q3_K}, {QType::Q4_K, DType::Q4_K}, {QType::Q5_K, DType::Q5_K},
    {QType::Q6_K, DType::Q6_K}, {QType::F8_B128, DType::F8_B128},
};
}  // namespace

std::optional<DType> dtype_of_ggml(uint32_t ggml_type) {
    for (const auto& [q, d] : kDTypes)
        if (static_cast<uint32_t>(q) == ggml_type) return d;
    return std::nullopt;
}

QType qtype_of(DType t) {
    for (const auto& [q, d] : kDTypes)
        if (d == t) return q;
    throw std::invalid_argument(std::string("qtype_of: ") + dtype_name(t) + " is not a weight storage type");
}

size_t qtype_row_bytes(QType type, int64_t n) {
    const QTypeInfo& t = info(type);
    if (n < 0 || n % t.block_elems != 0)
        throw std::invalid_argument(std::string(t.name) + ": a row of " + std::to_string(n) +
                                    " values is not a whole number of " + std::to_string(t.block_elems) +
                                    "-value blocks");
    return static_cast<size_t>(n / t.block_elems * t.block_bytes);
}

namespace ref {

void dequantize_row(QType type, const void* src, float* dst, int64_t n) {
    const QTypeInfo& t = info(type);
    qtype_row_bytes(type, n);   // validates n
    const auto* p = static_cast<const uint8_t*>(src);
    const int64_t blocks = n / t.block_elems;
    for (int64_t k = 0; k < blocks; ++k) {
        const uint8_t* b = p + k * t.block_bytes;
        float* y = dst + k * t.block_elems;
        switch (type) {
            case QType::F32: {
                uint32_t u = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
                __builtin_memcpy(y, &u, 4);
                break;
            }
            case QType::F16: *y = f16_at(b); break;
            case QType::BF16: *y = bf16_to_f32(static_cast<uint16_t>(b[0] | (b[1] << 8))); break;
            case QType::Q4_0: block_q4_0(b, y); break;
            case QType::Q4_1: block_q4_1(b, y); break;
            case QType::Q5_0: block_q5(b, y, false); break;
            case QType::Q5_1: block_q5(b, y, true); break;
            case QType::Q8_0: block_q8_0(b, y); break;
            case QType::Q2_K: block_q2_k(b, y); break;
            case QType::Q3_K: block_q3_k(b, y); break;
            case QType::Q4_K: block_q45_k(b, y, false); break;
            case QType::Q5_K: block_q45_k(b, y, true); break;
            case QType::Q6_K: block_q6_k(b, y); break;
            case QType::F8_B128: {
                float scale;
                uint32_t u = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
                __builtin_memcpy(&scale, &u, 4);
                for (int i = 0; i < 128; ++i) y[i] = e4m3_to_f32(b[4 + i]) * scale;
                break;
            }
        }
    }
}

float e4m3_to_f32(uint8_t b) {
    const int sign = b >> 7, exp = (b >> 3) & 0x0F, mant = b & 7;
    if (exp == 15 && mant == 7) return std::nanf("");
    const float mag = exp == 0 ? std::ldexp(static_cast<float>(mant), -9)                 // mant/8 * 2^-6
                               : std::ldexp(static_cast<float>(8 + mant), exp - 10);       // (1 + mant/8) * 2^(exp-7)
    return sign ? -mag : mag;
}

void quantize_row(QType type, const float* src, void* dst, int64_t n) {
    qtype_row_bytes(type, n);   // validates n
    auto* out = static_cast<uint8_t*>(dst);
    auto put16 = [](uint8_t* p, uint16_t v) {
        p[0] = static_cast<uint8_t>(v & 0xff);
        p[1] = static_cast<uint8_t>(v >> 8);
    };
    switch (type) {
        case QType::F32: __builtin_memcpy(out, src, static_cast<size_t>(n) * 4); return;
        case QType::F16:
            for (int64_t i = 0; i < n; ++i) put16(out + 2 * i, f32_to_f16(src[i]));
            return;
        case QType::BF16:
            for (int64_t i = 0; i < n; ++i) put16(out + 2 * i, f32_to_bf16(src[i]));
            return;
        case QType::Q8_0:
            for (int64_t b = 0; b < n / 32; ++b) {
                const float* x = src + b * 32;
                uint8_t* blk = out + b * 34;
                float amax = 0.0f;
                for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
                const float d = amax / 127.0f;
                const float id = d != 0.0f ? 1.0f / d : 0.0f;
                put16(blk, f32_to_f16(d));
                for (int i = 0; i < 32; ++i) blk[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[i] * id)));
            }
            return;
        case QType::Q4_K:
        case QType::Q5_K:
            for (int64_t b = 0; b < n / 256; ++b)
                quantize_q45_k(src + b * 256, out + b * info(type).block_bytes, type == QType::Q5_K);
            return;
        case QType::Q6_K:
            for (int64_t b = 0; b < n / 256; ++b) quantize_q6_k(src + b * 256, out + b * 210);
            return;
        case QType::Q5_0:
        case QType::Q5_1:
            for (int64_t b = 0; b < n / 32; ++b)
                quantize_q5(src + b * 32, out + b * info(type).block_bytes, type == QType::Q5_1);
            return;
        default:
            throw std::invalid_argument(std::string("quantize_row: ") + std::string(info(type).name) +
                                        " quantization is not implemented (q8_0, q6_K, q5_K, q4_K, q5_0, q5_1, f16, "
                                        "bf16, f32 are)");
    }
}

}  // namespace ref
}  // namespace qnext::kern
