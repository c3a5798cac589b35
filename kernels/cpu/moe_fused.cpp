// kernels/cpu/moe_fused.cpp: the whole sparse MoE block for a few tokens (decode) in three pool
// dispatches: router GEMV (rows split) -> routing on the caller -> gate+up+SiLU of every selected expert
// and of the shared expert (row blocks of all of them split over workers) -> down projections with
// the routing weights (output rows split). Three joins instead of ~35 per layer, which matters most
// when the cores are shared. Larger T uses the grouped path (cpu/matmul.cpp: gather tokens per
// expert, GEMM, scatter-add). Compared against cpu/ref by tests/kernels/test_ops.cpp (moe_block cases).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/ref/ref.h"

namespace qnext::kern::cpu {
namespace {

struct Slot {                 // one (token, expert) pair; the shared expert is a slot too
    int64_t t = 0;            // token
    const FfnWeights* w = nullptr;
    float weight = 0.0f;      // routing weight (shared expert: sigmoid(x . shared_gate), set in phase 1)
    int64_t h_off = 0;        // offset of this slot's [F] activations in the scratch buffer
    bool shared = false;
};

constexpr int64_t kRows = 32;  // row block for work items

void moe_fused(const Tensor& x, const MoeBlockWeights& mw, const Tensor& out) {
    const int64_t T = x.dim(0), D = x.dim(1), E = mw.router.dim(0), K = mw.top_k;
    const MatmulRowsFn fn = matmul_rows_fn();
    const bool has_shared = !mw.shared.gate.empty();
    TensorBuffer logits(DType::F32, {T, E}), ids(DType::I32, {T, K}), wts(DType::F32, {T, K});
    std::vector<float> sgate(static_cast<size_t>(T));
    // Slots: T*K routed + T shared; activation offsets are known up front (F per slot).
    std::vector<Slot> slots;
    int64_t h_total = 0;
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t j = 0; j < K; ++j) {
            slots.push_back({t, nullptr, 0.0f, h_total, false});
            h_total += mw.experts[0].gate.dim(0);
        }
        if (has_shared) {
            slots.push_back({t, &mw.shared, 0.0f, h_total, true});
            h_total += mw.shared.gate.dim(0);
        }
    }
    std::vector<float> h(static_cast<size_t>(h_total)), up(static_cast<size_t>(h_total));
    // Work items of phase 1: (slot, row block).
    std::vector<std::pair<int32_t, int64_t>> items;
    for (size_t s = 0; s < slots.size(); ++s) {
        const int64_t F = slots[s].shared ? mw.shared.gate.dim(0) : mw.experts[0].gate.dim(0);
        for (int64_t r = 0; r < F; r += kRows) items.emplace_back(static_cast<int32_t>(s), r);
    }
    const float* xp = static_cast<const float*>(x.data);
    const int64_t ldx = x.stride[0];
    const int64_t n_items = static_cast<int64_t>(items.size()), n_dblocks = (D + kRows - 1) / kRows;

