// tests/kernels/test_ref.cpp: the scalar reference itself on tiny hand-computed cases (every expected
// number below is worked out by hand in the comment next to it), Tensor view arithmetic, argument
// validation errors, backend selection and the CPU worker pool. Runs with Backend::Reference forced.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/ops.h"
#include "tests/kernels/op_case.h"

namespace qnext::kern::test {
namespace {

class Ref : public ::testing::Test {
protected:
    void SetUp() override {
        prev_ = backend();
        set_backend(Backend::Reference);
    }
    void TearDown() override { set_backend(prev_); }
    Backend prev_ = Backend::Reference;
};

Tensor v1(std::vector<float>& v) { return Tensor::f32(v.data(), {static_cast<int64_t>(v.size())}); }

TEST_F(Ref, RmsNormPlainAndZeroCentered) {
    // x = [1,2,3,4]: mean(x^2) = 30/4 = 7.5, rstd = 1/sqrt(7.5) = 0.365148
    std::vector<float> x{1, 2, 3, 4}, w{0.0f, 0.5f, -0.5f, 1.0f}, y(4);
    rms_norm(Tensor::f32(x.data(), {1, 4}), v1(w), 0.0f, NormKind::Plain, Tensor::f32(y.data(), {1, 4}));
    const float r = 0.36514837f;
    EXPECT_NEAR(y[0], 0.0f, 1e-6);
    EXPECT_NEAR(y[1], 2 * r * 0.5f, 1e-6);   // 0.365148
    EXPECT_NEAR(y[2], -3 * r * 0.5f, 1e-6);  // -0.547723
    EXPECT_NEAR(y[3], 4 * r, 1e-6);          // 1.460593
    rms_norm(Tensor::f32(x.data(), {1, 4}), v1(w), 0.0f, NormKind::ZeroCentered, Tensor::f32(y.data(), {1, 4}));
    EXPECT_NEAR(y[0], 1 * r * 1.0f, 1e-6);  // (1 + 0)
    EXPECT_NEAR(y[1], 2 * r * 1.5f, 1e-6);  // (1 + 0.5)
    EXPECT_NEAR(y[2], 3 * r * 0.5f, 1e-6);  // (1 - 0.5)
    EXPECT_NEAR(y[3], 4 * r * 2.0f, 1e-6);  // (1 + 1)
}

TEST_F(Ref, RmsNormEpsAndBf16Weight) {
    // x = [0, 0]: rstd = 1/sqrt(0 + 0.25) = 2; output 0 regardless; x = [1, 1], eps = 3: rstd = 1/2
    std::vector<float> x{1, 1}, y(2);
    const Stored w(DType::BF16, {2.0f, 0.5f});
    rms_norm(Tensor::f32(x.data(), {1, 2}), w.view({2}), 3.0f, NormKind::Plain, Tensor::f32(y.data(), {1, 2}));
    EXPECT_FLOAT_EQ(y[0], 1.0f);   // 1 * 0.5 * 2
    EXPECT_FLOAT_EQ(y[1], 0.25f);  // 1 * 0.5 * 0.5
}

TEST_F(Ref, GatedRmsNorm) {
    // x = [3,4]: mean(x^2) = 12.5, rstd = 0.2828427; w = [1,2]; z = [1,-1]:
    // silu(1) = 0.7310586, silu(-1) = -0.2689414
    std::vector<float> x{3, 4}, z{1, -1}, w{1, 2}, y(2);
    rms_norm_gated(Tensor::f32(x.data(), {1, 2}), Tensor::f32(z.data(), {1, 2}), v1(w), 0.0f,
                   Tensor::f32(y.data(), {1, 2}));
    EXPECT_NEAR(y[0], 3 * 0.2828427f * 1 * 0.7310586f, 1e-6);   // 0.620330
    EXPECT_NEAR(y[1], 4 * 0.2828427f * 2 * -0.2689414f, 1e-6);  // -0.608553
}

TEST_F(Ref, L2Norm) {
    std::vector<float> x{3, 4, 0, 0}, y(4);
    l2_norm(Tensor::f32(x.data(), {2, 2}), 0.0f, Tensor::f32(y.data(), {2, 2}));
    EXPECT_FLOAT_EQ(y[0], 0.6f);  // 3/5
    EXPECT_FLOAT_EQ(y[1], 0.8f);  // 4/5
    l2_norm(Tensor::f32(x.data(), {2, 2}), 1e-6f, Tensor::f32(y.data(), {2, 2}));
    EXPECT_EQ(y[2], 0.0f);  // zero row stays zero thanks to eps
}

TEST_F(Ref, RopeNeoxPairsAndPassThrough) {
    // head_dim 6, rot_dim 4 (pairs (0,2) and (1,3)), theta 10000: inv_freq = [1, 10000^-0.5 = 0.01].
    // x = [1, 1, 0, 0, 5, 6] at position 2: angles [2, 0.02].
    std::vector<float> x{1, 1, 0, 0, 5, 6};
    const std::vector<int64_t> pos{2};
    rope_neox(Tensor::f32(x.data(), {1, 1, 6}), pos, 4, 10000.0);
    EXPECT_NEAR(x[0], std::cos(2.0f), 1e-6);     // x0 cos - x2 sin
    EXPECT_NEAR(x[1], std::cos(0.02f), 1e-6);
    EXPECT_NEAR(x[2], std::sin(2.0f), 1e-6);     // x2 cos + x0 sin
    EXPECT_NEAR(x[3], std::sin(0.02f), 1e-6);
    EXPECT_EQ(x[4], 5.0f);  // beyond rot_dim: untouched
    EXPECT_EQ(x[5], 6.0f);
    std::vector<float> y{1, 2, 3, 4};
    const std::vector<int64_t> zero{0};
    rope_neox(Tensor::f32(y.data(), {1, 1, 4}), zero, 4, 1e7);
    EXPECT_EQ(y, (std::vector<float>{1, 2, 3, 4}));  // position 0 = identity
}

TEST_F(Ref, EmbedRowsBf16) {
    const Stored table(DType::BF16, {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f});  // [3, 2]
    std::vector<float> out(4);
    const std::vector<int32_t> ids{2, 0};
    embed_rows(table.view({3, 2}), ids, Tensor::f32(out.data(), {2, 2}));
    EXPECT_EQ(out, (std::vector<float>{5, 6, 1, 2}));
}

TEST_F(Ref, MatmulTiny) {
    // x = [[1, 2]], w = [[3, 4], [5, 6], [7, 8]]: y = [1*3+2*4, 1*5+2*6, 1*7+2*8] = [11, 17, 23]
    std::vector<float> x{1, 2}, w{3, 4, 5, 6, 7, 8}, y{100, 100, 100};
    matmul(Tensor::f32(x.data(), {1, 2}), Tensor::f32(w.data(), {3, 2}), Tensor::f32(y.data(), {1, 3}));
    EXPECT_EQ(y, (std::vector<float>{11, 17, 23}));
    matmul(Tensor::f32(x.data(), {1, 2}), Tensor::f32(w.data(), {3, 2}), Tensor::f32(y.data(), {1, 3}), true);
    EXPECT_EQ(y, (std::vector<float>{22, 34, 46}));
}

TEST_F(Ref, Elementwise) {
    std::vector<float> a{0, 1, -1}, b{2, 3, 4}, o(3);
    silu_mul(v1(a), v1(b), v1(o));  // silu(0)=0, silu(1)=0.7310586, silu(-1)=-0.2689414
    EXPECT_NEAR(o[0], 0.0f, 1e-7);
    EXPECT_NEAR(o[1], 3 * 0.7310586f, 1e-6);
    EXPECT_NEAR(o[2], 4 * -0.2689414f, 1e-6);
    mul_sigmoid(v1(b), v1(a), v1(o));  // sigmoid(0)=0.5, sigmoid(1)=0.7310586, sigmoid(-1)=0.2689414
    EXPECT_NEAR(o[0], 1.0f, 1e-7);
    EXPECT_NEAR(o[1], 3 * 0.7310586f, 1e-6);
    EXPECT_NEAR(o[2], 4 * 0.2689414f, 1e-6);
    add(v1(a), v1(b), v1(o));
    EXPECT_EQ(o, (std::vector<float>{2, 4, 3}));
    std::vector<float> l{0.0f, std::log(2.0f), std::log(3.0f)};
    softmax(v1(l), v1(o));  // [1, 2, 3] / 6
    EXPECT_NEAR(o[0], 1.0 / 6, 1e-7);
    EXPECT_NEAR(o[1], 2.0 / 6, 1e-7);
    EXPECT_NEAR(o[2], 3.0 / 6, 1e-7);
}

TEST_F(Ref, Conv1dCausalRollingState) {
    // C = 1, K = 4, w = [1, 2, 3, 4] (w[3] multiplies the current token), no SiLU.
    std::vector<float> w{1, 2, 3, 4}, st(3, 0.0f), x{1, 1}, out(2);
    conv1d_causal(Tensor::f32(x.data(), {2, 1}), Tensor::f32(w.data(), {1, 1, 4}), Tensor::f32(st.data(), {3, 1}),
                  Tensor::f32(out.data(), {2, 1}), false);
    EXPECT_EQ(out[0], 4.0f);  // 4*1
    EXPECT_EQ(out[1], 7.0f);  // 3*1 + 4*1
    EXPECT_EQ(st, (std::vector<float>{0, 1, 1}));
    std::vector<float> x2{2}, o2(1);
    conv1d_causal(Tensor::f32(x2.data(), {1, 1}), Tensor::f32(w.data(), {1, 4}), Tensor::f32(st.data(), {3, 1}),
                  Tensor::f32(o2.data(), {1, 1}), true);
    // 1*0 + 2*1 + 3*1 + 4*2 = 13; silu(13) = 13 / (1 + e^-13)
    EXPECT_NEAR(o2[0], 13.0f / (1.0f + std::exp(-13.0f)), 1e-5);
    EXPECT_EQ(st, (std::vector<float>{1, 1, 2}));
}

TEST_F(Ref, GdnGates) {
    // A_log = 0 -> A = 1; a + dt_bias = 0 -> softplus = ln 2; g = -ln 2. b = 0 -> beta = 0.5.
    // a + dt_bias = 30 > 20 -> softplus = 30 exactly; A_log = ln 2 -> g = -60.
    std::vector<float> a{0.5f, 29.0f}, b{0.0f, 100.0f}, A_log{0.0f, std::log(2.0f)}, dtb{-0.5f, 1.0f}, g(2), beta(2);
    std::vector<float> A{-std::exp(A_log[0]), -std::exp(A_log[1])};   // the model passes A = -exp(A_log)
    gdn_gates(Tensor::f32(a.data(), {1, 2}), Tensor::f32(b.data(), {1, 2}), v1(A), v1(dtb),
              Tensor::f32(g.data(), {1, 2}), Tensor::f32(beta.data(), {1, 2}));
    EXPECT_NEAR(g[0], -std::log(2.0f), 1e-6);
    EXPECT_NEAR(g[1], -60.0f, 1e-4);
    EXPECT_FLOAT_EQ(beta[0], 0.5f);
    EXPECT_FLOAT_EQ(beta[1], 1.0f);
}

TEST_F(Ref, GdnRecurrentScalarHead) {
    // Dk = Dv = 1, q = k = 1, scale 1. t0: g = 0, beta = 0.5, v = 2: S = 0 -> delta = 0.5*(2-0) = 1,
    // S = 1, o = 1. t1: g = ln 0.5, beta = 0.5, v = 2: S = 0.5, delta = 0.5*(2-0.5) = 0.75, S = 1.25, o = 1.25.
    std::vector<float> q{1, 1}, k{1, 1}, v{2, 2}, g{0.0f, std::log(0.5f)}, beta{0.5f, 0.5f}, s{0}, o(2);
    auto run = [&](bool chunked) {
        s = {0};
        const Tensor Q = Tensor::f32(q.data(), {2, 1, 1}), K = Tensor::f32(k.data(), {2, 1, 1});
        const Tensor V = Tensor::f32(v.data(), {2, 1, 1}), G = Tensor::f32(g.data(), {2, 1});
        const Tensor B = Tensor::f32(beta.data(), {2, 1}), S = Tensor::f32(s.data(), {1, 1, 1});
        const Tensor O = Tensor::f32(o.data(), {2, 1, 1});
        chunked ? gdn_chunked(Q, K, V, G, B, S, O, 1.0f) : gdn_recurrent(Q, K, V, G, B, S, O, 1.0f);
    };
    for (bool chunked : {false, true}) {
        run(chunked);
        EXPECT_NEAR(o[0], 1.0f, 1e-6) << "chunked=" << chunked;
        EXPECT_NEAR(o[1], 1.25f, 1e-6) << "chunked=" << chunked;
        EXPECT_NEAR(s[0], 1.25f, 1e-6) << "chunked=" << chunked;
    }
}

TEST_F(Ref, GdnValueHeadUsesKeyHeadFloorDiv) {
    // Hk = 2, Hv = 4: value heads 0,1 read key head 0 (k = [1,0]); heads 2,3 read key head 1 (k = [0,1]).
    // One token, g = 0, beta = 1, v = 1, q = k: S = k (x) 1, o = q.k = 1 if same key head else 0 -> o = 1.
    std::vector<float> q{1, 0, 0, 1}, k{1, 0, 0, 1}, v{1, 1, 1, 1}, g(4, 0.0f), beta(4, 1.0f), s(8, 0.0f), o(4);
    gdn_recurrent(Tensor::f32(q.data(), {1, 2, 2}), Tensor::f32(k.data(), {1, 2, 2}), Tensor::f32(v.data(), {1, 4, 1}),
                  Tensor::f32(g.data(), {1, 4}), Tensor::f32(beta.data(), {1, 4}), Tensor::f32(s.data(), {4, 2, 1}),
                  Tensor::f32(o.data(), {1, 4, 1}), 1.0f);
    EXPECT_EQ(o, (std::vector<float>{1, 1, 1, 1}));
    EXPECT_EQ(s, (std::vector<float>{1, 0, 1, 0, 0, 1, 0, 1}));  // heads 0,1: k0; heads 2,3: k1
}

TEST_F(Ref, AttentionOneHotAndCausal) {
    // D = 2, keys k0 = [1,0], k1 = [0,1]; values v0 = [10, 20], v1 = [30, 40]; scale 1.
    // Query 0 (pos 0) sees only key 0 -> [10, 20]. Query 1 = [0, 50] (pos 1) -> softmax [e^0, e^50] -> v1.
    std::vector<float> q{5, 0, 0, 50}, k{1, 0, 0, 1}, v{10, 20, 30, 40}, out(4);
    attention(Tensor::f32(q.data(), {2, 1, 2}), Tensor::f32(k.data(), {2, 1, 2}), Tensor::f32(v.data(), {2, 1, 2}), 0,
              1.0f, Tensor{}, Tensor::f32(out.data(), {2, 1, 2}));
    EXPECT_NEAR(out[0], 10.0f, 1e-5);
    EXPECT_NEAR(out[1], 20.0f, 1e-5);
    EXPECT_NEAR(out[2], 30.0f, 1e-5);
    EXPECT_NEAR(out[3], 40.0f, 1e-5);
    // Gate: out *= sigmoid(gate); gate 0 -> 0.5
    std::vector<float> gate(4, 0.0f);
    attention(Tensor::f32(q.data(), {2, 1, 2}), Tensor::f32(k.data(), {2, 1, 2}), Tensor::f32(v.data(), {2, 1, 2}), 0,
              1.0f, Tensor::f32(gate.data(), {2, 1, 2}), Tensor::f32(out.data(), {2, 1, 2}));
    EXPECT_NEAR(out[0], 5.0f, 1e-5);
    // Equal scores: q = [0, 0] -> uniform over both keys -> mean of values [20, 30].
    std::vector<float> q0{0, 0}, o1(2);
    attention(Tensor::f32(q0.data(), {1, 1, 2}), Tensor::f32(k.data(), {2, 1, 2}), Tensor::f32(v.data(), {2, 1, 2}), 1,
              1.0f, Tensor{}, Tensor::f32(o1.data(), {1, 1, 2}));
    EXPECT_NEAR(o1[0], 20.0f, 1e-5);
    EXPECT_NEAR(o1[1], 30.0f, 1e-5);
}

TEST_F(Ref, MoeRouteTopKAndRenorm) {
    // logits [0, ln2, ln3, ln1=0] -> p = [1, 2, 3, 1] / 7. top-2 = experts 2, 1 with p 3/7, 2/7.
    std::vector<float> l{0.0f, std::log(2.0f), std::log(3.0f), 0.0f};
    std::vector<int32_t> ids(2);
    std::vector<float> w(2);
    const Tensor L = Tensor::f32(l.data(), {1, 4});
    moe_route(L, 2, true, Tensor::view(ids.data(), DType::I32, {1, 2}), Tensor::f32(w.data(), {1, 2}));
    EXPECT_EQ(ids, (std::vector<int32_t>{2, 1}));
    EXPECT_NEAR(w[0], 0.6f, 1e-6);  // 3/(3+2)
    EXPECT_NEAR(w[1], 0.4f, 1e-6);
    moe_route(L, 2, false, Tensor::view(ids.data(), DType::I32, {1, 2}), Tensor::f32(w.data(), {1, 2}));
    EXPECT_NEAR(w[0], 3.0f / 7, 1e-6);
    EXPECT_NEAR(w[1], 2.0f / 7, 1e-6);
    std::vector<int32_t> id1(1);
    std::vector<float> w1(1);
    moe_route(L, 1, true, Tensor::view(id1.data(), DType::I32, {1, 1}), Tensor::f32(w1.data(), {1, 1}));
    EXPECT_EQ(id1[0], 2);
    EXPECT_FLOAT_EQ(w1[0], 1.0f);  // top-1 renormalised
    // Tie between experts 0 and 3 (both 1/7) for the third slot: lower index first.
    std::vector<int32_t> id3(3);
    std::vector<float> w3(3);
    moe_route(L, 3, false, Tensor::view(id3.data(), DType::I32, {1, 3}), Tensor::f32(w3.data(), {1, 3}));
    EXPECT_EQ(id3, (std::vector<int32_t>{2, 1, 0}));
}

TEST_F(Ref, SharedExpertScalarGate) {
    // D = 1, F = 1: gate = up = down = 1 -> ffn(x) = silu(x) * x. x = 2: silu(2) = 1.7615942, ffn = 3.5231884.
    // shared gate weight 0 -> sigmoid(0) = 0.5 -> 1.7615942, accumulated onto 1.
    std::vector<float> x{2}, one{1}, zero{0}, out{1};
    const FfnWeights w{Tensor::f32(one.data(), {1, 1}), Tensor::f32(one.data(), {1, 1}), Tensor::f32(one.data(), {1, 1})};
    shared_expert(Tensor::f32(x.data(), {1, 1}), w, Tensor::f32(zero.data(), {1, 1}), Tensor::f32(out.data(), {1, 1}));
    EXPECT_NEAR(out[0], 1.0f + 0.5f * (1.7615942f * 2.0f), 1e-5);  // 2.7615942
}

// ---- tensor views ------------------------------------------------------------------------------

TEST(TensorView, SliceUnflattenSelect) {
    std::vector<float> buf(2 * 3 * 8);
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(i);
    const Tensor t = Tensor::f32(buf.data(), {2, 24});
    const Tensor heads = t.unflatten(1, {3, 8});  // [2, 3, 8]
    EXPECT_EQ(heads.stride[0], 24);
    EXPECT_EQ(heads.stride[1], 8);
    const Tensor first_half = heads.slice(2, 0, 4);  // per-head interleaved [q | gate] style view
    EXPECT_FALSE(first_half.contiguous());
    EXPECT_EQ(first_half.rows(), 6);
    EXPECT_EQ(static_cast<float*>(first_half.row_ptr(4))[0], 32.0f);  // token 1, head 1 -> 24 + 8
    const Tensor gate = heads.slice(2, 4, 4);
    EXPECT_EQ(static_cast<float*>(gate.row_ptr(0))[0], 4.0f);
    const Tensor tok1 = heads.select(0, 1);  // [3, 8]
    EXPECT_EQ(tok1.rank, 2);
    EXPECT_EQ(tok1.ptr<float>()[0], 24.0f);
    EXPECT_THROW(t.reshape({5, 5}), std::invalid_argument);
    EXPECT_THROW(first_half.reshape({24}), std::invalid_argument);
    EXPECT_THROW(t.slice(1, 20, 5), std::invalid_argument);
    EXPECT_EQ(heads.flatten_rows().shape[0], 6);
}

TEST(TensorView, CopyStridedConvertsDtype) {
    // De-interleave [q0 g0 | q1 g1] halves into a contiguous q buffer, then round-trip through bf16.
    std::vector<float> src{1, 2, 3, 4, 5, 6, 7, 8}, q(4);
    const Tensor s = Tensor::f32(src.data(), {1, 2, 4}).slice(2, 0, 2);  // [1, 2, 2] strided
    copy(s, Tensor::f32(q.data(), {1, 2, 2}));
    EXPECT_EQ(q, (std::vector<float>{1, 2, 5, 6}));
    TensorBuffer b(DType::BF16, {4});
    copy(Tensor::f32(q.data(), {4}), b);
    std::vector<float> back(4);
    copy(b, Tensor::f32(back.data(), {4}));
    EXPECT_EQ(back, q);  // small integers are exact in bf16
}

TEST(TensorView, Bf16F16Conversions) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
    EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // halfway 1 + 2^-8 rounds to even (1.0)
    EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);  // halfway 1 + 3*2^-8 rounds to even (up)
    EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
    EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
    EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
    EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
    EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
    EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
    EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);  // overflow -> inf
    for (uint32_t h = 0; h < 0x7c00; h += 7) EXPECT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h);
}

