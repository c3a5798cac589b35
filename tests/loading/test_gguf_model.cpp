// qwen3next GGUF metadata -> Qwen3NextConfig: the demo model converted by llama.cpp's own converter
// (tests/reference/convert_demo_gguf.py, Q8_0) describes exactly the config.json it came from; broken or
// foreign metadata is refused with the file and key named.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/tokenizer.h"
#include "tests/loading/util.h"

namespace qnext {
namespace {

namespace fs = std::filesystem;
const fs::path kDemoGguf = fs::path(QNEXT_SOURCE_DIR) / "tests/data/loading/gguf/demo-q8_0.gguf";

TEST(GgufModel, DemoConfigMatchesItsConfigJson) {
    auto f = GgufFile::open(kDemoGguf);
    const Qwen3NextConfig g = gguf_config(*f);
    Qwen3NextConfig h = load_config(fs::path(QNEXT_SOURCE_DIR) / "models/demo/config.json");
    EXPECT_EQ(g.vocab_size, h.vocab_size);
    EXPECT_EQ(g.hidden_size, h.hidden_size);
    EXPECT_EQ(g.intermediate_size, h.intermediate_size);
    EXPECT_EQ(g.num_hidden_layers, h.num_hidden_layers);
    EXPECT_EQ(g.num_attention_heads, h.num_attention_heads);
    EXPECT_EQ(g.num_key_value_heads, h.num_key_value_heads);
    EXPECT_EQ(g.head_dim, h.head_dim);
    EXPECT_EQ(float(g.rms_norm_eps), float(h.rms_norm_eps));   // GGUF stores it as FLOAT32
    EXPECT_EQ(g.rope_theta, h.rope_theta);
    EXPECT_EQ(g.partial_rotary_factor, h.partial_rotary_factor);
    EXPECT_EQ(g.max_position_embeddings, h.max_position_embeddings);
    EXPECT_EQ(g.tie_word_embeddings, h.tie_word_embeddings);
    EXPECT_EQ(g.linear_conv_kernel_dim, h.linear_conv_kernel_dim);
    EXPECT_EQ(g.linear_key_head_dim, h.linear_key_head_dim);
    EXPECT_EQ(g.linear_value_head_dim, h.linear_value_head_dim);
    EXPECT_EQ(g.linear_num_key_heads, h.linear_num_key_heads);
    EXPECT_EQ(g.linear_num_value_heads, h.linear_num_value_heads);
    EXPECT_EQ(g.moe_intermediate_size, h.moe_intermediate_size);
    EXPECT_EQ(g.shared_expert_intermediate_size, h.shared_expert_intermediate_size);
    EXPECT_EQ(g.num_experts, h.num_experts);
    EXPECT_EQ(g.num_experts_per_tok, h.num_experts_per_tok);
    EXPECT_EQ(g.norm_topk_prob, h.norm_topk_prob);
    EXPECT_EQ(g.full_attention_interval, h.full_attention_interval);
    EXPECT_EQ(g.layer_types, h.layer_types);
    EXPECT_EQ(g.mtp_num_hidden_layers, h.mtp_num_hidden_layers);
    EXPECT_EQ(g.mtp_num_hidden_layers, 1);

    const GgufTypeSummary s = summarize_gguf(*f, g);
    EXPECT_EQ(s.tensors_by_type.at("Q8_0"), 53);
    EXPECT_EQ(s.tensors_by_type.at("F32"), 40);
    EXPECT_EQ(s.total_bytes, [&] {
        int64_t n = 0;
        for (const auto& t : f->tensors()) n += int64_t(t.nbytes);
        return n;
    }());
    EXPECT_GT(s.bytes_per_token, 0);
    EXPECT_LT(s.bytes_per_token, s.total_bytes);
}

// The GGUF's tokenizer (tokenizer.ggml.*) encodes exactly as the HF tokenizer.json it was converted from (which
// the text tests hold byte-exact against HF tokenizers): every held-out demo task, special tokens, odd text.
TEST(GgufTokenizer, DemoEncodesLikeItsTokenizerJson) {
    auto f = GgufFile::open(kDemoGguf);
    const Tokenizer g = Tokenizer::from_gguf(*f);
    const Tokenizer h = Tokenizer::load(fs::path(QNEXT_SOURCE_DIR) / "models/demo");
    ASSERT_EQ(g.vocab_size(), 3200);   // the embedding table's rows: ids past the tokenizer are holes
    ASSERT_LE(h.vocab_size(), g.vocab_size());
    int special_differs = 0;
    for (int32_t id = 0; id < h.vocab_size(); ++id) {
        ASSERT_EQ(g.token_bytes(id), h.token_bytes(id)) << id;
        ASSERT_EQ(g.is_added(id), h.is_added(id)) << id;
        special_differs += g.is_special(id) != h.is_special(id);
    }
    // llama.cpp marks <|fim_*|>, <|repo_name|>, <|file_sep|> CONTROL where HF says special=false.
    EXPECT_EQ(special_differs, 6);
    for (int32_t id = h.vocab_size(); id < g.vocab_size(); ++id) EXPECT_EQ(g.token_bytes(id), "") << id;
    EXPECT_EQ(g.eos_ids(), std::vector<int32_t>{*h.token_id("<|im_end|>")});

    std::vector<std::string> texts = {"", "hello world", "  leading and trailing  ", "tabs\tand\nnew\n\nlines",
                                      "numbers 1234567 3.14", "ünïcödé — 中文 テキスト 🙂", "<|im_start|>user\nhi<|im_end|>",
                                      "<tool_call>\n{\"name\": \"python\"}\n</tool_call>", "<think>\n\n</think>",
                                      "e\xcc\x81 (NFC)", std::string("bad \xff utf8")};
    std::ifstream in(fs::path(QNEXT_SOURCE_DIR) / "tests/data/demo/heldout_tasks.jsonl");
    for (std::string line; std::getline(in, line);) texts.push_back(line);
    ASSERT_GT(texts.size(), 200u);
    for (const std::string& t : texts) {
        for (bool special : {true, false}) {
            const auto ids = g.encode(t, special);
            ASSERT_EQ(ids, h.encode(t, special)) << t;
        }
        const auto ids = h.encode(t);
        ASSERT_EQ(g.decode(ids), h.decode(ids)) << t;
    }
}

TEST(GgufTokenizer, BrokenTokenizerMetadataIsNamed) {
    auto f = GgufFile::open(fs::path(QNEXT_SOURCE_DIR) / "tests/data/loading/gguf/small.gguf");
    try {
        Tokenizer::from_gguf(*f);
        ADD_FAILURE();
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("small.gguf: tokenizer: the file has no tokenizer"), std::string::npos)
            << e.what();
    }
}

// ---- broken metadata --------------------------------------------------------------------------------------

// A minimal GGUF writer for metadata cases: U32/F32/STRING/BOOL-array values and one F32 token_embd tensor.
struct MiniGguf {
    struct Kv {
        uint32_t type;
        std::string bytes;
    };
    std::map<std::string, Kv> kv;
    int64_t vocab = 16, hidden = 8;
    template <class T>
    static std::string raw(T v) {
        return std::string(reinterpret_cast<const char*>(&v), sizeof v);
    }
    static std::string str(const std::string& s) { return raw<uint64_t>(s.size()) + s; }
    void u32(const std::string& k, uint32_t v) { kv[k] = {4, raw(v)}; }
    void f32(const std::string& k, float v) { kv[k] = {6, raw(v)}; }
    void s(const std::string& k, const std::string& v) { kv[k] = {8, str(v)}; }
    void bools(const std::string& k, const std::vector<bool>& v) {
        std::string b = raw<uint32_t>(7) + raw<uint64_t>(v.size());
        for (bool x : v) b += char(x);
        kv[k] = {9, b};
    }
    MiniGguf() {
        s("general.architecture", "qwen3next");
        u32("qwen3next.block_count", 4);
        u32("qwen3next.context_length", 128);
        u32("qwen3next.embedding_length", 8);
        u32("qwen3next.feed_forward_length", 16);
        u32("qwen3next.attention.head_count", 2);
        u32("qwen3next.attention.head_count_kv", 1);
        u32("qwen3next.attention.key_length", 4);
        u32("qwen3next.attention.value_length", 4);
        f32("qwen3next.attention.layer_norm_rms_epsilon", 1e-6f);
        f32("qwen3next.rope.freq_base", 10000.f);
        u32("qwen3next.rope.dimension_count", 2);
        u32("qwen3next.expert_count", 4);
        u32("qwen3next.expert_used_count", 2);
        u32("qwen3next.expert_feed_forward_length", 8);
        u32("qwen3next.expert_shared_feed_forward_length", 8);
        u32("qwen3next.ssm.conv_kernel", 4);
        u32("qwen3next.ssm.state_size", 4);
        u32("qwen3next.ssm.group_count", 1);
        u32("qwen3next.ssm.time_step_rank", 2);
        u32("qwen3next.ssm.inner_size", 8);
        u32("qwen3next.full_attention_interval", 4);
    }
    fs::path write(const fs::path& p) const {
        std::string b = "GGUF" + raw<uint32_t>(3) + raw<uint64_t>(1) + raw<uint64_t>(kv.size());
        for (const auto& [k, v] : kv) b += str(k) + raw(v.type) + v.bytes;
        b += str("token_embd.weight") + raw<uint32_t>(2) + raw<uint64_t>(uint64_t(hidden)) + raw<uint64_t>(uint64_t(vocab)) +
             raw<uint32_t>(0) + raw<uint64_t>(0);
        while (b.size() % 32) b += '\0';
        b.append(size_t(vocab * hidden * 4), '\0');
        std::ofstream(p, std::ios::binary) << b;
        return p;
    }
};

std::string config_error(const MiniGguf& g) {
    test::ScratchDir d("ggufmeta");
    try {
        auto f = GgufFile::open(g.write(d / "m.gguf"));
        gguf_config(*f);
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

void expect_config_error(const MiniGguf& g, const std::string& needle) {
    const std::string e = config_error(g);
    EXPECT_NE(e.find(needle), std::string::npos) << "error: \"" << e << "\", expected \"" << needle << "\"";
    EXPECT_NE(e.find("m.gguf: "), std::string::npos) << e;
}

TEST(GgufModel, MinimalMetadataParses) {
    EXPECT_EQ(config_error(MiniGguf()), "");
    test::ScratchDir d("ggufmin");
    auto f = GgufFile::open(MiniGguf().write(d / "m.gguf"));
    const Qwen3NextConfig c = gguf_config(*f);
    EXPECT_EQ(c.vocab_size, 16);
    EXPECT_TRUE(c.tie_word_embeddings);   // no output.weight
    EXPECT_EQ(c.linear_value_head_dim, 4);
    EXPECT_EQ(c.rotary_dim(), 2);
    EXPECT_EQ(c.layer_types.back(), LayerType::FullAttention);
}

TEST(GgufModel, BrokenMetadataIsNamed) {
    MiniGguf g;
    g.s("general.architecture", "llama");
    expect_config_error(g, "architecture 'llama' is not supported");
    g = MiniGguf();
    g.kv.erase("qwen3next.embedding_length");
    expect_config_error(g, "metadata 'qwen3next.embedding_length' is missing");
    g = MiniGguf();
    g.s("qwen3next.block_count", "four");
    expect_config_error(g, "metadata 'qwen3next.block_count' is STRING, expected an integer");
    g = MiniGguf();
    g.kv["qwen3next.embedding_length"] = {10, MiniGguf::raw<uint64_t>(uint64_t(1) << 62)};
    expect_config_error(g, "'qwen3next.embedding_length' = 4611686018427387904 is out of range");
    g = MiniGguf();
    g.u32("qwen3next.ssm.inner_size", 7);
    expect_config_error(g, "is not a multiple of ssm.time_step_rank");
    g = MiniGguf();
    g.u32("qwen3next.attention.value_length", 8);
    expect_config_error(g, "value_length' differs from key_length");
    g = MiniGguf();
    g.u32("qwen3next.rope.dimension_count", 9);
    expect_config_error(g, "rope.dimension_count' = 9 exceeds the head dim 4");
    g = MiniGguf();
    g.bools("qwen3next.attention.recurrent_layers", {true, false});
    expect_config_error(g, "has 2 entries for 4 blocks");
    g = MiniGguf();
    g.f32("qwen3next.rope.freq_base", INFINITY);
    expect_config_error(g, "'qwen3next.rope.freq_base' is not finite");
    g = MiniGguf();
    g.hidden = 16;   // token_embd rows of another width
    expect_config_error(g, "tensor 'token_embd.weight' has shape [16, 16], expected [vocab, 8]");
    g = MiniGguf();
    g.u32("qwen3next.attention.head_count_kv", 3);   // validate_config: heads not divisible
    expect_config_error(g, "num_key_value_heads");
}

}  // namespace
}  // namespace qnext
