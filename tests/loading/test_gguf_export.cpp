// qnext quantize (model/gguf_export.h) against llama.cpp's own converter: the demo model exported as Q8_0 is,
// tensor by tensor, byte-identical to tests/data/loading/gguf/demo-q8_0.gguf, which convert_hf_to_gguf.py
// wrote from the same folder (tests/reference/convert_demo_gguf.py), and carries the same metadata (llama.cpp
// loads it and gives identical logits; checked by hand with llama-cpp-python, see the closing note). Bad input
// is refused with the folder named.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

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
    EXPECT_NE(export_error(kRoot / "models/demo", "q4_k_m").find("--type 'q4_k_m' is not supported"), std::string::npos);
    EXPECT_NE(export_error(kRoot / "tests/data/loading/gguf/demo-q8_0.gguf").find("is a file"), std::string::npos);
    // A folder without tokenizer.json.
    test::ScratchDir d("notok");
    fs::copy_file(kRoot / "models/demo/config.json", d / "config.json");
    fs::copy_file(kRoot / "models/demo/model.safetensors", d / "model.safetensors");
    const std::string e = export_error(d.path);
    EXPECT_NE(e.find("tokenizer.json"), std::string::npos) << e;
}

}  // namespace
}  // namespace qnext
