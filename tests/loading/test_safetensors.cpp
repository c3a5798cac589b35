// Safetensors reader: peer-written file (reference safetensors/torch) decodes exactly; every corrupt
// header/file case fails with an error naming the file and tensor; sharded stores.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tests/loading/util.h"

namespace qnext {
namespace {

using nlohmann::json;
using test::RawTensor;
using test::ScratchDir;
using test::write_raw_safetensors;

// Decoders written from the format definitions (IEEE binary16, bfloat16, OCP FP8 E4M3FN).
float decode_f16(uint16_t h) {
    const int sign = h >> 15, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    float v = exp == 0 ? std::ldexp(static_cast<float>(man), -24)
              : exp == 31 ? (man ? NAN : INFINITY)
                          : std::ldexp(static_cast<float>(man | 0x400), exp - 25);
    return sign ? -v : v;
}
float decode_e4m3(uint8_t b) {
    const int sign = b >> 7, exp = (b >> 3) & 0xF, man = b & 0x7;
    if (exp == 15 && man == 7) return NAN;
    float v = exp == 0 ? std::ldexp(static_cast<float>(man), -9) : std::ldexp(static_cast<float>(man | 8), exp - 10);
    return sign ? -v : v;
}

float element(const TensorView& v, int64_t i) {
    switch (v.dtype) {
        case TensorDType::F32: return v.as<float>()[static_cast<size_t>(i)];
        case TensorDType::BF16: return bf16_to_f32(v.as<uint16_t>()[static_cast<size_t>(i)]);
        case TensorDType::F16: return decode_f16(v.as<uint16_t>()[static_cast<size_t>(i)]);
        case TensorDType::F8_E4M3: return decode_e4m3(v.as<uint8_t>()[static_cast<size_t>(i)]);
        default: break;  // GGML block formats never come from a safetensors file
    }
    return NAN;
}

TEST(Safetensors, PeerWrittenDtypesDecodeExactly) {
    TensorStore s = TensorStore::open(test::data_dir() / "peer_dtypes.safetensors");
    json golden = test::read_json(test::data_dir() / "peer_dtypes.json");
    ASSERT_EQ(s.size(), golden.size());
    for (auto& [name, g] : golden.items()) {
        const TensorView& v = s.at(name);
        EXPECT_EQ(v.shape, g["shape"].get<std::vector<int64_t>>()) << name;
        const auto& vals = g["values"];
        ASSERT_EQ(static_cast<size_t>(v.numel()), vals.size()) << name;
        for (size_t i = 0; i < vals.size(); ++i) {
            const float want = vals[i].get<float>();
            const float got = element(v, static_cast<int64_t>(i));
            EXPECT_EQ(std::memcmp(&want, &got, 4), 0) << name << "[" << i << "]: " << got << " vs " << want;
        }
    }
    EXPECT_EQ(s.at("t.f16").dtype, TensorDType::F16);
    EXPECT_EQ(s.at("t.bf16").dtype, TensorDType::BF16);
    EXPECT_EQ(s.at("t.special_f8").dtype, TensorDType::F8_E4M3);
    EXPECT_EQ(s.at("t.scalar").rank(), 0);
    EXPECT_EQ(s.at("t.empty").nbytes, 0u);
    const TensorView* scale = s.scale_inv(s.at("w.weight"));
    ASSERT_NE(scale, nullptr);
    EXPECT_EQ(scale->as<float>()[0], 0.5f);
    EXPECT_EQ(s.files().front()->header().metadata.at("producer"), "make_loading_golden.py");
}

TEST(Safetensors, ViewsAreZeroCopyIntoTheMapping) {
    ScratchDir d("zc");
    test::write_safetensors(d / "a.safetensors", {{"x", "F32", {2, 2}, test::f32_bytes({1, 2, 3, 4})},
                                                  {"y", "F32", {1}, test::f32_bytes({5})}});
    TensorStore s = TensorStore::open(d / "a.safetensors");
    const auto& f = *s.files().front();
    const TensorView& y = s.at("y");
    EXPECT_EQ(y.data, f.data() + 16);
    EXPECT_EQ(y.as<float>()[0], 5.0f);
    EXPECT_EQ(y.file, (d / "a.safetensors").string());
    TensorStore moved = std::move(s);
    EXPECT_EQ(moved.at("x").as<float>()[3], 4.0f);   // pointers survive a move
    EXPECT_ERROR_CONTAINS((void)moved.at("x").as<uint16_t>(), "'x'", "F32");
    EXPECT_ERROR_CONTAINS((void)moved.at("zz"), "'zz'", "not found");
    EXPECT_EQ(moved.find("zz"), nullptr);
}

// Each corrupt file: (header json, data bytes) and the words its error must contain.
void expect_corrupt(const std::string& header, const std::string& data, std::vector<std::string> words) {
    ScratchDir d("bad");
    write_raw_safetensors(d / "bad.safetensors", header, data);
    words.push_back("bad.safetensors");
    std::string msg;
    try {
        (void)TensorStore::open(d / "bad.safetensors");
    } catch (const std::runtime_error& e) {
        msg = e.what();
    }
    ASSERT_FALSE(msg.empty()) << "accepted corrupt header " << header;
    for (const auto& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
}

TEST(SafetensorsErrors, BadJson) {
    expect_corrupt("{\"x\": {\"dtype\": \"F32\",", "", {"malformed safetensors header JSON"});
    expect_corrupt("[1, 2]", "", {"not a JSON object"});
    expect_corrupt(R"({"x": 3})", "", {"tensor 'x'", "not an object"});
    // found by the fuzzer: a number literal out of double range is an out_of_range, not a parse_error
    expect_corrupt(R"({"a":3333333333330000e000000000333})", "", {"malformed safetensors header JSON"});
}

TEST(SafetensorsErrors, UnknownDtype) {
    expect_corrupt(R"({"x": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})", std::string(8, '\0'),
                   {"tensor 'x'", "unsupported dtype 'I64'"});
}

TEST(SafetensorsErrors, OffsetsOutOfBounds) {
    expect_corrupt(R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", std::string(12, '\0'),
                   {"tensor 'x'", "out of bounds", "12 bytes"});
    expect_corrupt(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", std::string(12, '\0'),
                   {"tensor 'x'", "reversed"});
    expect_corrupt(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", std::string(4, '\0'),
                   {"tensor 'x'", "data_offsets"});
}

TEST(SafetensorsErrors, Overlap) {
    expect_corrupt(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                       "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                   std::string(12, '\0'), {"tensor 'b'", "overlaps tensor 'a'"});
}

TEST(SafetensorsErrors, SizeMismatch) {
    expect_corrupt(R"({"x": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 8]}})", std::string(8, '\0'),
                   {"tensor 'x'", "size mismatch", "needs 12 bytes", "span 8"});
    expect_corrupt(R"({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", std::string(4, '\0'),
                   {"tensor 'x'", "not a non-negative integer"});
    expect_corrupt(R"({"x": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}})",
                   std::string(4, '\0'), {"tensor 'x'", "too large"});
    expect_corrupt(R"({"x": {"dtype": "F32", "data_offsets": [0, 4]}})", std::string(4, '\0'),
                   {"tensor 'x'", "shape"});
}

TEST(SafetensorsErrors, BadMetadata) {
    expect_corrupt(R"({"__metadata__": {"format": 1}})", "", {"__metadata__", "'format'"});
}

TEST(SafetensorsErrors, TruncatedFiles) {
    ScratchDir d("trunc");
    std::ofstream(d / "short.safetensors", std::ios::binary) << "abc";
    EXPECT_ERROR_CONTAINS(TensorStore::open(d / "short.safetensors"), "short.safetensors", "truncated");
    // header length says 100 but 10 bytes follow
    write_raw_safetensors(d / "hdr.safetensors", "", "");
    {
        std::ofstream f(d / "hdr.safetensors", std::ios::binary | std::ios::trunc);
        const char len[8] = {100, 0, 0, 0, 0, 0, 0, 0};
        f.write(len, 8);
        f << "{\"x\": 1234";
    }
    EXPECT_ERROR_CONTAINS(TensorStore::open(d / "hdr.safetensors"), "hdr.safetensors", "truncated",
                          "header length 100");
    // a real checkpoint file cut short by one byte: the last tensor no longer fits
    test::write_safetensors(d / "cut.safetensors", {{"first", "F32", {2}, test::f32_bytes({1, 2})},
                                                    {"last", "F32", {2}, test::f32_bytes({3, 4})}});
    std::filesystem::resize_file(d / "cut.safetensors", std::filesystem::file_size(d / "cut.safetensors") - 1);
    EXPECT_ERROR_CONTAINS(TensorStore::open(d / "cut.safetensors"), "cut.safetensors", "tensor 'last'",
                          "out of bounds");
    EXPECT_ERROR_CONTAINS(TensorStore::open(d / "missing.safetensors"), "missing.safetensors", "does not exist");
}

TEST(SafetensorsErrors, HeaderParserDirect) {
    EXPECT_ERROR_CONTAINS(parse_safetensors_header(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})",
                                                   4, "mem"),
                          "mem: tensor 'x'", "two non-negative integers");
    SafetensorsHeader h = parse_safetensors_header(
        R"({"b": {"dtype": "F16", "shape": [2], "data_offsets": [4, 8]},
            "a": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 8, "mem");
    ASSERT_EQ(h.tensors.size(), 2u);
    EXPECT_EQ(h.tensors[0].name, "a");   // sorted by offset
    EXPECT_EQ(h.tensors[1].dtype, TensorDType::F16);
}

// ---- sharded stores ---------------------------------------------------------------------------

void write_index(const std::filesystem::path& dir, const json& weight_map) {
    test::write_json(dir / "model.safetensors.index.json", json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}});
}

