// kernels/cpu/ref/attention.cpp: reference causal GQA attention over a KV cache with the optional
// sigmoid output gate (fp64 scores/softmax/weighted sum).
// Covered by tests/kernels/test_ops.cpp (Ref.AttentionOneHot and the fast-vs-ref attention cases).
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/ref/ref.h"

namespace qnext::kern::ref {

void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
               float scale, const Tensor& gate, const Tensor& out) {
    const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), Hkv = k_cache.dim(1);
    const int64_t group = Hq / Hkv;
    auto kv_ptr = [](const Tensor& c, int64_t s, int64_t h) {
        return static_cast<const char*>(c.data) +
               (s * c.stride[0] + h * c.stride[1]) * static_cast<int64_t>(dtype_size(c.dtype));
    };
    std::vector<double> p;
    for (int64_t t = 0; t < T; ++t) {
        const int64_t n_keys = n_past + t + 1;
        p.assign(static_cast<size_t>(n_keys), 0.0);
        for (int64_t h = 0; h < Hq; ++h) {
            const int64_t hkv = h / group;
            const float* qh = detail::at3(q, t, h);
            double mx = -INFINITY;
            for (int64_t s = 0; s < n_keys; ++s) {
                const void* kr = kv_ptr(k_cache, s, hkv);
                double acc = 0;
                for (int64_t i = 0; i < D; ++i) acc += double(qh[i]) * detail::load(kr, k_cache.dtype, i);
                p[s] = acc * scale;
                mx = std::fmax(mx, p[s]);
            }
            double sum = 0;
            for (int64_t s = 0; s < n_keys; ++s) sum += (p[s] = std::exp(p[s] - mx));
            std::vector<double> o(static_cast<size_t>(D), 0.0);
            for (int64_t s = 0; s < n_keys; ++s) {
                const void* vr = kv_ptr(v_cache, s, hkv);
                for (int64_t i = 0; i < D; ++i) o[i] += p[s] / sum * detail::load(vr, v_cache.dtype, i);
            }
            float* oh = detail::at3(out, t, h);
            const float* gh = gate.empty() ? nullptr : detail::at3(gate, t, h);
            for (int64_t i = 0; i < D; ++i) {
                const float r = static_cast<float>(o[i]);
                oh[i] = gh ? r * detail::sigmoid_f(gh[i]) : r;
            }
        }
    }
}

}  // namespace qnext::kern::ref
