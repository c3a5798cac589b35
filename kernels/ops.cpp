// kernels/ops.cpp: the dispatch layer behind kernels/ops.h. Validates every argument (errors name the
// op and the offending tensor), then calls the scalar reference (cpu/ref), the fast CPU path (cpu/),
// or, for device-resident tensors, the CUDA launcher. Covered by tests/kernels/test_ops.cpp.
#include "kernels/ops.h"

#include <stdexcept>
#include <string>

#include "kernels/backend.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/ref/ref.h"
#ifdef QNEXT_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace qnext::kern {
namespace {

[[noreturn]] void fail(const char* op, const std::string& msg) {
    throw std::invalid_argument(std::string("kernels::") + op + ": " + msg);
}
// need(ok, op, message): the message (often built from Tensor::str()) is only evaluated when the check fails,
// so validation costs a few compares per op on the hot path.
#define need(ok, op, msg)                \
    do {                                 \
        if (!(ok)) fail((op), (msg));    \
    } while (0)
bool fast() { return backend() == Backend::Cpu; }

bool is_float_storage(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

// An F32 activation on the CPU with a contiguous innermost dim.
void act(const char* op, const char* name, const Tensor& t, int rank = -1) {
    need(t.data != nullptr || t.numel() == 0, op, std::string(name) + " has no data");
    need(t.dtype == DType::F32, op, std::string(name) + " must be f32, got " + t.str());
    need(t.device == Device::CPU, op, std::string(name) + " must be on the CPU for this op, got " + t.str());
    need(rank < 0 || t.rank == rank, op, std::string(name) + " must have rank " + std::to_string(rank) + ", got " + t.str());
    need(t.rank >= 1 && (t.stride[t.rank - 1] == 1 || t.shape[t.rank - 1] == 1), op,
         std::string(name) + " needs a contiguous last dim, got " + t.str());
}
// A weight: float storage, contiguous.
void weight(const char* op, const char* name, const Tensor& t, int rank) {
    need(t.data != nullptr, op, std::string(name) + " has no data");
    need(is_float_storage(t.dtype), op, std::string(name) + " must be f32/bf16/f16, got " + t.str());
    need(t.device == Device::CPU, op, std::string(name) + " must be on the CPU, got " + t.str());
    need(t.rank == rank, op, std::string(name) + " must have rank " + std::to_string(rank) + ", got " + t.str());
    need(t.contiguous(), op, std::string(name) + " must be contiguous, got " + t.str());
}
// A weight matrix [N, K] (or [N, K] rows of a table): float storage or a GGML block format whose rows are
// whole blocks, contiguous.
void matrix(const char* op, const char* name, const Tensor& t) {
    need(t.data != nullptr, op, std::string(name) + " has no data");
    need(is_float_storage(t.dtype) || is_quantized(t.dtype), op,
         std::string(name) + " must be f32/bf16/f16 or a block-quantized type, got " + t.str());
    need(t.device == Device::CPU, op, std::string(name) + " must be on the CPU, got " + t.str());
    need(t.rank == 2, op, std::string(name) + " must have rank 2, got " + t.str());
    need(t.contiguous(), op, std::string(name) + " must be contiguous, got " + t.str());
    need(t.dim(1) % dtype_block_elems(t.dtype) == 0, op,
         std::string(name) + " rows of " + std::to_string(t.dim(1)) + " are not whole " + dtype_name(t.dtype) +
             " blocks of " + std::to_string(dtype_block_elems(t.dtype)));
}
void same_shape(const char* op, const char* an, const Tensor& a, const char* bn, const Tensor& b) {
    bool ok = a.rank == b.rank;
    for (int d = 0; ok && d < a.rank; ++d) ok = a.shape[d] == b.shape[d];
    need(ok, op, std::string(an) + " " + a.str() + " and " + bn + " " + b.str() + " must have the same shape");
}
void dims(const char* op, const char* name, const Tensor& t, std::initializer_list<int64_t> want) {
    bool ok = t.rank == static_cast<int>(want.size());
    int d = 0;
    for (int64_t w : want) ok = ok && t.shape[d++] == w;
    if (ok) return;
    std::string ws = "[";
    d = 0;
    for (int64_t w : want) ws += (d++ ? ", " : "") + std::to_string(w);
    fail(op, std::string(name) + " must be " + ws + "], got " + t.str());
}
void no_alias(const char* op, const char* an, const Tensor& a, const char* bn, const Tensor& b) {
    need(a.data != b.data || a.numel() == 0, op, std::string(an) + " must not alias " + bn);
}

}  // namespace

void embed_rows(const Tensor& table, std::span<const int32_t> ids, const Tensor& out) {
    const char* op = "embed_rows";
    matrix(op, "table", table);
    act(op, "out", out, 2);
    dims(op, "out", out, {static_cast<int64_t>(ids.size()), table.dim(1)});
    for (size_t t = 0; t < ids.size(); ++t)
        need(ids[t] >= 0 && ids[t] < table.dim(0), op,
             "token id " + std::to_string(ids[t]) + " at position " + std::to_string(t) +
                 " is out of range [0, " + std::to_string(table.dim(0)) + ")");
    ref::embed_rows(table, ids, out);
}

void rms_norm(const Tensor& x, const Tensor& w, float eps, NormKind kind, const Tensor& out) {
    const char* op = "rms_norm";
#ifdef QNEXT_WITH_CUDA
    if (x.device == Device::CUDA) {
        need(out.device == Device::CUDA && w.device == Device::CUDA, op, "x, w and out must all be on the device");
        need(x.contiguous() && out.contiguous() && w.contiguous(), op, "device tensors must be contiguous");
        need(x.dtype == DType::F32 && out.dtype == DType::F32, op, "x and out must be f32");
        need(is_float_storage(w.dtype) && w.rank == 1 && w.dim(0) == x.dim(-1), op, "w must be [D] f32/bf16/f16");
        same_shape(op, "x", x, "out", out);
        cuda::rms_norm(x, w, eps, kind == NormKind::ZeroCentered, out);
        return;
    }
#endif
    act(op, "x", x);
    act(op, "out", out);
    same_shape(op, "x", x, "out", out);
    weight(op, "w", w, 1);
    dims(op, "w", w, {x.dim(-1)});
    ref::rms_norm(x, w, eps, kind, out);
}

void rms_norm_gated(const Tensor& x, const Tensor& z, const Tensor& w, float eps, const Tensor& out) {
    const char* op = "rms_norm_gated";
    act(op, "x", x);
    act(op, "z", z);
    act(op, "out", out);
    same_shape(op, "x", x, "z", z);
    same_shape(op, "x", x, "out", out);
    weight(op, "w", w, 1);
    dims(op, "w", w, {x.dim(-1)});
    ref::rms_norm_gated(x, z, w, eps, out);
}

void l2_norm(const Tensor& x, float eps, const Tensor& out) {
    const char* op = "l2_norm";
    act(op, "x", x);
    act(op, "out", out);
    same_shape(op, "x", x, "out", out);
    ref::l2_norm(x, eps, out);
}

void rope_neox(const Tensor& x, std::span<const int64_t> positions, int64_t rot_dim, double theta) {
    const char* op = "rope_neox";
    act(op, "x", x, 3);
    need(static_cast<int64_t>(positions.size()) == x.dim(0), op,
         "positions has " + std::to_string(positions.size()) + " entries for " + std::to_string(x.dim(0)) + " tokens");
    need(rot_dim > 0 && rot_dim % 2 == 0 && rot_dim <= x.dim(2), op,
         "rot_dim " + std::to_string(rot_dim) + " must be even and in (0, head_dim=" + std::to_string(x.dim(2)) + "]");
    need(theta > 0, op, "theta must be positive");
    for (int64_t p : positions) need(p >= 0, op, "negative position " + std::to_string(p));
    ref::rope_neox(x, positions, rot_dim, theta);
}

void matmul(const Tensor& x, const Tensor& w, const Tensor& y, bool accumulate) {
    const char* op = "matmul";
    act(op, "x", x, 2);
    matrix(op, "w", w);
    act(op, "y", y, 2);
    need(x.dim(1) == w.dim(1), op, "x " + x.str() + " and w " + w.str() + " disagree on K");
    dims(op, "y", y, {x.dim(0), w.dim(0)});
    no_alias(op, "y", y, "x", x);
    fast() ? cpu::matmul(x, w, y, accumulate) : ref::matmul(x, w, y, accumulate);
}

void copy(const Tensor& src, const Tensor& dst) {
    const char* op = "copy";
    need(src.device == Device::CPU && dst.device == Device::CPU, op, "tensors must be on the CPU");
    need(is_float_storage(src.dtype) && is_float_storage(dst.dtype), op,
         "src " + src.str() + " and dst " + dst.str() + " must be f32/bf16/f16");
    need(src.rank >= 1 && src.stride[src.rank - 1] == 1 && dst.stride[dst.rank - 1] == 1, op,
         "src and dst need a contiguous last dim");
    same_shape(op, "src", src, "dst", dst);
    ref::copy(src, dst);
}

void fill(const Tensor& dst, float value) {
    act("fill", "dst", dst);
    ref::fill(dst, value);
}

namespace {
void binary(const char* op, ref::Binary kind, const Tensor& a, const Tensor& b, const Tensor& out) {
    act(op, "a", a);
    act(op, "b", b);
    act(op, "out", out);
    same_shape(op, "a", a, "b", b);
    same_shape(op, "a", a, "out", out);
    ref::binary(kind, a, b, out);
}
void unary(const char* op, ref::Unary kind, const Tensor& x, float s, const Tensor& out) {
    act(op, "x", x);
    act(op, "out", out);
    same_shape(op, "x", x, "out", out);
    ref::unary(kind, x, s, out);
}
}  // namespace

void add(const Tensor& a, const Tensor& b, const Tensor& out) { binary("add", ref::Binary::Add, a, b, out); }
void mul(const Tensor& a, const Tensor& b, const Tensor& out) { binary("mul", ref::Binary::Mul, a, b, out); }
void silu_mul(const Tensor& gate, const Tensor& up, const Tensor& out) {
    binary("silu_mul", ref::Binary::SiluMul, gate, up, out);
}
void mul_sigmoid(const Tensor& x, const Tensor& gate, const Tensor& out) {
    binary("mul_sigmoid", ref::Binary::MulSigmoid, x, gate, out);
}
void scale(const Tensor& x, float s, const Tensor& out) { unary("scale", ref::Unary::Scale, x, s, out); }
void silu(const Tensor& x, const Tensor& out) { unary("silu", ref::Unary::Silu, x, 0.0f, out); }
void sigmoid(const Tensor& x, const Tensor& out) { unary("sigmoid", ref::Unary::Sigmoid, x, 0.0f, out); }

void softmax(const Tensor& x, const Tensor& out) {
    const char* op = "softmax";
    act(op, "x", x);
    act(op, "out", out);
    same_shape(op, "x", x, "out", out);
    need(x.dim(-1) > 0, op, "empty last dim");
    ref::softmax(x, out);
}

void conv1d_causal(const Tensor& x, const Tensor& w_in, const Tensor& state, const Tensor& out, bool apply_silu) {
    const char* op = "conv1d_causal";
    act(op, "x", x, 2);
    act(op, "out", out, 2);
    same_shape(op, "x", x, "out", out);
    no_alias(op, "out", out, "x", x);
    need(w_in.rank == 2 || (w_in.rank == 3 && w_in.dim(1) == 1), op, "w must be [C, K] or [C, 1, K], got " + w_in.str());
    const Tensor w = w_in.rank == 3 ? w_in.reshape({w_in.dim(0), w_in.dim(2)}) : w_in;
    weight(op, "w", w, 2);
    need(w.dim(0) == x.dim(1), op, "w " + w.str() + " has a different channel count than x " + x.str());
    need(w.dim(1) >= 2, op, "kernel size must be >= 2, got " + w.str());
    act(op, "state", state, 2);
    need(state.contiguous(), op, "state must be contiguous");
    dims(op, "state", state, {w.dim(1) - 1, x.dim(1)});
    if (fast())
        cpu::conv1d_causal(x, w, state, out, apply_silu);
    else
        ref::conv1d_causal(x, w, state, out, apply_silu);
}

void gdn_gates(const Tensor& a, const Tensor& b, const Tensor& A, const Tensor& dt_bias,
               const Tensor& g, const Tensor& beta) {
    const char* op = "gdn_gates";
    act(op, "a", a, 2);
    act(op, "b", b, 2);
    act(op, "g", g, 2);
    act(op, "beta", beta, 2);
    same_shape(op, "a", a, "b", b);
    same_shape(op, "a", a, "g", g);
    same_shape(op, "a", a, "beta", beta);
    weight(op, "A", A, 1);
    weight(op, "dt_bias", dt_bias, 1);
    dims(op, "A", A, {a.dim(1)});
    dims(op, "dt_bias", dt_bias, {a.dim(1)});
    ref::gdn_gates(a, b, A, dt_bias, g, beta);
}

namespace {
void check_gdn(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
               const Tensor& beta, const Tensor& state, const Tensor& out) {
    act(op, "q", q, 3);
    act(op, "k", k, 3);
    act(op, "v", v, 3);
    act(op, "out", out, 3);
    same_shape(op, "q", q, "k", k);
    same_shape(op, "v", v, "out", out);
    const int64_t T = q.dim(0), Hk = q.dim(1), Dk = q.dim(2), Hv = v.dim(1), Dv = v.dim(2);
    need(v.dim(0) == T, op, "v " + v.str() + " and q " + q.str() + " disagree on the token count");
    need(Hk > 0 && Hv % Hk == 0, op, "value heads (" + std::to_string(Hv) + ") must be a multiple of key heads (" +
                                         std::to_string(Hk) + ")");
    dims(op, "g", g, {T, Hv});
    dims(op, "beta", beta, {T, Hv});
    act(op, "g", g);
    act(op, "beta", beta);
    act(op, "state", state, 3);
    need(state.contiguous(), op, "state must be contiguous");
    dims(op, "state", state, {Hv, Dk, Dv});
    no_alias(op, "out", out, "q", q);
    no_alias(op, "out", out, "k", k);
    no_alias(op, "out", out, "v", v);
}
}  // namespace

void gdn_recurrent(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                   const Tensor& state, const Tensor& out, float scale) {
    check_gdn("gdn_recurrent", q, k, v, g, beta, state, out);
    fast() ? cpu::gdn_recurrent(q, k, v, g, beta, state, out, scale)
           : ref::gdn_recurrent(q, k, v, g, beta, state, out, scale);
}

void gdn_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                 const Tensor& state, const Tensor& out, float scale, int64_t chunk) {
    check_gdn("gdn_chunked", q, k, v, g, beta, state, out);
    need(chunk >= 1 && chunk <= 256, "gdn_chunked", "chunk must be in [1, 256], got " + std::to_string(chunk));
    fast() ? cpu::gdn_chunked(q, k, v, g, beta, state, out, scale, chunk)
           : ref::gdn_chunked(q, k, v, g, beta, state, out, scale, chunk);
}

