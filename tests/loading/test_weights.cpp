// Weight binding: HF-written checkpoints (per-expert and fused layouts) bind; every mismatch with the
// config is listed in one error; MTP, tied embeddings, dense layers, FP8 scales.
#include <gtest/gtest.h>

#include <cstring>

#include "model/checkpoint.h"
#include "model/model_folder.h"
#include "model/weights.h"
#include "tests/loading/util.h"

namespace qnext {
namespace {

using nlohmann::json;
using test::ScratchDir;

bool same_bytes(const TensorView& a, const TensorView& b) {
    return a.nbytes == b.nbytes && a.dtype == b.dtype && std::memcmp(a.data, b.data, a.nbytes) == 0;
}

ModelFolder load(const std::filesystem::path& dir) {
    LoadOptions o;
    o.progress = false;
    return load_model_folder(dir, o);
}

// Writes a tiny random checkpoint (config from configs/models/tiny.json with `edits`) into `dir`.
Qwen3NextConfig make_tiny(const std::filesystem::path& dir, const json& edits = json::object(),
                          CheckpointOptions o = {}) {
    json j = test::read_json(test::tiny_config_path());
    j.update(edits);
    Qwen3NextConfig c = parse_config(j);
    write_random_checkpoint(c, dir, o);
    return c;
}

TEST(Weights, HfSavedCheckpointBinds) {
    ModelFolder m = load(test::data_dir() / "hf_tiny");
    const Qwen3NextWeights& w = m.weights;
    ASSERT_EQ(w.layers.size(), 2u);
    EXPECT_EQ(w.expert_layout, ExpertLayout::PerExpert);
    EXPECT_TRUE(w.layers[0].gdn && !w.layers[0].attn);
    EXPECT_TRUE(w.layers[1].attn && !w.layers[1].gdn);
    ASSERT_TRUE(w.layers[1].moe);
    EXPECT_EQ(w.layers[1].moe->experts.size(), 3u);
    EXPECT_EQ(w.layers[0].gdn->in_proj_qkvz.shape, (std::vector<int64_t>{2 * 4 + 2 * 8, 16}));
    EXPECT_EQ(w.layers[0].gdn->conv1d.shape, (std::vector<int64_t>{16, 1, 4}));
    EXPECT_EQ(w.layers[1].attn->q_proj.shape, (std::vector<int64_t>{2 * 8 * 2, 16}));
    EXPECT_EQ(w.embed_tokens.dtype, TensorDType::BF16);
    EXPECT_EQ(w.embed_tokens.data, m.store.at("model.embed_tokens.weight").data);   // in place, no copy
    EXPECT_FALSE(w.mtp);
}

TEST(Weights, FusedExpertsAreViewsMatchingPerExpertTensors) {
    // hf_tiny_fused holds the same weights as hf_tiny in transformers v5's fused layout.
    ModelFolder per = load(test::data_dir() / "hf_tiny");
    ModelFolder fused = load(test::data_dir() / "hf_tiny_fused");
    EXPECT_EQ(fused.weights.expert_layout, ExpertLayout::Fused);
    for (size_t l = 0; l < per.weights.layers.size(); ++l) {
        const MoeWeights& a = *per.weights.layers[l].moe;
        const MoeWeights& b = *fused.weights.layers[l].moe;
        ASSERT_TRUE(b.fused_gate_up && b.fused_down);
        EXPECT_EQ(b.fused_gate_up->shape, (std::vector<int64_t>{3, 12, 16}));
        for (size_t e = 0; e < a.experts.size(); ++e) {
            EXPECT_TRUE(same_bytes(a.experts[e].gate_proj, b.experts[e].gate_proj)) << "layer " << l << " expert " << e;
            EXPECT_TRUE(same_bytes(a.experts[e].up_proj, b.experts[e].up_proj)) << "layer " << l << " expert " << e;
            EXPECT_TRUE(same_bytes(a.experts[e].down_proj, b.experts[e].down_proj)) << "layer " << l << " expert " << e;
            EXPECT_EQ(b.experts[e].gate_proj.shape, (std::vector<int64_t>{6, 16}));
            EXPECT_EQ(b.experts[e].down_proj.shape, (std::vector<int64_t>{16, 6}));
        }
        EXPECT_TRUE(same_bytes(a.router, b.router));
        EXPECT_TRUE(same_bytes(a.shared_expert.down_proj, b.shared_expert.down_proj));
    }
}

TEST(Weights, AllProblemsListedInOneError) {
    ScratchDir d("probs");
    make_tiny(d.path);
    std::vector<test::RawTensor> ts;
    {
        TensorStore s = TensorStore::open(d.path);
        ts = test::copy_tensors(s);
    }
    std::vector<test::RawTensor> edited;
    for (auto& t : ts) {
        if (t.name == "model.layers.0.linear_attn.A_log") continue;                        // missing
        if (t.name == "model.layers.3.self_attn.q_proj.weight") t.shape = {128, 128};      // misshaped ([256, 64])
        edited.push_back(t);
    }
    edited.push_back({"model.layers.0.extra.weight", "F32", {2}, test::f32_bytes({1, 2})});   // extra
    test::write_safetensors(d / "model.safetensors", edited);
    EXPECT_ERROR_CONTAINS(load(d.path), "3 problems",
                          "missing: model.layers.0.linear_attn.A_log [4]",
                          "misshaped: model.layers.3.self_attn.q_proj.weight: has [128, 128], expected [256, 64]",
                          "unexpected: model.layers.0.extra.weight [2]");
}

TEST(Weights, ConfigDisagreeingWithCheckpoint) {
    ScratchDir d("cfgdiff");
    make_tiny(d.path);
    json j = test::read_json(d / "config.json");
    j["num_experts"] = 6;
    test::write_json(d / "config.json", j);
    EXPECT_ERROR_CONTAINS(load(d.path), "misshaped: model.layers.0.mlp.gate.weight: has [8, 64], expected [6, 64]",
                          "unexpected: model.layers.0.mlp.experts.6.down_proj.weight",
                          "unexpected: model.layers.3.mlp.experts.7.up_proj.weight");
    j["num_experts"] = 8;
    j["full_attention_interval"] = 2;
    j.erase("layer_types");
    test::write_json(d / "config.json", j);
    EXPECT_ERROR_CONTAINS(load(d.path), "missing: model.layers.1.self_attn.q_proj.weight",
                          "unexpected: model.layers.1.linear_attn.A_log");
}

TEST(Weights, MtpTensorsBindAndAreChecked) {
    ScratchDir d("mtp");
    CheckpointOptions o;
    o.mtp_layers = 1;
    make_tiny(d.path, json::object(), o);
    {
        ModelFolder m = load(d.path);
        ASSERT_TRUE(m.weights.mtp);
        EXPECT_EQ(m.config.mtp_num_hidden_layers, 1);
        const MtpWeights& mtp = *m.weights.mtp;
        EXPECT_EQ(mtp.fc.shape, (std::vector<int64_t>{64, 128}));
        ASSERT_EQ(mtp.layers.size(), 1u);
        EXPECT_TRUE(mtp.layers[0].attn && mtp.layers[0].moe);
        EXPECT_EQ(mtp.layers[0].moe->experts.size(), 8u);
    }
    // the real 80B config does not declare MTP: the tensors alone must be enough
    json j = test::read_json(d / "config.json");
    j.erase("mtp_num_hidden_layers");
    test::write_json(d / "config.json", j);
    EXPECT_TRUE(load(d.path).weights.mtp);
    // one MTP tensor missing
    std::vector<test::RawTensor> ts;
    {
        TensorStore s = TensorStore::open(d.path);
        for (auto& t : test::copy_tensors(s))
            if (t.name != "mtp.pre_fc_norm_hidden.weight") ts.push_back(t);
    }
    test::write_safetensors(d / "model.safetensors", ts);
    EXPECT_ERROR_CONTAINS(load(d.path), "1 problem", "missing: mtp.pre_fc_norm_hidden.weight [64]");
}

TEST(Weights, DeclaredMtpWithoutTensorsIsMissing) {
    ScratchDir d("mtpdecl");
    make_tiny(d.path);
    json j = test::read_json(d / "config.json");
    j["mtp_num_hidden_layers"] = 1;
    test::write_json(d / "config.json", j);
    EXPECT_ERROR_CONTAINS(load(d.path), "missing: mtp.fc.weight [64, 128]",
                          "missing: mtp.layers.0.self_attn.q_proj.weight");
}

TEST(Weights, TiedEmbeddingsAndDenseLayers) {
    ScratchDir d("tied");
    make_tiny(d.path, json{{"tie_word_embeddings", true}, {"mlp_only_layers", {1}}});
    ModelFolder m = load(d.path);
    EXPECT_FALSE(m.store.contains("lm_head.weight"));
    EXPECT_EQ(m.weights.lm_head.data, m.weights.embed_tokens.data);
    ASSERT_TRUE(m.weights.layers[1].dense_mlp);
    EXPECT_FALSE(m.weights.layers[1].moe);
    EXPECT_EQ(m.weights.layers[1].dense_mlp->gate_proj.shape, (std::vector<int64_t>{128, 64}));
    EXPECT_TRUE(m.weights.layers[0].moe);
}

TEST(Weights, Fp8WeightsNeedBlockScales) {
    ScratchDir d("fp8");
    make_tiny(d.path);
    json j = test::read_json(d / "config.json");
    j["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {32, 32}}};
    test::write_json(d / "config.json", j);
    std::vector<test::RawTensor> ts;
    {
        TensorStore s = TensorStore::open(d.path);
        for (auto t : test::copy_tensors(s)) {
            bool quantize = t.shape.size() == 2 && t.name.find("proj") != std::string::npos;
            if (quantize) {
                const int64_t r = t.shape[0], c = t.shape[1];
                t.dtype = "F8_E4M3";
                t.bytes = std::string(static_cast<size_t>(r * c), '\x38');   // 1.0 in e4m3
                std::vector<float> scale(static_cast<size_t>(((r + 31) / 32) * ((c + 31) / 32)), 0.5f);
                ts.push_back({t.name + "_scale_inv", "F32", {(r + 31) / 32, (c + 31) / 32}, test::f32_bytes(scale)});
            }
            ts.push_back(t);
        }
    }
    test::write_safetensors(d / "model.safetensors", ts);
    {
        ModelFolder m = load(d.path);
        const TensorView& q = m.weights.layers[3].attn->q_proj;
        EXPECT_EQ(q.dtype, TensorDType::F8_E4M3);
        const TensorView* s = m.store.scale_inv(q);
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(s->shape, (std::vector<int64_t>{8, 2}));   // [256/32, 64/32]
    }
    std::vector<test::RawTensor> broken;
    for (auto& t : ts) {
        if (t.name == "model.layers.3.self_attn.k_proj.weight_scale_inv") continue;
        if (t.name == "model.layers.3.self_attn.v_proj.weight_scale_inv") t.shape = {1, 4}, t.bytes.resize(16);
        broken.push_back(t);
    }
    test::write_safetensors(d / "model.safetensors", broken);
    EXPECT_ERROR_CONTAINS(load(d.path), "model.layers.3.self_attn.k_proj.weight: F8_E4M3 weight without",
                          "v_proj.weight_scale_inv: has [1, 4], expected [2, 2]");
}

TEST(Weights, ExpectedTensorsCoverEveryBoundTensor) {
    ScratchDir d("exp");
    CheckpointOptions o;
    o.mtp_layers = 1;
    Qwen3NextConfig c = make_tiny(d.path, json::object(), o);
    TensorStore s = TensorStore::open(d.path);
    std::vector<TensorSpec> specs = expected_tensors(c, ExpertLayout::PerExpert, 1);
    ASSERT_EQ(specs.size(), s.size());
    for (const TensorSpec& t : specs) EXPECT_EQ(s.at(t.name).shape, t.shape) << t.name;
    EXPECT_EQ(count_mtp_layers(s), 1);
    EXPECT_EQ(detect_expert_layout(s), ExpertLayout::PerExpert);
}

TEST(Weights, FolderErrorsNameThePath) {
    ScratchDir d("nofolder");
    EXPECT_ERROR_CONTAINS(load(d / "absent"), "absent", "does not exist");
    EXPECT_ERROR_CONTAINS(load(d.path), "config.json", "cannot open");
}

}  // namespace
}  // namespace qnext
