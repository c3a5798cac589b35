// config.json parsing: HF defaults, both HF config spellings, and every invariant's error text.
#include <gtest/gtest.h>

#include "model/config.h"
#include "tests/loading/util.h"

namespace qnext {
namespace {

using nlohmann::json;
using test::data_dir;

json tiny() { return test::read_json(test::tiny_config_path()); }

Qwen3NextConfig parse_with(const std::string& key, const json& value) {
    json j = tiny();
    j[key] = value;
    return parse_config(j, "cfg.json");
}

TEST(Config, Real80BInstructParses) {
    Qwen3NextConfig c = load_config(data_dir() / "qwen3-next-80b-a3b-instruct.config.json");
    EXPECT_EQ(c.num_hidden_layers, 48);
    EXPECT_EQ(c.hidden_size, 2048);
    EXPECT_EQ(c.intermediate_size, 5120);
    EXPECT_EQ(c.max_position_embeddings, 262144);
    EXPECT_DOUBLE_EQ(c.rope_theta, 1e7);
    EXPECT_EQ(c.rotary_dim(), 64);
    EXPECT_EQ(c.linear_conv_dim(), 8192);
    EXPECT_EQ(c.bos_token_id, 151643);
    EXPECT_EQ(c.eos_token_id, 151645);
    EXPECT_EQ(c.mtp_num_hidden_layers, 0);
    ASSERT_EQ(c.layer_types.size(), 48u);
    for (int64_t i = 0; i < 48; ++i) {
        EXPECT_EQ(c.is_full_attention(i), i % 4 == 3) << "layer " << i;
        EXPECT_TRUE(c.is_moe_layer(i));
    }
    EXPECT_EQ(c.num_full_attention_layers(), 12);
}

TEST(Config, AbsentFieldsTakeHfDefaults) {
    Qwen3NextConfig c = parse_config(json{{"model_type", "qwen3_next"}});
    EXPECT_EQ(c.vocab_size, 151936);
    EXPECT_EQ(c.hidden_size, 2048);
    EXPECT_EQ(c.intermediate_size, 5632);
    EXPECT_EQ(c.num_hidden_layers, 48);
    EXPECT_EQ(c.num_attention_heads, 16);
    EXPECT_EQ(c.num_key_value_heads, 2);
    EXPECT_EQ(c.head_dim, 256);
    EXPECT_EQ(c.max_position_embeddings, 32768);
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_DOUBLE_EQ(c.partial_rotary_factor, 0.25);
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
    EXPECT_EQ(c.linear_conv_kernel_dim, 4);
    EXPECT_EQ(c.linear_num_key_heads, 16);
    EXPECT_EQ(c.linear_num_value_heads, 32);
    EXPECT_EQ(c.num_experts, 512);
    EXPECT_EQ(c.num_experts_per_tok, 10);
    EXPECT_EQ(c.moe_intermediate_size, 512);
    EXPECT_EQ(c.shared_expert_intermediate_size, 512);
    EXPECT_TRUE(c.norm_topk_prob);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_EQ(c.bos_token_id, -1);
    EXPECT_EQ(c.num_full_attention_layers(), 12);   // interval 4
}

TEST(Config, TransformersV5SavedConfigParses) {
    // written by transformers 5.23 save_pretrained: rope_parameters, "dtype", explicit layer_types, nulls
    Qwen3NextConfig c = load_config(data_dir() / "hf_v5_saved_config.json");
    EXPECT_EQ(c.hidden_size, 32);
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_DOUBLE_EQ(c.partial_rotary_factor, 0.25);
    EXPECT_EQ(c.torch_dtype, "float32");
    EXPECT_EQ(c.bos_token_id, -1);
    EXPECT_EQ(c.eos_token_id, -1);
    ASSERT_EQ(c.layer_types.size(), 4u);
    EXPECT_TRUE(c.is_full_attention(3));
}

TEST(Config, RopeParametersOverrideTopLevel) {
    json j = tiny();
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5e6}, {"partial_rotary_factor", 0.5}};
    Qwen3NextConfig c = parse_config(j);
    EXPECT_DOUBLE_EQ(c.rope_theta, 5e6);
    EXPECT_EQ(c.rotary_dim(), 16);
}

TEST(Config, LayerTypesDerivedFromInterval) {
    json j = tiny();
    j["num_hidden_layers"] = 6;
    j["full_attention_interval"] = 2;
    Qwen3NextConfig c = parse_config(j);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(c.is_full_attention(i), i % 2 == 1);
}