void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, float scale,
               const Tensor& gate, const Tensor& out) {
    const char* op = "attention";
    act(op, "q", q, 3);
    act(op, "out", out, 3);
    same_shape(op, "q", q, "out", out);
    no_alias(op, "out", out, "q", q);
    for (const Tensor* c : {&k_cache, &v_cache}) {
        const char* name = c == &k_cache ? "k_cache" : "v_cache";
        need(c->dtype == DType::F32 || c->dtype == DType::BF16, op, std::string(name) + " must be f32 or bf16, got " + c->str());
        need(c->rank == 3 && c->stride[2] == 1 && c->device == Device::CPU, op,
             std::string(name) + " must be a CPU [S, Hkv, D] view with a contiguous last dim, got " + c->str());
    }
    same_shape(op, "k_cache", k_cache, "v_cache", v_cache);
    const int64_t T = q.dim(0), Hq = q.dim(1), Hkv = k_cache.dim(1);
    need(k_cache.dim(2) == q.dim(2), op, "head dims differ: q " + q.str() + ", k_cache " + k_cache.str());
    need(Hkv > 0 && Hq % Hkv == 0, op, "query heads (" + std::to_string(Hq) + ") must be a multiple of kv heads (" +
                                           std::to_string(Hkv) + ")");
    need(n_past >= 0 && n_past + T <= k_cache.dim(0), op,
         "n_past " + std::to_string(n_past) + " + " + std::to_string(T) + " tokens exceeds the cache length " +
             std::to_string(k_cache.dim(0)));
    if (!gate.empty()) {
        act(op, "gate", gate, 3);
        same_shape(op, "q", q, "gate", gate);
    }
    fast() ? cpu::attention(q, k_cache, v_cache, n_past, scale, gate, out)
           : ref::attention(q, k_cache, v_cache, n_past, scale, gate, out);
}

