// Helpers for the loading tests: scratch directories and hand-built safetensors files.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/safetensors.h"

namespace qnext::test {

// A fresh directory under the temp dir, removed at destruction.
struct ScratchDir {
    std::filesystem::path path;
    explicit ScratchDir(const std::string& tag) {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string name = std::string("qnext_loading_") + std::to_string(::getpid()) + "_" +
                           (info ? std::string(info->test_suite_name()) + "_" + info->name() : "x") + "_" + tag;
        path = std::filesystem::temp_directory_path() / name;
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::filesystem::path operator/(const std::string& p) const { return path / p; }
};

inline std::filesystem::path data_dir() { return std::filesystem::path(QNEXT_SOURCE_DIR) / "tests/data/loading"; }
inline std::filesystem::path tiny_config_path() {
    return std::filesystem::path(QNEXT_SOURCE_DIR) / "configs/models/tiny.json";
}

// Writes bytes: u64 LE header length, header text, data.
inline void write_raw_safetensors(const std::filesystem::path& p, const std::string& header, const std::string& data) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xFF));
    out << header << data;
}

// A tensor to write with write_safetensors(): raw little-endian bytes.
struct RawTensor {
    std::string name;
    std::string dtype;               // "F32", "BF16", ...
    std::vector<int64_t> shape;
    std::string bytes;
};

inline void write_safetensors(const std::filesystem::path& p, const std::vector<RawTensor>& ts) {
    nlohmann::ordered_json h;
    h["__metadata__"] = {{"format", "pt"}};
    std::string data;
    for (const RawTensor& t : ts) {
        h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
        data += t.bytes;
    }
    write_raw_safetensors(p, h.dump(), data);
}

// Copies of every tensor of a store (to rewrite a checkpoint with changes).
inline std::vector<RawTensor> copy_tensors(const TensorStore& s) {
    std::vector<RawTensor> out;
    for (const TensorView& v : s.tensors())
        out.push_back({v.name, dtype_name(v.dtype), v.shape,
                       std::string(reinterpret_cast<const char*>(v.data), v.nbytes)});
    return out;
}

inline std::string f32_bytes(const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

inline void write_json(const std::filesystem::path& p, const nlohmann::json& j) {
    std::ofstream out(p, std::ios::trunc);
    out << j.dump(2);
}

inline nlohmann::json read_json(const std::filesystem::path& p) {
    std::ifstream in(p);
    return nlohmann::json::parse(in);
}

}  // namespace qnext::test

// Runs f, expecting a std::runtime_error whose message contains every one of `parts`.
#define EXPECT_ERROR_CONTAINS(stmt, ...)                                                         \
    do {                                                                                         \
        std::string qnext_msg_;                                                                  \
        try {                                                                                    \
            stmt;                                                                                \
        } catch (const std::runtime_error& e) {                                                  \
            qnext_msg_ = e.what();                                                               \
        }                                                                                        \
        ASSERT_FALSE(qnext_msg_.empty()) << "expected an error from: " #stmt;                    \
        for (const std::string& part : std::vector<std::string>{__VA_ARGS__})                    \
            EXPECT_NE(qnext_msg_.find(part), std::string::npos)                                  \
                << "error text lacks \"" << part << "\"; got: " << qnext_msg_;                   \
    } while (0)
