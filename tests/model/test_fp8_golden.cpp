// A block-scaled FP8 checkpoint (tests/data/model/demo-fp8: the demo model's projections in e4m3 with 128x128
// block scales, as Qwen's "-FP8" releases ship them; tests/reference/make_fp8_golden.py) against HF
// transformers' fp32 forward of the dequantized weights: rel-L2 <= 1e-4 at every kept position, with the fast
// CPU kernels and with the scalar reference. The FP8 weights are repacked once at load into 128-value blocks
// each led by its f32 scale (kern::DType::F8_B128) and decoded exactly inside the matmuls.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/backend.h"
#include "model/model_folder.h"
#include "model/qwen3_next.h"
#include "model/safetensors.h"
#include "tests/model/golden.h"

namespace qnext {
namespace {

const std::string kDir = std::string(QNEXT_SOURCE_DIR) + "/tests/data/model/demo-fp8";

void check(kern::Backend backend) {
    if (backend == kern::Backend::Cpu && !kern::cpu_features().avx2_fma) GTEST_SKIP() << "no fast CPU backend";
    const kern::Backend prev = kern::backend();
    kern::set_backend(backend);
    ModelFolder folder = load_model_folder(kDir, false);
    ASSERT_EQ(folder.weights.layers[0].gdn->in_proj_qkvz.dtype, TensorDType::F8_E4M3);
    std::ifstream f(kDir + "/golden.json");
    const nlohmann::json meta = nlohmann::json::parse(f);
    const auto ids = meta.at("ids").get<std::vector<int32_t>>();
    const auto pos = meta.at("positions").get<std::vector<int64_t>>();
    const TensorStore golden = TensorStore::open(kDir + "/golden_logits.safetensors");
    const TensorView& want = golden.at("logits");
    Qwen3NextModel model(folder);
    SequenceState st = model.new_state(static_cast<int64_t>(ids.size()));
    const Logits all = model.forward(st, ids, LogitsRows::All);
    const int64_t v = want.dim(1);
    const auto w = want.as<float>();
    double worst = 0;
    for (size_t i = 0; i < pos.size(); ++i) {
        const double e = test::rel_l2(all.row(pos[i]).subspan(0, static_cast<size_t>(v)),
                                      w.subspan(i * static_cast<size_t>(v), static_cast<size_t>(v)));
        worst = std::max(worst, e);
        EXPECT_LE(e, 1e-4) << "position " << pos[i];
    }
    std::printf("FP8 demo (%s) vs HF fp32 of the dequantized weights: worst rel-L2 %.2e over %zu positions\n",
                kern::backend_name(backend), worst, pos.size());
    kern::set_backend(prev);
}

TEST(DemoFp8, LogitsMatchHFDequantizedFastKernels) { check(kern::Backend::Cpu); }
TEST(DemoFp8, LogitsMatchHFDequantizedReference) { check(kern::Backend::Reference); }

}  // namespace
}  // namespace qnext