TEST(Config, ExplicitLayerTypesWin) {
    json j = tiny();
    j["layer_types"] = {"full_attention", "linear_attention", "linear_attention", "linear_attention"};
    Qwen3NextConfig c = parse_config(j);
    EXPECT_TRUE(c.is_full_attention(0));
    EXPECT_FALSE(c.is_full_attention(3));
}

TEST(Config, EosListAndDenseLayers) {
    json j = tiny();
    j["eos_token_id"] = {151645, 151643};
    j["mlp_only_layers"] = {1};
    j["decoder_sparse_step"] = 1;
    Qwen3NextConfig c = parse_config(j);
    EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{151645, 151643}));
    EXPECT_EQ(c.eos_token_id, 151645);
    EXPECT_TRUE(c.is_moe_layer(0));
    EXPECT_FALSE(c.is_moe_layer(1));
    j["mlp_only_layers"] = json::array();
    j["decoder_sparse_step"] = 2;
    c = parse_config(j);
    EXPECT_FALSE(c.is_moe_layer(0));
    EXPECT_TRUE(c.is_moe_layer(1));
}

TEST(Config, ToJsonRoundTrips) {
    json j = tiny();
    j["mtp_num_hidden_layers"] = 1;
    j["layer_types"] = {"linear_attention", "full_attention", "linear_attention", "full_attention"};
    Qwen3NextConfig a = parse_config(j);
    Qwen3NextConfig b = parse_config(json::parse(config_to_json(a).dump()));
    EXPECT_EQ(config_to_json(a).dump(), config_to_json(b).dump());
    EXPECT_EQ(b.mtp_num_hidden_layers, 1);
    EXPECT_TRUE(b.is_full_attention(1));
}

TEST(ConfigErrors, UnknownModelType) {
    EXPECT_ERROR_CONTAINS(parse_with("model_type", "llama"), "cfg.json", "model_type", "'llama'");
    json j = tiny();
    j.erase("model_type");
    EXPECT_ERROR_CONTAINS(parse_config(j), "model_type", "missing");
}

TEST(ConfigErrors, HeadsNotDividing) {
    EXPECT_ERROR_CONTAINS(parse_with("num_key_value_heads", 3), "num_attention_heads",
                          "not divisible by num_key_value_heads 3");
    EXPECT_ERROR_CONTAINS(parse_with("linear_num_value_heads", 5), "linear_num_value_heads",
                          "not divisible by linear_num_key_heads 2");
}

TEST(ConfigErrors, ExpertsFewerThanTopK) {
    EXPECT_ERROR_CONTAINS(parse_with("num_experts_per_tok", 9), "num_experts_per_tok", "exceeds num_experts 8");
    EXPECT_ERROR_CONTAINS(parse_with("num_experts", 0), "num_experts", "must be > 0");
}

TEST(ConfigErrors, OddOrEmptyRotaryDim) {
    json j = tiny();
    j["head_dim"] = 20;   // int(20 * 0.25) = 5
    EXPECT_ERROR_CONTAINS(parse_config(j), "partial_rotary_factor", "= 5 must be even");
    EXPECT_ERROR_CONTAINS(parse_with("partial_rotary_factor", 0.0), "partial_rotary_factor", "(0, 1]");
    EXPECT_ERROR_CONTAINS(parse_with("partial_rotary_factor", 1.5), "partial_rotary_factor", "(0, 1]");
}

TEST(ConfigErrors, BadLayerTypes) {
    EXPECT_ERROR_CONTAINS(parse_with("layer_types", json{"linear_attention", "full_attention"}), "layer_types",
                          "2 entries but num_hidden_layers is 4");
    EXPECT_ERROR_CONTAINS(
        parse_with("layer_types", json{"linear_attention", "sliding_attention", "linear_attention", "full_attention"}),
        "layer_types[1]", "sliding_attention");
    EXPECT_ERROR_CONTAINS(parse_with("layer_types", "full_attention"), "layer_types", "expected a list");
    EXPECT_ERROR_CONTAINS(parse_with("full_attention_interval", 0), "full_attention_interval", "must be > 0");
}

