// Sampler: greedy, penalties, masks (argument and hook), top-k / top-p / min-p supports, seeded
// determinism and the empirical distribution of temperature sampling.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "model/sampler.h"

namespace qnext {
namespace {

std::vector<uint32_t> allow_only(int64_t vocab, std::initializer_list<int> ids) {
    std::vector<uint32_t> w(mask_words(vocab), 0);
    for (int i : ids) w[i / 32] |= 1u << (i % 32);
    return w;
}

// Draws n tokens and returns the set of ids seen.
std::set<int32_t> support(SamplerParams p, const std::vector<float>& logits, int n = 2000) {
    Sampler s(p, static_cast<int64_t>(logits.size()));
    std::set<int32_t> seen;
    for (int i = 0; i < n; ++i) seen.insert(s.sample(logits));
    return seen;
}

// NaN logits (NaN/Inf weights, overflow) end generation with a clear error instead of becoming text.
TEST(Sampler, NanLogitsAreAnError) {
    Sampler s(SamplerParams{}, 3);
    try {
        s.sample(std::vector<float>{0.f, std::nanf(""), 1.f});
        ADD_FAILURE() << "no error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("NaN logit (token 1)"), std::string::npos) << e.what();
    }
}

TEST(Sampler, GreedyPicksFirstMaximum) {
    Sampler s(SamplerParams{}, 5);
    EXPECT_EQ(s.sample(std::vector<float>{0.f, 3.f, 1.f, 3.f, -2.f}), 1);
}

TEST(Sampler, RepetitionAndPresencePenalties) {
    SamplerParams p;
    p.repetition_penalty = 2.0f;
    Sampler s(p, 3);
    // token 0: 4 -> 2 (positive divided), token 1 stays 3 -> greedy picks 1
    EXPECT_EQ(s.sample(std::vector<float>{4.f, 3.f, -1.f}, std::vector<int32_t>{0, 0}), 1);
    SamplerParams q;
    q.presence_penalty = 1.5f;
    Sampler t(q, 3);
    EXPECT_EQ(t.sample(std::vector<float>{4.f, 3.f, -1.f}, std::vector<int32_t>{0}), 1);  // 2.5 < 3
    EXPECT_EQ(t.sample(std::vector<float>{4.f, 2.f, -1.f}, std::vector<int32_t>{0}), 0);  // 2.5 > 2
}

TEST(Sampler, MaskArgumentAndHookCombine) {
    const int64_t V = 70;  // three words, last one partial
    std::vector<float> logits(V, 0.f);
    logits[5] = 10.f, logits[40] = 5.f, logits[66] = 1.f;
    Sampler s(SamplerParams{}, V);
    auto only_40_66 = allow_only(V, {40, 66});
    EXPECT_EQ(s.sample(logits, {}, only_40_66.data()), 40);
    s.set_mask_hook([&](uint32_t* w, size_t n) {
        ASSERT_EQ(n, 3u);
        auto m = allow_only(V, {5, 66});
        std::copy(m.begin(), m.end(), w);
    });
    EXPECT_EQ(s.sample(logits), 5);
    EXPECT_EQ(s.sample(logits, {}, only_40_66.data()), 66);  // AND of both
    auto none = allow_only(V, {40});
    EXPECT_THROW(s.sample(logits, {}, none.data()), std::runtime_error);  // hook {5,66} AND {40} = empty
}

TEST(Sampler, TopKTopPMinPRestrictTheSupport) {
    const std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
    SamplerParams p;
    p.temperature = 1.0f;
    p.seed = 1;
    EXPECT_EQ(support(p, logits).size(), 4u);
    SamplerParams k = p;
    k.top_k = 2;
    EXPECT_EQ(support(k, logits), (std::set<int32_t>{0, 1}));
    SamplerParams tp = p;
    tp.top_p = 0.75f;  // 0.5 + 0.3 reaches 0.75, 0.5 alone does not
    EXPECT_EQ(support(tp, logits), (std::set<int32_t>{0, 1}));
    SamplerParams mp = p;
    mp.min_p = 0.25f;  // keeps p >= 0.125
    EXPECT_EQ(support(mp, logits), (std::set<int32_t>{0, 1, 2}));
}

TEST(Sampler, SeededAndDistributedLikeSoftmax) {
    const std::vector<float> logits{0.f, 1.f, 2.f};
    SamplerParams p;
    p.temperature = 2.0f;
    p.seed = 42;
    Sampler a(p, 3), b(p, 3);
    std::map<int32_t, int> counts;
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
        const int32_t x = a.sample(logits);
        ASSERT_EQ(x, b.sample(logits));
        ++counts[x];
    }
    double z = 0;
    for (float l : logits) z += std::exp(l / 2.0);
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(counts[i] / double(n), std::exp(logits[i] / 2.0) / z, 0.015) << i;
}

TEST(Sampler, RejectsBadParameters) {
    SamplerParams p;
    p.top_p = 0.f;
    EXPECT_THROW(Sampler(p, 4), std::runtime_error);
    p = {};
    p.temperature = -1.f;
    EXPECT_THROW(Sampler(p, 4), std::runtime_error);
    Sampler ok(SamplerParams{}, 4);
    EXPECT_THROW(ok.sample(std::vector<float>{1.f, 2.f}), std::runtime_error);
}

}  // namespace
}  // namespace qnext
