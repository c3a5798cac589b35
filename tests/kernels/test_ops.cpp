// tests/kernels/test_ops.cpp: every fast CPU op against the scalar reference (registry of
// (op, shape) cases, each run under Backend::Reference and Backend::Cpu through the public ops.h API
// and compared by NMSE with a per-op threshold), edge shapes (1 token, 63/64/65/130 tokens, key heads
// < value heads, top-k = 1, K tails, strided inputs), chunked GDN == recurrent GDN, and the reference
// itself on tiny hand-computed cases (test_ref.cpp). Seeds are fixed and printed in failure messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <regex>

#include "kernels/cpu/qmatmul.h"
#include "kernels/quant.h"
#include "tests/kernels/op_case.h"

namespace qnext::kern::test {
namespace {

std::string dt(DType t) { return dtype_name(t); }

// ---- case builders ---------------------------------------------------------------------------

OpCase matmul_case(int64_t T, int64_t K, int64_t N, DType wt, bool accumulate, bool strided_x) {
    OpCase c;
    c.op = "matmul";
    c.vars = "T=" + std::to_string(T) + ",K=" + std::to_string(K) + ",N=" + std::to_string(N) + ",w=" + dt(wt) +
             (accumulate ? ",acc" : "") + (strided_x ? ",strided" : "");
    c.seed = 1000 + static_cast<uint64_t>(T * 7919 + K * 31 + N) + (accumulate ? 1 : 0) + static_cast<uint64_t>(wt);
    // Block-quantized weights: the fast path rounds the activations to int8 per 32 (as llama.cpp does), the
    // reference does not; that rounding alone is NMSE ~2e-5 (QMatmul.* checks the integer kernels exactly).
    c.max_nmse = is_quantized(wt) && wt != DType::F8_B128 ? 2e-4 : 1e-10;   // FP8 runs exactly in f32
    c.run = [=](uint64_t seed) {
        Rng r(seed);
        const int64_t ldx = strided_x ? K + 5 : K;
        std::vector<float> xb = r.normals(static_cast<size_t>(T * ldx));
        const Tensor x = Tensor::f32(xb.data(), {T, ldx}).slice(1, 0, K);
        const Stored w(wt, r.normals(static_cast<size_t>(N * K), 0.05f));
        std::vector<float> y = accumulate ? r.normals(static_cast<size_t>(T * N)) : std::vector<float>(T * N, 0.0f);
        matmul(x, w.view({N, K}), Tensor::f32(y.data(), {T, N}), accumulate);
        return Outputs{{"y", y}};
    };
    return c;
}

struct GdnInputs {
    std::vector<float> q, k, v, g, beta, state;
};

GdnInputs gdn_inputs(uint64_t seed, int64_t T, int64_t Hk, int64_t Hv, int64_t Dk, int64_t Dv) {
    Rng r(seed);
    GdnInputs in;
    in.q = r.normals(static_cast<size_t>(T * Hk * Dk));
    in.k = r.normals(static_cast<size_t>(T * Hk * Dk));
    const Tensor qv = Tensor::f32(in.q.data(), {T * Hk, Dk}), kv = Tensor::f32(in.k.data(), {T * Hk, Dk});
    l2_norm(qv, 1e-6f, qv);  // q, k arrive L2-normalised, as in the model
    l2_norm(kv, 1e-6f, kv);
    in.v = r.normals(static_cast<size_t>(T * Hv * Dv));
    in.g.resize(static_cast<size_t>(T * Hv));
    for (float& x : in.g) x = -std::exp(r.uniform(-5.0f, 1.0f));  // decay exp(g) in (0.066, 0.993)
    in.beta = r.uniforms(static_cast<size_t>(T * Hv), 0.0f, 1.0f);
    in.state = r.normals(static_cast<size_t>(Hv * Dk * Dv), 0.1f);  // continue from a non-zero state
    return in;
}

enum class GdnForm { Recurrent, Chunked };

Outputs run_gdn(GdnForm form, GdnInputs in, int64_t T, int64_t Hk, int64_t Hv, int64_t Dk, int64_t Dv) {
    std::vector<float> out(static_cast<size_t>(T * Hv * Dv), 0.0f);
    const Tensor q = Tensor::f32(in.q.data(), {T, Hk, Dk}), k = Tensor::f32(in.k.data(), {T, Hk, Dk});
    const Tensor v = Tensor::f32(in.v.data(), {T, Hv, Dv});
    const Tensor g = Tensor::f32(in.g.data(), {T, Hv}), beta = Tensor::f32(in.beta.data(), {T, Hv});
    const Tensor s = Tensor::f32(in.state.data(), {Hv, Dk, Dv}), o = Tensor::f32(out.data(), {T, Hv, Dv});
    const float scale = 1.0f / std::sqrt(static_cast<float>(Dk));
    if (form == GdnForm::Recurrent)
        gdn_recurrent(q, k, v, g, beta, s, o, scale);
    else
        gdn_chunked(q, k, v, g, beta, s, o, scale);
    return {{"out", out}, {"state", in.state}};
}

OpCase gdn_case(GdnForm form, int64_t T, int64_t Hk, int64_t Hv, int64_t Dk, int64_t Dv) {
    OpCase c;
    c.op = form == GdnForm::Recurrent ? "gdn_recurrent" : "gdn_chunked";
    c.vars = "T=" + std::to_string(T) + ",Hk=" + std::to_string(Hk) + ",Hv=" + std::to_string(Hv) +
             ",Dk=" + std::to_string(Dk) + ",Dv=" + std::to_string(Dv);
    c.seed = 2000 + static_cast<uint64_t>(T * 131 + Hk * 17 + Hv * 5 + Dk + Dv);
    c.max_nmse = 1e-9;
    c.run = [=](uint64_t seed) { return run_gdn(form, gdn_inputs(seed, T, Hk, Hv, Dk, Dv), T, Hk, Hv, Dk, Dv); };
    return c;
}

OpCase attention_case(int64_t T, int64_t n_past, int64_t Hq, int64_t Hkv, int64_t D, DType cache_t, bool gated) {
    OpCase c;
    c.op = "attention";
    c.vars = "T=" + std::to_string(T) + ",past=" + std::to_string(n_past) + ",Hq=" + std::to_string(Hq) +
             ",Hkv=" + std::to_string(Hkv) + ",D=" + std::to_string(D) + ",kv=" + dt(cache_t) + (gated ? ",gate" : "");
    c.seed = 3000 + static_cast<uint64_t>(T * 37 + n_past * 11 + Hq + Hkv * 3 + D) + (gated ? 1 : 0);
    c.max_nmse = 1e-10;
    c.run = [=](uint64_t seed) {
        Rng r(seed);
        const int64_t S = n_past + T + 3;  // rows past n_past + T hold NaN: reading them fails the case
        std::vector<float> q = r.normals(static_cast<size_t>(T * Hq * D));
        std::vector<float> kf = r.normals(static_cast<size_t>(S * Hkv * D)), vf = r.normals(static_cast<size_t>(S * Hkv * D));
        for (int64_t i = (n_past + T) * Hkv * D; i < S * Hkv * D; ++i) kf[i] = vf[i] = NAN;
        const Stored kc(cache_t, kf), vc(cache_t, vf);
        std::vector<float> gate = r.normals(static_cast<size_t>(T * Hq * D), 2.0f);
        std::vector<float> out(static_cast<size_t>(T * Hq * D));
        attention(Tensor::f32(q.data(), {T, Hq, D}), kc.view({S, Hkv, D}), vc.view({S, Hkv, D}), n_past,
                  1.0f / std::sqrt(static_cast<float>(D)), gated ? Tensor::f32(gate.data(), {T, Hq, D}) : Tensor{},
                  Tensor::f32(out.data(), {T, Hq, D}));
        return Outputs{{"out", out}};
    };
    return c;
}

struct Experts {
    std::vector<Stored> store;
    std::vector<FfnWeights> w;
};
Experts make_experts(Rng& r, int64_t E, int64_t D, int64_t F, DType wt) {
    Experts ex;
    ex.store.reserve(static_cast<size_t>(3 * E));
    for (int64_t e = 0; e < 3 * E; ++e) ex.store.emplace_back(wt, r.normals(static_cast<size_t>(D * F), 0.08f));
    for (int64_t e = 0; e < E; ++e)
        ex.w.push_back({ex.store[3 * e].view({F, D}), ex.store[3 * e + 1].view({F, D}), ex.store[3 * e + 2].view({D, F})});
    return ex;
}

OpCase moe_case(int64_t T, int64_t D, int64_t F, int64_t E, int64_t top_k, bool norm, DType wt) {
    OpCase c;
    c.op = "moe_block";
    c.vars = "T=" + std::to_string(T) + ",D=" + std::to_string(D) + ",F=" + std::to_string(F) + ",E=" +
             std::to_string(E) + ",k=" + std::to_string(top_k) + (norm ? ",norm" : ",nonorm") + ",w=" + dt(wt);
    c.seed = 4000 + static_cast<uint64_t>(T * 13 + D + F * 7 + E * 3 + top_k);
    c.max_nmse = is_quantized(wt) ? 1e-3 : 1e-10;   // quantized: activation rounding, twice
    c.run = [=](uint64_t seed) {
        Rng r(seed);
        std::vector<float> x = r.normals(static_cast<size_t>(T * D));
        const Stored router(wt, r.normals(static_cast<size_t>(E * D), 0.3f));  // wide router logits
        Experts ex = make_experts(r, E, D, F, wt);
        Experts sh = make_experts(r, 1, D, F, wt);
        const Stored sgate(wt, r.normals(static_cast<size_t>(D), 0.1f));
        MoeBlockWeights mw{router.view({E, D}), ex.w, sh.w[0], sgate.view({1, D}), top_k, norm};
        std::vector<float> out(static_cast<size_t>(T * D));
        moe_block(Tensor::f32(x.data(), {T, D}), mw, Tensor::f32(out.data(), {T, D}));
        return Outputs{{"out", out}};
    };
    return c;
}

OpCase ffn_case(int64_t T, int64_t D, int64_t F, DType wt) {
    OpCase c;
    c.op = "ffn_swiglu";
    c.vars = "T=" + std::to_string(T) + ",D=" + std::to_string(D) + ",F=" + std::to_string(F) + ",w=" + dt(wt);
    c.seed = 5000 + static_cast<uint64_t>(T * 13 + D + F);
    c.max_nmse = 1e-10;
    c.run = [=](uint64_t seed) {
        Rng r(seed);
        std::vector<float> x = r.normals(static_cast<size_t>(T * D));
        Experts ex = make_experts(r, 1, D, F, wt);
        std::vector<float> out = r.normals(static_cast<size_t>(T * D));  // accumulate into a residual
        ffn_swiglu(Tensor::f32(x.data(), {T, D}), ex.w[0], Tensor::f32(out.data(), {T, D}), true);
        return Outputs{{"out", out}};
    };
    return c;
}

OpCase conv_case(int64_t T, int64_t C, int64_t K, DType wt, bool silu) {
    OpCase c;
    c.op = "conv1d_causal";
    c.vars = "T=" + std::to_string(T) + ",C=" + std::to_string(C) + ",K=" + std::to_string(K) + ",w=" + dt(wt) +
             (silu ? ",silu" : "");
    c.seed = 6000 + static_cast<uint64_t>(T * 13 + C + K * 7) + (silu ? 1 : 0);
    c.max_nmse = 1e-12;
    c.run = [=](uint64_t seed) {
        Rng r(seed);
        std::vector<float> x = r.normals(static_cast<size_t>(T * C)), state = r.normals(static_cast<size_t>((K - 1) * C));
        const Stored w(wt, r.normals(static_cast<size_t>(C * K), 0.5f));
        std::vector<float> out(static_cast<size_t>(T * C));
        conv1d_causal(Tensor::f32(x.data(), {T, C}), w.view({C, K}), Tensor::f32(state.data(), {K - 1, C}),
                      Tensor::f32(out.data(), {T, C}), silu);
        return Outputs{{"out", out}, {"state", state}};   // the state rows are updated in place
    };
    return c;
}

std::vector<OpCase> all_cases() {
    std::vector<OpCase> v;
    for (DType wt : {DType::F32, DType::BF16, DType::F16}) {
        v.push_back(matmul_case(1, 64, 16, wt, false, false));
        v.push_back(matmul_case(1, 80, 33, wt, false, false));     // K tail (80 = 64 + 16), N tail
        v.push_back(matmul_case(3, 130, 7, wt, true, true));       // K tail 2, strided x, accumulate
        v.push_back(matmul_case(17, 200, 45, wt, false, false));   // token tails, K not a multiple of 16
    }
    // Block-quantized weights (GGUF): every format, 1 and many tokens, odd rows, K of several blocks.
    for (DType wt : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0}) {
        v.push_back(matmul_case(1, 96, 33, wt, false, false));     // K = 3 blocks of 32, odd N
        v.push_back(matmul_case(5, 64, 17, wt, true, true));       // accumulate, strided x
    }
    for (DType wt : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        v.push_back(matmul_case(1, 512, 19, wt, false, false));    // K = 2 super-blocks
        v.push_back(matmul_case(9, 256, 13, wt, true, true));
    }
    v.push_back(matmul_case(1, 2048, 512, DType::Q8_0, false, false));  // decode-like, threaded
    v.push_back(matmul_case(1, 256, 33, DType::F8_B128, false, false));  // FP8 (repacked HF block-scaled)
    v.push_back(matmul_case(9, 384, 17, DType::F8_B128, true, true));
    v.push_back(matmul_case(70, 512, 130, DType::Q4_K, false, false));  // > one 64-token block
    v.push_back(moe_case(1, 256, 128, 16, 4, true, DType::Q8_0));       // fused decode path
    v.push_back(moe_case(33, 256, 256, 8, 2, true, DType::Q4_K));       // grouped path
    v.push_back(matmul_case(1, 2048, 512, DType::BF16, false, false));  // decode-like, threaded
    v.push_back(matmul_case(70, 256, 130, DType::BF16, false, false));  // > one 64-token block
    for (GdnForm f : {GdnForm::Recurrent, GdnForm::Chunked}) {
        for (int64_t T : {1, 63, 64, 65, 130}) v.push_back(gdn_case(f, T, 2, 4, 32, 32));  // key heads < value heads
        v.push_back(gdn_case(f, 65, 3, 3, 16, 24));   // 1:1 heads, Dk != Dv
        v.push_back(gdn_case(f, 65, 1, 2, 128, 128)); // the real head dims
    }
    for (DType ct : {DType::F32, DType::BF16}) {
        v.push_back(attention_case(1, 0, 4, 2, 32, ct, true));
        v.push_back(attention_case(1, 37, 8, 1, 64, ct, true));   // decode over a cache
        v.push_back(attention_case(1, 300, 16, 2, 256, ct, true)); // decode, 80B shapes (8 heads per kv head), key tail
        v.push_back(attention_case(1, 5, 20, 2, 24, ct, false));   // decode, 10 heads per kv head: chunks of 8 + 2
        v.push_back(attention_case(1, 9, 6, 2, 36, ct, true));     // decode, head dim not a multiple of 8
        v.push_back(attention_case(7, 0, 4, 4, 32, ct, false));   // prefill, MHA, no gate
        v.push_back(attention_case(65, 3, 4, 2, 256, ct, true));  // real head dim, continuation
        v.push_back(attention_case(33, 200, 8, 2, 32, ct, true)); // continuation over many key blocks (blocked prefill)
        v.push_back(attention_case(6, 70, 6, 2, 40, ct, true));   // head dim not a multiple of 16 (scalar tail), 3 q/kv
    }
    v.push_back(moe_case(1, 64, 32, 8, 2, true, DType::F32));
    v.push_back(moe_case(9, 80, 48, 8, 2, true, DType::BF16));
    v.push_back(moe_case(9, 64, 32, 6, 1, true, DType::BF16));   // top-k = 1
    v.push_back(moe_case(5, 64, 32, 6, 3, false, DType::BF16));  // norm_topk_prob = false
    v.push_back(moe_case(33, 96, 64, 16, 4, true, DType::BF16)); // many tokens per expert (grouped path)
    v.push_back(moe_case(1, 256, 128, 16, 4, true, DType::BF16)); // decode: several row blocks per expert
    v.push_back(moe_case(8, 160, 96, 12, 3, true, DType::F16));   // largest fused-path T
    v.push_back(conv_case(1, 8192, 4, DType::F32, true));     // decode, the 80B's conv width (threaded)
    v.push_back(conv_case(1, 40, 4, DType::BF16, false));
    v.push_back(conv_case(2, 33, 4, DType::F32, true));       // T < K - 1: the new state mixes old state and x
    v.push_back(conv_case(70, 96, 3, DType::F16, true));      // prefill
    v.push_back(ffn_case(1, 64, 48, DType::BF16));
    v.push_back(ffn_case(6, 80, 40, DType::F32));
    return v;
}

class FastVsRef : public ::testing::TestWithParam<std::tuple<OpCase, CpuIsa>> {};

TEST_P(FastVsRef, MatchesReference) {
    const auto& [c, isa] = GetParam();
    if (!cpu_features().avx2_fma) GTEST_SKIP() << "CPU lacks AVX2+FMA: fast backend unavailable";
    if (isa == CpuIsa::Avx512 && !cpu_features().avx512) GTEST_SKIP() << "CPU lacks AVX-512";
    const CpuIsa prev_isa = cpu_isa();
    set_cpu_isa(isa);
    const Outputs want = with_backend(Backend::Reference, [&] { return c.run(c.seed); });
    const Outputs got = with_backend(Backend::Cpu, [&] { return c.run(c.seed); });
    set_cpu_isa(prev_isa);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        const Compare cmp = compare(got[i].first, got[i].second, want[i].second, c.max_nmse);
        EXPECT_TRUE(cmp.ok) << c.op << "(" << c.vars << ") " << cpu_isa_name(isa) << " seed " << c.seed << ": " << cmp.msg;
        if (std::getenv("QNEXT_TEST_VERBOSE"))
            std::printf("  %s(%s) %s: %s\n", c.op.c_str(), c.vars.c_str(), cpu_isa_name(isa), cmp.msg.c_str());
    }
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<OpCase, CpuIsa>>& info) {
    const OpCase& c = std::get<0>(info.param);
    std::string n = c.op + "_" + c.vars + "_" + cpu_isa_name(std::get<1>(info.param));
    n = std::regex_replace(n, std::regex("[^A-Za-z0-9]"), "_");
    return n;
}