TEST(ConfigErrors, WrongTypesNameTheField) {
    EXPECT_ERROR_CONTAINS(parse_with("hidden_size", "64"), "hidden_size", "expected an integer");
    EXPECT_ERROR_CONTAINS(parse_with("hidden_size", 64.5), "hidden_size", "expected an integer");
    EXPECT_ERROR_CONTAINS(parse_with("norm_topk_prob", 1), "norm_topk_prob", "expected true or false");
    EXPECT_ERROR_CONTAINS(parse_with("rms_norm_eps", "1e-6"), "rms_norm_eps", "expected a number");
    EXPECT_ERROR_CONTAINS(parse_with("mlp_only_layers", json{"a"}), "mlp_only_layers", "list of integers");
    EXPECT_ERROR_CONTAINS(parse_config(json::array()), "expected a JSON object");
}

TEST(ConfigErrors, NonPositiveSizes) {
    for (const char* f : {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "head_dim",
                          "linear_key_head_dim", "linear_conv_kernel_dim", "moe_intermediate_size",
                          "shared_expert_intermediate_size", "decoder_sparse_step", "max_position_embeddings"})
        EXPECT_ERROR_CONTAINS(parse_with(f, -1), f, "must be > 0");
    EXPECT_ERROR_CONTAINS(parse_with("rms_norm_eps", 0), "rms_norm_eps", "must be > 0");
    EXPECT_ERROR_CONTAINS(parse_with("rope_theta", -5), "rope_theta", "must be > 0");
}

TEST(ConfigErrors, UnsupportedValues) {
    EXPECT_ERROR_CONTAINS(parse_with("hidden_act", "gelu"), "hidden_act", "'gelu'");
    EXPECT_ERROR_CONTAINS(parse_with("attention_bias", true), "attention_bias", "not supported");
    EXPECT_ERROR_CONTAINS(parse_with("rope_scaling", json{{"rope_type", "yarn"}, {"factor", 4.0}}), "rope_scaling",
                          "'yarn'");
    EXPECT_ERROR_CONTAINS(parse_with("rope_parameters", json{{"rope_type", "linear"}, {"factor", 2.0}}),
                          "rope_parameters.rope_type", "'linear'");
    EXPECT_ERROR_CONTAINS(parse_with("mlp_only_layers", json{7}), "mlp_only_layers", "layer 7 out of range");
    EXPECT_ERROR_CONTAINS(parse_with("torch_dtype", "int8"), "dtype", "'int8'");
    EXPECT_ERROR_CONTAINS(parse_with("quantization_config", json{{"quant_method", "awq"}}),
                          "quantization_config.quant_method", "'awq'");
    EXPECT_ERROR_CONTAINS(parse_with("mtp_num_hidden_layers", -1), "mtp_num_hidden_layers", ">= 0");
}

TEST(ConfigErrors, FileProblemsNameThePath) {
    test::ScratchDir dir("cfg");
    EXPECT_ERROR_CONTAINS(load_config(dir / "absent.json"), "absent.json", "cannot open");
    std::ofstream(dir / "bad.json") << "{\"model_type\": \"qwen3_next\",";
    EXPECT_ERROR_CONTAINS(load_config(dir / "bad.json"), "bad.json", "invalid JSON");
    std::ofstream(dir / "huge.json") << "{\"model_type\": \"qwen3_next\", \"rope_theta\": 1e999}";
    EXPECT_ERROR_CONTAINS(load_config(dir / "huge.json"), "huge.json", "invalid JSON");
    std::ofstream(dir / "deep.json") << "{\"model_type\": \"qwen3_next\", \"x\": " << std::string(100000, '[')
                                     << std::string(100000, ']') << "}";
    EXPECT_ERROR_CONTAINS(load_config(dir / "deep.json"), "deep.json", "nests deeper than 256 levels");
}

// ---- the Qwen3.5 / Qwen3.6 family ------------------------------------------------------------------------

TEST(Config35, TextConfigDefaultsPerFamily) {
    Qwen3NextConfig d = parse_config(json{{"model_type", "qwen3_5_text"}});
    EXPECT_EQ(d.family, ModelFamily::Qwen3_5);
    EXPECT_EQ(d.vocab_size, 248320);
    EXPECT_EQ(d.hidden_size, 4096);
    EXPECT_EQ(d.intermediate_size, 12288);
    EXPECT_EQ(d.num_hidden_layers, 32);
    EXPECT_EQ(d.num_key_value_heads, 4);
    EXPECT_EQ(d.num_experts, 0);
    for (int64_t i = 0; i < d.num_hidden_layers; ++i) EXPECT_FALSE(d.is_moe_layer(i));
    EXPECT_TRUE(d.split_gdn_projections());
    EXPECT_EQ(d.weight_prefix(), "model.");
    Qwen3NextConfig m = parse_config(json{{"model_type", "qwen3_5_moe_text"}});
    EXPECT_EQ(m.family, ModelFamily::Qwen3_5Moe);
    EXPECT_EQ(m.hidden_size, 2048);
    EXPECT_EQ(m.num_hidden_layers, 40);
    EXPECT_EQ(m.num_experts, 256);
    EXPECT_EQ(m.num_experts_per_tok, 8);
    EXPECT_TRUE(m.norm_topk_prob);
    for (int64_t i = 0; i < m.num_hidden_layers; ++i) EXPECT_TRUE(m.is_moe_layer(i));
}

