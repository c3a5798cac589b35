// kernels/cpu/ref/basic.cpp: reference embedding, norms, RoPE and elementwise ops.
// fp64 accumulation for reductions; RoPE angles in fp32 on purpose (HF computes them in fp32).
// Covered by tests/kernels/test_ops.cpp (Ref.* hand cases; fast paths compare against these).
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/ref/ref.h"
#include "kernels/quant.h"

namespace qnext::kern::ref {
using detail::frow;
using detail::load;

void embed_rows(const Tensor& table, std::span<const int32_t> ids, const Tensor& out) {
    const int64_t D = table.dim(1);
    for (size_t t = 0; t < ids.size(); ++t) {
        const void* src = table.row_ptr(ids[t]);
        float* dst = frow(out, static_cast<int64_t>(t));
        if (is_quantized(table.dtype))
            dequantize_row(qtype_of(table.dtype), src, dst, D);
        else
            for (int64_t i = 0; i < D; ++i) dst[i] = load(src, table.dtype, i);
    }
}

void rms_norm(const Tensor& x, const Tensor& w, float eps, NormKind kind, const Tensor& out) {
    const int64_t D = x.dim(-1);
    for (int64_t r = 0; r < x.rows(); ++r) {
        const float* xr = frow(x, r);
        double ss = 0;
        for (int64_t i = 0; i < D; ++i) ss += double(xr[i]) * xr[i];
        const float rstd = static_cast<float>(1.0 / std::sqrt(ss / double(D) + double(eps)));
        float* o = frow(out, r);
        for (int64_t i = 0; i < D; ++i) {
            const float wi = load(w.data, w.dtype, i);
            o[i] = xr[i] * rstd * (kind == NormKind::ZeroCentered ? 1.0f + wi : wi);
        }
    }
}

void rms_norm_gated(const Tensor& x, const Tensor& z, const Tensor& w, float eps, const Tensor& out) {
    const int64_t D = x.dim(-1);
    for (int64_t r = 0; r < x.rows(); ++r) {
        const float* xr = frow(x, r);
        const float* zr = frow(z, r);
        double ss = 0;
        for (int64_t i = 0; i < D; ++i) ss += double(xr[i]) * xr[i];
        const float rstd = static_cast<float>(1.0 / std::sqrt(ss / double(D) + double(eps)));
        float* o = frow(out, r);
        for (int64_t i = 0; i < D; ++i)
            o[i] = xr[i] * rstd * load(w.data, w.dtype, i) * detail::silu_f(zr[i]);
    }
}

void l2_norm(const Tensor& x, float eps, const Tensor& out) {
    const int64_t D = x.dim(-1);
    for (int64_t r = 0; r < x.rows(); ++r) {
        const float* xr = frow(x, r);
        double ss = 0;
        for (int64_t i = 0; i < D; ++i) ss += double(xr[i]) * xr[i];
        const float inv = static_cast<float>(1.0 / std::sqrt(ss + double(eps)));
        float* o = frow(out, r);
        for (int64_t i = 0; i < D; ++i) o[i] = xr[i] * inv;
    }
}

void rope_neox(const Tensor& x, std::span<const int64_t> positions, int64_t rot_dim, double theta) {
    const int64_t T = x.dim(0), H = x.dim(1), half = rot_dim / 2;
    std::vector<float> inv_freq(static_cast<size_t>(half));
    for (int64_t j = 0; j < half; ++j)  // HF: 1 / base ** (arange(0, dim, 2).float() / dim), fp32
        inv_freq[j] = 1.0f / std::pow(static_cast<float>(theta),
                                      static_cast<float>(2 * j) / static_cast<float>(rot_dim));
    for (int64_t t = 0; t < T; ++t) {
        const float pos = static_cast<float>(positions[t]);
        for (int64_t h = 0; h < H; ++h) {
            float* v = detail::at3(x, t, h);
            for (int64_t j = 0; j < half; ++j) {
                const float f = pos * inv_freq[j];
                const float c = std::cos(f), s = std::sin(f);
                const float x1 = v[j], x2 = v[j + half];
                v[j] = x1 * c - x2 * s;         // x*cos + rotate_half(x)*sin, rotate_half = [-x2, x1]
                v[j + half] = x2 * c + x1 * s;
            }
        }
    }
}

void copy(const Tensor& src, const Tensor& dst) {
    const int64_t D = src.dim(-1);
    std::vector<float> tmp(static_cast<size_t>(D));
    for (int64_t r = 0; r < src.rows(); ++r) {  // via a temp row: src and dst may overlap exactly
        const void* s = src.row_ptr(r);
        for (int64_t i = 0; i < D; ++i) tmp[i] = load(s, src.dtype, i);
        void* d = dst.row_ptr(r);
        for (int64_t i = 0; i < D; ++i) detail::store(d, dst.dtype, i, tmp[i]);
    }
}

void fill(const Tensor& dst, float value) {
    for (int64_t r = 0; r < dst.rows(); ++r) {
        float* d = frow(dst, r);
        for (int64_t i = 0; i < dst.dim(-1); ++i) d[i] = value;
    }
}

void binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) {
    const int64_t D = a.dim(-1);
    for (int64_t r = 0; r < a.rows(); ++r) {
        const float* pa = frow(a, r);
        const float* pb = frow(b, r);
        float* o = frow(out, r);
        for (int64_t i = 0; i < D; ++i) {
            switch (op) {
                case Binary::Add: o[i] = pa[i] + pb[i]; break;
                case Binary::Mul: o[i] = pa[i] * pb[i]; break;
                case Binary::SiluMul: o[i] = detail::silu_f(pa[i]) * pb[i]; break;
                case Binary::MulSigmoid: o[i] = pa[i] * detail::sigmoid_f(pb[i]); break;
            }
        }
    }
}

void unary(Unary op, const Tensor& x, float s, const Tensor& out) {
    const int64_t D = x.dim(-1);
    for (int64_t r = 0; r < x.rows(); ++r) {
        const float* px = frow(x, r);
        float* o = frow(out, r);
        for (int64_t i = 0; i < D; ++i) {
            switch (op) {
                case Unary::Silu: o[i] = detail::silu_f(px[i]); break;
                case Unary::Sigmoid: o[i] = detail::sigmoid_f(px[i]); break;
                case Unary::Scale: o[i] = px[i] * s; break;
            }
        }
    }
}

void softmax(const Tensor& x, const Tensor& out) {
    const int64_t D = x.dim(-1);
    for (int64_t r = 0; r < x.rows(); ++r) {
        const float* px = frow(x, r);
        float* o = frow(out, r);
        float mx = px[0];
        for (int64_t i = 1; i < D; ++i) mx = std::fmax(mx, px[i]);
        double sum = 0;
        for (int64_t i = 0; i < D; ++i) sum += std::exp(double(px[i]) - mx);
        for (int64_t i = 0; i < D; ++i) o[i] = static_cast<float>(std::exp(double(px[i]) - mx) / sum);
    }
}

}  // namespace qnext::kern::ref
