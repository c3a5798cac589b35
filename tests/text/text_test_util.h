// Shared helpers for the tokenizer / chat-template tests: data paths and the Qwen3 tokenizer.
#pragma once
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"

namespace qnext::test {

inline std::filesystem::path text_data() { return std::filesystem::path(QNEXT_SOURCE_DIR) / "tests" / "data" / "text"; }

// The real Qwen3 tokenizer (tests/data/text), loaded once per process.
inline const Tokenizer& qwen3() {
    static const Tokenizer tok = Tokenizer::load(text_data());
    return tok;
}

template <class J = nlohmann::json>
std::vector<J> read_jsonl(const std::string& name) {
    std::ifstream in(text_data() / name);
    if (!in) throw std::runtime_error("missing golden file " + (text_data() / name).string());
    std::vector<J> rows;
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) rows.push_back(J::parse(line));
    return rows;
}

inline std::string from_hex(const std::string& hex) {
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    return out;
}

}  // namespace qnext::test