INSTANTIATE_TEST_SUITE_P(Ops, FastVsRef,
                         ::testing::Combine(::testing::ValuesIn(all_cases()), ::testing::Values(CpuIsa::Avx2, CpuIsa::Avx512)),
                         case_name);

// ---- chunked GDN == recurrent GDN (outputs and final state), on both backends --------------------

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
    double m = 0, s = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        m = std::max(m, std::fabs(double(a[i]) - b[i]));
        s = std::max(s, std::fabs(double(b[i])));
    }
    return s > 0 ? m / s : m;
}

class GdnChunkedEqualsRecurrent : public ::testing::TestWithParam<std::tuple<Backend, int64_t>> {};

TEST_P(GdnChunkedEqualsRecurrent, OutputsAndState) {
    const auto [b, T] = GetParam();
    if (b == Backend::Cpu && !cpu_features().avx2_fma) GTEST_SKIP() << "no AVX2+FMA";
    const int64_t Hk = 2, Hv = 4, Dk = 32, Dv = 48;
    const uint64_t seed = 77 + static_cast<uint64_t>(T);
    const GdnInputs in = gdn_inputs(seed, T, Hk, Hv, Dk, Dv);
    const Outputs rec = with_backend(b, [&] { return run_gdn(GdnForm::Recurrent, in, T, Hk, Hv, Dk, Dv); });
    const Outputs chk = with_backend(b, [&] { return run_gdn(GdnForm::Chunked, in, T, Hk, Hv, Dk, Dv); });
    for (size_t i = 0; i < rec.size(); ++i) {
        const double rel = max_rel(chk[i].second, rec[i].second);
        EXPECT_LE(rel, 1e-5) << rec[i].first << " T=" << T << " seed " << seed << " backend " << backend_name(b);
    }
}

