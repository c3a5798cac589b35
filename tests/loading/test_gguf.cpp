// GGUF reader: files written by gguf-py's GGUFWriter (tests/reference/make_gguf_golden.py) read back exactly as
// gguf-py's GGUFReader reads them; every corrupt or lying header ends in one GgufError naming the file and the
// problem — checked by hand-made cases and by every truncation and thousands of mutations of a real file.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/gguf.h"

namespace qnext {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const fs::path kDir = fs::path(QNEXT_SOURCE_DIR) / "tests/data/loading/gguf";

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string fnv1a64(const std::byte* p, uint64_t n) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (uint64_t i = 0; i < n; ++i) {
        h ^= uint8_t(p[i]);
        h *= 0x100000001B3ull;
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

// A metadata value as the golden JSON writes it (arrays flattened to their scalar values).
json to_json(const GgufValue& v) {
    if (v.is_array()) {
        json a = json::array();
        for (const GgufValue& e : v.as_array("")) a.push_back(to_json(e));
        return a;
    }
    if (const auto* u = std::get_if<uint64_t>(&v.v)) return *u;
    if (const auto* i = std::get_if<int64_t>(&v.v)) return *i;
    if (const auto* d = std::get_if<double>(&v.v)) return *d;
    if (const auto* b = std::get_if<bool>(&v.v)) return *b;
    return std::get<std::string>(v.v);
}

class GgufGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufGolden, ReadsWhatGgufPyReads) {
    const fs::path file = kDir / GetParam();
    const json want = json::parse(slurp(fs::path(file).replace_extension(".json")));
    auto f = GgufFile::open(file);
    const GgufContents& c = f->contents();
    EXPECT_EQ(c.version, want["version"].get<uint32_t>());
    EXPECT_EQ(c.alignment, want["alignment"].get<uint64_t>());
    EXPECT_EQ(c.data_offset, want["data_offset"].get<uint64_t>());
    EXPECT_EQ(f->file_size(), want["file_size"].get<uint64_t>());
    ASSERT_EQ(c.metadata.size(), want["metadata"].size());
    for (const auto& [key, w] : want["metadata"].items()) {
        const GgufValue* v = f->find(key);
        ASSERT_NE(v, nullptr) << key;
        EXPECT_EQ(gguf_type_name(v->type), w["type"].get<std::string>()) << key;
        if (v->is_array()) {
            EXPECT_EQ(gguf_type_name(v->elem_type), w["elem"].get<std::string>()) << key;
            if (v->elem_type == GgufType::Array) continue;   // checked in NestedArrays
        }
        EXPECT_EQ(to_json(*v), w["value"]) << key;
    }
    ASSERT_EQ(c.tensors.size(), want["tensors"].size());
    for (size_t i = 0; i < c.tensors.size(); ++i) {
        const GgufTensor& t = c.tensors[i];
        const json& w = want["tensors"][i];
        EXPECT_EQ(t.name, w["name"].get<std::string>());
        EXPECT_EQ(t.ne, w["ne"].get<std::vector<int64_t>>()) << t.name;
        EXPECT_EQ(t.type, w["type"].get<uint32_t>()) << t.name;
        EXPECT_STREQ(t.type_name(), w["type_name"].get<std::string>().c_str());
        EXPECT_EQ(t.offset, w["offset"].get<uint64_t>()) << t.name;
        EXPECT_EQ(t.nbytes, w["nbytes"].get<uint64_t>()) << t.name;
        EXPECT_EQ(fnv1a64(t.data, t.nbytes), w["fnv1a64"].get<std::string>()) << t.name;
        EXPECT_EQ(f->find_tensor(t.name), &t);
    }
}

INSTANTIATE_TEST_SUITE_P(Files, GgufGolden, ::testing::Values("small.gguf", "aligned64.gguf"));

TEST(Gguf, NestedArraysAndAccessors) {
    auto f = GgufFile::open(kDir / "small.gguf");
    const auto& outer = f->at("test.nested").as_array("test.nested");
    ASSERT_EQ(outer.size(), 2u);
    EXPECT_EQ(outer[0].as_array("x").size(), 2u);
    EXPECT_EQ(outer[1].as_array("x")[0].as_i64("x"), 3);
    EXPECT_EQ(f->at("general.architecture").as_string("a"), "qwen3next");
    EXPECT_EQ(f->at("qwen3next.block_count").as_u64("b"), 2u);
    EXPECT_EQ(f->at("test.u64").as_u64("u"), (1ull << 63) + 5);
    EXPECT_THROW(f->at("test.u64").as_i64("test.u64"), GgufError);
    EXPECT_THROW(f->at("test.i8").as_u64("test.i8"), GgufError);
    try {
        f->at("test.string").as_u64("test.string");
        ADD_FAILURE();
    } catch (const GgufError& e) {
        EXPECT_NE(std::string(e.what()).find("'test.string' is STRING, expected an unsigned integer"), std::string::npos)
            << e.what();
    }
    try {
        f->at("no.such.key");
        ADD_FAILURE();
    } catch (const GgufError& e) {
        EXPECT_NE(std::string(e.what()).find("small.gguf: metadata 'no.such.key' is missing"), std::string::npos);
    }
    const GgufTensor* q8 = f->find_tensor("q8_0.weight");
    ASSERT_NE(q8, nullptr);
    EXPECT_EQ(q8->shape_str(), "[2, 64]");
    EXPECT_EQ(q8->numel(), 128);
    EXPECT_TRUE(looks_like_gguf(kDir / "small.gguf"));
    EXPECT_FALSE(looks_like_gguf(kDir / "small.json"));
}

// ---- corrupt files ----------------------------------------------------------------------------------------

// A GGUF image built by hand, for the cases a writer never produces.
struct Builder {
    std::string b;
    template <class T>
    Builder& put(T v) {
        b.append(reinterpret_cast<const char*>(&v), sizeof v);
        return *this;
    }
    Builder& str(const std::string& s) {
        put<uint64_t>(s.size());
        b += s;
        return *this;
    }
    Builder& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
        b = "GGUF";
        return put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
    }
    Builder& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
        str(name).put<uint32_t>(uint32_t(ne.size()));
        for (uint64_t d : ne) put<uint64_t>(d);
        return put<uint32_t>(type).put<uint64_t>(offset);
    }
    Builder& pad(size_t align = 32) {
        while (b.size() % align) b += '\0';
        return *this;
    }
    Builder& data(size_t n) {
        b.append(n, '\x11');
        return *this;
    }
};