void moe_route(const Tensor& logits, int64_t top_k, bool norm_topk_prob, const Tensor& ids, const Tensor& weights) {
    const char* op = "moe_route";
    act(op, "logits", logits, 2);
    need(top_k >= 1 && top_k <= logits.dim(1), op,
         "top_k " + std::to_string(top_k) + " must be in [1, " + std::to_string(logits.dim(1)) + "]");
    need(ids.dtype == DType::I32 && ids.rank == 2 && ids.stride[1] == 1, op, "ids must be i32 [T, k], got " + ids.str());
    dims(op, "ids", ids, {logits.dim(0), top_k});
    act(op, "weights", weights, 2);
    dims(op, "weights", weights, {logits.dim(0), top_k});
    ref::moe_route(logits, top_k, norm_topk_prob, ids, weights);
}

namespace {
void check_ffn(const char* op, const Tensor& x, const FfnWeights& w, const Tensor& out) {
    act(op, "x", x, 2);
    act(op, "out", out, 2);
    same_shape(op, "x", x, "out", out);
    no_alias(op, "out", out, "x", x);
    matrix(op, "gate", w.gate);
    matrix(op, "up", w.up);
    matrix(op, "down", w.down);
    const int64_t D = x.dim(1), F = w.gate.dim(0);
    dims(op, "gate", w.gate, {F, D});
    dims(op, "up", w.up, {F, D});
    dims(op, "down", w.down, {D, F});
}
}  // namespace

