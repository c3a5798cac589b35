// qnext quantize (model/gguf_export.h) against llama.cpp's own converter: the demo model exported as Q8_0 is,
// tensor by tensor, byte-identical to tests/data/loading/gguf/demo-q8_0.gguf, which convert_hf_to_gguf.py
// wrote from the same folder (tests/reference/convert_demo_gguf.py), and carries the same metadata (llama.cpp
// loads it and gives identical logits; checked by hand with llama-cpp-python, see the closing note). Bad input
// is refused with the folder named.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <cmath>
#include <fstream>
#include <map>

#include "kernels/quant.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/gguf_export.h"
#include "model/safetensors.h"
#include "tests/loading/util.h"

namespace qnext {
namespace {

namespace fs = std::filesystem;
const fs::path kRoot = QNEXT_SOURCE_DIR;

bool same_value(const GgufValue& a, const GgufValue& b) {
    if (a.type != b.type || a.elem_type != b.elem_type || a.v.index() != b.v.index()) return false;
    if (a.is_array()) {
        const auto& x = std::get<std::vector<GgufValue>>(a.v);
        const auto& y = std::get<std::vector<GgufValue>>(b.v);
        if (x.size() != y.size()) return false;
        for (size_t i = 0; i < x.size(); ++i)
            if (!same_value(x[i], y[i])) return false;
        return true;
    }
    switch (a.v.index()) {
        case 0: return std::get<0>(a.v) == std::get<0>(b.v);
        case 1: return std::get<1>(a.v) == std::get<1>(b.v);
        case 2: return std::get<2>(a.v) == std::get<2>(b.v);
        case 3: return std::get<3>(a.v) == std::get<3>(b.v);
        case 4: return std::get<4>(a.v) == std::get<4>(b.v);
        default: return false;
    }
}

TEST(GgufExport, DemoQ8_0IsByteIdenticalToLlamaCppsConverter) {
    test::ScratchDir d("export");
    const GgufExportResult r = export_gguf(kRoot / "models/demo", d / "demo.gguf", {});
    auto ours = GgufFile::open(d / "demo.gguf");
    auto conv = GgufFile::open(kRoot / "tests/data/loading/gguf/demo-q8_0.gguf");
    EXPECT_EQ(r.tensors, conv->tensors().size());
    EXPECT_EQ(r.bytes, ours->file_size());
    ASSERT_EQ(ours->tensors().size(), conv->tensors().size());
    int q8 = 0;
    for (const GgufTensor& t : conv->tensors()) {
        const GgufTensor* o = ours->find_tensor(t.name);
        ASSERT_NE(o, nullptr) << t.name;
        EXPECT_EQ(o->ne, t.ne) << t.name;
        EXPECT_EQ(o->type, t.type) << t.name;
        ASSERT_EQ(o->nbytes, t.nbytes) << t.name;
        EXPECT_EQ(std::memcmp(o->data, t.data, t.nbytes), 0) << t.name << ": bytes differ";
        q8 += t.type == 8;
    }
    EXPECT_EQ(q8, 53);
    // Metadata: every key the converter writes, with the same type and value, except the two it derives
    // from its own naming heuristics; nothing else.
    for (const auto& [k, v] : conv->metadata()) {
        if (k == "general.name" || k == "general.size_label") continue;
        const GgufValue* o = ours->find(k);
        ASSERT_NE(o, nullptr) << k;
        EXPECT_TRUE(same_value(*o, v)) << k;
    }
    for (const auto& [k, v] : ours->metadata()) EXPECT_NE(conv->find(k), nullptr) << "extra key " << k;
}

// The K-quant mixes against llama-quantize: the random 256-wide model behind
// tests/data/loading/gguf/kquant-q4_k_m.gguf (tests/reference/make_kquant_golden.py; same config, seed and
// tokenizer, rebuilt here) exported as q4_k_m gets llama-quantize's type for every tensor, and qnext's block
// fits are as close to the weights as llama-quantize's: per type, mean relative RMS error within 3% of it
// (measured: Q4_K 0.0692 vs 0.0688, Q6_K 0.0167 vs 0.0170).
TEST(GgufExport, Q4KMMatchesLlamaQuantize) {
    test::ScratchDir d("exportk");
    const fs::path hf = d / "hf";
    CheckpointOptions co;
    co.seed = 7;
    co.mtp_layers = 1;
    write_random_checkpoint(load_config(kRoot / "tests/data/loading/gguf/kquant-config.json"), hf, co);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) fs::copy_file(kRoot / "models/demo" / f, hf / f);
    GgufExportOptions o;
    o.type = "q4_k_m";
    export_gguf(hf, d / "q.gguf", o);
    o.type = "f32";
    export_gguf(hf, d / "f.gguf", o);
    auto ours = GgufFile::open(d / "q.gguf"), src = GgufFile::open(d / "f.gguf");
    auto lq = GgufFile::open(kRoot / "tests/data/loading/gguf/kquant-q4_k_m.gguf");
    EXPECT_EQ(ours->at("general.file_type").as_u64("ft"), lq->at("general.file_type").as_u64("ft"));
    std::map<uint32_t, std::pair<double, double>> err;   // type -> (ours, llama-quantize) summed rel-RMSE
    std::map<uint32_t, int> count;
    for (const GgufTensor& t : lq->tensors()) {
        const GgufTensor* o2 = ours->find_tensor(t.name);
        ASSERT_NE(o2, nullptr) << t.name;
        EXPECT_EQ(o2->type, t.type) << t.name << ": " << o2->type_name() << " vs llama-quantize's " << t.type_name();
        if (t.type == 0 || o2->type != t.type) continue;
        const GgufTensor* s0 = src->find_tensor(t.name);
        const int64_t n = t.numel();
        std::vector<float> x(static_cast<size_t>(n)), a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
        std::memcpy(x.data(), s0->data, static_cast<size_t>(n) * 4);
        const auto q = static_cast<kern::QType>(t.type);
        kern::ref::dequantize_row(q, o2->data, a.data(), n);
        kern::ref::dequantize_row(q, t.data, b.data(), n);
        double ea = 0, eb = 0, sx = 0;
        for (int64_t i = 0; i < n; ++i) {
            ea += double(a[i] - x[i]) * (a[i] - x[i]);
            eb += double(b[i] - x[i]) * (b[i] - x[i]);
            sx += double(x[i]) * x[i];
        }
        err[t.type].first += std::sqrt(ea / sx);
        err[t.type].second += std::sqrt(eb / sx);
        ++count[t.type];
    }
    EXPECT_EQ(count[12], 45);   // Q4_K
    EXPECT_EQ(count[14], 7);    // Q6_K
    for (const auto& [type, e] : err) {
        std::printf("type %u: %d tensors, mean rel-RMSE qnext %.4f, llama-quantize %.4f\n", type, count[type],
                    e.first / count[type], e.second / count[type]);
        EXPECT_LE(e.first, 1.03 * e.second) << "type " << type;
    }
}

TEST(GgufExport, Bf16KeepsTheCheckpointsBits) {
    test::ScratchDir d("export16");
    GgufExportOptions o;
    o.type = "bf16";
    export_gguf(kRoot / "models/demo", d / "demo.gguf", o);
    auto f = GgufFile::open(d / "demo.gguf");
    const TensorStore st = TensorStore::open(kRoot / "models/demo/model.safetensors");
    const TensorView& e = st.at("model.embed_tokens.weight");
    const GgufTensor* t = f->find_tensor("token_embd.weight");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->type, 30u);   // BF16
    ASSERT_EQ(t->nbytes, e.nbytes);
    EXPECT_EQ(std::memcmp(t->data, e.data, e.nbytes), 0);
    EXPECT_EQ(f->find_tensor("blk.0.attn_norm.weight")->type, 0u);   // norms stay f32
    EXPECT_EQ(f->at("general.file_type").as_u64("general.file_type"), 32u);
}