INSTANTIATE_TEST_SUITE_P(Gdn, GdnChunkedEqualsRecurrent,
                         ::testing::Combine(::testing::Values(Backend::Reference, Backend::Cpu),
                                            ::testing::Values(1, 63, 64, 65, 130)),
                         [](const auto& info) {
                             return std::string(backend_name(std::get<0>(info.param))) + "_T" +
                                    std::to_string(std::get<1>(info.param));
                         });

// Prefill in two uneven chunked pieces then decode token by token == one recurrent pass.
TEST(GdnConsistency, ChunkedPiecesThenRecurrentContinue) {
    const int64_t T = 100, Hk = 2, Hv = 4, Dk = 32, Dv = 32;
    const GdnInputs in = gdn_inputs(4242, T, Hk, Hv, Dk, Dv);
    const Outputs whole = run_gdn(GdnForm::Recurrent, in, T, Hk, Hv, Dk, Dv);
    std::vector<float> state = in.state, out(static_cast<size_t>(T * Hv * Dv));
    const float scale = 1.0f / std::sqrt(static_cast<float>(Dk));
    auto piece = [&](int64_t t0, int64_t n, GdnForm form) {
        auto at = [&](const std::vector<float>& v, int64_t per) { return const_cast<float*>(v.data()) + t0 * per; };
        const Tensor q = Tensor::f32(at(in.q, Hk * Dk), {n, Hk, Dk}), k = Tensor::f32(at(in.k, Hk * Dk), {n, Hk, Dk});
        const Tensor v = Tensor::f32(at(in.v, Hv * Dv), {n, Hv, Dv});
        const Tensor g = Tensor::f32(at(in.g, Hv), {n, Hv}), beta = Tensor::f32(at(in.beta, Hv), {n, Hv});
        const Tensor s = Tensor::f32(state.data(), {Hv, Dk, Dv}), o = Tensor::f32(at(out, Hv * Dv), {n, Hv, Dv});
        form == GdnForm::Chunked ? gdn_chunked(q, k, v, g, beta, s, o, scale) : gdn_recurrent(q, k, v, g, beta, s, o, scale);
    };
    piece(0, 37, GdnForm::Chunked);
    piece(37, 50, GdnForm::Chunked);
    for (int64_t t = 87; t < T; ++t) piece(t, 1, GdnForm::Recurrent);
    EXPECT_LE(max_rel(out, whole[0].second), 1e-5);
    EXPECT_LE(max_rel(state, whole[1].second), 1e-5);
}

