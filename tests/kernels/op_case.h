// tests/kernels/op_case.h: the test-backend-ops style harness used by test_ops.cpp. An OpCase builds
// its inputs from a printed seed, runs the op through the public kernels/ops.h API under one backend
// and returns named outputs; the harness runs it under the reference and the fast CPU backend and
// compares output by output: NaN, then Inf, then NMSE = sum((a-b)^2)/sum(b^2) against the case's
// threshold (also reporting the max abs error and its index).
#pragma once
#include <cmath>
#include <cstring>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "kernels/backend.h"
#include "kernels/ops.h"

namespace qnext::kern::test {

using Outputs = std::vector<std::pair<std::string, std::vector<float>>>;

struct OpCase {
    std::string op;    // e.g. "matmul"
    std::string vars;  // e.g. "T=5,K=130,N=7,w=bf16"
    uint64_t seed = 0;
    double max_nmse = 1e-10;
    std::function<Outputs(uint64_t seed)> run;  // runs under the current backend
};

// Deterministic generators for realistic input ranges.
struct Rng {
    std::mt19937_64 gen;
    explicit Rng(uint64_t seed) : gen(seed) {}
    float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(gen); }
    float normal(float sd = 1.0f) { return std::normal_distribution<float>(0.0f, sd)(gen); }
    std::vector<float> normals(size_t n, float sd = 1.0f) {
        std::vector<float> v(n);
        for (float& x : v) x = normal(sd);
        return v;
    }
    std::vector<float> uniforms(size_t n, float lo, float hi) {
        std::vector<float> v(n);
        for (float& x : v) x = uniform(lo, hi);
        return v;
    }
};

// Byte offsets of the f16 scale fields (d, and dmin/m where the format has one) in a GGML block.
inline std::vector<int> block_scale_offsets(DType t) {
    switch (t) {
        case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: return {0, 2};
        case DType::Q2_K: return {80, 82};
        case DType::Q3_K: return {108};
        case DType::Q6_K: return {208};
        default: return {0};
    }
}

// Rough largest |quant x sub-block scale| of a format: the f16 scales are divided by it so that the
// dequantized values come out near the requested spread.
inline float block_gain(DType t) {
    switch (t) {
        case DType::Q4_0: case DType::Q4_1: return 4;
        case DType::Q5_0: case DType::Q5_1: return 8;
        case DType::Q8_0: return 64;
        case DType::Q2_K: return 20;
        case DType::Q3_K: return 64;
        case DType::Q4_K: return 256;
        case DType::Q5_K: return 512;
        case DType::Q6_K: return 1024;
        case DType::F8_B128: return 200;
        default: return 1;
    }
}

// Storage of a given dtype filled from f32 values (bf16/f16 rounded), viewed as a contiguous tensor.
// Block-quantized dtypes get random blocks instead: random quant bits and small random f16 scales (values
// near the spread sd of `vals`; the values themselves are not used), so every bit pattern of the quants is exercised.
struct Stored {
    DType dtype = DType::F32;
    std::vector<float> f;
    std::vector<uint16_t> h;
    std::vector<uint8_t> q;
    Stored(DType dt, const std::vector<float>& vals, uint64_t seed = 7) : dtype(dt) {
        if (is_quantized(dt)) {
            std::mt19937_64 gen(seed ^ (vals.size() * 0x9E3779B97F4A7C15ull));
            q.resize(dtype_bytes(dt, static_cast<int64_t>(vals.size())));
            for (uint8_t& b : q) b = static_cast<uint8_t>(gen());
            const double sd = vals.empty() ? 1.0 : std::sqrt(std::inner_product(vals.begin(), vals.end(), vals.begin(), 0.0) /
                                                             static_cast<double>(vals.size()));
            std::normal_distribution<float> nd(0.0f, static_cast<float>(sd / block_gain(dt)));
            if (dt == DType::F8_B128) {   // e4m3 bytes without the NaN codes, a positive f32 scale per block
                for (size_t b = 0; b < q.size(); b += 132) {
                    const float scale = std::fabs(nd(gen)) + 1e-3f;
                    std::memcpy(q.data() + b, &scale, 4);
                    for (size_t i = 4; i < 132; ++i)
                        if ((q[b + i] & 0x7F) == 0x7F) q[b + i] &= 0xF7;
                }
                return;
            }
            for (size_t b = 0; b < q.size(); b += dtype_block_bytes(dt))
                for (int off : block_scale_offsets(dt)) {
                    const uint16_t v = f32_to_f16(off == 0 || dt == DType::Q2_K ? std::fabs(nd(gen)) : nd(gen));
                    q[b + off] = static_cast<uint8_t>(v & 0xff);
                    q[b + off + 1] = static_cast<uint8_t>(v >> 8);
                }
        } else if (dt == DType::F32) {
            f = vals;
        } else {
            h.resize(vals.size());
            for (size_t i = 0; i < vals.size(); ++i) h[i] = dt == DType::BF16 ? f32_to_bf16(vals[i]) : f32_to_f16(vals[i]);
        }
    }
    const void* data() const {
        if (is_quantized(dtype)) return q.data();
        return dtype == DType::F32 ? static_cast<const void*>(f.data()) : h.data();
    }
    Tensor view(std::initializer_list<int64_t> shape) const { return Tensor::view(data(), dtype, shape); }
};

struct Compare {
    bool ok = true;
    std::string msg;
};

inline Compare compare(const std::string& name, const std::vector<float>& got, const std::vector<float>& want,
                       double max_nmse) {
    Compare c;
    std::ostringstream os;
    if (got.size() != want.size()) {
        os << name << ": size " << got.size() << " vs " << want.size();
        return {false, os.str()};
    }
    double num = 0, den = 0, max_err = 0;
    size_t max_i = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(got[i]) != std::isnan(want[i])) {
            os << name << ": NaN mismatch at " << i << " (got " << got[i] << ", want " << want[i] << ")";
            return {false, os.str()};
        }
        if (std::isinf(got[i]) || std::isinf(want[i])) {
            os << name << ": Inf at " << i << " (got " << got[i] << ", want " << want[i] << ")";
            return {false, os.str()};
        }
        const double d = double(got[i]) - want[i];
        num += d * d;
        den += double(want[i]) * want[i];
        if (std::fabs(d) > max_err) {
            max_err = std::fabs(d);
            max_i = i;
        }
    }
    const double nmse = den > 0 ? num / den : num;
    os << name << ": nmse " << nmse << " (max " << max_nmse << "), max abs err " << max_err << " at " << max_i;
    c.msg = os.str();
    c.ok = nmse <= max_nmse;
    return c;
}

// Runs `fn` with the given backend active, restoring the previous one afterwards.
template <class F>
auto with_backend(Backend b, F&& fn) {
    const Backend prev = backend();
    set_backend(b);
    struct Restore {
        Backend p;
        ~Restore() { set_backend(p); }
    } restore{prev};
    return fn();
}

}  // namespace qnext::kern::test