std::string export_error(const fs::path& from, const std::string& type = "q8_0") {
    test::ScratchDir d("exporterr");
    GgufExportOptions o;
    o.type = type;
    try {
        export_gguf(from, d / "x.gguf", o);
    } catch (const std::exception& e) {
        EXPECT_FALSE(fs::exists(d / "x.gguf")) << "a failed export leaves no file";
        return e.what();
    }
    return "";
}

TEST(GgufExport, BadInputIsNamed) {
    EXPECT_NE(export_error(kRoot / "models/demo", "q3_k_m").find("--type 'q3_k_m' is not supported"), std::string::npos);
    EXPECT_NE(export_error(kRoot / "tests/data/loading/gguf/demo-q8_0.gguf").find("is a file"), std::string::npos);
    const std::string fp8 = export_error(kRoot / "tests/data/model/demo-fp8");
    EXPECT_NE(fp8.find("F8_E4M3; quantize reads bf16 / f16 / f32 checkpoints"), std::string::npos) << fp8;
    // A folder without tokenizer.json.
    test::ScratchDir d("notok");
    fs::copy_file(kRoot / "models/demo/config.json", d / "config.json");
    fs::copy_file(kRoot / "models/demo/model.safetensors", d / "model.safetensors");
    const std::string e = export_error(d.path);
    EXPECT_NE(e.find("tokenizer.json"), std::string::npos) << e;
}

}  // namespace
}  // namespace qnext
