// `qnext info` numbers: the real 80B config against the published tensor list (spec section 7), and a
// tiny config against counts written out by hand from the weight shapes.
#include <gtest/gtest.h>

#include "model/model_info.h"
#include "tests/loading/util.h"

namespace qnext {
namespace {

TEST(ModelInfo, Real80BCounts) {
    Qwen3NextConfig c = load_config(test::data_dir() / "qwen3-next-80b-a3b-instruct.config.json");
    ModelInfo i = compute_model_info(c, 1);
    EXPECT_EQ(i.total_params, 79'674'391'296);                 // main model
    EXPECT_EQ(i.mtp_params, 1'650'471'424);                    // mtp.* (one layer)
    EXPECT_EQ(i.total_params + i.mtp_params, 81'324'862'720);  // = checkpoint total; bf16 bytes 162,649,725,440
    EXPECT_EQ(i.embedding_params, 151936LL * 2048);
    // per GDN layer 69,376,192 and per attention layer 62,921,216 touched (mixer, norms, router,
    // 10 of 512 experts, shared expert + gate), plus lm_head and the final norm
    EXPECT_EQ(i.active_params_per_token, 36LL * 69'376'192 + 12LL * 62'921'216 + 151936LL * 2048 + 2048);
    EXPECT_EQ(i.active_params_per_token, 3'563'764'480);
    EXPECT_EQ(i.kv_bytes_per_token, 24'576);                   // 12 layers x K,V x 2 heads x 256 x bf16
    EXPECT_EQ(i.kv_bytes_per_token_mtp, 2'048);
    EXPECT_EQ(i.recurrent_state_bytes, 36LL * 32 * 128 * 128 * 4);   // 72 MiB fp32
    EXPECT_EQ(i.conv_state_bytes, 36LL * 8192 * 3 * 2);
    EXPECT_EQ(i.layout, "12 x (3 x linear_attention, 1 x full_attention)");
    EXPECT_EQ(compute_model_info(c).mtp_params, 0);            // config alone declares no MTP
}

TEST(ModelInfo, TinyCountsFromShapes) {
    Qwen3NextConfig c = load_config(test::tiny_config_path());
    // tiny: V=512 H=64; GDN nk=2 nv=4 dk=dv=16 K=4; attn 4/2 heads x 32; 8 experts top-2 x 32, shared 32
    const int64_t H = 64, V = 512;
    const int64_t gdn = (2 * 32 + 2 * 64) * H + 8 * H + 128 * 4 + 4 + 4 + 16 + H * 64;
    const int64_t attn = 256 * H + 64 * H + 64 * H + H * 128 + 32 + 32;
    const int64_t expert = 3 * 32 * H;
    const int64_t moe_fixed = 8 * H + expert + H;   // router + shared expert + shared gate
    const int64_t norms = 2 * H;
    const int64_t layers = 3 * (gdn + norms + moe_fixed + 8 * expert) + (attn + norms + moe_fixed + 8 * expert);
    ModelInfo i = compute_model_info(c, 0);
    EXPECT_EQ(i.total_params, V * H + layers + H + V * H);
    EXPECT_EQ(i.active_params_per_token, i.total_params - V * H - 4 * 6 * expert);
    EXPECT_EQ(i.kv_bytes_per_token, 1 * 2 * 2 * 32 * 2);
    EXPECT_EQ(i.recurrent_state_bytes, 3 * 4 * 16 * 16 * 4);
    EXPECT_EQ(i.layout, "3 x linear_attention, 1 x full_attention");
    EXPECT_EQ(compute_model_info(c, 1).mtp_params, 2 * H * H + 3 * H + attn + norms + moe_fixed + 8 * expert);

    nlohmann::ordered_json j = model_info_to_json(c, i);
    EXPECT_EQ(j["total_params"].get<int64_t>(), i.total_params);
    EXPECT_EQ(j["full_attention_layer_indices"], nlohmann::json::array({3}));
    std::string text = model_info_to_text(c, i);
    EXPECT_NE(text.find("3 linear_attention (Gated DeltaNet) + 1 full_attention"), std::string::npos) << text;
}

TEST(ModelInfo, TiedEmbeddingCountedOnceButActive) {
    nlohmann::json j = test::read_json(test::tiny_config_path());
    Qwen3NextConfig untied = parse_config(j);
    j["tie_word_embeddings"] = true;
    Qwen3NextConfig tied = parse_config(j);
    ModelInfo a = compute_model_info(untied, 0), b = compute_model_info(tied, 0);
    EXPECT_EQ(a.total_params - b.total_params, 512 * 64);
    EXPECT_EQ(a.active_params_per_token, b.active_params_per_token);
}

}  // namespace
}  // namespace qnext