TEST(SafetensorsSharded, OpensAndMergesShards) {
    ScratchDir d("sh");
    test::write_safetensors(d / "s1.safetensors", {{"a", "F32", {1}, test::f32_bytes({1})}});
    test::write_safetensors(d / "s2.safetensors", {{"b", "F32", {1}, test::f32_bytes({2})}});
    write_index(d.path, {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}});
    TensorStore s = TensorStore::open(d.path);
    EXPECT_TRUE(s.sharded());
    EXPECT_EQ(s.files().size(), 2u);
    EXPECT_EQ(s.at("b").as<float>()[0], 2.0f);
    EXPECT_EQ(s.at("a").file, (d / "s1.safetensors").string());
}

TEST(SafetensorsSharded, InconsistentIndexesAreErrors) {
    ScratchDir d("shbad");
    test::write_safetensors(d / "s1.safetensors", {{"a", "F32", {1}, test::f32_bytes({1})}});
    write_index(d.path, {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}});
    EXPECT_ERROR_CONTAINS(TensorStore::open(d.path), "s2.safetensors", "cannot open");
    test::write_safetensors(d / "s2.safetensors", {{"c", "F32", {1}, test::f32_bytes({1})}});
    EXPECT_ERROR_CONTAINS(TensorStore::open(d.path), "tensor 'c'", "not listed");
    write_index(d.path, {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}, {"c", "s2.safetensors"}});
    EXPECT_ERROR_CONTAINS(TensorStore::open(d.path), "tensor 'b'", "missing from the shard");
    write_index(d.path, {{"a", "s2.safetensors"}, {"c", "s2.safetensors"}});
    EXPECT_ERROR_CONTAINS(TensorStore::open(d.path), "tensor 'a'", "missing from the shard");
    test::write_safetensors(d / "s2.safetensors", {{"a", "F32", {1}, test::f32_bytes({1})}});
    write_index(d.path, {{"a", "s1.safetensors"}, {"x", "s2.safetensors"}});
    EXPECT_ERROR_CONTAINS(TensorStore::open(d.path), "tensor 'a'", "assigns it to 's1.safetensors'");
    write_index(d.path, {{"a", "../s1.safetensors"}});
    EXPECT_ERROR_CONTAINS(TensorStore::open(d.path), "invalid shard");
    std::ofstream(d / "model.safetensors.index.json") << "{\"weight_map\": ";
    EXPECT_ERROR_CONTAINS(TensorStore::open(d.path), "model.safetensors.index.json", "invalid JSON");
    std::ofstream(d / "model.safetensors.index.json") << "{\"metadata\": {}}";
    EXPECT_ERROR_CONTAINS(TensorStore::open(d.path), "weight_map");
}

TEST(SafetensorsSharded, FolderWithoutWeights) {
    ScratchDir d("empty");
    EXPECT_ERROR_CONTAINS(TensorStore::open(d.path), "no model.safetensors");
}

}  // namespace
}  // namespace qnext
