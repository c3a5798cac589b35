// The GGML block dequantizers against gguf-py's numpy reference (tests/reference/make_quant_golden.py):
// bit-exact on random blocks of every supported type, every f16/bf16 bit pattern, and clear errors on
// partial blocks and unknown types.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <random>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/quant.h"

namespace qnext::kern {
namespace {

const std::filesystem::path kDir = std::filesystem::path(QNEXT_SOURCE_DIR) / "tests/data/kernels/quant";

std::vector<uint8_t> slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(Quant, DequantizeIsBitExactWithGgufPy) {
    std::ifstream in(kDir / "index.json");
    ASSERT_TRUE(in) << kDir;
    const auto index = nlohmann::json::parse(in);
    EXPECT_EQ(index.size(), 12u);
    for (const auto& [name, e] : index.items()) {
        SCOPED_TRACE(name);
        const auto info = qtype_info(e["type"].get<uint32_t>());
        ASSERT_TRUE(info.has_value());
        const int64_t n = e["elements"];
        std::string file(info->name);
        for (char& c : file) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const auto data = slurp(kDir / (file + ".bin"));
        const size_t raw = qtype_row_bytes(info->type, n);
        ASSERT_EQ(data.size(), raw + 4 * static_cast<size_t>(n));
        std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), -12345.0f);
        std::memcpy(want.data(), data.data() + raw, 4 * static_cast<size_t>(n));
        ref::dequantize_row(info->type, data.data(), got.data(), n);
        size_t bad = 0;
        for (int64_t i = 0; i < n; ++i) {
            uint32_t a, b;
            std::memcpy(&a, &want[static_cast<size_t>(i)], 4);
            std::memcpy(&b, &got[static_cast<size_t>(i)], 4);
            if (a != b && ++bad <= 3) ADD_FAILURE() << "value " << i << ": want " << want[i] << " got " << got[i];
        }
        EXPECT_EQ(bad, 0u);
    }
}

TEST(Quant, TypeTableAndErrors) {
    EXPECT_EQ(qtype_info(12)->name, "q4_K");
    EXPECT_EQ(qtype_info(12)->block_bytes, 144);
    EXPECT_EQ(qtype_info(8)->block_elems, 32);
    EXPECT_FALSE(qtype_info(16).has_value());   // IQ2_XXS: not (yet) supported
    EXPECT_FALSE(qtype_info(999).has_value());
    EXPECT_EQ(qtype_row_bytes(QType::Q6_K, 512), 420u);
    EXPECT_THROW(qtype_row_bytes(QType::Q4_0, 33), std::invalid_argument);
    std::vector<uint8_t> block(34, 0);
    std::vector<float> out(64);
    EXPECT_THROW(ref::dequantize_row(QType::Q8_0, block.data(), out.data(), 48), std::invalid_argument);
    EXPECT_THROW(ref::dequantize_row(static_cast<QType>(16), block.data(), out.data(), 32), std::invalid_argument);
}


// The quantizers (kern::ref::quantize_row) round-trip through the dequantizers with the error each format
// allows: relative RMS error on N(0, 0.02) weights below the bound (measured, in order: 0.0054, 0.0174,
// 0.0359, 0.0718, 0.0404, 0.0339; gguf-py's reference Q5_0 / Q5_1 quantizers give 0.0429 / 0.0380 on the
// same data). Q8_0 is byte-identical to llama.cpp's converter (tests/loading/test_gguf_export.cpp).
TEST(Quant, QuantizersRoundTrip) {
    std::mt19937 g(1);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    const int64_t n = 256 * 512;
    std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
    for (float& v : x) v = nd(g);
    x[5] = 0.3f;   // an outlier inside a block
    std::fill_n(x.begin() + 1024, 256, 0.0f);   // an all-zero super-block
    const std::pair<QType, double> bounds[] = {{QType::Q8_0, 0.006}, {QType::Q6_K, 0.019}, {QType::Q5_K, 0.038},
                                               {QType::Q4_K, 0.076}, {QType::Q5_0, 0.042}, {QType::Q5_1, 0.036}};
    for (const auto& [t, bound] : bounds) {
        std::vector<uint8_t> b(qtype_row_bytes(t, n));
        ref::quantize_row(t, x.data(), b.data(), n);
        ref::dequantize_row(t, b.data(), y.data(), n);
        double e = 0, s = 0;
        for (int64_t i = 0; i < n; ++i) {
            ASSERT_TRUE(std::isfinite(y[static_cast<size_t>(i)])) << qtype_info(static_cast<uint32_t>(t))->name << " " << i;
            e += double(y[static_cast<size_t>(i)] - x[static_cast<size_t>(i)]) * (y[static_cast<size_t>(i)] - x[static_cast<size_t>(i)]);
            s += double(x[static_cast<size_t>(i)]) * x[static_cast<size_t>(i)];
        }
        for (int64_t i = 1024; i < 1280; ++i) EXPECT_EQ(y[static_cast<size_t>(i)], 0.0f);
        EXPECT_LE(std::sqrt(e / s), bound) << qtype_info(static_cast<uint32_t>(t))->name;
    }
    std::vector<uint8_t> b(qtype_row_bytes(QType::Q4_K, 256));
    EXPECT_THROW(ref::quantize_row(QType::Q4_K, x.data(), b.data(), 255), std::invalid_argument);
    EXPECT_THROW(ref::quantize_row(QType::Q2_K, x.data(), b.data(), 256), std::invalid_argument);
}


// FP8 e4m3 (torch.float8_e4m3fn): the decoder on the format's landmarks, and every byte against an
// independent formula.
TEST(Quant, E4m3DecodesExactly) {
    EXPECT_EQ(ref::e4m3_to_f32(0x38), 1.0f);
    EXPECT_EQ(ref::e4m3_to_f32(0x7E), 448.0f);            // largest finite
    EXPECT_EQ(ref::e4m3_to_f32(0x01), std::ldexp(1.0f, -9));   // smallest subnormal
    EXPECT_EQ(ref::e4m3_to_f32(0x08), std::ldexp(1.0f, -6));   // smallest normal
    EXPECT_EQ(ref::e4m3_to_f32(0xC0), -2.0f);
    EXPECT_EQ(ref::e4m3_to_f32(0x80), -0.0f);
    EXPECT_TRUE(std::isnan(ref::e4m3_to_f32(0x7F)));
    EXPECT_TRUE(std::isnan(ref::e4m3_to_f32(0xFF)));
    for (int b = 0; b < 256; ++b) {
        if ((b & 0x7F) == 0x7F) continue;
        const int e = (b >> 3) & 15, m = b & 7;
        const double want = (b & 0x80 ? -1.0 : 1.0) * (e == 0 ? m / 8.0 * std::pow(2.0, -6) : (1 + m / 8.0) * std::pow(2.0, e - 7));
        EXPECT_EQ(double(ref::e4m3_to_f32(static_cast<uint8_t>(b))), want) << b;
    }
}

}  // namespace
}  // namespace qnext::kern