void ffn_swiglu(const Tensor& x, const FfnWeights& w, const Tensor& out, bool accumulate) {
    check_ffn("ffn_swiglu", x, w, out);
    fast() ? cpu::ffn_swiglu(x, w, out, accumulate) : ref::ffn_swiglu(x, w, out, accumulate);
}

void moe_experts(const Tensor& x, std::span<const FfnWeights> experts, const Tensor& ids, const Tensor& weights,
                 const Tensor& out, bool accumulate) {
    const char* op = "moe_experts";
    need(!experts.empty(), op, "no experts");
    check_ffn(op, x, experts[0], out);
    for (size_t e = 1; e < experts.size(); ++e) {
        matrix(op, "expert gate", experts[e].gate);
        matrix(op, "expert up", experts[e].up);
        matrix(op, "expert down", experts[e].down);
        dims(op, "expert gate", experts[e].gate, {experts[0].gate.dim(0), x.dim(1)});
        dims(op, "expert up", experts[e].up, {experts[0].gate.dim(0), x.dim(1)});
        dims(op, "expert down", experts[e].down, {x.dim(1), experts[0].gate.dim(0)});
    }
    need(ids.dtype == DType::I32 && ids.rank == 2 && ids.dim(0) == x.dim(0) && ids.stride[1] == 1, op,
         "ids must be i32 [T, k], got " + ids.str());
    act(op, "weights", weights, 2);
    dims(op, "weights", weights, {ids.dim(0), ids.dim(1)});
    for (int64_t t = 0; t < ids.dim(0); ++t)
        for (int64_t j = 0; j < ids.dim(1); ++j) {
            const int32_t e = static_cast<const int32_t*>(ids.row_ptr(t))[j];
            need(e >= 0 && static_cast<size_t>(e) < experts.size(), op,
                 "expert id " + std::to_string(e) + " out of range [0, " + std::to_string(experts.size()) + ")");
        }
    fast() ? cpu::moe_experts(x, experts, ids, weights, out, accumulate)
           : ref::moe_experts(x, experts, ids, weights, out, accumulate);
}

