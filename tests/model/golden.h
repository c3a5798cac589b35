// Test helpers: the HF golden fixtures written by tests/reference/make_golden.py
// (tests/data/model/<name>/{golden.json, golden.bin}) and relative-L2 comparisons.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace qnext::test {

inline std::filesystem::path model_data_dir(const std::string& name) {
    return std::filesystem::path(QNEXT_SOURCE_DIR) / "tests" / "data" / "model" / name;
}

struct GoldenArray {
    std::vector<int64_t> shape;
    std::vector<float> data;
};

class Golden {
public:
    explicit Golden(const std::string& name) {
        const auto dir = model_data_dir(name);
        std::ifstream jf(dir / "golden.json");
        if (!jf) throw std::runtime_error("missing " + (dir / "golden.json").string());
        meta_ = nlohmann::json::parse(jf);
        std::ifstream bf(dir / "golden.bin", std::ios::binary);
        std::vector<char> bytes((std::istreambuf_iterator<char>(bf)), std::istreambuf_iterator<char>());
        for (const auto& [key, info] : meta_["tensors"].items()) {
            GoldenArray a;
            a.shape = info["shape"].get<std::vector<int64_t>>();
            int64_t n = 1;
            for (int64_t d : a.shape) n *= d;
            const size_t off = info["offset"].get<size_t>();
            if (off + n * sizeof(float) > bytes.size()) throw std::runtime_error("golden.bin too short for " + key);
            a.data.resize(n);
            std::memcpy(a.data.data(), bytes.data() + off, n * sizeof(float));
            arrays_.emplace(key, std::move(a));
        }
    }
    const nlohmann::json& meta() const { return meta_; }
    const GoldenArray& at(const std::string& key) const {
        auto it = arrays_.find(key);
        if (it == arrays_.end()) throw std::runtime_error("golden has no array " + key);
        return it->second;
    }
    bool has(const std::string& key) const { return arrays_.count(key) != 0; }
    std::vector<int32_t> ids(const char* key) const { return meta_[key].get<std::vector<int32_t>>(); }

private:
    nlohmann::json meta_;
    std::map<std::string, GoldenArray> arrays_;
};

// ||a - b|| / ||b||  (b = reference). Sizes must match.
inline double rel_l2(std::span<const float> a, std::span<const float> b) {
    if (a.size() != b.size()) throw std::runtime_error("rel_l2: size mismatch");
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const double d = static_cast<double>(a[i]) - b[i];
        num += d * d;
        den += static_cast<double>(b[i]) * b[i];
    }
    return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

}  // namespace qnext::test
