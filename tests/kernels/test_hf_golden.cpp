// tests/kernels/test_hf_golden.cpp: the ops against Hugging Face transformers 5.23 itself (fp32):
// gated delta rule (chunked and recurrent, GVA, continuing from a state, gates from a/b/A_log/dt_bias,
// q/k L2 norm), causal conv1d + SiLU (fed in two pieces through the rolling state), zero-centred and
// gated RMSNorm, l2norm, partial NeoX RoPE, eager GQA attention with the sigmoid gate over a cache, and
// the sparse MoE block (norm_topk_prob true/false). Data: tests/data/kernels/hf_golden.{json,bin} from
// tests/reference/make_kernel_golden.py. Every case runs under the reference and the fast backend.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/ops.h"
#include "tests/kernels/op_case.h"

namespace qnext::kern::test {
namespace {

class Golden {
public:
    static const Golden& get() {
        static const Golden g;
        return g;
    }
    // A copy of the named array (tests write into their own copies).
    std::vector<float> vec(const std::string& name) const {
        const auto& e = index_.at(name);
        const size_t off = e.at("offset").get<size_t>();
        size_t n = 1;
        for (const auto& d : e.at("shape")) n *= d.get<size_t>();
        if (off + n > data_.size()) throw std::runtime_error("hf_golden.bin too short for " + name);
        return {data_.begin() + static_cast<std::ptrdiff_t>(off), data_.begin() + static_cast<std::ptrdiff_t>(off + n)};
    }
    int64_t dim(const std::string& name, size_t i) const { return index_.at(name).at("shape").at(i).get<int64_t>(); }
    const nlohmann::json& meta() const { return index_.at("meta"); }

private:
    Golden() {
        const std::string dir = std::string(QNEXT_SOURCE_DIR) + "/tests/data/kernels/";
        std::ifstream js(dir + "hf_golden.json");
        if (!js) throw std::runtime_error("cannot open " + dir + "hf_golden.json");
        index_ = nlohmann::json::parse(js);
        std::ifstream bin(dir + "hf_golden.bin", std::ios::binary | std::ios::ate);
        if (!bin) throw std::runtime_error("cannot open " + dir + "hf_golden.bin");
        data_.resize(static_cast<size_t>(bin.tellg()) / 4);
        bin.seekg(0);
        bin.read(reinterpret_cast<char*>(data_.data()), static_cast<std::streamsize>(data_.size() * 4));
    }
    nlohmann::json index_;
    std::vector<float> data_;
};

void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                  double max_nmse = 1e-10) {
    const Compare c = compare(what, got, want, max_nmse);
    EXPECT_TRUE(c.ok) << c.msg << " [backend " << backend_name(backend()) << "]";
}

class HfGolden : public ::testing::TestWithParam<Backend> {
protected:
    void SetUp() override {
        if (GetParam() == Backend::Cpu && !cpu_features().avx2_fma) GTEST_SKIP() << "no AVX2+FMA";
        prev_ = backend();
        set_backend(GetParam());
    }
    void TearDown() override { set_backend(prev_); }
    Backend prev_ = Backend::Reference;
    const Golden& G = Golden::get();
};

TEST_P(HfGolden, GatedDeltaRuleChunkedAndRecurrent) {
    const int64_t T = G.dim("gdn.q", 0), Hk = G.dim("gdn.q", 1), D = G.dim("gdn.q", 2), Hv = G.dim("gdn.v", 1);
    std::vector<float> q = G.vec("gdn.q"), k = G.vec("gdn.k"), v = G.vec("gdn.v");
    std::vector<float> a = G.vec("gdn.a"), b = G.vec("gdn.b"), A_log = G.vec("gdn.A_log"), dtb = G.vec("gdn.dt_bias");
    const Tensor Q = Tensor::f32(q.data(), {T, Hk, D}), K = Tensor::f32(k.data(), {T, Hk, D});
    l2_norm(Q, 1e-6f, Q);
    l2_norm(K, 1e-6f, K);
    std::vector<float> g(static_cast<size_t>(T * Hv)), beta(g.size());
    std::vector<float> A(A_log.size());   // the model passes A = -exp(A_log) (HF: -self.A_log.float().exp())
    for (size_t h = 0; h < A.size(); ++h) A[h] = -std::exp(A_log[h]);
    gdn_gates(Tensor::f32(a.data(), {T, Hv}), Tensor::f32(b.data(), {T, Hv}), Tensor::f32(A.data(), {Hv}),
              Tensor::f32(dtb.data(), {Hv}), Tensor::f32(g.data(), {T, Hv}), Tensor::f32(beta.data(), {T, Hv}));
    expect_close("g", g, G.vec("gdn.g"), 1e-12);
    expect_close("beta", beta, G.vec("gdn.beta"), 1e-12);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    for (const char* form : {"chunk", "rec"}) {
        std::vector<float> s = G.vec("gdn.s0"), out(static_cast<size_t>(T * Hv * D));
        const Tensor V = Tensor::f32(v.data(), {T, Hv, D}), Gt = Tensor::f32(g.data(), {T, Hv});
        const Tensor B = Tensor::f32(beta.data(), {T, Hv}), S = Tensor::f32(s.data(), {Hv, D, D});
        const Tensor O = Tensor::f32(out.data(), {T, Hv, D});
        if (std::string(form) == "chunk")
            gdn_chunked(Q, K, V, Gt, B, S, O, scale);
        else
            gdn_recurrent(Q, K, V, Gt, B, S, O, scale);
        expect_close(std::string("out_") + form, out, G.vec(std::string("gdn.out_") + form));
        expect_close(std::string("state_") + form, s, G.vec(std::string("gdn.state_") + form));
    }
}

TEST_P(HfGolden, CausalConvInTwoPieces) {
    const int64_t T = G.dim("conv.x", 0), C = G.dim("conv.x", 1), K = G.dim("conv.w", 2);
    std::vector<float> x = G.vec("conv.x"), w = G.vec("conv.w"), y(static_cast<size_t>(T * C));
    std::vector<float> state(static_cast<size_t>((K - 1) * C), 0.0f);
    const Tensor X = Tensor::f32(x.data(), {T, C}), Y = Tensor::f32(y.data(), {T, C});
    const Tensor W = Tensor::f32(w.data(), {C, 1, K}), S = Tensor::f32(state.data(), {K - 1, C});
    const int64_t first = 5;  // prefill 5 tokens, then the rest continues from the rolling state
    conv1d_causal(X.slice(0, 0, first), W, S, Y.slice(0, 0, first));
    conv1d_causal(X.slice(0, first, T - first), W, S, Y.slice(0, first, T - first));
    expect_close("conv y", y, G.vec("conv.y"), 1e-12);
}

TEST_P(HfGolden, Norms) {
    std::vector<float> x = G.vec("rmsnorm.x"), w = G.vec("rmsnorm.w"), y(x.size());
    const int64_t D = G.dim("rmsnorm.x", 1), R = G.dim("rmsnorm.x", 0);
    rms_norm(Tensor::f32(x.data(), {R, D}), Tensor::f32(w.data(), {D}), 1e-6f, NormKind::ZeroCentered,
             Tensor::f32(y.data(), {R, D}));
    expect_close("rmsnorm (1+w)", y, G.vec("rmsnorm.y"), 1e-12);
    std::vector<float> xg = G.vec("gated.x"), z = G.vec("gated.z"), wg = G.vec("gated.w"), yg(xg.size());
    const int64_t Dg = G.dim("gated.x", 1), Rg = G.dim("gated.x", 0);
    rms_norm_gated(Tensor::f32(xg.data(), {Rg, Dg}), Tensor::f32(z.data(), {Rg, Dg}), Tensor::f32(wg.data(), {Dg}),
                   1e-6f, Tensor::f32(yg.data(), {Rg, Dg}));
    expect_close("gated rmsnorm", yg, G.vec("gated.y"), 1e-12);
    l2_norm(Tensor::f32(xg.data(), {Rg, Dg}), 1e-6f, Tensor::f32(yg.data(), {Rg, Dg}));
    expect_close("l2norm", yg, G.vec("l2.y"), 1e-12);
}

TEST_P(HfGolden, PartialNeoxRope) {
    std::vector<float> x = G.vec("rope.x"), pf = G.vec("rope.pos");
    const int64_t T = G.dim("rope.x", 0), H = G.dim("rope.x", 1), Dh = G.dim("rope.x", 2);
    std::vector<int64_t> pos(pf.begin(), pf.end());
    rope_neox(Tensor::f32(x.data(), {T, H, Dh}), pos, G.meta().at("rope_rot_dim").get<int64_t>(),
              G.meta().at("rope_theta").get<double>());
    expect_close("rope", x, G.vec("rope.y"), 1e-12);
}

TEST_P(HfGolden, GatedGqaAttentionOverCache) {
    const int64_t T = G.dim("attn.q", 0), Hq = G.dim("attn.q", 1), D = G.dim("attn.q", 2);
    const int64_t S = G.dim("attn.k", 0), Hkv = G.dim("attn.k", 1);
    const int64_t past = G.meta().at("attn_past").get<int64_t>();
    ASSERT_EQ(S, past + T);
    std::vector<float> q = G.vec("attn.q"), k = G.vec("attn.k"), v = G.vec("attn.v"), gate = G.vec("attn.gate");
    std::vector<float> out(static_cast<size_t>(T * Hq * D));
    attention(Tensor::f32(q.data(), {T, Hq, D}), Tensor::f32(k.data(), {S, Hkv, D}), Tensor::f32(v.data(), {S, Hkv, D}),
              past, 1.0f / std::sqrt(static_cast<float>(D)), Tensor::f32(gate.data(), {T, Hq, D}),
              Tensor::f32(out.data(), {T, Hq, D}));
    expect_close("attention", out, G.vec("attn.out"));
}

TEST_P(HfGolden, SparseMoeBlock) {
    for (const std::string tag : {"moe_a", "moe_b"}) {
        const int64_t E = G.dim(tag + ".gate_up", 0), F2 = G.dim(tag + ".gate_up", 1), D = G.dim(tag + ".gate_up", 2);
        const int64_t F = F2 / 2, T = G.dim(tag + ".x", 0), Fs = G.dim(tag + ".s_gate", 0);
        std::vector<float> x = G.vec(tag + ".x"), router = G.vec(tag + ".router"), gu = G.vec(tag + ".gate_up");
        std::vector<float> down = G.vec(tag + ".down"), sg = G.vec(tag + ".s_gate"), su = G.vec(tag + ".s_up");
        std::vector<float> sd = G.vec(tag + ".s_down"), sgw = G.vec(tag + ".s_gate_w"), y(static_cast<size_t>(T * D));
        const Tensor GU = Tensor::f32(gu.data(), {E, F2, D}), DN = Tensor::f32(down.data(), {E, D, F});
        std::vector<FfnWeights> experts;
        for (int64_t e = 0; e < E; ++e)  // HF v5 fused layout: gate_up_proj[e] = [gate rows; up rows]
            experts.push_back({GU.select(0, e).slice(0, 0, F), GU.select(0, e).slice(0, F, F), DN.select(0, e)});
        const int64_t top_k = tag == "moe_a" ? 2 : 3;
        MoeBlockWeights mw{Tensor::f32(router.data(), {E, D}), experts,
                           {Tensor::f32(sg.data(), {Fs, D}), Tensor::f32(su.data(), {Fs, D}), Tensor::f32(sd.data(), {D, Fs})},
                           Tensor::f32(sgw.data(), {1, D}), top_k, tag == "moe_a"};
        moe_block(Tensor::f32(x.data(), {T, D}), mw, Tensor::f32(y.data(), {T, D}));
        expect_close(tag, y, G.vec(tag + ".y"));
    }
}

INSTANTIATE_TEST_SUITE_P(Kernels, HfGolden, ::testing::Values(Backend::Reference, Backend::Cpu),
                         [](const auto& info) { return std::string(backend_name(info.param)); });

}  // namespace
}  // namespace qnext::kern::test