    // Phase 0: router logits [T, E], rows of the router split over workers.
    parallel_ranges((E + kRows - 1) / kRows, [&](int64_t b, int64_t e, int) {
        fn(xp, ldx, T, D, mw.router.data, mw.router.dtype, b * kRows, std::min(E, e * kRows), logits.f32(), E, false);
    });
    // Routing (cheap) on the caller, plus the shared-expert gates.
    ref::moe_route(logits, K, mw.norm_topk_prob, ids, wts);
    size_t si = 0;
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t j = 0; j < K; ++j, ++si) {
            slots[si].w = &mw.experts[static_cast<size_t>(ids.t().ptr<int32_t>()[t * K + j])];
            slots[si].weight = wts.f32()[t * K + j];
        }
        if (has_shared) {
            float g = 0.0f;
            fn(xp + t * ldx, ldx, 1, D, mw.shared_gate.data, mw.shared_gate.dtype, 0, 1, &g, 1, false);
            slots[si++].weight = 1.0f / (1.0f + std::exp(-g));
        }
    }
    // Block-quantized weights: x quantized once here (not per row block), each slot's h after phase 1.
    const QMatmulRowsFn qfn = qmatmul_rows_fn();
    Q8Rows xq;
    bool any_quantized = false;
    for (const Slot& sl : slots) any_quantized = any_quantized || int8_kernels(sl.w->gate.dtype) ||
                                                 int8_kernels(sl.w->up.dtype) || int8_kernels(sl.w->down.dtype);
    if (any_quantized) quantize_q8_rows(xp, ldx, T, D, xq);
    // y[r0, r1) of the slot's projection w . x_t (y indexed by row).
    auto project = [&](const Tensor& w, int64_t t, int64_t r0, int64_t r1, float* y, int64_t ld) {
        if (int8_kernels(w.dtype))
            qfn(xq, t, 1, w.data, w.dtype, r0, r1, y, ld, false);
        else
            fn(xp + t * ldx, ldx, 1, D, w.data, w.dtype, r0, r1, y, ld, false);
    };
    // Phase 1: h = silu(gate x) * (up x) for every slot, by row blocks.
    parallel_ranges(n_items, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) {
            const Slot& sl = slots[static_cast<size_t>(items[i].first)];
            const int64_t r0 = items[i].second, F = sl.w->gate.dim(0), r1 = std::min(F, r0 + kRows);
            float* hp = h.data() + sl.h_off;
            float* up_p = up.data() + sl.h_off;
            project(sl.w->gate, sl.t, r0, r1, hp, F);
            project(sl.w->up, sl.t, r0, r1, up_p, F);
            for (int64_t r = r0; r < r1; ++r) hp[r] = hp[r] / (1.0f + std::exp(-hp[r])) * up_p[r];
        }
    });
    std::vector<Q8Rows> hq(slots.size());
    for (size_t s = 0; s < slots.size(); ++s)
        if (int8_kernels(slots[s].w->down.dtype)) {
            const int64_t F = slots[s].w->gate.dim(0);
            quantize_q8_rows(h.data() + slots[s].h_off, F, 1, F, hq[s]);
        }
    // Phase 2: out[t, n] = sum over the token's slots of weight * (down[n, :] . h), by output rows: each
    // worker takes a contiguous range of rows and streams it slot by slot (long reads of each down matrix).
    parallel_ranges(n_dblocks, [&](int64_t b0, int64_t b1, int) {
        const int64_t n0 = b0 * kRows, n1 = std::min(D, b1 * kRows);
        if (n0 >= n1) return;
        std::vector<float> y(static_cast<size_t>(n1 - n0));
        for (int64_t t = 0; t < T; ++t) std::fill(detail::frow(out, t) + n0, detail::frow(out, t) + n1, 0.0f);
        for (size_t s = 0; s < slots.size(); ++s) {
            const Slot& sl = slots[s];
            const int64_t F = sl.w->gate.dim(0);
            // y[0 .. n1-n0) = down rows [n0, n1) . h
            const char* down = static_cast<const char*>(sl.w->down.data) + dtype_bytes(sl.w->down.dtype, n0 * F);
            if (int8_kernels(sl.w->down.dtype))
                qfn(hq[s], 0, 1, down, sl.w->down.dtype, 0, n1 - n0, y.data(), 0, false);
            else
                fn(h.data() + sl.h_off, F, 1, F, down, sl.w->down.dtype, 0, n1 - n0, y.data(), 0, false);
            float* o = detail::frow(out, sl.t);
            for (int64_t n = n0; n < n1; ++n) o[n] += sl.weight * y[static_cast<size_t>(n - n0)];
        }
    });
}

}  // namespace

void moe_block(const Tensor& x, const MoeBlockWeights& w, const Tensor& out) {
    const int64_t T = x.dim(0), E = w.router.dim(0);
    if (T <= kFusedMoeMaxTokens) {
        moe_fused(x, w, out);
        return;
    }
    TensorBuffer logits(DType::F32, {T, E}), ids(DType::I32, {T, w.top_k}), wts(DType::F32, {T, w.top_k});
    cpu::matmul(x, w.router, logits, false);
    ref::moe_route(logits, w.top_k, w.norm_topk_prob, ids, wts);
    cpu::moe_experts(x, w.experts, ids, wts, out, false);
    if (!w.shared.gate.empty()) cpu::shared_expert(x, w.shared, w.shared_gate, out, true);
}

}  // namespace qnext::kern::cpu
