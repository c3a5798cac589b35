// MTP self-speculative greedy decoding (model/speculative.h): token-for-token identical to plain greedy decoding
// for k = 1..4 on the demo model (held-out transcripts cut at many points, with and without a token constraint)
// and on random-weight models of several shapes for 256 tokens; after any run the sequence state equals the one
// plain decoding leaves (rollback property); the demo model's MTP head actually gets drafts accepted.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "model/checkpoint.h"
#include "model/config.h"
#include "model/model_folder.h"
#include "model/qwen3_next.h"
#include "model/speculative.h"
#include "tests/model/golden.h"

namespace qnext {
namespace {

namespace fs = std::filesystem;
const std::string kRoot = QNEXT_SOURCE_DIR;

GreedyGeneration run(const Qwen3NextModel& m, std::span<const int32_t> prompt, int k, int64_t n,
                     SequenceState* out_state = nullptr, const GreedyOptions* base = nullptr) {
    GreedyOptions o = base ? *base : GreedyOptions{};
    o.max_new_tokens = n;
    o.speculative = k;
    SequenceState st = m.new_state(static_cast<int64_t>(prompt.size()) + n + 1);
    std::optional<SequenceState> mst;
    if (k > 0) mst.emplace(m.new_mtp_state(static_cast<int64_t>(prompt.size()) + n + 1));
    GreedyGeneration g = greedy_generate(m, st, mst ? &*mst : nullptr, prompt, o);
    if (out_state) *out_state = std::move(st);
    return g;
}

// The next-token logits a state gives for `token`: equal states give equal logits.
std::vector<float> probe(const Qwen3NextModel& m, SequenceState& st, int32_t token) {
    return m.forward(st, std::span<const int32_t>(&token, 1)).data;
}

struct Demo {
    ModelFolder folder = load_model_folder(kRoot + "/models/demo", false);
    nlohmann::json meta = [] {
        std::ifstream f(kRoot + "/tests/data/demo/golden_hf.json");
        return nlohmann::json::parse(f);
    }();
};
Demo& demo() {
    static Demo d;
    return d;
}

TEST(Speculative, DemoModelGreedyIdenticalForEveryK) {
    Qwen3NextModel model(demo().folder);
    ASSERT_TRUE(model.has_mtp());
    int64_t drafted = 0, accepted = 0, prompts = 0;
    for (const char* name : {"instruct", "thinking"}) {
        const auto ids = demo().meta.at(name).at("ids").get<std::vector<int32_t>>();
        for (size_t cut = 20; cut < ids.size(); cut += ids.size() / 6) {
            const std::span<const int32_t> prompt(ids.data(), cut);
            const GreedyGeneration plain = run(model, prompt, 0, 48);
            ++prompts;
            for (int k = 1; k <= 4; ++k) {
                const GreedyGeneration spec = run(model, prompt, k, 48);
                EXPECT_EQ(spec.tokens, plain.tokens) << name << " cut " << cut << " k " << k;
                EXPECT_EQ(spec.finish, plain.finish);
                drafted += spec.stats.drafted;
                accepted += spec.stats.accepted;
            }
        }
    }
    EXPECT_GE(prompts, 10);
    // The trained MTP head predicts the demo model's own continuations well: most drafts are accepted.
    EXPECT_GT(static_cast<double>(accepted) / static_cast<double>(drafted), 0.5) << accepted << "/" << drafted;
    std::printf("demo: %lld prompts x k=1..4, accepted %lld of %lld drafts (%.1f%%)\n", static_cast<long long>(prompts),
                static_cast<long long>(accepted), static_cast<long long>(drafted), 100.0 * accepted / drafted);
}

// A token constraint that forbids a pseudo-random half of the vocabulary at each position (deterministic in
// the history): drafts the mask forbids end the accepted prefix, and the output still equals plain decoding.
TEST(Speculative, ConstrainedOutputIdentical) {
    Qwen3NextModel model(demo().folder);
    const auto ids = demo().meta.at("instruct").at("prompt_ids").get<std::vector<int32_t>>();
    auto make = [&](std::vector<int32_t>& history) {
        GreedyOptions o;
        o.fill_mask = [&history](uint32_t* w, size_t n) {
            std::mt19937 rng(static_cast<uint32_t>(history.size() * 7919 + (history.empty() ? 0 : history.back())));
            for (size_t i = 0; i < n; ++i) w[i] = rng() | 0x1u;   // token 0 of each word always allowed
            return true;
        };
        o.on_token = [&history](int32_t t) {
            history.push_back(t);
            return true;
        };
        return o;
    };
    std::vector<int32_t> h_plain, h_spec;
    const GreedyOptions op = make(h_plain);
    const GreedyGeneration plain = run(model, ids, 0, 40, nullptr, &op);
    for (int k : {1, 3}) {
        h_spec.clear();
        const GreedyOptions os = make(h_spec);
        const GreedyGeneration spec = run(model, ids, k, 40, nullptr, &os);
        EXPECT_EQ(spec.tokens, plain.tokens) << "k " << k;
        EXPECT_EQ(h_spec, h_plain);
    }
}

TEST(Speculative, StateAfterwardsEqualsPlainDecoding) {
    Qwen3NextModel model(demo().folder);
    const auto ids = demo().meta.at("thinking").at("prompt_ids").get<std::vector<int32_t>>();
    SequenceState plain_st = model.new_state(1), spec_st = model.new_state(1);
    const GreedyGeneration plain = run(model, ids, 0, 37, &plain_st);
    for (int k = 1; k <= 4; ++k) {
        const GreedyGeneration spec = run(model, ids, k, 37, &spec_st);
        ASSERT_EQ(spec.tokens, plain.tokens);
        ASSERT_EQ(spec_st.n_tokens(), plain_st.n_tokens());
        for (int64_t l = 0; l < model.config().num_hidden_layers; ++l) {
            if (model.config().is_full_attention(l)) continue;
            const kern::Tensor& a = spec_st.recurrent(l);
            const kern::Tensor& b = plain_st.recurrent(l);
            EXPECT_LE(test::rel_l2(std::span<const float>(a.f32(), static_cast<size_t>(a.numel())),
                                   std::span<const float>(b.f32(), static_cast<size_t>(b.numel()))),
                      1e-6)
                << "layer " << l << " k " << k;
        }
        const int32_t next = plain.tokens.back();
        SequenceState s1 = spec_st.clone(), s2 = plain_st.clone();
        EXPECT_LE(test::rel_l2(probe(model, s1, next), probe(model, s2, next)), 1e-6) << "k " << k;
    }
}

// Random weights (random MTP: few drafts accepted, many rollbacks) in several shapes, 256 tokens.
TEST(Speculative, RandomModelsGreedyIdentical) {
    struct Shape {
        const char* name;
        int64_t hidden, layers, interval, experts;
    };
    for (const Shape& sh : {Shape{"moe-4", 48, 4, 4, 4}, Shape{"moe-6-interval3", 32, 6, 3, 6}}) {
        Qwen3NextConfig c = load_config(kRoot + "/configs/models/tiny.json");
        c.hidden_size = sh.hidden;
        c.num_hidden_layers = sh.layers;
        c.layer_types.clear();
        for (int64_t i = 0; i < sh.layers; ++i)
            c.layer_types.push_back((i + 1) % sh.interval == 0 ? LayerType::FullAttention : LayerType::LinearAttention);
        c.num_experts = sh.experts;
        c.num_experts_per_tok = 2;
        c.max_position_embeddings = 1024;
        c.mtp_num_hidden_layers = 1;
        c.torch_dtype = "float32";
        const fs::path dir = fs::temp_directory_path() / ("qnext-spec-" + std::string(sh.name));
        CheckpointOptions co;
        co.seed = 9;
        co.dtype = TensorDType::F32;
        write_random_checkpoint(c, dir, co);
        ModelFolder folder = load_model_folder(dir, false);
        Qwen3NextModel model(folder);
        ASSERT_TRUE(model.has_mtp());
        std::vector<int32_t> prompt;
        std::mt19937 rng(3);
        for (int i = 0; i < 17; ++i) prompt.push_back(static_cast<int32_t>(rng() % c.vocab_size));
        const GreedyGeneration plain = run(model, prompt, 0, 256);
        for (int k = 1; k <= 4; ++k) {
            const GreedyGeneration spec = run(model, prompt, k, 256);
            EXPECT_EQ(spec.tokens, plain.tokens) << sh.name << " k " << k;
            EXPECT_GT(spec.stats.verify_steps, 0);
        }
        fs::remove_all(dir);
    }
}

TEST(Speculative, Errors) {
    Qwen3NextModel model(demo().folder);
    const std::vector<int32_t> p{1, 2, 3};
    SequenceState st = model.new_state(16);
    GreedyOptions o;
    o.speculative = 2;
    EXPECT_THROW(greedy_generate(model, st, nullptr, p, o), std::invalid_argument);   // no MTP state
    o.speculative = 9;
    EXPECT_THROW(greedy_generate(model, st, nullptr, p, o), std::invalid_argument);
}

}  // namespace
}  // namespace qnext
