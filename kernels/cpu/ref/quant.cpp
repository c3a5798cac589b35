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
    {QType::Q6_K, "q6_K", 256, 210},
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
    {QType::Q6_K, DType::Q6_K},
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
        }
    }
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
        default:
            throw std::invalid_argument(std::string("quantize_row: ") + std::string(info(type).name) +
                                        " quantization is not implemented (q8_0, f16, bf16, f32 are)");
    }
}

}  // namespace ref
}  // namespace qnext::kern