std::string parse_error(const std::string& image) {
    try {
        parse_gguf(std::span<const std::byte>(reinterpret_cast<const std::byte*>(image.data()), image.size()),
                   "bad.gguf");
    } catch (const GgufError& e) {
        return e.what();
    }
    return "";
}

void expect_error(const std::string& image, const std::string& needle) {
    const std::string e = parse_error(image);
    EXPECT_NE(e.find(needle), std::string::npos) << "error: \"" << e << "\", expected it to contain \"" << needle << "\"";
    EXPECT_TRUE(e.starts_with("bad.gguf: ")) << e;
}

TEST(GgufCorrupt, HeaderProblems) {
    expect_error("", "truncated: the magic");
    expect_error("GGML\x03\0\0\0", "not a GGUF file");
    expect_error(Builder().header(0, 0, 1).b, "GGUF version 1 is not supported");
    expect_error(Builder().header(0, 0, 0x03000000u).b, "big-endian");
    expect_error(Builder().header(0, 0).b.substr(0, 20), "truncated: the metadata count");
    expect_error(Builder().header(0, uint64_t(1) << 40).b, "metadata entries, more than the limit");
    expect_error(Builder().header(uint64_t(1) << 40, 0).b, "tensors, more than the limit");
    EXPECT_EQ(parse_error(Builder().header(0, 0).b), "");   // an empty but valid file
}

TEST(GgufCorrupt, MetadataProblems) {
    expect_error(Builder().header(0, 1).put<uint64_t>(uint64_t(1) << 62).b, "string of 4611686018427387904 bytes");
    expect_error(Builder().header(0, 1).put<uint64_t>(100).b + "short", "truncated: metadata entry #0 key");
    expect_error(Builder().header(0, 1).str("k").put<uint32_t>(77).b, "metadata 'k': unknown value type 77");
    expect_error(Builder().header(0, 1).str("k").put<uint32_t>(7).put<uint8_t>(2).b, "bool value 2");
    expect_error(Builder().header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(uint64_t(1) << 50).b,
                 "array of 1125899906842624 elements is longer than the limit");
    expect_error(Builder().header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(1000).b,
                 "declares 1000 elements of type STRING");
    Builder deep;
    deep.header(0, 1).str("k").put<uint32_t>(9);
    for (int i = 0; i < 10; ++i) deep.put<uint32_t>(9).put<uint64_t>(1);
    expect_error(deep.b, "arrays nest deeper than 4 levels");
    expect_error(Builder().header(0, 2).str("k").put<uint32_t>(4).put<uint32_t>(1).str("k").put<uint32_t>(4).put<uint32_t>(2).b,
                 "metadata 'k' appears twice");
    expect_error(Builder().header(0, 1).str("general.alignment").put<uint32_t>(4).put<uint32_t>(48).b,
                 "'general.alignment' = 48 is not a power of two");
    expect_error(Builder().header(0, 1).str("general.alignment").put<uint32_t>(10).put<uint64_t>(64).b,
                 "'general.alignment' must be a UINT32");
}

