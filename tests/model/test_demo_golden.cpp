// The shipped demo model (models/demo, bf16) against HF transformers: the C++ engine's logits on two
// held-out transcripts (Instruct and Thinking template) equal HF's fp32 forward of the same bf16 weights to
// rel-L2 <= 1e-4 at every kept position, and greedy decoding from the first user turn is token-identical.
// Golden data: tests/reference/demo_model/make_golden.py -> tests/data/demo/golden_hf.{safetensors,json}.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/model_folder.h"
#include "model/qwen3_next.h"
#include "model/safetensors.h"
#include "model/sampler.h"
#include "tests/model/golden.h"

namespace qnext {
namespace {

const std::string kRoot = QNEXT_SOURCE_DIR;

struct DemoGolden {
    ModelFolder folder = load_model_folder(kRoot + "/models/demo", false);
    TensorStore store = TensorStore::open(kRoot + "/tests/data/demo/golden_hf.safetensors");
    nlohmann::json meta = [] {
        std::ifstream f(kRoot + "/tests/data/demo/golden_hf.json");
        return nlohmann::json::parse(f);
    }();
};

DemoGolden& golden() {
    static DemoGolden g;
    return g;
}

class DemoModel : public ::testing::TestWithParam<std::string> {};

TEST_P(DemoModel, LogitsMatchHFOnHeldOutTranscript) {
    DemoGolden& g = golden();
    const auto& m = g.meta.at(GetParam());
    const auto ids = m.at("ids").get<std::vector<int32_t>>();
    const auto pos = m.at("positions").get<std::vector<int64_t>>();
    Qwen3NextModel model(g.folder);
    SequenceState st = model.new_state(static_cast<int64_t>(ids.size()));
    Logits all = model.forward(st, ids, LogitsRows::All);
    const TensorView& want = g.store.at(GetParam() + ".logits");
    ASSERT_EQ(want.dim(0), static_cast<int64_t>(pos.size()));
    // The HF rows cover the real vocabulary; the model's rows may be padded to a multiple of 64.
    const int64_t v = want.dim(1);
    ASSERT_LE(v, all.vocab);
    const auto w = want.as<float>();
    double worst = 0;
    for (size_t i = 0; i < pos.size(); ++i) {
        const auto got = all.row(pos[i]).subspan(0, static_cast<size_t>(v));
        const double e = test::rel_l2(got, std::span<const float>(w.data() + i * static_cast<size_t>(v), static_cast<size_t>(v)));
        worst = std::max(worst, e);
        EXPECT_LE(e, 1e-4) << GetParam() << " position " << pos[i];
    }
    std::printf("%s: %zu tokens, %zu positions, worst rel-L2 %.2e\n", GetParam().c_str(), ids.size(), pos.size(), worst);
}

// The MTP head (spec section 6) against the demo model's own PyTorch MTP (tests/reference/demo_model): over the
// whole transcript, input hidden(p) after model.norm and token p+1, logits predicting token p+2, at every kept
// position with p+1 < T. The MTP runs position by position (decode-like) and as one chunk: the same logits.
TEST_P(DemoModel, MtpLogitsMatchPyTorchReference) {
    DemoGolden& g = golden();
    const auto& m = g.meta.at(GetParam());
    const auto ids = m.at("ids").get<std::vector<int32_t>>();
    const auto pos = m.at("positions").get<std::vector<int64_t>>();
    Qwen3NextModel model(g.folder);
    ASSERT_TRUE(model.has_mtp());
    const int64_t T = static_cast<int64_t>(ids.size()), H = model.config().hidden_size;
    SequenceState st = model.new_state(T);
    std::vector<float> hidden;
    model.forward(st, ids, LogitsRows::All, &hidden);
    ASSERT_EQ(hidden.size(), static_cast<size_t>(T * H));
    SequenceState mst = model.new_mtp_state(T);
    Logits chunk = model.mtp_forward(mst, std::span<const float>(hidden.data(), static_cast<size_t>((T - 1) * H)),
                                     std::span<const int32_t>(ids).subspan(1), LogitsRows::All);
    EXPECT_EQ(mst.n_tokens(), T - 1);
    const TensorView& want = g.store.at(GetParam() + ".mtp_logits");
    const int64_t v = want.dim(1);
    const auto w = want.as<float>();
    double worst = 0;
    size_t checked = 0;
    for (size_t i = 0; i < pos.size(); ++i) {
        if (pos[i] + 1 >= T) continue;
        const auto got = chunk.row(pos[i]).subspan(0, static_cast<size_t>(v));
        const double e = test::rel_l2(got, std::span<const float>(w.data() + i * static_cast<size_t>(v), static_cast<size_t>(v)));
        worst = std::max(worst, e);
        EXPECT_LE(e, 1e-4) << GetParam() << " position " << pos[i];
        ++checked;
    }
    EXPECT_GE(checked, 10u);
    // decode-like: one position at a time over a fresh MTP state, the last 24 positions compared with the chunk
    SequenceState one = model.new_mtp_state(T);
    double worst_step = 0;
    for (int64_t p = 0; p < T - 1; ++p) {
        Logits l = model.mtp_forward(one, std::span<const float>(hidden.data() + p * H, static_cast<size_t>(H)),
                                     std::span<const int32_t>(ids).subspan(static_cast<size_t>(p + 1), 1));
        if (p >= T - 25) worst_step = std::max(worst_step, test::rel_l2(l.last(), chunk.row(p)));
    }
    EXPECT_LE(worst_step, 1e-5);
    std::printf("%s mtp: %zu positions, worst rel-L2 %.2e vs PyTorch; step-by-step vs chunk %.2e\n", GetParam().c_str(),
                checked, worst, worst_step);
}

TEST_P(DemoModel, GreedyTokenIdenticalToHFGenerate) {
    DemoGolden& g = golden();
    const auto& m = g.meta.at(GetParam());
    const auto prompt = m.at("prompt_ids").get<std::vector<int32_t>>();
    const auto expected = m.at("greedy_ids").get<std::vector<int32_t>>();
    ASSERT_FALSE(expected.empty());
    Qwen3NextModel model(g.folder);
    SequenceState st = model.new_state(static_cast<int64_t>(prompt.size() + expected.size()));
    Sampler greedy(SamplerParams{}, model.vocab_size());
    std::vector<int32_t> got;
    Logits l = model.forward(st, prompt);
    for (size_t i = 0; i < expected.size(); ++i) {
        const int32_t tok = greedy.sample(l.last());
        got.push_back(tok);
        if (i + 1 < expected.size()) l = model.forward(st, std::span<const int32_t>(&tok, 1));
    }
    EXPECT_EQ(got, expected) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(HeldOut, DemoModel, ::testing::Values("instruct", "thinking"));

}  // namespace
}  // namespace qnext