TEST(Config35, MultimodalWrapper) {
    json j = {{"model_type", "qwen3_5_moe"},
              {"architectures", {"Qwen3_5MoeForConditionalGeneration"}},
              {"tie_word_embeddings", true},
              {"vision_config", {{"depth", 27}}},
              {"text_config",
               {{"model_type", "qwen3_5_moe_text"}, {"hidden_size", 64}, {"num_hidden_layers", 4}, {"num_experts", 8},
                {"num_experts_per_tok", 2}, {"mtp_num_hidden_layers", 1}, {"attn_output_gate", true},
                {"norm_topk_prob", false},   // not a Qwen3.5-MoE field: HF ignores it, so does qnext
                {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e7}, {"partial_rotary_factor", 0.25},
                                     {"mrope_section", {11, 11, 10}}, {"mrope_interleaved", true}}}}}};
    Qwen3NextConfig c = parse_config(j, "cfg.json");
    EXPECT_TRUE(c.multimodal);
    EXPECT_EQ(c.weight_prefix(), "model.language_model.");
    EXPECT_EQ(c.model_type, "qwen3_5_moe_text");
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_TRUE(c.norm_topk_prob);
    EXPECT_EQ(c.mtp_num_hidden_layers, 1);
    EXPECT_EQ(c.mrope_section, (std::vector<int64_t>{11, 11, 10}));
    EXPECT_TRUE(c.mrope_interleaved);
    EXPECT_DOUBLE_EQ(c.rope_theta, 1e7);
    // round trip through config_to_json keeps the wrapper form
    Qwen3NextConfig back = parse_config(json::parse(config_to_json(c).dump()));
    EXPECT_TRUE(back.multimodal);
    EXPECT_EQ(back.mrope_section, c.mrope_section);
    EXPECT_EQ(back.num_experts, 8);
    EXPECT_EQ(back.hidden_size, 64);
}

TEST(Config35Errors, NameTheFieldInsideTextConfig) {
    EXPECT_ERROR_CONTAINS(parse_config(json{{"model_type", "qwen3_5"}}, "cfg.json"), "cfg.json", "text_config", "missing");
    EXPECT_ERROR_CONTAINS(parse_config(json{{"model_type", "qwen3_5"}, {"text_config", {{"hidden_size", "big"}}}}, "cfg.json"),
                          "text_config.hidden_size", "expected an integer");
    EXPECT_ERROR_CONTAINS(parse_config(json{{"model_type", "qwen3_5"}, {"text_config", {{"model_type", "qwen3_next"}}}}),
                          "text_config.model_type", "qwen3_5_text");
    EXPECT_ERROR_CONTAINS(
        parse_config(json{{"model_type", "qwen3_5_text"}, {"rope_parameters", {{"mrope_section", {11, 11, 40}}}}}),
        "mrope_section", "rotary_dim / 2");
    EXPECT_ERROR_CONTAINS(parse_config(json{{"model_type", "qwen3_next"}, {"rope_parameters", {{"mrope_section", {1, 1, 1}}}}}),
                          "rope_parameters.mrope_section", "unsupported key");
    EXPECT_ERROR_CONTAINS(parse_config(json{{"model_type", "qwen3_6"}}), "model_type", "'qwen3_5_moe'");
}

TEST(Config, Fp8QuantizationConfigParses) {
    Qwen3NextConfig c = parse_with("quantization_config", json{{"quant_method", "fp8"}, {"fmt", "e4m3"},
                                                                {"weight_block_size", {128, 64}},
                                                                {"activation_scheme", "dynamic"}});
    EXPECT_TRUE(c.quantization.enabled);
    EXPECT_EQ(c.quantization.block_rows, 128);
    EXPECT_EQ(c.quantization.block_cols, 64);
}

}  // namespace
}  // namespace qnext