// ---- validation errors: clear messages, never a crash ---------------------------------------------

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(OpErrors, MessagesNameOpAndTensor) {
    std::vector<float> buf(64, 0.0f);
    const Stored table(DType::BF16, std::vector<float>(12, 1.0f));
    const std::vector<int32_t> bad{1, 3};
    EXPECT_NE(error_of([&] { embed_rows(table.view({3, 4}), bad, Tensor::f32(buf.data(), {2, 4})); })
                  .find("token id 3 at position 1 is out of range [0, 3)"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  matmul(Tensor::f32(buf.data(), {2, 4}), Tensor::f32(buf.data() + 8, {3, 5}),
                         Tensor::f32(buf.data() + 32, {2, 3}));
              }).find("kernels::matmul: x f32[2, 4] and w f32[3, 5] disagree on K"),
              std::string::npos);
    const Tensor q = Tensor::f32(buf.data(), {1, 2, 4}), v = Tensor::f32(buf.data() + 8, {1, 3, 4});
    const Tensor g = Tensor::f32(buf.data() + 20, {1, 3}), s = Tensor::f32(buf.data() + 24, {3, 4, 4});
    EXPECT_NE(error_of([&] { gdn_recurrent(q, q, v, g, g, s, Tensor::f32(buf.data() + 8, {1, 3, 4}), 1.0f); })
                  .find("value heads (3) must be a multiple of key heads (2)"),
              std::string::npos);
    const Tensor kc = Tensor::f32(buf.data() + 8, {2, 1, 4});
    EXPECT_NE(error_of([&] {
                  attention(Tensor::f32(buf.data(), {2, 1, 4}), kc, kc, 1, 1.0f, Tensor{},
                            Tensor::f32(buf.data() + 40, {2, 1, 4}));
              }).find("n_past 1 + 2 tokens exceeds the cache length 2"),
              std::string::npos);
    std::vector<int32_t> ids(2);
    EXPECT_NE(error_of([&] {
                  moe_route(Tensor::f32(buf.data(), {1, 4}), 5, true, Tensor::view(ids.data(), DType::I32, {1, 5}),
                            Tensor::f32(buf.data() + 8, {1, 5}));
              }).find("top_k 5 must be in [1, 4]"),
              std::string::npos);
    const Stored wb(DType::BF16, std::vector<float>(4, 1.0f));
    EXPECT_NE(error_of([&] { rms_norm(wb.view({1, 4}), wb.view({4}), 1e-6f, NormKind::Plain, wb.view({1, 4})); })
                  .find("x must be f32"),
              std::string::npos);
}

