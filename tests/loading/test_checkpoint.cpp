// make-checkpoint writer: loads back bit-identical (checked with an independent header reader),
// bf16 == rounded f32, sharded == single, deterministic per seed, sensible value scales.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "model/checkpoint.h"
#include "model/model_folder.h"
#include "tests/loading/util.h"

namespace qnext {
namespace {

using nlohmann::json;
using test::ScratchDir;

Qwen3NextConfig tiny_config() { return load_config(test::tiny_config_path()); }

CheckpointOptions opts(uint64_t seed, TensorDType dt, int shards = 1, int64_t mtp = 1) {
    CheckpointOptions o;
    o.seed = seed;
    o.dtype = dt;
    o.shards = shards;
    o.mtp_layers = mtp;
    return o;
}

ModelFolder load(const std::filesystem::path& dir) { return load_model_folder(dir, false); }

// Independent reader: every tensor's bytes straight from the file with std::ifstream.
std::map<std::string, std::string> read_all_tensors(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    unsigned char len[8];
    in.read(reinterpret_cast<char*>(len), 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
    std::string header(n, '\0');
    in.read(header.data(), static_cast<std::streamsize>(n));
    json h = json::parse(header);
    std::map<std::string, std::string> out;
    for (auto& [name, e] : h.items()) {
        if (name == "__metadata__") continue;
        const uint64_t b = e["data_offsets"][0], end = e["data_offsets"][1];
        std::string bytes(end - b, '\0');
        in.seekg(static_cast<std::streamoff>(8 + n + b));
        in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        out[name] = bytes;
    }
    return out;
}

std::string bytes_of(const TensorView& v) { return std::string(reinterpret_cast<const char*>(v.data), v.nbytes); }

TEST(Checkpoint, LoadsBackBitIdenticalForEveryTensor) {
    ScratchDir d("rt");
    for (TensorDType dt : {TensorDType::F32, TensorDType::BF16}) {
        write_random_checkpoint(tiny_config(), d.path, opts(7, dt));
        auto raw = read_all_tensors(d / "model.safetensors");
        ModelFolder m = load(d.path);
        ASSERT_EQ(raw.size(), m.store.size());
        for (const TensorView& v : m.store.tensors()) {
            EXPECT_EQ(v.dtype, dt);
            EXPECT_EQ(bytes_of(v), raw.at(v.name)) << v.name;
        }
        // the bound structs point at the same bytes
        EXPECT_EQ(bytes_of(m.weights.layers[0].gdn->A_log), raw.at("model.layers.0.linear_attn.A_log"));
        EXPECT_EQ(bytes_of(m.weights.mtp->fc), raw.at("mtp.fc.weight"));
        EXPECT_EQ(bytes_of(m.weights.layers[3].moe->experts[5].down_proj),
                  raw.at("model.layers.3.mlp.experts.5.down_proj.weight"));
    }
}

TEST(Checkpoint, Bf16IsTheRoundedF32) {
    ScratchDir a("f32"), b("bf16");
    write_random_checkpoint(tiny_config(), a.path, opts(3, TensorDType::F32));
    write_random_checkpoint(tiny_config(), b.path, opts(3, TensorDType::BF16));
    ModelFolder fa = load(a.path), fb = load(b.path);
    for (const TensorView& v : fa.store.tensors()) {
        auto x = v.as<float>();
        auto y = fb.store.at(v.name).as<uint16_t>();
        ASSERT_EQ(x.size(), y.size());
        for (size_t i = 0; i < x.size(); ++i)
            ASSERT_EQ(f32_to_bf16(x[i]), y[i]) << v.name << "[" << i << "]";
    }
}

TEST(Checkpoint, ShardedEqualsSingle) {
    ScratchDir one("one"), three("three");
    write_random_checkpoint(tiny_config(), one.path, opts(11, TensorDType::BF16));
    write_random_checkpoint(tiny_config(), three.path, opts(11, TensorDType::BF16, 3));
    EXPECT_FALSE(std::filesystem::exists(three / "model.safetensors"));
    for (int k = 1; k <= 3; ++k)
        EXPECT_TRUE(std::filesystem::exists(three / ("model-0000" + std::to_string(k) + "-of-00003.safetensors")));
    json index = test::read_json(three / "model.safetensors.index.json");
    ModelFolder s = load(one.path), t = load(three.path);
    EXPECT_TRUE(t.store.sharded());
    EXPECT_EQ(t.store.files().size(), 3u);
    EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), s.store.total_bytes());
    ASSERT_EQ(s.store.size(), t.store.size());
    for (const TensorView& v : s.store.tensors()) {
        const TensorView& w = t.store.at(v.name);
        EXPECT_EQ(v.shape, w.shape);
        EXPECT_EQ(bytes_of(v), bytes_of(w)) << v.name;
        EXPECT_EQ(index["weight_map"][v.name].get<std::string>(), std::filesystem::path(w.file).filename().string());
    }
    // rewriting as a single file removes the old shards and index
    write_random_checkpoint(tiny_config(), three.path, opts(11, TensorDType::BF16));
    EXPECT_FALSE(std::filesystem::exists(three / "model.safetensors.index.json"));
    EXPECT_EQ(load(three.path).store.files().size(), 1u);
}

TEST(Checkpoint, DeterministicPerSeed) {
    ScratchDir a("a"), b("b"), c("c");
    write_random_checkpoint(tiny_config(), a.path, opts(5, TensorDType::BF16));
    write_random_checkpoint(tiny_config(), b.path, opts(5, TensorDType::BF16));
    write_random_checkpoint(tiny_config(), c.path, opts(6, TensorDType::BF16));
    auto ra = read_all_tensors(a / "model.safetensors"), rb = read_all_tensors(b / "model.safetensors"),
         rc = read_all_tensors(c / "model.safetensors");
    EXPECT_EQ(ra, rb);
    for (const auto& [name, bytes] : ra) EXPECT_NE(bytes, rc.at(name)) << name;
    // different tensors of one checkpoint get different streams
    EXPECT_NE(ra.at("model.layers.0.mlp.experts.0.gate_proj.weight"), ra.at("model.layers.0.mlp.experts.1.gate_proj.weight"));
}

struct Stats {
    double mean = 0, stddev = 0, min = INFINITY, max = -INFINITY;
};
Stats stats(const TensorView& v) {
    Stats s;
    auto x = v.as<float>();
    for (float f : x) s.mean += f, s.min = std::min<double>(s.min, f), s.max = std::max<double>(s.max, f);
    s.mean /= static_cast<double>(x.size());
    for (float f : x) s.stddev += (f - s.mean) * (f - s.mean);
    s.stddev = std::sqrt(s.stddev / static_cast<double>(x.size()));
    return s;
}

TEST(Checkpoint, ValuesHaveSensibleScales) {
    ScratchDir d("scales");
    json j = test::read_json(test::tiny_config_path());
    j["num_hidden_layers"] = 8;   // more samples for the small per-head tensors
    write_random_checkpoint(parse_config(j), d.path, opts(1, TensorDType::F32));
    ModelFolder m = load(d.path);
    Stats emb = stats(m.weights.embed_tokens);
    EXPECT_NEAR(emb.mean, 0.0, 0.002);
    EXPECT_NEAR(emb.stddev, 0.02, 0.001);   // initializer_range
    Stats qkvz = stats(m.weights.layers[0].gdn->in_proj_qkvz);
    EXPECT_NEAR(qkvz.stddev, 0.02, 0.002);
    Stats conv = stats(m.weights.layers[0].gdn->conv1d);
    EXPECT_NEAR(conv.stddev, 0.5, 0.08);    // 1/sqrt(kernel 4)
    for (const LayerWeights& l : m.weights.layers) {
        Stats n = stats(l.input_layernorm);   // zero-centred norm: applied as 1 + w
        EXPECT_LT(std::abs(n.mean), 0.03);
        EXPECT_LT(n.max, 0.3);
        if (!l.gdn) continue;
        Stats g = stats(l.gdn->norm);          // plain gated norm weight ~ 1
        EXPECT_NEAR(g.mean, 1.0, 0.05);
        Stats a = stats(l.gdn->A_log);         // log(U[1, 16])
        EXPECT_GE(a.min, 0.0);
        EXPECT_LE(a.max, std::log(16.0));
        for (float b : l.gdn->dt_bias.as<float>()) {   // softplus(dt_bias) = dt in [1e-3, 1e-1]
            const double dt = std::log1p(std::exp(static_cast<double>(b)));
            EXPECT_GE(dt, 0.999e-3);
            EXPECT_LE(dt, 0.1001);
        }
    }
}

TEST(Checkpoint, FusedLayoutWritesFusedTensors) {
    ScratchDir d("fused");
    CheckpointOptions o = opts(2, TensorDType::BF16);
    o.expert_layout = ExpertLayout::Fused;
    write_random_checkpoint(tiny_config(), d.path, o);
    ModelFolder m = load(d.path);
    EXPECT_EQ(m.weights.expert_layout, ExpertLayout::Fused);
    EXPECT_TRUE(m.store.contains("model.layers.0.mlp.experts.gate_up_proj"));
    EXPECT_FALSE(m.store.contains("model.layers.0.mlp.experts.0.gate_proj.weight"));
    const MoeWeights& moe = *m.weights.layers[2].moe;
    const std::byte* base = moe.fused_gate_up->data;
    const size_t I = 32, H = 64;
    EXPECT_EQ(moe.experts[3].gate_proj.data, base + 3 * 2 * I * H * 2);
    EXPECT_EQ(moe.experts[3].up_proj.data, base + (3 * 2 * I + I) * H * 2);
    EXPECT_EQ(moe.experts[3].down_proj.data, moe.fused_down->data + 3 * H * I * 2);
}

TEST(Checkpoint, BadOptionsAreErrors) {
    ScratchDir d("badopt");
    EXPECT_ERROR_CONTAINS(write_random_checkpoint(tiny_config(), d.path, opts(0, TensorDType::F16)), "bf16 or f32");
    EXPECT_ERROR_CONTAINS(write_random_checkpoint(tiny_config(), d.path, opts(0, TensorDType::BF16, 0)), "--shards");
    EXPECT_ERROR_CONTAINS(write_random_checkpoint(tiny_config(), d.path, opts(0, TensorDType::BF16, 100000)),
                          "exceeds the");
}

TEST(Checkpoint, Bf16Conversion) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
    EXPECT_EQ(f32_to_bf16(-2.0f), 0xC000);
    EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3F80);   // halfway 0x3F80|0x3F81 -> even
    EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3F82);   // halfway 0x3F81|0x3F82 -> even
    EXPECT_EQ(f32_to_bf16(1.0048828125f), 0x3F81); // above halfway
    EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
    EXPECT_EQ(bf16_to_f32(f32_to_bf16(INFINITY)), INFINITY);
    EXPECT_EQ(bf16_to_f32(0x3FC0), 1.5f);
}

}  // namespace
}  // namespace qnext