// ---- the integer kernels of block-quantized matmuls, exactly ------------------------------------------------

// quantize_q8_rows: q = round-half-even(x * 127 / max|x|) per 32 values, d = max|x| / 127, s16 = d * sum(q) per 16.
TEST(QMatmul, ActivationQuantizationIsExact) {
    if (!cpu_features().avx2_fma) GTEST_SKIP() << "CPU lacks AVX2+FMA";
    Rng r(77);
    const int64_t T = 3, K = 128, ldx = 133;
    std::vector<float> x = r.normals(static_cast<size_t>(T * ldx));
    for (int64_t k = 32; k < 64; ++k) x[static_cast<size_t>(ldx + k)] = 0.0f;   // an all-zero block
    cpu::Q8Rows q;
    cpu::quantize_q8_rows(x.data(), ldx, T, K, q);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t b = 0; b < K / 32; ++b) {
            float amax = 0;
            for (int64_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[static_cast<size_t>(t * ldx + b * 32 + i)]));
            ASSERT_EQ(q.drow(t)[b], amax / 127.0f);
            int sum[2] = {0, 0};
            for (int64_t i = 0; i < 32; ++i) {
                const float v = x[static_cast<size_t>(t * ldx + b * 32 + i)] * (amax > 0 ? 127.0f / amax : 0.0f);
                const int want = static_cast<int>(std::nearbyint(v));
                ASSERT_EQ(q.qrow(t)[b * 32 + i], want) << t << " " << b << " " << i;
                sum[i / 16] += want;
            }
            for (int h = 0; h < 2; ++h) ASSERT_EQ(q.srow(t)[2 * b + h], q.drow(t)[b] * static_cast<float>(sum[h]));
        }
    EXPECT_TRUE(q.qk.empty());   // K = 128: no per-256 layout
    // Per 256: one scale per super-block, int16 sums per 16.
    const int64_t K2 = 512;
    std::vector<float> x2 = r.normals(static_cast<size_t>(2 * K2));
    cpu::quantize_q8_rows(x2.data(), K2, 2, K2, q);
    for (int64_t t = 0; t < 2; ++t)
        for (int64_t sb = 0; sb < K2 / 256; ++sb) {
            float amax = 0;
            for (int64_t i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(x2[static_cast<size_t>(t * K2 + sb * 256 + i)]));
            ASSERT_EQ(q.dkrow(t)[sb], amax / 127.0f);
            for (int64_t h = 0; h < 16; ++h) {
                int sum = 0;
                for (int64_t i = 0; i < 16; ++i) {
                    const int64_t k = sb * 256 + h * 16 + i;
                    const int want = static_cast<int>(std::nearbyint(x2[static_cast<size_t>(t * K2 + k)] * (127.0f / amax)));
                    ASSERT_EQ(q.qkrow(t)[k], want);
                    sum += want;
                }
                ASSERT_EQ(q.bsrow(t)[sb * 16 + h], sum);
            }
        }
    EXPECT_THROW(cpu::quantize_q8_rows(x.data(), ldx, 1, 48, q), std::invalid_argument);
}

