// Fast reader for HF tokenizer.json. The file is ~11 MB for Qwen3, almost all of it the BPE vocab
// and merges; a DOM parse with nlohmann::json takes ~400 ms, over the 300 ms load budget. So the
// vocab/merges are read by a small streaming scanner straight into flat arrays, and every other
// (small) section is handed to nlohmann::json as its raw text.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace qnext::text {

struct TokenizerJson {
    std::vector<std::pair<std::string, int64_t>> vocab;           // model.vocab (byte-level strings)
    std::vector<std::pair<std::string, std::string>> merges;      // model.merges, in rank order
    nlohmann::json model;          // model.* other than vocab/merges (type, dropout, ignore_merges, ...)
    nlohmann::json added_tokens;   // [] when absent
    nlohmann::json normalizer;     // null when absent
    nlohmann::json pre_tokenizer;
    nlohmann::json decoder;
    nlohmann::json post_processor;
};

// Throws std::runtime_error naming the file and byte offset on malformed input.
TokenizerJson read_tokenizer_json(const std::filesystem::path& file);

}  // namespace qnext::text
