// Golden tests: the C++ forward pass against HF transformers 5.23 (fp32) on three tiny random
// Qwen3-Next configs (tests/reference/make_golden.py), plus the self-consistency properties that a
// hybrid model must keep: pieces == whole, chunked == recurrent GDN, snapshot/restore bit-exact.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "model/model_folder.h"
#include "model/qwen3_next.h"
#include "model/sampler.h"
#include "tests/model/golden.h"

namespace qnext {
namespace {

using test::Golden;
using test::rel_l2;

constexpr double kGoldenTol = 1e-4;   // per-layer hidden / logits / state vs HF fp32 (issue 4)
constexpr double kSelfTol = 1e-5;     // one engine, two evaluation orders (fp32 rounding only)
// bf16 weights vs the fp32 weights they were rounded from: measured rel-L2 of the logits is about
// 4.2e-2 on tiny_a (O(1)-scale random weights, 8 significant bits each); we allow 8e-2.
constexpr double kBf16Tol = 8e-2;

struct Fixture {
    ModelFolder folder;
    Golden golden;
    explicit Fixture(const std::string& name)
        : folder(load_model_folder(test::model_data_dir(name), false)), golden(name) {}
};

Fixture& fixture(const std::string& name) {
    static std::map<std::string, std::unique_ptr<Fixture>> cache;
    auto& f = cache[name];
    if (!f) f = std::make_unique<Fixture>(name);
    return *f;
}

std::vector<float> logits_all(const Qwen3NextModel& m, const std::vector<int32_t>& ids, GdnMode mode = GdnMode::Auto) {
    Qwen3NextModel model = m;
    model.set_gdn_mode(mode);
    SequenceState st = model.new_state(static_cast<int64_t>(ids.size()));
    return model.forward(st, ids, LogitsRows::All).data;
}

// Feeds `ids` in pieces of the given sizes (the last piece takes the rest) and concatenates the logits.
std::vector<float> logits_in_pieces(const Qwen3NextModel& model, const std::vector<int32_t>& ids,
                                    const std::vector<int64_t>& sizes) {
    SequenceState st = model.new_state(static_cast<int64_t>(ids.size()));
    std::vector<float> all;
    size_t pos = 0;
    for (size_t i = 0; pos < ids.size(); ++i) {
        const size_t n = i < sizes.size() ? std::min<size_t>(sizes[i], ids.size() - pos) : ids.size() - pos;
        Logits l = model.forward(st, std::span<const int32_t>(ids).subspan(pos, n), LogitsRows::All);
        all.insert(all.end(), l.data.begin(), l.data.end());
        pos += n;
    }
    return all;
}

class GoldenModel : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenModel, PerLayerHiddenAndLogitsMatchHF) {
    Fixture& f = fixture(GetParam());
    Qwen3NextModel model(f.folder);
    const auto ids = f.golden.ids("prompt");
    std::map<std::string, std::vector<float>> seen;
    model.set_trace([&](std::string_view name, int layer, const kern::Tensor& t) {
        std::string key;
        if (name == "embed") key = "hidden.-1";
        else if (name == "hidden") key = "hidden." + std::to_string(layer);
        else if (name == "final_norm") key = "hidden.final";
        else return;
        const float* p = t.f32();
        seen[key].assign(p, p + t.numel());
    });
    SequenceState st = model.new_state(static_cast<int64_t>(ids.size()));
    Logits logits = model.forward(st, ids, LogitsRows::All);
    for (int l = -1; l < f.folder.config.num_hidden_layers; ++l) {
        const std::string key = "hidden." + std::to_string(l);
        ASSERT_TRUE(seen.count(key)) << key;
        EXPECT_LE(rel_l2(seen[key], f.golden.at(key).data), kGoldenTol) << key;
    }
    EXPECT_LE(rel_l2(seen["hidden.final"], f.golden.at("hidden.final").data), kGoldenTol);
    ASSERT_EQ(logits.rows, static_cast<int64_t>(ids.size()));
    EXPECT_LE(rel_l2(logits.data, f.golden.at("logits").data), kGoldenTol);
}

TEST_P(GoldenModel, StateAfterPromptMatchesHF) {
    Fixture& f = fixture(GetParam());
    const Qwen3NextConfig& c = f.folder.config;
    Qwen3NextModel model(f.folder);
    const auto ids = f.golden.ids("prompt");
    const int64_t T = static_cast<int64_t>(ids.size());
    SequenceState st = model.new_state(T + 4);
    model.forward(st, ids);
    EXPECT_EQ(st.n_tokens(), T);
    for (int l = 0; l < c.num_hidden_layers; ++l) {
        const std::string sl = std::to_string(l);
        if (c.is_full_attention(l)) {
            // HF [Hkv, T, D] vs ours [capacity, Hkv, D]
            for (const char* which : {"key", "value"}) {
                const auto& g = f.golden.at(std::string(which) + "." + sl);
                const kern::Tensor& cache = std::string(which) == "key" ? st.keys(l) : st.values(l);
                std::vector<float> ours(g.data.size());
                const int64_t H = g.shape[0], D = g.shape[2];
                for (int64_t h = 0; h < H; ++h)
                    for (int64_t t = 0; t < T; ++t)
                        for (int64_t d = 0; d < D; ++d)
                            ours[(h * T + t) * D + d] = cache.f32()[(t * H + h) * D + d];
                EXPECT_LE(rel_l2(ours, g.data), kGoldenTol) << which << " layer " << l;
            }
        } else {
            // HF conv state [C, K] holds the last K inputs; ours [K-1, C] the last K-1.
            const auto& g = f.golden.at("conv." + sl);
            const int64_t C = g.shape[0], K = g.shape[1];
            std::vector<float> hf_tail, ours;
            for (int64_t j = 1; j < K; ++j)
                for (int64_t ch = 0; ch < C; ++ch) {
                    hf_tail.push_back(g.data[ch * K + j]);
                    ours.push_back(st.conv(l).f32()[(j - 1) * C + ch]);
                }
            EXPECT_LE(rel_l2(ours, hf_tail), kGoldenTol) << "conv layer " << l;
            const auto& r = f.golden.at("recurrent." + sl);
            const kern::Tensor& rec = st.recurrent(l);
            EXPECT_LE(rel_l2({rec.f32(), static_cast<size_t>(rec.numel())}, r.data), kGoldenTol)
                << "recurrent layer " << l;
        }
    }
}

TEST_P(GoldenModel, Greedy64TokensIdenticalToHFGenerate) {
    Fixture& f = fixture(GetParam());
    Qwen3NextModel model(f.folder);
    const auto ids = f.golden.ids("prompt");
    const auto expected = f.golden.ids("greedy");
    SequenceState st = model.new_state(static_cast<int64_t>(ids.size() + expected.size()));
    Sampler greedy(SamplerParams{}, model.vocab_size());
    std::vector<int32_t> got;
    Logits l = model.forward(st, ids);
    for (size_t i = 0; i < expected.size(); ++i) {
        const int32_t tok = greedy.sample(l.last());
        got.push_back(tok);
        if (i + 1 < expected.size()) l = model.forward(st, std::span<const int32_t>(&tok, 1));
    }
    EXPECT_EQ(got, expected);
}

TEST_P(GoldenModel, PiecesEqualWhole) {
    Fixture& f = fixture(GetParam());
    Qwen3NextModel model(f.folder);
    const auto ids = f.golden.ids("prompt");
    const int64_t T = static_cast<int64_t>(ids.size());
    const auto whole = logits_all(model, ids);
    // prefill half, then decode one token at a time
    std::vector<int64_t> half_then_ones{T / 2};
    for (int64_t i = T / 2; i < T; ++i) half_then_ones.push_back(1);
    EXPECT_LE(rel_l2(logits_in_pieces(model, ids, half_then_ones), whole), kSelfTol);
    // uneven multi-token pieces on top of an existing state (the HF-before-2026-04 bug case)
    EXPECT_LE(rel_l2(logits_in_pieces(model, ids, {5, 1, 7, 2, 3}), whole), kSelfTol);
    // and HF's own two-piece cached forward agrees with ours
    const int64_t cut = f.golden.meta()["split_cut"].get<int64_t>();
    EXPECT_LE(rel_l2(logits_in_pieces(model, ids, {cut}), f.golden.at("split_logits").data), kGoldenTol);
}

TEST_P(GoldenModel, ChunkedEqualsRecurrentGdn) {
    Fixture& f = fixture(GetParam());
    Qwen3NextModel model(f.folder);
    const auto ids = f.golden.ids("prompt");
    const int64_t T = static_cast<int64_t>(ids.size());
    Qwen3NextModel chunked = model, recurrent = model;
    chunked.set_gdn_mode(GdnMode::Chunked);
    recurrent.set_gdn_mode(GdnMode::Recurrent);
    SequenceState a = chunked.new_state(T), b = recurrent.new_state(T);
    EXPECT_LE(rel_l2(chunked.forward(a, ids, LogitsRows::All).data, recurrent.forward(b, ids, LogitsRows::All).data),
              kSelfTol);
    for (int l = 0; l < f.folder.config.num_hidden_layers; ++l) {
        if (f.folder.config.is_full_attention(l)) continue;
        const kern::Tensor &ra = a.recurrent(l), &rb = b.recurrent(l);
        EXPECT_LE(rel_l2({ra.f32(), static_cast<size_t>(ra.numel())}, {rb.f32(), static_cast<size_t>(rb.numel())}),
                  kSelfTol)
            << "layer " << l;
    }
}

TEST_P(GoldenModel, SnapshotRestoreIsBitExact) {
    Fixture& f = fixture(GetParam());
    Qwen3NextModel model(f.folder);
    const auto ids = f.golden.ids("prompt");
    const auto cont = f.golden.ids("greedy");
    const std::vector<int32_t> next(cont.begin(), cont.begin() + 6);
    SequenceState st = model.new_state(static_cast<int64_t>(ids.size() + 2 * next.size()));
    model.forward(st, ids);
    const auto snap = st.snapshot();
    const std::vector<float> first = model.forward(st, next, LogitsRows::All).data;
    const std::vector<float> one_more = model.forward(st, std::span<const int32_t>(next).first(1)).data;
    st.restore(snap);
    EXPECT_EQ(st.n_tokens(), static_cast<int64_t>(ids.size()));
    const std::vector<float> again = model.forward(st, next, LogitsRows::All).data;
    ASSERT_EQ(first.size(), again.size());
    EXPECT_EQ(std::memcmp(first.data(), again.data(), first.size() * sizeof(float)), 0);
    // a clone continues identically and independently
    SequenceState copy = st.clone();
    const auto a = model.forward(st, std::span<const int32_t>(next).first(1)).data;
    const auto b = model.forward(copy, std::span<const int32_t>(next).first(1)).data;
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(a.data(), one_more.data(), a.size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(Tiny, GoldenModel, ::testing::Values("tiny_a", "tiny_b", "tiny_c", "tiny_d"));
// The Qwen3.5 / 3.6 family (tests/reference/make_qwen35_golden.py): dense and MoE, tied and untied, the
// multimodal wrapper layout, fused experts, MTP tensors, HF MRoPE vs the plain RoPE computed here.
INSTANTIATE_TEST_SUITE_P(Qwen35, GoldenModel, ::testing::Values("q35_dense_a", "q35_dense_b", "q35_moe_a", "q35_moe_b"));

TEST(GoldenBf16, Bf16CheckpointMatchesHFAndStaysNearF32) {
    Fixture& bf = fixture("tiny_a_bf16");
    Fixture& f32 = fixture("tiny_a");
    Qwen3NextModel model(bf.folder);
    const auto ids = bf.golden.ids("prompt");
    const auto logits = logits_all(model, ids);
    // exact: HF fp32 compute over the same bf16-rounded weights
    EXPECT_LE(rel_l2(logits, bf.golden.at("logits").data), kGoldenTol);
    // documented tolerance against the original fp32 weights
    const double drift = rel_l2(logits, f32.golden.at("logits").data);
    EXPECT_LE(drift, kBf16Tol);
    RecordProperty("bf16_vs_f32_rel_l2", std::to_string(drift));
}

}  // namespace
}  // namespace qnext
