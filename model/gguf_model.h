// Qwen3-Next as llama.cpp writes it in GGUF (architecture "qwen3next", convert_hf_to_gguf.py's
// Qwen3NextModel): the hyperparameters in the `qwen3next.*` metadata mapped back onto the Hugging Face
// config that the rest of qnext uses, and a summary of the file's tensor types and bytes.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/gguf.h"

namespace qnext {

// The Qwen3NextConfig a qwen3next GGUF describes. Throws GgufError naming the file and the key for another
// architecture, a missing or mistyped key, or values that contradict each other or the tensors (vocabulary
// size vs token_embd, value_length vs key_length, ...); the result passes validate_config.
Qwen3NextConfig gguf_config(const GgufFile& f);

// Bytes and tensor counts per GGML type, and the bytes a decode step reads (every tensor except the token
// embedding table and the experts that are not routed to: top-k of num_experts expert rows).
struct GgufTypeSummary {
    std::map<std::string, int64_t> bytes_by_type;     // "Q8_0" -> bytes
    std::map<std::string, int64_t> tensors_by_type;
    int64_t total_bytes = 0;
    int64_t bytes_per_token = 0;
};
GgufTypeSummary summarize_gguf(const GgufFile& f, const Qwen3NextConfig& cfg);
nlohmann::ordered_json gguf_summary_to_json(const GgufTypeSummary& s);
std::string gguf_summary_to_text(const GgufTypeSummary& s);

}  // namespace qnext