TEST(Backend, SelectAndSummary) {
    const Backend prev = backend();
    set_backend(Backend::Reference);
    EXPECT_EQ(backend(), Backend::Reference);
    if (cpu_features().avx2_fma) {
        set_backend(Backend::Cpu);
        EXPECT_EQ(backend(), Backend::Cpu);
    } else {
        EXPECT_THROW(set_backend(Backend::Cpu), std::runtime_error);
    }
    set_backend(prev);
    EXPECT_NE(backend_summary().find("kernels: "), std::string::npos);
    EXPECT_GE(num_threads(), 1);
    EXPECT_FALSE(cuda_available() && !cuda_compiled());
}

}  // namespace
}  // namespace qnext::kern::test

namespace qnext::kern::test {
namespace {

TEST(ThreadPool, RangesAndDynamicCoverEveryIndexOnce) {
    const int prev = num_threads();
    for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        EXPECT_EQ(num_threads(), threads);
        for (int64_t n : {1, 2, 5, 1000}) {
            std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
            cpu::parallel_ranges(n, [&](int64_t b, int64_t e, int w) {
                EXPECT_LT(w, threads);
                for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
            });
            cpu::parallel_dynamic(n, [&](int64_t i, int) { hits[static_cast<size_t>(i)]++; });
            for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)].load(), 2) << "n=" << n << " i=" << i;
        }
        // A job that calls back into the pool runs the inner call serially instead of deadlocking.
        std::atomic<int64_t> inner{0};
        cpu::parallel_ranges(4, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) cpu::parallel_ranges(10, [&](int64_t b2, int64_t e2, int) { inner += e2 - b2; });
        });
        EXPECT_EQ(inner.load(), 40);
    }
    set_num_threads(prev);
    EXPECT_THROW(set_num_threads(0), std::invalid_argument);
}

}  // namespace
}  // namespace qnext::kern::test
