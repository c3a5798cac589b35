// kernels/cpu/common.h: small internal helpers shared by the reference and fast CPU kernels
// (element loads from F32/BF16/F16 storage). Not a public header: model code uses kernels/ops.h.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/tensor.h"

namespace qnext::kern::detail {

// Element i of a contiguous row stored as `dt` (F32 | BF16 | F16), as f32.
inline float load(const void* row, DType dt, int64_t i) {
    switch (dt) {
        case DType::F32: return static_cast<const float*>(row)[i];
        case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(row)[i]);
        case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(row)[i]);
        case DType::I32: return static_cast<float>(static_cast<const int32_t*>(row)[i]);
        default: break;  // block formats are not element-addressable: ops dequantize whole rows
    }
    return std::nanf("");
}
inline void store(void* row, DType dt, int64_t i, float v) {
    switch (dt) {
        case DType::F32: static_cast<float*>(row)[i] = v; break;
        case DType::BF16: static_cast<uint16_t*>(row)[i] = f32_to_bf16(v); break;
        case DType::F16: static_cast<uint16_t*>(row)[i] = f32_to_f16(v); break;
        case DType::I32: static_cast<int32_t*>(row)[i] = static_cast<int32_t>(v); break;
        default: break;  // never a destination: ops write f32/bf16/f16 only
    }
}
inline float* frow(const Tensor& t, int64_t r) { return static_cast<float*>(t.row_ptr(r)); }
// Address of element [i0, i1, ...] of a rank-3 view.
inline float* at3(const Tensor& t, int64_t i0, int64_t i1) {
    return static_cast<float*>(t.data) + i0 * t.stride[0] + i1 * t.stride[1];
}
inline float* at2(const Tensor& t, int64_t i0) { return static_cast<float*>(t.data) + i0 * t.stride[0]; }

inline float silu_f(float x) { return x / (1.0f + std::exp(-x)); }
inline float sigmoid_f(float x) { return 1.0f / (1.0f + std::exp(-x)); }
// torch.nn.functional.softplus(beta=1, threshold=20)
inline float softplus_f(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

}  // namespace qnext::kern::detail