// Every block format, both integer kernels: y equals the fp64 dot product of the dequantized weights
// (ref::dequantize_row, bit-exact with gguf-py) with the dequantized activations (q * d): only f32 rounding
// is left (NMSE <= 1e-12). Shapes: odd rows, 1..9 tokens (token tiles 4 + tails), several blocks.
TEST(QMatmul, IntegerKernelsAreExactOnQuantizedActivations) {
    if (!cpu_features().avx2_fma) GTEST_SKIP() << "CPU lacks AVX2+FMA";
    const std::pair<const char*, cpu::QMatmulRowsFn> kernels[] = {
        {"avx2", cpu::qmatmul_rows_avx2}, {"vnni", cpu_features().avx512_vnni ? cpu::qmatmul_rows_vnni : nullptr}};
    for (DType wt : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K,
                     DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        const int64_t K = dtype_block_elems(wt) == 256 ? 512 : 160, N = 7;
        Rng r(500 + static_cast<uint64_t>(wt));
        const Stored w(wt, r.normals(static_cast<size_t>(N * K), 0.05f));
        std::vector<float> wf(static_cast<size_t>(N * K));
        ref::dequantize_row(qtype_of(wt), w.data(), wf.data(), N * K);
        for (int64_t T : {1, 4, 9}) {
            std::vector<float> x = r.normals(static_cast<size_t>(T * K));
            cpu::Q8Rows q;
            cpu::quantize_q8_rows(x.data(), K, T, K, q);
            std::vector<float> want(static_cast<size_t>(T * N));
            for (int64_t t = 0; t < T; ++t)
                for (int64_t n = 0; n < N; ++n) {
                    double acc = 0;
                    const bool k_quant = dtype_block_elems(wt) == 256;   // per-256 activations (Q8Rows::qk)
                    for (int64_t k = 0; k < K; ++k)
                        acc += double(wf[static_cast<size_t>(n * K + k)]) *
                               (k_quant ? double(q.qkrow(t)[k]) * double(q.dkrow(t)[k / 256])
                                        : double(q.qrow(t)[k]) * double(q.drow(t)[k / 32]));
                    want[static_cast<size_t>(t * N + n)] = static_cast<float>(acc);
                }
            for (const auto& [name, fn] : kernels) {
                if (!fn) continue;
                std::vector<float> got(static_cast<size_t>(T * N), 1.0f);
                fn(q, 0, T, w.data(), wt, 0, N, got.data(), N, false);
                const Compare c = compare("y", got, want, 1e-12);
                EXPECT_TRUE(c.ok) << dt(wt) << " T=" << T << " " << name << ": " << c.msg;
                // accumulate adds onto y; a row range writes only its rows
                std::vector<float> acc(static_cast<size_t>(T * N), 2.0f);
                fn(q, 0, T, w.data(), wt, 2, 5, acc.data(), N, true);
                for (int64_t t = 0; t < T; ++t)
                    for (int64_t n = 0; n < N; ++n) {
                        const size_t i = static_cast<size_t>(t * N + n);
                        if (n < 2 || n >= 5) ASSERT_EQ(acc[i], 2.0f);
                        else ASSERT_NEAR(acc[i], 2.0f + got[i], 1e-5f * (1.0f + std::fabs(got[i])));
                    }
            }
        }
    }
}

}  // namespace
}  // namespace qnext::kern::test
