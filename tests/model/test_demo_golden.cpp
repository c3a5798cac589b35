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