void shared_expert(const Tensor& x, const FfnWeights& w, const Tensor& gate_w, const Tensor& out, bool accumulate) {
    const char* op = "shared_expert";
    check_ffn(op, x, w, out);
    matrix(op, "gate_w", gate_w);
    dims(op, "gate_w", gate_w, {1, x.dim(1)});
    fast() ? cpu::shared_expert(x, w, gate_w, out, accumulate) : ref::shared_expert(x, w, gate_w, out, accumulate);
}

void moe_block(const Tensor& x, const MoeBlockWeights& w, const Tensor& out) {
    const char* op = "moe_block";
    act(op, "x", x, 2);
    matrix(op, "router", w.router);
    need(w.router.dim(1) == x.dim(1), op, "router " + w.router.str() + " does not match x " + x.str());
    need(static_cast<int64_t>(w.experts.size()) == w.router.dim(0), op,
         "router has " + std::to_string(w.router.dim(0)) + " rows but " + std::to_string(w.experts.size()) + " experts given");
    need(w.top_k >= 1 && w.top_k <= w.router.dim(0), op,
         "top_k " + std::to_string(w.top_k) + " must be in [1, " + std::to_string(w.router.dim(0)) + "]");
    need(!w.experts.empty(), op, "no experts");
    check_ffn(op, x, w.experts[0], out);
    for (size_t e = 1; e < w.experts.size(); ++e) {
        matrix(op, "expert gate", w.experts[e].gate);
        matrix(op, "expert up", w.experts[e].up);
        matrix(op, "expert down", w.experts[e].down);
        dims(op, "expert gate", w.experts[e].gate, {w.experts[0].gate.dim(0), x.dim(1)});
        dims(op, "expert up", w.experts[e].up, {w.experts[0].gate.dim(0), x.dim(1)});
        dims(op, "expert down", w.experts[e].down, {x.dim(1), w.experts[0].gate.dim(0)});
    }
    if (!w.shared.gate.empty()) {
        check_ffn(op, x, w.shared, out);
        matrix(op, "shared_gate", w.shared_gate);
        dims(op, "shared_gate", w.shared_gate, {1, x.dim(1)});
    }
    if (fast()) {
        cpu::moe_block(x, w, out);
        return;
    }
    const int64_t T = x.dim(0), E = w.router.dim(0);
    TensorBuffer logits(DType::F32, {T, E}), ids(DType::I32, {T, w.top_k}), wts(DType::F32, {T, w.top_k});
    ref::matmul(x, w.router, logits, false);
    ref::moe_route(logits, w.top_k, w.norm_topk_prob, ids, wts);
    ref::moe_experts(x, w.experts, ids, wts, out, false);
    if (!w.shared.gate.empty()) ref::shared_expert(x, w.shared, w.shared_gate, out, true);
}

#undef need

}  // namespace qnext::kern