TEST(GgufCorrupt, TensorProblems) {
    auto one = [](const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data) {
        return Builder().header(1, 0).tensor(name, ne, type, offset).pad().data(data).b;
    };
    EXPECT_EQ(parse_error(one("w", {4, 2}, 0, 0, 32)), "");
    expect_error(one("w", {4, 2}, 0, 0, 31), "tensor 'w': 32 bytes of data at offset 0 end past the end of the file");
    expect_error(one("w", {4, 2}, 0, 32, 32), "tensor 'w': 32 bytes of data at offset 32 end past");
    expect_error(one("w", {4, 2}, 0, 8, 64), "data offset 8 is not a multiple of the alignment 32");
    expect_error(one("w", {4, 2}, 99, 0, 32), "tensor 'w': unknown GGML type id 99");
    expect_error(one("w", {33, 2}, 8, 0, 128), "the row length 33 is not a multiple of the Q8_0 block size 32");
    expect_error(one("w", {1, 1, 1, 1, 1}, 0, 0, 32), "5 dimensions");
    expect_error(one("w", {}, 0, 0, 32), "0 dimensions");
    expect_error(one("w", {uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0, 32), "the element count overflows");
    expect_error(one("w", {uint64_t(1) << 62}, 0, 0, 32), "the byte size overflows");
    expect_error(one("w", {uint64_t(1) << 63}, 0, 0, 32), "overflows");
    expect_error(one("w", {4}, 0, ~uint64_t(0) - 31, 32), "end past the end of the file");
    const std::string two_same = Builder().header(2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad().data(64).b;
    expect_error(two_same, "tensor 'w' appears twice");
    const std::string overlap = Builder().header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().data(64).b;
    expect_error(overlap, "tensors 'a' and 'b' overlap");
    expect_error(Builder().header(1, 0).tensor("w", {4}, 0, 0).b, "truncated: the data section would start");
}

// Every prefix of a real file, and thousands of random mutations of its header: each either parses (the
// mutation hit padding or data, or produced another valid file) or fails with a GgufError; never anything
// else. Run under ASan in the fuzz label to catch out-of-bounds reads.
TEST(GgufCorrupt, EveryTruncationAndRandomMutations) {
    const std::string good = slurp(kDir / "small.gguf");
    ASSERT_GT(good.size(), 1000u);
    auto parse = [](const std::string& img) {
        try {
            GgufContents c = parse_gguf(
                std::span<const std::byte>(reinterpret_cast<const std::byte*>(img.data()), img.size()), "m.gguf");
            // Touch every tensor's bytes: in bounds by construction.
            uint64_t sum = 0;
            for (const auto& t : c.tensors)
                for (uint64_t i = 0; i < t.nbytes; ++i) sum += uint8_t(t.data[i]);
            return sum != ~uint64_t(0) ? 1 : 2;
        } catch (const GgufError&) {
            return 0;
        }
    };
    int errors = 0;
    for (size_t n = 0; n < good.size(); ++n) errors += parse(good.substr(0, n)) == 0;
    EXPECT_GT(errors, 900);   // every cut inside the header and the tensor data is an error
    std::mt19937_64 rng(12345);
    const size_t header = 1024;   // data_offset of small.gguf
    int parsed = 0, refused = 0;
    for (int i = 0; i < 5000; ++i) {
        std::string img = good;
        const int edits = 1 + int(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            const size_t pos = rng() % header;
            switch (rng() % 3) {
                case 0: img[pos] = char(rng()); break;
                case 1: img[pos] ^= char(1u << (rng() % 8)); break;
                default: {   // a whole little-endian u64 set to a boundary value
                    const uint64_t vals[] = {0, 1, 0xFFFFFFFFull, ~0ull, 1ull << 63, 1ull << 32, 255};
                    uint64_t v = vals[rng() % 7];
                    std::memcpy(img.data() + std::min(pos, header - 8), &v, 8);
                }
            }
        }
        (parse(img) ? parsed : refused)++;
    }
    EXPECT_GT(refused, 1000);
    RecordProperty("mutations_parsed", parsed);
}

TEST(GgufCorrupt, FileErrors) {
    try {
        GgufFile::open(kDir / "does-not-exist.gguf");
        ADD_FAILURE();
    } catch (const GgufError& e) {
        EXPECT_NE(std::string(e.what()).find("does-not-exist.gguf: cannot open"), std::string::npos);
    }
    EXPECT_THROW(GgufFile::open(kDir), GgufError);   // a directory
}

}  // namespace
}  // namespace qnext
